"""What a sweep found, as `sweep/sweep.json` and `sweep/sweep.md` (the report page draws its section from the
JSON): the trial table, the data ablations, the learning curve, the time pruning saved, the prepares run, and the
eval-set decisions and holdout reads the ledger holds for the sweep.

Every difference is on the dev split, paired: two trials' chosen checkpoints answered the same dev rows and the same
retention items, so one bootstrap draw of those items scores both (`tunestack.stats`). The learning curve's trend is
task accuracy against log2 of the training rows, fitted by least squares on every draw: its slope is what doubling
the data adds, with the 2.5th and 97.5th percentiles of the draws as its interval. That interval holds the noise of
the dev rows only: each point is one training run (its seed's luck is not resampled), and its checkpoint was chosen
on the same dev rows.
"""

from __future__ import annotations

import numpy as np

from pathlib import Path

from tunestack.config import Config
from tunestack.data.holdout import holdout_reads
from tunestack.data.ledger import entries, ledger_path
from tunestack.rundir import RunDir, file_hash, read_json, write_json, write_text
from tunestack.stats import Draws, Noise, ci95, draw_index, drawn_means
from tunestack.sweep import study as studies
from tunestack.sweep.trial import trial_name

DRAWS = 2000


def trial_rows(study) -> list[dict]:
    """One row per trial: its settings, how it ended, its dev figures, time and cost."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a, seconds = t.user_attrs, studies.seconds(t)
        seconds = round(seconds, 1) if seconds is not None else None
        rows.append({"number": t.number, "name": trial_name(t.number), "kind": a.get("kind"), "label": a.get("label"),
                     "state": t.state.name.lower(), "params": {**t.params, **(a.get("fixed") or {})},
                     "score": t.value, "chosen": a.get("chosen"), "feasible": not a.get("violation"),
                     "task_accuracy": a.get("task_accuracy"), "format_compliance": a.get("format_compliance"),
                     "general_retention": a.get("general_retention"), "train_rows": a.get("train_rows"),
                     "seconds": seconds, "dollars": a.get("dollars"), "prepare": a.get("prepare"),
                     "pruned": a.get("pruned"), "reported": a.get("reported"), "failure": a.get("failure"),
                     "problems": a.get("problems") or [],
                     "retry_of": a.get("retry_of"), "ablates": a.get("ablates")})
    return rows


def chosen_rows(root: Path, row: dict) -> tuple[dict, dict] | None:
    """A finished trial's chosen checkpoint's evaluated row on the dev split, and its base model's."""
    manifest = root / "trials" / row["name"] / "evaluate" / "manifest.json"
    if row["state"] != "complete" or not manifest.exists():
        return None
    models = {m["name"]: m for m in read_json(manifest)["models"]}
    return models[row["chosen"]], models["base"]


def paired(a: tuple[dict, dict], b: tuple[dict, dict], weights: dict, seed: int) -> dict:
    """Task accuracy and retention of `a` minus `b`, with paired 95% intervals over the dev rows and the retention
    items."""
    (row_a, base), (row_b, _) = a, b
    draws = Draws([row_a, row_b, base], Noise(weights=weights, draws=DRAWS, seed=seed))
    out = {"task_accuracy": row_a["task_accuracy"] - row_b["task_accuracy"],
           "general_retention": row_a["general_retention"] - row_b["general_retention"]}
    task_a = draws.mean((row_a.get("per_example") or {}).get("metrics", {}).get("task_accuracy") or [], "eval")
    task_b = draws.mean((row_b.get("per_example") or {}).get("metrics", {}).get("task_accuracy") or [], "eval")
    out["task_accuracy_ci95"] = ci95(task_a - task_b) if task_a is not None and task_b is not None else None
    ret_a, ret_b = draws.retention(row_a, base, None), draws.retention(row_b, base, None)
    out["general_retention_ci95"] = ci95(ret_a - ret_b) if ret_a is not None and ret_b is not None else None
    return out


def ablations(root: Path, rows: list[dict], weights: dict, seed: int) -> list[dict]:
    """Each source or tier's effect: the baseline minus the trial without it (what having it in adds)."""
    baseline = next((r for r in rows if r["kind"] == "baseline" and r["state"] == "complete"), None)
    base_pair = chosen_rows(root, baseline) if baseline else None
    out = []
    for row in rows:
        if row["kind"] != "ablation":
            continue
        entry = {"ablates": row["ablates"], "label": row["label"], "trial": row["name"], "state": row["state"],
                 "train_rows": row["train_rows"], "baseline_rows": baseline["train_rows"] if baseline else None}
        pair = chosen_rows(root, row)
        if pair and base_pair:
            entry["effect"] = paired(base_pair, pair, weights, seed)
        out.append(entry)
    return out


def learning_curve(root: Path, rows: list[dict], seed: int) -> dict | None:
    """Task accuracy on the dev split against training rows (the baseline and the learning-curve trials), each with
    its 95% interval, and the trend per doubling of the rows with its interval, from the same draws."""
    points = [r for r in rows if r["kind"] in ("baseline", "learning_curve") and r["state"] == "complete"
              and r["train_rows"]]
    points = [(r, pair[0]) for r in points if (pair := chosen_rows(root, r))]
    points = [(r, m) for r, m in points if (m.get("per_example") or {}).get("metrics", {}).get("task_accuracy")]
    if len(points) < 2:
        return None
    points.sort(key=lambda p: p[0]["train_rows"])
    n = len(points[0][1]["per_example"]["metrics"]["task_accuracy"])
    if len({p[0]["train_rows"] for p in points}) < 2 or any(
            len(m["per_example"]["metrics"]["task_accuracy"]) != n for _, m in points):
        return None  # one size only, or not the same dev rows: no trend to fit
    index = draw_index(n, DRAWS, np.random.default_rng(seed))
    drawn = np.stack([drawn_means(m["per_example"]["metrics"]["task_accuracy"], index) for _, m in points])
    x = np.log2([float(r["train_rows"]) for r, _ in points])
    xc = x - x.mean()
    slopes = (drawn - drawn.mean(axis=0)).T @ xc / (xc @ xc)
    values = np.array([m["task_accuracy"] for _, m in points])
    slope = float((values - values.mean()) @ xc / (xc @ xc))
    low, high = ci95(slopes)
    return {"points": [{"trial": r["name"], "train_rows": r["train_rows"], "share": r["params"].get("data.fraction", 1.0),
                        "task_accuracy": m["task_accuracy"], "ci95": ci95(d)}
                       for (r, m), d in zip(points, drawn)],
            "per_doubling": round(slope, 4), "per_doubling_ci95": [low, high],
            "text": f"doubling the training rows adds about {100 * slope:+.1f} points of dev task accuracy "
                    f"(95% interval {100 * low:+.1f} to {100 * high:+.1f}), from {len(points)} points"}


def pruning(rows: list[dict]) -> dict:
    """Trials stopped early, and the time they would have taken at the mean length of the trials that finished."""
    done = [r["seconds"] for r in rows if r["state"] == "complete" and r["seconds"]]
    pruned = [r for r in rows if r["state"] == "pruned"]
    mean = sum(done) / len(done) if done else None
    saved = sum(max(0.0, mean - (r["seconds"] or 0)) for r in pruned) if mean else 0.0
    return {"pruned": len(pruned), "seconds_saved": round(saved, 1), "mean_trial_seconds": mean}


def ledger_counts(cfg: Config, root: Path) -> dict:
    """The eval-set decisions and holdout reads the data ledger holds for this sweep's run folder."""
    run, ledger = RunDir(root), ledger_path(cfg)
    eval_path = root / "prepare" / "eval.jsonl"
    mine = [e for e in entries(ledger, "eval_decision", file_hash(eval_path))
            if e.get("run") == str(root.resolve())] if eval_path.exists() else []
    reads = holdout_reads(run, ledger) if run.manifest("prepare") else []
    return {"eval_decisions": len(mine), "finalists_decided": sorted({e.get("sweep_finalist") for e in mine} - {None}),
            "holdout_reads": len([r for r in reads if r.get("run") == str(root.resolve())]), "ledger": str(ledger)}


def write_summary(cfg: Config, root: Path, study, counts: dict, final: dict) -> dict:
    """sweep.json and sweep.md, the run's results and report page; returns the summary with its terminal lines."""
    rows = trial_rows(study)
    weights = cfg.evaluate.retention.weights
    body = {"trials": rows, "dev_rows": counts["dev"], "train_pool": counts["train_pool"],
            "ablations": ablations(root, rows, weights, cfg.run.seed),
            "learning_curve": learning_curve(root, rows, cfg.run.seed), "pruning": pruning(rows),
            "prepares": 1 + sum(r["prepare"] == "run" for r in rows), "finals": final,
            "ledger": ledger_counts(cfg, root), "storage": cfg.sweep.storage or "journal file (sweep/study.journal)"}
    from tunestack.sweep.markdown import sweep_markdown

    text = sweep_markdown(body)
    write_json(root / "sweep" / "sweep.json", body)
    write_text(root / "sweep" / "sweep.md", text)
    run = RunDir(root)
    if run.manifest("select"):
        from tunestack.report.html import write_html
        from tunestack.report.results import write_report

        write_report(cfg, run)
        page = write_html(root)
    else:
        page = None
    return {**body, "lines": [*text.splitlines(), "", f"report: {page or '(no finalist: no report page)'}"]}
