"""Loading a causal LM and its tokenizer from a local folder, and the compute precision.

Whatever loads a tokenizer goes through `load_tokenizer`, so prepare's length check, training, evaluation and export
all see the same chat template (`model.chat_template` applied) and the same end-of-turn EOS and stop ids.
"""

from __future__ import annotations

from pathlib import Path

from tunestack.errors import ModelError
from tunestack.models.resolve import resolve_model
from tunestack.models.templates import BUILTIN_TEMPLATES, template_text
from tunestack.models.tokens import fix_special_tokens, fix_stop_tokens


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


def load_tokenizer(folder: Path, chat_template: str | None = None, trust_remote_code: bool = False):
    """The tokenizer of `folder` with the configured chat template and the stop tokens fixed."""
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    if chat_template:
        tokenizer.chat_template = template_text(chat_template)
    if not tokenizer.chat_template:
        raise ModelError(f"the tokenizer in {folder} has no chat template (a base model?): set model.chat_template "
                         f"to a Jinja file or a built-in ({', '.join(BUILTIN_TEMPLATES)})")
    try:
        generation = GenerationConfig.from_pretrained(folder)
    except OSError:
        generation = GenerationConfig()
    fix_stop_tokens(tokenizer, generation)
    return tokenizer


def load_model(folder: Path, dtype: str = "float32", *, chat_template: str | None = None,
               trust_remote_code: bool = False):
    """Load a causal LM and its tokenizer from a local folder, CPU or the first GPU."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(folder, chat_template, trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype),
                                                 trust_remote_code=trust_remote_code)
    if torch.cuda.is_available():
        model = model.to("cuda")
    fix_special_tokens(tokenizer, model)
    return model, tokenizer


def load_base(spec, tokenizer_only: bool = False):
    """(model, tokenizer) for the config's `model` section: the base every stage starts from; (None, tokenizer)
    with `tokenizer_only`."""
    folder = resolve_model(spec.name, spec.revision)
    if tokenizer_only:
        return None, load_tokenizer(folder, spec.chat_template, spec.trust_remote_code)
    return load_model(folder, chat_template=spec.chat_template, trust_remote_code=spec.trust_remote_code)
