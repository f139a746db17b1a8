"""tunestack: evaluation-first LLM fine-tuning.

Stages, each a subpackage, a CLI command and a config section of the same name:
prepare -> train -> evaluate -> select -> export.
"""

__version__ = "0.1.0"
