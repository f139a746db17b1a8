"""One trial, in a process of its own: `tunestack sweep <sweep folder>/config.yaml --trial NUMBER`.

The worker that asked Optuna for the trial starts this process and waits on it, so a trial that crashes or is
killed for memory costs the trial, not the worker. The trial's settings come from the study; its config is written
to its run folder (`<sweep>/trials/tNNN/config.yaml`, which `tunestack run` re-runs); its prepare is copied from
an earlier trial whose prepare inputs were the same, and the base model's dev-split evaluation likewise. Each
checkpoint's dev-split score (select's weighted score) goes to Optuna's pruner as it is evaluated; a pruned trial
stops there. At the end select chooses the trial's checkpoint on the dev split, and that checkpoint's score is the
trial's value; a trial whose checkpoints all fail select's floors is infeasible (its constraint, which TPE reads).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from tunestack.config import Config, load_config
from tunestack.pipeline import inputs_hash, run_stages
from tunestack.rundir import RunDir, read_json, read_jsonl
from tunestack.sweep.data import trial_sources
from tunestack.sweep.space import trial_config, write_trial_config

log = logging.getLogger("tunestack")


def trial_name(number: int) -> str:
    return f"t{number:03d}"


def settings_of(frozen) -> dict:
    """A trial's values: its params, and the fixed settings a planned trial carries."""
    return {**frozen.params, **(frozen.user_attrs.get("fixed") or {})}


def build(cfg: Config, root: Path, number: int, settings: dict) -> Config:
    """The trial's config, written to its run folder."""
    rest = read_jsonl(root / "sweep" / "train_pool.jsonl")
    trial_cfg = trial_config(cfg, root, trial_name(number), settings, trial_sources(cfg, root / "sweep", rest, settings))
    write_trial_config(trial_cfg)
    return trial_cfg


def link_tree(src: Path, dst: Path) -> None:
    """A copy of a finished stage folder, by hard links where the file system allows."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link, dirs_exist_ok=True)


def share_earlier(trial_cfg: Config, root: Path) -> str | None:
    """Copy the prepare of an earlier trial with the same prepare inputs (returns its name), and the base model's
    dev-split evaluation where one exists (its cache key decides whether it is reused)."""
    run = RunDir(Path(trial_cfg.run.runs_dir) / trial_cfg.run.name)
    want, shared = inputs_hash(trial_cfg, run, "prepare"), None
    if not run.is_current("prepare", want):
        for other in sorted((root / "trials").glob("t*/prepare/manifest.json")):
            if other.parent.parent != run.root and read_json(other).get("inputs_hash") == want:
                shutil.rmtree(run.root / "prepare", ignore_errors=True)
                link_tree(other.parent, run.root / "prepare")
                shared = other.parent.parent.name
                break
    if not (run.root / "evaluate" / "base.json").exists():
        for other in sorted((root / "trials").glob("t*/evaluate/base.json")):
            if other.parent.parent != run.root:
                (run.root / "evaluate").mkdir(parents=True, exist_ok=True)
                for name in ("base.json", "base.outputs.jsonl"):
                    if (other.parent / name).exists():
                        shutil.copy2(other.parent / name, run.root / "evaluate" / name)
                break
    return shared


class Pruning:
    """The train stage's listener: each checkpoint's dev-split weighted score to the trial's pruner, and a stop
    (Optuna's TrialPruned) when the pruner says so. Planned trials (the baseline, ablations, learning-curve points)
    are measurements the tables need, and are reported but never stopped; sampled trials are."""

    def __init__(self, trial, prunable: bool):
        self.trial, self.reported, self.prunable = trial, [], prunable

    def __call__(self, cfg: Config, rows: list[dict], task_metrics: list[dict]) -> None:
        import optuna

        from tunestack.select.choose import weighted_score
        from tunestack.select.stage import flatten, objectives, resolve_weights

        found = objectives(task_metrics, False)
        weights = resolve_weights(cfg, [o.key for o in found], False)
        step = len(rows) - 1  # the checkpoint's index: trials of different lengths are compared checkpoint by checkpoint
        score = weighted_score(flatten(rows[-1]), weights, found)
        self.reported.append({"checkpoint": rows[-1]["name"], "index": step, "score": round(score, 4)})
        self.trial.set_user_attr("reported", self.reported)
        self.trial.report(score, step)
        if self.prunable and self.trial.should_prune():
            log.info("[sweep] %s is behind at checkpoint %d (score %.3f): pruned", cfg.run.name, step, score)
            raise optuna.TrialPruned(f"pruned at checkpoint {step} ({rows[-1]['name']})")


def outcome(trial_cfg: Config) -> tuple[float, dict]:
    """The trial's value and what the table shows of it: the dev-split score of the checkpoint select chose; where
    select kept the base model (every checkpoint failed a floor), the best checkpoint's score, with the trial marked
    infeasible by how far it fell short (`shortfall`), the constraint TPE ranks infeasible trials by."""
    run = RunDir(Path(trial_cfg.run.runs_dir) / trial_cfg.run.name)
    decision = run.require("select")
    table = {row["name"]: row for row in decision["table"]}
    rows = {row["name"]: row for row in run.require("evaluate")["models"]}
    train, prepared = run.require("train"), run.require("prepare")
    chosen, feasible = decision["chosen"], decision["chosen"] != "base"
    if not feasible:
        chosen = max((t for t in decision["table"] if t["kind"] != "base"), key=lambda t: t["score"])["name"]
    row = rows[chosen]
    return float(table[chosen]["score"]), {
        "chosen": chosen, "violation": 0.0 if feasible else shortfall(row, decision.get("floors") or {}),
        "problems": table[chosen].get("problems") or [],
        "task_accuracy": row.get("task_accuracy"), "format_compliance": row.get("format_compliance"),
        "general_retention": row.get("general_retention"), "train_rows": prepared["splits"]["train"],
        "steps": train.get("steps"), "train_seconds": train.get("seconds"), "tokens": train.get("tokens_seen")}


def shortfall(row: dict, floors: dict) -> float:
    """How far an infeasible trial's best checkpoint is below select's floors (retention and format, in shares), at
    least 0.01: TPE ranks infeasible trials by it, so one that came closer teaches the sampler more."""
    short = max(0.0, (floors.get("min_retention") or 0) - row.get("general_retention", 1.0))
    short += max(0.0, (floors.get("min_format") or 0) - row.get("format_compliance", 1.0))
    return round(max(short, 0.01), 4)


def run_trial(root: Path, number: int) -> int:
    """Run trial `number` of the sweep in `root` and tell the study how it ended; returns the exit code."""
    import optuna

    from tunestack.sweep.study import open_study, price_per_hour
    from tunestack.train.live import LISTENERS

    cfg = load_config(root / "config.yaml")
    study = open_study(cfg, root)
    frozen = study.get_trials(deepcopy=False)[number]
    trial = optuna.trial.Trial(study, frozen._trial_id)
    started = time.time()
    try:
        trial_cfg = build(cfg, root, number, settings_of(frozen))
        shared = share_earlier(trial_cfg, root)
        trial.set_user_attr("prepare", f"shared with {shared}" if shared else "run")
        LISTENERS.append(Pruning(trial, prunable=frozen.user_attrs.get("kind", "sampled") == "sampled"))
        run_stages(trial_cfg, until="select")
        value, found = outcome(trial_cfg)
    except optuna.TrialPruned as pruned:
        trial.set_user_attr("seconds", round(time.time() - started, 1))
        trial.set_user_attr("pruned", str(pruned))
        study.tell(number, state=optuna.trial.TrialState.PRUNED)
        return 0
    except Exception as exc:  # the trial failed on its own: recorded, and the sweep goes on
        log.exception("[sweep] trial %d failed", number)
        trial.set_user_attr("failure", f"{type(exc).__name__}: {exc}"[:2000])
        trial.set_user_attr("seconds", round(time.time() - started, 1))
        study.tell(number, state=optuna.trial.TrialState.FAIL)
        return 1
    seconds = time.time() - started
    price = price_per_hour(cfg)
    found |= {"seconds": round(seconds, 1), "dollars": round(seconds / 3600 * price, 4) if price else None}
    for key, item in found.items():
        trial.set_user_attr(key, item)
    trial.set_constraint("floors", found["violation"])  # above 0: infeasible, by how much (TPE reads it)
    study.tell(number, value)
    return 0
