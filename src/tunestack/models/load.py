"""Loading a causal LM and its tokenizer from a local folder, and the compute precision."""

from __future__ import annotations

from pathlib import Path

from tunestack.errors import ModelError
from tunestack.models.tokens import fix_special_tokens


def use_bf16(precision: str) -> bool:
    """`auto`: bf16 on a CUDA device that supports it, or on a CPU with native bf16 (AMX or AVX512-BF16)."""
    import torch

    if precision != "auto":
        return precision == "bf16"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def load_model(folder: Path, dtype: str = "float32"):
    """Load a causal LM and its tokenizer from a local folder, CPU or the first GPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
    if torch.cuda.is_available():
        model = model.to("cuda")
    if tokenizer.chat_template is None:
        raise ModelError(f"the tokenizer in {folder} has no chat template: tunestack trains chat models only")
    fix_special_tokens(tokenizer, model)
    return model, tokenizer
