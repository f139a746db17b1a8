"""The multiple-choice general suite: questions from several sets in OpenAI's `evals` registry (shipped in the `evals`
package, so nothing is downloaded), each read into the same `Choice` shape and drawn stratified, the same number from
each set in turn, so that no one kind of question decides retention. Questions read (repeats and unreadable rows
skipped), with `evals` 3.0.1.post1's registry:

| set | what it asks | options | questions read |
|---|---|---|---|
| quartz | qualitative science ("more heat means ...") | 2 | 3,844 |
| socialiqa | what a person will do or feel next | 3 | 2,198 |
| tomi | where an object is, or where someone will look for it | the story's containers (2-4) | 5,993 |
| medmcqa | medical exam questions | 4 | 299 |
| food | is this string a food? | yes / no | 759 |
| countries | which of these countries is largest (two sets) | the listed countries | 224 |
| born_first | was A born before B? | yes / no | 113 |
| heavier | is N pounds of X heavier than M pounds of Y? | yes / no | 183 |

The fourteen kinds of generated everyday skill (`tunestack.data.skills`: sums, differences, products, the number
after, double a number, units of time, weekdays, months, the letter after, capitals, opposites, plurals, colours,
legs; 2,294 questions, four options each: the answer and three of its kind) are sets of the suite too, so a model
that has no use for the registry's sets (a small model answers most of them at chance) still has questions it
knows. Each question keeps its set's name (`Choice.task`) and the number of its options, so a score can be adjusted for
chance per item (`tunestack.evaluate.retention.score_choices`).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

from tunestack.data.suites import Choice, interleave, parse_quartz, registry_data


def _user(row: dict) -> str:
    return "\n\n".join(m["content"] for m in row["input"] if m["role"] == "user").strip()


def _socialiqa(row: dict) -> Choice | None:
    match = re.match(r"(?s)(.*?)\s*A: (.*?); B: (.*?); C: (.*?)\.?$", _user(row))
    if not match or row["ideal"].strip() not in "ABC":
        return None
    question, *options = (part.strip() for part in match.groups())
    return Choice(question=question, options=options, answer="ABC".index(row["ideal"].strip()))


_PLACE = re.compile(r"(?:is in|to) the ([a-z_]+)\.")


def _tomi(row: dict) -> Choice | None:
    """ToMi stories move one object between containers; the options are the containers the story names."""
    text = _user(row)
    places = list(dict.fromkeys(_PLACE.findall(text)))
    answer = row["ideal"].strip()
    if answer not in places or len(places) < 2:
        return None
    return Choice(question=text, options=[p.replace("_", " ") for p in places], answer=places.index(answer))


def _medmcqa(row: dict) -> Choice | None:
    text = _user(row)
    question, _, block = text.rpartition("\n\n")
    options = [line[3:].strip() for line in block.splitlines() if re.match(r"[a-d]\) ", line)]
    letter = row["ideal"].strip()[:1]
    if len(options) != 4 or letter not in "abcd":
        return None
    return Choice(question=question.strip(), options=options, answer="abcd".index(letter))


def _yes_no(question: Callable[[dict], str], yes: str = "Yes", no: str = "No") -> Callable[[dict], Choice | None]:
    def parse(row: dict) -> Choice | None:
        ideal = row["ideal"].strip()
        if ideal not in (yes, no):
            return None
        return Choice(question=question(row), options=["Yes", "No"], answer=0 if ideal == yes else 1)
    return parse


def _largest(row: dict) -> Choice | None:
    text = _user(row)
    names = [n.strip() for n in text.rsplit(". ", 1)[-1].split(",")] if "Do not explain" in text else \
        [n.strip() for n in text.split(",")]
    answer = row["ideal"].strip()
    if answer not in names:
        return None
    return Choice(question=f"Which of these countries is the largest by area? {', '.join(names)}",
                  options=names, answer=names.index(answer))


def _strip_answer_format(text: str) -> str:
    return re.sub(r"\s*Answer (?:Yes or No|Y or N)\.?$", "", text).strip()


SETS: dict[str, tuple[tuple[str, ...], Callable[[dict], Choice | None]]] = {
    "quartz": (("quartz/samples.jsonl",), parse_quartz),
    "socialiqa": (("theory_of_mind/socialiqa/test.jsonl",), _socialiqa),
    "tomi": (("theory_of_mind/tomi/test.jsonl",), _tomi),
    "medmcqa": (("medmcqa/samples.jsonl",), _medmcqa),
    "food": (("food/samples.jsonl",),
             _yes_no(lambda r: f"Is this a food, or related to food? {_user(r).rsplit('? ', 1)[-1]}")),
    "countries": (("largest_country/samples.jsonl", "compare-countries-area/samples.jsonl"), _largest),
    "born_first": (("born_first/born_first.jsonl",), _yes_no(lambda r: _strip_answer_format(_user(r)), "Y", "N")),
    "heavier": (("which_is_heavier/which_is_heavier.jsonl",), _yes_no(lambda r: _strip_answer_format(_user(r)))),
}
"""Each set: its files under the registry's data folder and the reader of one row (None: a row it cannot read)."""


def tasks() -> tuple[str, ...]:
    """Every set the suite draws from: the registry's, then each kind of generated everyday skill."""
    from tunestack.data.skills import kinds

    return tuple(SETS) + kinds()


def read_set(task: str) -> list[Choice]:
    """Every question of one set, in file order, each tagged with the set's name. A row the reader cannot place, a
    question with repeated options and a repeat of an earlier question are skipped (a repeat would count twice)."""
    if task not in SETS:
        from tunestack.data.skills import as_choices, build_skills, most_items

        return as_choices([i for i in build_skills(most_items()) if i["kind"] == task])
    files, parse = SETS[task]
    out, seen = [], set()
    for name in files:
        for line in (registry_data() / name).read_text(encoding="utf-8").splitlines():
            choice = parse(json.loads(line)) if line.strip() else None
            if choice is None or len(set(choice.options)) < len(choice.options):
                continue
            key = (choice.question, tuple(choice.options))
            if key not in seen:
                seen.add(key)
                out.append(Choice(choice.question, choice.options, choice.answer, task))
    return out


def stratified(n: int, seed: int = 0, chosen: tuple[str, ...] | None = None) -> list[Choice]:
    """`n` questions, taken from each set in turn (each set shuffled by `seed`), so every set has an equal share
    until a small one runs out; the first `m` of the draw are themselves stratified (a subsample is a prefix)."""
    if n == 0:
        return []
    pools = {task: read_set(task) for task in (chosen or tasks())}
    for task, pool in pools.items():
        random.Random(f"{seed}:{task}").shuffle(pool)
    return list(interleave(list(pools.values()), n))


def available() -> int:
    """How many questions the sets hold in all."""
    return sum(len(read_set(task)) for task in tasks())
