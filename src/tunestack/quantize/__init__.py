"""Stage `quantize`: AWQ, GPTQ and round-to-nearest through llm-compressor, each candidate evaluated and gated."""

from tunestack.quantize.stage import run_quantize

__all__ = ["run_quantize"]
