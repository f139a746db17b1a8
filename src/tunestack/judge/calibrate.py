"""How far an LLM judge agrees with human scores: Spearman, Kendall tau-b, Pearson and quadratic-weighted Cohen's
kappa, each with a seeded percentile-bootstrap 95% interval (`tunestack.stats`). Pure: numpy only, no disk.

Scores live on a small scale (1-5), so every statistic here is a function of the K x K table counting how many items
got human score `i` and judge score `j`; ties are simply cells off the diagonal. Resampling the n items with
replacement is the same as drawing that table from a multinomial over its cells with the observed shares, so a
bootstrap resample costs O(K^2) instead of O(n) (and O(n^2) for Kendall): 1,000 resamples take milliseconds.

The population value of each statistic is what the interval is about; a judge counts only when `agreement_ok` says
the chosen statistic clears a threshold (by default its interval's lower bound, so a lucky small sample does not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tunestack.stats import percentile_interval, resampled_tables

METRICS = ("spearman", "kendall", "pearson", "kappa")


def contingency(human: Sequence[float], judge: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The score values seen (sorted, both raters together) and the table of counts, human on rows.

    >>> values, table = contingency([1, 2, 2], [2, 2, 3])
    >>> values.tolist(), table.tolist()
    ([1.0, 2.0, 3.0], [[0, 1, 0], [0, 1, 1], [0, 0, 0]])
    """
    if len(human) != len(judge):
        raise ValueError(f"{len(human)} human scores but {len(judge)} judge scores")
    values = np.unique(np.asarray([*human, *judge], dtype=float))
    rows = np.searchsorted(values, np.asarray(human, dtype=float))
    cols = np.searchsorted(values, np.asarray(judge, dtype=float))
    table = np.zeros((len(values), len(values)), dtype=np.int64)
    np.add.at(table, (rows, cols), 1)
    return values, table


def _correlation(table: np.ndarray, row_values: np.ndarray, col_values: np.ndarray) -> np.ndarray:
    """Pearson correlation of a (stack of) table(s) whose rows carry `row_values` and columns `col_values`."""
    t = table.astype(float)
    n = t.sum(axis=(-2, -1))
    rows, cols = t.sum(-1), t.sum(-2)
    row_values = np.broadcast_to(row_values, rows.shape)
    col_values = np.broadcast_to(col_values, cols.shape)
    dx = row_values - ((rows * row_values).sum(-1) / n)[..., None]
    dy = col_values - ((cols * col_values).sum(-1) / n)[..., None]
    cov = np.einsum("...i,...ij,...j->...", dx, t, dy)
    var = (rows * dx**2).sum(-1) * (cols * dy**2).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, cov / np.sqrt(np.where(var > 0, var, 1.0)), np.nan)


def _midranks(counts: np.ndarray) -> np.ndarray:
    """The average rank (1-based) of the items in each category, given the category counts in order."""
    before = np.cumsum(counts, axis=-1) - counts
    return before + (counts + 1) / 2


def pearson_table(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    return _correlation(table, values, values)


def spearman_table(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Pearson correlation of the midranks (the tie-corrected Spearman rho)."""
    t = table.astype(float)
    return _correlation(table, _midranks(t.sum(-1)), _midranks(t.sum(-2)))


def kendall_table(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Kendall's tau-b: (concordant - discordant) / sqrt((pairs - ties in x) * (pairs - ties in y))."""
    t = table.astype(float)
    # at_least[i, j]: items in cells (k >= i, l >= j); shifted by one on both axes it counts the cells strictly
    # below and to the right of (i, j), which are the items concordant with cell (i, j).
    at_least = t[..., ::-1, ::-1].cumsum(-1).cumsum(-2)[..., ::-1, ::-1]
    below_right = np.zeros_like(t)
    below_right[..., :-1, :-1] = at_least[..., 1:, 1:]
    # below_left[i, j]: items in cells (k > i, l < j), discordant with cell (i, j).
    down_cum = t[..., ::-1, :].cumsum(-2)[..., ::-1, :].cumsum(-1)  # cells (k >= i, l <= j)
    below_left = np.zeros_like(t)
    below_left[..., :-1, 1:] = down_cum[..., 1:, :-1]
    concordant = (t * below_right).sum(axis=(-2, -1))
    discordant = (t * below_left).sum(axis=(-2, -1))
    n = t.sum(axis=(-2, -1))
    pairs = n * (n - 1) / 2
    ties_x = (t.sum(-1) * (t.sum(-1) - 1) / 2).sum(-1)
    ties_y = (t.sum(-2) * (t.sum(-2) - 1) / 2).sum(-1)
    denom = (pairs - ties_x) * (pairs - ties_y)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (concordant - discordant) / np.sqrt(np.where(denom > 0, denom, 1.0)), np.nan)


def kappa_table(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Quadratic-weighted Cohen's kappa: 1 - sum(w * observed) / sum(w * expected), w = (score_i - score_j)^2.

    The usual weights divide by (K - 1)^2; that constant cancels in the ratio. Weighting by score values rather than
    category positions keeps the 1-5 distances right when a score is missing from the sample.
    """
    t = table.astype(float)
    n = t.sum(axis=(-2, -1))
    expected = t.sum(-1)[..., :, None] * t.sum(-2)[..., None, :] / n[..., None, None]
    weights = (values[:, None] - values[None, :]) ** 2
    observed_w, expected_w = (t * weights).sum(axis=(-2, -1)), (expected * weights).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected_w > 0, 1 - observed_w / np.where(expected_w > 0, expected_w, 1.0), np.nan)


STATISTICS = {"spearman": spearman_table, "kendall": kendall_table, "pearson": pearson_table, "kappa": kappa_table}


def statistic(name: str, human: Sequence[float], judge: Sequence[float]) -> float:
    """One agreement statistic on paired scores; NaN when undefined (a rater gave one score only).

    >>> statistic("spearman", [1, 2, 3, 4, 5], [5, 4, 3, 2, 1])
    -1.0
    >>> round(statistic("kappa", [1, 1, 2, 2], [1, 2, 2, 2]), 6)
    0.5
    """
    values, table = contingency(human, judge)
    return float(STATISTICS[name](table, values))


def agreement(human: Sequence[float], judge: Sequence[float], resamples: int = 1000, seed: int = 0,
              confidence: float = 0.95) -> dict:
    """The four statistics with their bootstrap intervals, as a JSON-ready report.

    >>> report = agreement([1, 2, 3, 4, 5, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 2, 2, 3, 5, 5], resamples=200)
    >>> report["n"], round(report["metrics"]["spearman"]["value"], 3)
    (10, 0.962)
    """
    if len(human) < 2:
        raise ValueError("agreement needs at least two scored items")
    values, table = contingency(human, judge)
    tables = resampled_tables(table, resamples, seed)  # like resampling the items with replacement
    samples = {name: fn(tables, values) for name, fn in STATISTICS.items()}
    metrics = {}
    for name, fn in STATISTICS.items():
        value = float(fn(table, values))
        interval = percentile_interval(samples[name], confidence)
        metrics[name] = {
            "value": None if math.isnan(value) else value,
            "ci95": list(interval) if interval else None,
            "degenerate_resamples": int(np.sum(~np.isfinite(samples[name]))),
        }
    return {"n": len(human), "resamples": resamples, "seed": seed, "confidence": confidence,
            "values": values.tolist(), "table": table.tolist(), "metrics": metrics}


def agreement_ok(report: dict, metric: str, threshold: float, on: str = "lower_bound") -> bool:
    """Whether the judge's agreement clears `threshold`: its interval's lower bound does (`lower_bound`), or its
    point estimate does (`estimate`). Undefined statistics never clear it.

    >>> report = {"metrics": {"spearman": {"value": 0.8, "ci95": [0.55, 0.9]}}}
    >>> agreement_ok(report, "spearman", 0.6), agreement_ok(report, "spearman", 0.6, on="estimate")
    (False, True)
    """
    if metric not in STATISTICS:
        raise ValueError(f"unknown agreement metric {metric!r}; expected one of {', '.join(METRICS)}")
    entry = report["metrics"][metric]
    if on == "estimate":
        value = entry["value"]
    elif on == "lower_bound":
        value = entry["ci95"][0] if entry["ci95"] else None
    else:
        raise ValueError(f"unknown rule {on!r}; expected 'lower_bound' or 'estimate'")
    return value is not None and value >= threshold
