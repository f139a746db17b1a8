"""Integration: `tunestack run` on a tiny local model through every stage, through the real entry point. The run is
made once a session (`tiny_run` in conftest, shared with test_terminal); each test gets it as the command left it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tunestack.report.results import results_schema

pytestmark = pytest.mark.integration


def tunestack(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunestack", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=900)


def test_run_every_stage_on_a_tiny_model(tiny_run):
    tiny_config, done = tiny_run.config, tiny_run.done  # `tunestack run tiny.yaml`, run once a session (conftest)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = yaml.safe_load(tiny_config.read_text())
    run = Path(cfg["run"]["runs_dir"]) / "tiny"

    for stage in ("prepare", "train", "evaluate", "select", "export"):
        assert (run / stage / "manifest.json").exists(), stage
    assert (run / "config.yaml").exists() and (run / "report.md").exists()
    assert "[train] done" in (run / "run.log").read_text()

    results = json.loads((run / "results.json").read_text())
    jsonschema.validate(results, results_schema())
    names = [m["name"] for m in results["models"]]
    assert names[0] == "base" and len(names) == 3  # base + 2 checkpoints
    assert sum(m["selected"] for m in results["models"]) == 1
    assert "selected" in done.stdout and "exact match" in done.stdout

    train = json.loads((run / "train" / "manifest.json").read_text())
    assert train["final_loss"] < train["first_loss"], "training did not lower the loss"
    assert train["rows"]["general"] > 0
    if not __import__("torch").cuda.is_available():  # on a CPU: eager attention, no packing (see train.packing)
        assert train["kernels"]["attention"] == "eager" and train["packing"]["enabled"] is False
    assert 0.5 < train["packing"]["real_token_share"] < 1  # padded micro-batches: some slots are padding
    ckpt = Path(train["checkpoints"][-1]["path"])
    for name in ("adapter_model.safetensors", "chat_template.jinja", "generation_config.json", "tokenizer.json"):
        assert (ckpt / name).exists(), name
    assert ckpt.name == f"step-{train['steps']:06d}"

    # Each checkpoint was evaluated as it was saved; the evaluate stage reused those results, identical ones.
    progress = (run / "evaluate" / "progress.md").read_text()
    assert all(f"| {c['name']} |" in progress for c in train["checkpoints"]) and "| base |" in progress
    assert "evaluated step-" in (run / "run.log").read_text() and train["evaluate_seconds"] > 0
    evaluate = json.loads((run / "evaluate" / "manifest.json").read_text())
    assert evaluate["reused"] == len(names) == len(train["checkpoints"]) + 1

    export = json.loads((run / "export" / "manifest.json").read_text())
    verification = export["verification"]
    assert verification["identical"] == verification["compared"] > 0
    # One selection decision against the eval set, recorded in the data ledger beside the data, and in the report.
    ledger = Path(cfg["data"]["path"]).parent / "tunestack-ledger.jsonl"
    assert results["selection"]["eval_set_decisions"] == 1
    assert [json.loads(line)["kind"] for line in ledger.read_text().splitlines()] == ["eval_decision"]
    assert "Selection decisions made against this eval set so far: 1 in 1 run(s)" in (run / "report.md").read_text()
    assert [m["key"] for m in evaluate["task_metrics"]] == ["exact_match", "field_accuracy"]

    # `run` never reads the sealed holdout; `tunestack holdout` reads it exactly once, and the read is recorded.
    def reads() -> list[dict]:
        return [e for e in map(json.loads, ledger.read_text().splitlines()) if e["kind"] == "holdout_read"]

    assert reads() == []
    final = tunestack("holdout", str(tiny_config))
    assert final.returncode == 0, final.stderr[-3000:]
    assert [(r["reader"].split(":")[0], r["forced"]) for r in reads()] == [("holdout", False)]
    holdout = json.loads((run / "holdout" / "manifest.json").read_text())
    assert holdout["rows"] == 8 and holdout["model"] == results["selection"]["chosen"]
    assert 0 <= holdout["field_accuracy"] <= 1 and "Final validation on the sealed holdout" in final.stdout
    assert (run / "holdout" / "holdout.md").exists() and "read once" in (run / "report.md").read_text()
    again = tunestack("holdout", str(tiny_config))  # unchanged inputs: the stage is skipped, nothing is read
    assert "[holdout] up to date" in again.stderr and len(reads()) == 1
    # Another run on the same data seals the same rows: a new run name (and other training) does not unseal them.
    other = tunestack("holdout", str(tiny_config), "run.name=try2", "train.epochs=1")
    assert other.returncode != 0 and "the sealed holdout" in other.stderr and "already read" in other.stderr
    assert f"in run {run.resolve()}" in other.stderr and len(reads()) == 1
    assert (Path(cfg["run"]["runs_dir"]) / "try2" / "select" / "manifest.json").exists()  # it got that far
    assert "needs a reason" in tunestack("holdout", str(tiny_config), "--force").stderr
    forced = tunestack("holdout", str(tiny_config), "--force", "--why", "re-check after a crash")  # logged
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert [(r["forced"], r["read_number"], r["why"]) for r in reads()] == [(False, 1, None),
                                                                             (True, 2, "re-check after a crash")]
    jsonschema.validate(json.loads((run / "results.json").read_text()), results_schema())
    assert (run / "prepare" / "data_report.md").exists() and (run / "prepare" / "length_histogram.png").exists()


def test_training_changes_the_weights(tiny_run, tiny_model: Path):
    import torch
    from safetensors.torch import load_file

    tiny_config = tiny_run.config  # trained by the session's `tunestack run`: `train` finds it current
    assert tunestack("train", str(tiny_config)).returncode == 0
    cfg = yaml.safe_load(tiny_config.read_text())
    ckpt = Path(cfg["run"]["runs_dir"]) / "tiny" / "train" / "checkpoints"
    adapter = load_file(str(sorted(ckpt.iterdir())[-1] / "adapter_model.safetensors"))
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and any(torch.count_nonzero(t) > 0 for t in lora_b), "LoRA B starts at zero and must move"


def test_rerun_skips_up_to_date_stages_and_reruns_changed_ones(tiny_run):
    tiny_config = tiny_run.config  # prepared by the session's `tunestack run`
    assert tunestack("prepare", str(tiny_config)).returncode == 0
    again = tunestack("prepare", str(tiny_config))
    assert "[prepare] up to date" in again.stderr
    changed = tunestack("prepare", str(tiny_config), "data.eval_size=12")
    assert "[prepare] running" in changed.stderr
