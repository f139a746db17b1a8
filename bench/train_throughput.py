"""Training throughput: `tunestack train` against a plain TRL SFTTrainer with default settings, in one invocation.

CPU (default): the built-in SmolLM2-135M-Instruct on the demo data. Both runs train a LoRA adapter of the same rank
on the same training rows (no general mix), with the same micro-batch, learning rate and number of optimizer steps,
and both count real (non-padding) tokens the same way (the Trainer's `num_input_tokens_seen`). The plain run gets
what TRL does by default: prompt/completion rows with completion-only loss, padding, gradient checkpointing on,
its own loss path. It runs first, before tunestack's TRL shim is switched on.

    python bench/train_throughput.py [--steps 12] [--micro-batch 8]

Prints real tokens/s of each and the ratio (target: tunestack at least 2x the plain run on this CPU).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def plain_trl(model_folder: Path, rows: list[dict], steps: int, micro_batch: int, lr: float, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tunestack.models import fix_special_tokens, use_bf16

    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    model = AutoModelForCausalLM.from_pretrained(model_folder, dtype=torch.float32)
    fix_special_tokens(tokenizer, model)
    data = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    args = SFTConfig(output_dir=str(out), per_device_train_batch_size=micro_batch, learning_rate=lr, max_steps=steps,
                     max_length=256, use_cpu=not torch.cuda.is_available(), bf16=use_bf16("auto"), report_to=[],
                     save_strategy="no", logging_steps=1, include_num_input_tokens_seen="non_padding")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                     "o_proj"], task_type="CAUSAL_LM"))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds}


def ours(runs: Path, steps: int, micro_batch: int, lr: float) -> tuple[dict, Path]:
    from tunestack.config import load_config
    from tunestack.demo.radiology import write_demo_data
    from tunestack.pipeline import run_stages

    write_demo_data(ROOT / "data" / "demo", n=640, seed=0)
    cfg = load_config(ROOT / "configs" / "quickstart.yaml", [
        f"run.runs_dir={runs}", "run.name=bench", f"train.max_steps={steps}", "train.num_checkpoints=1",
        "train.general_mix.share=0", "train.evaluate_checkpoints=false", f"train.micro_batch_size={micro_batch}", f"train.learning_rate={lr}"])
    run = run_stages(cfg, until="prepare")
    return cfg, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    from tunestack.data.prepare import read_jsonl
    from tunestack.models import resolve_model
    from tunestack.pipeline import run_stages

    with tempfile.TemporaryDirectory() as tmp:
        cfg, run = ours(Path(tmp), args.steps, args.micro_batch, args.lr)
        rows = read_jsonl(run.root / "prepare" / "train.jsonl")
        folder = resolve_model(cfg.model.name)
        plain = plain_trl(folder, rows, args.steps, args.micro_batch, args.lr, Path(tmp) / "plain")
        print(f"plain TRL SFTTrainer: {plain['tokens']} real tokens in {plain['seconds']:.1f} s = "
              f"{plain['tokens_per_second']:.0f} tokens/s", flush=True)
        run_stages(cfg, until="train")
        manifest = run.require("train")
        packing = manifest["packing"]
        how = (f"packing: {packing['examples']} examples in {packing['sequences']} rows, {packing['fill']:.0%} full"
               if packing["enabled"] else "no packing")
        print(f"tunestack train:      {manifest['tokens_seen']} real tokens in {manifest['train_seconds']:.1f} s = "
              f"{manifest['tokens_per_second']:.0f} tokens/s ({how})")
        print(f"ratio: {manifest['tokens_per_second'] / plain['tokens_per_second']:.2f}x "
              f"({args.steps} optimizer steps each, micro-batch {args.micro_batch}, LoRA r16 on attention)")


if __name__ == "__main__":
    main()
