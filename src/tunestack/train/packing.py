"""Packing and the share of real tokens in what the model computes on.

Packed rows (best-fit-decreasing, TRL's packer) go through TRL's padding-free collator, which keeps examples apart
by position ids. Unpacked rows are padded to the longest row of each micro-batch. Either way `RealTokenMeter` counts
how much of each batch is real tokens rather than padding, and the train manifest reports it.
"""

from __future__ import annotations


def packing_on(setting: bool | str, attention: str) -> bool:
    """`train.packing` resolved: `auto` packs only where attention runs per example without a block mask.

    >>> packing_on("auto", "flash_attention_2"), packing_on("auto", "eager"), packing_on(True, "eager")
    (True, False, True)
    """
    if setting == "auto":
        return attention == "flash_attention_2"
    return bool(setting)


def pack(rendered: list[dict], max_length: int):
    """Rows packed best-fit-decreasing into sequences of at most max_length tokens, with the per-example lengths
    that become position ids; and the share of each packed row that is filled."""
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    packed = pack_dataset(Dataset.from_list(rendered), seq_length=max_length, strategy="bfd")
    tokens = sum(len(r["input_ids"]) for r in rendered)
    return packed, round(tokens / (len(packed) * max_length), 4)


class RealTokenMeter:
    """Wraps the Trainer's collator and counts real tokens against all token slots of the batches it builds."""

    def __init__(self, collate):
        self.collate = collate
        self.real = 0
        self.slots = 0

    def __call__(self, examples):
        batch = self.collate(examples)
        mask = batch.get("attention_mask")
        ids = batch["input_ids"]
        self.slots += ids.numel()
        self.real += int(mask.sum()) if mask is not None else ids.numel()
        return batch

    def share(self) -> float | None:
        return round(self.real / self.slots, 4) if self.slots else None
