"""Issue 28 (f): the export of a full fine-tune holds at most two full models at once.

It used to hold the fp32 base (loaded by the pipeline for every export), the checkpoint loaded to be saved, then for
the check a second copy of the checkpoint and the exported model: three fp32 models at once, which for an 8B model
does not fit an 80 GB GPU. Now the base is not loaded, the checkpoint's weight files are copied shard by shard, and
the check holds the checkpoint as trained and the export.

The model is mid-size and random (8 layers, hidden 512, vocabulary 16,384: 34M parameters, 131 MiB in fp32). The
export runs in a process of its own that follows every model transformers loads and, after each load, sums the
weights of those still alive. (Host RSS does not tell the two apart on a CPU: weights loaded from safetensors in
their own dtype stay mapped from the file.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

SHAPE = {"hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 8, "num_attention_heads": 8,
         "num_key_value_heads": 8, "vocab_size": 16384, "tie_word_embeddings": False}

EXPORT = """
import gc, json, sys, weakref
from pathlib import Path
from transformers import PreTrainedModel
from tunestack.config import load_config
from tunestack.pipeline import execute
from tunestack.rundir import RunDir

# Every model transformers loads is followed: after each load, the weights of all models still alive are summed.
live, peak = weakref.WeakSet(), {"bytes": 0, "models": 0}
loader = PreTrainedModel.from_pretrained.__func__

def following(cls, *args, **kwargs):
    model = loader(cls, *args, **kwargs)
    live.add(model)
    gc.collect()
    held = sum(p.numel() * p.element_size() for m in live for p in m.parameters() if p.device.type != "meta")
    peak["bytes"], peak["models"] = max(peak["bytes"], held), max(peak["models"], len(live))
    return model

PreTrainedModel.from_pretrained = classmethod(following)
cfg = load_config(sys.argv[1])
result = execute(cfg, RunDir(Path(cfg.run.runs_dir) / cfg.run.name), "export")
print(json.dumps({**peak, "verification": result["verification"]}))
"""


def test_a_full_fine_tune_exports_with_at_most_two_models_in_memory(tmp_path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunestack.demo.radiology import generate, write_demo_data
    from tunestack.models import CHECKPOINT_META, build_tiny_model
    from tunestack.rundir import RunDir, write_json

    rows = generate(40, seed=3)
    texts = [m["content"] for row in rows for m in row["messages"]]
    model_dir = build_tiny_model(tmp_path / "base", texts, shape=SHAPE)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    size = sum(p.numel() for p in model.parameters()) * 4  # bytes in fp32, by construction of the shape
    torch.manual_seed(1)
    with torch.no_grad():  # a "fine-tune": other weights, same shapes
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    checkpoint = tmp_path / "runs" / "full" / "train" / "checkpoints" / "step-000004"
    model.save_pretrained(checkpoint)
    model.generation_config.save_pretrained(checkpoint)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(checkpoint)
    write_json(checkpoint / CHECKPOINT_META, {"step": 4, "path": str(checkpoint)})
    del model

    data, schema = write_demo_data(tmp_path / "data", n=40, seed=3)
    cfg = {"run": {"name": "full", "runs_dir": str(tmp_path / "runs"), "threads": 1},
           "model": {"name": str(model_dir)}, "data": {"path": str(data)}, "train": {"method": "full"},
           "evaluate": {"max_new_tokens": 8, "max_examples": 4, "batch_size": 4,
                        "format": {"type": "json_schema", "schema_path": str(schema)}}}
    config = tmp_path / "full.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = RunDir(tmp_path / "runs" / "full")
    (run.stage("prepare") / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    run.finish("train", "t", {"checkpoints": [{"name": "step-000004", "path": str(checkpoint), "step": 4}]},
               time.time())
    run.finish("select", "s", {"chosen": "step-000004"}, time.time())

    done = subprocess.run([sys.executable, "-c", EXPORT, str(config)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["verification"]["identical"] == measured["verification"]["compared"] == 4
    print(f"export of a full fine-tune: at most {measured['models']} models, {measured['bytes'] / size:.2f} x the "
          "model's fp32 size in weights at once")
    assert measured["models"] <= 2 and measured["bytes"] <= 2 * size, measured
    exported = run.root / "export" / "model"
    assert sorted(p.name for p in exported.glob("*.safetensors")) == ["model.safetensors"]
    assert (exported / "model.safetensors").read_bytes() == (checkpoint / "model.safetensors").read_bytes()
