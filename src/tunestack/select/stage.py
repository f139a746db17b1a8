"""Stage `select`: apply `choose` to the evaluate stage's rows, and record the decision.

The metrics weighed are the task metrics as evaluate measured them (each in its own direction), format compliance,
general retention, and the LLM judge's score when, and only when, its calibration clears the configured threshold.
Every decision made against the eval set is appended to `select/decisions.jsonl`: each one is another chance to fit
the eval set by choosing, so the count travels with the run (the report shows it).
"""

from __future__ import annotations

import json
import time

from tunestack.config import Config
from tunestack.evaluate.registry import BUILTINS
from tunestack.report import metric_title
from tunestack.rundir import RunDir, file_hash
from tunestack.select.choose import Objective, choose

DECISIONS = "decisions.jsonl"


def objectives(task_metrics: list[dict], judge: bool) -> list[Objective]:
    """Each task metric in its direction (the first is the headline), then format compliance, general retention,
    and the judge's score when it counts."""
    found = [Objective(m["key"], m["higher_is_better"], metric_title(m["key"]), share=m["metric"] in BUILTINS)
             for m in task_metrics]
    found += [Objective("format_compliance", title="format compliance"),
              Objective("general_retention", title="general retention")]
    return found + ([Objective("judge_score", title="judge score")] if judge else [])


def resolve_weights(cfg: Config, keys: list[str], judge: bool) -> dict[str, float]:
    """`select.weights` by objective key: `task_accuracy` is the first task metric; a default weight on a metric
    that is not measured is dropped (explicit ones were checked when the config was read); the judge's is added
    when it counts."""
    weights: dict[str, float] = {}
    for key, weight in cfg.select.weights.items():
        key = keys[0] if key == "task_accuracy" else key
        if key in keys:
            weights[key] = weights.get(key, 0.0) + weight
    if judge and cfg.select.judge_weight > 0:
        weights["judge_score"] = cfg.select.judge_weight
    return weights


def judge_status(cfg: Config, run: RunDir, rows: list[dict]) -> tuple[bool, str]:
    """Whether the judge's score counts in this selection, and why (or why not)."""
    if not cfg.judge.enabled:
        return False, "the judge is off: judge.enabled is false"
    if not all(isinstance(r.get("judge_score"), (int, float)) for r in rows):
        return False, "the evaluation has no judge score for every model"
    from tunestack.judge.stage import judge_counts

    return judge_counts(cfg, run)


def flatten(row: dict) -> dict:
    """An evaluate row with each task metric also at the top level, where the selector reads it."""
    return {**row, **row.get("metrics", {})}


def record_decision(run: RunDir, decision: dict) -> int:
    """Append this decision to `select/decisions.jsonl`; returns how many were made against this eval set."""
    path = run.stage("select") / DECISIONS
    eval_hash = file_hash(run.root / "prepare" / "eval.jsonl")
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "eval_sha256": eval_hash, "chosen": decision["chosen"],
             "models": [t["name"] for t in decision["table"]], "weights": decision["weights"],
             "min_retention": decision["min_retention"]}
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if line.strip() and json.loads(line).get("eval_sha256") == eval_hash)


def run_select(cfg: Config, run: RunDir) -> dict:
    evaluated = run.require("evaluate")
    rows = [flatten(r) for r in evaluated["models"]]
    task_metrics = evaluated.get("task_metrics") or [{"key": "task_accuracy", "metric": "exact_match",
                                                      "higher_is_better": True}]  # manifests before the registry
    counted, why = judge_status(cfg, run, rows)
    chosen_from = objectives(task_metrics, counted)
    keys = [o.key for o in chosen_from]
    decision = choose(rows, resolve_weights(cfg, keys, counted), cfg.select.min_retention, chosen_from)
    decision["judge"] = {"counted": counted, "reason": why}
    return {**decision, "eval_set_decisions": record_decision(run, decision)}
