"""`tunestack train --nproc N`: one training process per device (or per CPU share) through torchrun.

The parent runs `prepare`, then starts `torchrun --standalone --nproc_per_node N -m tunestack.train.launch ...`.
Each process trains its shard of every batch (DDP; gloo on CPU, NCCL on GPUs); rank 0 alone generates the
self-replay rows, publishes checkpoints and writes the result the parent records in the manifest. Multi-node runs
go through `accelerate launch` with the same module (see docs/train.md, "More than one process").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tunestack.errors import StageError
from tunestack.rundir import write_text

RESULT = "launch-result.json"


def launch(config_path: str, overrides: list[str], nproc: int, run_root: Path, resume: bool,
           resume_anyway: bool = False) -> dict:
    """Run training in `nproc` processes and return rank 0's result."""
    from tunestack.config import load_config

    check_strategy(load_config(config_path, overrides).train.distributed.strategy)
    result = run_root / "train" / RESULT
    result.unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "tunestack.train.launch", config_path, *overrides, *(["--resume"] if resume else []),
               *(["--resume-anyway"] if resume_anyway else [])]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
    done = subprocess.run(command, env=env)
    if done.returncode != 0 or not result.exists():
        raise StageError(f"distributed training failed (exit {done.returncode}); see the output above")
    return json.loads(result.read_text())


def check_strategy(strategy: str) -> None:
    """Refuse, before starting any process, a strategy this machine cannot run (rather than falling back)."""
    import importlib.util

    import torch

    if strategy == "ddp":
        return
    if not torch.cuda.is_available():
        raise StageError(f"train.distributed.strategy={strategy} needs GPUs: accelerate shards a model only across "
                         "accelerator devices. On a CPU use strategy ddp (the default).")
    if strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise StageError("train.distributed.strategy=deepspeed needs the deepspeed package: pip install deepspeed "
                         "(on the GPU machine), or use strategy fsdp, which needs nothing extra")


def loading_environment(strategy: str, world: int) -> dict[str, str]:
    """What the environment needs before the weights load: under FSDP across processes, CPU-RAM-efficient loading
    (`tunestack.models.load.FSDP_LOADING`): rank 0 alone reads the weights, onto the CPU, and FSDP shards them onto
    the devices, so no device ever holds the whole model and the host holds it once, not once per process.

    >>> loading_environment("fsdp", 4)["FSDP_CPU_RAM_EFFICIENT_LOADING"], loading_environment("fsdp", 1)
    ('true', {})
    >>> loading_environment("ddp", 4), loading_environment("deepspeed", 4)
    ({}, {})
    """
    from tunestack.models.load import FSDP_LOADING

    return dict(FSDP_LOADING) if strategy == "fsdp" and world > 1 else {}


def worker(argv: list[str]) -> int:
    import torch
    import torch.distributed as dist

    from tunestack.config import load_config
    from tunestack.config import config_to_yaml
    from tunestack.rundir import open_run
    from tunestack.train.stage import run_train

    resume, anyway = "--resume" in argv, "--resume-anyway" in argv
    args = [a for a in argv if a not in ("--resume", "--resume-anyway")]
    cfg = load_config(args[0], args[1:])
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    run = open_run(Path(cfg.run.runs_dir) / cfg.run.name, config_to_yaml(cfg))
    os.environ.update(loading_environment(cfg.train.distributed.strategy, dist.get_world_size()))
    from tunestack.train.preflight import load_checked

    model, tokenizer, memory = load_checked(cfg)
    result = run_train(cfg, run, model, tokenizer, resume=resume, resume_anyway=anyway, memory=memory)
    if dist.get_rank() == 0:
        write_text(run.root / "train" / RESULT, json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(worker(sys.argv[1:]))
