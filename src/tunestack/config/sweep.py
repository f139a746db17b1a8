"""`sweep:` experiments over data composition and training settings, run as trials on Optuna (command `sweep`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tunestack.config.base import Section

DATA_KEYS = ("data.sources.<name>", "data.sources.<name>.weight", "data.tiers.<tier>", "data.fraction")
"""The search-space keys that are not config keys: a source in or out, its weight, a quality tier in or out, and
the share of the training rows kept."""
IN_OUT = {True: True, False: False, "in": True, "out": False}


class RangeSpec(Section):
    low: float
    """Lowest value."""
    high: float
    """Highest value."""
    log: bool = False
    """Sample on a log scale (learning rates)."""
    step: float | None = Field(None, gt=0)
    """Sample on a grid of this step (an integer range when low, high and step are whole numbers)."""

    @model_validator(mode="after")
    def _ordered(self) -> RangeSpec:
        if self.low >= self.high:
            raise ValueError(f"a range needs low < high, got low {self.low}, high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("a range takes log or step, not both (Optuna samples a log scale without a grid)")
        return self

    def integer(self) -> bool:
        return self.step is not None and all(float(v).is_integer() for v in (self.low, self.high, self.step))


class PrunerSection(Section):
    kind: Literal["percentile", "median", "none"] = "percentile"
    """Optuna's pruner: `percentile` stops a trial whose dev-split score at a checkpoint is in the bottom
    `percentile` of the earlier trials' scores at the same checkpoint (clearly behind); `median` stops it below
    their median (more aggressive); `none` never stops a trial early."""
    percentile: float = Field(25.0, gt=0, lt=100)
    """For `percentile`: the share of earlier trials a trial must be behind to be stopped."""
    startup_trials: int = Field(2, ge=0)
    """Trials that finish before any is stopped early (their checkpoints are the yardstick)."""
    warmup_checkpoints: int = Field(0, ge=0)
    """Checkpoints of a trial that are never pruned (0: it can stop at its first checkpoint)."""


class SweepSection(Section):
    space: dict[str, list[Any] | RangeSpec] = {}
    """The search space: each key a config key (`train.learning_rate`, `train.lora.r`, `train.epochs`,
    `train.method`, `train.general_mix.share`, ...) or a data key (`data.sources.<name>`: `[in, out]`;
    `data.sources.<name>.weight`; `data.tiers.<tier>`: `[in, out]`; `data.fraction`, the share of the training rows
    kept); each value a list of choices or a range `{low, high, log, step}`. The config's own values are the first
    (baseline) trial, and join a list of choices that lacks them."""
    trials: int = Field(8, ge=1)
    """Budget in trials (the baseline, ablations and learning-curve points count), checked before each trial."""
    hours: float | None = Field(None, gt=0)
    """Budget in wall-clock hours: no trial starts when the trials so far, at their mean length, would not fit."""
    dollars: float | None = Field(None, gt=0)
    """Budget in dollars, each trial priced like the cost stage prices training (`cost.training.gpu`'s hourly price
    for the trial's wall-clock time)."""
    finalists: int = Field(3, ge=1)
    """The best trials on the dev split whose chosen checkpoints are evaluated on the eval set; the winner is chosen
    among them with select's rules. The eval set sees only these, and the holdout only the winner."""
    dev_size: float = Field(0.15, gt=0)
    """Rows carved from the training rows to decide trials on (a count, or a share when below 1), stratified like
    the eval split; no trial trains on them."""
    ablations: bool = True
    """One trial per data key with an in/out choice (sources, tiers): the baseline with that one left out."""
    learning_curve: list[float] = [0.25, 0.5]
    """Shares of the baseline's training rows, each one trial (nested: a smaller share is part of a larger), for
    the learning curve; the baseline is the point at 1.0. Empty: no curve."""
    sampler: Literal["tpe", "random"] = "tpe"
    """Optuna's sampler for the trials after the planned ones: `tpe` (with the floors as constraints) or
    `random`."""
    pruner: PrunerSection = PrunerSection()
    """Stopping hopeless trials at a checkpoint (each checkpoint's dev-split score is reported to the pruner)."""
    storage: str | None = None
    """Where the study lives. Default: an Optuna journal file in the sweep folder (`sweep/study.journal`), which
    needs no server and takes several worker processes on one machine. An RDB URL
    (`postgresql+psycopg2://user:pass@host/db`) lets workers on several machines share one study. SQLite is refused
    for several workers: it locks the whole file on every write."""
    workers: int = Field(1, ge=1)
    """Worker processes `tunestack sweep` starts on this machine (each runs one trial at a time); more machines join
    with `tunestack sweep CONFIG --worker`."""
    stale_seconds: float = Field(120, ge=5)
    """A running trial whose worker has not written a heartbeat for this long is marked failed and run again
    (a worker killed, or its machine lost)."""
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]+$")
    """The sweep's folder under `run.runs_dir` and its study's name; default `<run.name>-sweep`."""

    @model_validator(mode="after")
    def _space_keys(self) -> SweepSection:
        problems = []
        for key, spec in self.space.items():
            if isinstance(spec, list) and not spec:
                problems.append(f"sweep.space.{key} lists no choice")
            if key.startswith("data.") and not key.startswith(("data.sources.", "data.tiers.")) \
                    and key != "data.fraction":
                problems.append(f"sweep.space.{key}: the data keys a sweep varies are {', '.join(DATA_KEYS)}")
            if (is_in_out(key)) and (not isinstance(spec, list) or any(v not in IN_OUT for v in spec)):
                problems.append(f"sweep.space.{key} takes [in, out] (or a part of it)")
        if any(not 0 < share < 1 for share in self.learning_curve):
            problems.append("sweep.learning_curve holds shares between 0 and 1 (the baseline is 1)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def folder(self, run_name: str) -> str:
        return self.name or f"{run_name}-sweep"


def is_in_out(key: str) -> bool:
    """Whether a space key puts a source or a tier in or out (rather than setting a value)."""
    return (key.startswith("data.sources.") and not key.endswith(".weight")) or key.startswith("data.tiers.")


def source_key(key: str) -> tuple[str, str] | None:
    """For a `data.sources.` key: the source's name (which may hold dots, as a file name does) and what is set
    (`in` or `weight`); None for any other key.

    >>> source_key("data.sources.radiology.jsonl"), source_key("data.sources.logs.weight")
    (('radiology.jsonl', 'in'), ('logs', 'weight'))
    """
    if not key.startswith("data.sources."):
        return None
    name = key.removeprefix("data.sources.")
    return (name.removesuffix(".weight"), "weight") if name.endswith(".weight") else (name, "in")


def set_key(raw: dict, key: str, value: Any) -> dict:
    """`raw` (a config as plain data) with the dotted config key set to `value`, in place."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return raw


def get_key(raw: dict, key: str) -> Any:
    node = raw
    for part in key.split("."):
        node = node[part]
    return node


def space_problems(cfg) -> list[str]:
    """What is wrong with `sweep.space` against the rest of the config: a source or tier that is not there, a config
    key that does not exist, a value the key does not take, a mix of QLoRA with other methods."""
    import copy

    from pydantic import ValidationError

    from tunestack.config.data import TIER

    space, problems = cfg.sweep.space, []
    names = [name for name, _ in cfg.data.named_sources()]
    raw = cfg.model_dump(mode="json")
    raw["sweep"] = {}
    for key, spec in space.items():
        found = source_key(key)
        if found and found[0] not in names:
            problems.append(f"sweep.space.{key}: there is no source named '{found[0]}' (sources: {', '.join(names)})")
            continue
        if key.startswith("data.tiers.") and key.removeprefix("data.tiers.") not in TIER.__args__:
            problems.append(f"sweep.space.{key}: the tiers are {', '.join(TIER.__args__)}")
        values = spec if isinstance(spec, list) else [spec.low, spec.high]
        if found and found[1] == "weight" and any(not isinstance(v, (int, float)) or not 0 < v <= 100 for v in values):
            problems.append(f"sweep.space.{key}: a source weight is above 0 and at most 100, got {values}")
        if key == "data.fraction" and any(not isinstance(v, (int, float)) or not 0 < v <= 1 for v in values):
            problems.append(f"sweep.space.{key}: a share of the rows is above 0 and at most 1, got {values}")
        if key.startswith("data."):
            continue
        try:
            get_key(raw, key)
        except (KeyError, TypeError):
            problems.append(f"sweep.space.{key} is not a config key (see docs/config.md)")
            continue
        for value in values:
            try:
                type(cfg).model_validate(set_key(copy.deepcopy(raw), key, value))
            except ValidationError as exc:
                problems.append(f"sweep.space.{key}: {value!r} is refused: {exc.errors()[0]['msg']}")
    methods = space.get("train.method")
    every = set(methods) | {cfg.train.method} if isinstance(methods, list) else set()
    if "qlora" in every and len(every) > 1:
        problems.append("sweep.space.train.method mixes qlora with other methods: a QLoRA adapter is evaluated on "
                        "its 4-bit base and the others are not, so the finalists could not be compared as one run")
    return problems
