"""`export:` the chosen checkpoint merged into a standalone model folder."""

from __future__ import annotations

from typing import Literal

from tunestack.config.base import Section


class ExportSection(Section):
    enabled: bool = True
    """Merge the chosen checkpoint into a standalone model folder."""
    verify: bool = True
    """Check that the merged model's greedy outputs on the eval set equal the adapter's."""
    merge: Literal["auto", "loaded", "streamed"] = "auto"
    """How a LoRA checkpoint is merged. `loaded`: the base loaded in the export dtype and the adapter merged into it in
    place (one model in memory; the check loads the export beside it). `streamed`: from the files, shard by shard,
    no model loaded (only one base shard and the adapter in memory), for a base larger than this machine's memory.
    `auto`: `loaded` when two models in the export dtype fit in the free memory of the device export runs on, else
    `streamed`, saying why; the check is then skipped with its reason where the two models do not fit. An adapter
    that is more than LoRA pairs on linear layers (DoRA, modules_to_save, embeddings) is merged loaded."""
