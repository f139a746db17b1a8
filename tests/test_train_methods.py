"""Each SFT method lowers the loss and changes the trained weights (QLoRA on the CPU too), and the memory
pre-flight refuses a run that cannot fit, with advice, before loading any weight."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tunestack.train.memory import GIB, Plan, Shape, advice, estimate

LLAMA_8B = Shape(vocab=128256, hidden=4096, layers=32, intermediate=14336, heads=32, kv_heads=8, tied=False)


def train_with(tiny_config: Path, method: str, name: str) -> tuple[dict, Path]:
    from tunestack.config import load_config
    from tunestack.pipeline import run_stages

    cfg = load_config(tiny_config, [f"train.method={method}", f"run.name={name}", "train.max_steps=8",
                                    "train.num_checkpoints=1", "train.learning_rate=5e-3"])
    run = run_stages(cfg, until="train")
    return run.require("train"), run.root


@pytest.mark.parametrize("method", ["lora", "qlora", "full"])
def test_each_method_lowers_the_loss_and_changes_the_weights(tiny_config: Path, tiny_model: Path, method: str):
    import torch
    from safetensors.torch import load_file

    manifest, root = train_with(tiny_config, method, method)
    assert manifest["method"] == method
    assert manifest["final_loss"] < manifest["first_loss"], manifest
    ckpt = Path(manifest["checkpoints"][-1]["path"])
    assert (ckpt / "chat_template.jinja").exists() and (ckpt / "generation_config.json").exists()
    if method == "full":
        trained, base = load_file(str(ckpt / "model.safetensors")), load_file(str(tiny_model / "model.safetensors"))
        changed = [name for name in base if name in trained and not torch.equal(trained[name], base[name])]
        assert len(changed) > len(base) // 2
    else:
        lora_b = [t for name, t in load_file(str(ckpt / "adapter_model.safetensors")).items() if "lora_B" in name]
        assert lora_b and all(torch.count_nonzero(t) > 0 for t in lora_b)  # B starts at zero
    metrics = [json.loads(line) for line in (root / "train" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "learning_rate", "grad_norm", "peak_memory_gb"} <= set(metrics[-1])
    assert manifest["peak_memory_gb"] > 0  # host RSS; the accelerator's peak is recorded beside it where there is one
    assert "peak_accelerator_gb" in manifest and (manifest["peak_accelerator_gb"] is None) != torch.cuda.is_available()


def test_estimate_orders_the_methods_and_the_advice_fits():
    plan = Plan("full", micro_batch=8, seq_len=2048, bf16=True, gradient_checkpointing=False)
    totals = {m: estimate(LLAMA_8B, Plan(**{**plan.__dict__, "method": m}))["total"] for m in ("full", "lora", "qlora")}
    assert totals["full"] > totals["lora"] > totals["qlora"]
    assert 100 * GIB < totals["full"] < 400 * GIB  # 16 bytes per parameter plus activations
    lines = advice(LLAMA_8B, plan, available=24 * GIB)
    assert any("qlora" in line for line in lines) and any("(fits)" in line for line in lines)


def test_the_plan_is_per_process_with_sharding(tiny_config: Path, monkeypatch):
    """Issue 28 (c): the estimate is one process's, for its world size and sharding. By construction of the
    strategies: ZeRO-1 splits the optimizer state, ZeRO-2 the gradients too, ZeRO-3 and FSDP the weights too (one
    block gathered whole at a time); DDP holds everything and its gradient buckets; offloading leaves the optimizer
    state on the CPU. A run that fits only sharded is told so, and memory_plan reads torchrun's WORLD_SIZE."""
    from tunestack.config import load_config
    from tunestack.train.preflight import memory_plan

    full = Plan("full", micro_batch=1, seq_len=2048, bf16=True, gradient_checkpointing=True, weight_bytes=2)
    one = estimate(LLAMA_8B, full)
    per = {s: estimate(LLAMA_8B, Plan(**{**full.__dict__, "world": 8, "sharding": s}))
           for s in ("none", "zero1", "zero2", "zero3", "fsdp")}
    assert per["zero1"]["optimizer"] == one["optimizer"] / 8 and per["zero1"]["weights"] == one["weights"]
    assert per["zero2"]["gradients"] == one["gradients"] / 8 and per["zero2"]["weights"] == one["weights"]
    block = one["weights"] / LLAMA_8B.layers
    for s in ("zero3", "fsdp"):
        assert per[s]["weights"] == pytest.approx(one["weights"] / 8 + block)
    assert per["none"]["gradients"] == 2 * one["gradients"] and per["none"]["total"] > one["total"]
    totals = [per[s]["total"] for s in ("none", "zero1", "zero2", "zero3")]
    assert totals == sorted(totals, reverse=True) and per["fsdp"]["total"] == per["zero3"]["total"]
    offloaded = estimate(LLAMA_8B, Plan(**{**full.__dict__, "world": 8, "sharding": "fsdp", "offload": True}))
    assert offloaded["optimizer"] == 0 and offloaded["weights"] == pytest.approx(block)
    available = (per["fsdp"]["total"] + per["none"]["total"]) / 2  # fits sharded, not replicated
    lines = advice(LLAMA_8B, Plan(**{**full.__dict__, "world": 8}), available)
    assert any("strategy=fsdp" in line and "(fits)" in line for line in lines), lines

    monkeypatch.setenv("WORLD_SIZE", "4")
    cfg = load_config(tiny_config, ["train.distributed.strategy=deepspeed", "train.distributed.zero_stage=3"])
    _, plan = memory_plan(cfg, Path(cfg.model.name), False, 256)
    assert (plan.world, plan.sharding, plan.offload) == (4, "zero3", False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    _, plan = memory_plan(cfg, Path(cfg.model.name), False, 256)
    assert (plan.world, plan.sharding) == (1, "none")


def test_preflight_refuses_a_run_that_cannot_fit_before_loading_weights(tmp_path: Path, tiny_config: Path,
                                                                         tiny_model: Path):
    huge = tmp_path / "llama-70b-shape"  # a config and a tokenizer, no weights at all
    shutil.copytree(tiny_model, huge)
    for weights in huge.glob("*.safetensors"):
        weights.unlink()
    config = json.loads((huge / "config.json").read_text())
    config.update(vocab_size=128256, hidden_size=8192, num_hidden_layers=80, intermediate_size=28672,
                  num_attention_heads=64, num_key_value_heads=8)
    (huge / "config.json").write_text(json.dumps(config))
    done = subprocess.run([sys.executable, "-m", "tunestack", "train", str(tiny_config), f"model.name={huge}",
                           "train.method=full"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "GiB" in done.stderr and "qlora" in done.stderr and "gradient_checkpointing" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_memory_preflight_runs_once_before_the_weights_load(tiny_config: Path, monkeypatch):
    """Issue 28 (b): after loading, free memory no longer holds the weights the estimate counts, so a check there
    counts them twice and refuses a run that fits. The pre-flight runs once, before the train stage loads the base,
    and its summary is the one the manifest records."""
    from tunestack.config import load_config
    from tunestack.models import load
    from tunestack.pipeline import run_stages
    from tunestack.train import preflight

    events, summaries = [], []
    check, load_for_stage = preflight.memory_preflight, load.load_for_stage

    def checking(*args):
        events.append("pre-flight")
        summaries.append(check(*args))
        return summaries[-1]

    def loading(cfg, stage):
        events.append(f"load for {stage}")
        return load_for_stage(cfg, stage)

    monkeypatch.setattr(preflight, "memory_preflight", checking)
    monkeypatch.setattr(load, "load_for_stage", loading)
    run = run_stages(load_config(tiny_config, ["train.max_steps=2", "train.evaluate_checkpoints=false"]),
                     until="train")
    assert events == ["pre-flight", "load for train"]
    assert run.manifest("train")["memory"] == summaries[0] and summaries[0]["estimated_gb"] > 0


def test_gradient_accumulation_normalises_the_loss_by_tokens_not_micro_batches(tiny_config: Path, monkeypatch):
    """One step over the same 4 rows (of different lengths) as 1 micro-batch of 4 or 2 of 2: the gradients match.
    Averaging per micro-batch would weight the tokens of the shorter micro-batch more."""
    import torch

    from tunestack.config import load_config
    from tunestack.pipeline import run_stages
    from tunestack.train import checkpoints

    grads: dict[str, dict] = {}

    def capture(self, args, state, control, model=None, **kwargs):
        grads[args.output_dir] = {n: p.grad.detach().clone() for n, p in model.named_parameters()
                                  if p.grad is not None}

    monkeypatch.setattr(checkpoints.CheckpointPublisher, "on_pre_optimizer_step", capture, raising=False)
    names = {}
    for micro, accum in ((4, 1), (2, 2)):
        name = f"accum{accum}"
        cfg = load_config(tiny_config, [f"run.name={name}", "train.max_steps=1", f"train.micro_batch_size={micro}",
                                        f"train.grad_accum={accum}", "train.general_mix.share=0",
                                        "train.precision=fp32"])
        names[name] = str(run_stages(cfg, until="train").root / "train" / "trainer")
    one, two = grads[names["accum1"]], grads[names["accum2"]]
    assert one.keys() == two.keys() and one
    for name in one:
        torch.testing.assert_close(one[name], two[name], rtol=1e-4, atol=1e-7, msg=name)


def test_a_qlora_checkpoint_is_evaluated_on_its_nf4_base_and_export_measures_what_the_merge_changes(tiny_config):
    from tunestack.chat import render_prompt
    from tunestack.config import load_config
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.evaluate.core import adapter_on_nf4
    from tunestack.models import load_base
    from tunestack.pipeline import run_stages

    cfg = load_config(tiny_config, ["train.method=qlora", "run.name=qlora-export", "train.max_steps=8",
                                    "train.num_checkpoints=1", "train.learning_rate=5e-3", "evaluate.max_examples=8"])
    run = run_stages(cfg, until="export")
    assert run.require("evaluate")["qlora_checkpoints_on"] == "nf4 base, adapter unmerged"
    ckpt = run.require("train")["checkpoints"][-1]
    stored = [json.loads(line)["token_ids"] for line in
              (run.root / "evaluate" / f"{ckpt['name']}.outputs.jsonl").read_text().splitlines()]
    base, tokenizer = load_base(cfg.model)
    rows = [json.loads(line) for line in (run.root / "prepare" / "eval.jsonl").read_text().splitlines()][:8]
    prompts = [render_prompt(tokenizer, r["messages"][:-1]) for r in rows]
    on_nf4 = LocalGenerator(adapter_on_nf4(cfg, ckpt["path"]), tokenizer, 8).generate(prompts, 48)
    assert stored == [g.token_ids for g in on_nf4]  # what was scored is the adapter on its 4-bit base
    check = run.require("export")["verification"]
    assert check["reference"] == "QLoRA adapter on its NF4 base" and check["compared"] == 8
    assert 0 <= check["agreement"] <= 1 and check["identical"] == round(check["agreement"] * 8)


def test_qlora_from_another_runs_checkpoint_writes_nothing_beside_it(tiny_model: Path, tmp_path: Path):
    """Issue 28 (g): the merged copy QLoRA quantizes from an `init_from` checkpoint is written in the caller's own
    run folder, in a folder of its own (`tempfile.mkdtemp`: two runs or two ranks loading at once never share one),
    and removed once loaded: the other run's folder is untouched."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    other = tmp_path / "other-run" / "train" / "checkpoints" / "step-000004"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=4, target_modules="all-linear"))
    model.save_pretrained(other)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "other-run").rglob("*")}

    from tunestack.models.nf4 import load_nf4

    scratch = [tmp_path / "run-a" / "train", tmp_path / "run-b" / "train"]
    loaded = [load_nf4(tiny_model, str(other), False, scratch=s) for s in scratch + scratch[:1]]
    assert all(m.is_loaded_in_4bit for m in loaded)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "other-run").rglob("*")} == before
    assert [list(s.iterdir()) for s in scratch] == [[], []]  # each merged copy removed once loaded
