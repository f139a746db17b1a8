"""The three-outcome floor decision (`tunestack.verdict`) simulated on planted paired scores whose true retention is
known by construction: a base model right on a share `p_base` of the items, a tuned model that keeps a right answer
with probability `keep` and finds a wrong one with probability `find`, so that its expected score is exactly
`ratio * p_base`. The error rates are counted over thousands of simulated evaluations, with looks at growing item
counts as the sequential rule draws them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunestack.verdict import ratio_bounds, sequential_verdict, verdict

P_BASE, FIND = 0.6, 0.1
SIZES = [250, 500, 1000, 2000]
FLOOR, MARGIN, ALPHA = 0.95, 0.02, 0.05


def planted(ratio: float, runs: int, items: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(tuned, base), each runs x items of 0/1, with E[tuned] / E[base] = ratio exactly."""
    keep = (ratio * P_BASE - (1 - P_BASE) * FIND) / P_BASE
    assert 0 <= keep <= 1
    rng = np.random.default_rng(seed)
    base = rng.random((runs, items)) < P_BASE
    u = rng.random((runs, items))
    tuned = np.where(base, u < keep, u < FIND)
    return tuned.astype(float), base.astype(float)


def rate(ratio: float, runs: int, seed: int, rule) -> dict[str, float]:
    tuned, base = planted(ratio, runs, SIZES[-1], seed)
    outcomes = [rule(t, b) for t, b in zip(tuned, base)]
    return {o: outcomes.count(o) / runs for o in ("pass", "fail", "inconclusive")}


def sequential(t, b) -> str:
    return sequential_verdict(t, b, SIZES, FLOOR, MARGIN, ALPHA).outcome


def naive(t, b) -> str:
    """Each look tested at the full alpha, stopping at the first conclusive one: what the spending rule prevents."""
    for n in SIZES:
        found = verdict(t[:n], b[:n], FLOOR, MARGIN, ALPHA).outcome
        if found != "inconclusive":
            return found
    return found


def test_the_false_pass_rate_at_the_floor_stays_under_alpha_with_every_look():
    """True retention exactly at the pass boundary (floor less margin): a pass is a false pass. Over 3,000 simulated
    evaluations, each looking at 250, 500, 1,000 and 2,000 items until conclusive, the sequential rule passes at most
    alpha of them (with three Monte-Carlo standard errors of slack); testing every look at the full alpha does not."""
    runs = 3000
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    spent = rate(FLOOR - MARGIN, runs, seed=1, rule=sequential)
    assert spent["pass"] <= ALPHA + slack, spent
    unspent = rate(FLOOR - MARGIN, runs, seed=1, rule=naive)
    assert unspent["pass"] > spent["pass"], (unspent, spent)
    print(f"false pass at the floor: {spent['pass']:.3f} with alpha spent over {len(SIZES)} looks, "
          f"{unspent['pass']:.3f} testing each look at alpha {ALPHA}")


def test_a_model_below_the_floor_fails_and_one_above_it_passes_given_the_items():
    below = rate(0.88, 500, seed=2, rule=sequential)
    assert below["fail"] >= 0.95 and below["pass"] == 0, below
    above = rate(1.0, 500, seed=3, rule=sequential)
    assert above["pass"] >= 0.95 and above["fail"] == 0, above
    at_floor = rate(FLOOR, 500, seed=4, rule=sequential)  # inside the margin: never failed for noise
    assert at_floor["fail"] <= ALPHA, at_floor


def test_the_bounds_cover_the_true_ratio_at_their_level():
    """One look, two-sided 90% (each bound 5%): the planted ratio lies between the bounds in about 90% of runs."""
    tuned, base = planted(0.9, 2000, 800, seed=5)
    z = 1.6448536269514722
    covered = sum(lo <= 0.9 <= hi for lo, hi in (ratio_bounds(t, b, z) for t, b in zip(tuned, base)))
    assert 0.87 <= covered / 2000 <= 0.93, covered / 2000


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="pair up"):
        verdict([1, 0], [1], 0.95)
    with pytest.raises(ValueError, match="sizes must increase"):
        sequential_verdict([1] * 10, [1] * 10, [8, 4], 0.95)
    assert verdict([0] * 10, [0] * 10, 0.95).retention is None


class TaskFormatEverywhere:
    """A planted fine-tune that answers every prompt with the task's JSON (what over-training on a JSON task does
    at its worst). Its answers are fixed by construction; the suite's checks decide the rest."""

    def generate(self, prompts, max_new_tokens, desc=None):
        from tunestack.evaluate.backends import Generation

        return [Generation(text='{"modality": "CT", "finding": "normal"}', token_ids=[1], ended_with_eos=True)
                for _ in prompts]


def test_a_model_that_answers_instructions_in_the_task_format_is_caught_by_the_floor():
    from tunestack.data.instructions import build_instructions
    from tunestack.evaluate.retention import combine, score_instructions
    from tunestack.select.choose import Floors, choose
    from tunestack.verdict import retention_verdicts

    items = build_instructions(112, seed=0)
    rng = np.random.default_rng(0)
    # the base model keeps 40% of the instructions and 60% of the other suites (as planted here, not measured)
    base = {"instructions": (rng.random(112) < 0.4).astype(int).tolist(),
            "probes": (rng.random(80) < 0.6).astype(int).tolist(), "quartz": (rng.random(200) < 0.6).astype(int)}
    planted = score_instructions(TaskFormatEverywhere(), items)
    assert planted["pass_rate"] == 0 and planted["format_bleed_rate"] == 1
    # facts and science kept exactly: only instruction following is lost
    tuned = {"instructions": planted["passed"], "probes": base["probes"], "quartz": base["quartz"]}
    weights = {"probes": 0.35, "quartz": 0.35, "instructions": 0.3}

    def row(name, kind, per_item):
        scores = {"instructions": {"n": 112, "pass_rate": float(np.mean(per_item["instructions"]))},
                  "probes": {"n": 80, "pass_rate": float(np.mean(per_item["probes"]))},
                  "quartz": {"n": 200, "accuracy": float(np.mean(per_item["quartz"]))}}
        return {"name": name, "kind": kind, "step": 1, "task_accuracy": 0.9, "field_accuracy": 0.9,
                "format_compliance": 1.0,
                "per_example": {k: list(v) for k, v in per_item.items()}, **scores}

    base_row = {**row("base", "base", base), "task_accuracy": 0.0, "field_accuracy": 0.0, "format_compliance": 0.0}
    tuned_row = row("step-1", "checkpoint", tuned)
    for r in (base_row, tuned_row):
        r.update(combine(r, base_row, weights))
    assert tuned_row["general_retention"] == pytest.approx(0.7)  # 0.35 + 0.35 + 0.3 * 0
    found = retention_verdicts(tuned_row, base_row, weights, 0.95, 0.8, MARGIN)
    assert found["overall"]["outcome"] == "fail"
    assert found["suites"]["instructions"]["outcome"] == "fail"
    assert found["suites"]["probes"]["outcome"] == found["suites"]["quartz"]["outcome"] == "pass"
    decision = choose([base_row, {**tuned_row, "retention_verdicts": found}], {"task_accuracy": 1.0},
                      Floors(0.95, min_suite_retention=0.8))
    assert decision["chosen"] == "base"
    step = decision["table"][1]
    assert "forgetting" in step["flags"] and any("instructions retention" in p for p in step["problems"])
