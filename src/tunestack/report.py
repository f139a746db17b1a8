"""The end-of-run table (terminal and report.md) and results.json, built from the stage manifests. Pure but for
reading the run directory.
"""

from __future__ import annotations

import json
import time
from importlib import resources

from tunestack.config import Config
from tunestack.rundir import RunDir, git_revision, write_json

COLUMNS = [("model", "name"), ("exact match", "task_accuracy"), ("per-field", "field_accuracy"),
           ("format", "format_compliance"), ("retention", "general_retention"), ("probes", "probe_pass_rate"),
           ("quartz", "quartz_accuracy"), ("train loss", "train_loss"), ("selected", "selected")]


def results_schema() -> dict:
    return json.loads(resources.files("tunestack.resources").joinpath("results.schema.json").read_text())


def model_rows(evaluated: list[dict], chosen: str | None) -> list[dict]:
    keep = ("name", "kind", "step", "task_accuracy", "task_accuracy_ci95", "field_accuracy", "per_field_accuracy",
            "format_compliance", "general_retention", "retention_by_suite", "eos_rate", "train_loss")
    rows = []
    for row in evaluated:
        out = {k: row.get(k) for k in keep}
        out["probe_pass_rate"] = row.get("probes", {}).get("pass_rate")
        out["format_bleed_rate"] = row.get("probes", {}).get("format_bleed_rate")
        out["quartz_accuracy"] = row.get("quartz", {}).get("accuracy") if row.get("quartz", {}).get("n") else None
        out["selected"] = row["name"] == chosen
        rows.append(out)
    return rows


def build_results(cfg: Config, run: RunDir) -> dict:
    selection = run.require("select")
    train = run.manifest("train") or {}
    prepare = run.manifest("prepare") or {}
    return {
        "schema_version": 1,
        "run": cfg.run.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "git_revision": git_revision(),
        "seed": cfg.run.seed,
        "config": cfg.model_dump(mode="json"),
        "data": {"counts": prepare.get("counts"), "splits": prepare.get("splits"), "sources": prepare.get("sources"),
                 "warnings": prepare.get("warnings")},
        "train": {k: train.get(k) for k in ("steps", "precision", "train_seconds", "tokens_per_second", "rows")},
        "models": model_rows(run.require("evaluate")["models"], selection["chosen"]),
        "selection": {k: selection[k] for k in ("chosen", "reason", "pareto_front", "table")},
        "export": run.manifest("export"),
    }


def _cell(value, key: str) -> str:
    if value is None:
        return "-"
    if key == "selected":
        return "<-- selected" if value else ""
    if key == "train_loss":
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.1%}"
    return str(value)


def table_lines(rows: list[dict], markdown: bool) -> list[str]:
    header = [title for title, _ in COLUMNS]
    body = [[_cell(row.get(key), key) for _, key in COLUMNS] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return lines + ["| " + " | ".join(cells) + " |" for cells in body]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*cells) for cells in body]


def render_markdown(results: dict) -> str:
    sel = results["selection"]
    lines = [f"# tunestack run `{results['run']}`", "", *table_lines(results["models"], markdown=True), "",
             f"**Selected: {sel['chosen']}.** {sel['reason']}.", "", "Why the others lost:", ""]
    lines += [f"- {t['name']}: {t['verdict']}" for t in sel["table"] if t["name"] != sel["chosen"]]
    lines += ["", f"Pareto front (exact match, per-field, format, retention): {', '.join(sel['pareto_front'])}"]
    export = results.get("export")
    if export and export.get("verification"):
        v = export["verification"]
        lines += ["", f"Export: `{export['path']}`; greedy outputs identical to the adapter's on "
                      f"{v['identical']}/{v['compared']} eval prompts; EOS rate {v['eos_rate']:.0%}."]
    holdout = (export or {}).get("holdout")
    if holdout:
        low, high = holdout["task_accuracy_ci95"]
        lines += ["", f"**Final validation on the sealed holdout** ({holdout['rows']} rows, read once, by export): "
                      f"exact match {holdout['task_accuracy']:.1%} (95% CI {low:.0%}-{high:.0%}), per-field "
                      f"{holdout['field_accuracy']:.1%}, format {holdout['format_compliance']:.1%}, "
                      f"EOS {holdout['eos_rate']:.0%}."]
    counts = (results.get("data") or {}).get("counts")
    if counts:
        lines += ["", "Data: " + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in counts.items())
                  + f"; splits {results['data']['splits']}. Details: `prepare/data_report.md`."]
    return "\n".join(lines) + "\n"


def write_report(cfg: Config, run: RunDir) -> dict:
    results = build_results(cfg, run)
    write_json(run.root / "results.json", results)
    (run.root / "report.md").write_text(render_markdown(results), encoding="utf-8")
    return results
