"""Memory pre-flight: estimate peak training memory from the model's config before any weight is loaded. Pure.

The estimate adds up weights (by method and precision), gradients and AdamW state of the trainable parameters,
activations (by micro-batch, sequence length, gradient checkpointing and the attention kernel) and the logits of the loss. It is a
planning figure with a safety margin, not a measurement; the train manifest records the measured peak beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1 << 30
MARGIN = 1.15
"""Allocator fragmentation and buffers the sum does not see."""


@dataclass(frozen=True)
class Shape:
    """What the estimate needs from a transformers config.json."""

    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict) -> Shape:
        heads = config.get("num_attention_heads", 1)
        return cls(vocab=config["vocab_size"], hidden=config["hidden_size"], layers=config["num_hidden_layers"],
                   intermediate=config.get("intermediate_size", 4 * config["hidden_size"]), heads=heads,
                   kv_heads=config.get("num_key_value_heads") or heads, tied=config.get("tie_word_embeddings", False))

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one decoder block, Llama naming."""
        h, kv = self.hidden, self.hidden // self.heads * self.kv_heads
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, self.intermediate), "up_proj": (h, self.intermediate),
                "down_proj": (self.intermediate, h)}

    def params(self) -> tuple[int, int]:
        """(parameters in decoder linear layers, all other parameters: embeddings, head, norms)."""
        linear = self.layers * sum(i * o for i, o in self.linear_shapes().values())
        other = self.vocab * self.hidden * (1 if self.tied else 2) + (2 * self.layers + 1) * self.hidden
        return linear, other


@dataclass(frozen=True)
class Plan:
    method: str
    micro_batch: int
    seq_len: int
    bf16: bool
    gradient_checkpointing: bool
    lora_r: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    eager_attention: bool = False
    """Eager attention keeps each layer's attention scores and probabilities (flash and SDPA kernels do not)."""


def estimate(shape: Shape, plan: Plan) -> dict[str, float]:
    """Bytes by part, and `total` with the margin.

    >>> tiny = Shape(vocab=1000, hidden=64, layers=2, intermediate=128, heads=4, kv_heads=4, tied=True)
    >>> parts = estimate(tiny, Plan("lora", micro_batch=8, seq_len=256, bf16=False, gradient_checkpointing=False))
    >>> parts["total"] < 64 * 2**20
    True
    """
    linear, other = shape.params()
    width = 2 if plan.bf16 else 4
    if plan.method == "qlora":
        weights = linear * (0.5 + 0.127 / 8) + other * width  # NF4 plus double-quantized constants
    elif plan.method == "full":
        weights = (linear + other) * 4  # fp32 master weights (mixed precision keeps them)
    else:
        weights = (linear + other) * width
    if plan.method == "full":
        trainable = linear + other
    else:
        shapes = shape.linear_shapes()
        targets = shapes if "all-linear" in plan.lora_targets else {k: shapes[k] for k in plan.lora_targets
                                                                   if k in shapes}
        trainable = shape.layers * sum(plan.lora_r * (i + o) for i, o in targets.values())
    tokens = plan.micro_batch * plan.seq_len * (2 if plan.method == "dpo" else 1)  # DPO: chosen and rejected
    one_layer = tokens * 34 * shape.hidden * width / 2  # Korthikanti et al.: ~34 bytes x hidden per token in bf16
    if plan.eager_attention:
        one_layer += tokens * plan.seq_len * shape.heads * width * 2
    if plan.gradient_checkpointing:  # each layer's input is kept; one layer at a time is recomputed
        activations = tokens * shape.layers * shape.hidden * width + one_layer
    else:
        activations = shape.layers * one_layer
    logits = tokens * shape.vocab * 4 * 2  # fp32 logits and their gradient
    parts = {"weights": weights, "gradients": trainable * 4, "optimizer": trainable * 8, "activations": activations,
             "logits": logits}
    parts["total"] = sum(parts.values()) * MARGIN
    return parts


def advice(shape: Shape, plan: Plan, available: float) -> list[str]:
    """What would make the plan fit, each option checked against the same estimate."""
    options = []
    if plan.micro_batch > 1:
        smaller = Plan(**{**plan.__dict__, "micro_batch": max(1, plan.micro_batch // 2)})
        options.append((f"halve the micro-batch (train.micro_batch_size={smaller.micro_batch}) and double "
                        "train.grad_accum to keep the effective batch", smaller))
    if not plan.gradient_checkpointing:
        options.append(("enable train.gradient_checkpointing (about 30% slower, far fewer activations)",
                        Plan(**{**plan.__dict__, "gradient_checkpointing": True})))
    if plan.method in ("lora", "full"):
        options.append(("switch to train.method=qlora (4-bit base weights)", Plan(**{**plan.__dict__, "method": "qlora"})))
    lines = []
    for text, alternative in options:
        total = estimate(shape, alternative)["total"]
        lines.append(f"{text}: about {total / GIB:.1f} GiB" + (" (fits)" if total <= available else ""))
    minimal = Plan(**{**plan.__dict__, "micro_batch": 1, "gradient_checkpointing": True,
                      "method": "qlora" if plan.method in ("lora", "full", "qlora") else plan.method})
    total = estimate(shape, minimal)["total"]
    lines.append(f"all of these, with micro-batch 1: about {total / GIB:.1f} GiB" + (" (fits)" if total <= available
                                                                                     else ""))
    return lines
