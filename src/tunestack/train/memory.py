"""Memory pre-flight: estimate peak training memory from the model's config before any weight is loaded. Pure.

The estimate adds up weights (by method and the dtype they are loaded in), gradients and AdamW state of the trainable
parameters, activations (counted per tensor for a Llama-style block, by micro-batch, sequence length, gradient
checkpointing and the attention kernel) and the loss's logits tile. It is a planning figure with a safety margin; the
train manifest records it again at the lengths really trained on, beside the measured peak, and
`tests/test_memory.py` holds the two within 25% for LoRA, QLoRA and full fine-tuning on CPU.
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
    weight_bytes: int = 4
    """Bytes per dense weight as loaded (`model.dtype`): 2 for bf16/fp16, 4 for fp32."""
    world: int = 1
    """Training processes (one per GPU): the estimate is per process."""
    sharding: str = "none"
    """What the processes split among them: `none` (DDP: each holds everything), `fsdp` (full shard: weights,
    gradients and optimizer state), `zero1` (optimizer state), `zero2` (and gradients), `zero3` (and weights)."""
    offload: bool = False
    """FSDP or ZeRO keep optimizer state (FSDP, ZeRO-3: the weights too) in CPU memory."""


def per_token(shape: Shape, plan: Plan, width: int) -> float:
    """Bytes one decoder block keeps per token for the backward pass, counted tensor by tensor for a Llama-style
    block (RMSNorm, attention with grouped KV heads, SwiGLU MLP) rather than taken from a GPT rule of thumb:
    - each RMSNorm upcasts to fp32 and keeps its input and normalised output in fp32, and its output (x2 norms);
    - attention keeps the input of q/k/v, q, k and v after RoPE, and the input of o;
    - the MLP keeps the input of gate/up, the gate and up outputs, SiLU's output and the input of down;
    - each LoRA-adapted layer keeps its own cast of the input (peft runs the adapter in its fp32 weights' dtype,
      autocast casts back), and the rank-r output of A.
    With QLoRA the residual stream is fp32 (k-bit preparation casts the embeddings and norms up), which doubles what
    the norms and the residual adds keep."""
    h, i = shape.hidden, shape.intermediate
    kv = h // shape.heads * shape.kv_heads
    residual = 4 if plan.method == "qlora" or not plan.bf16 else width
    norms = 2 * (4 * h + 4 * h + residual * h)
    attention = width * (h + 2 * (h + 2 * kv) + h)
    mlp = width * (h + 4 * i)
    inputs = {"q_proj": h, "k_proj": h, "v_proj": h, "o_proj": h, "gate_proj": h, "up_proj": h, "down_proj": i}
    lora = 0.0
    if plan.method != "full":
        adapted = inputs if "all-linear" in plan.lora_targets else {k: v for k, v in inputs.items()
                                                                    if k in plan.lora_targets}
        lora = sum(width * n + 4 * plan.lora_r for n in adapted.values())
    return norms + attention + mlp + lora


def estimate(shape: Shape, plan: Plan) -> dict[str, float]:
    """Bytes by part, and `total` with the margin.

    >>> tiny = Shape(vocab=1000, hidden=64, layers=2, intermediate=128, heads=4, kv_heads=4, tied=True)
    >>> parts = estimate(tiny, Plan("lora", micro_batch=8, seq_len=256, bf16=False, gradient_checkpointing=False))
    >>> parts["total"] < 64 * 2**20
    True
    """
    linear, other = shape.params()
    width = 2 if plan.bf16 else 4  # what the matmuls compute in, hence what activations are kept in
    if plan.method == "qlora":  # NF4 plus double-quantized constants; the rest cast to fp32 for k-bit training
        weights = linear * (0.5 + 0.127 / 8) + other * 4
    else:
        weights = (linear + other) * plan.weight_bytes
    if plan.method == "full":
        trainable = linear + other
    else:
        shapes = shape.linear_shapes()
        targets = shapes if "all-linear" in plan.lora_targets else {k: shapes[k] for k in plan.lora_targets
                                                                   if k in shapes}
        trainable = shape.layers * sum(plan.lora_r * (i + o) for i, o in targets.values())
    tokens = plan.micro_batch * plan.seq_len * (2 if plan.method == "dpo" else 1)  # DPO: chosen and rejected
    one_layer = tokens * per_token(shape, plan, width)
    if plan.eager_attention:  # the scores and their softmax, per head
        one_layer += tokens * plan.seq_len * shape.heads * width * 2
    if plan.gradient_checkpointing:  # each layer's input is kept; one layer at a time is recomputed
        activations = tokens * shape.layers * shape.hidden * width + one_layer
    else:
        activations = shape.layers * one_layer
    if plan.method == "full" and plan.bf16 and plan.weight_bytes == 4:
        activations += linear * 2  # autocast's bf16 copy of each fp32 weight, kept for the backward pass
    if plan.method in ("dpo", "grpo"):  # GRPO: every answer's per-token log-probabilities, from full logits
        logits = tokens * shape.vocab * 4 * 2  # fp32 logits and their gradient
    else:  # TRL's chunked LM head: a tile of at most 4096 tokens x 32768 vocabulary entries, and its gradient
        logits = min(tokens, 4096) * min(shape.vocab, 32768) * width * 2
    parts = {"weights": weights, "gradients": trainable * 4, "optimizer": trainable * 8, "activations": activations,
             "logits": logits}
    if plan.world > 1:
        parts.update(sharded(shape, plan, parts))
    # The activations and logits are at their largest when the backward pass starts, the gradients when it ends
    # (the activations freed by then): the peak holds the larger of the two beside the weights and optimizer state.
    transient = max(parts["gradients"], activations + logits)
    parts["total"] = (parts["weights"] + parts["optimizer"] + transient) * MARGIN
    return parts


SHARDED = {"none": (), "zero1": ("optimizer",), "zero2": ("optimizer", "gradients"),
           "zero3": ("optimizer", "gradients", "weights"), "fsdp": ("optimizer", "gradients", "weights")}
"""The parts each sharding strategy splits across the processes."""


def sharded(shape: Shape, plan: Plan, parts: dict[str, float]) -> dict[str, float]:
    """One process's share of the parts under `plan.sharding` across `plan.world` processes: a sharded part is
    split evenly; sharded weights are gathered one decoder block at a time for its forward and backward (that
    block whole, beside the shards); offloaded optimizer state (and, with FSDP or ZeRO-3, weights) leaves the
    device. DDP holds everything, and its gradient buckets as much again as the gradients.

    >>> tiny = Shape(vocab=32000, hidden=4096, layers=32, intermediate=11008, heads=32, kv_heads=32, tied=False)
    >>> full = Plan("full", micro_batch=1, seq_len=2048, bf16=True, gradient_checkpointing=True, weight_bytes=2)
    >>> one, ddp = estimate(tiny, full), estimate(tiny, Plan(**{**full.__dict__, "world": 8}))
    >>> fsdp = estimate(tiny, Plan(**{**full.__dict__, "world": 8, "sharding": "fsdp"}))
    >>> ddp["total"] > one["total"] > 4 * fsdp["total"], round(one["optimizer"] / fsdp["optimizer"])
    (True, 8)
    """
    if plan.sharding not in SHARDED:
        raise ValueError(f"unknown sharding {plan.sharding!r}: one of {', '.join(SHARDED)}")
    share = {k: parts[k] / plan.world for k in SHARDED[plan.sharding]}
    if plan.sharding == "none":
        share["gradients"] = parts["gradients"] * 2  # DDP's buckets beside the gradients
    if "weights" in share:  # one block gathered whole at a time
        share["weights"] += parts["weights"] / shape.layers
    if plan.offload:
        share["optimizer"] = 0.0
        if "weights" in share:
            share["weights"] = parts["weights"] / shape.layers  # only the block being computed is on the device
    return share


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
    if plan.world > 1 and plan.sharding != "fsdp" and plan.method != "qlora":
        options.append((f"shard across the {plan.world} processes (train.distributed.strategy=fsdp)",
                        Plan(**{**plan.__dict__, "sharding": "fsdp"})))
    if plan.method in ("lora", "full") and plan.sharding == "none":  # QLoRA is refused with sharding
        options.append(("switch to train.method=qlora (4-bit base weights)", Plan(**{**plan.__dict__, "method": "qlora"})))
    lines = []
    for text, alternative in options:
        total = estimate(shape, alternative)["total"]
        lines.append(f"{text}: about {total / GIB:.1f} GiB" + (" (fits)" if total <= available else ""))
    smallest = "qlora" if plan.method in ("lora", "full", "qlora") and plan.sharding == "none" else plan.method
    minimal = Plan(**{**plan.__dict__, "micro_batch": 1, "gradient_checkpointing": True, "method": smallest})
    total = estimate(shape, minimal)["total"]
    lines.append(f"all of these, with micro-batch 1: about {total / GIB:.1f} GiB" + (" (fits)" if total <= available
                                                                                     else ""))
    return lines
