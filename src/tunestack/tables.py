"""The table of evaluated models as every stage prints it (terminal or markdown), and the formatting of its cells:
metric titles, shares, sizes. Pure; below every stage, so that train's live evaluation, select, holdout, cost and the
report all show a model the same way.
"""

from __future__ import annotations

TITLES = {"exact_match": "exact match", "task_accuracy": "exact match", "field_accuracy": "per-field"}
COLUMNS = [("format", "format_compliance"), ("retention", "general_retention"), ("choices", "choice_score"),
           ("probes", "probe_pass_rate"), ("quartz", "quartz_accuracy"), ("instructions", "instruction_pass_rate"), ("train loss", "train_loss"),
           ("selected", "selected")]
"""The columns after the model and its task metrics."""
SUITE_FIGURES = {"choice_score": ("choices", "adjusted"), "probe_pass_rate": ("probes", "pass_rate"), "quartz_accuracy": ("quartz", "accuracy"),
                 "instruction_pass_rate": ("instructions", "pass_rate"), "lm_eval_accuracy": ("lm_eval", "accuracy")}
"""Each retention suite's figure in a row: (the suite's key in an evaluation, the score's field)."""


def suite_figure(row: dict, key: str) -> float | None:
    """A retention suite's score in an evaluated row; None where the suite was skipped or not run.

    >>> suite_figure({"quartz": {"n": 0, "accuracy": None}, "probes": {"n": 4, "pass_rate": 0.5}}, "probe_pass_rate")
    0.5
    """
    suite, field = SUITE_FIGURES[key]
    scores = row.get(suite) or {}
    return scores.get(field) if scores.get("n") else None


def metric_title(key: str) -> str:
    """A task metric's column title.

    >>> metric_title("field_accuracy"), metric_title("my_score")
    ('per-field', 'my score')
    """
    return TITLES.get(key, key.replace("_", " "))


def columns(rows: list[dict]) -> list[tuple[str, str]]:
    """(title, key) of each table column: the model, each task metric (`metrics.<key>`), then COLUMNS."""
    measured = (rows[0].get("metrics") or {}) if rows else {}
    task = [(metric_title(k), f"metrics.{k}") for k in measured] or [("exact match", "task_accuracy"),
                                                                    ("per-field", "field_accuracy")]
    return [("model", "name"), *task, *COLUMNS]


def model_rows(evaluated: list[dict], chosen: str | None) -> list[dict]:
    keep = ("name", "kind", "step", "task_accuracy", "task_accuracy_ci95", "field_accuracy", "per_field_accuracy",
            "metrics", "metrics_ci95", "format_compliance", "general_retention", "retention_by_suite",
            "general_by_suite", "eos_rate", "train_loss")
    rows = []
    for row in evaluated:
        out = {k: row.get(k) for k in keep}
        out.update({key: suite_figure(row, key) for key in SUITE_FIGURES})
        out["format_bleed_rate"] = row.get("probes", {}).get("format_bleed_rate")
        out["selected"] = row["name"] == chosen
        rows.append(out)
    return rows


def _cell(value, key: str, share: bool = True) -> str:
    if value is None:
        return "-"
    if key == "selected":
        return "<-- selected" if value else ""
    if key == "train_loss":
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.1%}" if share else f"{value:.4g}"
    return str(value)


def _value(row: dict, key: str):
    if key == "name" and row.get("kind") == "reference":
        return f"{row['name']} (reference)"
    if key == "name" and row.get("kind") == "quantized":
        return f"{row['name']} (quantized{', chosen' if row.get('chosen') else ''})"
    if key.startswith("metrics."):
        return (row.get("metrics") or {}).get(key.removeprefix("metrics."))
    return row.get(key)


def table_lines(rows: list[dict], markdown: bool) -> list[str]:
    cols = columns(rows)
    header = [title for title, _ in cols]
    # a task metric outside [0, 1] (a user's, such as a length) is a plain number, not a percentage
    shares = [all(not isinstance(v, float) or -0.001 <= v <= 1.5 for v in (_value(r, key) for r in rows))
              or not key.startswith("metrics.") for _, key in cols]
    body = [[_cell(_value(row, key), key, share) for (_, key), share in zip(cols, shares)] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return lines + ["| " + " | ".join(cells) + " |" for cells in body]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*cells) for cells in body]


def show(value: float) -> str:
    """A metric's value: a percentage for a share, else a plain number (a user's metric may be neither)."""
    return f"{value:.1%}" if -0.001 <= value <= 1.5 else f"{value:.4g}"


def size(n: int) -> str:
    """Bytes, in the unit that reads best."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.{0 if n >= 100 * scale else 1}f} {unit}"
    return f"{n} B"


def verdict_cell(found: dict | None) -> str:
    """A retention verdict (`tunestack.verdict`) in a table cell: the outcome and its interval.

    >>> verdict_cell({"outcome": "pass", "interval": [0.951, 1.02]})
    'pass (95.1% to 102.0%)'
    >>> verdict_cell({"outcome": "inconclusive", "interval": [None, 1.02]}), verdict_cell(None)
    ('inconclusive (unbounded to 102.0%)', '-')
    """
    if not found:
        return "-"
    low, high = ("unbounded" if v is None else f"{v:.1%}" for v in found["interval"])
    return f"{found['outcome']} ({low} to {high})"
