"""`report.md` and the terminal's end-of-run text: the table of models, the selection and its reasons, the
references, quantization, the served endpoint and the holdout, each as lines of markdown.
"""

from __future__ import annotations

from tunestack.tables import metric_title, show, size, table_lines, verdict_cell


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
    verdicts = [(t["name"], (t.get("retention_verdicts") or {}).get("overall")) for t in table]
    if any(found for _, found in verdicts):
        lines.append("Retention verdicts (one-sided bounds of the share of the base model's, pooled over the suites, at "
                     "alpha spent over the planned looks): "
                     + "; ".join(f"{name} {verdict_cell(found)}" for name, found in verdicts if found) + ".")
    lines += [look_line(look["model"], look) for look in sel.get("retention_looks") or []]
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
    versus = sel.get("against_start") or {}
    if versus.get("metrics"):
        figures = "; ".join(f"{m['title']} {m['chosen']:.1%} vs {m['start']:.1%} ({100 * m['difference']:+.1f} pts"
                            + (f", 95% paired interval {100 * m['ci95'][0]:+.1f} to {100 * m['ci95'][1]:+.1f}"
                               if m.get("ci95") else "") + changed_rows(m) + ")" for m in versus["metrics"].values())
        lines.append(f"Against the model training started from ({versus['start']}), on the same eval rows: {figures}.")
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


def changed_rows(metric: dict) -> str:
    """`; better on B rows, worse on W, of N` for a comparison that counted them (results before it did not)."""
    if metric.get("rows") is None:
        return ""
    return f"; better on {metric['better']} rows, worse on {metric['worse']}, of {metric['rows']}"


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
    verdicts = [(c["name"], (c.get("retention_verdicts") or {}).get("overall")) for c in summary["candidates"]]
    if any(found for _, found in verdicts):
        lines += ["", "Retention verdicts against the gate's floor (one-sided bounds of the share of the base model's, "
                      "pooled over the suites, at alpha spent over the planned looks): " + "; ".join(f"{n} {verdict_cell(found)}"
                                                              for n, found in verdicts if found) + "."]
    for c in summary["candidates"]:
        lines += [look_line(c["name"], look) for look in c.get("retention_looks") or []]
    tied = ref["sizes"].get("tied_embedding")
    lines += ["", f"The embedding ({size(ref['sizes']['embedding_bytes'])}, never quantized) is "
                  f"{'tied to the output head: stored and counted once' if tied else 'counted beside the head'}."]
    return lines


def look_line(name: str, look: dict) -> str:
    """A further look at retention (`tunestack.evaluate.looks`): what it drew and what it found."""
    sizes = ", ".join(f"{v} {k}" for k, v in look["sizes"].items() if v)
    return (f"Retention look {look['look']} at {name} (its verdict was inconclusive): the base model and {name} "
            f"scored again on {sizes} ({look['seconds']:.0f} s): {look['outcome']}; {look['reason']}.")


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
