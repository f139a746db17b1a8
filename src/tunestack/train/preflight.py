"""Memory before and after training: the pre-flight check that refuses, before any weight is loaded, a run whose
estimated peak (`tunestack.train.memory`) exceeds what the device has free, and the estimate set beside the peak
the run really reached.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from tunestack.config import Config
from tunestack.errors import StageError
from tunestack.models import stage_dtype
from tunestack.train.checkpoints import peak_accelerator_gb, peak_memory, reset_peak_memory
from tunestack.train.memory import GIB, Plan, Shape, advice, estimate
from tunestack.train.methods import attention_kernel


_RSS_BEFORE_WEIGHTS: int | None = None
"""Host memory of this process before the pipeline loaded any weight: the measured peak is counted above it."""


def memory_plan(cfg: Config, folder: Path, bf16: bool, seq_len: int):
    """(Shape, Plan) of this run for `train.memory.estimate`, or None for a config it cannot read."""
    config = json.loads((folder / "config.json").read_text())
    if "vocab_size" not in config or "hidden_size" not in config:
        return None
    targets = cfg.train.lora.target_modules
    dense = stage_dtype(cfg, "train")
    world, distributed = int(os.environ.get("WORLD_SIZE", 1)), cfg.train.distributed
    sharding = {"ddp": "none", "fsdp": "fsdp", "deepspeed": f"zero{distributed.zero_stage}"}[distributed.strategy]
    return Shape.from_config(config), Plan(
        method=memory_method(cfg.train), micro_batch=cfg.train.micro_batch_size, seq_len=seq_len, bf16=bf16,
        gradient_checkpointing=cfg.train.gradient_checkpointing, lora_r=cfg.train.lora.r,
        lora_targets=(targets,) if isinstance(targets, str) else tuple(targets),
        eager_attention=attention_kernel(cfg.train.attention, bf16) == "eager",
        weight_bytes=4 if dense is None or dense == "float32" else 2, world=world,
        sharding=sharding if world > 1 else "none", offload=distributed.offload and world > 1)


def memory_method(train) -> str:
    """The method as the memory model knows it: GRPO as full fine-tuning or as an adapter with full logits."""
    if train.method == "grpo":
        return "full" if train.every_weight else "grpo"
    return train.method


def measured_memory(cfg: Config, folder: Path, bf16: bool, longest: int) -> dict:
    """The estimate again at the lengths the run really trained on (`longest`: the longest row, or max_length when
    packed), beside the measured peak: accelerator memory on a GPU, else host memory above what the process held
    before any weight was loaded."""
    plan = memory_plan(cfg, folder, bf16, longest)
    estimated = estimate(*plan)["total"] / GIB if plan else None
    if torch.cuda.is_available():
        measured, what = peak_accelerator_gb(), "torch.cuda.max_memory_allocated"
    else:
        measured = (peak_memory() - (_RSS_BEFORE_WEIGHTS or 0)) / GIB
        what = "peak host RSS above the process before weights were loaded"
    return {"estimated_gb": round(estimated, 3) if estimated else None, "seq_len": longest,
            "measured_gb": round(measured, 3), "measured_as": what,
            "ratio": round(measured / estimated, 3) if estimated else None}


def load_checked(cfg: Config):
    """The base for training, loaded once the memory pre-flight allowed it: (model, tokenizer, the pre-flight's
    summary for the manifest). The check runs here, before the weights load, and only here: after loading, free
    memory no longer holds the weights the estimate counts, so a second check would count them twice."""
    from tunestack.models import resolve_model, use_bf16
    from tunestack.models.load import load_for_stage

    memory = memory_preflight(cfg, resolve_model(cfg.model.name, cfg.model.revision), use_bf16(cfg.train.precision))
    model, tokenizer = load_for_stage(cfg, "train")
    return model, tokenizer, memory


def memory_preflight(cfg: Config, folder: Path, bf16: bool) -> dict | None:
    """Refuse, before loading weights, a run whose estimated peak memory exceeds what the device has. Call it
    before the weights load (`load_checked`), never after."""
    import psutil


    global _RSS_BEFORE_WEIGHTS
    if _RSS_BEFORE_WEIGHTS is None:  # the first call, before the pipeline loads any weight
        import datasets  # noqa: F401  (the libraries training imports anyway, so they are not counted as the run's)
        import peft  # noqa: F401
        import trl  # noqa: F401

        _RSS_BEFORE_WEIGHTS = psutil.Process().memory_info().rss
        reset_peak_memory()  # the measured peak is the run's, not prepare's in the same process
    plan = memory_plan(cfg, folder, bf16, cfg.data.max_length)
    if plan is None:
        return None  # not a decoder config we can read; the run will find out the hard way
    shape, plan = plan
    parts = estimate(shape, plan)
    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        available, device = float(free), "GPU"
    else:
        available, device = float(psutil.virtual_memory().available), "CPU RAM"
    summary = {"estimated_gb": round(parts["total"] / GIB, 2), "available_gb": round(available / GIB, 2),
               "device": device, "parts_gb": {k: round(v / GIB, 3) for k, v in parts.items() if k != "total"}}
    if cfg.train.memory_check and parts["total"] > available:
        raise StageError(
            f"this run needs about {parts['total'] / GIB:.1f} GiB of {device} at its peak, but "
            f"{available / GIB:.1f} GiB is free ({', '.join(f'{k} {v / GIB:.1f}' for k, v in parts.items() if k != 'total')} "
            "GiB). Options:\n- " + "\n- ".join(advice(shape, plan, available))
            + "\n(train.memory_check: false skips this check.)")
    return summary
