"""The trainable model for each method: LoRA, QLoRA (4-bit NF4 base, double quantization) or full fine-tuning.

LoRA and QLoRA freeze the base: loaded in bf16 where the hardware has it (the matmuls run natively, the adapter
stays fp32), or 4-bit for QLoRA. Full fine-tuning keeps fp32 master weights and lets the Trainer's autocast use bf16.
`train.init_from` merges an earlier run's checkpoint into the base first.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from tunestack.config import Config
from tunestack.errors import MissingDependencyError
from tunestack.train.mapping import lora_kwargs


def trainable_model(cfg: Config, folder: Path, model, bf16: bool):
    """The model the Trainer optimizes. `model` is the base as the pipeline loaded it, once, in the training dtype
    (`tunestack.models.stage_dtype`): bf16 or fp32 for LoRA and DPO, fp32 master weights for full fine-tuning; None
    for QLoRA, which loads its own 4-bit base here. An `init_from` checkpoint is merged into it in place."""
    from peft import LoraConfig, get_peft_model

    method = cfg.train.method
    attention = attention_kernel(cfg.train.attention)
    if method == "qlora":
        model = load_4bit(folder, cfg.train.init_from, bf16, cfg.model.trust_remote_code)
        model.set_attn_implementation(attention)
    else:
        if cfg.train.init_from:
            from tunestack.models.merge import merge_into

            model = merge_into(model, cfg.train.init_from)
        model.set_attn_implementation(attention)
        if method == "full":
            model.config.use_cache = False
            return model
    torch.manual_seed(cfg.run.seed)  # the adapter's initialisation
    return get_peft_model(model, LoraConfig(**lora_kwargs(cfg.train)))


def attention_kernel(choice: str) -> str:
    """The attention implementation to train with; see `train.attention`."""
    if choice != "auto":
        return choice
    if not torch.cuda.is_available():
        return "eager"
    import importlib.util

    return "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"


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


def load_4bit(folder: Path, init_from: str | None, bf16: bool, trust_remote_code: bool = False):
    """The NF4 base, prepared for training an adapter on it."""
    from peft import prepare_model_for_kbit_training

    model = load_nf4(folder, init_from, bf16, trust_remote_code)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def load_nf4(folder: Path, init_from: str | None, bf16: bool, trust_remote_code: bool = False):
    """The base quantized to NF4 as QLoRA trains on it (an `init_from` adapter merged first, in full precision):
    also what a QLoRA checkpoint is evaluated on."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("bitsandbytes", "train") from exc
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if init_from:
        # An adapter trained earlier is merged in full precision, then the merged weights are quantized.
        from tunestack.models import load_model
        from tunestack.models.merge import merge_into

        base, _ = load_model(folder, trust_remote_code=trust_remote_code)
        staged = Path(init_from).parent / ".merged-for-qlora"
        merge_into(base, init_from).save_pretrained(staged)
        del base
        folder = staged
    compute = torch.bfloat16 if bf16 else torch.float32
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
    # each DDP rank's copy on its own GPU (torchrun sets LOCAL_RANK), not all of them on GPU 0
    device_map = {"": int(os.environ.get("LOCAL_RANK", 0))} if torch.cuda.is_available() else {"": "cpu"}
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, dtype=compute,
                                                device_map=device_map, trust_remote_code=trust_remote_code)
