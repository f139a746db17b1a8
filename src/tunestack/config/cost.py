"""Config of `tunestack cost`: GPU prices, training, evaluation, serving and the API being replaced."""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import Field, model_validator

from tunestack.config.base import Section


class CostTrainingSection(Section):
    gpu: str = "a100"
    """GPU the fine-tune runs on: a name in the default table (a100, h100, h200, a10g, l4, t4) or in `cost.gpus`.
    A run's measured time is priced at this GPU's rate, so name the hardware the run used."""
    num_gpus: int = Field(1, ge=1, le=100_000)
    """GPUs per run; unset: the run's process count (`train --nproc`), else 1."""
    model_size_b: float = Field(7, gt=0, le=2000)
    """Parameters of the model in billions; the table's throughputs (for 7B) are scaled by it when nothing was
    measured."""
    tokens: int | None = Field(None, gt=0, le=10**13)
    """Tokens trained per run; default: the run's `tokens_seen`, else examples x tokens_per_example x
    `train.epochs` (or `train.max_steps` x batch), plus the general mix."""
    examples: int | None = Field(None, ge=1, le=10**10)
    """Task examples per epoch, for the estimate when no run exists; default: the prepare manifest's training rows."""
    tokens_per_example: float | None = Field(None, gt=0, le=10**7)
    """Mean tokens per example (prompt and answer), for the estimate; default: the prepare manifest's mean."""
    tokens_per_second: float | None = Field(None, gt=0, le=10**7)
    """Training throughput of a whole run, all its GPUs together (tokens per wall-clock second; GPU-hours are wall
    hours x num_gpus); default: the run's measured `tokens_per_second` (real tokens of every rank over the run's
    wall time), else the table's per-GPU figure for the GPU, scaled to model_size_b and `train.method`, times
    num_gpus."""
    experiments: int = Field(8, ge=1, le=1000)
    """Runs it takes to get one fine-tune that works (usually 5-10): a successful fine-tune costs this many runs."""


class CostEvaluationSection(Section):
    overhead: float = Field(0.15, ge=0, le=1)
    """Evaluation compute as a share of training compute (usually 10-20%). Used when the run has no measured
    evaluation time, or when set here."""


class CostServingSection(Section):
    gpu: str = "a10g"
    """GPU one serving replica runs on: a name in the default table or in `cost.gpus`."""
    quantization: Literal["awq", "none"] = "awq"
    """`awq`: 4-bit AWQ weights; `none`: 16-bit weights, which need more hardware for the same traffic."""
    throughput_awq: float | None = Field(None, gt=0, le=10**8)
    """Tokens per second (prompt and generated) one replica sustains with AWQ; default: the table's figure for the
    GPU, scaled to `cost.training.model_size_b`."""
    throughput_without_awq: float | None = Field(None, gt=0, le=10**8)
    """The same without AWQ; default: throughput_awq / 1.4 (serving without AWQ costs 30-50% more)."""
    replicas: int = Field(1, ge=1, le=100_000)
    """Replicas always on, at least; more are costed when the busiest hour needs them."""
    peak_to_average: float = Field(2.0, ge=1, le=100)
    """Busiest-hour traffic over the monthly average, for sizing replicas."""
    hours_per_month: float = Field(730, gt=0, le=744)
    """Hours a replica runs each month (730: always on)."""


class CostApiSection(Section):
    name: str = "api"
    """The API model being replaced, for the report (e.g. `gpt-4o`)."""
    input_per_million: float | None = Field(None, gt=0, le=10_000)
    """US$ per million input tokens."""
    output_per_million: float | None = Field(None, gt=0, le=10_000)
    """US$ per million output tokens."""
    monthly_requests: float | None = Field(None, gt=0, le=10**13)
    """Requests sent to the API each month: the traffic the fine-tuned model would serve."""
    input_tokens_per_request: float | None = Field(None, gt=0, le=10**7)
    """Mean input (prompt) tokens per request."""
    output_tokens_per_request: float | None = Field(None, gt=0, le=10**7)
    """Mean output tokens per request."""

    @model_validator(mode="after")
    def _all_or_none(self) -> CostApiSection:
        keys = ("input_per_million", "output_per_million", "monthly_requests", "input_tokens_per_request",
                "output_tokens_per_request")
        missing = [k for k in keys if getattr(self, k) is None]
        if 0 < len(missing) < len(keys):
            raise ValueError("the API comparison needs prices and volume: set "
                             + ", ".join(f"cost.api.{k}" for k in missing) + " (or none of cost.api)")
        return self


class CostSection(Section):
    gpus: dict[str, float] = {}
    """US$ per GPU-hour by GPU name, replacing the default table's price or adding a GPU, e.g.
    `{a100: 3.2, rtx4090: 0.7}`."""
    other_one_time: float = Field(0, ge=0, le=10**9)
    """One-time costs of the fine-tune besides GPU time, US$: labelling, review, engineering."""
    min_accuracy_share: float = Field(0.9, ge=0, le=2)
    """Replace the API only when the fine-tune reaches this share of its accuracy: the selected model's headline
    metric against each `evaluate.references` row; below it the cost report warns beside the payback."""
    horizon_months: int = Field(12, ge=1, le=120)
    """Months in the plot, and the window in which the payback volume repays the investment."""
    training: CostTrainingSection = CostTrainingSection()
    """Training runs and what they cost."""
    evaluation: CostEvaluationSection = CostEvaluationSection()
    """Evaluation cost, when the run did not measure it."""
    serving: CostServingSection = CostServingSection()
    """Serving the fine-tuned model."""
    api: CostApiSection = CostApiSection()
    """The API being replaced: prices and monthly volume."""

    @model_validator(mode="after")
    def _gpus_known_and_priced(self) -> CostSection:
        from tunestack.config.prices import GPUS  # pure: the default table

        problems = [f"cost.gpus.{name} = {price:g} $/h is not a price per GPU-hour: set it above 0 and at most 1000"
                    for name, price in self.gpus.items() if not 0 < price <= 1000]
        known = sorted({*GPUS, *self.gpus})
        for where, name in (("cost.training.gpu", self.training.gpu), ("cost.serving.gpu", self.serving.gpu)):
            if name not in known:
                close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.5)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                problems.append(f"{where} '{name}' has no price.{hint} Known: {', '.join(known)}; or add its price "
                                f"under cost.gpus, e.g. cost.gpus.{name}=2.5")
        if problems:
            raise ValueError("; ".join(problems))
        return self
