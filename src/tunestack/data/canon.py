"""What makes two rows "the same": normalised words, the keys duplicates and leaks are found by, and word hashing.
Pure: numpy only, no disk.

A row is compared turn by turn (role and text), never as one blob, at three levels:

- **exact**: every turn has the same normalised words. Normalising folds case and Unicode form and turns every
  character that is not a letter or digit into a space, so case, spacing and punctuation do not count.
- **sequence**: every turn has the same normalised words once filler words (`FILLER`: articles, greetings,
  politeness, discourse fillers) are left out. A filler word added or dropped does not make a row new.
- **clauses**: every turn has the same *multiset* of clauses, a clause being a sentence (text up to `.`, `;`, `!`,
  `?` followed by a space, or a line break) as its non-filler words. A sentence moved elsewhere in its turn does not
  make a row new; words moved inside a sentence do ("A pays B" is not "B pays A").

Any other difference, one word that is not filler, makes a different row: a name, a number, a date, a code, a
negation, a synonym. That is deliberate. Similarity measures cannot tell a changed slot value (a different lesson)
from a reworded one (the same lesson), and template data is made of rows that differ in one slot value.

The prompt key is the sequence key of every turn but the last: the same prompt with another answer is a
conflicting label. `bare_prompt` leaves the system turn out, for items (the general suites) that have none.

Hashes are stable across processes (blake2b; no builtin `hash`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from itertools import chain
from typing import NamedTuple

import numpy as np

from tunestack.tools import message_text, tools_of

FILLER = frozenset(("a", "an", "the", "please", "kindly", "also", "basically", "actually", "simply", "um", "uh", "ok",
                    "okay", "hi", "hello", "hey", "thanks"))
"""Words whose presence changes no meaning. Negations (no, not, never, t of n't) are never filler."""

_WORD = re.compile(r"\w+", re.UNICODE)
# A sentence ends at . ; ! ? followed by whitespace or the end (so "3.5" and "e.g" stay whole), or at a line break.
_CLAUSE_END = re.compile(r"[.;!?]+(?=\s|$)|\n")
# For ASCII text, one byte translation does what NFKC, lower() and the \w+ split do: letters to lower case, digits
# and "_" kept, everything else a space (newlines too, once split on, for the per-line n-grams).
_ASCII_FOLD = bytes(c + 32 if 65 <= c <= 90 else c if chr(c).isalnum() or c in b"_\n" else 32 for c in range(256))


def normalize(text: str) -> str:
    """Case, Unicode form, punctuation and spacing do not make rows different.

    >>> normalize("  CT  Chest: small L-PTX. ")
    'ct chest small l ptx'
    """
    return " ".join(words(text))


def words(text: str) -> list[str]:
    if text.isascii():
        return text.encode().translate(_ASCII_FOLD).decode().split()
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def line_words(text: str) -> list[list[str]]:
    """Words of each line: n-grams are taken per line, so one never spans two lines or turns."""
    if text.isascii():
        return [line.split() for line in text.encode().translate(_ASCII_FOLD).decode().split("\n")]
    return [words(line) for line in text.split("\n")]


def content_words(text: str, filler: frozenset = FILLER) -> list[str]:
    """
    >>> content_words("Please note: the lease is NOT renewed.")
    ['note', 'lease', 'is', 'not', 'renewed']
    """
    return [w for w in words(text) if w not in filler]


def clauses(text: str, filler: frozenset = FILLER) -> list[str]:
    """The sentences of a turn as their content words, sorted: the same list for the same sentences in any order.

    >>> clauses("Term: 12 months. Hx: none.") == clauses("Hx: none.  Term: 12 months.")
    True
    """
    return sorted(p for p in _sentences(text, filler)[1] if p)


def _sentences(text: str, filler: frozenset) -> tuple[list[list[str]], list[str]]:
    """Each sentence's words, and each sentence's content words joined. Joined in turn, the sentences' words are the
    text's words: the split removes only characters that are not words."""
    parts = [words(part) for part in _CLAUSE_END.split(text)]
    return parts, [" ".join([w for w in p if w not in filler]) for p in parts]


def digest(parts) -> bytes:
    return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=16).digest()


class RowKeys(NamedTuple):
    exact: bytes
    sequence: bytes
    clauses: bytes
    prompt: bytes
    bare_prompt: bytes
    """The prompt without its system turn."""
    has_system: bool


def row_keys(messages: list[dict], filler: frozenset = FILLER) -> RowKeys:
    """The keys of one row (a list of chat turns, the answer last)."""
    exact, sequence, ordered = [], [], []
    for m in messages:
        parts, kept = _sentences(turn_text(m), filler)  # one pass over the text serves all three keys
        exact.append(m["role"] + ":" + " ".join(" ".join(p) for p in parts if p))
        sequence.append(m["role"] + ":" + " ".join(p for p in kept if p))
        ordered.append(m["role"] + ":" + "\x1d".join(sorted(p for p in kept if p)))
    has_system = bool(messages) and messages[0]["role"] == "system"
    return RowKeys(digest(exact), digest(sequence), digest(ordered), digest(sequence[:-1]),
                   digest(sequence[1 if has_system else 0:-1]), has_system)


def turn_text(message: dict) -> str:
    """A turn as the data checks compare it: its text, a tool call as its function name plus canonical arguments, a
    tool result with its function's name, and the names of the tools a conversation offers on its first turn (the same
    question with other tools is another row).

    >>> turn_text({"role": "assistant", "content": "", "tool_calls": [
    ...     {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": {"b": 2, "a": 1}}}]})
    'lookup({"a":1,"b":2})'
    """
    text = message_text(message)
    offered = tools_of([message])
    return f"{text}\ntools: {' '.join(sorted(t['function']['name'] for t in offered))}" if offered else text


def example_text(messages: list[dict]) -> str:
    """The whole example as one text, a line per turn at least."""
    return "\n".join(turn_text(m) for m in messages)


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: every input bit affects every output bit. uint64 arithmetic wraps, as intended.
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def word_hashes(flat: list[str]) -> np.ndarray:
    """A stable 64-bit hash per word (each distinct word hashed once)."""
    table = {word: stable_hash(word) for word in set(flat)}
    return np.fromiter(map(table.__getitem__, flat), dtype=np.uint64, count=len(flat))


def grams(segments: list[list[str]], k: int,
          whole_if_short: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of the word k-grams of each segment, the segment each belongs to, each one's first word's position in
    the flattened words, and those words' hashes (in order).

    A segment shorter than k words gives one gram of all its words when `whole_if_short`, else none.
    """
    lengths = np.fromiter(map(len, segments), dtype=np.int64, count=len(segments))
    flat = list(chain.from_iterable(segments))
    hashed = word_hashes(flat)
    padded = np.append(hashed, np.uint64(0))  # the zero past the end stands for "no word here"
    counts = np.maximum(lengths - k + 1, 1 if whole_if_short else 0)
    owner = np.repeat(np.arange(len(segments)), counts)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(owner.size) - (np.cumsum(counts) - counts)[owner] + starts[owner]
    end = (starts + lengths)[owner]
    h = np.full(owner.size, k, dtype=np.uint64)
    for j in range(k):
        h = _mix(h ^ padded[np.where(position + j < end, position + j, len(flat))])
    return h, owner, position, hashed


def shingles(text: str, k: int = 3) -> np.ndarray:
    """Sorted unique hashes of the word k-grams of normalised text (the whole text when shorter than k words)."""
    return np.unique(grams([words(text)], k, whole_if_short=True)[0])


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter) if (a.size or b.size) else 1.0


def similarity(a: list[dict], b: list[dict]) -> float:
    """Jaccard similarity of two rows' word 3-grams: how alike they look, for reports (never to decide)."""
    return round(jaccard(shingles(example_text(a)), shingles(example_text(b))), 3)
