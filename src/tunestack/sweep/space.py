"""The search space as Optuna sees it, the planned trials (baseline, ablations, learning curve) and a trial's config.

A trial's settings are one value per space key (Optuna's params) plus `fixed` settings the planned trials carry in
a user attribute (a learning-curve point's `data.fraction`, which overrides the param where the space varies it). Its config is the
user's config with those values set, its data section the trial's view of the pool (`tunestack.sweep.data`), the dev
split as its eval set and no holdout; it runs to `select` and stops (no export, no quantize).
"""

from __future__ import annotations

import copy
from pathlib import Path

from tunestack.config import Config, config_to_yaml
from tunestack.config.sweep import RangeSpec, get_key, is_in_out, set_key, source_key
from tunestack.errors import ConfigError


def choice(value):
    """An in/out choice as the study stores it."""
    return {True: "in", False: "out"}.get(value, value) if isinstance(value, bool) else value


def baseline(cfg: Config) -> dict:
    """The user's config as a point of the space: every source and tier in, each source's own weight, all rows,
    and each config key's configured value."""
    raw, weights = cfg.model_dump(mode="json"), {name: s.weight for name, s in cfg.data.named_sources()}
    values = {}
    for key in cfg.sweep.space:
        found = source_key(key)
        if is_in_out(key):
            values[key] = "in"
        elif found:
            values[key] = weights[found[0]]
        elif key == "data.fraction":
            values[key] = 1.0
        else:
            values[key] = get_key(raw, key)
    return values


def distributions(cfg: Config) -> dict:
    """Each space key's Optuna distribution; a list of choices gains the baseline's value where it lacks it."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    base, out = baseline(cfg), {}
    for key, spec in cfg.sweep.space.items():
        if isinstance(spec, RangeSpec):
            if not spec.low <= base[key] <= spec.high:
                raise ConfigError([(f"sweep.space.{key}", f"the config's own value {base[key]!r} (the baseline "
                                    f"trial) is outside {spec.low}-{spec.high}: widen the range")])
            whole = isinstance(base[key], int) and not isinstance(base[key], bool)  # a count: train.lora.r, epochs
            if spec.integer() or (whole and float(spec.low).is_integer() and float(spec.high).is_integer()):
                out[key] = IntDistribution(int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1))
            else:
                out[key] = FloatDistribution(spec.low, spec.high, log=spec.log, step=spec.step)
            continue
        choices = [choice(v) if is_in_out(key) else v for v in spec]
        if base[key] not in choices:
            choices.insert(0, base[key])
        out[key] = CategoricalDistribution(list(dict.fromkeys(choices)))
    return out


def planned(cfg: Config) -> list[dict]:
    """The trials enqueued before any is sampled: the baseline first, then (with `sweep.ablations`) the baseline
    with each source or tier that can be out left out, then the learning curve's shares of the baseline's rows.
    Each is `{"kind", "params", "fixed"}`."""
    base, space = baseline(cfg), distributions(cfg) if cfg.sweep.space else {}
    out = [{"kind": "baseline", "label": "baseline", "params": base, "fixed": {}}]
    if cfg.sweep.ablations:
        for key in space:
            if is_in_out(key) and "out" in space[key].choices:
                out.append({"kind": "ablation", "label": f"without {key.split('.', 2)[2]}",
                            "params": {**base, key: "out"}, "fixed": {}, "ablates": key})
    for share in cfg.sweep.learning_curve:  # fixed, not a param: the share need not be one of the space's choices
        out.append({"kind": "learning_curve", "label": f"{share:.0%} of the rows", "params": dict(base),
                    "fixed": {"data.fraction": share}})
    return out


def suggest(trial, space: dict) -> dict:
    """The trial's value for each key: the enqueued ones for a planned trial, else the sampler's."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    found = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            found[key] = trial.suggest_categorical(key, dist.choices)
        elif isinstance(dist, IntDistribution):
            found[key] = trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            found[key] = trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return found


def trial_config(cfg: Config, root: Path, name: str, settings: dict, sources: list[dict]) -> Config:
    """The trial's config: the user's with the trial's settings, its data view as the sources, the dev split as the
    eval set, no holdout, its run folder under `<sweep>/trials/`, and only the stages up to `select`."""
    raw = cfg.model_dump(mode="json")
    raw["sweep"] = {}
    for key, value in settings.items():
        if not key.startswith("data."):
            set_key(raw, key, value)
    data = raw["data"]
    data.update(path=None, sources=sources, eval_path=str(root / "sweep" / "dev.jsonl"), holdout_path=None,
                holdout_size=0, max_rows=None, ledger=str(root / "sweep"))
    raw["run"].update(name=name, runs_dir=str(root / "trials"))
    raw["export"]["enabled"] = False
    raw["quantize"]["enabled"] = False
    raw["select"]["retention_looks"] = 1  # a trial decides on the dev split; further looks are for the finalists
    return Config.model_validate(copy.deepcopy(raw))


def write_trial_config(trial_cfg: Config) -> Path:
    """The trial's config, in its run folder (what re-runs it: `tunestack run <folder>/config.yaml`)."""
    folder = Path(trial_cfg.run.runs_dir) / trial_cfg.run.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(config_to_yaml(trial_cfg), encoding="utf-8")
    return path
