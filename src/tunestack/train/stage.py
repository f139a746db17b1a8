"""Stage `train`: LoRA SFT with TRL on pre-rendered ids, so the loss mask is ours and checked before step one.

Recipe: mix general rows into the task rows -> render every row (labels on the answer and its EOS only) -> guard
the labels -> train with TRL's SFTTrainer -> publish checkpoints atomically at the configured steps.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from tunestack.chat import IGNORE_INDEX, render_example
from tunestack.config import Config
from tunestack.data.prepare import read_jsonl, write_jsonl
from tunestack.errors import GuardError
from tunestack.models import use_bf16
from tunestack.rundir import RunDir, write_json
from tunestack.train.mapping import lora_kwargs, save_points, sft_kwargs, total_steps
from tunestack.train.replay import replay_count
from tunestack.train.trl_shim import enable_compact_loss


def general_rows(cfg: Config, model, tokenizer, n_task: int) -> list[dict]:
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.evaluate.retention import load_replay_prompts
    from tunestack.train.replay import self_replay

    mix = cfg.train.general_mix
    count = replay_count(n_task, mix.share)
    if count == 0:
        return []
    if mix.source == "file":
        rows = read_jsonl(Path(mix.path))
        return random.Random(cfg.run.seed).sample(rows, min(count, len(rows)))
    generator = LocalGenerator(model, tokenizer, cfg.evaluate.batch_size)
    return self_replay(generator, load_replay_prompts(), count, mix.max_new_tokens)


def render_rows(rows: list[dict], tokenizer) -> list[dict]:
    rendered = []
    for row in rows:
        example = render_example(tokenizer, row["messages"])
        rendered.append({"input_ids": example.input_ids, "labels": example.labels})
    return rendered


def guard_labels(rendered: list[dict], eos: int) -> None:
    """Refuse to train on rows with no targets, or answers that do not end in EOS."""
    empty = [i for i, r in enumerate(rendered) if all(t == IGNORE_INDEX for t in r["labels"])]
    if empty:
        raise GuardError(
            f"{len(empty)} of {len(rendered)} training rows have every label masked (first: row {empty[0]}), "
            "so the model would learn nothing from them. Check that the chat template renders the assistant answer."
        )
    no_eos = [i for i, r in enumerate(rendered) if r["labels"][-1] != eos]
    if no_eos:
        raise GuardError(f"{len(no_eos)} training rows do not end with EOS as a target: the model would never stop")


class CheckpointPublisher(TrainerCallback):
    """A callback that saves the adapter, tokenizer and chat template at chosen steps, atomically."""

    def __init__(self, folder: Path, points: list[int], tokenizer, metrics_path: Path):
        self.folder, self.points, self.tokenizer = folder, set(points), tokenizer
        self.metrics_path = metrics_path
        self.published: list[dict] = []
        self.losses: list[float] = []
        self.started = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))
            with self.metrics_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": state.global_step, "elapsed_s": round(time.time() - self.started, 2),
                                     **logs}) + "\n")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.points:
            self.publish(model, state.global_step)

    def publish(self, model, step: int) -> None:
        name = f"step-{step:06d}"
        final, tmp = self.folder / name, self.folder / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)  # EOS travels with the checkpoint
        self.tokenizer.save_pretrained(tmp)
        recent = self.losses[-10:]
        meta = {"name": name, "step": step, "path": str(final),
                "train_loss": round(sum(recent) / len(recent), 4) if recent else None}
        write_json(tmp / "tunestack-checkpoint.json", meta)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self.published.append(meta)


def run_train(cfg: Config, run: RunDir, model, tokenizer) -> dict:
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from trl import SFTConfig, SFTTrainer

    out = run.stage("train")
    bf16 = use_bf16(cfg.train.precision)
    if bf16:
        # Frozen base weights in bf16 run the matmuls natively; the LoRA weights stay fp32 (peft's default).
        model = model.to(torch.bfloat16)
    task = read_jsonl(run.root / "prepare" / "train.jsonl")
    general = general_rows(cfg, model, tokenizer, len(task))
    write_jsonl(out / "general.jsonl", general)
    rendered = render_rows(task + general, tokenizer)
    guard_labels(rendered, tokenizer.eos_token_id)
    steps = total_steps(cfg.train, len(rendered))
    points = save_points(cfg.train, steps)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    publisher = CheckpointPublisher(out / "checkpoints", points, tokenizer, out / "metrics.jsonl")
    (out / "checkpoints").mkdir(exist_ok=True)
    args = SFTConfig(**sft_kwargs(cfg.train, output_dir=str(out / "trainer"), seed=cfg.run.seed, bf16=bf16,
                                  use_cpu=not torch.cuda.is_available(), max_length=cfg.data.max_length,
                                  steps=steps))
    torch.manual_seed(cfg.run.seed)
    peft_model = get_peft_model(model, LoraConfig(**lora_kwargs(cfg.train)))
    enable_compact_loss()
    trainer = SFTTrainer(model=peft_model, args=args, train_dataset=Dataset.from_list(rendered),
                         processing_class=tokenizer, callbacks=[publisher])
    started = time.time()
    result = trainer.train()
    seconds = time.time() - started
    peft_model.unload()
    tokens = int(trainer.state.num_input_tokens_seen)  # real tokens, padding excluded
    return {
        "rows": {"task": len(task), "general": len(general), "general_share": round(len(general) / len(rendered), 4),
                 "general_requested": replay_count(len(task), cfg.train.general_mix.share),
                 "general_source": cfg.train.general_mix.source},
        "steps": steps,
        "precision": "bf16" if bf16 else "fp32",
        "train_seconds": round(seconds, 1),
        "tokens_seen": tokens,
        "tokens_per_second": round(tokens / seconds, 1),
        "first_loss": publisher.losses[0] if publisher.losses else None,
        "final_loss": publisher.losses[-1] if publisher.losses else None,
        "train_loss": result.training_loss,
        "checkpoints": publisher.published,
    }
