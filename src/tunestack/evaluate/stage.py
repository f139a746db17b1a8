"""Stage `evaluate`: every model of the run on the same prompts with the same greedy decoding, through the `local`
backend or, with `evaluate.backend: vllm`, a vLLM engine (`tunestack.evaluate.backends` has the interface).

Writes `<run>/evaluate/<model>.json` (metrics) and `<model>.outputs.jsonl` (each prompt's answer) for the base model
and each checkpoint, then the manifest with one row per model. Retention is relative to the base model. The
reusable parts live in `tunestack.evaluate.core`.
"""

from __future__ import annotations

from tunestack.config import Config
from tunestack.evaluate.core import Suites, evaluate_entry, local_backend, model_entries, relative_rows, \
    start_entry
from tunestack.evaluate.judged import judge_models
from tunestack.evaluate.references import evaluate_references
from tunestack.evaluate.standalone import Models
from tunestack.models.load import stage_dtype
from tunestack.rundir import RunDir


def run_evaluate(cfg: Config, run: RunDir, model, tokenizer) -> dict:
    """Evaluate the base model and each checkpoint. `model` is the base in the evaluation dtype, or None with the
    vLLM backend, where it is loaded only if an entry must run locally. Locally, a LoRA checkpoint is merged into the
    base's weights for its turn and the weights restored after (generation through unmerged LoRA layers is ~2.5x
    slower on a CPU, and the merged model is what export ships); vLLM runs each as an adapter of one engine."""
    suites = Suites(cfg, run)
    entries = model_entries(run)
    routes = None
    if local_backend(cfg) == "vllm":
        from tunestack.evaluate.on_vllm import evaluate_entries

        base = Models(cfg, (model, tokenizer) if model is not None else None)
        raw, reused, routes = evaluate_entries(cfg, run, suites, lambda: base.base()[0], tokenizer, entries)
        rows = [{**entry, **metrics} for entry, metrics in zip(entries, raw)]
    else:
        rows, reused = [], 0
        for entry in entries:
            metrics, was_reused = evaluate_entry(cfg, run, suites, model, tokenizer, entry)
            rows.append({**entry, **metrics})
            reused += was_reused
    judge_usage = judge_models(cfg, run, suites.rows, rows)
    references = evaluate_references(cfg, run, suites, rows[0])
    start = start_row(cfg, run, suites, model, tokenizer, rows[0])
    return {"models": relative_rows(rows, cfg.evaluate.retention.weights), "references": references,
            "start": start,
            "eval_examples": len(suites.rows),
            "precision": stage_dtype(cfg, "evaluate"), "reused": reused, "backend": local_backend(cfg),
            "routes": routes,
            "qlora_checkpoints_on": "nf4 base, adapter unmerged" if cfg.train.method == "qlora" else None,
            "task_metrics": suites.scorer.describe(), "judge_usage": judge_usage}


def start_row(cfg: Config, run: RunDir, suites: Suites, model, tokenizer, base_row: dict) -> dict | None:
    """The model training started from (`train.init_from`), evaluated like a checkpoint (or reused), retention
    relative to the base model: what select compares the chosen checkpoint with. None without `init_from`."""
    entry = start_entry(cfg)
    if entry is None:
        return None
    if cfg.train.method == "qlora":  # the start as it was trained and served: merged into the dense base, not as an
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"method": "lora"})})  # adapter on NF4
    if model is None:  # the vLLM backend: the start runs locally, on the dense base
        model = Models(cfg).base()[0]
    metrics, _ = evaluate_entry(cfg, run, suites, model, tokenizer, entry)
    return relative_rows([base_row, {**entry, **metrics}], cfg.evaluate.retention.weights)[1]
