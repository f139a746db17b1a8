"""Stage `evaluate`: every model of the run on the same prompts with the same greedy decoding.

Writes `<run>/evaluate/<model>.json` (metrics) and `<model>.outputs.jsonl` (each prompt's answer) for the base model
and each checkpoint, then the manifest with one row per model. Retention is relative to the base model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tunestack.chat import render_prompt
from tunestack.config import Config
from tunestack.data.prepare import read_jsonl, write_jsonl
from tunestack.evaluate.metrics import mean, task_metrics
from tunestack.rundir import RunDir, read_json, write_json


class Suites:
    """What every model is evaluated on: the eval split, its format check, and the retention suites."""

    def __init__(self, cfg: Config, run: RunDir):
        from tunestack.evaluate.retention import load_probes, load_quartz

        rows = read_jsonl(run.root / "prepare" / "eval.jsonl")
        self.rows = rows[: cfg.evaluate.max_examples] if cfg.evaluate.max_examples else rows
        fmt = cfg.evaluate.format
        self.format_kind = fmt.type
        self.schema = json.loads(Path(fmt.schema_path).read_text()) if fmt.type == "json_schema" else None
        ret = cfg.evaluate.retention
        self.probes = load_probes(ret.probes, ret.max_probes)
        self.quartz = load_quartz(ret.quartz_examples, cfg.run.seed)
        self.cfg = cfg

    def prompts(self, tokenizer) -> list[list[int]]:
        return [render_prompt(tokenizer, row["messages"][:-1]) for row in self.rows]


def evaluate_generator(generator, suites: Suites, name: str) -> tuple[dict, list[dict]]:
    """Raw scores of one model (retention not yet relative) and its per-example outputs."""
    from tunestack.evaluate.retention import score_probes, score_quartz

    outputs = generator.generate(suites.prompts(generator.tokenizer), suites.cfg.evaluate.max_new_tokens,
                                 desc=f"eval {name}")
    references = [row["messages"][-1]["content"] for row in suites.rows]
    metrics = task_metrics([o.text for o in outputs], references, suites.format_kind, suites.schema)
    metrics["eos_rate"] = mean(o.ended_with_eos for o in outputs)
    metrics["probes"] = score_probes(generator, suites.probes, suites.cfg.evaluate.retention.probe_max_new_tokens)
    metrics["quartz"] = score_quartz(generator, suites.quartz)
    records = [{"line": row.get("line"), "prediction": o.text, "reference": ref, "token_ids": o.token_ids}
               for row, o, ref in zip(suites.rows, outputs, references)]
    return metrics, records


def model_entries(run: RunDir) -> list[dict]:
    """The base model, then each checkpoint the train stage published, in step order."""
    entries = [{"name": "base", "kind": "base", "step": 0, "path": None, "train_loss": None}]
    for ckpt in run.require("train")["checkpoints"]:
        entries.append({"name": ckpt["name"], "kind": "checkpoint", "step": ckpt["step"], "path": ckpt["path"],
                        "train_loss": ckpt.get("train_loss")})
    return entries


def run_evaluate(cfg: Config, run: RunDir, model, tokenizer) -> dict:
    """Evaluate the base model and each checkpoint. A checkpoint is merged into a copy of the fp32 base first:
    generation through unmerged LoRA layers is ~2.5x slower on a CPU, and the merged model is what export ships."""
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.evaluate.retention import combine
    from tunestack.models import merged_copy, use_bf16

    suites = Suites(cfg, run)
    out = run.stage("evaluate")
    dtype = torch.bfloat16 if use_bf16(cfg.evaluate.precision) else torch.float32
    rows = []
    for entry in model_entries(run):
        subject = merged_copy(model, entry["path"]).to(dtype)
        metrics, records = evaluate_generator(LocalGenerator(subject, tokenizer, cfg.evaluate.batch_size),
                                              suites, entry["name"])
        del subject
        write_jsonl(out / f"{entry['name']}.outputs.jsonl", records)
        write_json(out / f"{entry['name']}.json", metrics)
        rows.append({**entry, **metrics})
    base = rows[0]
    for row in rows:
        row.update(combine(row, base, cfg.evaluate.retention.probe_weight))
        row["probes"] = {k: v for k, v in row["probes"].items() if k != "answers"}
    return {"models": rows, "eval_examples": len(suites.rows), "precision": str(dtype).removeprefix("torch.")}
