"""Stage `quantize`: the exported model quantized with llm-compressor, each candidate evaluated and gated."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from tunestack.config.base import Section


class CandidateSpec(Section):
    """One quantization configuration to try."""

    method: Literal["awq", "gptq", "rtn"]
    """`awq` (activation-aware scales, then round-to-nearest), `gptq` (second-order error correction), `rtn`
    (round-to-nearest, no calibration)."""
    bits: Literal[2, 3, 4, 8] = 4
    """Weight bits (activations stay 16-bit: W4A16, W8A16)."""
    group_size: int | None = Field(None, ge=8)
    """Weights per scale along the input dimension; null: one scale per output channel. Every quantized layer's
    input size must be a multiple of it (checked before any work)."""
    symmetric: bool | None = None
    """Symmetric (no zero point) or asymmetric. Default: asymmetric below 8 bits (a zero point per group: on the
    demo export GPTQ W4 g64 kept 92% general retention asymmetric against 86% symmetric), symmetric at 8 (what
    vLLM's W8A16 kernels take)."""
    observer: Literal["minmax", "mse", "imatrix_mse"] = "mse"
    """How each group's scale is chosen: `minmax` (the group's range), `mse` (the clipping of the range that
    minimises the rounding error), `imatrix_mse` (the same, weighted by each input channel's mean squared
    activation on the calibration rows)."""
    eight_bit: list[str] = []
    """Layers quantized to 8 bits per channel instead (mixed precision; llm-compressor names or `re:` patterns,
    e.g. `re:.*down_proj`); the rest get `bits`."""
    n_grid: int = Field(10, ge=3)
    """AWQ: grid points searched per scale (llm-compressor's default is 20; at 2 its grid divides by zero)."""
    dampening_frac: float = Field(0.01, gt=0)
    """GPTQ: dampening added to the Hessian's diagonal, as a share of its mean."""

    @model_validator(mode="after")
    def _mixed(self) -> CandidateSpec:
        if self.eight_bit and self.bits == 8:
            raise ValueError("eight_bit lists layers for 8 bits, but the candidate is 8-bit already: drop eight_bit "
                             "or set bits to 2, 3 or 4")
        return self

    @property
    def sym(self) -> bool:
        return self.symmetric if self.symmetric is not None else self.bits == 8

    @property
    def name(self) -> str:
        group = f"g{self.group_size}" if self.group_size else "ch"
        name = f"{self.method}-w{self.bits}a16-{'sym' if self.sym else 'asym'}-{group}"
        if self.observer != "mse":
            name += "-" + self.observer.replace("_", "")
        if self.eight_bit:
            name += "-w8-" + "-".join(re.sub(r"[^A-Za-z0-9]+", "", p.removeprefix("re:")) or "x"
                                      for p in self.eight_bit)
        return name


class CalibrationSpec(Section):
    rows: int = Field(64, ge=1)
    """Calibration rows, drawn (seeded by `run.seed`) from the training split only, never eval or holdout."""
    max_length: int = Field(256, ge=16)
    """Tokens per calibration row (longer rows are cut)."""
    mix: Literal["training", "task"] = "training"
    """`training`: the training mix, task rows and the general rows train mixed in, in the training share (so
    general capability is calibrated for too); `task`: task rows only."""


class QuantizeSection(Section):
    enabled: bool = False
    """Run the stage after export (`tunestack quantize` runs it on demand either way)."""
    candidates: Literal["auto"] | list[CandidateSpec] = "auto"
    """Configurations to try, in order; the first that passes the gate is chosen and the rest are not tried.
    `auto`: GPTQ W4A16 at the largest group size (128, 64 or 32) every quantized layer's input size divides, the
    same with every `down_proj` at 8 bits (where the model has them), then GPTQ W8A16 per channel."""
    ignore: list[str] = ["lm_head"]
    """Layers left in full precision (llm-compressor names or `re:` patterns). Embeddings are never quantized;
    lm_head by default (it is tied to the embedding in many small models, and 4 bits there cost most)."""
    calibration: CalibrationSpec = CalibrationSpec()
    """Calibration data."""
    min_retention: float = Field(0.97, ge=0, le=1)
    """A candidate must keep at least this share of the export's task accuracy and format compliance, both measured
    in this stage on the same suites and dtype."""
    min_general_retention: float | None = Field(None, ge=0)
    """And its general retention (relative to the base model, as selection computes it) must be at least this;
    default: `select.min_retention`, the floor the selected checkpoint was held to."""
    keep: Literal["chosen", "all"] = "chosen"
    """Model folders to keep: the chosen candidate's, or every candidate's (for inspection)."""

    @model_validator(mode="after")
    def _distinct(self) -> QuantizeSection:
        if isinstance(self.candidates, list):
            names = [c.name for c in self.candidates]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"quantize.candidates lists {', '.join(twice)} more than once")
            if not self.candidates:
                raise ValueError("quantize.candidates is empty: list at least one, or use auto")
        return self
