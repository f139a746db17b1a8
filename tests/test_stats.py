"""The judge's agreement statistics against reference implementations (scipy, scikit-learn), to 1e-9, on constructed
tables and edge cases, one table at a time and stacked as the bootstrap computes them; and the one bootstrap module,
`tunestack.stats`: seeded, paired, its intervals around the point estimate, metrics with parts, and pure."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import cohen_kappa_score

from tunestack.evaluate.metrics import aggregate
from tunestack.judge.calibrate import METRICS, STATISTICS, agreement, contingency, statistic
from tunestack.stats import (Draws, Noise, ci95, drawn_means, paired_difference, percentile_interval,
                             resampled_tables)

TOLERANCE = 1e-9


def reference(name: str, human, judge) -> float:
    """The statistic as scipy / scikit-learn compute it (NaN where they call it undefined)."""
    human, judge = np.asarray(human, dtype=float), np.asarray(judge, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy and sklearn warn and return NaN
        if name == "spearman":
            return float(scipy_stats.spearmanr(human, judge).statistic)
        if name == "kendall":
            return float(scipy_stats.kendalltau(human, judge, variant="b").statistic)
        if name == "pearson":
            if np.ptp(human) == 0 or np.ptp(judge) == 0:
                return float("nan")  # scipy >= 1.9 returns NaN too, but warns on a two-item sample
            return float(scipy_stats.pearsonr(human, judge).statistic)
        # Quadratic-weighted kappa weighted by score values: scikit-learn weights by label positions, so the labels
        # are the positions on a half-point grid spanning both raters (unseen scores included: they add nothing to
        # either sum), which makes a position proportional to the score and the weights proportional to
        # (score_i - score_j)^2; the constant cancels in the ratio.
        h, j = np.rint(human * 2).astype(int), np.rint(judge * 2).astype(int)
        labels = list(range(min(h.min(), j.min()), max(h.max(), j.max()) + 1))
        return float(cohen_kappa_score(h, j, weights="quadratic", labels=labels))


def planted(n: int, p: float, seed: int, scores=(1, 2, 3, 4, 5)) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    human = rng.choice(scores, n)
    judge = np.where(rng.random(n) < p, human, rng.choice(scores, n))
    return human.tolist(), judge.tolist()


CASES = {
    "perfect agreement": ([1, 2, 3, 4, 5, 3, 2, 4], [1, 2, 3, 4, 5, 3, 2, 4]),
    "perfectly reversed": ([1, 2, 3, 4, 5] * 3, [5, 4, 3, 2, 1] * 3),
    # An independence table (every cell count = row total x column total / n): all four are exactly zero.
    "chance agreement": ([1, 1, 1, 2, 2, 2, 3, 3, 3] * 2, [1, 2, 3] * 6),
    "worked by hand": ([1, 1, 2, 2], [1, 2, 2, 2]),
    "two items": ([1, 2], [2, 3]),
    "heavy ties on three scores": planted(40, 0.3, seed=1, scores=(1, 2, 3)),
    "a score nobody gave (1, 2, 5)": planted(50, 0.5, seed=2, scores=(1, 2, 5)),
    "half points": planted(60, 0.6, seed=3, scores=(1, 1.5, 2, 3.5, 4, 5)),
    "skewed marginals": ([5] * 30 + [4] * 6 + [1] * 2, [5] * 26 + [4] * 8 + [3] * 2 + [1, 2]),
    "systematic offset": ([1, 2, 3, 4] * 10, [2, 3, 4, 5] * 10),
    "planted judge, 300 items": planted(300, 0.6, seed=4),
    "a pure noise judge": planted(300, 0.0, seed=5),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", METRICS)
def test_each_statistic_equals_the_reference_implementation(name, case):
    human, judge = CASES[case]
    ours, theirs = statistic(name, human, judge), reference(name, human, judge)
    assert not np.isnan(theirs), "every constructed case is defined"
    assert ours == pytest.approx(theirs, abs=TOLERANCE, rel=0)


@pytest.mark.parametrize("name", METRICS)
def test_the_edge_cases_land_where_they_should(name):
    assert statistic(name, *CASES["perfect agreement"]) == pytest.approx(1.0, abs=TOLERANCE)
    assert statistic(name, *CASES["chance agreement"]) == pytest.approx(0.0, abs=TOLERANCE)
    assert statistic(name, *CASES["perfectly reversed"]) == pytest.approx(-1.0, abs=TOLERANCE)


def test_kappa_weights_by_score_values_not_by_position():
    """With score 3 and 4 never given, 1-2-5 are 1, 1 and 3 apart: the reference on the 1-5 grid agrees with it, and
    the reference on the positions of the scores seen (0, 1, 2) does not."""
    human, judge = CASES["a score nobody gave (1, 2, 5)"]
    positions = cohen_kappa_score(human, judge, weights="quadratic")  # labels 1, 2, 5 at positions 0, 1, 2
    assert statistic("kappa", human, judge) == pytest.approx(reference("kappa", human, judge), abs=TOLERANCE)
    assert abs(statistic("kappa", human, judge) - positions) > 1e-3


@pytest.mark.parametrize("human,judge", [
    ([1, 2, 3, 4, 5, 3], [4] * 6),  # a constant judge
    ([3] * 5, [1, 2, 3, 4, 5]),  # a constant human
    ([2] * 4, [2] * 4),  # both constant
])
def test_undefined_where_the_reference_is_undefined(human, judge):
    for name in ("spearman", "kendall", "pearson"):
        assert np.isnan(statistic(name, human, judge)) and np.isnan(reference(name, human, judge)), name
    ours, theirs = statistic("kappa", human, judge), reference("kappa", human, judge)
    assert ours == pytest.approx(theirs, abs=TOLERANCE, nan_ok=True)  # 0 with one constant rater, NaN with both


@pytest.mark.parametrize("name", METRICS)
def test_stacked_tables_as_the_bootstrap_computes_them_equal_the_reference(name):
    """The bootstrap evaluates every statistic on a stack of resampled tables at once: each equals the reference
    on the items that table counts."""
    values, table = contingency(*CASES["planted judge, 300 items"])
    tables = resampled_tables(table, 25, seed=9)
    ours = STATISTICS[name](tables, values)
    for drawn, value in zip(tables, ours):
        rows, cols = np.nonzero(drawn)
        counts = drawn[rows, cols]
        human, judge = np.repeat(values[rows], counts), np.repeat(values[cols], counts)
        assert value == pytest.approx(reference(name, human, judge), abs=TOLERANCE, rel=0)


# ---------------------------------------------------------------------------------------------------------------
# The bootstrap module


def test_resampled_tables_are_seeded_and_keep_the_item_count():
    _, table = contingency(*CASES["planted judge, 300 items"])
    first, again, other = (resampled_tables(table, 200, seed) for seed in (3, 3, 4))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.shape == (200, *table.shape) and (first.sum(axis=(1, 2)) == table.sum()).all()
    assert not first[:, table == 0].any()  # an empty cell stays empty: items are drawn from those seen
    assert np.allclose(first.mean(axis=0) / table.sum(), table / table.sum(), atol=0.01)


def test_agreement_intervals_are_seeded_and_hold_the_point_estimate():
    human, judge = CASES["planted judge, 300 items"]
    first, again = agreement(human, judge, seed=1), agreement(human, judge, seed=1)
    assert first == again and agreement(human, judge, seed=2)["metrics"] != first["metrics"]
    for name, entry in first["metrics"].items():
        low, high = entry["ci95"]
        assert low < entry["value"] < high, name


def test_paired_difference_is_the_plain_paired_bootstrap_seeded():
    """The same numbers as the bootstrap written out (the seeds and draws every interval so far was made with)."""
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 2, 80).tolist(), rng.integers(0, 2, 80).tolist()
    index = np.random.default_rng(0).integers(0, 80, size=(2000, 80))
    diff = np.asarray(x, float)[index].mean(axis=1) - np.asarray(y, float)[index].mean(axis=1)
    assert paired_difference(x, y) == [round(float(v), 4) for v in np.percentile(diff, [2.5, 97.5])]
    assert paired_difference(x, y) == paired_difference(x, y, seed=0)
    scores = rng.random(80).tolist()  # continuous: another seed moves the percentiles (0/1 items sit on a grid)
    assert paired_difference(scores, y, seed=1) != paired_difference(scores, y)
    low, high = paired_difference(x, y)
    assert low < np.mean(x) - np.mean(y) < high
    assert paired_difference(x, y[:-1]) is None and paired_difference([], []) is None


def test_a_metric_with_parts_is_resampled_as_it_is_aggregated():
    """Each part's mean over the drawn items, then the mean of the parts (a part missing from an item is not a 0):
    on the identity draw it is the evaluate stage's value, and on every draw it is that value of the drawn items."""
    rng = np.random.default_rng(7)
    items = [{"a": int(rng.integers(0, 2)), "b": float(rng.random()), **({"c": 1} if i % 3 else {})}
             for i in range(30)]
    assert drawn_means(items, np.arange(30)[None, :])[0] == pytest.approx(aggregate("f", items)[0], abs=1e-12)
    index = np.random.default_rng(0).integers(0, 30, size=(50, 30))
    by_draw = drawn_means(items, index)
    for drawn, value in zip(index, by_draw):
        assert value == pytest.approx(aggregate("f", [items[i] for i in drawn])[0], abs=1e-12)
    worse = [{**item, "a": 0} for item in items]
    low, high = paired_difference(items, worse)
    point = aggregate("f", items)[0] - aggregate("f", worse)[0]
    assert 0 < low <= point <= high


def test_draws_are_paired_and_seeded():
    rows = [{"per_example": {"metrics": {"m": [1, 0, 1, 1]}, "format": [1, 1, 0, 1], "probes": [1, 0, 1],
                             "quartz": [0, 1]}}]
    first, again = Draws(rows, Noise(draws=100, seed=3)), Draws(rows, Noise(draws=100, seed=3))
    assert first.index.keys() == {"eval", "probes", "quartz"}
    assert all(np.array_equal(first.index[k], again.index[k]) for k in first.index)
    assert first.index["eval"].shape == (100, 4) and first.index["probes"].shape == (100, 3)
    assert first.mean([1, 0, 1], "eval") is None  # sizes that do not match the draws'
    assert np.array_equal(first.mean([1, 0, 1, 1], "eval"), drawn_means([1, 0, 1, 1], first.index["eval"]))


def test_intervals_helpers():
    assert ci95(np.full(50, 0.25)) == [0.25, 0.25]
    samples = np.linspace(0, 1, 1001)
    assert percentile_interval(samples) == pytest.approx((0.025, 0.975))
    assert percentile_interval(np.array([np.nan] * 3 + [1.0, 2.0])) is None  # most resamples degenerate


def test_the_stats_module_imports_only_numpy_and_the_standard_library():
    code = ("import sys\nbefore = set(sys.modules)\nimport tunestack.stats\n"
            "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
            "ours = {m for m in set(sys.modules) - before if m.startswith('tunestack')}\n"
            "assert ours <= {'tunestack', 'tunestack.stats', 'tunestack.errors'}, ours\n"
            "third = {m for m in new if m not in sys.stdlib_module_names and not m.startswith('_')}\n"
            "assert third <= {'numpy', 'tunestack'}, third\n")
    subprocess.run([sys.executable, "-c", code], check=True)
