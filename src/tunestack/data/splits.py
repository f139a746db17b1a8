"""Splitting rows into eval, holdout and train: the split sizes, the seeded (optionally stratified) split with its
proportional allocation, and the stratum of a row. Used by `prepare` for its splits and by `assess` for its sample.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

from tunestack.data.formats import Row
from tunestack.errors import DataError


def split_sizes(n: int, eval_size: float, holdout_size: float) -> tuple[int, int]:
    """Counts for eval and holdout; values below 1 are fractions of n.

    >>> split_sizes(1000, 100, 0.05)
    (100, 50)
    """
    def count(size: float) -> int:
        return int(round(size * n)) if size < 1 else int(size)

    n_eval, n_holdout = count(eval_size), count(holdout_size)
    if n_eval + n_holdout >= n:
        raise DataError(
            f"only {n} usable rows, but eval ({n_eval}) and holdout ({n_holdout}) would leave nothing to train on: "
            "add data or lower data.eval_size / data.holdout_size"
        )
    return n_eval, n_holdout


def split_rows(rows: list, n_eval: int, n_holdout: int, seed: int, key=None) -> dict[str, list]:
    """Deterministic eval/holdout/train split; with `key`, each stratum contributes in proportion to its size."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    shuffled = [rows[i] for i in order]
    if key is None:
        return {"eval": shuffled[:n_eval], "holdout": shuffled[n_eval:n_eval + n_holdout],
                "train": shuffled[n_eval + n_holdout:]}
    strata: dict[str, list[int]] = defaultdict(list)
    for pos, row in enumerate(shuffled):
        strata[key(row)].append(pos)
    names = sorted(strata)
    sizes = [len(strata[s]) for s in names]
    n_evals = allocate(sizes, n_eval)
    n_holds = allocate([m - e for m, e in zip(sizes, n_evals)], n_holdout)
    part: dict[int, str] = {}
    for name, e, h in zip(names, n_evals, n_holds):
        for i, pos in enumerate(strata[name]):
            part[pos] = "eval" if i < e else "holdout" if i < e + h else "train"
    return {split: [row for pos, row in enumerate(shuffled) if part[pos] == split]
            for split in ("eval", "holdout", "train")}


def allocate(sizes: list[int], total: int) -> list[int]:
    """`total` spread over groups in proportion to their sizes (largest remainder), never above a group's size.

    >>> allocate([50, 30, 20], 10), allocate([1, 1, 98], 3)
    ([5, 3, 2], [0, 0, 3])
    """
    whole = sum(sizes)
    quotas = [total * s / whole for s in sizes] if whole else [0] * len(sizes)
    counts = [min(int(q), s) for q, s in zip(quotas, sizes)]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - int(quotas[i])), -sizes[i], i))
    while sum(counts) < min(total, whole):
        for i in by_remainder:
            if counts[i] < sizes[i] and sum(counts) < total:
                counts[i] += 1
    return counts


def stratum(field: str):
    """A function giving a row's stratum: a row field, or `answer.<key>` of a JSON answer."""
    def key(row: Row) -> str:
        if field.startswith("answer."):
            try:
                value = json.loads(row.messages[-1]["content"]).get(field.removeprefix("answer."))
            except (json.JSONDecodeError, AttributeError):
                value = None
        else:
            value = row.meta.get(field)
        return "(missing)" if value is None else str(value)
    return key
