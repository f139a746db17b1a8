"""Checkpoints that are complete or invisible, and the metrics log.

At each save point the callback asks the Trainer to save; the Trainer writes model (or adapter), optimizer,
scheduler, RNG and data-order state into a staging folder, then calls `on_save`, where the folder gets our metadata
and the generation config (EOS) and is renamed into `checkpoints/step-NNNNNN` in one `os.replace`. A run killed at
any moment leaves either a complete checkpoint or none, and `--resume` restarts from the newest one. Optimizer state
is kept in the newest checkpoint only: nothing older is ever resumed from.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from transformers import TrainerCallback

from tunestack.models import CHECKPOINT_META as META
from tunestack.rundir import write_json
from tunestack.train.resume import published

RESUME_STATE = ("optimizer.pt", "optimizer*.bin", "optimizer_[0-9]*", "pytorch_model_fsdp*", "global_step*",
                "latest", "zero_to_fp32.py")
"""What a checkpoint holds for resuming only, by strategy: the optimizer state (`optimizer.pt`; FSDP's
`optimizer.bin`, `optimizer_0_rank1.bin` or sharded `optimizer_0/`), FSDP's model state (`pytorch_model_fsdp.bin`,
`pytorch_model_fsdp_0/`) and DeepSpeed's (`global_step12/` with the ZeRO shards, `latest`, `zero_to_fp32.py`).
The weights evaluation reads (`adapter_model.safetensors`, `model.safetensors`) are apart from them."""


def drop_resume_state(folder: Path) -> list[str]:
    """Delete what `folder` holds for resuming only (`RESUME_STATE`): an older checkpoint, never resumed from, keeps
    its weights and loses gigabytes. Returns the names removed.

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> for name in ("optimizer.pt", "scheduler.pt", "adapter_model.safetensors", "global_step4/x_optim_states.pt"):
    ...     (folder / name).parent.mkdir(exist_ok=True); _ = (folder / name).write_text("")
    >>> drop_resume_state(folder), sorted(p.name for p in folder.iterdir())
    (['global_step4', 'optimizer.pt'], ['adapter_model.safetensors', 'scheduler.pt'])
    """
    removed = sorted({path for pattern in RESUME_STATE for path in Path(folder).glob(pattern)})
    for path in removed:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return [path.name for path in removed]


class CheckpointPublisher(TrainerCallback):
    """Publishes Trainer checkpoints atomically at chosen steps and appends every log line to metrics.jsonl.
    `on_publish(meta)`, if given, runs on rank 0 after each checkpoint is published (evaluation while training)."""

    def __init__(self, folder: Path, points: list[int], metrics_path: Path, generation_config, start_step: int = 0,
                 init_from: str | None = None, on_publish=None, fingerprint: dict | None = None):
        self.folder, self.points, self.metrics_path = folder, set(points), metrics_path
        self.fingerprint = fingerprint
        self.init_from, self.on_publish = init_from, on_publish
        self.generation_config = generation_config
        self.published = [m for m in published(folder) if m["step"] <= start_step]
        self.losses: list[float] = []
        self.started = time.time()
        self.start_step = start_step
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".step-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or not state.is_world_process_zero:
            return
        import torch

        self.losses.append(float(logs["loss"]))
        elapsed = time.time() - self.started
        record = {"step": state.global_step, "elapsed_s": round(elapsed, 2), **logs}
        if state.num_input_tokens_seen:
            record["tokens_seen"] = int(state.num_input_tokens_seen)
        record["peak_memory_gb"] = round(peak_memory() / 2**30, 3)
        if torch.cuda.is_available():
            record["peak_cuda_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.points:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        import torch.distributed as dist

        if state.global_step not in self.points:
            return
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank has written its RNG state into the staging folder
        if not state.is_world_process_zero:
            return
        step = state.global_step
        staged = Path(args.output_dir) / f"checkpoint-{step}"
        name = f"step-{step:06d}"
        final = self.folder / name
        recent = self.losses[-10:]
        meta = {"name": name, "step": step, "path": str(final),
                "train_loss": round(sum(recent) / len(recent), 4) if recent else None, "init_from": self.init_from,
                "fingerprint": self.fingerprint}
        self.generation_config.save_pretrained(staged)  # EOS travels with the checkpoint
        write_json(staged / META, meta)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staged, final)
        for older in self.published:
            drop_resume_state(Path(older["path"]))
        self.published.append(meta)
        if self.on_publish is not None:
            from tunestack.terminal import quiet_bars

            with quiet_bars():  # the training bar stays the one bar; the evaluation logs one line
                self.on_publish(meta)


def peak_memory() -> int:
    """Peak resident (host) memory of this process, in bytes: Linux's VmHWM (this program's address space alone;
    `ru_maxrss` would start at the RSS of the parent it was forked from), else `ru_maxrss`."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_memory() -> bool:
    """Restart the host peak from the current RSS (Linux: `clear_refs`), so a stage's peak is its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_facts(start: Path | None, resumed_despite: list, bf16: bool, seconds: float, live) -> dict:
    """The train manifest's entries every method reports alike: where it resumed from, its precision, the peak
    memory, the optimizer seconds and the time evaluating checkpoints while training."""
    return {"processes": 1, "resumed_from": start.name if start else None, "resumed_despite": resumed_despite,
            "precision": "bf16" if bf16 else "fp32", "peak_memory_gb": round(peak_memory() / 2**30, 3),
            "peak_accelerator_gb": peak_accelerator_gb(), "train_seconds": round(seconds, 1),
            "evaluate_seconds": round(live.seconds if live else 0.0, 1),
            "evaluated_while_training": live.describe() if live else None}


def peak_accelerator_gb() -> float | None:
    """Peak memory torch allocated on this process's GPU, in GiB; None without one."""
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None


def prepare_outputs(out: Path, start: Path | None, start_step: int) -> None:
    """Before training: a half-written Trainer save from a killed run goes; a fresh run (no `start`) also clears
    earlier checkpoints, metrics and general rows (which other ranks may wait for: `replay.from_rank_zero`), a
    resumed one drops the metrics logged after its checkpoint."""
    shutil.rmtree(out / "trainer", ignore_errors=True)
    if start is None:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        (out / "metrics.jsonl").unlink(missing_ok=True)
        (out / "general.jsonl").unlink(missing_ok=True)
    else:
        trim_metrics(out / "metrics.jsonl", start_step)


def trim_metrics(path: Path, last_step: int) -> None:
    """Drop log lines after `last_step`: a resumed run logs those steps again."""
    if not path.exists():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= last_step]
    path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
