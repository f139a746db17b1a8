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
from tunestack.rundir import RunDir, content_hash, file_hash, read_json, write_json


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


def weights_hash(path: str | None) -> str | None:
    """sha256 over a checkpoint's weight files and adapter config (not its optimizer state, which is dropped from
    older checkpoints later)."""
    if path is None:
        return None
    folder = Path(path)
    files = sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" or p.name in ("adapter_config.json",
                                                                                          "config.json"))
    return content_hash({p.name: file_hash(p) for p in files})


def model_key(cfg: Config, run: RunDir, entry: dict) -> str:
    """What one model's evaluation depends on: the model and its weights, the evaluate section, the eval split."""
    return content_hash({"model": cfg.model.name, "evaluate": cfg.evaluate.model_dump(mode="json"),
                         "eval": file_hash(run.root / "prepare" / "eval.jsonl"), "name": entry["name"],
                         "weights": weights_hash(entry["path"])})


def evaluate_entry(cfg: Config, run: RunDir, suites: Suites, base, tokenizer, entry: dict) -> tuple[dict, bool]:
    """Raw metrics of one model, evaluated on a merged copy of the fp32 `base`, and whether they were reused:
    results whose key is unchanged are (checkpoints evaluated while training are not evaluated again)."""
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import merged_copy, use_bf16

    out = run.stage("evaluate")
    key = model_key(cfg, run, entry)
    cached = out / f"{entry['name']}.json"
    if cached.exists() and read_json(cached).get("key") == key:
        return {k: v for k, v in read_json(cached).items() if k != "key"}, True
    dtype = torch.bfloat16 if use_bf16(cfg.evaluate.precision) else torch.float32
    subject = merged_copy(base, entry["path"]).to(dtype)
    metrics, records = evaluate_generator(LocalGenerator(subject, tokenizer, cfg.evaluate.batch_size), suites,
                                          entry["name"])
    del subject
    write_jsonl(out / f"{entry['name']}.outputs.jsonl", records)
    write_json(cached, {**metrics, "key": key})
    return metrics, False


def relative_rows(rows: list[dict], probe_weight: float) -> list[dict]:
    """Each row with retention relative to the first (the base model)."""
    from tunestack.evaluate.retention import combine

    out = []
    for row in rows:
        row = {**row, **combine(row, rows[0], probe_weight)}
        row["probes"] = {k: v for k, v in row["probes"].items() if k != "answers"}
        out.append(row)
    return out


def run_evaluate(cfg: Config, run: RunDir, model, tokenizer) -> dict:
    """Evaluate the base model and each checkpoint. A checkpoint is merged into a copy of the fp32 base first:
    generation through unmerged LoRA layers is ~2.5x slower on a CPU, and the merged model is what export ships."""
    from tunestack.models import use_bf16

    suites = Suites(cfg, run)
    rows, reused = [], 0
    for entry in model_entries(run):
        metrics, was_reused = evaluate_entry(cfg, run, suites, model, tokenizer, entry)
        rows.append({**entry, **metrics})
        reused += was_reused
    dtype = "bfloat16" if use_bf16(cfg.evaluate.precision) else "float32"
    return {"models": relative_rows(rows, cfg.evaluate.retention.probe_weight), "eval_examples": len(suites.rows),
            "precision": dtype, "reused": reused}

