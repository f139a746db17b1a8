"""Exact and near duplicates, and conflicting labels, within one set of rows. Pure: no torch, no disk.

What counts as the same row is defined in `canon` (exact: case, spacing, sentence punctuation and Unicode form
aside; near: filler words or the order of sentences aside; signs, operators and numbers always count). Rows are read
in order and the first of each group is kept, so the result does not depend on anything but the rows and their
order. Finding a duplicate is a dictionary look-up per key: linear in the rows, with no similarity threshold to tune.

Near copies by inserted words (`near_copies`: rows that differ only by frequent words inserted or deleted, such as
"hereby" or "Thanks in advance") are listed, not removed: within training they cost little, and the words that tell
them apart become a suggested `data.filler_words` setting (`filler_setting`) that removes them once the user agrees.

Conflicting labels are rows with the same prompt (as its `sequence` key) and different answers, resolved by a policy:
`keep_first`, `majority` (the answer most rows give, duplicates counted; a tie goes to the answer seen first) or
`drop` (no row of the group is kept).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from tunestack.data.canon import (COMPARED, FILLER, candidate_words, clauses, content_words, droppable, inserted_words,
                                  row_keys, skeleton, turn_text, words)
from tunestack.data.ngrams import similarity

CONFLICT_POLICIES = ("keep_first", "majority", "drop")


def deduplicate(rows: list[list[dict]], filler: frozenset = FILLER) -> tuple[list[int], list[dict]]:
    """Rows (each a list of chat turns) -> indices kept (the first of each group) and one record per removed row:
    {row, kind: exact | near, duplicate_of, similarity, evidence}."""
    exact: dict[bytes, int] = {}
    near: dict[bytes, int] = {}
    kept, removed = [], []
    for i, messages in enumerate(rows):
        keys = row_keys(messages, filler)
        if keys.exact in exact:
            kind, j = "exact", exact[keys.exact]
        elif keys.sequence in near or keys.clauses in near:
            kind, j = "near", near.get(keys.sequence, near.get(keys.clauses))
        else:
            exact[keys.exact] = i
            near.setdefault(keys.sequence, i)
            near.setdefault(keys.clauses, i)
            kept.append(i)
            continue
        removed.append({"row": i, "kind": kind, "duplicate_of": j, "similarity": similarity(messages, rows[j]),
                        "evidence": difference(messages, rows[j], filler)})
    return kept, removed


def difference(a: list[dict], b: list[dict], filler: frozenset = FILLER) -> str:
    """What tells two matching rows apart, in a few words: the evidence a report shows.

    >>> difference([{"role": "user", "content": "Please check the lease."}], [{"role": "user", "content": "Check lease"}])
    'filler +please +the'
    """
    a, b = [turn_text(m) for m in a], [turn_text(m) for m in b]
    if a == b:
        return "identical"
    wa, wb = Counter(), Counter()
    for x, y in zip(a, b):
        wa.update(words(x))
        wb.update(words(y))
    if wa == wb:
        if all(words(x) == words(y) for x, y in zip(a, b)):
            return "case, spacing or punctuation"
        return "sentences reordered" if all(clauses(x, filler) == clauses(y, filler)
                                            for x, y in zip(a, b)) else "words reordered"
    extra, missing = wa - wb, wb - wa
    parts = [f"+{w}" for w in sorted(extra)] + [f"-{w}" for w in sorted(missing)]
    label = "filler" if all(w in filler for w in (extra + missing)) else "words"
    return f"{label} " + " ".join(parts[:8])


def near_copies(rows: list[list[dict]], filler: frozenset = FILLER) -> list[dict]:
    """Rows that differ from an earlier row only by frequent words inserted or deleted (`canon.inserted_words`), one
    record each: {row, kind: inserted, duplicate_of, words, similarity, evidence}. Run on rows `deduplicate` kept."""
    frequency: Counter = Counter()
    for messages in rows:
        frequency.update(candidate_words(messages))
    drop = droppable(frequency, len(rows))
    left_out = drop | filler
    groups: dict[bytes, list[int]] = defaultdict(list)
    found = []
    for i, messages in enumerate(rows):
        members = groups[skeleton(messages, left_out)]
        for j in members[:COMPARED]:
            differ = inserted_words(messages, rows[j], drop, filler)
            if differ:
                found.append({"row": i, "kind": "inserted", "duplicate_of": j, "words": differ,
                              "similarity": similarity(messages, rows[j]),
                              "evidence": "inserted words " + " ".join(differ[:8])})
                break
        else:
            members.append(i)
    return found


def filler_setting(records: list[dict], configured: list[str] = ()) -> tuple[list[str], str]:
    """The words that tell near copies apart and the one-line setting that would make them duplicates.

    >>> filler_setting([{"words": ["hereby"]}, {"words": ["duly", "hereby"]}], ["kindly"])
    (['duly', 'hereby'], 'data.filler_words: [duly, hereby, kindly]')
    """
    found = sorted({w for r in records for w in r["words"]})
    return found, "data.filler_words: [" + ", ".join(sorted({*found, *configured})) + "]"


def resolve_conflicts(rows: list[list[dict]], weights: list[int] | None = None, policy: str = "majority",
                      filler: frozenset = FILLER) -> tuple[list[int], list[dict]]:
    """Rows sharing a prompt but not an answer: which to keep under `policy`, and a record per removed row:
    {row, kind: conflicting_label, duplicate_of (the row kept, or None), similarity, evidence}.

    `weights` counts how many input rows each row stands for (1 + its removed duplicates), for `majority`.
    """
    if policy not in CONFLICT_POLICIES:
        raise ValueError(f"unknown conflict policy {policy!r}; use one of {', '.join(CONFLICT_POLICIES)}")
    weights = weights or [1] * len(rows)
    groups: dict[bytes, list[int]] = defaultdict(list)
    answers = []
    for i, messages in enumerate(rows):
        groups[row_keys(messages, filler).prompt].append(i)
        answers.append(" ".join(content_words(turn_text(messages[-1]), filler)))
    drop: dict[int, int | None] = {}
    for members in groups.values():
        if len({answers[i] for i in members}) < 2:
            continue
        if policy == "drop":
            winner = None
        elif policy == "keep_first":
            winner = members[0]
        else:  # the first member with the best count: a tie goes to the answer seen first
            votes = Counter()
            for i in members:
                votes[answers[i]] += weights[i]
            winner = next(i for i in members if votes[answers[i]] == max(votes.values()))
        for i in members:
            if i != winner:
                drop[i] = winner
    removed = [{"row": i, "kind": "conflicting_label", "duplicate_of": j,
                "similarity": similarity(rows[i], rows[j]) if j is not None else None,
                "evidence": f"same prompt, answer {_short(turn_text(rows[i][-1]))!r} vs "
                            f"{_short(turn_text(rows[j][-1])) if j is not None else '(all dropped)'!r}"}
               for i, j in sorted(drop.items())]
    return [i for i in range(len(rows)) if i not in drop], removed


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
