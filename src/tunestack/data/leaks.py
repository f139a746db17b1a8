"""Decontamination: training rows that leak a protected item (an eval or holdout row, a general-suite question).
Pure: numpy only, no disk.

A training row leaks a protected item when it is
- an exact or near duplicate of it (`canon`'s keys), or
- the same prompt with any answer (kind `prompt`): a conflicting label across the split is a leak, however short
  the prompt; an item with no system turn (a suite question) matches the prompt under any system prompt; or
- a near copy of it by inserted words (kind `inserted`, `canon.inserted_words`): the same row once frequent words
  such as "hereby" or "Thanks in advance" are left out, word frequency counted over the whole corpus. Removing it
  costs a training row; keeping it would inflate every metric computed on the protected item; or
- it shares a token n-gram (`n`, 13 by default; never across lines or turns; in scripts written without spaces a
  token is a character) with it that is **distinctive**: the
  n-gram holds at least `MIN_RARE` (2) words that are rare, a word being rare when at most `rare_df` rows of the
  whole corpus hold it, the corpus being the training rows and the protected items together, and `rare_df` being
  max(2, 0.1% of that corpus).

Why rare words: shared system prompts, boilerplate and recurring slot values (a governing law, "12 months", a
notice period) are made of words that many rows hold, whatever the size of the eval set, so an n-gram of them is
template text, not evidence; a passage copied from an eval item carries its names, numbers and terms, which few rows
hold. A rare n-gram of common words (a rare combination of slot values) is not evidence either. Two rare words, not
one: in a small corpus a slot value with a few dozen values (a day of the month, a year) is rare by count, and two
rows that share one by chance share the boilerplate around it too.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import chain

import numpy as np

from tunestack.data.canon import (COMPARED, FILLER, candidate_words, droppable, inserted_words, row_keys, skeleton,
                                  token_sets, turn_lines)
from tunestack.data.ngrams import grams, similarity, word_hashes

_BATCH = 2048
MIN_RARE = 2


def decontaminate(train: list[list[dict]], protected: list[list[dict]], n: int = 13, filler: frozenset = FILLER,
                  rare_df: int | None = None) -> list[dict]:
    """Training rows that leak a protected row, each as {row, kind: exact | near | prompt | <n>-gram, matched
    (the protected row's index), similarity, evidence}."""
    if not train or not protected:
        return []
    index = _key_index(protected, filler)
    lines = [_row_lines(m) for m in protected]
    if rare_df is None:
        rare_df = max(2, int(0.001 * (len(train) + len(protected))))
    frequency, candidates = _document_frequency(lines, train, protected)
    drop = droppable(candidates, len(train) + len(protected))
    left_out = drop | filler
    skeletons: dict[bytes, list[int]] = defaultdict(list)
    for j, messages in enumerate(protected):
        skeletons[skeleton(messages, left_out)].append(j)
    evidence, owners = _evidence_grams(lines, n, frequency, rare_df)
    hits = []
    for start in range(0, len(train), _BATCH):
        batch = train[start:start + _BATCH]
        shared, where = _first_owner(batch, n, evidence, owners)
        for i, messages in enumerate(batch):
            hit = _key_hit(row_keys(messages, filler), index)
            if hit is None:
                hit = _inserted_hit(messages, protected, skeletons.get(skeleton(messages, left_out), ()), drop,
                                    filler)
            if hit is None and shared[i] >= 0:
                hit = (f"{n}-gram", int(shared[i]), " ".join(where[i]))
            if hit:
                kind, j, why = hit
                hits.append({"row": start + i, "kind": kind, "matched": j,
                             "similarity": similarity(messages, protected[j]), "evidence": why})
    return hits


def _key_index(protected: list[list[dict]], filler: frozenset) -> dict[str, dict[bytes, int]]:
    index: dict[str, dict[bytes, int]] = {"exact": {}, "near": {}, "prompt": {}, "bare": {}}
    for j, messages in enumerate(protected):
        keys = row_keys(messages, filler)
        index["exact"].setdefault(keys.exact, j)
        index["near"].setdefault(keys.sequence, j)
        index["near"].setdefault(keys.clauses, j)
        if len(messages) > 1:
            index["prompt"].setdefault(keys.prompt, j)
            if not keys.has_system:
                index["bare"].setdefault(keys.bare_prompt, j)
    return index


def _key_hit(keys, index) -> tuple[str, int, str] | None:
    if keys.exact in index["exact"]:
        return "exact", index["exact"][keys.exact], "the same words"
    for key in (keys.sequence, keys.clauses):
        if key in index["near"]:
            return "near", index["near"][key], "the same words but filler or sentence order"
    for key, table in ((keys.prompt, "prompt"), (keys.bare_prompt, "bare")):
        if key in index[table]:
            return "prompt", index[table][key], "the same prompt, another answer"
    return None


def _inserted_hit(messages: list[dict], protected: list[list[dict]], same_skeleton, drop: frozenset,
                  filler: frozenset) -> tuple[str, int, str] | None:
    for j in same_skeleton[:COMPARED]:
        differ = inserted_words(messages, protected[j], drop, filler)
        if differ:
            return "inserted", j, "the same words but inserted " + " ".join(differ[:8])
    return None


def _row_lines(messages: list[dict]) -> list[list[str]]:
    return list(chain.from_iterable(turn_lines(m) for m in messages))


def _unique_words(lines: list[list[list[str]]]) -> tuple[np.ndarray, np.ndarray]:
    """(row, word hash) once per word a row holds."""
    flat = [list(chain.from_iterable(row)) for row in lines]
    hashed = word_hashes(list(chain.from_iterable(flat)))
    rows = np.repeat(np.arange(len(flat)), np.fromiter(map(len, flat), dtype=np.int64, count=len(flat)))
    order = np.lexsort((hashed, rows))
    rows, hashed = rows[order], hashed[order]
    new = np.ones(rows.size, dtype=bool)
    new[1:] = (rows[1:] != rows[:-1]) | (hashed[1:] != hashed[:-1])
    return rows[new], hashed[new]


def _document_frequency(protected_lines: list, train: list[list[dict]],
                        protected: list[list[dict]]) -> tuple[dict, Counter]:
    """How many corpus rows (protected and training) hold each token of the protected rows (sorted hashes, counts),
    and each candidate word of any row (for `canon.droppable`)."""
    _, words = _unique_words(protected_lines)
    vocabulary, counts = np.unique(words, return_counts=True)
    candidates: Counter = Counter()
    for messages in protected:
        candidates.update(candidate_words(messages))
    for start in range(0, len(train), _BATCH):
        sets = [token_sets(m) for m in train[start:start + _BATCH]]
        for _, words_ in sets:
            candidates.update(words_)
        held = word_hashes(list(chain.from_iterable(tokens_ for tokens_, _ in sets)))  # each row's once
        if held.size and vocabulary.size:
            pos = np.minimum(vocabulary.searchsorted(held), vocabulary.size - 1)
            np.add.at(counts, pos[vocabulary[pos] == held], 1)
    return {"words": vocabulary, "counts": counts}, candidates


def _evidence_grams(lines: list[list[list[str]]], n: int, frequency: dict,
                    rare_df: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinctive n-grams of the protected rows (holding `MIN_RARE` words at most `rare_df` rows hold), and
    for each the first protected row holding it."""
    segments = list(chain.from_iterable(lines))
    line_row = np.repeat(np.arange(len(lines)), np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)))
    h, owner, position, hashed = grams(segments, n, whole_if_short=False)
    if not h.size:
        return h, owner
    vocabulary, counts = frequency["words"], frequency["counts"]
    rare = counts[vocabulary.searchsorted(hashed)] <= rare_df
    running = np.concatenate([[0], np.cumsum(rare)])
    distinctive = running[position + n] - running[position] >= MIN_RARE
    h, row = h[distinctive], line_row[owner[distinctive]]
    order = np.lexsort((row, h))
    h, row = h[order], row[order]
    first = np.ones(h.size, dtype=bool)
    first[1:] = h[1:] != h[:-1]
    return h[first], row[first]


def _first_owner(batch: list[list[dict]], n: int, evidence: np.ndarray,
                 owners: np.ndarray) -> tuple[np.ndarray, dict[int, list[str]]]:
    """For each row of the batch, the lowest protected row among those owning its distinctive n-grams (-1: none),
    and for the rows with one, the words of one such n-gram."""
    lines = [_row_lines(m) for m in batch]
    segments = list(chain.from_iterable(lines))
    line_row = np.repeat(np.arange(len(lines)), np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)))
    result = np.full(len(batch), np.iinfo(np.int64).max)
    where: dict[int, list[str]] = {}
    h, owner, position, _ = grams(segments, n, whole_if_short=False)
    if evidence.size and h.size:
        pos = np.minimum(evidence.searchsorted(h), evidence.size - 1)
        hit = evidence[pos] == h
        rows, matched = line_row[owner[hit]], owners[pos[hit]]
        np.minimum.at(result, rows, matched)
        flat = list(chain.from_iterable(segments))
        chosen = matched == result[rows]  # an n-gram of the protected row that is reported
        for r, p in zip(rows[chosen].tolist(), position[hit][chosen].tolist()):
            where.setdefault(r, flat[p:p + n])
    result[result == np.iinfo(np.int64).max] = -1
    return result, where


def suite_rows(items: list[tuple[str, str, str]]) -> list[tuple[str, list[dict]]]:
    """General-suite items (name, question text, answer) as (name, a row without a system turn)."""
    return [(name, [{"role": "user", "content": text}, {"role": "assistant", "content": answer}])
            for name, text, answer in items]

