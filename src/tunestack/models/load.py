"""Loading a causal LM and its tokenizer from a local folder, and the compute precision.

Whatever loads a tokenizer goes through `load_tokenizer`, so prepare's length check, training, evaluation and export
all see the same chat template (`model.chat_template` applied) and the same end-of-turn EOS and stop ids.
"""

from __future__ import annotations

import json
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


def device() -> str:
    """Where this process computes: its own GPU (`LOCAL_RANK` under torchrun, so each rank has its own), else the
    CPU."""
    import os

    import torch

    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"


FSDP_LOADING = {"ACCELERATE_USE_FSDP": "true", "FSDP_CPU_RAM_EFFICIENT_LOADING": "true"}
"""The environment under which transformers loads a model for FSDP's CPU-RAM-efficient loading: rank 0 reads the
weights, every other rank gets placeholders (zeros) that FSDP overwrites from rank 0's when it shards the model."""


def fsdp_loading() -> bool:
    """Is this process loading under FSDP's CPU-RAM-efficient loading (`FSDP_LOADING` set, torch.distributed up)?
    Then weights load onto the CPU, not the GPU: FSDP moves each rank's shard to its device."""
    import os

    import torch.distributed as dist

    return (dist.is_available() and dist.is_initialized()
            and all(os.environ.get(k, "").lower() in ("1", "true") for k in FSDP_LOADING))


def load_device() -> str:
    """Where `load_model` puts weights: this process's device, or the CPU under FSDP's efficient loading."""
    return "cpu" if fsdp_loading() else device()


def compute_dtype(setting: str, bf16: bool) -> str:
    """The dtype dense weights are loaded in: `model.dtype` when set, else bf16 where the stage computes in bf16,
    else fp32.

    >>> compute_dtype("auto", True), compute_dtype("auto", False), compute_dtype("float16", True)
    ('bfloat16', 'float32', 'float16')
    """
    if setting != "auto":
        return setting
    return "bfloat16" if bf16 else "float32"


def dtype_name(model) -> str:
    """The dtype a loaded model's weights are in, as `model.dtype` names it: `bfloat16`, `float32`, ..."""
    return str(model.dtype).removeprefix("torch.")


def stage_dtype(cfg, stage: str) -> str | None:
    """The dtype a stage loads the base's dense weights in (`model.dtype`); None when it loads none: prepare and QLoRA
    training, which loads its own 4-bit base. Export merges in this dtype, and loads the base only where the merge
    or its check needs it (`tunestack.export.stage.run_export`)."""
    if stage == "prepare" or (stage == "train" and cfg.train.method == "qlora"):
        return None
    if stage == "export" or (stage == "train" and cfg.train.every_weight):
        return compute_dtype(cfg.model.dtype, False)  # fp32: full fine-tuning's master weights, export's exact merge
    precision = cfg.train.precision if stage == "train" else cfg.evaluate.precision
    return compute_dtype(cfg.model.dtype, use_bf16(precision))


def load_model(folder: Path, dtype: str = "float32", *, chat_template: str | None = None,
               trust_remote_code: bool = False):
    """A causal LM and its tokenizer from a local folder: the weights are read once, in `dtype`, straight onto
    this process's device (`device_map`), never first in fp32 on the CPU and then moved."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(folder, chat_template, trust_remote_code)
    options = {"device_map": {"": load_device()}, "trust_remote_code": trust_remote_code}
    if compressed(folder):  # unpacked in fp32 first: a cast of the packed model changes answers (see below)
        from transformers import CompressedTensorsConfig

        from tunestack.terminal import quiet_bars

        # transformers warns that the folder's own quantization_config wins: it does, dequantize=True aside
        with quiet_bars("You passed `quantization_config`"):
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, quantization_config=CompressedTensorsConfig(dequantize=True),
                **options).to(getattr(torch, dtype))
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), **options)
    fix_special_tokens(tokenizer, model)
    return model, tokenizer


def compressed(folder: Path) -> bool:
    """Is this a compressed-tensors folder (what `tunestack quantize` and llm-compressor write)? `load_model`
    loads one decompressed: each weight unpacked from its integers, scales and zero points into fp32 (the values
    the W4A16/W8A16 kernels compute with), then cast to the dtype asked for. Casting the packed model to bf16
    before unpacking changed 27 of 80 probe answers on a demo fine-tune (issue 14's measurement)."""
    config = Path(folder) / "config.json"
    if not config.exists():
        return False
    quantization = json.loads(config.read_text()).get("quantization_config") or {}
    return quantization.get("quant_method") == "compressed-tensors"


def load_base(spec, tokenizer_only: bool = False, dtype: str = "float32"):
    """(model, tokenizer) for the config's `model` section, the base every stage starts from, in `dtype` (see
    `compute_dtype`); (None, tokenizer) with `tokenizer_only`."""
    folder = resolve_model(spec.name, spec.revision)
    if tokenizer_only:
        return None, load_tokenizer(folder, spec.chat_template, spec.trust_remote_code)
    return load_model(folder, dtype, chat_template=spec.chat_template, trust_remote_code=spec.trust_remote_code)


def cpu_threads(cfg) -> int:
    """The CPU threads torch computes with: `run.threads`, else `OMP_NUM_THREADS` where the environment sets it (a
    launcher or a test runner sharing the cores between processes), else every core."""
    import os

    return cfg.run.threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1


def setup_torch(cfg) -> None:
    """Threads and seed for a stage that runs a model in this process."""
    import torch

    torch.set_num_threads(cpu_threads(cfg))
    torch.manual_seed(cfg.run.seed)


def load_for_stage(cfg, stage: str):
    """(model, tokenizer) of the base as `stage` needs it: the tokenizer alone where the stage runs no model here
    (`stage_dtype` is None), else the weights in the stage's dtype."""
    dtype = stage_dtype(cfg, stage)
    return load_base(cfg.model, tokenizer_only=dtype is None, dtype=dtype or "float32")
