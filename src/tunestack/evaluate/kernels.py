"""The attention kernel the local backend's greedy decoding and scoring run with (`tunestack.evaluate.generate`).

`attention_kernel` switches a model to a kernel for the duration of a block and puts its own back after. `eager`
runs as `grouped_eager` where the model's eager attention is transformers' plain one (Llama's code, `plain_eager`):
the same operations without `repeat_kv`'s copy of the keys and values for every query head, and aligned, so in 16
bits a row left-padded by an odd number of columns attends from its second column on and every row's keys start at
an even offset. `ALIGNMENT` is the left padding, by kernel, that leaves a row's 16-bit attention bit-identical to
no padding; `alignment` the one a kernel needs at a dtype.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

__all__ = ["ALIGNMENT", "GROUPED", "alignment", "attention_kernel", "evaluation_kernel", "grouped_eager",
           "plain_eager"]

GROUPED = "tunestack_grouped_eager"
"""The name `grouped_eager` is registered under with transformers (`attention="eager"` runs it where it applies)."""
ALIGNMENT = {"eager": 2, GROUPED: 2, "sdpa": 16}
"""Left padding (in columns) that leaves a row's 16-bit attention bit-identical to no padding, by attention kernel
(measured on a CPU with AVX512-BF16 and AMX); eager attention in fp32 needs none, an unlisted kernel is not aligned."""


def evaluation_kernel(device_type: str) -> str:
    """The attention kernel local evaluation computes with on a device, whatever the model was loaded or trained
    with, so that live evaluation (on the training model, flash-attention on a GPU) and the evaluate stage (a fresh
    load) compute alike: eager on a CPU (batch-invariant, see `grouped_eager`), SDPA on a GPU (any dtype, where
    flash-attention refuses fp32 master weights). The evaluation cache key names it.

    >>> evaluation_kernel("cpu"), evaluation_kernel("cuda")
    ('eager', 'sdpa')
    """
    return "eager" if device_type == "cpu" else "sdpa"


@contextmanager
def attention_kernel(model, name: str | None):
    """`model` (a peft wrapper's base) computing attention with the kernel `name` for the duration of the block,
    its own put back after; yields the kernel in use. `eager` is `grouped_eager` where every attention layer's own
    eager function is transformers' plain one. None, or a model that cannot switch: its own."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    current = base.config._attn_implementation
    if name == "eager" and plain_eager(base):
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, eager_mask

        AttentionInterface.register(GROUPED, grouped_eager)
        AttentionMaskInterface.register(GROUPED, eager_mask)
        name = GROUPED
    if name is None or name == current or not base._can_set_attn_implementation():
        yield current
        return
    base.set_attn_implementation(name)
    try:
        yield name
    finally:
        base.set_attn_implementation(current)


def plain_eager(model) -> bool:
    """Is every attention layer's eager function (in its modeling module) the same code as Llama's: no soft-capping,
    no sinks, nothing `grouped_eager` would leave out?"""
    import sys

    from transformers.models.llama.modeling_llama import eager_attention_forward as llama

    def same(fn) -> bool:
        return fn is llama or (fn is not None and all(getattr(fn.__code__, a) == getattr(llama.__code__, a)
                                                      for a in ("co_code", "co_consts", "co_names", "co_varnames")))

    layers = [m for m in model.modules() if hasattr(m, "num_key_value_groups")]
    return bool(layers) and all(same(getattr(sys.modules[type(m).__module__], "eager_attention_forward", None))
                                for m in layers)


def grouped_eager(module, query, key, value, attention_mask, scaling: float, dropout: float = 0.0, **kwargs):
    """transformers' eager attention (Llama's `eager_attention_forward`: the same operations on the same values)
    without copying the keys and values once per query head, and aligned: in 16 bits a row left-padded by an odd
    number of columns attends over its keys from the second column on, so every row's keys start at an even offset
    (`ALIGNMENT`) and prompts of any lengths can share a batch. Rows come even offsets first (`LocalGenerator`
    orders them so); any other order is gathered."""
    if attention_mask is None or query.dtype == torch.float32 or key.shape[-2] < 2:
        return _attend(module, query, key, value, attention_mask, scaling, dropout)
    odd = (attention_mask[:, 0, -1] == 0).int().argmax(-1) % 2 == 1  # each row's first attended column
    even = int((~odd).sum())
    if even == len(odd):
        return _attend(module, query, key, value, attention_mask, scaling, dropout)
    order = None
    if not bool(odd[even:].all()):
        order = torch.argsort(odd.int(), stable=True)
        query, key, value, attention_mask = query[order], key[order], value[order], attention_mask[order]
    parts = [] if even == 0 else [_attend(module, query[:even], key[:even], value[:even], attention_mask[:even],
                                          scaling, dropout)]
    parts.append(_attend(module, query[even:], key[even:, :, 1:].contiguous(), value[even:, :, 1:].contiguous(),
                         attention_mask[even:, ..., 1:], scaling, dropout))
    out = torch.cat([o for o, _ in parts]) if len(parts) > 1 else parts[0][0]
    if order is not None:
        out = out[torch.argsort(order)]
    return out, None


def _attend(module, query, key, value, attention_mask, scaling: float, dropout: float):
    """Eager attention with the query heads that share a key/value head stacked as the rows of one matmul."""
    batch, heads, length, dim = query.shape
    shared = key.shape[1]
    rows = query.reshape(batch, shared, heads // shared * length, dim)
    scores = (torch.matmul(rows, key.transpose(2, 3)) * scaling).view(batch, heads, length, -1)
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    out = torch.matmul(weights.view(batch, shared, heads // shared * length, -1), value)
    return out.view(batch, heads, length, dim).transpose(1, 2).contiguous(), weights


def alignment(kernel: str, dtype) -> int:
    """The left padding, in columns, a row's attention is invariant to (`ALIGNMENT`; eager in fp32: any)."""
    if kernel in ("eager", GROUPED) and dtype == torch.float32:
        return 1
    return ALIGNMENT.get(kernel, 1)
