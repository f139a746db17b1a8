"""Killed stages: prepare, evaluate and export are SIGKILLed at several points each, and re-run.

The kill points are deterministic: `tunestack.rundir.KILL_AT` (`<file name>:<before|midway|after>[:<n>]`) makes the
atomic writers kill the process just before the n-th write of a file starts, midway through it (its temporary file
left half written) or just after it is published; export has the same three points around its model folder. For
each stage the killed runs follow one another, each the re-run of the kill before it and dying at a later write,
then a plain re-run completes. After every kill nothing looks complete that is not: the stage has no manifest, and
every file under its real name is byte for byte the uninterrupted run's (a cut write left only a temporary). After
the re-run the stage's artifacts equal the uninterrupted run's (manifests up to timing), no temporary is left, and
`tunestack run` finds every stage up to date.

The uninterrupted run is `python -m tunestack run`. The killed runs and re-runs are `tunestack.cli.main` in a process
forked for each from one warm interpreter (`Forks`), so that each costs about a second, not the five of importing
torch and transformers again; the kill is a real SIGKILL of that process.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunestack.rundir import KILL_AT

pytestmark = pytest.mark.integration

VOLATILE = {"finished_at", "seconds", "reused"}
"""Manifest keys that differ between an interrupted and an uninterrupted run by design: timing, and how many models
`evaluate` found already evaluated (by the killed attempts) and reused."""
INTERIM = {"prepare/rejects.jsonl"}
"""Written twice by prepare (first so that a stop has its rejects listed): the first version is complete but interim."""

SERVER = r"""
import json, os, sys, traceback
import torch, transformers, peft
transformers.AutoModelForCausalLM, transformers.AutoTokenizer
import tunestack.cli, tunestack.data.prepare, tunestack.evaluate.stage, tunestack.export.stage, tunestack.select.stage
reply = os.fdopen(os.dup(1), "w")
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.environ.clear()
        os.environ.update(job["env"])
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        try:
            code = tunestack.cli.main(job["args"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    reply.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
    reply.flush()
"""


class Forks:
    """Runs `tunestack ARGS` in a child forked from a server that has imported torch, transformers and tunestack
    (nothing computed, so no thread pool to break by forking); returns (exit status, -9 when killed; output)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0
        self.server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                                       start_new_session=True)

    def __call__(self, *args: str, kill_at: str | None = None) -> tuple[int, str]:
        self.count += 1
        log = self.folder / f"run-{self.count}.log"
        env = {k: v for k, v in os.environ.items() if k != KILL_AT}
        env["HF_HUB_OFFLINE"] = "1"
        if kill_at:
            env[KILL_AT] = kill_at
        self.server.stdin.write(json.dumps({"args": list(args), "env": env, "log": str(log)}) + "\n")
        self.server.stdin.flush()
        ready, _, _ = select.select([self.server.stdout], [], [], 600)
        if not ready:
            self.close(kill=True)
            pytest.fail(f"tunestack {' '.join(args)} (kill at {kill_at}) did not end within 600 s")
        line = self.server.stdout.readline()
        assert line, "the fork server died"
        return json.loads(line)["rc"], log.read_text(errors="replace")

    def close(self, kill: bool = False) -> None:
        if kill:
            os.killpg(self.server.pid, signal.SIGKILL)
        else:
            self.server.stdin.close()
        self.server.wait(timeout=60)


def is_temporary(rel: Path) -> bool:
    """A writer's unpublished file (`rundir.temporary`), or export's staging or set-aside folder or a file in it."""
    return (rel.name.startswith(".") and rel.name.endswith(".tmp")) or any(
        part in ("model.tmp", "model.old") for part in rel.parts)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def published(run: Path, stage: str) -> list[Path]:
    return [p for p in (run / stage).rglob("*") if p.is_file() and not is_temporary(p.relative_to(run))]


def snapshot(run: Path, stage: str) -> dict[str, str]:
    """sha256 of every published file of a stage's folder but its manifest (and of the run's eval history, which
    prepare updates), by path under the run."""
    files = {str(p.relative_to(run)): digest(p) for p in published(run, stage) if p != run / stage / "manifest.json"}
    if stage == "prepare":
        files["eval_history.json"] = digest(run / "eval_history.json")
    return files


def manifest(run: Path, stage: str) -> dict:
    body = json.loads((run / stage / "manifest.json").read_text())
    return {k: v for k, v in body.items() if k not in VOLATILE}


def complete_jsonl(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    try:
        [json.loads(line) for line in text.splitlines()]
    except ValueError:
        return False
    return not text or text.endswith("\n")


def check_killed(run: Path, stage: str, point: str, rc: int, output: str, reference: dict[str, str],
                 sizes: dict[str, int]) -> None:
    """The run died at `point`, and nothing it left can be taken for complete."""
    where = f"{stage} killed at {point}"
    assert rc == -signal.SIGKILL, f"{where}: not killed (exit status {rc}):\n{output[-3000:]}"
    assert not (run / stage / "manifest.json").exists(), f"{where}: the stage looks finished"
    for path in published(run, stage) + [run / "eval_history.json"]:
        rel = str(path.relative_to(run))
        if rel == "eval_history.json" and stage != "prepare":
            continue
        if rel in INTERIM and digest(path) != reference.get(rel):
            assert complete_jsonl(path), f"{where}: {rel} is partly written"
            continue
        assert digest(path) == reference.get(rel), f"{where}: {rel} is not the uninterrupted run's (partly written?)"
    if stage == "evaluate":  # a model's result (what a re-run reuses) is never there without its outputs
        results = [p for p in published(run, stage) if p.suffix == ".json" and p.name != "manifest.json"]
        assert all(p.with_suffix(".outputs.jsonl").exists() for p in results), f"{where}: results without outputs"
    if (run / stage / "model").exists():  # a published model folder has every file
        files = {str(p.relative_to(run)) for p in (run / stage / "model").rglob("*") if p.is_file()}
        assert files == {r for r in reference if r.startswith(f"{stage}/model/")}, f"{where}: model folder incomplete"
    name, when = point.split(":")[:2]
    if when == "midway" and name != "model":  # the write really was cut: its temporary is half written
        rel = next(r for r in sizes if Path(r).name == name and r.startswith((stage, "eval_history")))
        folder = (run / rel).parent
        if folder.name == "model":  # written into export's staging folder
            folder = folder.with_name("model.tmp")
        temporaries = list(folder.glob(f".{name}.*.tmp"))
        assert temporaries, f"{where}: no temporary file in {folder}"
        assert all(0 < t.stat().st_size < sizes[rel] for t in temporaries), f"{where}: temporary not cut"
    if point == "model:midway":  # weights staged, tokenizer not yet, nothing published
        staged = {p.name for p in (run / stage / "model.tmp").iterdir()}
        assert "model.safetensors" in staged and "tokenizer.json" not in staged, f"{where}: staged {staged}"
        assert not (run / stage / "model").exists(), f"{where}: a model folder is published"


def kill_and_rerun(tunestack: Forks, run: Path, config: Path, stage: str, points: list[str],
                   reference: dict[str, str], sizes: dict[str, int]) -> None:
    """The stage's folder removed, then the stage run and killed at each point in turn, then run to completion."""
    expected = manifest(run, stage)
    shutil.rmtree(run / stage)
    for point in points:
        rc, output = tunestack(stage, str(config), kill_at=point)
        check_killed(run, stage, point, rc, output, reference, sizes)
    rc, output = tunestack(stage, str(config))
    assert rc == 0, f"{stage} re-run failed:\n{output[-3000:]}"
    assert f"[{stage}] running" in output and f"[{stage}] done" in output, output[-3000:]
    assert snapshot(run, stage) == reference, f"{stage}: the re-run's artifacts differ from the uninterrupted run's"
    assert manifest(run, stage) == expected
    left = [p for p in (run / stage).rglob("*") if is_temporary(p.relative_to(run))]
    assert not left, f"{stage}: temporaries left after the re-run: {left}"


def test_killed_stages_rerun_to_the_uninterrupted_artifacts(tiny_config: Path):
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["run"]["threads"] = 1  # a model this small gains nothing from two, and loses much on a busy machine
    cfg["train"].update({"max_steps": 4, "num_checkpoints": 2, "evaluate_checkpoints": False})
    cfg["evaluate"].update({"max_examples": 8, "max_new_tokens": 16})
    cfg["evaluate"]["retention"].update({"quartz_examples": 4, "max_probes": 2, "instructions": 14})
    cfg["select"].update({"min_format": 0.0, "max_format_drop": None, "noise_draws": 0})
    cfg["data"]["eval_created"] = "2026-01-01"  # the data report states the eval set's age: not midnight-dependent
    config = tiny_config.with_name("killed.yaml")
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = Path(cfg["run"]["runs_dir"]) / cfg["run"]["name"]

    done = subprocess.run([sys.executable, "-m", "tunestack", "run", str(config)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=900)  # the uninterrupted run
    assert done.returncode == 0, done.stderr[-3000:]
    stages = ("prepare", "evaluate", "export")
    reference = {stage: snapshot(run, stage) for stage in stages}
    sizes = {str(p.relative_to(run)): p.stat().st_size for stage in stages for p in published(run, stage)}
    sizes["eval_history.json"] = (run / "eval_history.json").stat().st_size
    first, last = [c["name"] for c in json.loads((run / "train" / "manifest.json").read_text())["checkpoints"]]

    tunestack = Forks(config.parent)
    try:
        kill_and_rerun(tunestack, run, config, "prepare", [
            "rejects.jsonl:after:1", "eval.jsonl:midway", "holdout.jsonl:after", "train.jsonl:midway",
            "rejects.jsonl:before:2", "eval_history.json:midway", "data_report.json:after", "manifest.json:midway"],
            reference["prepare"], sizes)
        kill_and_rerun(tunestack, run, config, "evaluate", [  # a cached result is only ever reused when complete
            "base.outputs.jsonl:midway", "base.json:midway", f"{first}.outputs.jsonl:after", f"{last}.json:before",
            f"{last}.json:midway", "manifest.json:midway"], reference["evaluate"], sizes)
        # the last kill came once every model's result was complete: the re-run reused them all, evaluating none
        assert json.loads((run / "evaluate" / "manifest.json").read_text())["reused"] == 3
        kill_and_rerun(tunestack, run, config, "export", [
            "model:before", "model:midway", "tunestack-export.json:midway", "model:after", "manifest.json:midway"],
            reference["export"], sizes)
        rc, output = tunestack("run", str(config))  # every stage is current: nothing downstream re-runs either
        assert rc == 0, output[-3000:]
        assert "] running" not in output and output.count("] up to date") == 5, output[-3000:]
    finally:
        tunestack.close()
