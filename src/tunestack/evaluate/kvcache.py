"""KV-cache surgery for the local backend's greedy decoding (`tunestack.evaluate.generate`).

`prefill` computes the cache of a batch of left-padded prompts: their common first tokens (a task's system prompt)
once, copied into every row's cache at its row's columns (`placed`), and, under eager attention, rows in turn so
that the attention scores stay under `SCORES_BUDGET`, their caches then joined (`joined`). While decoding, a row
that stopped leaves the cache (`Cache.batch_select_indices`), and `trim_left` cuts the leading columns no row
attends to any more. Only caches whose layers are plain key/value tensors are cut or joined (`plain`, `joinable`).
"""

from __future__ import annotations

import torch

from tunestack.evaluate.kernels import GROUPED

__all__ = ["MIN_SHARED", "SCORES_BUDGET", "joinable", "joined", "placed", "plain", "prefill", "trim_left"]

MIN_SHARED = 8
"""Common first tokens (of a batch's prompts) worth computing once for the whole batch."""
SCORES_BUDGET = 512 * 2**20
"""Bytes of attention scores (and their softmax) eager attention may hold at once in a prefill; more rows than fit
are prefilled in turn."""


def prefill(forward, config, ids, mask, positions, kernel: str, shared: list[int]):
    """The KV cache of the left-padded prompts and the logits of their last column, computed by `forward` (the
    model's, see `generate.plain_forward`; `config` the model's config).

    `shared`, the prompts' common first tokens (a task's system prompt), is computed once, and its keys and
    values are copied into every row's cache, each at its row's columns; the batch computes the rest of the
    columns. A chunked prefill is bit-identical to a whole one, whatever the split (measured), so this changes
    no answer. Eager attention holds every row's score matrix: rows are prefilled in turn, as many at once as
    `SCORES_BUDGET` allows, and their caches joined (rows do not interact, so the split changes nothing)."""
    from transformers import DynamicCache

    rows, width = ids.shape
    start = len(shared) if len(shared) >= MIN_SHARED and plain(DynamicCache(config=config)) else 0
    prefix = None
    if start:
        prefix = DynamicCache(config=config)
        forward(input_ids=torch.tensor([shared], device=ids.device),
                position_ids=torch.arange(start, device=ids.device)[None], past_key_values=prefix, use_cache=True,
                logits_to_keep=1)
    step = rows
    if kernel in ("eager", GROUPED) and joinable(DynamicCache(config=config)):
        heads = getattr(config.get_text_config(decoder=True), "num_attention_heads", 1) or 1
        step = max(1, SCORES_BUDGET // (10 * heads * width * (width - start)))  # bf16 scores + mask, fp32
    bounds = list(range(0, rows, step)) + [rows]                                  # softmax and its copy
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]  # no part of one row (of maybe one column: a one-row matmul, see `generate`'s doc)
    parts = []
    for first, end in zip(bounds, bounds[1:]):
        part = slice(first, end)
        cache = DynamicCache(config=config) if prefix is None else placed(prefix, mask[part], config)
        logits = forward(input_ids=ids[part, start:], attention_mask=mask[part],
                         position_ids=positions[part, start:], past_key_values=cache, use_cache=True,
                         logits_to_keep=1).logits[:, -1]
        parts.append((cache, logits))
    return joined(parts)


def joined(parts: list[tuple]) -> tuple:
    """One (cache, logits) from the (cache, logits) of row blocks prefilled in turn: their rows stacked in order."""
    if len(parts) == 1:
        return parts[0]
    cache = parts[0][0]
    for n, layer in enumerate(cache.layers):
        layer.keys = torch.cat([c.layers[n].keys for c, _ in parts])
        layer.values = torch.cat([c.layers[n].values for c, _ in parts])
    return cache, torch.cat([logits for _, logits in parts])


def joinable(cache) -> bool:
    """Is every layer of this cache a plain key/value tensor pair (which can be cut and joined)?"""
    from transformers.cache_utils import DynamicLayer

    return all(isinstance(layer, DynamicLayer) for layer in cache.layers)


def plain(cache) -> bool:
    """Is every layer of this cache a plain, growing key/value pair (no sliding window, which counts its columns)?"""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in cache.layers)


def placed(prefix, mask: torch.Tensor, config):
    """A cache for the rows of `mask` (left-padded, the longest row's first columns the shared prefix), its first
    columns filled from `prefix` (the shared tokens computed alone): each row's share of the prefix ends where the
    prefix ends in the longest row, padding (zeros, masked) before it."""
    from transformers import DynamicCache

    start = prefix.get_seq_length()
    pads = mask.shape[1] - mask.sum(-1)  # each row's left padding
    columns = torch.arange(start, device=mask.device)
    index = (columns[None] - pads[:, None] + 1).clamp(min=0)  # 0: a zero column; k: the prefix's token k - 1
    cache = DynamicCache(config=config)
    for layer, source in zip(cache.layers, prefix.layers):
        keys, values = (torch.cat([t.new_zeros(t[..., :1, :].shape), t], dim=-2)[0][:, index].transpose(0, 1)
                        .contiguous() for t in (source.keys, source.values))
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
    return cache


def trim_left(cache, mask: torch.Tensor, align: int) -> torch.Tensor:
    """Cut the leading columns no row attends to any more from the cache and the mask, a multiple of `align` of
    them (so every row keeps its alignment); the mask that goes with the cache."""
    if not plain(cache):
        return mask
    first = int(mask.any(0).int().argmax())
    cut = first - first % align
    if cut == 0:
        return mask
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[..., cut:, :], layer.values[..., cut:, :]
    return mask[:, cut:]
