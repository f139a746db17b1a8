"""Command `synth`: candidate training rows from a teacher model, checked by prepare's own code, for review."""

from tunestack.synth.stage import run_synth

__all__ = ["run_synth"]
