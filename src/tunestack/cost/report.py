"""The cost report: `cost.json`, `cost.md` and `cost.png`, and the short table `tunestack cost` prints.

Pure but for `plot`, which imports matplotlib (Agg) when called. Everything renders from the JSON body, so the
terminal, the markdown and the file always agree. A figure resting on a default is marked `(default)`.

>>> money(1557.5), months(0.2142), months(None)
('$1,557.50', '0.21 months (7 days)', 'never (no monthly saving)')
"""

from __future__ import annotations

import time
from pathlib import Path

from tunestack.cost.model import Figure
from tunestack.rundir import save_figure

SCHEMA_VERSION = 1

SUMMARY = (  # output name, label
    ("training_cost_per_run", "training, per run"),
    ("training_cost", "training, per successful fine-tune"),
    ("evaluation_cost", "evaluation, all runs"),
    ("other_one_time", "other one-time costs"),
    ("investment", "investment"),
    ("serving_monthly_awq", "serving per month, AWQ"),
    ("serving_monthly_without_awq", "serving per month, without AWQ"),
    ("api_monthly", "API per month"),
    ("saving_monthly", "saving per month"),
    ("payback_months", "payback"),
    ("break_even_requests", "break-even volume"),
    ("payback_volume_requests", "volume that pays back in the horizon"),
)


def money(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def months(value: float | None) -> str:
    if value is None:
        return "never (no monthly saving)"
    return f"{value:.2f} months ({value * 365.25 / 12:.0f} days)"


def number(value: float | None) -> str:
    """A value for a table: whole numbers with thousands separators, small ones to four significant digits.

    >>> number(5113636.36), number(0.15), number(1071.43)
    ('5,113,636', '0.15', '1,071')
    """
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 or value == int(value) else f"{value:,.4g}"


def figure_json(fig: Figure) -> dict:
    return {"value": fig.value, "unit": fig.unit, "source": fig.source, "note": fig.note,
            "defaults": list(fig.defaults)}


def build_body(run_name: str, inputs, outputs: dict[str, Figure], sensitivity: dict | None,
               cumulative: dict, measured_from: list[str], notes: list[str]) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run_name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "measured_from": measured_from,
        "gpus": {"training": inputs.training.gpu, "serving": inputs.serving.gpu},
        "quantization": inputs.serving.quantization,
        "api": inputs.api.name if inputs.api else None,
        "horizon_months": inputs.horizon_months,
        "inputs": {fig.name: figure_json(fig) for fig in inputs.figures()},
        "outputs": {name: figure_json(fig) for name, fig in outputs.items()},
        "sensitivity": sensitivity,
        "cumulative": cumulative,
        "notes": notes,
    }


def formatted(name: str, out: dict) -> str:
    value, unit = out["value"], out["unit"]
    if name == "payback_months":
        return months(value)
    if value is None:
        return "none: a full replica costs more than the API would for its traffic"
    if unit.startswith("$"):
        return money(value) + unit[1:]
    if unit == "requests/month":
        return f"{value:,.0f} requests/month"
    return f"{value:,.4g} {unit}".strip()


def summary_rows(body: dict) -> list[tuple[str, str, str, str]]:
    """(name, label, value, source) for each headline figure present."""
    outputs = body["outputs"]
    return [(name, _detail(name, label, body), formatted(name, outputs[name]), outputs[name]["source"])
            for name, label in SUMMARY if name in outputs]


def _detail(name: str, label: str, body: dict) -> str:
    inputs, outputs = body["inputs"], body["outputs"]
    if name == "training_cost_per_run":
        return f"{label} ({outputs['training_gpu_hours_per_run']['value']:.3g} GPU-hours, {body['gpus']['training']})"
    if name == "training_cost":
        return f"{label} (x {inputs['training.experiments']['value']:g} runs)"
    if name.startswith("serving_monthly"):
        suffix = name.removeprefix("serving_monthly_")
        return f"{label} ({outputs[f'serving_replicas_{suffix}']['value']} x {body['gpus']['serving']})"
    if name == "api_monthly":
        return f"{label} ({body['api']})"
    if name == "payback_volume_requests":
        return f"volume that pays back within {body['horizon_months']} months"
    return label


def terminal_lines(body: dict) -> list[str]:
    rows = [row[1:] for row in summary_rows(body)]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{label:<{widths[0]}}  {value:<{widths[1]}}  {source}" for label, value, source in rows]
    lines.append(_measured_line(body))
    lines += [f"note: {note}" for note in body["notes"]]
    return lines


def _measured_line(body: dict) -> str:
    if body["measured_from"]:
        measured = sorted(name for name, fig in body["inputs"].items() if fig["source"] == "measured")
        return (f"read from the run: {', '.join(body['measured_from'])}; measured: {', '.join(measured) or 'none'}; "
                "'default' marks a figure that rests on our table or a rule of thumb (see the inputs in cost.md)")
    return ("no run measured anything yet: every run figure is an estimate; 'default' marks a figure that rests on "
            "our table or a rule of thumb (see the inputs in cost.md)")


def markdown(body: dict) -> str:
    measured = _measured_line(body)
    lines = [f"# Cost and payback: run `{body['run']}`", "", measured[0].upper() + measured[1:] + ".",
             "A source of `default` means the figure rests on at least one default rather than a measurement or "
             "your config; set those keys under `cost:` to replace them.", "",
             "| figure | value | source | rests on these defaults |", "|---|---|---|---|"]
    for name, label, value, source in summary_rows(body):
        defaults = ", ".join(f"`{d}`" for d in body["outputs"][name]["defaults"]) or "none"
        lines.append(f"| {label} | {value} | {source} | {defaults} |")
    lines += ["", "## Inputs", "", "| input | value | source | from |", "|---|---|---|---|"]
    for name, fig in body["inputs"].items():
        source = "**default**" if fig["source"] == "default" else fig["source"]
        lines.append(f"| `{name}` | {number(fig['value'])} | {source} | {fig['note'] or '-'} |")
    lines += _sensitivity_lines(body["sensitivity"])
    if body["notes"]:
        lines += ["", "## Notes", "", *[f"- {n}" for n in body["notes"]]]
    lines += ["", "![costs, and cumulative spend self-hosted against the API](cost.png)", ""]
    return "\n".join(lines)


def _sensitivity_lines(sens: dict | None) -> list[str]:
    if not sens:
        return ["", "No API configured (`cost.api`): no saving, payback or sensitivity."]
    head = " | ".join(f"{v:g}x: {r:,.0f} req" for v, r in zip(sens["volume_factors"], sens["monthly_requests"]))
    lines = ["", "## Sensitivity: payback in months", "",
             "Rows: every GPU price multiplied (training $/h, serving $/h). Columns: monthly volume multiplied.", "",
             f"| GPU price | {head} |", "|---" * (len(sens["volume_factors"]) + 1) + "|"]
    for p, train, serve, row in zip(sens["price_factors"], sens["training_price_per_hour"],
                                    sens["serving_price_per_hour"], sens["payback_months"]):
        cells = " | ".join("never" if m is None else f"{m:.2f}" for m in row)
        lines.append(f"| {p:g}x (${train:.2f}/h, ${serve:.2f}/h) | {cells} |")
    return lines


def plot(path: Path, body: dict) -> None:
    """Bars for the costs (hatched: rests on a default) and cumulative spend, self-hosted against the API."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outputs = body["outputs"]
    names = [n for n in ("training_cost", "evaluation_cost", "other_one_time", "investment", "serving_monthly_awq",
                         "serving_monthly_without_awq", "api_monthly", "saving_monthly") if n in outputs]
    labels = {"training_cost": "training, all runs", "evaluation_cost": "evaluation", "other_one_time": "other",
              "investment": "investment", "serving_monthly_awq": "serving/month AWQ",
              "serving_monthly_without_awq": "serving/month no AWQ", "api_monthly": "API/month",
              "saving_monthly": "saving/month"}
    fig, (bars, lines) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    for i, name in enumerate(names):
        out = outputs[name]
        drawn = bars.bar(i, out["value"], color="tab:orange" if "monthly" in name else "tab:blue",
                         hatch="//" if out["source"] == "default" else None, edgecolor="black", linewidth=0.5)
        bars.bar_label(drawn, [f"${out['value']:,.0f}"], fontsize=7)
    bars.set_xticks(range(len(names)), [labels[n] for n in names], fontsize=8, rotation=30, ha="right")
    bars.set_ylabel("US$")
    bars.set_title("One-time (blue) and monthly (orange) costs; hatched: rests on a default", fontsize=9)
    cum = body["cumulative"]
    lines.plot(cum["months"], cum["self_hosted"], label="cost of self-hosting: investment + serving",
               color="tab:blue")
    if cum["api"]:
        lines.plot(cum["months"], cum["api"], label=f"savings: API spend avoided ({body['api']})", color="tab:red")
        payback = outputs["payback_months"]["value"]
        if payback is not None and payback <= cum["months"][-1]:
            lines.axvline(payback, color="black", linestyle="--", linewidth=1, label=f"payback {payback:.2f} months")
    lines.set_xlabel("months")
    lines.set_ylabel("cumulative US$")
    lines.set_title("Cumulative savings against cumulative cost", fontsize=9)
    lines.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
