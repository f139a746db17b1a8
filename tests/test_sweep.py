"""`tunestack sweep`: trials on Optuna decided on a dev split, finalists on the eval set, one holdout read.

The pure parts are checked against planted inputs whose answer is known by construction (the planned trials of a
space, nested shares of rows, a learning curve laid on a known slope, a running trial whose worker is gone). The
sweep itself runs for real on the tiny model: trials in child processes, a journal-file study, a worker killed with
SIGKILL, a pruned trial with a planted learning rate, and a study in a real PostgreSQL server where one can start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tunestack.config import load_config
from tunestack.rundir import file_hash, read_json, read_jsonl


def sweep_config(tmp_path: Path, tiny_config: Path, **sweep) -> Path:
    """The tiny config with the demo's two sources (the production logs as the second) and a `sweep` section."""
    cfg = yaml.safe_load(tiny_config.read_text())
    data = Path(cfg["data"]["path"]).parent
    cfg["data"] = {"sources": [{"path": str(data / "radiology.jsonl")},
                               {"path": str(data / "radiology_logs.csv"), "name": "logs",
                                "columns": {"prompt": "report", "completion": "label", "system": "instructions",
                                            "rating": "score"},
                                "provenance": "production", "max_removed_share": 0.8}],
                   "eval_size": 12, "holdout_size": 8, "max_length": 256}
    cfg["train"].update(epochs=1, num_checkpoints=2)
    cfg["evaluate"]["retention"] = {"choices": 0, "quartz_examples": 8, "max_probes": 4, "instructions": 6,
                                    "instruction_max_new_tokens": 16}
    cfg["sweep"] = {"trials": 4, "finalists": 2, "dev_size": 12, "learning_curve": [0.5],
                    "space": {"data.sources.logs": ["in", "out"], "train.learning_rate": [3e-3, 1e-2]}, **sweep}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def tunestack(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunestack", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def messages_of(path: Path) -> set[str]:
    return {json.dumps(r["messages"], sort_keys=True) for r in read_jsonl(path)}


# ---------------------------------------------------------------------------------------------------------------
# Pure parts, on planted inputs


def test_planned_trials_baseline_first_then_ablations_then_curve(tiny_config, tmp_path):
    from tunestack.sweep.space import distributions, planned

    cfg = load_config(sweep_config(tmp_path, tiny_config))
    found = planned(cfg)
    assert [p["kind"] for p in found] == ["baseline", "ablation", "learning_curve"]
    assert found[0]["params"] == {"data.sources.logs": "in", "train.learning_rate": 3e-3}  # the config's own values
    assert found[1]["params"]["data.sources.logs"] == "out" and found[1]["ablates"] == "data.sources.logs"
    assert found[2]["fixed"] == {"data.fraction": 0.5} and found[2]["params"] == found[0]["params"]
    # a list of choices gains the config's own value where it lacks it
    cfg = load_config(sweep_config(tmp_path, tiny_config, space={"train.learning_rate": [1e-2]}))
    assert distributions(cfg)["train.learning_rate"].choices == (3e-3, 1e-2)
    # a count's range samples whole numbers; a true/false key keeps its booleans (only sources and tiers are in/out)
    cfg = load_config(sweep_config(tmp_path, tiny_config, space={"train.lora.r": {"low": 4, "high": 32},
                                                                 "train.gradient_checkpointing": [True, False]}))
    found = distributions(cfg)
    assert type(found["train.lora.r"]).__name__ == "IntDistribution"
    assert found["train.gradient_checkpointing"].choices == (True, False)


def test_space_problems_are_named(tiny_config, tmp_path):
    from tunestack.errors import ConfigError

    bad = {"data.sources.nope": ["in", "out"], "train.learning_rat": [1e-3], "train.lora.r": [0],
           "data.tiers.robots": ["in", "out"]}
    with pytest.raises(ConfigError) as err:
        load_config(sweep_config(tmp_path, tiny_config, space=bad))
    text = str(err.value)
    for expected in ("no source named 'nope'", "train.learning_rat is not a config key", "train.lora.r: 0 is refused",
                     "data.tiers.robots: the tiers are"):
        assert expected in text
    with pytest.raises(ConfigError, match=r"data.tiers.synthetic takes \[in, out\]"):
        load_config(sweep_config(tmp_path, tiny_config, space={"data.tiers.synthetic": ["maybe"]}))
    with pytest.raises(ConfigError) as err:
        load_config(sweep_config(tmp_path, tiny_config, space={"data.sources.logs.weight": [0, 2],
                                                               "data.fraction": [0.5, 1.5]}))
    assert "a source weight is above 0" in str(err.value) and "a share of the rows is above 0" in str(err.value)
    with pytest.raises(ConfigError, match="log or step, not both"):
        load_config(sweep_config(tmp_path, tiny_config, space={"train.learning_rate": {"low": 1e-4, "high": 1e-2,
                                                                                        "log": True, "step": 1e-4}}))


def test_shares_of_rows_are_nested():
    from tunestack.sweep.data import kept_share

    rows = [{"i": i} for i in range(200)]
    quarter, half = kept_share(rows, 0.25, 0), kept_share(rows, 0.5, 0)
    assert len(quarter) == 50 and len(half) == 100
    assert {r["i"] for r in quarter} <= {r["i"] for r in half}  # a learning curve adds rows, never swaps them


def test_trial_data_view_follows_its_settings(tiny_config, tmp_path):
    from tunestack.sweep.data import trial_sources

    cfg = load_config(sweep_config(tmp_path, tiny_config))
    rows = ([{"messages": [{"role": "user", "content": f"a{i}"}, {"role": "assistant", "content": "x"}],
              "origin": "radiology.jsonl", "source": "human", "file": "f", "line": i} for i in range(40)]
            + [{"messages": [{"role": "user", "content": f"b{i}"}, {"role": "assistant", "content": "y"}],
                "origin": "logs", "source": "production", "file": "g", "line": i} for i in range(10)])
    everything = trial_sources(cfg, tmp_path / "sweep", rows, {"data.sources.logs": "in"})
    assert [(s["name"], len(read_jsonl(Path(s["path"])))) for s in everything] == [("radiology.jsonl", 40), ("logs", 10)]
    without = trial_sources(cfg, tmp_path / "sweep", rows, {"data.sources.logs": "out", "data.fraction": 0.5})
    assert [(s["name"], len(read_jsonl(Path(s["path"])))) for s in without] == [("radiology.jsonl", 20)]
    no_tier = trial_sources(cfg, tmp_path / "sweep", rows, {"data.tiers.production": "out"})
    assert [s["name"] for s in no_tier] == ["radiology.jsonl"]
    again = trial_sources(cfg, tmp_path / "sweep", rows, {"data.sources.logs": "in"})
    assert [s["path"] for s in again] == [s["path"] for s in everything]  # the same rows are the same file


def planted_trial_row(root: Path, name: str, rows: int, correct: list[int], kind: str = "learning_curve") -> dict:
    """A finished trial whose chosen checkpoint answered the dev rows as `correct` says."""
    folder = root / "trials" / name / "evaluate"
    folder.mkdir(parents=True)
    model = {"name": "step-1", "task_accuracy": float(np.mean(correct)), "general_retention": 1.0,
             "per_example": {"metrics": {"task_accuracy": correct}, "format": [1] * len(correct)}}
    base = {"name": "base", "task_accuracy": 0.0, "general_retention": 1.0,
            "per_example": {"metrics": {"task_accuracy": [0] * len(correct)}, "format": [1] * len(correct)}}
    (folder / "manifest.json").write_text(json.dumps({"models": [base, model]}))
    return {"name": name, "kind": kind, "state": "complete", "chosen": "step-1", "train_rows": rows,
            "params": {"data.fraction": rows / 400}}


def test_learning_curve_recovers_a_planted_slope(tmp_path):
    from tunestack.sweep.summary import learning_curve

    n = 400
    rng = np.random.default_rng(0)
    planted = {100: 0.50, 200: 0.60, 400: 0.70}  # +10 points per doubling, by construction
    rows = []
    for i, (train_rows, share) in enumerate(planted.items()):
        correct = [int(v) for v in rng.permutation([1] * int(share * n) + [0] * (n - int(share * n)))]
        rows.append(planted_trial_row(tmp_path, f"t{i:03d}", train_rows, correct,
                                      "baseline" if train_rows == 400 else "learning_curve"))
    curve = learning_curve(tmp_path, rows, seed=0)
    assert curve["per_doubling"] == pytest.approx(0.10, abs=1e-9)
    low, high = curve["per_doubling_ci95"]
    assert low < 0.10 < high and high - low < 0.1
    assert [p["train_rows"] for p in curve["points"]] == [100, 200, 400]


def test_a_lost_worker_trial_is_failed_and_queued_again_once(tmp_path, tiny_config):
    import optuna

    from tunestack.sweep.study import LOST, alive_here, counted, fail_lost, open_study

    cfg = load_config(sweep_config(tmp_path, tiny_config))
    study = open_study(cfg, tmp_path, create=True)
    trial = study.ask()
    trial.suggest_float("train.learning_rate", 1e-4, 1e-2)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that has ended: the worker is gone
    for key, value in {"host": socket.gethostname(), "pid": dead.pid, "heartbeat": time.time(),
                       "kind": "baseline", "label": "baseline", "fixed": {}}.items():
        trial.set_user_attr(key, value)
    alive = study.ask()  # this worker (this process) lives: its trial is left alone
    alive.set_user_attr("host", socket.gethostname())
    alive.set_user_attr("pid", os.getpid())
    assert fail_lost(study, cfg) == [trial.number]
    assert fail_lost(study, cfg) == []  # a second look finds nothing more to do: one retry only
    trials = study.get_trials()
    assert trials[trial.number].state == optuna.trial.TrialState.FAIL
    assert trials[trial.number].user_attrs["failure"] == LOST
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == trial.number
    assert waiting[0].params == trials[trial.number].params or waiting[0].system_attrs["fixed_params"] == \
        trials[trial.number].params
    assert counted(study) == 2  # the lost trial does not count against the budget; its retry and the live one do
    zombie = subprocess.Popen(["sleep", "30"])
    zombie.send_signal(signal.SIGKILL)
    time.sleep(0.5)  # killed and not reaped: it still answers signal 0, and is gone all the same
    assert alive_here({"host": socket.gethostname(), "pid": zombie.pid}) is False
    zombie.wait()


def test_budget_in_trials_hours_and_dollars(tmp_path, tiny_config):
    import optuna

    from tunestack.sweep.study import budget_left, open_study

    cfg = load_config(sweep_config(tmp_path, tiny_config, trials=2, dollars=1.0))
    study = open_study(cfg, tmp_path, create=True)
    study.set_user_attr("planned", time.time())
    assert budget_left(study, cfg, 10.0) is None
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs={"seconds": 1800},
                                              params={}, distributions={}))
    assert budget_left(study, cfg, 0.1) is None  # half an hour spent and another to come at $0.10 an hour: $0.10
    assert "sweep.dollars" in budget_left(study, cfg, 1.2)  # at $1.20 an hour: $0.60 spent, $1.20 with the next
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    assert "2 trials run" in budget_left(study, cfg, None)
    study.enqueue_trial({})
    assert budget_left(study, cfg, None) is None  # a queued trial was planned within the budget
    hours = load_config(sweep_config(tmp_path, tiny_config, trials=9, hours=0.3))
    short = open_study(hours, tmp_path / "h", create=True)
    short.set_user_attr("planned", time.time())
    short.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={"seconds": 900}, params={}, distributions={}))
    assert budget_left(short, hours, None) is None  # 15 minutes in, one more of 15 fits in 18
    short.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={"seconds": 900}, params={}, distributions={}))
    short.set_user_attr("planned", time.time() - 600)
    assert "sweep.hours" in budget_left(short, hours, None)  # 10 minutes gone, and 15 more would pass 18


# ---------------------------------------------------------------------------------------------------------------
# A real sweep on the tiny model


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model):
    """One sweep of four trials (the config, the logs left out, half the rows, one sampled) on the tiny model."""
    from conftest import tiny_config as make_config

    folder = tmp_path_factory.mktemp("sweep")
    path = sweep_config(folder, make_config.__wrapped__(folder, tiny_model))
    done = tunestack("sweep", str(path))
    assert done.returncode == 0, done.stderr[-4000:]
    cfg = load_config(path)
    return path, cfg, Path(cfg.run.runs_dir) / "tiny-sweep", done


def test_sweep_runs_trials_on_a_dev_split_and_the_winner_meets_eval_and_holdout_once(swept):
    path, cfg, root, done = swept
    body = read_json(root / "sweep" / "sweep.json")
    trials = body["trials"]
    assert [t["label"] for t in trials[:3]] == ["baseline", "without logs", "50% of the rows"]
    assert len(trials) == cfg.sweep.trials and trials[3]["kind"] == "sampled"
    assert all(t["state"] in ("complete", "pruned") for t in trials)
    dev = messages_of(root / "sweep" / "dev.jsonl")
    assert len(dev) == cfg.sweep.dev_size
    held = messages_of(root / "prepare" / "eval.jsonl") | messages_of(root / "prepare" / "holdout.jsonl")
    for t in trials:
        trained = messages_of(root / "trials" / t["name"] / "prepare" / "train.jsonl")
        assert not trained & dev and not trained & held  # no trial trains on a dev, eval or holdout row
        assert messages_of(root / "trials" / t["name"] / "prepare" / "eval.jsonl") == dev  # scored on the dev split
        assert not (root / "trials" / t["name"] / "holdout").exists()
    without = read_jsonl(root / "trials" / "t001" / "prepare" / "train.jsonl")
    assert {r["origin"] for r in without} == {"radiology.jsonl"}
    # the eval set saw the finalists only, and the holdout the winner only, once
    finals = body["finals"]["finalists"]
    assert 1 <= len(finals) <= cfg.sweep.finalists
    ledger = [json.loads(line) for line in (Path(cfg.data.sources[0].path).parent / "tunestack-ledger.jsonl")
              .read_text().splitlines()]
    eval_hash = file_hash(root / "prepare" / "eval.jsonl")
    decisions = [e for e in ledger if e["kind"] == "eval_decision" and e["sha256"] == eval_hash]
    assert sorted(e["sweep_finalist"] for e in decisions) == sorted(finals)
    reads = [e for e in ledger if e["kind"] == "holdout_read"]
    assert len(reads) == 1 and body["ledger"]["holdout_reads"] == 1
    chosen = read_json(root / "select" / "manifest.json")["chosen"]
    assert chosen == body["finals"]["chosen"] and read_json(root / "holdout" / "manifest.json")["model"] == chosen
    assert (root / "export" / "model").is_dir()
    page = (root / "report.html").read_text()
    for text in ("Trials", "without logs", "Learning curve", "Data ablations", "learning curve"):
        assert text in page
    assert "report:" in done.stdout


def test_trials_with_the_same_data_section_share_one_prepare(swept):
    path, cfg, root, _ = swept
    body = read_json(root / "sweep" / "sweep.json")
    sections = {}
    for t in body["trials"]:
        data = yaml.safe_load((root / "trials" / t["name"] / "config.yaml").read_text())["data"]
        sections.setdefault(json.dumps(data, sort_keys=True), []).append(t)
    assert body["prepares"] == 1 + len(sections)  # the sweep's own, then one per distinct data section
    for group in sections.values():
        assert [t["prepare"] for t in group][0] == "run"
        assert all(t["prepare"].startswith("shared with") for t in group[1:])


def test_a_trial_reruns_from_its_folder_to_the_same_result(swept, tmp_path):
    path, cfg, root, _ = swept
    trial = root / "trials" / "t000"
    copy = yaml.safe_load((trial / "config.yaml").read_text())
    copy["run"]["runs_dir"] = str(tmp_path)
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(copy, sort_keys=False))
    done = tunestack("select", str(again))
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = read_json(trial / "select" / "manifest.json"), read_json(tmp_path / "t000" / "select" /
                                                                             "manifest.json")
    assert first["chosen"] == second["chosen"]
    assert [r["score"] for r in first["table"]] == [r["score"] for r in second["table"]]
    name = first["chosen"]
    assert read_jsonl(trial / "evaluate" / f"{name}.outputs.jsonl") == \
        read_jsonl(tmp_path / "t000" / "evaluate" / f"{name}.outputs.jsonl")


def test_a_planted_bad_learning_rate_is_pruned_at_its_first_checkpoint(tmp_path, tiny_config):
    """A resumed sweep: the config alone first, then a sampled trial with a learning rate that wrecks the model is
    queued and the sweep run again with room for it."""
    from tunestack.sweep.study import open_study

    path = sweep_config(tmp_path, tiny_config, trials=1, learning_curve=[], ablations=False,
                        pruner={"kind": "percentile", "startup_trials": 1},
                        space={"train.learning_rate": {"low": 1e-3, "high": 0.95, "log": True}})
    assert tunestack("sweep", str(path)).returncode == 0
    cfg = load_config(path)
    root = Path(cfg.run.runs_dir) / "tiny-sweep"
    study = open_study(cfg, root)
    study.enqueue_trial({"train.learning_rate": 0.9}, user_attrs={"kind": "sampled", "label": "planted", "fixed": {}})
    done = tunestack("sweep", str(path), "sweep.trials=2")
    assert done.returncode == 0, done.stderr[-3000:]
    trials = read_json(root / "sweep" / "sweep.json")["trials"]
    assert trials[0]["state"] == "complete"
    planted = trials[1]
    assert planted["label"] == "planted" and planted["state"] == "pruned"
    assert [r["index"] for r in planted["reported"]] == [1]  # stopped at its first checkpoint
    assert planted["reported"][0]["score"] < trials[0]["score"]
    published = sorted((root / "trials" / "t001" / "train" / "checkpoints").glob("step-*"))
    assert len(published) == 1  # the second checkpoint was never trained


def test_two_workers_share_a_study_and_a_killed_worker_loses_no_trial(tmp_path, tiny_config):
    """The main process and a worker on one journal-file study; the worker is killed (SIGKILL) while it runs a
    trial: that trial is marked failed, queued again and run, and every planned trial ends once."""
    import optuna

    from tunestack.sweep.study import LOST, open_study

    path = sweep_config(tmp_path, tiny_config, trials=4, learning_curve=[0.5, 0.75], stale_seconds=30)
    cfg = load_config(path)
    root = Path(cfg.run.runs_dir) / "tiny-sweep"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    main = subprocess.Popen([sys.executable, "-m", "tunestack", "sweep", str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = subprocess.Popen([sys.executable, "-m", "tunestack", "sweep", str(path), "--worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed, deadline = None, time.time() + 600
    while killed is None and time.time() < deadline:
        time.sleep(1)
        try:
            study = open_study(cfg, root)
        except Exception:
            continue
        mine = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING
                and t.user_attrs.get("pid") == worker.pid]
        if mine:
            time.sleep(3)  # mid-trial
            worker.send_signal(signal.SIGKILL)
            killed = mine[0].number
    worker.wait()
    assert killed is not None, "the worker never ran a trial"
    out, err = main.communicate(timeout=900)
    assert main.returncode == 0, err[-4000:]
    trials = open_study(cfg, root).get_trials()
    lost = trials[killed]
    assert lost.state == optuna.trial.TrialState.FAIL and lost.user_attrs["failure"] == LOST
    ended = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    labels = [t.user_attrs["label"] for t in ended]
    assert sorted(labels) == sorted(["baseline", "without logs", "50% of the rows", "75% of the rows"])
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed]
    assert len(retry) == 1 and retry[0].state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert read_json(root / "sweep" / "sweep.json")["finals"]["finalists"]


def postgres_server(tmp_path: Path) -> tuple[str, list[str]] | None:
    """A PostgreSQL server of Debian's `postgresql` package started in `tmp_path` (as the `postgres` user when this
    is root, which initdb refuses): its URL and the command that stops it; None where none can start."""
    bindir = next((p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None) \
        if Path("/usr/lib/postgresql").is_dir() else None
    if bindir is None and shutil.which("initdb") is None:
        return None
    initdb, pg_ctl = (str(bindir / n) if bindir else shutil.which(n) for n in ("initdb", "pg_ctl"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # pytest's temporary folders are this user's alone: as root, the server's folder is one `postgres` can reach
    data = (Path(tempfile.mkdtemp(prefix="tunestack-pg-")) if as_user else tmp_path) / "pg"
    data.mkdir()
    if as_user:
        shutil.chown(data, "postgres")
        os.chmod(data.parent, 0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    steps = [[*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
             [*as_user, pg_ctl, "-D", str(data), "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "-w",
              "-l", str(data / "log"), "start"]]
    for step in steps:
        if subprocess.run(step, capture_output=True, timeout=120).returncode != 0:
            return None
    return (f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres",
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"])


def test_a_study_in_postgresql(tmp_path, tiny_config):
    """Workers on several machines share a study through an RDB URL: here a real PostgreSQL server on 127.0.0.1."""
    import optuna

    server = postgres_server(tmp_path)
    if server is None:
        pytest.skip("no PostgreSQL server could be started here (Debian's postgresql package: `make postgres`)")
    url, stop = server
    try:
        path = sweep_config(tmp_path, tiny_config, trials=2, learning_curve=[], storage=url, finalists=1)
        done = tunestack("sweep", str(path))
        assert done.returncode == 0, done.stderr[-3000:]
        study = optuna.load_study(study_name="tiny-sweep", storage=url)
        assert [t.state.name for t in study.get_trials()] in (["COMPLETE", "COMPLETE"], ["COMPLETE", "PRUNED"])
        assert not (Path(load_config(path).run.runs_dir) / "tiny-sweep" / "sweep" / "study.journal").exists()
    finally:
        subprocess.run(stop, capture_output=True, timeout=60)
