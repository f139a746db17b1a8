"""The judge calibration as text: the terminal summary and `calibration.md`. Pure: formats a calibration record."""

from __future__ import annotations

NAMES = {"spearman": "Spearman rho", "kendall": "Kendall tau-b", "pearson": "Pearson r",
         "kappa": "Cohen's kappa (quadratic)"}


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(entry: dict) -> str:
    ci = entry.get("ci95")
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "n/a"


def _cost(usd: float | None) -> str:
    return "not priced (set judge.price_input_per_m and price_output_per_m)" if usd is None else f"${usd:.4f}"


def verdict(calibration: dict) -> str:
    """One line: the rule, the figure it compared, and whether the judge counts in selection."""
    rule, report = calibration["rule"], calibration["agreement"]
    if report is None:
        return f"too few answers scored ({calibration['n_scored']}): the judge does NOT count in selection"
    entry = report["metrics"][rule["metric"]]
    if rule["on"] == "lower_bound":
        what, value = f"{rule['metric']} 95% lower bound", entry["ci95"][0] if entry["ci95"] else None
    else:
        what, value = f"{rule['metric']} estimate", entry["value"]
    relation = ">=" if calibration["agreement_ok"] else "<"
    counts = "counts" if calibration["agreement_ok"] else "does NOT count"
    return f"{what} {_num(value)} {relation} threshold {rule['threshold']:g}: the judge {counts} in selection"


def summary_lines(calibration: dict) -> list[str]:
    """Header, verdict, one line per statistic, then usage: for the terminal."""
    judge, usage = calibration["judge"], calibration["usage"]
    lines = [f"judge {judge['model']} at {judge['base_url']}, rubric {judge['rubric']}: {calibration['n_items']} "
             f"answers, {calibration['n_scored']} scored, {calibration['n_failed']} unreadable",
             verdict(calibration)]
    report = calibration["agreement"]
    for name, entry in (report["metrics"].items() if report else []):
        lines.append(f"  {NAMES[name]:<26} {_num(entry['value'])}  95% CI {_interval(entry)}")
    lines.append(f"tokens: {usage['prompt_tokens']:,} in, {usage['completion_tokens']:,} out; cost "
                 f"{_cost(usage['cost_usd'])}; {usage['requests']} requests, {usage['cache_hits']} cache hits, "
                 f"{_retries(usage)}")
    return lines


def _retries(usage: dict) -> str:
    by_reason = ", ".join(f"{reason}: {count}" for reason, count in sorted(usage["retries_by_reason"].items()))
    return f"{usage['retries']} retries" + (f" ({by_reason})" if by_reason else "")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def calibration_markdown(calibration: dict) -> str:
    judge, usage, report = calibration["judge"], calibration["usage"], calibration["agreement"]
    human = calibration.get("human_file", {})
    out = ["# Judge calibration", "",
           f"Judge `{judge['model']}` at `{judge['base_url']}`, rubric `{judge['rubric']}`, against the human scores "
           f"in `{human.get('path', '?')}`: {calibration['n_items']} answers, {calibration['n_scored']} scored by the "
           f"judge; unreadable replies: {calibration['n_failed']} (left out of the statistics, listed below).", "",
           f"**{verdict(calibration)}.**", ""]
    if report:
        out += ["## Agreement", "",
                f"Percentile bootstrap, {report['resamples']} resamples, seed {report['seed']}.", "",
                "| statistic | value | 95% interval |", "|---|---|---|"]
        out += [f"| {NAMES[name]} | {_num(e['value'])} | {_interval(e)} |" for name, e in report["metrics"].items()]
        out += ["", "## Human score (rows) by judge score (columns)", ""]
        values = [f"{v:g}" for v in report["values"]]
        out += ["| human \\ judge | " + " | ".join(values) + " |", "|---" * (len(values) + 1) + "|"]
        out += [f"| {v} | " + " | ".join(str(c) for c in row) + " |" for v, row in zip(values, report["table"])]
    out += ["", "## Usage", "", "| requests | cache hits | retries | input tokens | output tokens | cost |",
            "|---|---|---|---|---|---|",
            f"| {usage['requests']} | {usage['cache_hits']} | {_retries(usage)} | {usage['prompt_tokens']:,} | "
            f"{usage['completion_tokens']:,} | {_cost(usage['cost_usd'])} |"]
    failures = [item for item in calibration["items"] if item["judge"] is None]
    if failures:
        out += ["", "## Unreadable judge replies", "", "| id | line | problem | reply |", "|---|---|---|---|"]
        out += [f"| {_cell(i['id'])} | {i['line']} | {_cell(i['error'])} | {_cell(i['raw'][:300])} |"
                for i in failures]
    out += ["", "## Scores side by side", "", "| id | human | judge | judge's reason |", "|---|---|---|---|"]
    out += [f"| {_cell(i['id'])} | {i['human']:g} | {i['judge'] if i['judge'] is not None else 'unreadable'} | "
            f"{_cell(i['reason'])} |" for i in calibration["items"]]
    return "\n".join(out) + "\n"
