"""The configured task scorer, with its JSON Schema read from disk: the one edge between `evaluate.registry` (pure)
and the commands that score answers (evaluate, holdout, assess). No torch, so assessing an endpoint needs none."""

from __future__ import annotations

import json
from pathlib import Path

from tunestack.config import Config
from tunestack.evaluate.registry import TaskScorer, task_scorer


def load_scorer(cfg: Config) -> TaskScorer:
    """The task metrics and the format check of `evaluate`, with the JSON Schema file read."""
    fmt = cfg.evaluate.format
    schema = json.loads(Path(fmt.schema_path).read_text()) if fmt.type == "json_schema" else None
    return task_scorer(cfg.evaluate, schema)
