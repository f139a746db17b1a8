"""From the config and a run's manifests to the cost model's inputs, each marked with where it came from.

Pure: the manifests come in as dicts. Precedence for every figure: what you set under `cost:` (config), else what
the run measured (measured), else our table or rule of thumb (default). A key counts as set only when the YAML or an
override names it; a value left at its schema default is a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunestack.config import Config, CostSection, Section, prices
from tunestack.cost.model import (ApiInputs, CostInputs, EvaluationInputs, Figure, ServingInputs, TrainingInputs,
                                  config, default, derive, measured)
from tunestack.errors import ConfigError

API_KEYS = ("input_per_million", "output_per_million", "monthly_requests", "input_tokens_per_request",
            "output_tokens_per_request")


@dataclass
class Manifests:
    """The manifests of the run being costed, as read (None: that stage has not finished)."""

    train: dict | None = None
    evaluate: dict | None = None
    prepare: dict | None = None
    serve_load: dict | None = None
    """`serve/load.json`: what bench/serve_load.py measured (`tunestack.serve.load`)."""
    notes: list[str] = field(default_factory=list)
    """What the report should say about how the inputs were put together."""


def setting(section: Section, key: str, name: str, note: str = "", unit: str = "") -> Figure:
    """A config value, marked `config` when the user set it and `default` when it is the schema's default."""
    value = getattr(section, key)
    return config(name, value, unit=unit) if key in section.model_fields_set else default(name, value, note, unit)


def gpu_price(cost: CostSection, gpu: str, name: str) -> Figure:
    if gpu in cost.gpus:
        return config(name, cost.gpus[gpu], f"cost.gpus.{gpu}")
    return default(name, prices.GPUS[gpu].price_per_hour, prices.price_label(gpu))


def gather(cfg: Config, found: Manifests) -> CostInputs:
    """Every input of the cost model, from the config first, then the run, then the defaults."""
    cost = cfg.cost
    if cost.api.monthly_requests is None:
        found.notes.append("no API configured, so no saving, payback or sensitivity: set cost.api (prices per "
                           "million tokens, monthly_requests, input and output tokens per request)")
    return CostInputs(training=training_inputs(cfg, found), evaluation=evaluation_inputs(cfg, found),
                      serving=serving_inputs(cfg, found), api=api_inputs(cost),
                      other_one_time=setting(cost, "other_one_time", "other_one_time", "none", unit="$"),
                      horizon_months=cost.horizon_months)


def training_inputs(cfg: Config, found: Manifests) -> TrainingInputs:
    c, train = cfg.cost.training, found.train or {}
    on_cpu = str((train.get("memory") or {}).get("device", "")).startswith("CPU")
    if on_cpu and c.gpu in prices.GPUS:  # a GPU from the table: a CPU run's time is not what that GPU would take
        found.notes.append(f"the run trained on a CPU, and its measured time is priced at the {c.gpu} rate: to price "
                           "the CPU instead, set cost.gpus.cpu=<$ per hour> and cost.training.gpu=cpu")
    if "num_gpus" in c.model_fields_set or not train.get("processes"):
        num_gpus = setting(c, "num_gpus", "training.num_gpus", "one GPU per run")
    else:
        num_gpus = measured("training.num_gpus", train["processes"], "train/manifest.json processes")
    return TrainingInputs(gpu=c.gpu, price_per_hour=gpu_price(cfg.cost, c.gpu, "training.price_per_hour"),
                          tokens=trained_tokens(cfg, found),
                          tokens_per_second=training_throughput(cfg, found, int(num_gpus.value)),
                          num_gpus=num_gpus, experiments=setting(c, "experiments", "training.experiments",
                                                                 "the usual {}-{}".format(*prices.EXPERIMENTS[1])))


def trained_tokens(cfg: Config, found: Manifests) -> Figure:
    c, train = cfg.cost.training, found.train or {}
    if c.tokens is not None:
        if train.get("tokens_seen"):
            found.notes.append(f"cost.training.tokens ({c.tokens:,}) replaces the {train['tokens_seen']:,} tokens the "
                               "run measured")
        return config("training.tokens", c.tokens)
    if "tokens_seen" in train:
        return measured("training.tokens", train["tokens_seen"], "train/manifest.json tokens_seen")
    return estimated_tokens(cfg, found.prepare or {})


def estimated_tokens(cfg: Config, prepare: dict) -> Figure:
    """examples (+ the general mix) x tokens per example x epochs, or max_steps x batch x tokens per example."""
    c, t = cfg.cost.training, cfg.train
    if c.examples is not None:
        examples = config("training.examples", c.examples)
    elif "train" in prepare.get("splits", {}):
        examples = measured("training.examples", prepare["splits"]["train"], "prepare/manifest.json splits.train")
    else:
        examples = None
    mean = prepare.get("lengths", {}).get("splits", {}).get("train", {}).get("mean")
    if c.tokens_per_example is not None:
        per_example = config("training.tokens_per_example", c.tokens_per_example)
    elif mean:
        per_example = measured("training.tokens_per_example", mean, "prepare/manifest.json lengths (train mean)")
    else:
        per_example = None
    if per_example is None or (examples is None and t.max_steps is None):
        raise ConfigError([("cost.training", "no run to measure and nothing to estimate the tokens trained from: "
                                             "set cost.training.tokens, or cost.training.examples and "
                                             "cost.training.tokens_per_example, or run `tunestack prepare` first")])
    if t.max_steps is not None:
        parts = [setting(t, "max_steps", "train.max_steps"), setting(t, "micro_batch_size", "train.micro_batch_size"),
                 setting(t, "grad_accum", "train.grad_accum")]
        rows = parts[0].value * parts[1].value * parts[2].value
        how = f"{rows:,.0f} rows ({parts[0].value} steps)"
    else:
        share = setting(t.general_mix, "share", "train.general_mix.share", "the schema's default")
        epochs = setting(t, "epochs", "train.epochs", "the schema's default")
        parts = [examples, share, epochs]
        rows = examples.value / (1 - share.value) * epochs.value
        how = (f"{examples.value:,} examples + {share.value:.0%} general mix x {epochs.value:g} epochs")
    return derive("training.tokens", rows * per_example.value, *parts, per_example,
                  note=f"estimated: {how} x {per_example.value:,.0f} tokens")


def training_throughput(cfg: Config, found: Manifests, num_gpus: int = 1) -> Figure:
    """Tokens per wall-clock second of the whole run (all `num_gpus` together): set, measured, or the table's
    per-GPU figure times `num_gpus` (linear scaling assumed, and said)."""
    c, train = cfg.cost.training, found.train or {}
    if c.tokens_per_second is not None:
        if train.get("tokens_per_second"):
            found.notes.append(f"cost.training.tokens_per_second ({c.tokens_per_second:,g}) replaces the "
                               f"{train['tokens_per_second']:,g} tokens/s the run measured")
        return config("training.tokens_per_second", c.tokens_per_second)
    if "tokens_per_second" in train:
        return measured("training.tokens_per_second", train["tokens_per_second"],
                        "train/manifest.json tokens_per_second")
    if c.gpu not in prices.GPUS:
        raise ConfigError([("cost.training.tokens_per_second", f"'{c.gpu}' is not in the default table, so there is "
                                                               "no default throughput for it: set it, or run the "
                                                               "training to measure it")])
    method = cfg.train.method
    value = prices.train_tokens_per_second(c.gpu, c.model_size_b, method) * num_gpus
    base = prices.GPUS[c.gpu].train_tokens_per_second
    scaled = f", x {num_gpus} GPUs (linear scaling assumed)" if num_gpus > 1 else ""
    return default("training.tokens_per_second", value,
                   f"table: {c.gpu} {base:,.0f} tokens/s for 7B LoRA, scaled to {c.model_size_b:g}B {method}{scaled}")


def evaluation_inputs(cfg: Config, found: Manifests) -> EvaluationInputs:
    c, evaluate = cfg.cost.evaluation, found.evaluate or {}
    low, high = prices.EVAL_OVERHEAD[1]
    overhead = setting(c, "overhead", "evaluation.overhead", f"the usual {low:.0%}-{high:.0%}")
    spent = evaluation_seconds(found)
    seconds = None
    if spent is not None:
        if "overhead" in c.model_fields_set:
            found.notes.append("cost.evaluation.overhead is set, so it replaces the run's measured evaluation time")
        else:
            seconds = measured("evaluation.seconds", spent[0], spent[1])
    return EvaluationInputs(overhead=overhead, seconds=seconds, judge_cost=judge_cost(cfg, evaluate))


def evaluation_seconds(found: Manifests) -> tuple[float, str] | None:
    """Device-seconds really spent evaluating, wherever it was spent: while training (the train manifest's
    `evaluate_seconds`, times its process count, since the other ranks wait for rank 0), plus the evaluate stage's
    own time (a cache hit when every model was evaluated while training). None when neither was measured."""
    train, evaluate = found.train or {}, found.evaluate or {}
    parts, sources = 0.0, []
    if train.get("evaluate_seconds"):
        processes = int(train.get("processes") or 1)
        parts += float(train["evaluate_seconds"]) * processes
        sources.append("train/manifest.json evaluate_seconds (while training"
                       + (f", x {processes} processes" if processes > 1 else "") + ")")
    if "seconds" in evaluate:
        parts += float(evaluate["seconds"])
        sources.append("evaluate/manifest.json seconds")
    return (round(parts, 1), " + ".join(sources)) if sources else None


def judge_cost(cfg: Config, evaluate: dict) -> Figure | None:
    """Judge spend per run, when the evaluate manifest records the judge's usage (`judge_usage`)."""
    usage, api = evaluate.get("judge_usage") or {}, cfg.cost.api
    if usage.get("cost_usd") is not None:
        return measured("evaluation.judge_cost", usage["cost_usd"], "evaluate/manifest.json judge_usage.cost_usd")
    if "prompt_tokens" in usage and api.input_per_million is not None:
        tokens_in, tokens_out = usage["prompt_tokens"], usage.get("completion_tokens", 0)
        value = (tokens_in * api.input_per_million + tokens_out * api.output_per_million) / 1e6
        return derive("evaluation.judge_cost", value,
                      measured("evaluation.judge_tokens", tokens_in + tokens_out, "evaluate/manifest.json judge_usage"),
                      config("api.input_per_million", api.input_per_million),
                      config("api.output_per_million", api.output_per_million),
                      note=f"{tokens_in:,} + {tokens_out:,} judge tokens at the API's prices")
    return None


def same_hardware(gpu: str, device: str) -> bool:
    """Whether a measurement on `device` (`cpu`, or a CUDA device name) was made on the hardware `gpu` names.

    >>> same_hardware("h200", "NVIDIA H200"), same_hardware("a100", "NVIDIA H200"), same_hardware("cpu", "cpu")
    (True, False, True)
    """
    device = device.lower()
    return device == gpu.lower() if device == "cpu" or gpu.lower() == "cpu" else gpu.lower() in device


def measured_serving(cfg: Config, found: Manifests) -> dict[str, Figure]:
    """Serving throughputs bench/serve_load.py measured on the hardware `cost.serving.gpu` names: `awq` from a
    4-bit measurement, `without_awq` from a 16-bit one."""
    from tunestack.serve.load import best_throughput

    gpu, out = cfg.cost.serving.gpu, {}
    for width, measurement in ((found.serve_load or {}).get("measurements") or {}).items():
        best = best_throughput(measurement)
        slot = {"4-bit": "awq", "16-bit": "without_awq"}.get(width)
        if best is None or slot is None:
            continue
        where = f"serve/load.json: {best[0]} server, {measurement.get('model')}, {measurement.get('clients')} clients"
        if not same_hardware(gpu, measurement.get("device", "")):
            found.notes.append(f"bench/serve_load.py measured {best[1]:,.0f} tokens/s ({width} weights) on "
                               f"{measurement.get('device')}, not on cost.serving.gpu ({gpu}), so it is not used: "
                               "set cost.serving.gpu to the hardware it ran on (and cost.gpus its $ per hour) to "
                               "price what was measured")
            continue
        out[slot] = measured(f"serving.throughput_{slot}", best[1], where, unit="tokens/s")
    return out


def serving_inputs(cfg: Config, found: Manifests | None = None) -> ServingInputs:
    s, size = cfg.cost.serving, cfg.cost.training.model_size_b
    bench = measured_serving(cfg, found) if found is not None else {}
    if s.throughput_awq is not None:
        awq = config("serving.throughput_awq", s.throughput_awq)
    elif "awq" in bench:
        awq = bench["awq"]
    elif "without_awq" in bench:
        low, high = prices.AWQ_PENALTY[1]
        penalty = default("serving.awq_penalty", prices.AWQ_PENALTY[0],
                          f"with AWQ: the usual {low:.0%}-{high:.0%} less hardware")
        awq = derive("serving.throughput_awq", bench["without_awq"].value * (1 + penalty.value), bench["without_awq"],
                     penalty, note=f"measured 16-bit throughput x {1 + penalty.value:g}")
    elif s.gpu in prices.GPUS:
        base = prices.GPUS[s.gpu].serve_tokens_per_second
        awq = default("serving.throughput_awq", prices.serve_tokens_per_second(s.gpu, size),
                      f"table: {s.gpu} {base:,.0f} tokens/s for 7B AWQ, scaled to {size:g}B")
    else:
        raise ConfigError([("cost.serving.throughput_awq", f"'{s.gpu}' is not in the default table, so there is no "
                                                           "default serving throughput for it: set it")])
    if s.throughput_without_awq is not None:
        plain = config("serving.throughput_without_awq", s.throughput_without_awq)
    elif "without_awq" in bench:
        plain = bench["without_awq"]
    else:
        low, high = prices.AWQ_PENALTY[1]
        penalty = default("serving.awq_penalty", prices.AWQ_PENALTY[0],
                          f"without AWQ: the usual {low:.0%}-{high:.0%} more hardware")
        plain = derive("serving.throughput_without_awq", awq.value / (1 + penalty.value), awq, penalty,
                       note=f"throughput_awq / {1 + penalty.value:g}")
    return ServingInputs(gpu=s.gpu, price_per_hour=gpu_price(cfg.cost, s.gpu, "serving.price_per_hour"),
                         quantization=s.quantization, throughput_awq=awq, throughput_without_awq=plain,
                         replicas=setting(s, "replicas", "serving.replicas", "one replica"),
                         peak_to_average=setting(s, "peak_to_average", "serving.peak_to_average", "planning figure"),
                         hours_per_month=setting(s, "hours_per_month", "serving.hours_per_month", "always on"))


def api_inputs(cost: CostSection) -> ApiInputs | None:
    """None when no API is configured (the config allows all five keys or none)."""
    if cost.api.monthly_requests is None:
        return None
    return ApiInputs(cost.api.name, *(config(f"api.{key}", getattr(cost.api, key)) for key in API_KEYS))
