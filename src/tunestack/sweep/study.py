"""The Optuna study a sweep's workers share: its storage, sampler and pruner, the planned trials, the budget, and
what becomes of a trial whose worker died.

**Storage.** By default an Optuna journal file in the sweep folder (`sweep/study.journal`): no server, and several
processes on one machine append to it under a file lock. `sweep.storage` takes an RDB URL instead (PostgreSQL, MySQL)
for workers on several machines. SQLite is refused: it locks the whole database file on every write, and a sweep
writes from several processes at once (each trial, its worker's heartbeat, other workers).

**Dead workers.** Optuna's own heartbeat (a stale trial failed and retried by `RetryFailedTrialCallback`) exists for
RDB storage only, not for the journal file this sweep uses by default, so tunestack keeps its own, the same on every
storage: the worker running a trial writes `heartbeat` (a time) into the trial's user attributes every few seconds,
beside its host and process id. A running trial whose heartbeat is older than `sweep.stale_seconds` (on any machine:
a process id can be reused after a restart), or whose worker was on this machine and is gone, is marked failed (`failure: worker lost`) by the next worker that looks, and enqueued
again with the same settings (`retry_of`). Only the worker whose state change lands enqueues the retry, so a lost
trial runs again exactly once. A trial that fails on its own (an error, killed for memory) is recorded as failed
and not retried: it would fail again.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from tunestack.config import Config
from tunestack.errors import ConfigError

LOST = "worker lost"
READY = "planned"
"""The study's user attribute saying its planned trials are enqueued (workers wait for it)."""


def journal_path(root: Path) -> Path:
    return root / "sweep" / "study.journal"


def storage(cfg: Config, root: Path):
    """The study's storage: the journal file in the sweep folder, or `sweep.storage`'s RDB URL."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    url = cfg.sweep.storage
    if url is None:
        path = journal_path(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    if url.startswith("sqlite"):
        raise ConfigError([("sweep.storage", "SQLite locks the whole file on every write, and a sweep writes from "
                            "several processes at once (each trial, its worker's heartbeat, other workers), which "
                            "fail with 'database is locked': leave sweep.storage unset (a journal file) or use "
                            "PostgreSQL")])
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def open_study(cfg: Config, root: Path, create: bool = False):
    """The sweep's study, created (with `create`) or loaded."""
    import optuna

    sweep = cfg.sweep
    p = sweep.pruner
    if p.kind == "none":
        pruner = optuna.pruners.NopPruner()
    elif p.kind == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_checkpoints)
    else:
        pruner = optuna.pruners.PercentilePruner(p.percentile, n_startup_trials=p.startup_trials,
                                                 n_warmup_steps=p.warmup_checkpoints)
    from tunestack.sweep.space import planned

    if sweep.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=cfg.run.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=cfg.run.seed, n_startup_trials=max(3, len(planned(cfg))))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = sweep.folder(cfg.run.name)
    store = storage(cfg, root)
    if create:
        return optuna.create_study(storage=store, study_name=name, direction="maximize", sampler=sampler,
                                   pruner=pruner, load_if_exists=True)
    return optuna.load_study(storage=store, study_name=name, sampler=sampler, pruner=pruner)


def enqueue_planned(study, cfg: Config) -> None:
    """The planned trials (`tunestack.sweep.space.planned`), once per study, the baseline first."""
    from tunestack.sweep.space import planned

    if study.user_attrs.get(READY):
        return
    queued = {t.user_attrs.get("label") for t in study.get_trials(deepcopy=False)}  # a crash mid-way queued these
    for item in planned(cfg)[: cfg.sweep.trials]:
        if item["label"] in queued:
            continue
        study.enqueue_trial(item["params"], user_attrs={"kind": item["kind"], "label": item["label"],
                                                        "fixed": item["fixed"], "ablates": item.get("ablates")})
    study.set_user_attr(READY, time.time())


def wait_ready(cfg: Config, root: Path, timeout: float = 3600):
    """A worker's study once the main process has enqueued the planned trials."""
    deadline = time.time() + timeout
    while True:
        try:
            study = open_study(cfg, root)
            if study.user_attrs.get(READY):
                return study
        except KeyError:  # not created yet
            pass
        if time.time() > deadline:
            raise ConfigError([("sweep", f"no sweep study '{cfg.sweep.folder(cfg.run.name)}' was started within "
                                f"{timeout:.0f} s: run `tunestack sweep CONFIG` (without --worker) first")])
        time.sleep(2)


def states(study) -> dict[str, list]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return {state.name: [t for t in trials if t.state == state] for state in TrialState}


def counted(study) -> int:
    """Trials that count against the budget: all but those lost with their worker (their retry counts instead)."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if not (t.state == TrialState.FAIL and t.user_attrs.get("failure") == LOST))


def alive_here(attrs: dict) -> bool | None:
    """Whether the worker that owns a trial is alive, when it ran on this machine (None: another machine)."""
    if attrs.get("host") != socket.gethostname() or not attrs.get("pid"):
        return None
    try:
        os.kill(int(attrs["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process its parent has not reaped yet still answers signal 0: it is a zombie, and gone
        return Path(f"/proc/{int(attrs['pid'])}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def fail_lost(study, cfg: Config) -> list[int]:
    """Mark failed every running trial whose worker is gone, and enqueue each again (once); returns their numbers."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    lost, now = [], time.time()
    for t in states(study)["RUNNING"]:
        attrs = t.user_attrs
        here = alive_here(attrs)
        stale = now - float(attrs.get("heartbeat", t.datetime_start.timestamp())) > cfg.sweep.stale_seconds
        if here is False or stale:  # a live worker beats every few seconds; a process id can be reused
            try:
                study._storage.set_trial_user_attr(t._trial_id, "failure", LOST)
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except (UpdateFinishedTrialError, RuntimeError):
                continue  # another worker got there first, or it finished after all
            params = t.system_attrs.get("fixed_params") or t.params  # as it was queued or sampled
            study.enqueue_trial(params, user_attrs={k: attrs.get(k) for k in ("kind", "label", "fixed", "ablates")}
                                | {"retry_of": t.number})
            lost.append(t.number)
    return lost


def seconds(frozen) -> float | None:
    """How long a trial ran: as its worker measured it, else from its start and end."""
    if frozen.user_attrs.get("seconds") is not None:
        return float(frozen.user_attrs["seconds"])
    if frozen.datetime_start and frozen.datetime_complete:
        return (frozen.datetime_complete - frozen.datetime_start).total_seconds()
    return None


def budget_left(study, cfg: Config, price_per_hour: float | None) -> str | None:
    """Why no further trial may start (None: one may): the trial count, the hours or the dollars would be passed.
    A waiting (enqueued) trial was planned within the budget and always may."""
    sweep = cfg.sweep
    found = states(study)
    if found["WAITING"]:
        return None
    if counted(study) >= sweep.trials:
        return f"{sweep.trials} trials run (sweep.trials)"
    if not sweep.space:
        return "the search space is empty: the planned trials are all there is to run"
    lengths = [seconds(t) for t in found["COMPLETE"] + found["PRUNED"]]
    lengths = [s for s in lengths if s is not None]
    mean = sum(lengths) / len(lengths) if lengths else 0.0
    started = float(study.user_attrs.get(READY, time.time()))  # since the sweep began: a stop in between counts
    if sweep.hours is not None and time.time() - started + mean > sweep.hours * 3600:
        return f"another trial of {mean / 60:.0f} min would pass sweep.hours ({sweep.hours})"
    if sweep.dollars is not None and price_per_hour is not None:
        spent = sum(seconds(t) or 0.0 for t in study.get_trials(deepcopy=False)) / 3600 * price_per_hour  # failed too
        if spent + mean / 3600 * price_per_hour > sweep.dollars:
            return f"${spent:.2f} spent; another trial would pass sweep.dollars ({sweep.dollars})"
    return None


def price_per_hour(cfg: Config) -> float | None:
    """What an hour of a trial costs, priced as the cost stage prices training (`cost.training.gpu` x its count)."""
    from tunestack.cost.inputs import gpu_price

    try:
        gpus = cfg.cost.training.num_gpus or 1
        return gpu_price(cfg.cost, cfg.cost.training.gpu, "training.price_per_hour").value * gpus
    except (KeyError, AttributeError):
        return None
