"""The finalists on the eval set, the winner by select's rules, its export and its one holdout read.

The best `sweep.finalists` trials on the dev split (feasible first: their chosen checkpoint passed select's floors
there; ties on the dev score go to the cheaper trial) bring the checkpoint each chose on the dev split to the sweep's
own run folder, whose train manifest lists them as its checkpoints (`tNNN-step-NNNNNN`, each with its trial's
train-stage time as its cost). From there the run goes on as any run does: the evaluate stage scores the base model
and the finalists on the eval set, select chooses among them with its floors, intervals and further retention looks
(a tie within noise goes to the cheaper configuration) and records one eval-set decision per finalist in the data
ledger, export merges the winner, and the holdout stage reads the sealed holdout once, for the winner. The winner
is not retrained on the training and dev rows together: what ships is the checkpoint that was measured, and a
retrained model would meet the holdout unevaluated.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tunestack.config import Config
from tunestack.data.holdout import ensure_unread
from tunestack.data.ledger import ledger_path
from tunestack.errors import GuardError
from tunestack.evaluate.core import weights_hash
from tunestack.pipeline import execute, inputs_hash
from tunestack.rundir import RunDir, content_hash, read_json
from tunestack.sweep.trial import trial_name

log = logging.getLogger("tunestack")


def ranked(study) -> list:
    """Finished trials, best first: feasible before infeasible, then the dev score, then the cheaper."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    return sorted(done, key=lambda t: (bool(t.user_attrs.get("violation")), -t.value, training_seconds(t)))


def training_seconds(frozen) -> float:
    """What a trial's configuration costs: its train stage's time (what another run of it would pay; a prepare
    shared with an earlier trial is not its saving)."""
    return float(frozen.user_attrs.get("train_seconds") or frozen.user_attrs.get("seconds") or 0)


def finalist_checkpoints(root: Path, trials: list) -> list[dict]:
    """Each finalist's chosen checkpoint as the sweep run's checkpoint."""
    out = []
    for t in trials:
        name = trial_name(t.number)
        published = read_json(root / "trials" / name / "train" / "manifest.json")["checkpoints"]
        meta = next(c for c in published if c["name"] == t.user_attrs["chosen"])
        out.append({**meta, "name": f"{name}-{meta['name']}", "trial": t.number, "cost": training_seconds(t)})
    return out


def finals(cfg: Config, root: Path, study) -> dict:
    """Evaluate, select, export and validate on the holdout, in the sweep's run folder; returns what was done."""
    from tunestack.select.stage import run_select

    best = ranked(study)
    trials = [t for t in best if not t.user_attrs.get("violation")][: cfg.sweep.finalists]
    if not trials:
        log.warning("[sweep] no trial chose a checkpoint that passes select's floors on the dev split: no finalist")
        return {"finalists": [], "note": "no trial chose a checkpoint that passed select's floors on the dev split, so "
                                         "none was taken to the eval set"}
    run = RunDir(root)
    checkpoints = finalist_checkpoints(root, trials)
    key = content_hash([(c["name"], weights_hash(c["path"])) for c in checkpoints])
    if not run.is_current("train", key):
        run.invalidate("train")
        run.finish("train", key, {"method": cfg.train.method, "checkpoints": checkpoints,
                                  "finalists": [c["trial"] for c in checkpoints],
                                  "note": "a sweep's finalists: each trial's checkpoint chosen on the dev split"},
                   time.time())
    log.info("[sweep] finalists on the eval set: %s", ", ".join(c["name"] for c in checkpoints))
    note = None
    for stage in ("evaluate", "select", "export", "holdout"):
        if stage == "export" and not cfg.export.enabled:
            continue
        wanted = inputs_hash(cfg, run, stage)
        if run.is_current(stage, wanted):
            continue
        if stage == "holdout":
            try:
                ensure_unread(run, ledger_path(cfg))
            except GuardError as refused:  # read before, by this sweep or another run of the same data and seed
                log.warning("[holdout] not read again: %s", refused)
                note = str(refused)
                continue
        log.info("[%s] running", stage)
        run.invalidate(stage)
        started = time.time()
        if stage == "select":
            result = run_select(cfg, run, finalists=[c["name"] for c in checkpoints])
        else:
            result = execute(cfg, run, stage)
        run.finish(stage, wanted, result, started)
        log.info("[%s] done in %.1fs", stage, time.time() - started)
    return {"finalists": [c["name"] for c in checkpoints], "chosen": run.require("select")["chosen"],
            "holdout_refused": note}
