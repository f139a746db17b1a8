"""Issue 28 (f, build 4): the export of a full fine-tune holds at most two full models at once, and a LoRA merge can
run from the files shard by shard, with no model loaded.

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
import torch
cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
print(json.dumps({**peak, "cuda_peak": cuda, "verification": result["verification"]}))
"""


def test_a_full_fine_tune_exports_with_at_most_two_models_in_memory(tmp_path: Path):
    measured, size = export_full_fine_tune(tmp_path)
    assert measured["verification"]["identical"] == measured["verification"]["compared"] == 4
    print(f"export of a full fine-tune: at most {measured['models']} models, {measured['bytes'] / size:.2f} x the "
          "model's fp32 size in weights at once")
    assert measured["models"] <= 2 and measured["bytes"] <= 2 * size, measured
    exported = tmp_path / "runs" / "full" / "export" / "model"
    checkpoint = tmp_path / "runs" / "full" / "train" / "checkpoints" / "step-000004"
    assert sorted(p.name for p in exported.glob("*.safetensors")) == ["model.safetensors"]
    assert (exported / "model.safetensors").read_bytes() == (checkpoint / "model.safetensors").read_bytes()


def export_full_fine_tune(tmp_path: Path) -> tuple[dict, int]:
    """A run whose chosen checkpoint is a random full fine-tune of the mid-size shape, exported in a process of its
    own that follows every model loaded: (what it measured, the model's size in fp32 bytes). tests/test_gpu.py
    runs it on a GPU."""
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
    return json.loads(done.stdout.strip().splitlines()[-1]), size


def random_adapter(model_dir: Path, folder: Path, seed: int, **lora) -> Path:
    """A LoRA adapter with random A and B (peft starts B at zero, which would merge to nothing), saved by peft."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                           LoraConfig(**{"r": 8, "lora_alpha": 16, "target_modules": "all-linear", **lora}))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.02)
    model.save_pretrained(folder)
    return folder


def test_a_lora_merge_streamed_from_the_files_gives_peft_merges_bytes_without_loading_a_model(tmp_path: Path,
                                                                                              monkeypatch):
    """Issue 28 (build 4): the streamed merge reads the base shard by shard and loads no model, and its weights are
    byte for byte those of peft's own `merge_and_unload` on the loaded model in fp32 (the truth: peft, not our code),
    for a chain of two adapters (`train.init_from`), one with an `alpha_pattern` and rsLoRA scaling."""
    import safetensors.torch
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, PreTrainedModel

    from tunestack.demo.radiology import generate
    from tunestack.models import CHECKPOINT_META, build_tiny_model
    from tunestack.models.merge import chain
    from tunestack.models.streamed import streamed_merge
    from tunestack.rundir import write_json

    texts = [m["content"] for row in generate(40, seed=3) for m in row["messages"]]
    built = build_tiny_model(tmp_path / "built", texts, shape=SHAPE)
    base = tmp_path / "base"  # the base in several shards, as large models come
    AutoModelForCausalLM.from_pretrained(built).save_pretrained(base, max_shard_size="40MB")
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (built / name).exists():
            (base / name).write_bytes((built / name).read_bytes())
    shards = sorted(base.glob("*.safetensors"))
    assert len(shards) >= 3
    first = random_adapter(base, tmp_path / "sft", seed=1)
    second = random_adapter(base, tmp_path / "dpo", seed=2, r=4, use_rslora=True, alpha_pattern={"q_proj": 32})
    write_json(second / CHECKPOINT_META, {"init_from": str(first)})
    assert chain(second) == [str(first), str(second)]

    expected = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    for step in (first, second):
        expected = PeftModel.from_pretrained(expected, step).merge_and_unload(safe_merge=True)
    expected = {k: v for k, v in expected.state_dict().items()}

    def no_model(*args, **kwargs):
        raise AssertionError("the streamed merge loaded a model")

    written, save_file = [], safetensors.torch.save_file

    def recording(tensors, filename, metadata=None):
        written.append(sum(t.numel() * t.element_size() for t in tensors.values()))
        save_file(tensors, filename, metadata=metadata)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(no_model))
    monkeypatch.setattr(safetensors.torch, "save_file", recording)
    out = tmp_path / "merged"
    done = streamed_merge(base, chain(second), out, "float32")
    monkeypatch.undo()

    assert done["shards"] == len(shards) and len(written) == len(shards)
    largest = max(sum(t.numel() * 4 for t in safetensors.torch.load_file(s).values()) for s in shards)
    assert max(written) <= largest  # one shard at a time
    merged = {}
    for shard in sorted(out.glob("*.safetensors")):
        merged.update(safetensors.torch.load_file(shard))
    assert set(merged) == set(expected)  # SHAPE ties no weights: every weight is in the files
    changed = [k for k in merged if not torch.equal(merged[k], safetensors_base(base)[k])]
    assert done["weights_merged"] == len(changed) > 0
    different = [k for k in merged if not torch.equal(merged[k], expected[k])]
    assert not different, different[:3]
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    assert all(torch.equal(p, expected[k]) for k, p in reloaded.state_dict().items())


def safetensors_base(base: Path) -> dict:
    import safetensors.torch

    weights = {}
    for shard in sorted(base.glob("*.safetensors")):
        weights.update(safetensors.torch.load_file(shard))
    return weights


def test_export_streams_the_merge_when_two_models_do_not_fit_and_says_why(tiny_run, monkeypatch, caplog):
    """The export stage on the session's tiny run: `export.merge: streamed` exports weights equal to the loaded
    merge's and passes the answer check; under `auto` on a machine whose free memory cannot hold two models (the
    free memory made small here) the merge streams, with the reason, and the check that needs both models is
    skipped with its own."""
    import safetensors.torch
    import torch

    from tunestack.config import load_config
    from tunestack.export import stage
    from tunestack.pipeline import execute
    from tunestack.rundir import RunDir, write_json

    run = RunDir(tiny_run.run)
    cfg = load_config(tiny_run.config)
    last = run.manifest("train")["checkpoints"][-1]["name"]
    write_json(run.root / "select" / "manifest.json", {**run.manifest("select"), "chosen": last})  # a LoRA merge
    assert execute(cfg, run, "export")["merge"] == "loaded"  # auto, on this machine
    loaded = safetensors.torch.load_file(run.root / "export" / "model" / "model.safetensors")
    streamed = execute(cfg.model_copy(update={"export": cfg.export.model_copy(update={"merge": "streamed"})}), run,
                       "export")
    assert streamed["merge"] == "streamed" and streamed["verification"]["identical"] == 16
    again = safetensors.torch.load_file(run.root / "export" / "model" / "model.safetensors")
    assert set(again) == set(loaded) and all(torch.equal(again[k], loaded[k]) for k in loaded)

    monkeypatch.setattr(stage, "free_memory", lambda: (1e3, "RAM"))  # the tiny model is 0.4 MB
    with caplog.at_level("WARNING", logger="tunestack"):
        auto = execute(cfg, run, "export")
    assert auto["merge"] == "streamed" and "more than 90% of the 0.0 GiB free in RAM" in auto["verification"]["skipped"]
    assert "merging shard by shard from the files" in caplog.text
