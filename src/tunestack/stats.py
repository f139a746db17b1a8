"""Bootstrap intervals: the one resampling code every stage's intervals come from. Pure: numpy, no torch, no disk.

Two kinds of resampling live here.

**Paired resampling of per-item scores** (selection's noise intervals, quantize's retention intervals, the served
endpoint against offline evaluation). Every model is scored on the same eval rows, probes and quartz questions, so a
difference between two models is measured on the same items. One resample draws, with replacement, as many eval
rows, probes and quartz questions as there are; every model's figure is recomputed on that draw (for selection its
weighted score: task metrics, format compliance, and general retention against the base model's score on the same
draw, capped as the selector caps it), and the difference between two models is taken draw by draw. The 2.5th and
97.5th percentiles of 2,000 draws are its 95% interval.

Per-example scores come from the evaluate stage (`per_example` in each row):

    {"metrics": {key: [score per eval row] or [{part: score}] for a metric with parts},
     "format": [0/1 per eval row], "probes": [0/1 per probe], "quartz": [0/1 per question]}

A metric with parts (per-field accuracy) is, on every draw, the mean of each part's mean over the drawn rows, as the
evaluate stage aggregates it. An objective with no per-example scores (a judge score, a row evaluated before they
were kept) counts at its point value in every draw: it adds no width, and `resampled` says which ones were.

**Resampling a contingency table** (the judge's agreement with human scores): drawing n items with replacement from
a table of counts is drawing the table from a multinomial over its cells with the observed shares, O(K^2) a
resample (`resampled_tables`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RETENTION_WEIGHTS = {"choices": 0.35, "probes": 0.35, "quartz": 0.35, "instructions": 0.3, "lm_eval": 0.3}
"""Each retention suite's default weight; a suite that was not run (lm-eval without tasks) does not count."""
RETENTION_SUITES = tuple(RETENTION_WEIGHTS)
"""The retention suites whose per-item scores an evaluated row keeps under `per_example`."""


INFORMATIVE_Z = 1.645
"""A choice set counts when the base model's chance-adjusted score is above 0 at one-sided 95%."""


def informative(base: dict) -> np.ndarray | None:
    """Which choice questions count in retention (1) and which not (0), from the base model's row: a set whose
    chance-adjusted score the base model does not lift above 0 (its one-sided 95% lower bound) holds nothing to
    retain, and its questions would only add noise. None where the row kept no per-question choice scores.

    >>> row = {"choices": {"tasks": ["a"] * 4 + ["b"] * 4}, "per_example": {"choices": [1, 1, 1, 1, 1, -1, 1, -1]}}
    >>> informative(row).tolist()
    [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    """
    scores = (base.get("per_example") or {}).get("choices")
    tasks = (base.get("choices") or {}).get("tasks")
    if not scores or not tasks or len(scores) != len(tasks):
        return None
    values, names = np.asarray(scores, dtype=float), np.asarray(tasks)
    mask = np.zeros(len(values))
    for task in set(tasks):
        mine = values[names == task]
        spread = mine.std(ddof=1) if len(mine) > 1 else 0.0
        if mine.mean() - INFORMATIVE_Z * spread / np.sqrt(len(mine)) > 0 or (spread == 0 and mine.mean() > 0):
            mask[names == task] = 1.0
    return mask


def suite_pair(row: dict, base: dict, suite: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A suite's per-item scores of `row` and of the base model, paired item by item; the choice questions of a set
    the base model answers at chance count 0 on both sides (`informative`). None where they do not pair up."""
    mine, theirs = (row.get("per_example") or {}).get(suite), (base.get("per_example") or {}).get(suite)
    if not mine or not theirs or len(mine) != len(theirs):
        return None
    x, y = np.asarray(mine, dtype=float), np.asarray(theirs, dtype=float)
    if suite == "choices":
        mask = informative(base)
        if mask is None or len(mask) != len(x):
            return None
        x, y = x * mask, y * mask
    return x, y


@dataclass(frozen=True)
class Noise:
    weights: dict[str, float] = field(default_factory=lambda: dict(RETENTION_WEIGHTS))
    """Weight of each retention suite in general retention, as the evaluate stage combined them."""
    draws: int = 2000
    seed: int = 0


def has_examples(row: dict) -> bool:
    """Whether an evaluated row kept its per-example task scores."""
    return bool((row.get("per_example") or {}).get("metrics"))


def ci95(samples: np.ndarray) -> list[float]:
    """The 2.5th and 97.5th percentiles of the samples, rounded to 4 places.

    >>> ci95(np.arange(201) / 200)
    [0.025, 0.975]
    """
    return [round(float(v), 4) for v in np.percentile(samples, [2.5, 97.5])]


def drawn_means(values: list, index: np.ndarray) -> np.ndarray:
    """The mean of per-item scores on every draw (`index`: draws x items, the items drawn); for a metric with parts
    (each item a `{part: score}`), each part's mean over the drawn items, then the mean of the parts.

    >>> index = np.array([[0, 1], [0, 0]])
    >>> drawn_means([1, 0], index).tolist()
    [0.5, 1.0]
    >>> drawn_means([{"a": 1, "b": 1}, {"a": 0}], index).tolist()  # a part missing from an item is not a 0
    [0.75, 1.0]
    """
    if values and isinstance(values[0], dict):  # a metric with parts: each part's mean, then their mean
        parts = sorted({p for v in values for p in v})
        table = np.array([[float(v.get(p, np.nan)) for p in parts] for v in values])  # rows x parts
        drawn = table[index]  # draws x rows x parts
        with np.errstate(invalid="ignore"):
            return np.nanmean(np.nanmean(drawn, axis=1), axis=1)
    return np.asarray(values, dtype=float)[index].mean(axis=1)


def draw_index(items: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """`draws` resamples of `items` item positions, with replacement (draws x items)."""
    return rng.integers(0, items, size=(draws, items))


def paired_difference(x: list, y: list, draws: int = 2000, seed: int = 0) -> list[float] | None:
    """95% interval of mean(x) - mean(y), the same items drawn for both on every draw (x and y: per-item scores of
    two models on the same items, or `{part: score}` per item for a metric with parts); None when either is empty
    or they do not pair up.

    >>> paired_difference([1, 1, 0, 1], [1, 1, 0, 1])
    [0.0, 0.0]
    >>> paired_difference([{"a": 1, "b": 1}] * 3, [{"a": 1, "b": 0}] * 3)
    [0.5, 0.5]
    >>> paired_difference([1, 0], [1]) is None
    True
    """
    if not x or not y or len(x) != len(y):
        return None
    index = draw_index(len(x), draws, np.random.default_rng(seed))
    return ci95(drawn_means(x, index) - drawn_means(y, index))


class Draws:
    """One set of bootstrap indices, shared by every model so that the differences are paired."""

    def __init__(self, rows: list[dict], noise: Noise):
        sizes = {}
        for row in rows:
            examples = row.get("per_example") or {}
            if examples.get("format"):
                sizes.setdefault("eval", len(examples["format"]))
            for values in (examples.get("metrics") or {}).values():
                sizes.setdefault("eval", len(values))
            for suite in RETENTION_SUITES:
                if examples.get(suite):
                    sizes.setdefault(suite, len(examples[suite]))
        rng = np.random.default_rng(noise.seed)
        self.index = {suite: draw_index(n, noise.draws, rng) for suite, n in sizes.items() if n}
        self.noise = noise

    def mean(self, values: list, suite: str) -> np.ndarray | None:
        """The mean of per-item scores on every draw (None when the sizes do not match the draws')."""
        index = self.index.get(suite)
        if index is None or len(values) != index.shape[1]:
            return None
        return drawn_means(values, index)

    def retention(self, row: dict, base: dict, cap: float | None) -> np.ndarray | None:
        """General retention on every draw: each suite's score as a share of the base model's on the same draw."""
        parts, weights = [], []
        for suite in RETENTION_SUITES:
            weight = self.noise.weights.get(suite, 0.0)
            pair = suite_pair(row, base, suite) if weight > 0 else None
            if pair is None or not pair[1].any():
                continue
            score, reference = self.mean(pair[0].tolist(), suite), self.mean(pair[1].tolist(), suite)
            if score is None or reference is None:
                return None
            safe = np.where(reference > 0, reference, 1.0)
            parts.append(np.where(reference > 0, score / safe, 1.0))
            weights.append(weight)
        if not parts:
            return None
        combined = sum(p * w for p, w in zip(parts, weights)) / sum(weights)
        return np.minimum(combined, cap) if cap is not None else combined

    def scores(self, row: dict, base: dict, weights: dict[str, float], objectives) -> tuple[np.ndarray, list[str]]:
        """The weighted score on every draw, and the objectives that were resampled. `objectives`: selection's
        (each with `key`, `cap`, `higher_is_better` and `oriented(row)`, its point value, oriented)."""
        examples = row.get("per_example") or {}
        total = sum(weights.values())
        out = np.zeros(self.noise.draws)
        resampled = []
        for o in objectives:
            weight = weights.get(o.key, 0.0)
            if not weight:
                continue
            values = None
            if o.key == "format_compliance" and examples.get("format"):
                values = self.mean(examples["format"], "eval")
            elif o.key == "general_retention":
                values = self.retention(row, base, o.cap)
            elif o.key in (examples.get("metrics") or {}):
                values = self.mean(examples["metrics"][o.key], "eval")
                if values is not None and o.cap is not None:
                    values = np.minimum(values, o.cap)
            if values is None:
                values = np.full(self.noise.draws, o.oriented(row))
            else:
                values = values if o.higher_is_better else -values
                resampled.append(o.key)
            out += weight * values / total
        return out, resampled


def paired_intervals(leader: dict, others: list[dict], base: dict, weights: dict[str, float], objectives,
                     noise: Noise) -> dict[str, dict]:
    """For each of `others`: the 95% interval of (leader's weighted score - its own), paired over the same draws;
    and which objectives were resampled."""
    draws = Draws([leader, base, *others], noise)
    lead, resampled = draws.scores(leader, base, weights, objectives)
    out = {}
    for other in others:
        theirs, _ = draws.scores(other, base, weights, objectives)
        low, high = ci95(lead - theirs)
        out[other["name"]] = {"low": low, "high": high, "resampled": resampled}
    return out


def resampled_tables(table: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """`resamples` tables of counts drawn like resampling the table's items with replacement (seeded): a multinomial
    over the cells with the observed shares (resamples x the table's shape).

    >>> resampled_tables(np.array([[3, 0], [0, 1]]), 5, 0).sum(axis=(1, 2)).tolist()
    [4, 4, 4, 4, 4]
    """
    n = int(table.sum())
    draws = np.random.default_rng(seed).multinomial(n, table.ravel() / n, size=resamples)
    return draws.reshape(resamples, *table.shape)


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float] | None:
    """The central `confidence` share of the finite samples; None when most resamples were degenerate.

    >>> percentile_interval(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 0.5)
    (1.0, 3.0)
    >>> percentile_interval(np.array([np.nan, np.nan, 1.0])) is None
    True
    """
    finite = samples[np.isfinite(samples)]
    if len(finite) < len(samples) / 2:
        return None
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return float(low), float(high)
