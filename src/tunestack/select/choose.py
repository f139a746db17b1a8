"""Checkpoint selection: a weighted score over higher-is-better metrics, hard floors, a Pareto front, and reasons.

>>> rows = [
...     {"name": "base", "kind": "base", "task_accuracy": 0.1, "field_accuracy": 0.4, "format_compliance": 0.5,
...      "general_retention": 1.0},
...     {"name": "a", "kind": "checkpoint", "task_accuracy": 0.9, "field_accuracy": 0.9, "format_compliance": 1.0,
...      "general_retention": 0.80},
...     {"name": "b", "kind": "checkpoint", "task_accuracy": 0.8, "field_accuracy": 0.9, "format_compliance": 1.0,
...      "general_retention": 0.97},
... ]
>>> choose(rows, {"task_accuracy": 1.0}, min_retention=0.95)["chosen"]
'b'
"""

from __future__ import annotations

METRICS = ("task_accuracy", "field_accuracy", "format_compliance", "general_retention")


def weighted_score(row: dict, weights: dict[str, float]) -> float:
    total = sum(weights.values())
    return sum(row[metric] * weight for metric, weight in weights.items()) / total


def floor_violations(row: dict, base: dict, min_retention: float) -> list[str]:
    problems = []
    if row["general_retention"] < min_retention:
        problems.append(f"general retention {row['general_retention']:.1%} is below the floor of {min_retention:.0%}")
    if row["format_compliance"] < base["format_compliance"]:
        problems.append(f"format compliance {row['format_compliance']:.1%} is below the base model's "
                        f"{base['format_compliance']:.1%}")
    return problems


def dominates(a: dict, b: dict) -> bool:
    return all(a[m] >= b[m] for m in METRICS) and any(a[m] > b[m] for m in METRICS)


def pareto_front(rows: list[dict]) -> list[str]:
    return [r["name"] for r in rows if not any(dominates(other, r) for other in rows if other is not r)]


def choose(rows: list[dict], weights: dict[str, float], min_retention: float) -> dict:
    """Pick the eligible checkpoint with the highest weighted score; fall back to the base model if none is."""
    base = next(r for r in rows if r["kind"] == "base")
    table = []
    for row in rows:
        problems = [] if row["kind"] == "base" else floor_violations(row, base, min_retention)
        table.append({"name": row["name"], "score": round(weighted_score(row, weights), 4), "eligible": not problems,
                      "problems": problems})
    eligible = [t for t, r in zip(table, rows) if t["eligible"] and r["kind"] != "base"]
    if eligible:
        best = max(eligible, key=lambda t: t["score"])
        why = (f"{best['name']} has the highest weighted score ({best['score']:.3f}) among the checkpoints that "
               f"keep general retention >= {min_retention:.0%} and format compliance >= the base model's")
    else:
        best = next(t for t in table if t["name"] == base["name"])
        why = "no checkpoint cleared the floors, so the base model is kept: fine-tuning did not pay off here"
    for t in table:
        t["verdict"] = "chosen" if t is best else _why_not(t, best)
    return {"chosen": best["name"], "reason": why, "weights": weights, "min_retention": min_retention,
            "pareto_front": pareto_front(rows), "table": table}


def _why_not(entry: dict, best: dict) -> str:
    if entry["problems"]:
        return "; ".join(entry["problems"])
    if entry["name"] == "base":
        return f"base model: score {entry['score']:.3f} vs {best['score']:.3f}"
    return f"lower weighted score {entry['score']:.3f} vs {best['score']:.3f}"
