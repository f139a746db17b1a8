"""`tunestack sweep CONFIG [--worker]`: trials over data and settings on Optuna, decided on a dev split.

The main process (no `--worker`):
1. prepares the user's config once in the sweep's run folder (`<runs_dir>/<run.name>-sweep/`): its eval split and
   sealed holdout, and its training rows, from which `sweep/dev.jsonl` is carved (`tunestack.sweep.data`);
2. creates the study (or loads it: an interrupted sweep resumes) and enqueues the planned trials, the user's own
   config first (`tunestack.sweep.space.planned`);
3. starts `sweep.workers - 1` more workers and works as one itself: each worker asks Optuna for a trial (an
   enqueued one first, else the sampler's), runs it in a child process (`tunestack.sweep.trial`) while writing its
   heartbeat, and records a crash as the trial's failure; the budget is checked before each trial;
4. once no trial is left running or waiting, evaluates the finalists on the eval set and lets select choose the
   winner, exports it and reads the holdout for it once (`tunestack.sweep.finalists`), then writes the tables and
   plots (`tunestack.sweep.summary`) and the report.

A worker (`--worker`, on this machine or another sharing the runs folder and an RDB study) does step 3 only.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tunestack.config import Config, config_to_yaml
from tunestack.errors import DataError
from tunestack.pipeline import run_stages
from tunestack.rundir import read_jsonl, write_jsonl
from tunestack.sweep import study as studies
from tunestack.sweep.data import carve_dev, plain, pool
from tunestack.sweep.space import distributions, suggest
from tunestack.sweep.trial import trial_name

log = logging.getLogger("tunestack")


def sweep_config(cfg: Config) -> Config:
    """The sweep's own run: the user's config in the sweep's folder (its name fixed, so that its config names the
    same sweep)."""
    folder = cfg.sweep.folder(cfg.run.name)
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"name": folder}),
                                  "sweep": cfg.sweep.model_copy(update={"name": folder})})


def sweep_root(cfg: Config) -> Path:
    return Path(cfg.run.runs_dir) / cfg.sweep.folder(cfg.run.name)


def split(cfg: Config, root: Path) -> dict:
    """Step 1: the user's data prepared once, and the dev split carved from its training rows (refused when the data
    changed under a sweep that has already run trials on the earlier split)."""
    run_stages(cfg, until="prepare")
    rows = pool(root)
    dev, rest = carve_dev(cfg, rows)
    folder = root / "sweep"
    dev_path, pool_path = folder / "dev.jsonl", folder / "train_pool.jsonl"
    new_dev = [plain(r) for r in dev]
    if dev_path.exists() and read_jsonl(dev_path) != new_dev and any((root / "trials").glob("t*")):
        raise DataError(f"the data changed since this sweep's trials began ({dev_path} would differ): start a new "
                        "sweep (sweep.name) or remove " + str(root))
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(dev_path, new_dev)
    write_jsonl(pool_path, rest)
    (root / "config.yaml").write_text(config_to_yaml(cfg), encoding="utf-8")
    return {"pool": len(rows), "dev": len(dev), "train_pool": len(rest)}


try:
    PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl  # looked up here, not in the forked child
except OSError:  # not Linux
    PRCTL = None


def die_with_parent() -> None:
    """In a child: be killed when the worker that started it dies (Linux), so a killed worker leaves no orphan."""
    if PRCTL is not None:
        PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Heartbeat(threading.Thread):
    """Writes the trial's `heartbeat` every few seconds while its child runs."""

    def __init__(self, study, trial_id: int, every: float):
        super().__init__(daemon=True)
        self.study, self.trial_id, self.every, self.stop = study, trial_id, every, threading.Event()

    def run(self) -> None:
        import optuna
        from optuna.exceptions import UpdateFinishedTrialError

        trial = optuna.trial.Trial(self.study, self.trial_id)
        while not self.stop.wait(self.every):
            try:
                trial.set_user_attr("heartbeat", time.time())
            except UpdateFinishedTrialError:  # the trial has ended
                return
            except Exception as exc:  # a storage hiccup (a dropped connection): beat again at the next tick
                log.debug("[sweep] heartbeat not written: %s", exc)


def run_one(cfg: Config, root: Path, study, space: dict) -> int:
    """Ask for a trial, run it in a child process, and record a crash; returns its number."""
    import optuna

    trial = study.ask()
    params = suggest(trial, space)
    if "kind" not in trial.user_attrs:
        trial.set_user_attr("kind", "sampled")
        trial.set_user_attr("label", "sampled")
    for key, value in {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}.items():
        trial.set_user_attr(key, value)
    name = trial_name(trial.number)
    folder = root / "trials" / name
    folder.mkdir(parents=True, exist_ok=True)
    log.info("[sweep] %s (%s) started: %s", name, trial.user_attrs.get("label"),
             ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items()) or "-")
    beat = Heartbeat(study, trial._trial_id, min(10.0, cfg.sweep.stale_seconds / 4))
    started = time.time()
    with (folder / "console.log").open("a", encoding="utf-8") as out:
        child = subprocess.Popen([sys.executable, "-m", "tunestack", "sweep", str(root / "config.yaml"), "--trial",
                                  str(trial.number)], stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
                                 env={**os.environ, "TQDM_DISABLE": "1"})
        beat.start()  # after the fork: no thread of ours runs while the child is made
        code = child.wait()
    beat.stop.set()
    frozen = study.get_trials(deepcopy=False)[trial.number]
    if frozen.state == optuna.trial.TrialState.RUNNING:  # the child died without telling: killed, out of memory
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        trial.set_user_attr("failure", f"the trial's process ended without a result ({why}; out of memory?); "
                                       f"see {folder / 'console.log'}")
        trial.set_user_attr("seconds", round(time.time() - started, 1))
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        frozen = study.get_trials(deepcopy=False)[trial.number]
    value = f", dev score {frozen.value:.3f}" if frozen.value is not None else ""
    log.info("[sweep] %s %s in %.0f s%s", name, frozen.state.name.lower(), time.time() - started, value)
    return trial.number


def work(cfg: Config, root: Path, study) -> str:
    """Run trials until the budget is spent or none is left; returns why it stopped."""
    space = distributions(cfg) if cfg.sweep.space else {}
    price = studies.price_per_hour(cfg)
    while True:
        for number in studies.fail_lost(study, cfg):
            log.warning("[sweep] %s lost its worker: marked failed and queued again", trial_name(number))
        why = studies.budget_left(study, cfg, price)
        if why:
            return why
        run_one(cfg, root, study, space)


def wait_for_others(cfg: Config, root: Path, study) -> None:
    """Until no trial is running (lost ones are failed and queued again, and then run here)."""
    while True:
        studies.fail_lost(study, cfg)
        found = studies.states(study)
        if found["WAITING"]:
            work(cfg, root, study)
            continue
        if not found["RUNNING"]:
            return
        time.sleep(3)


def start_workers(config_path: Path, n: int, overrides: list[str]) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-m", "tunestack", "--quiet", "sweep", str(config_path), *overrides,
                              "--worker"], preexec_fn=die_with_parent) for _ in range(n)]


def run_sweep(cfg: Config, config_path: Path, overrides: list[str], worker: bool = False) -> dict | None:
    """The sweep of `cfg` (the user's config): the whole of it, or (`worker`) trials only."""
    scfg, root = sweep_config(cfg), sweep_root(cfg)
    if worker:
        study = studies.wait_ready(scfg, root)
        why = work(scfg, root, study)
        log.info("[sweep] worker done: %s", why)
        return None
    from tunestack.sweep.finalists import finals
    from tunestack.sweep.summary import write_summary

    if scfg.sweep.pruner.kind != "none" and not scfg.train.evaluate_checkpoints:
        log.warning("[sweep] train.evaluate_checkpoints is off: no checkpoint is scored while training, so the pruner "
                    "cannot stop a trial early")
    counts = split(scfg, root)
    log.info("[sweep] %d training rows: %d dev rows carved off, %d left to train on", counts["pool"], counts["dev"],
             counts["train_pool"])
    study = studies.open_study(scfg, root, create=True)
    studies.enqueue_planned(study, scfg)
    helpers = start_workers(config_path, scfg.sweep.workers - 1, overrides)
    why = work(scfg, root, study)
    log.info("[sweep] no further trial: %s", why)
    wait_for_others(scfg, root, study)
    for helper in helpers:
        helper.wait()
    final = finals(scfg, root, study)
    return write_summary(scfg, root, study, counts, final)
