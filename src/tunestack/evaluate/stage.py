"""Stage `evaluate`: every model of the run on the same prompts with the same greedy decoding, through the `local`
backend or, with `evaluate.backend: vllm`, a vLLM engine (`tunestack.evaluate.backends` has the interface).

Writes `<run>/evaluate/<model>.json` (metrics) and `<model>.outputs.jsonl` (each prompt's answer) for the base model
and each checkpoint, then the manifest with one row per model. Retention is relative to the base model. The
reusable parts live in `tunestack.evaluate.core`.
"""

from __future__ import annotations

from tunestack.config import Config
from tunestack.evaluate.core import Suites, evaluate_entry, local_backend, model_entries, relative_rows
from tunestack.evaluate.judged import judge_models
from tunestack.evaluate.references import evaluate_references
from tunestack.models.load import dtype_name
from tunestack.rundir import RunDir


def run_evaluate(cfg: Config, run: RunDir, model, tokenizer) -> dict:
    """Evaluate the base model and each checkpoint. `model` is the base in the evaluation dtype; a LoRA checkpoint
    is merged into its weights for its turn and the weights restored after (generation through unmerged LoRA layers
    is ~2.5x slower on a CPU, and the merged model is what export ships)."""
    suites = Suites(cfg, run)
    rows, reused = [], 0
    for entry in model_entries(run):
        metrics, was_reused = evaluate_entry(cfg, run, suites, model, tokenizer, entry)
        rows.append({**entry, **metrics})
        reused += was_reused
    dtype = dtype_name(model)
    judge_usage = judge_models(cfg, run, suites.rows, rows)
    references = evaluate_references(cfg, run, suites, rows[0])
    return {"models": relative_rows(rows, cfg.evaluate.retention.probe_weight), "references": references,
            "eval_examples": len(suites.rows),
            "precision": dtype, "reused": reused, "backend": local_backend(cfg),
            "qlora_checkpoints_on": "nf4 base, adapter unmerged" if cfg.train.method == "qlora" else None,
            "task_metrics": suites.scorer.describe(), "judge_usage": judge_usage}

