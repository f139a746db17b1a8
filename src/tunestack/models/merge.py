"""LoRA checkpoints merged into their base: what evaluation, export and replay run."""

from __future__ import annotations

import json
from contextlib import ExitStack, contextmanager
from pathlib import Path


CHECKPOINT_META = "tunestack-checkpoint.json"
"""Metadata the train stage writes into every published checkpoint."""


def is_full(checkpoint: str | Path | None) -> bool:
    """A full fine-tuning checkpoint: the weights themselves, no LoRA adapter."""
    return checkpoint is not None and not (Path(checkpoint) / "adapter_config.json").exists()


def trained_on(model, checkpoint: str | Path):
    """The model a LoRA checkpoint was trained on: `model` itself, or a merged copy with the earlier checkpoint it
    started from (`train.init_from`, recorded in its metadata) merged in."""
    before = earlier(checkpoint)
    return merged_copy(model, before) if before else model


def load_full(checkpoint: str | Path, dtype, device, trust_remote_code: bool = False):
    """A full fine-tuning checkpoint (the weights themselves, no adapter), read once in `dtype` onto `device`."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype, device_map={"": device},
                                                trust_remote_code=trust_remote_code)


def merged_copy(model, checkpoint: str | Path | None):
    """A standalone copy of `model` with the LoRA checkpoint merged into its weights; `model` is left untouched.
    A checkpoint trained from an earlier one (`train.init_from`) gets that one merged first. A full fine-tuning
    checkpoint is loaded as it is, in `model`'s dtype.

    Merging happens in the model's own dtype (fp32 for a freshly loaded model), before any cast for inference.
    """
    import copy

    from peft import PeftModel

    if is_full(checkpoint):
        return load_full(checkpoint, model.dtype, model.device)
    if checkpoint is None:
        return copy.deepcopy(model)
    base = trained_on(model, checkpoint)
    clone = copy.deepcopy(model) if base is model else base
    return PeftModel.from_pretrained(clone, str(checkpoint)).merge_and_unload(safe_merge=True)


def merge_into(model, checkpoint: str | Path):
    """`model` with a checkpoint merged into its own weights for good (no copy): a LoRA checkpoint, the ones it was
    trained from first; a full fine-tuning checkpoint is loaded instead, in `model`'s dtype and on its device."""
    from peft import PeftModel

    if is_full(checkpoint):
        return load_full(checkpoint, model.dtype, model.device)
    for step in chain(checkpoint):
        model = PeftModel.from_pretrained(model, step).merge_and_unload(safe_merge=True)
    return model


def earlier(checkpoint: str | Path | None) -> str | None:
    """The checkpoint a LoRA checkpoint was trained from (`train.init_from`, in its metadata), or None."""
    if checkpoint is None:
        return None
    meta = Path(checkpoint) / CHECKPOINT_META
    return json.loads(meta.read_text()).get("init_from") if meta.exists() else None


def chain(checkpoint: str | Path) -> list[str]:
    """The LoRA checkpoints to merge, in order: the earliest one a chain of `train.init_from` started from first."""
    steps = [str(checkpoint)]
    while (before := earlier(steps[0])) is not None:
        steps.insert(0, before)
    return steps


def _lora_base_weights(model) -> list:
    """The base weights that merging a LoRA adapter into `model` (a peft model) changes."""
    from peft.tuners.lora import LoraLayer

    return [m.get_base_layer().weight for m in model.modules() if isinstance(m, LoraLayer)]


@contextmanager
def restored(weights: list):
    """Whatever is done to `weights` inside the block is undone exactly afterwards, from a copy kept in host
    memory: the device never holds a second copy of the model."""
    import torch

    saved = [w.detach().to("cpu", copy=True) for w in weights]
    try:
        yield
    finally:
        with torch.no_grad():
            for weight, copy_ in zip(weights, saved):
                weight.copy_(copy_)


@contextmanager
def merged_in_place(model, checkpoint: str | Path | None):
    """`model` with the checkpoint merged into its own weights for the duration of the block, the same merge as
    `merged_copy` without the copy: afterwards the weights are restored exactly. A full fine-tuning checkpoint is
    loaded beside it (in `model`'s dtype, on its device) and freed after."""
    from peft import PeftModel

    if checkpoint is None:
        yield model
        return
    if is_full(checkpoint):
        loaded = load_full(checkpoint, model.dtype, model.device)
        try:
            yield loaded
        finally:
            del loaded
        return
    with ExitStack() as stack:
        for step in chain(checkpoint):  # an adapter's own init_from first; each merge undone in reverse order
            wrapped = PeftModel.from_pretrained(model, step)  # injects LoRA layers into `model`'s own modules
            stack.enter_context(restored(_lora_base_weights(wrapped)))
            model = wrapped.merge_and_unload(safe_merge=True)
        yield model


@contextmanager
def adapter_merged(model):
    """A peft model being trained, with its adapter merged into the base for the duration (exactly the merge the
    evaluate stage makes of the saved checkpoint), then unmerged and the base weights restored bit for bit."""
    with restored(_lora_base_weights(model)):
        model.merge_adapter(safe_merge=True)  # the very operation merge_and_unload(safe_merge=True) does
        try:
            yield model
        finally:
            model.unmerge_adapter()
