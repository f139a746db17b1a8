"""The default GPU table and the rules of thumb the cost model falls back on when nothing was measured or set.

Every figure here is a planning default, not a quote: outputs built on one are marked as resting on a default, and
each can be replaced under `cost:` in the config (`cost.gpus` for prices, `cost.training.tokens_per_second`,
`cost.serving.throughput_awq`, ...). Prices are on-demand cloud list prices per GPU-hour in US dollars, rounded;
marketplaces and commitments are often cheaper, so check your provider.

>>> GPUS["a100"].price_per_hour, GPUS["a100"].price_range
(5.0, (4.0, 6.0))
>>> round(train_tokens_per_second("a100", size_b=14, method="lora"))
500
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    """One row of the default table."""

    name: str
    price_per_hour: float
    """Point value used in the arithmetic, $ per GPU-hour."""
    price_range: tuple[float, float]
    """The usual range, shown beside the point value."""
    train_tokens_per_second: float
    """LoRA/QLoRA fine-tuning throughput of a 7B model on one GPU, prompt and answer tokens."""
    serve_tokens_per_second: float
    """Tokens per second (prompt and generated) one replica serving a 7B AWQ 4-bit model sustains with batching."""


# Training throughputs are anchored on the A100: 1,000 tokens/s means 1,500 examples of ~1,000 tokens for 3 epochs
# take 1.25 A100-hours, inside the usual "a 7B QLoRA fine-tune on 1,500 examples takes 1-2 A100-hours". The other
# GPUs are scaled by their dense bf16 tensor throughput relative to the A100, discounted for what fine-tuning reaches.
# Serving figures assume a batching server (vLLM, TGI) at moderate latency targets; measure yours and set them.
GPUS: dict[str, Gpu] = {g.name: g for g in (
    Gpu("a100", 5.00, (4.00, 6.00), 1000, 5000),
    Gpu("h100", 8.00, (6.00, 11.00), 2500, 11000),
    Gpu("h200", 10.00, (8.00, 12.00), 2800, 13000),
    Gpu("a10g", 1.00, (0.75, 1.50), 250, 1500),   # AWS g5.xlarge on demand: about $1.01/h
    Gpu("l4", 0.80, (0.60, 1.00), 250, 1200),     # AWS g6.xlarge on demand: about $0.80/h
    Gpu("t4", 0.53, (0.35, 0.75), 120, 500),      # AWS g4dn.xlarge on demand: about $0.53/h
)}

REFERENCE_SIZE_B = 7.0
"""The model size, in billions of parameters, the table's throughputs are for; they scale inversely with size."""

# LoRA skips the weight-gradient matmuls: about 4N FLOPs per token against full fine-tuning's 6N. DPO adds the
# reference model's forward pass (2N) to LoRA's 4N.
METHOD_SPEED = {"lora": 1.0, "qlora": 1.0, "full": 4 / 6, "dpo": 4 / 6}

EXPERIMENTS = (8, (5, 10))
"""Runs before the one that works: the usual 5-10; 8 is used."""
EVAL_OVERHEAD = (0.15, (0.10, 0.20))
"""Evaluation compute as a share of training compute when it was not measured: the usual 10-20%; 15% is used."""
AWQ_PENALTY = (0.40, (0.30, 0.50))
"""Serving without AWQ costs this much more hardware than with it: the usual 30-50%; 40% is used."""
PEAK_TO_AVERAGE = 2.0
"""Busiest-hour traffic over the monthly average, for sizing replicas."""
HOURS_PER_MONTH = 730.0
"""8,760 hours a year / 12: a replica that is always on."""


def price_label(name: str) -> str:
    """How a default price is cited in outputs.

    >>> price_label("a100")
    'table: a100 $5.00/h (usual $4.00-6.00)'
    """
    gpu = GPUS[name]
    low, high = gpu.price_range
    return f"table: {name} ${gpu.price_per_hour:.2f}/h (usual ${low:.2f}-{high:.2f})"


def train_tokens_per_second(gpu: str, size_b: float, method: str) -> float:
    """The table's training throughput for `gpu`, scaled to the model size and the method."""
    return GPUS[gpu].train_tokens_per_second * REFERENCE_SIZE_B / size_b * METHOD_SPEED[method]


def serve_tokens_per_second(gpu: str, size_b: float) -> float:
    """The table's AWQ serving throughput for `gpu`, scaled to the model size (decoding is bandwidth-bound)."""
    return GPUS[gpu].serve_tokens_per_second * REFERENCE_SIZE_B / size_b
