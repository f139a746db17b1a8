"""The base model quantized to NF4 (bitsandbytes), as QLoRA trains on it and as a QLoRA checkpoint is evaluated on
it: both the train and the evaluate stage load it from here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from tunestack.errors import MissingDependencyError


def load_4bit(folder: Path, init_from: str | None, bf16: bool, trust_remote_code: bool = False,
              scratch: Path | None = None):
    """The NF4 base, prepared for training an adapter on it."""
    from peft import prepare_model_for_kbit_training

    model = load_nf4(folder, init_from, bf16, trust_remote_code, scratch)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def load_nf4(folder: Path, init_from: str | None, bf16: bool, trust_remote_code: bool = False,
             scratch: Path | None = None):
    """The base quantized to NF4 as QLoRA trains on it (an `init_from` adapter merged first, in full precision):
    also what a QLoRA checkpoint is evaluated on. The merged copy is written under `scratch` (the caller's own run
    folder; default the system's temporary folder), in a folder of its own, and removed once loaded: never beside
    the `init_from` checkpoint, which belongs to another run that others may read at the same time."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("bitsandbytes", "train") from exc
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    staged = None
    if init_from:
        # An adapter trained earlier is merged in full precision, then the merged weights are quantized.
        import tempfile

        from tunestack.models import load_model
        from tunestack.models.merge import merge_into

        base, _ = load_model(folder, trust_remote_code=trust_remote_code)
        if scratch is not None:
            Path(scratch).mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".merged-for-qlora-", dir=scratch))
        merge_into(base, init_from).save_pretrained(staged)
        del base
        folder = staged
    compute = torch.bfloat16 if bf16 else torch.float32
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
    # each DDP rank's copy on its own GPU (torchrun sets LOCAL_RANK), not all of them on GPU 0
    device_map = {"": int(os.environ.get("LOCAL_RANK", 0))} if torch.cuda.is_available() else {"": "cpu"}
    try:
        return AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, dtype=compute,
                                                    device_map=device_map, trust_remote_code=trust_remote_code)
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
