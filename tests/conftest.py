"""Shared fixtures: a tiny local model (2 layers, hidden 64, BPE tokenizer trained on the demo data) and a config
that runs every stage on it in seconds. Nothing is downloaded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tunestack.demo.radiology import generate, write_demo_data

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if os.environ.get("TUNESTACK_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set TUNESTACK_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from tunestack.evaluate.retention import load_probes, load_replay_prompts
    from tunestack.models import build_tiny_model

    corpus = [json.dumps(row) for row in generate(300, seed=5)]
    corpus += [p["prompt"] for p in load_probes("builtin")] + [p["prompt"] for p in load_replay_prompts()]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus)


@pytest.fixture()
def tiny_config(tmp_path, tiny_model) -> Path:
    data, schema = write_demo_data(tmp_path / "data", n=120, seed=1)
    cfg = {
        "run": {"name": "tiny", "runs_dir": str(tmp_path / "runs"), "seed": 0, "threads": 2},
        "model": {"name": str(tiny_model)},
        "data": {"path": str(data), "eval_size": 16, "holdout_size": 8, "max_length": 256},
        "train": {"epochs": 2, "learning_rate": 3e-3, "micro_batch_size": 8, "num_checkpoints": 2,
                  "lora": {"r": 8, "alpha": 16}, "general_mix": {"share": 0.12, "max_new_tokens": 16}},
        "evaluate": {"batch_size": 16, "max_new_tokens": 24,
                     "format": {"type": "json_schema", "schema_path": str(schema)},
                     "retention": {"quartz_examples": 12, "max_probes": 6}},
        "select": {"min_retention": 0.0},
    }
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
