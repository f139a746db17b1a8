"""The cost model: training, evaluation and serving cost against the API being replaced, with the provenance of
every figure.

Pure: no torch, no disk, no network. Inputs are `Figure`s that say where they came from (`measured` by a run, set in
the `config`, or our `default`); every output is derived from them and carries the names of the defaults it rests
on, so a report can mark them. Money is US dollars, volumes are per month.

>>> t = TrainingInputs("a100", config("training.price_per_hour", 5), config("training.tokens", 4.5e6),
...                    config("training.tokens_per_second", 1000), config("training.num_gpus", 1),
...                    default("training.experiments", 8))
>>> out = training_costs(t)
>>> out["training_gpu_hours_per_run"].value, out["training_cost_per_run"].value, out["training_cost"].value
(1.25, 6.25, 50.0)
>>> out["training_cost"].source, out["training_cost"].defaults
('default', ('training.experiments',))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from tunestack.errors import StageError

SOURCES = ("measured", "config", "default")
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Figure:
    """A number with its provenance. `defaults` names the default inputs it rests on (itself, for a default input)."""

    name: str
    value: float | None
    source: str
    note: str = ""
    unit: str = ""
    defaults: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"{self.name}: source must be one of {SOURCES}, got {self.source!r}")
        if self.source == "default" and not self.defaults:
            object.__setattr__(self, "defaults", (self.name,))


def measured(name: str, value: float, note: str = "", unit: str = "") -> Figure:
    return Figure(name, value, "measured", note, unit)


def config(name: str, value: float, note: str = "", unit: str = "") -> Figure:
    return Figure(name, value, "config", note, unit)


def default(name: str, value: float, note: str = "", unit: str = "") -> Figure:
    return Figure(name, value, "default", note, unit)


def derive(name: str, value: float | None, *parts: Figure, unit: str = "", note: str = "") -> Figure:
    """An output of `parts`: it rests on every default they rest on; measured only when all of them were.

    >>> derive("x", 2.0, measured("a", 1), config("b", 2)).source
    'config'
    >>> derive("y", 2.0, measured("a", 1), default("c", 2)).defaults
    ('c',)
    """
    defaults = tuple(sorted({d for p in parts for d in p.defaults}))
    source = "default" if defaults else "config" if any(p.source == "config" for p in parts) else "measured"
    return Figure(name, value, source, note, unit, defaults)


@dataclass(frozen=True)
class TrainingInputs:
    gpu: str
    price_per_hour: Figure
    tokens: Figure
    """Tokens trained per run."""
    tokens_per_second: Figure
    num_gpus: Figure
    experiments: Figure
    """Runs per successful fine-tune."""


@dataclass(frozen=True)
class EvaluationInputs:
    overhead: Figure
    """Share of training compute, used when `seconds` is None."""
    seconds: Figure | None = None
    """Measured evaluation time per run, priced at the training GPU's rate."""
    judge_cost: Figure | None = None
    """Judge API spend per run, $."""


@dataclass(frozen=True)
class ServingInputs:
    gpu: str
    price_per_hour: Figure
    quantization: str
    """`awq` or `none`."""
    throughput_awq: Figure
    throughput_without_awq: Figure
    replicas: Figure
    """Replicas always on, at least."""
    peak_to_average: Figure
    hours_per_month: Figure


@dataclass(frozen=True)
class ApiInputs:
    name: str
    input_per_million: Figure
    output_per_million: Figure
    monthly_requests: Figure
    input_tokens_per_request: Figure
    output_tokens_per_request: Figure


@dataclass(frozen=True)
class CostInputs:
    training: TrainingInputs
    evaluation: EvaluationInputs
    serving: ServingInputs
    api: ApiInputs | None
    other_one_time: Figure
    horizon_months: int = 12

    def figures(self) -> list[Figure]:
        """Every input figure that the estimate uses (the overhead rule only when evaluation was not measured)."""
        parts = [self.training, self.evaluation, self.serving, self.api]
        found = [getattr(p, f.name) for p in parts if p is not None for f in fields(p)]
        unused = self.evaluation.overhead if self.evaluation.seconds is not None else None
        return [f for f in found if isinstance(f, Figure) and f is not unused] + [self.other_one_time]


# ---------------------------------------------------------------------------------------------------------------
# Rejecting inputs that cannot be right: (lowest, lowest allowed?, highest, unit). The config has the same bounds;
# these also catch what a run measured and what a caller of this module passes.

BOUNDS = {
    "price_per_hour": (0, False, 1000, "$ per GPU-hour"),
    "tokens": (0, False, 1e13, "tokens"),
    "tokens_per_second": (0, False, 1e7, "tokens/s"),
    "num_gpus": (1, True, 1e5, "GPUs"),
    "experiments": (1, True, 1000, "runs"),
    "overhead": (0, True, 1, "share of training compute"),
    "seconds": (0, True, 1e8, "seconds"),
    "judge_cost": (0, True, 1e9, "$"),
    "throughput_awq": (0, False, 1e8, "tokens/s"),
    "throughput_without_awq": (0, False, 1e8, "tokens/s"),
    "replicas": (1, True, 1e5, "replicas"),
    "peak_to_average": (1, True, 100, "x the average"),
    "hours_per_month": (0, False, 744, "hours"),
    "input_per_million": (0, False, 10000, "$ per million tokens"),
    "output_per_million": (0, False, 10000, "$ per million tokens"),
    "monthly_requests": (0, False, 1e13, "requests"),
    "input_tokens_per_request": (0, False, 1e7, "tokens"),
    "output_tokens_per_request": (0, False, 1e7, "tokens"),
    "other_one_time": (0, True, 1e9, "$"),
}


def bound_problem(fig: Figure) -> str | None:
    """What is wrong with a figure's value, naming it, where it came from and how to fix it; None when fine.

    >>> print(bound_problem(config("serving.replicas", 0)))  # doctest: +ELLIPSIS
    serving.replicas = 0 replicas (set in the config) must be at least 1 and at most 100000: set cost.serving...
    """
    low, inclusive, high, unit = BOUNDS[fig.name.rsplit(".", 1)[-1]]
    value = fig.value
    if value is not None and math.isfinite(value) and (value > low or inclusive and value == low) and value <= high:
        return None
    rule = f"{'at least' if inclusive else 'above'} {low:g} and at most {high:g}"
    where = {"measured": f"measured: {fig.note}" if fig.note else "measured by the run", "config": "set in the config",
             "default": f"default: {fig.note}" if fig.note else "default"}[fig.source]
    key = "cost.gpus.<gpu>" if fig.name.endswith("price_per_hour") else f"cost.{fig.name}"
    fix = f"set {key} in that range" + (" to override the run's figure" if fig.source == "measured" else "")
    return f"{fig.name} = {value:g} {unit} ({where}) must be {rule}: {fix}"


def check(inputs: CostInputs) -> None:
    """Raise StageError listing every input that is zero, negative or absurd."""
    problems = [p for p in map(bound_problem, inputs.figures()) if p]
    if inputs.serving.quantization not in ("awq", "none"):
        problems.append(f"serving.quantization = {inputs.serving.quantization!r} must be 'awq' or 'none'")
    if not 1 <= inputs.horizon_months <= 120:
        problems.append(f"horizon_months = {inputs.horizon_months} must be 1-120: set cost.horizon_months")
    if problems:
        raise StageError("cost inputs are not usable:\n" + "\n".join(f"  {p}" for p in problems))


# ---------------------------------------------------------------------------------------------------------------
# The formulas, each on plain numbers, then wrapped with provenance in `estimate`.


def replicas_for(monthly_tokens: float, throughput: float, peak_to_average: float, hours: float,
                 minimum: int) -> int:
    """Replicas that carry the busiest hour, at least `minimum`.

    >>> replicas_for(550e6, 1500, 2.0, 730, 1)   # 209 tokens/s on average, 419 at peak
    1
    >>> replicas_for(550e6, 300, 2.0, 730, 1)
    2
    """
    peak = monthly_tokens / (hours * SECONDS_PER_HOUR) * peak_to_average
    return max(minimum, math.ceil(peak / throughput - 1e-9))


def api_monthly_cost(api: ApiInputs) -> float:
    """What the API charges a month: requests x (input tokens x input price + output tokens x output price)."""
    return api.monthly_requests.value * (api.input_tokens_per_request.value * api.input_per_million.value
                       + api.output_tokens_per_request.value * api.output_per_million.value) / 1e6


def payback_months(investment: float, monthly_saving: float) -> float | None:
    """Months until the saving repays the investment; None when there is no saving.

    >>> round(payback_months(1557.5, 7270.0), 4)
    0.2142
    >>> payback_months(1000, -5) is None
    True
    """
    return investment / monthly_saving if monthly_saving > 0 else None


def break_even_requests(cost_per_request: float, replica_monthly: float, requests_per_replica: float,
                        minimum: int, needed_saving: float = 0.0) -> float | None:
    """The smallest monthly volume at which the API's cost exceeds serving's by `needed_saving` a month, with
    replicas added as traffic needs them; None when no volume gets there (a full replica costs more than the API
    would for its traffic).

    >>> break_even_requests(0.008, 730, 3e6, 1)          # one replica costs $730; each request saves $0.008
    91250.0
    >>> break_even_requests(0.008, 730, 3e6, 1, 130)
    107500.0
    >>> break_even_requests(0.0001, 730, 1e6, 1) is None  # a full replica only displaces $100 of API calls
    True
    """
    margin = cost_per_request * requests_per_replica - replica_monthly  # what each full replica saves

    def enough(k: int) -> bool:
        return cost_per_request * k * requests_per_replica >= replica_monthly * k + needed_saving - 1e-9

    if enough(minimum):
        replicas = minimum
    elif margin > 0:
        replicas = max(minimum, math.ceil(needed_saving / margin - 1e-9))
        replicas += 0 if enough(replicas) else 1
    else:
        return None
    return (replica_monthly * replicas + needed_saving) / cost_per_request


# ---------------------------------------------------------------------------------------------------------------


def training_costs(t: TrainingInputs) -> dict[str, Figure]:
    hours = derive("training_gpu_hours_per_run", t.tokens.value / t.tokens_per_second.value / SECONDS_PER_HOUR
                   * t.num_gpus.value, t.tokens, t.tokens_per_second, t.num_gpus, unit="GPU-hours")
    per_run = derive("training_cost_per_run", hours.value * t.price_per_hour.value, hours, t.price_per_hour,
                     unit="$")
    total = derive("training_cost", per_run.value * t.experiments.value, per_run, t.experiments, unit="$",
                   note=f"x {t.experiments.value:g} experiments")
    return {f.name: f for f in (hours, per_run, total)}


def evaluation_costs(e: EvaluationInputs, t: TrainingInputs, train_per_run: Figure) -> dict[str, Figure]:
    if e.seconds is not None:
        per_run = derive("evaluation_cost_per_run", e.seconds.value / SECONDS_PER_HOUR * t.price_per_hour.value,
                         e.seconds, t.price_per_hour, unit="$", note="measured evaluation time")
    else:
        per_run = derive("evaluation_cost_per_run", e.overhead.value * train_per_run.value, e.overhead,
                         train_per_run, unit="$", note=f"{e.overhead.value:.0%} of training compute")
    if e.judge_cost is not None:
        per_run = derive(per_run.name, per_run.value + e.judge_cost.value, per_run, e.judge_cost, unit="$",
                         note=per_run.note + " + judge tokens")
    total = derive("evaluation_cost", per_run.value * t.experiments.value, per_run, t.experiments, unit="$")
    return {f.name: f for f in (per_run, total)}


def serving_costs(s: ServingInputs, api: ApiInputs | None) -> dict[str, Figure]:
    """Monthly cost of the replicas that carry the API's traffic, with and without AWQ."""
    out = {}
    for suffix, throughput in (("awq", s.throughput_awq), ("without_awq", s.throughput_without_awq)):
        parts = [throughput, s.replicas, s.price_per_hour, s.hours_per_month]
        minimum = int(s.replicas.value)
        replicas = minimum
        if api is not None:
            tokens = api.monthly_requests.value * (api.input_tokens_per_request.value
                                                   + api.output_tokens_per_request.value)
            replicas = replicas_for(tokens, throughput.value, s.peak_to_average.value, s.hours_per_month.value,
                                    minimum)
            parts += [s.peak_to_average, api.monthly_requests, api.input_tokens_per_request,
                      api.output_tokens_per_request]
        out[f"serving_replicas_{suffix}"] = derive(f"serving_replicas_{suffix}", replicas, *parts, unit="replicas")
        out[f"serving_monthly_{suffix}"] = derive(
            f"serving_monthly_{suffix}", replicas * s.hours_per_month.value * s.price_per_hour.value, *parts,
            unit="$/month", note=f"{replicas} x {s.gpu} x {s.hours_per_month.value:g} h")
    chosen = "awq" if s.quantization == "awq" else "without_awq"
    out["serving_replicas"] = replace(out[f"serving_replicas_{chosen}"], name="serving_replicas")
    out["serving_monthly"] = replace(out[f"serving_monthly_{chosen}"], name="serving_monthly")
    return out


def estimate(inputs: CostInputs) -> dict[str, Figure]:
    """Every output figure, by name, in reading order; saving, payback and break-even only when an API is given."""
    check(inputs)
    t, api = inputs.training, inputs.api
    out = training_costs(t)
    out.update(evaluation_costs(inputs.evaluation, t, out["training_cost_per_run"]))
    out["other_one_time"] = inputs.other_one_time
    invest = derive("investment", out["training_cost"].value + out["evaluation_cost"].value
                    + inputs.other_one_time.value, out["training_cost"], out["evaluation_cost"],
                    inputs.other_one_time, unit="$", note="training x experiments + evaluation + other one-time")
    out["investment"] = invest
    out.update(serving_costs(inputs.serving, api))
    if api is None:
        return out
    serving = out["serving_monthly"]
    api_parts = (api.monthly_requests, api.input_tokens_per_request, api.output_tokens_per_request,
                 api.input_per_million, api.output_per_million)
    out["api_monthly"] = derive("api_monthly", api_monthly_cost(api), *api_parts, unit="$/month", note=api.name)
    saving = derive("saving_monthly", out["api_monthly"].value - serving.value, out["api_monthly"], serving,
                    unit="$/month")
    out["saving_monthly"] = saving
    out["payback_months"] = derive("payback_months", payback_months(invest.value, saving.value), invest, saving,
                                   unit="months")
    out.update(break_even(inputs, out))
    return out


def break_even(inputs: CostInputs, out: dict[str, Figure]) -> dict[str, Figure]:
    """Monthly volumes at which serving starts saving, and at which the investment pays back within the horizon."""
    s, api = inputs.serving, inputs.api
    throughput = s.throughput_awq if s.quantization == "awq" else s.throughput_without_awq
    per_request = out["api_monthly"].value / api.monthly_requests.value
    request_tokens = api.input_tokens_per_request.value + api.output_tokens_per_request.value
    per_replica = throughput.value * s.hours_per_month.value * SECONDS_PER_HOUR / (request_tokens
                                                                                   * s.peak_to_average.value)
    replica_monthly = s.hours_per_month.value * s.price_per_hour.value
    parts = (out["api_monthly"], out["serving_monthly"], throughput, s.peak_to_average)
    needed = out["investment"].value / inputs.horizon_months
    even = break_even_requests(per_request, replica_monthly, per_replica, int(s.replicas.value))
    pays = break_even_requests(per_request, replica_monthly, per_replica, int(s.replicas.value), needed)
    return {"break_even_requests": derive("break_even_requests", even, *parts, unit="requests/month",
                                          note="serving costs what the API would"),
            "payback_volume_requests": derive("payback_volume_requests", pays, *parts, out["investment"],
                                              unit="requests/month",
                                              note=f"pays back within {inputs.horizon_months} months")}


# ---------------------------------------------------------------------------------------------------------------

PRICE_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0)
VOLUME_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def scaled(inputs: CostInputs, price_factor: float, volume_factor: float) -> CostInputs:
    """The same inputs with every GPU price and the monthly volume multiplied."""
    t, s, api = inputs.training, inputs.serving, inputs.api

    def times(fig: Figure, k: float) -> Figure:
        return replace(fig, value=fig.value * k)

    return replace(inputs, training=replace(t, price_per_hour=times(t.price_per_hour, price_factor)),
                   serving=replace(s, price_per_hour=times(s.price_per_hour, price_factor)),
                   api=replace(api, monthly_requests=times(api.monthly_requests, volume_factor)) if api else None)


def sensitivity(inputs: CostInputs) -> dict | None:
    """Payback in months (None: never) for every pair of GPU-price and volume multipliers."""
    if inputs.api is None:
        return None
    grid = [[estimate(scaled(inputs, p, v))["payback_months"].value for v in VOLUME_FACTORS] for p in PRICE_FACTORS]
    return {"price_factors": list(PRICE_FACTORS), "volume_factors": list(VOLUME_FACTORS),
            "training_price_per_hour": [inputs.training.price_per_hour.value * p for p in PRICE_FACTORS],
            "serving_price_per_hour": [inputs.serving.price_per_hour.value * p for p in PRICE_FACTORS],
            "monthly_requests": [inputs.api.monthly_requests.value * v for v in VOLUME_FACTORS],
            "payback_months": grid}


def cumulative(out: dict[str, Figure], months: int) -> dict[str, list[float]]:
    """Month by month: what self-hosting has cost (investment, then serving) and what the API would have.

    >>> f = {"investment": config("i", 100), "serving_monthly": config("s", 10), "api_monthly": config("a", 60)}
    >>> cumulative(f, 2)
    {'months': [0, 1, 2], 'self_hosted': [100, 110, 120], 'api': [0, 60, 120]}
    """
    api = out.get("api_monthly")
    return {"months": list(range(months + 1)),
            "self_hosted": [out["investment"].value + out["serving_monthly"].value * m for m in range(months + 1)],
            "api": [api.value * m for m in range(months + 1)] if api else []}
