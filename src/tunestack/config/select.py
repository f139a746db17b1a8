"""`select:` how the checkpoint is chosen: weights of the combined score, hard constraints, noise intervals."""

from __future__ import annotations

from pydantic import Field, model_validator

from tunestack.config.base import Section


class SelectSection(Section):
    weights: dict[str, float] = {
        "task_accuracy": 0.4,
        "field_accuracy": 0.2,
        "format_compliance": 0.2,
        "general_retention": 0.2,
    }
    """Weights of the combined score: `task_accuracy` (the first of `evaluate.metrics`), any metric's key,
    `format_compliance`, `general_retention`. A lower-is-better metric counts with a minus sign. Left at this
    default, the `field_accuracy` weight is dropped when that metric is not measured."""
    min_retention: float = Field(0.95, ge=0, le=1.5)
    """Hard constraint: general retention (share of the base model's score) at least this; below it a checkpoint
    is flagged as forgetting and cannot be chosen. In the weighted score retention counts at most 1.0 (keeping
    more than the base model's is noise, not merit); the raw value is reported."""
    min_suite_retention: float = Field(0.8, ge=0, le=1.5)
    """Hard constraint per retention suite (probes, quartz, instructions): a checkpoint whose retention on one suite
    is decisively below this (its one-sided 95% upper bound under it) has lost that capability, whatever the
    average says, and cannot be chosen."""
    retention_margin: float = Field(0.02, ge=0, le=0.5)
    """The indifference zone of the retention verdicts: pass when the interval's lower bound clears the floor less
    this margin, fail when its upper bound is below the floor, inconclusive between. The report shows each
    checkpoint's verdict and interval."""
    retention_looks: int = Field(2, ge=1, le=4)
    """Looks planned at retention: where the checkpoint select would choose has an inconclusive verdict, the base
    model and that checkpoint are scored again on `retention_growth` times as many items of every suite, up to this
    many looks in all (1: one look, no more items). The verdicts spend alpha over the planned looks (each look at
    alpha / looks), so stopping at whichever look decides keeps the false-pass rate at or under alpha."""
    retention_growth: float = Field(4.0, ge=1.5, le=20)
    """How many times each suite's items a further look draws (capped at what the suite holds)."""
    min_format: float | None = Field(None, ge=0, le=1)
    """Hard constraint: format compliance at least this. Unset: 0.95 when `evaluate.format` checks anything, else
    none. (Format compliance must also reach the base model's, always.) Right answers in the wrong format break
    the caller."""
    max_format_drop: float | None = Field(0.05, ge=0, le=1)
    """Hard constraint: format compliance at most this far below the best candidate's; null: no such limit."""
    noise_draws: int = Field(2000, ge=0)
    """Paired bootstrap draws for the interval of each candidate's weighted-score difference from the leader; a
    candidate whose interval holds zero ties with it, and the tie goes to higher general retention, then to the
    earlier step. 0: no intervals (the highest point score wins)."""
    max_eval_decisions: int = Field(20, ge=1)
    """Selections made against the same eval set (counted across runs in the data ledger) after which the report
    says the eval set has been chosen against too often and should be rotated."""
    judge_weight: float = Field(0.2, ge=0)
    """Weight of the LLM judge's task score (its 1-5 rubric scaled to [0, 1]) in the combined score. It counts only
    when every evaluated model has a judge score and `tunestack judge calibrate` showed this judge clears
    `judge.agreement_threshold`; otherwise the selection records why it did not count."""

    @model_validator(mode="after")
    def _weights_positive(self) -> SelectSection:
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("weights must be non-negative and not all zero")
        return self
