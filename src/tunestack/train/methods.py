"""The trainable model for each method: LoRA, QLoRA (4-bit NF4 base, double quantization) or full fine-tuning.

LoRA and QLoRA freeze the base: loaded in bf16 where the hardware has it (the matmuls run natively, the adapter
stays fp32), or 4-bit for QLoRA. Full fine-tuning keeps fp32 master weights and lets the Trainer's autocast use bf16.
`train.init_from` merges an earlier run's checkpoint into the base first.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tunestack.config import Config
from tunestack.errors import MissingDependencyError, StageError
from tunestack.models.nf4 import load_4bit
from tunestack.train.mapping import lora_kwargs


def trainable_model(cfg: Config, folder: Path, model, bf16: bool):
    """The model the Trainer optimizes. `model` is the base as the pipeline loaded it, once, in the training dtype
    (`tunestack.models.stage_dtype`): bf16 or fp32 for LoRA and DPO, fp32 master weights for full fine-tuning; None
    for QLoRA, which loads its own 4-bit base here. An `init_from` checkpoint is merged into it in place."""
    from peft import LoraConfig, get_peft_model

    method = cfg.train.method
    attention = attention_kernel(cfg.train.attention, bf16)
    if method == "qlora":
        model = load_4bit(folder, cfg.train.init_from, bf16, cfg.model.trust_remote_code,
                          scratch=Path(cfg.run.runs_dir) / cfg.run.name / "train")
        model.set_attn_implementation(attention)
    else:
        if cfg.train.init_from:
            from tunestack.models.merge import merge_into

            model = merge_into(model, cfg.train.init_from)
        model.set_attn_implementation(attention)
        if cfg.train.every_weight:
            model.config.use_cache = False
            return model.requires_grad_(True)  # a merged init_from adapter leaves the weights frozen
    torch.manual_seed(cfg.run.seed)  # the adapter's initialisation
    return get_peft_model(model, LoraConfig(**lora_kwargs(cfg.train)))


def attention_kernel(choice: str, half: bool = True) -> str:
    """The attention implementation to train with; see `train.attention`. `half`: training computes in 16 bits (bf16
    weights, or fp32 master weights under bf16 autocast). Flash-attention takes fp16/bf16 only: `auto` picks it only
    then, and asking for it to train in fp32 (`train.precision: fp32`) is an error, not a failure at step one.

    >>> attention_kernel("sdpa", half=False), attention_kernel("eager")
    ('sdpa', 'eager')
    """
    if choice == "flash_attention_2" and not half:
        raise StageError("train.attention: flash_attention_2 computes in fp16/bf16 only, and this run trains in fp32 "
                         "(train.precision fp32, or a device without bf16): use train.attention sdpa, or bf16")
    if choice != "auto":
        return choice
    if not torch.cuda.is_available():
        return "eager"
    import importlib.util

    return "flash_attention_2" if half and importlib.util.find_spec("flash_attn") else "sdpa"


def liger_on(setting: bool | str) -> bool:
    """`train.liger` resolved: `auto` is on with a CUDA GPU and the liger-kernel package; an explicit `true` without
    them is an error rather than a silent fallback."""
    import importlib.util

    available = torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None
    if setting == "auto":
        return available
    if setting and not available:
        raise MissingDependencyError("liger-kernel (and a CUDA GPU)", "gpu")
    return bool(setting)
