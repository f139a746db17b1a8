"""Decisions against a floor with three outcomes, valid when more items are drawn after an inconclusive look. Pure:
numpy, no torch, no disk.

A floor on general retention (select's `min_retention`, the quantize gate) asks whether a model keeps at least a
share `floor` of the base model's score, measured on the same items: retention is the ratio of paired means,
R = mean(tuned) / mean(base). One look gives

- **pass** when the lower confidence bound of R clears `floor - margin` (the margin is the stated indifference
  zone: a model within it of the floor is not failed for noise);
- **fail** when the upper bound is below `floor` (and it did not pass);
- **inconclusive** otherwise: the interval straddles the floor. The caller may then draw more items and look again.

The bounds are Fieller's for a ratio of paired means: r is inside the one-sided bound where mean(t - r b) is not
significantly on one side of 0 with variance (var t - 2 r cov(t, b) + r^2 var b) / n, so the pairing (the same items
for both models) narrows them exactly as much as the two models agree.

**Optional stopping.** Looking again after an inconclusive look and stopping at the first conclusive one would
inflate the error of a fixed-level test. The rule spends alpha across a planned number of looks (`looks`) in equal
shares, Bonferroni's alpha spending: each look tests at alpha / looks, so by the union bound the chance of any false
pass over all the looks is at most alpha, however the looks' sizes were chosen. It is conservative (a look's bound is
wider than a single test's), simple to state, and holds for any number of items added between looks.
tests/test_verdict.py simulates it on planted ratios at the floor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from tunestack.stats import RETENTION_SUITES, suite_pair

OUTCOMES = ("pass", "fail", "inconclusive")


@dataclass(frozen=True)
class Verdict:
    outcome: str
    """`pass`, `fail` or `inconclusive`."""
    retention: float | None
    """mean(tuned) / mean(base) on the items (None where the base model scores 0)."""
    interval: tuple[float, float]
    """The two one-sided bounds of retention at this look's level (each alpha / looks); -inf/inf where unbounded."""
    floor: float
    margin: float
    n: int
    look: int
    looks: int
    alpha: float
    reason: str

    def as_dict(self) -> dict:
        body = asdict(self)
        body["interval"] = [None if not math.isfinite(v) else round(v, 4) for v in self.interval]
        body["retention"] = None if self.retention is None else round(self.retention, 4)
        return body


def ratio_bounds(tuned, base, z: float) -> tuple[float, float]:
    """Fieller's one-sided bounds (each at the normal quantile `z`) of mean(tuned) / mean(base) for paired scores;
    (-inf, inf) where the base mean is not clear of zero at that level.

    >>> lo, hi = ratio_bounds([1, 1, 0, 1] * 50, [1, 1, 0, 1] * 50, 1.96)
    >>> (round(lo, 3), round(hi, 3))
    (1.0, 1.0)
    """
    t, b = np.asarray(tuned, dtype=float), np.asarray(base, dtype=float)
    n = len(t)
    if n < 2:
        return -math.inf, math.inf
    mt, mb = t.mean(), b.mean()
    cov = np.cov(t, b, ddof=1)
    vt, vb, c = cov[0, 0] / n, cov[1, 1] / n, cov[0, 1] / n
    z2 = z * z
    a = mb * mb - z2 * vb
    if a <= 0:
        return -math.inf, math.inf
    half = -2 * (mt * mb - z2 * c)
    const = mt * mt - z2 * vt
    disc = half * half - 4 * a * const
    centre = float(-half / (2 * a))
    if disc <= 0:  # the variance is zero at the estimate: the bounds meet there
        return centre, centre
    root = float(math.sqrt(disc) / (2 * a))
    return centre - root, centre + root


def verdict(tuned, base, floor: float, margin: float = 0.0, alpha: float = 0.05, look: int = 1,
            looks: int = 1) -> Verdict:
    """The decision at look `look` of `looks` planned (see the module docstring); `tuned` and `base` are per-item
    scores (0/1 or in [0, 1]) of the two models on the same items.

    >>> verdict([1] * 400, [1] * 400, floor=0.95).outcome
    'pass'
    >>> verdict([1, 0] * 200, [1] * 400, floor=0.95).outcome
    'fail'
    >>> verdict([1] * 19 + [0], [1] * 20, floor=0.95).outcome
    'inconclusive'
    """
    if len(tuned) != len(base) or not len(tuned):
        raise ValueError("verdict: the two models' scores must pair up, item for item, and not be empty")
    if not 1 <= look <= looks:
        raise ValueError(f"verdict: look {look} of {looks}")
    level = alpha / looks
    z = NormalDist().inv_cdf(1 - level)
    lower, upper = ratio_bounds(tuned, base, z)
    mean_base = float(np.mean(base))
    retention = float(np.mean(tuned)) / mean_base if mean_base > 0 else None
    shown = f"retention {retention:.1%}" if retention is not None else "retention undefined (the base scores 0)"
    bounds = f"bounds {lower:.1%} to {upper:.1%} (each one-sided at {level:.3g}: alpha {alpha:g} over {looks} looks)"
    if lower >= floor - margin:
        outcome = "pass"
        reason = f"{shown}, {bounds}: the lower bound clears the floor {floor:.0%} less the margin {margin:.0%}"
    elif upper < floor:
        outcome = "fail"
        reason = f"{shown}, {bounds}: the upper bound is below the floor {floor:.0%}"
    else:
        outcome = "inconclusive"
        reason = f"{shown}, {bounds}: the interval holds the floor {floor:.0%}; more items would decide"
    return Verdict(outcome, retention, (lower, upper), floor, margin, len(tuned), look, looks, alpha,
                   f"{reason} (n={len(tuned)}, look {look} of {looks})")


def sequential_verdict(tuned, base, sizes: list[int], floor: float, margin: float = 0.0,
                       alpha: float = 0.05) -> Verdict:
    """Look at the first `sizes[0]` items, then more as long as the verdict is inconclusive (the items in the order
    given: shuffle them first), at most `len(sizes)` looks; the last verdict, conclusive or not."""
    if not sizes or sorted(sizes) != list(sizes) or sizes[-1] > len(tuned):
        raise ValueError(f"sequential_verdict: sizes must increase and stay within the {len(tuned)} items: {sizes}")
    for k, n in enumerate(sizes, start=1):
        found = verdict(tuned[:n], base[:n], floor, margin, alpha, look=k, looks=len(sizes))
        if found.outcome != "inconclusive":
            return found
    return found



def pooled(pairs: dict[str, tuple[list, list]], weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Several suites' paired per-item scores as one paired sample whose ratio of means is the weighted average of
    the suites' retentions: each item of suite s counts w_s / (n_s * mean(base_s)), so the base side sums to the
    weights and the tuned side to the sum of w_s * retention_s. A suite the base model scores 0 on, or weighted 0,
    is left out (it has nothing to lose). The weights are treated as fixed, though they hold the base means: an
    approximation as good as the delta method's at these sizes.

    >>> t, b = pooled({"a": ([1, 0, 1, 1], [1, 1, 1, 1]), "b": ([1, 1], [1, 0])}, {"a": 0.5, "b": 0.5})
    >>> round(float(t.mean() / b.mean()), 4)  # (0.75 + 2.0) / 2
    1.375
    """
    tuned, base = [], []
    for suite, (t, b) in pairs.items():
        t, b = np.asarray(t, dtype=float), np.asarray(b, dtype=float)
        weight = weights.get(suite, 0.0)
        if not len(b) or weight <= 0 or b.mean() <= 0:
            continue
        scale = weight / (len(b) * b.mean())
        tuned.append(t * scale)
        base.append(b * scale)
    if not tuned:
        return np.zeros(0), np.zeros(0)
    t, b = np.concatenate(tuned), np.concatenate(base)
    return t * len(t), b * len(b)


def retention_verdicts(row: dict, base: dict, weights: dict[str, float], floor: float, suite_floor: float,
                       margin: float = 0.0, alpha: float = 0.05, look: int = 1, looks: int = 1) -> dict | None:
    """The verdict of general retention against `floor` (all suites pooled with their weights) and of each suite
    against `suite_floor` (a suite's collapse, which the average could hide), at look `look` of `looks` planned;
    None where the rows kept no per-item suite scores that pair up."""
    pairs = {s: pair for s in RETENTION_SUITES if (pair := suite_pair(row, base, s)) is not None}
    t, b = pooled(pairs, weights)
    if not len(t):
        return None
    suites = {s: verdict(x, y, suite_floor, margin, alpha, look, looks).as_dict() for s, (x, y) in pairs.items()
              if np.mean(y) > 0}
    return {"overall": verdict(t, b, floor, margin, alpha, look, looks).as_dict(), "suites": suites}


def collapsed(found: dict | None) -> list[tuple[str, dict]]:
    """The suites whose own verdict failed (a capability lost, whatever the average), from `retention_verdicts`."""
    return [(suite, v) for suite, v in ((found or {}).get("suites") or {}).items() if v["outcome"] == "fail"]
