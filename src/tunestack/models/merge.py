"""LoRA checkpoints merged into their base: what evaluation, export and replay run."""

from __future__ import annotations

import json
from pathlib import Path


CHECKPOINT_META = "tunestack-checkpoint.json"
"""Metadata the train stage writes into every published checkpoint."""


def trained_on(model, checkpoint: str | Path):
    """The model a LoRA checkpoint was trained on: `model` itself, or a merged copy with the earlier checkpoint it
    started from (`train.init_from`, recorded in its metadata) merged in."""
    meta = Path(checkpoint) / CHECKPOINT_META
    earlier = json.loads(meta.read_text()).get("init_from") if meta.exists() else None
    return merged_copy(model, earlier) if earlier else model


def merged_copy(model, checkpoint: str | Path | None):
    """A standalone copy of `model` with the LoRA checkpoint merged into its weights; `model` is left untouched.
    A checkpoint trained from an earlier one (`train.init_from`) gets that one merged first. A full fine-tuning
    checkpoint is loaded as it is, in `model`'s dtype.

    Merging happens in the model's own dtype (fp32 for a freshly loaded model), before any cast for inference.
    """
    import copy

    from peft import PeftModel

    if checkpoint is not None and not (Path(checkpoint) / "adapter_config.json").exists():
        from transformers import AutoModelForCausalLM  # a full fine-tuning checkpoint: the weights themselves

        return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=model.dtype).to(model.device)
    if checkpoint is None:
        return copy.deepcopy(model)
    base = trained_on(model, checkpoint)
    clone = copy.deepcopy(model) if base is model else base
    return PeftModel.from_pretrained(clone, str(checkpoint)).merge_and_unload(safe_merge=True)
