"""The prepared GPU check, where a CUDA device exists: every method through the pipeline on it (skipped elsewhere;
on a CPU `bench/gpu_check.sh --shape tiny` runs the same script)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_check_runs_every_method_on_the_device():
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--steps", "10"], capture_output=True,
                          text=True, timeout=420)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout.split("\nmethod ")[-1]
    for method in ("lora", "qlora", "full", "dpo"):
        assert f"\n{method:7} yes" in table, table
