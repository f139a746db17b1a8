"""How much of a difference between two checkpoints is noise: a paired bootstrap over the eval examples.

Every model is scored on the same eval rows, probes and quartz questions, so a difference between two models is
measured on the same items. One resample draws, with replacement, as many eval rows, probes and quartz questions as
there are; every model's weighted score is recomputed on that draw (task metrics, format compliance, and general
retention against the base model's score on the same draw, capped as the selector caps it), and the difference
between two models is taken draw by draw. The 2.5th and 97.5th percentiles of 2,000 draws are its 95% interval.

Per-example scores come from the evaluate stage (`per_example` in each row):

    {"metrics": {key: [score per eval row] or [{part: score}] for a metric with parts},
     "format": [0/1 per eval row], "probes": [0/1 per probe], "quartz": [0/1 per question]}

An objective with no per-example scores (a judge score, a row evaluated before they were kept) counts at its point
value in every draw: it adds no width, and `resampled` says which ones were.

Pure: numpy, no torch, no disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Noise:
    probe_weight: float = 0.5
    """Weight of the generative probes in general retention (the rest is quartz), as the evaluate stage combined
    them."""
    draws: int = 2000
    seed: int = 0


def has_examples(row: dict) -> bool:
    return bool((row.get("per_example") or {}).get("metrics"))


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
            for suite in ("probes", "quartz"):
                if examples.get(suite):
                    sizes.setdefault(suite, len(examples[suite]))
        rng = np.random.default_rng(noise.seed)
        self.index = {suite: rng.integers(0, n, size=(noise.draws, n)) for suite, n in sizes.items() if n}
        self.noise = noise

    def mean(self, values: list, suite: str) -> np.ndarray | None:
        """The mean of per-item scores on every draw (None when the sizes do not match the draws')."""
        index = self.index.get(suite)
        if index is None or len(values) != index.shape[1]:
            return None
        if values and isinstance(values[0], dict):  # a metric with parts: each part's mean, then their mean
            parts = sorted({p for v in values for p in v})
            table = np.array([[float(v.get(p, np.nan)) for p in parts] for v in values])  # rows x parts
            drawn = table[index]  # draws x rows x parts
            with np.errstate(invalid="ignore"):
                return np.nanmean(np.nanmean(drawn, axis=1), axis=1)
        return np.asarray(values, dtype=float)[index].mean(axis=1)

    def retention(self, row: dict, base: dict, cap: float | None) -> np.ndarray | None:
        """General retention on every draw: each suite's score as a share of the base model's on the same draw."""
        mine, theirs = row.get("per_example") or {}, base.get("per_example") or {}
        parts, weights = [], []
        for suite, weight in (("probes", self.noise.probe_weight), ("quartz", 1 - self.noise.probe_weight)):
            if not mine.get(suite) or not theirs.get(suite) or weight <= 0:
                continue
            score, reference = self.mean(mine[suite], suite), self.mean(theirs[suite], suite)
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
        """The weighted score on every draw, and the objectives that were resampled."""
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
        low, high = np.percentile(lead - theirs, [2.5, 97.5])
        out[other["name"]] = {"low": round(float(low), 4), "high": round(float(high), 4),
                              "resampled": resampled}
    return out
