"""The base model to fine-tune: the starting presets by model size (docs/train.md), picked for the first CUDA device's free
memory (the built-in CPU model without one, `--model` when given), with the GPU's name in the cost table. The
choice is a pure function of (GPU name, free GiB); `gpu_memory` is the one probe, and imports torch only when called.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunestack.config.base import ModelSection

@dataclass(frozen=True)
class ModelChoice:
    name: str
    method: str
    reason: str
    """Why this model and method: the config's comment."""
    train: dict
    """Train knobs of the preset (docs/train.md, "Starting presets by model size")."""
    size_b: float | None = None
    gpu: str | None = None
    """The GPU's name in the cost table, when it is there (`cost.training.gpu`)."""


CPU_SIZE_B = 0.135
LORA = {"r": 16, "alpha": 32}
CPU_KNOBS = {"micro_batch_size": 8, "grad_accum": 1, "learning_rate": 1.0e-3, "lora": LORA}
MIDDLE_KNOBS = {"micro_batch_size": 4, "grad_accum": 4, "learning_rate": 2.0e-4, "lora": LORA}
_7B = {"micro_batch_size": 2, "grad_accum": 8, "learning_rate": 2.0e-4, "lora": LORA}
_CKPT = {"gradient_checkpointing": True}
GPU_PRESETS = (
    # (free GiB at least, model, billions of parameters, method, knobs, why): the starting presets by
    # model size (docs/train.md); the figures are the memory pre-flight's estimates at 2048 tokens (docs/train.md, Memory)
    (70, "Qwen/Qwen2.5-7B-Instruct", 7, "lora", _7B, "7B LoRA in bf16, micro-batch 2: 64 GB estimated for 8B"),
    (24, "Qwen/Qwen2.5-7B-Instruct", 7, "lora", {**_7B, **_CKPT},
     "7B LoRA in bf16 with gradient checkpointing: 21 GB estimated for 8B"),
    (14, "Qwen/Qwen2.5-7B-Instruct", 7, "qlora", {"micro_batch_size": 1, "grad_accum": 16, "learning_rate": 1.0e-4,
                                                  "lora": {"r": 64, "alpha": 128}, **_CKPT},
     "7B QLoRA (4-bit) with gradient checkpointing: 11 GB estimated for 8B"),
    (8, "Qwen/Qwen2.5-1.5B-Instruct", 1.5, "lora", {**MIDDLE_KNOBS, **_CKPT},
     "1.5B LoRA with gradient checkpointing: 5.4 GB estimated for 1B at micro-batch 4"),
    (0, "Qwen/Qwen2.5-0.5B-Instruct", 0.5, "lora", {**MIDDLE_KNOBS, **_CKPT}, "a 0.5B model below 8 GiB free"),
)
COST_GPUS = ("h200", "h100", "a100", "a10g", "l4", "t4")


def pick_model(gpu: tuple[str, float] | None, preference: bool, given: str | None = None) -> ModelChoice:
    """The base model and train preset for this machine: `gpu` is (name, free GiB) of the first CUDA device, or
    None. `--model` (`given`) wins; without CUDA, the built-in CPU model; with CUDA, the largest preset whose
    estimated peak fits the free memory (DPO trains LoRA in bf16, so it skips the QLoRA preset).

    >>> pick_model(None, False).name, pick_model(("NVIDIA H100 80GB HBM3", 79.2), False).method
    ('smollm2-135m-instruct', 'lora')
    >>> pick_model(("NVIDIA L4", 21.9), False).method, pick_model(("NVIDIA L4", 21.9), True).name
    ('qlora', 'Qwen/Qwen2.5-1.5B-Instruct')
    """
    dpo = "dpo" if preference else None
    if given:
        return ModelChoice(given, dpo or "lora", "given with --model; the train knobs are a middle preset: see the "
                           "starting presets for your model's size (docs/train.md)", MIDDLE_KNOBS)
    if gpu is None:
        default = ModelSection.model_fields["name"].default
        return ModelChoice(default, dpo or "lora", "no CUDA device here, so the built-in CPU model (135M "
                           "parameters: for a trial run of the pipeline; rerun init on a GPU machine for a model "
                           "that can replace an API)", CPU_KNOBS, CPU_SIZE_B)
    name, free = gpu
    cost_gpu = next((g for g in COST_GPUS if g in name.lower()), None)
    for floor, model, size, method, knobs, why in GPU_PRESETS:
        if free >= floor and not (dpo and method == "qlora"):
            return ModelChoice(model, dpo or method, f"{free:.0f} GiB free on {name}; {why} (docs/train.md, starting "
                               "presets; the memory pre-flight checks it before weights load)", knobs, size, cost_gpu)
    raise AssertionError("the last preset takes any free memory")


def gpu_memory() -> tuple[str, float] | None:
    """The first CUDA device's name and free memory in GiB, or None without one (torch is imported only here)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info(0)
    return torch.cuda.get_device_name(0), free / 2**30
