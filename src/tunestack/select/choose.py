"""Checkpoint selection: hard constraints, a weighted score, the Pareto front, and why each other model lost.

Each metric is an `Objective` that knows its direction. A checkpoint is eligible when it passes both hard
constraints: general retention at least `min_retention` (of the base model's score; below it the checkpoint is
flagged as *forgetting*) and format compliance at least the base model's (below it: *format regression*). Among the
eligible checkpoints the highest weighted score wins (a lower-is-better metric counts with a minus sign); when none
is eligible the base model is kept. Training loss is never a criterion.

>>> rows = [
...     {"name": "base", "kind": "base", "task_accuracy": 0.1, "field_accuracy": 0.4, "format_compliance": 0.5,
...      "general_retention": 1.0},
...     {"name": "a", "kind": "checkpoint", "task_accuracy": 0.9, "field_accuracy": 0.9, "format_compliance": 1.0,
...      "general_retention": 0.80},
...     {"name": "b", "kind": "checkpoint", "task_accuracy": 0.8, "field_accuracy": 0.9, "format_compliance": 1.0,
...      "general_retention": 0.97},
... ]
>>> decision = choose(rows, {"task_accuracy": 1.0}, min_retention=0.95)
>>> decision["chosen"], decision["table"][1]["flags"]
('b', ['forgetting'])

Pure: no torch, no disk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tunestack.errors import ConfigError


@dataclass(frozen=True)
class Objective:
    key: str
    higher_is_better: bool = True
    title: str | None = None
    """Name in explanations; default: the key with spaces."""
    share: bool = True
    """The value is a share (shown as a percentage); else a plain number."""

    @property
    def label(self) -> str:
        return self.title or self.key.replace("_", " ")

    def show(self, value: float) -> str:
        return f"{value:.1%}" if self.share else f"{value:.4g}"

    def oriented(self, row: dict) -> float:
        """The value with its sign turned so that more is always better."""
        return row[self.key] if self.higher_is_better else -row[self.key]


DEFAULT_OBJECTIVES = (Objective("task_accuracy", title="exact match"), Objective("field_accuracy", title="per-field"),
                      Objective("format_compliance", title="format compliance"),
                      Objective("general_retention", title="general retention"))


def weighted_score(row: dict, weights: dict[str, float], objectives=DEFAULT_OBJECTIVES) -> float:
    """Weighted mean of the oriented metrics (only weighted ones count)."""
    by_key = {o.key: o for o in objectives}
    total = sum(weights.values())
    return sum(by_key[key].oriented(row) * weight for key, weight in weights.items()) / total


def constraint_problems(row: dict, base: dict, min_retention: float) -> list[tuple[str, str]]:
    """Each hard constraint the row breaks: the guard's flag (`forgetting`, `format regression`) and what it says,
    with its figures."""
    problems = []
    if row["general_retention"] < min_retention:
        problems.append(("forgetting", f"forgetting: general retention {row['general_retention']:.1%} of the base "
                                       f"model's is below the floor of {min_retention:.0%}"))
    if row["format_compliance"] < base["format_compliance"]:
        problems.append(("format regression", f"format regression: format compliance {row['format_compliance']:.1%} "
                                              f"is below the base model's {base['format_compliance']:.1%}"))
    return problems


def dominates(a: dict, b: dict, objectives=DEFAULT_OBJECTIVES) -> bool:
    """`a` is at least as good as `b` on every objective and better on one, each in its own direction."""
    return (all(o.oriented(a) >= o.oriented(b) for o in objectives)
            and any(o.oriented(a) > o.oriented(b) for o in objectives))


def pareto_front(rows: list[dict], objectives=DEFAULT_OBJECTIVES) -> list[str]:
    return [r["name"] for r in rows if not any(dominates(other, r, objectives) for other in rows if other is not r)]


def choose(rows: list[dict], weights: dict[str, float], min_retention: float, objectives=DEFAULT_OBJECTIVES) -> dict:
    """Pick the eligible checkpoint with the highest weighted score, or keep the base model; explain every loser."""
    _check_weights(weights, objectives)
    base = next(r for r in rows if r["kind"] == "base")
    table = []
    for row in rows:
        broken = [] if row["kind"] == "base" else constraint_problems(row, base, min_retention)
        dominated_by = [o["name"] for o in rows if o is not row and dominates(o, row, objectives)]
        table.append({"name": row["name"], "kind": row["kind"],
                      "score": round(weighted_score(row, weights, objectives), 4), "eligible": not broken,
                      "problems": [text for _, text in broken], "flags": [flag for flag, _ in broken],
                      "on_pareto_front": not dominated_by, "dominated_by": dominated_by})
    front = [t["name"] for t in table if t["on_pareto_front"]]  # the same set as pareto_front(rows, objectives)
    eligible = [t for t in table if t["eligible"] and t["kind"] != "base"]
    best = max(eligible, key=lambda t: t["score"]) if eligible else next(t for t in table if t["kind"] == "base")
    by_name = {r["name"]: r for r in rows}
    for t in table:
        t["verdict"] = "chosen" if t is best else _why_not(t, best, by_name, weights, objectives)
    return {"chosen": best["name"], "reason": _reason(best, table, rows, objectives, min_retention, base),
            "weights": weights, "min_retention": min_retention, "objectives": [asdict(o) for o in objectives],
            "pareto_front": front, "table": table}


def _check_weights(weights: dict[str, float], objectives) -> None:
    keys = {o.key for o in objectives}
    unknown = [k for k in weights if k not in keys]
    if unknown or sum(weights.values()) <= 0 or any(w < 0 for w in weights.values()):
        raise ConfigError([("select.weights", f"weights must be non-negative, not all zero, and name measured "
                                              f"metrics ({', '.join(sorted(keys))}); got {weights}")])


def _why_not(entry: dict, best: dict, rows: dict, weights: dict, objectives) -> str:
    if entry["problems"]:
        text = "excluded by a hard constraint: " + "; ".join(entry["problems"])
        if entry["score"] > best["score"]:
            text += f"; its weighted score {entry['score']:.3f} beats {best['score']:.3f}, but constraints come first"
        if entry["dominated_by"]:
            text += f"; also dominated by {', '.join(entry['dominated_by'])}"
        return text + ("; on the Pareto front, but not allowed" if entry["on_pareto_front"] else "")
    who = "base model: weighted score" if entry["kind"] == "base" else "lower weighted score"
    text = f"{who} {entry['score']:.3f} vs {best['score']:.3f} for {best['name']}"
    if entry["score"] == best["score"] and entry["kind"] == "base":
        text = (f"base model: weighted score {entry['score']:.3f}, the same as {best['name']}'s; the base model is "
                "kept only when no checkpoint passes the hard constraints")
    elif entry["score"] == best["score"]:  # max() keeps the first: the checkpoint fewest steps from the base
        text = f"weighted score {entry['score']:.3f} ties with {best['name']}'s; a tie goes to the earliest checkpoint"
    gaps = _gaps(rows[entry["name"]], rows[best["name"]], weights, objectives)
    behind = [g for g in gaps if g[0] > 0][:2]
    ahead = [g for g in reversed(gaps) if g[0] < 0][:1]
    if behind:
        text += "; behind on " + ", ".join(f"{o.label} ({o.show(mine)} vs {o.show(theirs)})"
                                           for _, o, mine, theirs in behind)
    if ahead:
        text += "; ahead on " + ", ".join(f"{o.label} ({o.show(mine)} vs {o.show(theirs)})"
                                          for _, o, mine, theirs in ahead) + ", which does not make up for it"
    if entry["dominated_by"]:
        text += f"; dominated by {', '.join(entry['dominated_by'])} (no better on any metric)"
    return text


def _gaps(row: dict, best: dict, weights: dict, objectives) -> list[tuple[float, Objective, float, float]]:
    """(weighted shortfall against `best`, objective, row's value, best's value), largest shortfall first."""
    total = sum(weights.values())
    gaps = [(weights[o.key] * (o.oriented(best) - o.oriented(row)) / total, o, row[o.key], best[o.key])
            for o in objectives if weights.get(o.key)]
    return sorted(gaps, key=lambda g: -g[0])


def _reason(best: dict, table: list[dict], rows: list[dict], objectives, min_retention: float, base: dict) -> str:
    if best["kind"] == "base":
        return ("no checkpoint passed the hard constraints (general retention >= "
                f"{min_retention:.0%} of the base model's, format compliance >= the base model's "
                f"{base['format_compliance']:.1%}), so the base model is kept: fine-tuning did not pay off here")
    text = (f"{best['name']} has the highest weighted score ({best['score']:.3f}) among the checkpoints that keep "
            f"general retention >= {min_retention:.0%} of the base model's and format compliance >= the base "
            f"model's ({base['format_compliance']:.1%})")
    checkpoints = [r for r in rows if r["kind"] != "base"]
    verdicts = {t["name"]: t["verdict"] for t in table}
    headline = objectives[0]
    top = max(checkpoints, key=headline.oriented)
    if top["name"] != best["name"] and headline.oriented(top) > headline.oriented(
            next(r for r in rows if r["name"] == best["name"])):
        text += (f". The best {headline.label} ({headline.show(top[headline.key])}) is {top['name']}'s, which lost: "
                 f"{verdicts[top['name']]}")
    losses = [r for r in checkpoints if r.get("train_loss") is not None]
    lowest = min(losses, key=lambda r: r["train_loss"]) if losses else None
    if lowest is not None and lowest["name"] != best["name"]:
        text += (f". The lowest training loss ({lowest['train_loss']:.3f}) is {lowest['name']}'s, which lost: "
                 f"{verdicts[lowest['name']]}; loss is not a selection criterion")
    return text
