"""Checkpoint selection: hard constraints, a weighted score with a noise interval, the Pareto front, and why each
other model lost.

Each metric is an `Objective` that knows its direction (and, for general retention, a cap: retention above the base
model's counts as 1.0 in the score; the raw value is still shown). A checkpoint is eligible when it passes every hard
constraint: general retention at least `min_retention` of the base model's (below it: *forgetting*); format
compliance at least the base model's (*format regression*), at least `min_format` and no more than `max_format_drop`
below the best candidate's (*format floor*). Among the eligible checkpoints the highest weighted score leads. When
per-example scores are given, each other eligible candidate's difference from the leader gets a paired bootstrap 95%
interval (`tunestack.stats`); those whose interval holds zero are *tied within noise* with it, and the tie goes to
higher general retention, then to the earlier step. When none is eligible the base model is kept. Training loss is
never a criterion.

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
from tunestack.stats import Noise, has_examples, paired_intervals
from tunestack.verdict import collapsed


@dataclass(frozen=True)
class Objective:
    key: str
    higher_is_better: bool = True
    title: str | None = None
    """Name in explanations; default: the key with spaces."""
    share: bool = True
    """The value is a share (shown as a percentage); else a plain number."""
    cap: float | None = None
    """Values above this count as this in the score and the Pareto front (general retention: 1.0, since keeping
    more than the base model's general capability is noise in a few probe answers, not a reason to choose)."""

    @property
    def label(self) -> str:
        return self.title or self.key.replace("_", " ")

    def show(self, value: float) -> str:
        return f"{value:.1%}" if self.share else f"{value:.4g}"

    def oriented(self, row: dict) -> float:
        """The value (capped) with its sign turned so that more is always better."""
        value = row[self.key] if self.cap is None else min(row[self.key], self.cap)
        return value if self.higher_is_better else -value


RETENTION = Objective("general_retention", title="general retention", cap=1.0)
DEFAULT_OBJECTIVES = (Objective("task_accuracy", title="exact match"), Objective("field_accuracy", title="per-field"),
                      Objective("format_compliance", title="format compliance"), RETENTION)


@dataclass(frozen=True)
class Floors:
    """The hard constraints besides the guards against the base model."""
    min_retention: float = 0.95
    min_format: float | None = None
    """Format compliance at least this; None: no absolute floor (no format check configured)."""
    max_format_drop: float | None = None
    """Format compliance at most this far below the best candidate's; None: no relative floor."""
    min_suite_retention: float = 0.8
    """A retention suite whose verdict against this fails (the row's `retention_verdicts`) marks forgetting."""


def weighted_score(row: dict, weights: dict[str, float], objectives=DEFAULT_OBJECTIVES) -> float:
    """Weighted mean of the oriented metrics (only weighted ones count)."""
    by_key = {o.key: o for o in objectives}
    total = sum(weights.values())
    return sum(by_key[key].oriented(row) * weight for key, weight in weights.items()) / total


def constraint_problems(row: dict, base: dict, floors: Floors, best_format: float = 0.0) -> list[tuple[str, str]]:
    """Each hard constraint the row breaks: the guard's flag (`forgetting`, `format regression`, `format floor`) and
    what it says, with its figures. `best_format` is the best candidate's format compliance."""
    problems = []
    overall = (row.get("retention_verdicts") or {}).get("overall") or {}
    later = overall.get("look", 1) > 1 and overall.get("retention") is not None  # a look on more items
    point = overall["retention"] if later else row["general_retention"]
    if overall.get("outcome") == "fail" or (overall.get("outcome") != "pass" and point < floors.min_retention):
        drawn = f" (look {overall['look']}, {overall['n']} items)" if later else ""
        problems.append(("forgetting", f"forgetting: general retention {point:.1%} of the base model's{drawn} is "
                                       f"below the floor of {floors.min_retention:.0%}"))
    for suite, found in collapsed(row.get("retention_verdicts")):
        problems.append(("forgetting", f"forgetting: {suite} retention {found['retention']:.1%} of the base model's "
                                       f"(95% upper bound {found['interval'][1]:.1%}) is below the suite floor of "
                                       f"{floors.min_suite_retention:.0%}: one capability collapsed"))
    fmt = row["format_compliance"]
    if fmt < base["format_compliance"]:
        problems.append(("format regression", f"format regression: format compliance {fmt:.1%} "
                                              f"is below the base model's {base['format_compliance']:.1%}"))
    if floors.min_format is not None and fmt < floors.min_format:
        problems.append(("format floor", f"format floor: format compliance {fmt:.1%} is below select.min_format "
                                         f"({floors.min_format:.0%}); right answers in the wrong format break the "
                                         "caller"))
    elif floors.max_format_drop is not None and fmt < best_format - floors.max_format_drop - 1e-12:
        problems.append(("format floor", f"format floor: format compliance {fmt:.1%} is more than "
                                         f"select.max_format_drop ({floors.max_format_drop:.0%}) below the best "
                                         f"candidate's {best_format:.1%}"))
    return problems


def dominates(a: dict, b: dict, objectives=DEFAULT_OBJECTIVES) -> bool:
    """`a` is at least as good as `b` on every objective and better on one, each in its own direction."""
    return (all(o.oriented(a) >= o.oriented(b) for o in objectives)
            and any(o.oriented(a) > o.oriented(b) for o in objectives))


def pareto_front(rows: list[dict], objectives=DEFAULT_OBJECTIVES) -> list[str]:
    return [r["name"] for r in rows if not any(dominates(other, r, objectives) for other in rows if other is not r)]


def choose(rows: list[dict], weights: dict[str, float], min_retention: float | Floors,
           objectives=DEFAULT_OBJECTIVES, noise: Noise | None = None) -> dict:
    """Pick the eligible checkpoint with the highest weighted score, or keep the base model; when per-example
    scores are there, candidates within noise of the leader tie and the tie-break decides; explain every loser."""
    _check_weights(weights, objectives)
    floors = min_retention if isinstance(min_retention, Floors) else Floors(min_retention)
    base = next(r for r in rows if r["kind"] == "base")
    candidates = [r for r in rows if r["kind"] != "base"]
    best_format = max((r["format_compliance"] for r in candidates), default=0.0)
    table = []
    for row in rows:
        broken = [] if row["kind"] == "base" else constraint_problems(row, base, floors, best_format)
        dominated_by = [o["name"] for o in rows if o is not row and dominates(o, row, objectives)]
        table.append({"name": row["name"], "kind": row["kind"], "step": row.get("step"),
                      "score": round(weighted_score(row, weights, objectives), 4), "eligible": not broken,
                      "problems": [text for _, text in broken], "flags": [flag for flag, _ in broken],
                      "on_pareto_front": not dominated_by, "dominated_by": dominated_by,
                      "retention_verdicts": row.get("retention_verdicts")})
    front = [t["name"] for t in table if t["on_pareto_front"]]  # the same set as pareto_front(rows, objectives)
    eligible = [t for t in table if t["eligible"] and t["kind"] != "base"]
    by_name = {r["name"]: r for r in rows}
    leader = max(eligible, key=lambda t: t["score"]) if eligible else next(t for t in table if t["kind"] == "base")
    best, tie = leader, None
    if len(eligible) > 1 and noise is not None and all(has_examples(by_name[t["name"]]) for t in eligible):
        best, tie = _break_ties(leader, eligible, by_name, base, weights, objectives, noise)
    for t in table:
        t["verdict"] = "chosen" if t is best else _why_not(t, best, by_name, weights, objectives, tie)
    return {"chosen": best["name"], "reason": _reason(best, table, rows, objectives, floors, base, tie),
            "weights": weights, "min_retention": floors.min_retention, "floors": asdict(floors),
            "objectives": [asdict(o) for o in objectives], "pareto_front": front, "table": table, "noise": tie,
            "interval": "paired bootstrap" if tie is not None else None}


def _break_ties(leader: dict, eligible: list[dict], rows: dict, base: dict, weights: dict, objectives,
                noise: Noise) -> tuple[dict, dict]:
    """The candidates whose weighted score is within noise of the leader's (the 95% interval of the paired
    difference holds zero) tie with it; the tie goes to higher general retention (raw), then the earlier step.
    Returns the winner and what was decided: each candidate's interval against the leader, the tied set, the rule."""
    others = [t for t in eligible if t is not leader]
    intervals = paired_intervals(rows[leader["name"]], [rows[t["name"]] for t in others], base, weights,
                                 objectives, noise)
    for t in others:
        t["vs_leader"] = {"difference": round(leader["score"] - t["score"], 4), **intervals[t["name"]]}
    tied = [leader] + [t for t in others if t["vs_leader"]["low"] <= 0]
    order = {t["name"]: i for i, t in enumerate(eligible)}  # step order, for rows without a step
    priced = all(rows[t["name"]].get("cost") is not None for t in tied)  # a sweep's finalists: the cheaper first
    winner = min(tied, key=lambda t: (rows[t["name"]]["cost"] if priced else 0, -rows[t["name"]]["general_retention"],
                                      t.get("step") or 0, order[t["name"]]))
    rule = "higher general retention, then the earlier step"
    return winner, {"leader": leader["name"], "tied": [t["name"] for t in tied],
                    "rule": f"the cheaper configuration, then {rule}" if priced else rule,
                    "intervals": {t["name"]: t["vs_leader"] for t in others}, "draws": noise.draws}


def _check_weights(weights: dict[str, float], objectives) -> None:
    keys = {o.key for o in objectives}
    unknown = [k for k in weights if k not in keys]
    if unknown or sum(weights.values()) <= 0 or any(w < 0 for w in weights.values()):
        raise ConfigError([("select.weights", f"weights must be non-negative, not all zero, and name measured "
                                              f"metrics ({', '.join(sorted(keys))}); got {weights}")])


def _why_not(entry: dict, best: dict, rows: dict, weights: dict, objectives, tie: dict | None = None) -> str:
    if tie and entry["name"] in tie["tied"]:
        return f"tied within noise with {best['name']}: {_tie_text(entry, best, rows, tie)}"
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
    if tie and entry.get("vs_leader"):
        vs = entry["vs_leader"]
        text += (f"; behind {tie['leader']} beyond noise ({vs['difference']:+.3f}, 95% interval "
                 f"{vs['low']:+.3f} to {vs['high']:+.3f})")
    return text


def _tie_text(entry: dict, best: dict, rows: dict, tie: dict) -> str:
    """The figures of a tie: the difference from the leader with its interval, and how the tie-break went."""
    leader = tie["leader"]
    shown = entry if entry["name"] != leader else best
    vs = tie["intervals"][shown["name"]]
    text = (f"{leader}'s weighted score is ahead of {shown['name']}'s by {vs['difference']:+.3f} (95% paired "
            f"bootstrap interval {vs['low']:+.3f} to {vs['high']:+.3f}, which holds zero)")
    retention = ", ".join(f"{name} {rows[name]['general_retention']:.1%}" for name in tie["tied"])
    costs = ", ".join(f"{name} {rows[name]['cost']:.0f} s" for name in tie["tied"] if rows[name].get("cost") is not None)
    cost = f"training time {costs}; " if tie["rule"].startswith("the cheaper") and costs else ""
    return text + f"; tie-break: {tie['rule']} ({cost}general retention {retention})"


def _gaps(row: dict, best: dict, weights: dict, objectives) -> list[tuple[float, Objective, float, float]]:
    """(weighted shortfall against `best`, objective, row's value, best's value), largest shortfall first."""
    total = sum(weights.values())
    gaps = [(weights[o.key] * (o.oriented(best) - o.oriented(row)) / total, o, row[o.key], best[o.key])
            for o in objectives if weights.get(o.key)]
    return sorted(gaps, key=lambda g: -g[0])


def _floors_text(floors: Floors, base: dict) -> str:
    text = (f"general retention >= {floors.min_retention:.0%} of the base model's, format compliance >= the base "
            f"model's ({base['format_compliance']:.1%})")
    if floors.min_format is not None:
        text += f" and >= {floors.min_format:.0%}"
    if floors.max_format_drop is not None:
        text += f", at most {floors.max_format_drop:.0%} below the best candidate's"
    return text


def _reason(best: dict, table: list[dict], rows: list[dict], objectives, floors: Floors, base: dict,
            tie: dict | None = None) -> str:
    if best["kind"] == "base":
        return (f"no checkpoint passed the hard constraints ({_floors_text(floors, base)}), so the base model is "
                "kept: fine-tuning did not pay off here")
    by_name = {r["name"]: r for r in rows}
    if tie and len(tie["tied"]) > 1:
        others = [n for n in tie["tied"] if n != best["name"]]
        entry = next(t for t in table if t["name"] == (others[0] if best["name"] == tie["leader"] else best["name"]))
        text = (f"{best['name']} is chosen from {', '.join(tie['tied'])}, tied within noise among the checkpoints "
                f"that keep {_floors_text(floors, base)}: {_tie_text(entry, best, by_name, tie)}")
    else:
        text = (f"{best['name']} has the highest weighted score ({best['score']:.3f}) among the checkpoints that keep "
                f"{_floors_text(floors, base)}")
        if tie:
            text += ", ahead of every other eligible checkpoint beyond noise (95% paired bootstrap interval)"
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
