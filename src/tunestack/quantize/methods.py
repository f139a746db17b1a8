"""Quantization methods behind one registry, as llm-compressor recipes, and the checks made before any work.

Every method quantizes the weights of the model's Linear layers (not `quantize.ignore`, never the embeddings) to
`bits` integers with one scale (and, asymmetric, a zero point) per `group_size` inputs or per output channel, the
layers of `eight_bit` to 8 bits per channel, activations left in 16 bits (W4A16, W8A16), saved as compressed-tensors,
which vLLM loads. Each scale is chosen by the candidate's `observer` (by default the clipping that minimises the
rounding error):

- `rtn`: round-to-nearest (`QuantizationModifier`); no calibration data.
- `gptq`: GPTQ's second-order error correction, layer by layer on calibration activations (`GPTQModifier`).
- `awq`: AWQ's activation-aware channel scales (the `AWQModifier` transform, llm-compressor's current API), then
  round-to-nearest (`QuantizationModifier`).

On a machine without an accelerator llm-compressor's AWQ stops at `IntermediatesCache.pin_memory` (pinned memory
needs one); `cpu_workaround` makes that call a no-op, which changes nothing but the transfer it would speed up.
"""

from __future__ import annotations

from contextlib import contextmanager

from tunestack.config.quantize import CandidateSpec
from tunestack.errors import MissingDependencyError, StageError

__all__ = ["METHODS", "cpu_workaround", "default_ladder", "group_sizes", "matches", "quantized_layers", "recipe",
           "validate"]

METHODS = ("awq", "gptq", "rtn")
CALIBRATED = {"awq": True, "gptq": True, "rtn": False}
"""Whether a method needs calibration data."""
LADDER_GROUPS = (128, 64, 32)
"""Group sizes `auto` considers, largest first."""


def require_llmcompressor() -> None:
    """Import llm-compressor (its console log at ERROR unless `LLM_COMPRESSOR_LOG_LEVEL` says otherwise: it warns
    once per layer that it compresses on the CPU; the stage keeps its full log in `quantize/llmcompressor/`)."""
    import os

    os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "ERROR")
    try:
        import compressed_tensors  # noqa: F401
        import llmcompressor  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("llmcompressor", "quantize") from exc


def matches(name: str, patterns: list[str]) -> bool:
    """Whether a layer name is one of `patterns` (llm-compressor's convention: a name, a dotted suffix of the name,
    or `re:` and a regular expression matched from the start)."""
    import re

    for pattern in patterns:
        if pattern.startswith("re:"):
            if re.match(pattern[3:], name):
                return True
        elif name == pattern or name.endswith("." + pattern):
            return True
    return False


def quantized_layers(model, ignore: list[str]) -> dict[str, int]:
    """Name -> input size of every Linear layer a recipe would quantize (embeddings are not Linear)."""
    import torch

    return {name: module.in_features for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not matches(name, ignore)}


def group_sizes(layers: dict[str, int]) -> list[int]:
    """The group sizes of `LADDER_GROUPS` that every layer's input size is a multiple of, largest first."""
    return [g for g in LADDER_GROUPS if layers and all(size % g == 0 for size in layers.values())]


MIXED = ["re:.*down_proj"]
"""The layers the `auto` ladder's mixed candidate keeps at 8 bits: the MLP's output projection, whose inputs (after
the gated activation) have the widest range; on the demo export it lifted GPTQ W4's general retention from 92% to
94% for a quarter of the Linear weights at 8 bits."""


def default_ladder(layers: dict[str, int]) -> list[CandidateSpec]:
    """`quantize.candidates: auto`: GPTQ W4A16 (asymmetric, MSE scales) at the largest group size the layers allow,
    the same with every `down_proj` at 8 bits (where the model has them), then GPTQ W8A16 per channel."""
    groups = group_sizes(layers)
    ladder = []
    if groups:
        ladder.append(CandidateSpec(method="gptq", bits=4, group_size=groups[0]))
        if any(matches(name, MIXED) for name in layers):
            ladder.append(CandidateSpec(method="gptq", bits=4, group_size=groups[0], eight_bit=MIXED))
    ladder.append(CandidateSpec(method="gptq", bits=8, group_size=None))
    return ladder


def validate(candidates: list[CandidateSpec], layers: dict[str, int]) -> None:
    """Refuse, before any calibration, a candidate whose group size does not divide every quantized layer's input
    size: llm-compressor would stop at the first layer (or a kernel later), after the work."""
    if not layers:
        raise StageError("quantize: no Linear layer is left to quantize (quantize.ignore covers them all)")
    problems = []
    for spec in candidates:
        if spec.group_size is None:
            continue
        bad = {name: size for name, size in layers.items()
               if size % spec.group_size and not matches(name, spec.eight_bit)}
        if bad:
            sizes = sorted(set(bad.values()))
            first = ", ".join(list(bad)[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            fits = group_sizes(layers) or ["none of 128, 64, 32: use group_size: null (per channel)"]
            problems.append(f"{spec.name}: group_size {spec.group_size} does not divide the input size "
                            f"{'/'.join(map(str, sizes))} of {len(bad)} layers ({first}); group sizes that fit "
                            f"this model: {', '.join(map(str, fits))}")
    if problems:
        raise StageError("quantize.candidates cannot be applied to this model:\n  " + "\n  ".join(problems) +
                         "\nChange the group size, or add the layers to quantize.ignore.")


def scheme(spec: CandidateSpec) -> dict:
    """The candidate as compressed-tensors quantization schemes (config groups) over Linear layers: `bits` for
    all, 8 bits per channel for `eight_bit` (a layer's most specific target wins)."""
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    weights = QuantizationArgs(num_bits=spec.bits, type="int", symmetric=spec.sym, observer=spec.observer,
                               strategy="group" if spec.group_size else "channel", group_size=spec.group_size)
    groups = {"group_0": QuantizationScheme(targets=["Linear"], weights=weights)}
    if spec.eight_bit:
        eight = QuantizationArgs(num_bits=8, type="int", symmetric=True, observer=spec.observer, strategy="channel")
        groups["group_1"] = QuantizationScheme(targets=list(spec.eight_bit), weights=eight)
    return groups


def recipe(spec: CandidateSpec, ignore: list[str]) -> list:
    """llm-compressor modifiers for the candidate."""
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    groups = scheme(spec)
    if spec.method == "rtn":
        return [QuantizationModifier(config_groups=groups, ignore=ignore)]
    if spec.method == "gptq":
        return [GPTQModifier(config_groups=groups, ignore=ignore, dampening_frac=spec.dampening_frac)]
    from llmcompressor.modifiers.transform.awq import AWQModifier

    return [AWQModifier(n_grid=spec.n_grid),
            QuantizationModifier(config_groups=groups, ignore=ignore)]


@contextmanager
def cpu_workaround():
    """llm-compressor without an accelerator: pinning calibration activations (AWQ's grid search does it to speed
    host-to-device copies) fails, so pinning is skipped for the duration of the block. Yields whether it was."""
    import torch
    from llmcompressor.pipelines.cache import IntermediatesCache

    if torch.accelerator.is_available():
        yield False
        return
    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, batch_index, input_names=None: None
    try:
        yield True
    finally:
        IntermediatesCache.pin_memory = original
