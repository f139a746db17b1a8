"""`sweep/sweep.md` (and the terminal's summary): the trial table, the ablations, the learning curve, the winner."""

from __future__ import annotations

from tunestack.report.blocks import gain, pct, points


def short(params: dict) -> str:
    parts = []
    for key, value in params.items():
        name = key.removeprefix("train.").removeprefix("data.sources.").removeprefix("data.")
        parts.append(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}")
    return ", ".join(parts) or "-"


def trial_lines(trials: list[dict]) -> list[str]:
    lines = ["| trial | kind | settings | ended | dev score | task | format | retention | chosen | rows | time | prepare |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in trials:
        ended = t["state"] + ("" if t["feasible"] or t["state"] != "complete" else " (infeasible)")
        if t["state"] == "pruned" and t.get("reported"):
            ended += f" at checkpoint {t['reported'][-1]['index']}"
        if t.get("retry_of") is not None:
            ended += f" (retry of t{t['retry_of']:03d})"
        score = f"{t['score']:.3f}" if t["score"] is not None else "-"
        seconds = (f"{t['seconds']:.0f} s" if t["seconds"] else "-") + (f" (${t['dollars']:.3f})" if t["dollars"]
                                                                          else "")
        lines.append(f"| {t['name']} | {t['label'] or t['kind']} | {short(t['params'])} | {ended} | {score} | "
                     f"{pct(t['task_accuracy'])} | {pct(t['format_compliance'])} | {pct(t['general_retention'])} | "
                     f"{t['chosen'] or '-'} | {t['train_rows'] or '-'} | {seconds} | {t['prepare'] or '-'} |")
    lines += [f"- {t['name']} failed: {t['failure']}" for t in trials if t["state"] == "fail"]
    lines += [f"- {t['name']} is infeasible: its best checkpoint ({t['chosen']}, shown) fails a floor on the dev split: "
              + "; ".join(t["problems"]) for t in trials if t["state"] == "complete" and not t["feasible"]]
    return lines


def ablation_lines(found: list[dict]) -> list[str]:
    if not found:
        return ["No ablation: the space puts no source or tier in or out (`data.sources.<name>: [in, out]`)."]
    lines = ["What each source or tier adds (the baseline minus the trial without it), on the dev split, in points "
             "with paired 95% intervals:", "",
             "| left out | rows without it | task accuracy | 95% CI | retention | 95% CI |", "|---|---|---|---|---|---|"]
    for a in found:
        e = a.get("effect")
        if not e:
            lines.append(f"| {a['label']} | {a['train_rows'] or '-'} | ({a['state']}) | - | - | - |")
            continue
        lines.append(f"| {a['label']} | {a['train_rows']} of {a['baseline_rows']} | "
                     f"{gain(e['task_accuracy'])} | {points(e['task_accuracy_ci95'])} | "
                     f"{gain(e['general_retention'])} | {points(e['general_retention_ci95'])} |")
    return lines


def curve_lines(curve: dict | None) -> list[str]:
    if not curve:
        return ["No learning curve: it needs the baseline and at least one `sweep.learning_curve` share to finish."]
    lines = ["| rows | share | dev task accuracy | 95% CI |", "|---|---|---|---|"]
    lines += [f"| {p['train_rows']} | {p['share']:.0%} | {pct(p['task_accuracy'])} | "
              f"{pct(p['ci95'][0])}-{pct(p['ci95'][1])} |" for p in curve["points"]]
    return lines + ["", curve["text"].capitalize() + "."]


def sweep_markdown(body: dict) -> str:
    final, ledger, saved = body["finals"], body["ledger"], body["pruning"]
    lines = ["# Sweep", "",
             f"{len(body['trials'])} trials on a dev split of {body['dev_rows']} rows carved from the training rows "
             f"({body['train_pool']} left to train on); {body['prepares']} prepares (the sweep's own, and one per "
             f"distinct trial data section); study in {body['storage']}.", "", "## Trials", "",
             *trial_lines(body["trials"]), "",
             f"Pruned: {saved['pruned']} trial(s), about {saved['seconds_saved']:.0f} s saved against finishing them "
             "at the mean length of the trials that finished.", "", "## Data ablations", "",
             *ablation_lines(body["ablations"]), "", "## Learning curve", "", *curve_lines(body["learning_curve"]),
             "", "## Winner", ""]
    if final.get("finalists"):
        lines += [f"Finalists on the eval set: {', '.join(final['finalists'])}; select chose **{final['chosen']}** "
                  "(see the run's report for its eval and holdout figures)."]
        if final.get("holdout_refused"):
            lines += ["", f"The holdout was not read: {final['holdout_refused']}"]
    else:
        lines += [final.get("note", "no finalist")]
    lines += [f"Ledger ({ledger['ledger']}): {ledger['eval_decisions']} eval-set decision(s) for this sweep "
              f"(one per finalist), {ledger['holdout_reads']} holdout read(s)."]
    return "\n".join(lines) + "\n"
