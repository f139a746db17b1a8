"""The end-of-run table (terminal and report.md) and results.json, built from the stage manifests. Pure but for
reading the run directory.
"""

from __future__ import annotations

import json
import time
from importlib import resources

from tunestack.config import Config
from tunestack.rundir import RunDir, git_revision, read_json, write_json, write_text

TITLES = {"exact_match": "exact match", "task_accuracy": "exact match", "field_accuracy": "per-field"}
COLUMNS = [("format", "format_compliance"), ("retention", "general_retention"), ("probes", "probe_pass_rate"),
           ("quartz", "quartz_accuracy"), ("train loss", "train_loss"), ("selected", "selected")]
"""The columns after the model and its task metrics."""


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


def results_schema() -> dict:
    return json.loads(resources.files("tunestack.resources").joinpath("results.schema.json").read_text())


def model_rows(evaluated: list[dict], chosen: str | None) -> list[dict]:
    keep = ("name", "kind", "step", "task_accuracy", "task_accuracy_ci95", "field_accuracy", "per_field_accuracy",
            "metrics", "metrics_ci95", "format_compliance", "general_retention", "retention_by_suite",
            "general_by_suite", "eos_rate", "train_loss")
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
    evaluated = run.require("evaluate")
    references = evaluated.get("references") or []
    quantized = run.manifest("quantize")
    train = run.manifest("train") or {}
    prepare = run.manifest("prepare") or {}
    served_path = run.root / "serve" / "served.json"
    served = read_json(served_path) if served_path.exists() else None
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
        "models": model_rows(evaluated["models"] + references, selection["chosen"])
        + [{**row, "chosen": row["name"] == quantized["chosen"]}
           for row in model_rows(quantized["candidates"] if quantized else [], None)]
        + [{**row, "kind": "served"} for row in model_rows([served["row"]] if served else [], None)],
        "references": reference_shares(evaluated["models"], references, selection["chosen"],
                                       cfg.cost.min_accuracy_share),
        "selection": {k: selection.get(k) for k in ("chosen", "reason", "pareto_front", "table", "objectives",
                                                     "weights", "min_retention", "floors", "judge", "eval_set_decisions",
                                                     "eval_decisions", "noise")},
        "export": run.manifest("export"),
        "quantize": quantize_summary(quantized),
        "served": {k: served.get(k) for k in ("model", "kind", "source", "backend", "dtype", "identical", "compared",
                                              "agreement", "comparison", "differing", "parity", "quartz_skipped")}
        if served else None,
        "holdout": run.manifest("holdout"),
    }


def reference_shares(models: list[dict], references: list[dict], chosen: str, floor: float) -> list[dict]:
    """The selected model's headline metric as a share of each reference's, and whether it clears `floor`."""
    from tunestack.evaluate.references import shares

    picked = next((m for m in models if m["name"] == chosen), None)
    if picked is None or not references:
        return []
    captures = {r["name"]: r.get("capture") for r in references}
    return [{**s, "model": chosen, "min_share": floor, "enough": s["share"] is not None and s["share"] >= floor,
             "capture": captures.get(s["reference"])} for s in shares(picked, references)]


def reference_lines(found: list[dict]) -> list[str]:
    """One sentence per reference: the selected model's accuracy as a share of it, pass or fail against the rule,
    and what was captured from it (the model id its endpoint reported, when, the tokens and cost)."""
    lines = []
    for r in found:
        if r["share"] is None:
            line = f"Against {r['reference']}: no share (its exact match is 0)."
        else:
            verdict = ("clears" if r["enough"] else "is below") + f" the {r['min_share']:.0%} needed to replace it"
            line = (f"Against {r['reference']}: {r['model']}'s exact match {r['value']:.1%} is {r['share']:.0%} of "
                    f"{r['reference']}'s {r['reference_value']:.1%}, which {verdict}: "
                    f"**{'PASS' if r['enough'] else 'FAIL'}**.")
        c = r.get("capture")
        if c:
            cost = f", ${c['cost_usd']:.4f}" if c.get("cost_usd") is not None else ""
            line += (f" Captured from `{c['model'] or 'an unnamed model'}` (as its endpoint reported it), last answer "
                     f"{c['captured_at'] or 'at an unrecorded time'}: {c['answers']} answers, {c['prompt_tokens']} "
                     f"prompt + {c['completion_tokens']} completion tokens{cost}.")
        lines.append(line)
    return lines


def quantize_summary(manifest: dict | None) -> dict | None:
    """What results.json keeps of the quantize stage: the choice, the reference, and each candidate's gate figures
    (the candidates' metrics are rows of `models`, kind `quantized`)."""
    if not manifest:
        return None
    keep = ("name", "method", "bits", "group_size", "symmetric", "observer", "eight_bit", "kept", "kept_of_selected",
            "general_retention", "general_retention_ci95", "general_retention_drop_ci95", "agreement",
            "calibration_rows", "calibration_seconds", "sizes", "passes", "failures", "path")
    reference = manifest["reference"]
    return {"chosen": manifest["chosen"], "path": manifest["path"], "device": manifest.get("device"),
            "path_ran": manifest.get("path_ran"), "min_retention": manifest.get("min_retention"),
            "calibration": manifest.get("calibration"), "selected_checkpoint": manifest.get("selected_checkpoint"),
            "reference": {k: reference.get(k) for k in ("task_accuracy", "format_compliance", "general_retention",
                                                        "sizes", "path")},
            "candidates": [{k: c.get(k) for k in keep} for c in manifest["candidates"]]}


def size(n: int) -> str:
    """Bytes, in the unit that reads best."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.{0 if n >= 100 * scale else 1}f} {unit}"
    return f"{n} B"


def quantize_lines(summary: dict | None) -> list[str]:
    """The quantization ladder: each candidate tried, in order, with what it kept of the export and its size."""
    if not summary:
        return []
    ref = summary["reference"]
    lines = ["", f"Quantization ({summary['path_ran']}; calibration: {summary['calibration']['rows']} rows, "
                 f"{summary['calibration']['mix']} mix), each figure as a share of the export's (task accuracy "
                 f"{ref['task_accuracy']:.1%}, format {ref['format_compliance']:.1%}, retention "
                 f"{ref['general_retention']:.1%}; {size(ref['sizes']['disk_bytes'])} on disk):", "",
             "| candidate | task kept | format kept | retention (95% CI) | retention kept | agreement | on disk | "
             "weights | calibration | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in summary["candidates"]:
        verdict = "**chosen**" if c["name"] == summary["chosen"] else ("passes" if c["passes"] else
                                                                       "; ".join(c["failures"]))
        ci = c.get("general_retention_ci95")
        retention = f"{c['general_retention']:.1%}" + (f" ({ci[0]:.0%}-{ci[1]:.0%})" if ci else "")
        lines.append(f"| {c['name']} | {c['kept']['task_accuracy']:.1%} | {c['kept']['format_compliance']:.1%} | "
                     f"{retention} | {c['kept']['general_retention']:.1%} | {c['agreement']:.0%} | {size(c['sizes']['disk_bytes'])} "
                     f"| {size(c['sizes']['weight_bytes'])} | {c['calibration_seconds']:.0f} s on "
                     f"{c['calibration_rows']} rows | {verdict} |")
    drops = [(c["name"], c["general_retention_drop_ci95"]) for c in summary["candidates"]
             if c.get("general_retention_drop_ci95")]
    if drops:
        lines += ["", "Retention lost against the export, in points, 95% interval (paired bootstrap over the same "
                      "probes and questions): " + "; ".join(f"{n} {100 * lo:+.1f} to {100 * hi:+.1f}"
                                                            for n, (lo, hi) in drops) + "."]
    tied = ref["sizes"].get("tied_embedding")
    lines += ["", f"The embedding ({size(ref['sizes']['embedding_bytes'])}, never quantized) is "
                  f"{'tied to the output head: stored and counted once' if tied else 'counted beside the head'}."]
    return lines


def served_lines(served: dict | None) -> list[str]:
    """The served endpoint against offline evaluation of the same weights."""
    if not served:
        return []
    parts = []
    for key, c in served["comparison"].items():
        if c["served"] is None or c["offline"] is None:
            continue
        drop = c["drop_ci95"]
        interval = f" (offline minus served, 95% CI {100 * drop[0]:+.1f} to {100 * drop[1]:+.1f} points)" if drop else ""
        parts.append(f"{key.replace('_', ' ')} {c['served']:.1%} served against {c['offline']:.1%} offline{interval}")
    lines = ["", f"**Served** ({served['backend']} server, {served['model']}, {served['dtype']}): "
                 f"{served['identical']} of {served['compared']} eval answers identical to offline evaluation of the "
                 f"same weights; " + "; ".join(parts) + "."]
    if served.get("quartz_skipped"):
        lines.append(f"Through the endpoint quartz is skipped: {served['quartz_skipped']}.")
    return lines


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


def render_markdown(results: dict) -> str:
    sel = results["selection"]
    lines = [f"# tunestack run `{results['run']}`", "", *table_lines(results["models"], markdown=True), "",
             *suite_lines(results["models"]), f"**Selected: {sel['chosen']}.** {sel['reason']}.", "",
             "Why the others lost:", ""]
    lines += [f"- {t['name']}: {t['verdict']}" for t in sel["table"] if t["name"] != sel["chosen"]]
    lines += ["", *selection_lines(sel)]
    for line in reference_lines(results.get("references") or []):
        lines += ["", line]
    export = results.get("export")
    if export and export.get("verification"):
        v = export["verification"]
        lines += ["", f"Export: `{export['path']}`; greedy outputs identical to the adapter's on "
                      f"{v['identical']}/{v['compared']} eval prompts; EOS rate {v['eos_rate']:.0%}."]
    lines += quantize_lines(results.get("quantize"))
    lines += served_lines(results.get("served"))
    holdout = results.get("holdout")
    if holdout and holdout.get("metrics"):
        lines += ["", holdout_line(holdout)]
    counts = (results.get("data") or {}).get("counts")
    if counts:
        lines += ["", "Data: " + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in counts.items())
                  + f"; splits {results['data']['splits']}. Details: `prepare/data_report.md`."]
    return "\n".join(lines) + "\n"


def suite_lines(models: list[dict]) -> list[str]:
    """General capability per suite: each model's absolute score and its share of the base model's score."""
    suites = sorted({suite for m in models for suite in (m.get("general_by_suite") or {})})
    if not suites:
        return []
    lines = ["General capability by suite: absolute score (share of the base model's). A probe answered in the "
             "task's JSON format fails (format bleed).", "",
             "| model | " + " | ".join(suites) + " | format bleed |", "|" + "---|" * (len(suites) + 2)]
    for m in models:
        by_suite = m.get("general_by_suite") or {}
        cells = [f"{by_suite[s]['score']:.1%} ({by_suite[s]['share']:.0%})" if s in by_suite else "-" for s in suites]
        bleed = m.get("format_bleed_rate")
        lines.append(f"| {m['name']} | " + " | ".join(cells) + f" | {'-' if bleed is None else f'{bleed:.0%}'} |")
    return [*lines, ""]


def selection_lines(sel: dict) -> list[str]:
    """The Pareto front, the guards' flags, the judge's status and the count of decisions against the eval set."""
    titles = [o.get("title") or o["key"] for o in sel.get("objectives") or []]
    lines = [f"Pareto front ({', '.join(titles) or 'exact match, per-field, format, retention'}): "
             f"{', '.join(sel['pareto_front'])}"]
    table = sel.get("table") or []
    guards = [f"{flag}: {', '.join(t['name'] for t in table if flag in t.get('flags', [])) or 'none'}"
              for flag in ("format regression", "format floor", "forgetting")]
    lines.append("Guards: " + "; ".join(guards) + ".")
    tie = sel.get("noise")
    if tie:
        tied = tie["tied"]
        head = (f"Tied within noise: {', '.join(tied)} (95% paired bootstrap interval of the weighted-score "
                f"difference from {tie['leader']} holds zero); tie-break: {tie['rule']}." if len(tied) > 1 else
                f"{tie['leader']} leads every other eligible checkpoint beyond noise.")
        spans = "; ".join(f"{name} {v['difference']:+.3f} ({v['low']:+.3f} to {v['high']:+.3f})"
                          for name, v in tie["intervals"].items())
        lines.append(f"{head} {tie['leader']} minus each other eligible checkpoint: {spans} ({tie['draws']} "
                     f"draws).")
    if sel.get("judge"):
        lines.append(f"LLM judge: {'counted' if sel['judge']['counted'] else 'not counted'} "
                     f"({sel['judge']['reason']}).")
    decisions = sel.get("eval_decisions") or {}
    if sel.get("eval_set_decisions"):
        runs = f" in {decisions['runs']} run(s)" if decisions.get("runs") else ""
        lines.append(f"Selection decisions made against this eval set so far: {sel['eval_set_decisions']}{runs} "
                     f"(budget {decisions.get('budget', '-')}). Each is another chance to fit the eval set by "
                     "choosing; the sealed holdout is the unbiased figure.")
    if decisions.get("rotate"):
        lines.append(f"**Time to rotate the eval set:** {decisions['rotate']}.")
    spaced = []
    for line in lines:  # one paragraph each
        spaced += [line, ""]
    return spaced[:-1]


def show(value: float) -> str:
    """A metric's value: a percentage for a share, else a plain number (a user's metric may be neither)."""
    return f"{value:.1%}" if -0.001 <= value <= 1.5 else f"{value:.4g}"


def holdout_line(holdout: dict) -> str:
    """One paragraph: the chosen checkpoint's metrics on the sealed holdout, and how often it has been read."""
    parts = []
    for key, value in holdout["metrics"].items():
        interval = (holdout.get("metrics_ci95") or {}).get(key)
        ci = f" (95% CI {interval[0]:.0%}-{interval[1]:.0%})" if interval else ""
        parts.append(f"{metric_title(key)} {show(value)}{ci}")
    parts += [f"format {holdout['format_compliance']:.1%}", f"EOS {holdout['eos_rate']:.0%}"]
    reads = holdout.get("read_number", 1)
    how = "read once" if reads == 1 else f"read {reads} times, the later reads forced and logged"
    return (f"**Final validation on the sealed holdout** ({holdout['rows']} rows, {how}, by `tunestack holdout`, "
            f"model {holdout['model']}): " + ", ".join(parts) + ".")


def write_report(cfg: Config, run: RunDir) -> dict:
    results = build_results(cfg, run)
    write_json(run.root / "results.json", results)
    write_text(run.root / "report.md", render_markdown(results))
    return results
