"""Instruction following as a retention suite: prompts that carry a verifiable instruction, each checked by code.

In the manner of IFEval (Zhou et al., 2023), written for this project: every item asks for something about a short
general subject (the sea, a bicycle, winter) and adds one instruction whose keeping a few lines of code can decide:
a word limit, one word, all lower case, all capitals, a bulleted or numbered list of N items, a first word, a last
phrase, double quotes around the whole answer, a word that must appear, a word that must not, no commas, a sentence
repeated exactly, a comma-separated list. The checks read the answer only; nothing here calls a model.

An answer written in the task's JSON format fails whatever the instruction (the caller passes `bleed`): a fine-tune
that answers "In at most eight words, describe the sea" with `{"modality": ...}` has stopped following instructions,
which is what the suite is for.

The items are made from the subjects and the instruction kinds by a seeded shuffle, taken kind by kind in turn so
that any prefix of the list covers the kinds evenly; the same `n` and seed give the same items.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

SUBJECTS = [
    ("the sea", "sea"), ("a bicycle", "bicycle"), ("winter", "winter"), ("the moon", "moon"), ("coffee", "coffee"),
    ("a library", "library"), ("rain", "rain"), ("a city at night", "city"), ("a dog", "dog"), ("a forest", "forest"),
    ("music", "music"), ("the sun", "sun"), ("bread", "bread"), ("a mountain", "mountain"), ("a river", "river"),
    ("friendship", "friendship"), ("a kitchen", "kitchen"), ("a train journey", "train"), ("autumn", "autumn"),
    ("the sky", "sky"), ("a garden", "garden"), ("a school", "school"), ("the wind", "wind"), ("a cat", "cat"),
    ("a market", "market"), ("snow", "snow"), ("a candle", "candle"), ("the desert", "desert"), ("a bridge", "bridge"),
    ("a birthday", "birthday"), ("an island", "island"), ("a clock", "clock"), ("a farm", "farm"),
    ("the ocean floor", "ocean"), ("a thunderstorm", "thunderstorm"), ("a museum", "museum"), ("tea", "tea"),
    ("a beach", "beach"), ("a piano", "piano"), ("spring", "spring"),
]
"""(subject as written in a prompt, its key word)."""

KEYWORDS = ["blue", "quiet", "small", "morning", "bright", "cold", "old", "green"]
PHRASES = ["Is there anything else?", "That is all.", "Thank you for reading."]
OPENERS = ["Indeed", "Certainly", "Well"]
SENTENCES = [
    "Nothing is quite like {s} in the morning.", "I wrote a short poem about {s} today.",
    "Everyone has a story about {s}.", "We talked about {s} for an hour.", "The picture shows {s} in soft light.",
    "My friend asked me about {s} yesterday.",
]


@dataclass(frozen=True)
class Kind:
    name: str
    prompt: Callable[[str, str, random.Random], tuple[str, dict]]
    """(subject, key word, rng) -> (prompt, the parameters its check needs)."""
    check: Callable[[str, dict], bool]
    """(answer, parameters) -> whether the instruction was kept."""


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9']+", text)


def unquoted(text: str) -> str:
    return text.strip().strip("\"'“”‘’ ").strip()


def list_lines(text: str, pattern: str) -> int:
    return sum(1 for line in text.splitlines() if re.match(pattern, line.strip()))


def _at_most(subject, key, rng):
    n = rng.choice([6, 8, 10])
    return f"In at most {n} words, describe {subject}.", {"n": n}


def _one_word(subject, key, rng):
    return f"Describe {subject} in exactly one word. Answer with that word only.", {}


def _lower(subject, key, rng):
    return f"Describe {subject} in one sentence, using only lowercase letters (no capital letters at all).", {}


def _upper(subject, key, rng):
    return f"Describe {subject} in one sentence, written entirely in CAPITAL LETTERS.", {}


def _bullets(subject, key, rng):
    n = rng.choice([2, 3, 4])
    return (f"Give exactly {n} facts about {subject} as a bulleted list: one fact per line, each line starting "
            f"with '- '.", {"n": n})


def _numbered(subject, key, rng):
    n = rng.choice([3, 4])
    return (f"Write a numbered list of exactly {n} words that go with {subject}, one per line (1., 2., ...).",
            {"n": n})


def _opener(subject, key, rng):
    word = rng.choice(OPENERS)
    return f"Start your answer with the word '{word}'. Then describe {subject} in one sentence.", {"word": word}


def _ending(subject, key, rng):
    phrase = rng.choice(PHRASES)
    return (f"Describe {subject} in one sentence, then end your answer with the exact phrase '{phrase}' and "
            f"nothing after it.", {"phrase": phrase})


def _quoted(subject, key, rng):
    return f"Describe {subject} in one sentence and wrap your entire answer in double quotation marks.", {}


def _keyword(subject, key, rng):
    word = rng.choice(KEYWORDS)
    return f"Describe {subject} in one sentence that uses the word '{word}'.", {"word": word}


def _avoid(subject, key, rng):
    return f"Describe {subject} in one sentence without using the word '{key}'.", {"word": key}


def _no_commas(subject, key, rng):
    return f"Describe {subject} in two sentences without using any commas.", {}


def _repeat(subject, key, rng):
    sentence = rng.choice(SENTENCES).format(s=subject)
    return f"Repeat this sentence exactly and write nothing else: {sentence}", {"sentence": sentence}


def _comma_list(subject, key, rng):
    n = rng.choice([3, 4])
    return (f"Name {n} words you connect with {subject}, on one line, separated by commas, with no "
            f"other text.", {"n": n})


def _kept_repeat(answer: str, p: dict) -> bool:
    said, wanted = " ".join(words(answer)).lower(), " ".join(words(p["sentence"])).lower()
    return said.startswith(wanted) and len(said) <= len(wanted) + 12


def _kept_comma_list(answer: str, p: dict) -> bool:
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    parts = [part for part in re.split(r",|\band\b", lines[0]) if part.strip()] if len(lines) == 1 else []
    return len(lines) == 1 and answer.count(",") >= 1 and len(parts) == p["n"] and len(words(lines[0])) <= 4 * p["n"]


KINDS = [
    Kind("at_most_words", _at_most, lambda a, p: 1 <= len(words(a)) <= p["n"]),
    Kind("one_word", _one_word, lambda a, p: len(words(a)) == 1),
    Kind("lowercase", _lower, lambda a, p: any(c.isalpha() for c in a) and not any(c.isupper() for c in a)),
    Kind("uppercase", _upper, lambda a, p: any(c.isalpha() for c in a) and not any(c.islower() for c in a)),
    Kind("bullets", _bullets, lambda a, p: list_lines(a, r"^[-*•]\s+\S") == p["n"]),
    Kind("numbered", _numbered, lambda a, p: list_lines(a, r"^\d+[.)]\s*\S") == p["n"]),
    Kind("first_word", _opener, lambda a, p: (words(unquoted(a)) or [""])[0].lower() == p["word"].lower()),
    Kind("last_phrase", _ending, lambda a, p: unquoted(a).endswith(p["phrase"])),
    Kind("quoted", _quoted, lambda a, p: len(a.strip()) > 2 and a.strip()[0] in "\"“" and a.strip()[-1] in "\"”"),
    Kind("keyword", _keyword, lambda a, p: p["word"].lower() in (w.lower() for w in words(a))),
    Kind("avoid_word", _avoid, lambda a, p: bool(words(a))
         and not {p["word"], p["word"] + "s"} & {w.lower() for w in words(a)}),
    Kind("no_commas", _no_commas, lambda a, p: len(words(a)) >= 3 and "," not in a),
    Kind("repeat", _repeat, _kept_repeat),
    Kind("comma_list", _comma_list, _kept_comma_list),
]
BY_NAME = {kind.name: kind for kind in KINDS}


def build_instructions(n: int, seed: int = 0) -> list[dict]:
    """`n` items (at most one per kind and subject), each {id, kind, prompt, params}, the kinds in turn.

    >>> items = build_instructions(28)
    >>> len(items), len({item["kind"] for item in items}), len({item["prompt"] for item in items})
    (28, 14, 28)
    """
    if n <= 0:
        return []
    rng = random.Random(seed)
    queues = []
    for kind in KINDS:
        subjects = SUBJECTS[:]
        rng.shuffle(subjects)
        queues.append([(kind, subject, key) for subject, key in subjects])
    items: list[dict] = []
    for depth in range(len(SUBJECTS)):
        for queue in queues:
            if len(items) == n:
                return items
            kind, subject, key = queue[depth]
            prompt, params = kind.prompt(subject, key, rng)
            items.append({"id": f"if{len(items) + 1:04d}", "kind": kind.name, "prompt": prompt, "params": params})
    return items


def kept(item: dict, answer: str, bleed: bool = False) -> bool:
    """Whether `answer` keeps the item's instruction; an answer in the task's format (`bleed`) never does.

    >>> item = {"kind": "at_most_words", "params": {"n": 6}}
    >>> kept(item, "Vast, blue and restless."), kept(item, "The sea is vast, blue, deep and always restless.")
    (True, False)
    >>> kept(item, '{"modality": "CT"}', bleed=True)
    False
    """
    if bleed:
        return False
    return bool(BY_NAME[item["kind"]].check(answer, item["params"]))


def most_items() -> int:
    return len(KINDS) * len(SUBJECTS)
