"""Stage `select`: apply `choose` to the evaluate stage's rows, and record the decision.

The metrics weighed are the task metrics as evaluate measured them (each in its own direction), format compliance,
general retention (capped at 1.0 in the score), and the LLM judge's score when, and only when, its calibration
clears the configured threshold. The floors are `select.min_retention`, `select.min_format` (0.95 by default when a
format check is configured) and `select.max_format_drop`; differences from the leader get a paired bootstrap
interval over the per-example scores (`tunestack.stats`), and a tie within noise is broken by higher retention, then the
earlier step. Every decision made against the eval set is recorded in the data ledger (`tunestack.data.ledger`)
under the eval set's hash, for every run that uses it: each one is another chance to fit the eval set by choosing,
so the count is the data's, not the run's, and past `select.max_eval_decisions` the report says to rotate it.
"""

from __future__ import annotations

from tunestack.config import Config
from tunestack.data.ledger import entries, ledger_path, record
from tunestack.evaluate.registry import BUILTINS
from tunestack.rundir import RunDir, file_hash
from tunestack.select.choose import RETENTION, Floors, Objective, choose
from tunestack.stats import Noise
from tunestack.tables import metric_title
from tunestack.verdict import retention_verdicts

KIND = "eval_decision"


def objectives(task_metrics: list[dict], judge: bool) -> list[Objective]:
    """Each task metric in its direction (the first is the headline), then format compliance, general retention,
    and the judge's score when it counts."""
    found = [Objective(m["key"], m["higher_is_better"], metric_title(m["key"]), share=m["metric"] in BUILTINS)
             for m in task_metrics]
    found += [Objective("format_compliance", title="format compliance"),
              RETENTION]
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


def floors(cfg: Config) -> Floors:
    """The hard constraints: `select.min_format` defaults to 0.95 when the format is checked at all."""
    sel = cfg.select
    min_format = sel.min_format
    if min_format is None and cfg.evaluate.format.type != "none":
        min_format = 0.95
    return Floors(sel.min_retention, min_format, sel.max_format_drop, sel.min_suite_retention)


def noise(cfg: Config) -> Noise | None:
    """The bootstrap settings (None: selection without intervals)."""
    if cfg.select.noise_draws <= 0:
        return None
    return Noise(weights=cfg.evaluate.retention.weights, draws=cfg.select.noise_draws, seed=cfg.run.seed)


def with_verdicts(cfg: Config, rows: list[dict]) -> list[dict]:
    """Each row after the base model's with its retention verdicts (`tunestack.verdict`): general retention against
    `select.min_retention`, each suite against `select.min_suite_retention`."""
    base, sel = rows[0], cfg.select
    out = [base]
    for row in rows[1:]:
        found = retention_verdicts(row, base, cfg.evaluate.retention.weights, sel.min_retention,
                                   sel.min_suite_retention, sel.retention_margin, look=1, looks=sel.retention_looks)
        out.append({**row, "retention_verdicts": found} if found else row)
    return out


def record_decision(cfg: Config, run: RunDir, decision: dict, finalists: list[str] | None = None) -> dict:
    """Record this decision in the data ledger under the eval set's hash (a sweep's choice among its finalists is
    one decision per finalist: each was a configuration measured on the eval set); returns how many decisions
    every run has made against this eval set, and whether it is time to rotate it."""
    ledger = ledger_path(cfg)
    eval_hash = file_hash(run.root / "prepare" / "eval.jsonl")
    for finalist in finalists or [None]:
        extra = {"sweep_finalist": finalist} if finalist else {}
        record(ledger, KIND, eval_hash, run=str(run.root.resolve()), chosen=decision["chosen"],
               models=[t["name"] for t in decision["table"]], weights=decision["weights"], floors=decision["floors"],
               **extra)
    made = entries(ledger, KIND, eval_hash)
    runs = sorted({e.get("run") for e in made})
    budget = cfg.select.max_eval_decisions
    rotate = None
    if len(made) > budget:
        rotate = (f"{len(made)} selections (in {len(runs)} run(s)) have been made against this eval set, more than "
                  f"select.max_eval_decisions ({budget}): its figures now flatter the models chosen with it. Rotate "
                  "it: write a fresh eval set (data.eval_path, or new data), and keep this one for comparisons")
    return {"count": len(made), "runs": len(runs), "budget": budget, "rotate": rotate, "ledger": str(ledger)}


def look_again(cfg: Config, run: RunDir, rows: list[dict], decide, score=None) -> tuple[dict, list[dict]]:
    """The decision, after as many further looks at retention as it takes (`tunestack.evaluate.looks`): while the
    chosen checkpoint's verdict is inconclusive and looks remain, score it and the base model on a larger draw,
    take its verdict there, and decide again (a failed look can move the choice to another checkpoint, which may
    need its own look). `score(cfg, run, row, look, loaded)` gives (base row, checkpoint row, what was done):
    `tunestack.evaluate.looks.score_look` unless a test plants one."""
    from tunestack.evaluate.looks import score_look

    score = score or score_look
    sel, loaded, taken = cfg.select, {}, []
    by_name = {r["name"]: r for r in rows[1:]}
    decision = decide(rows)
    while (row := by_name.get(decision["chosen"])) is not None:
        overall = (row.get("retention_verdicts") or {}).get("overall") or {}
        look = overall.get("look", 1)
        if overall.get("outcome") != "inconclusive" or look >= sel.retention_looks:
            break
        base, bigger, what = score(cfg, run, row, look + 1, loaded)
        found = retention_verdicts(bigger, base, cfg.evaluate.retention.weights, sel.min_retention,
                                   sel.min_suite_retention, sel.retention_margin, look=look + 1,
                                   looks=sel.retention_looks)
        if found is None:
            break
        row["retention_verdicts"] = found
        taken.append({**what, "model": row["name"], "outcome": found["overall"]["outcome"],
                      "reason": found["overall"]["reason"]})
        decision = decide(rows)
    return decision, taken


def run_select(cfg: Config, run: RunDir, score=None, finalists: list[str] | None = None) -> dict:
    evaluated = run.require("evaluate")
    rows = with_verdicts(cfg, [flatten(r) for r in evaluated["models"]])
    task_metrics = evaluated.get("task_metrics") or [{"key": "task_accuracy", "metric": "exact_match",
                                                      "higher_is_better": True}]  # manifests before the registry
    counted, why = judge_status(cfg, run, rows)
    chosen_from = objectives(task_metrics, counted)
    keys = [o.key for o in chosen_from]
    weights = resolve_weights(cfg, keys, counted)
    decision, looks = look_again(cfg, run, rows, lambda r: choose(r, weights, floors(cfg), chosen_from, noise(cfg)),
                                 score)
    decision["judge"] = {"counted": counted, "reason": why}
    decision["retention_looks"] = looks
    decision["against_start"] = against_start(cfg, evaluated, rows, decision["chosen"], keys[0])
    decisions = record_decision(cfg, run, decision, finalists)
    return {**decision, "eval_set_decisions": decisions["count"], "eval_decisions": decisions}



def against_start(cfg: Config, evaluated: dict, rows: list[dict], chosen: str, headline: str) -> dict | None:
    """The chosen checkpoint against the model training started from (`train.init_from`, evaluated as `start`):
    the headline metric and format compliance, each with the 95% paired bootstrap interval of the difference on
    the same eval rows and the rows it scores better and worse on (those rows alone set the interval's width), and
    general retention. None when training started from the base model."""
    from tunestack.stats import paired_difference

    if evaluated.get("start") is None:
        return None
    start = flatten(evaluated["start"])
    row = next((r for r in rows if r["name"] == chosen), None)
    if row is None or row["kind"] == "base":
        return {"start": start["path"], "chosen": chosen, "metrics": {}}
    draws = max(cfg.select.noise_draws, 2000)
    found = {}
    for key, title, pick in ((headline, metric_title(headline), lambda r: r["per_example"]["metrics"][headline]),
                             ("format_compliance", "format compliance", lambda r: r["per_example"]["format"])):
        mine, theirs = pick(row), pick(start)
        found[key] = {"title": title, "chosen": row[key], "start": start[key],
                      "difference": round(row[key] - start[key], 4),
                      "ci95": paired_difference(mine, theirs, draws, cfg.run.seed),
                      "rows": len(mine), "better": sum(a > b for a, b in zip(mine, theirs)),
                      "worse": sum(a < b for a, b in zip(mine, theirs))}
    found["general_retention"] = {"title": "general retention", "chosen": row["general_retention"],
                                  "start": start["general_retention"],
                                  "difference": round(row["general_retention"] - start["general_retention"], 4),
                                  "ci95": None}
    return {"start": start["path"], "chosen": chosen, "metrics": found}
