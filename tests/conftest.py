"""Shared fixtures: a tiny local model (2 layers, hidden 64, BPE tokenizer trained on the demo data) and a config
that runs every stage on it in seconds. Nothing is downloaded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tunestack.demo.radiology import generate, write_demo_data

ROOT = Path(__file__).resolve().parents[1]
# Tests never reach a model hub: a Hugging Face id is looked up in the local cache only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("TUNESTACK_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set TUNESTACK_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from tunestack.data.suites import load_probes, load_replay_prompts
    from tunestack.models import build_tiny_model

    texts = [m["content"] for row in generate(300, seed=5) for m in row["messages"]]
    texts += [p["prompt"] for p in load_probes("builtin")] + [p["prompt"] for p in load_replay_prompts()]
    folder = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts)
    pretrain(folder, texts)
    return folder


def pretrain(folder: Path, texts: list[str], steps: int = 150) -> None:
    """A few seconds of full-parameter language modelling on plain text, so the tiny base has useful embeddings
    the way a real base model does. No chat template and no EOS: stopping must be learned in fine-tuning."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    stream = torch.tensor([t for text in texts for t in tokenizer.encode(text + "\n", add_special_tokens=False)])
    width = 64
    blocks = stream[: len(stream) // width * width].view(-1, width)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = blocks[torch.randint(0, len(blocks), (16,), generator=generator)]
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder)


@pytest.fixture()
def tiny_config(tmp_path, tiny_model) -> Path:
    from tunestack.data.suites import load_replay_prompts

    data, schema = write_demo_data(tmp_path / "data", n=120, seed=1)
    general = tmp_path / "data" / "general.jsonl"  # a random tiny model never ends a self-replay answer with EOS
    general.write_text("".join(json.dumps({"messages": [{"role": "user", "content": p["prompt"]},
                                                        {"role": "assistant", "content": "I think so."}]}) + "\n"
                               for p in load_replay_prompts()[:30]))
    cfg = {
        "run": {"name": "tiny", "runs_dir": str(tmp_path / "runs"), "seed": 0, "threads": 2},
        "model": {"name": str(tiny_model)},
        "data": {"path": str(data), "eval_size": 16, "holdout_size": 8, "max_length": 256},
        "train": {"epochs": 2, "learning_rate": 3e-3, "micro_batch_size": 8, "num_checkpoints": 2,
                  "lora": {"r": 8, "alpha": 16}, "general_mix": {"share": 0.12, "source": "file", "path": str(general)}},
        "evaluate": {"batch_size": 16, "max_new_tokens": 48,
                     "format": {"type": "json_schema", "schema_path": str(schema)},
                     "retention": {"quartz_examples": 12, "max_probes": 6}},
        # the tiny model writes what it writes: these tests are about the stages, the floors are tested in test_select
        "select": {"min_retention": 0.0, "min_format": 0.0, "max_format_drop": None},
    }
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
