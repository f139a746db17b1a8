"""The sections of report.html, one function per stage's files: each returns the section's HTML, or None when the
run lacks what it shows (the page then says which command produces it). `SECTIONS` is their order."""

from __future__ import annotations

from tunestack.report import plots
from tunestack.report.blocks import Html, ci, esc, figure, gain, pct, points, stat, table
from tunestack.report.markdown import reference_lines
from tunestack.report.reinforcement import grpo
from tunestack.report.runfiles import Run
from tunestack.tables import metric_title, show, size, verdict_cell

GENERAL = (("format compliance", "format_compliance"), ("general retention", "general_retention"))


def task_key(row: dict) -> tuple[str, str]:
    """(title, key) of a model row's headline task metric: its first registered metric, else task accuracy."""
    metrics = row.get("metrics") or {}
    if metrics:
        key = next(iter(metrics))
        return metric_title(key), f"metrics.{key}"
    return "task accuracy", "task_accuracy"


def value(row: dict, key: str):
    if key.startswith("metrics."):
        return (row.get("metrics") or {}).get(key.removeprefix("metrics."))
    return row.get(key)


def interval(row: dict, key: str):
    if key.startswith("metrics."):
        return (row.get("metrics_ci95") or {}).get(key.removeprefix("metrics."))
    return row.get(f"{key}_ci95")


def evaluated(run: Run) -> list[dict]:
    """The base model and the checkpoints, in step order (the models selection chose among)."""
    return [m for m in run.models if m.get("kind") in ("base", "checkpoint")]


def delta(new, old) -> Html:
    if new is None or old is None:
        return Html("")
    points = 100 * (new - old)
    return Html(f'<span class="{"up" if points >= 0 else "down"}">{points:+.1f} pts</span>')


def headline(run: Run) -> str | None:
    sel = run["select"]
    if not sel:
        return None
    rows = {m["name"]: m for m in evaluated(run)}
    picked, base = rows.get(sel["chosen"]), rows.get("base")
    out = [f'<p><span class="verdict">Selected: {esc(sel["chosen"])}</span></p><p>{esc(sel["reason"])}.</p>']
    if picked:
        title, key = task_key(picked)
        figures = [(title, key), *GENERAL]
        cards = [stat(t, pct(value(picked, k)), f"base {pct(value(base, k))}" + ci(interval(picked, k)))
                 for t, k in figures] if base else []
        holdout = run["holdout"]
        if holdout and holdout.get("metrics"):
            first = next(iter(holdout["metrics"]))
            cards.append(stat(f"holdout {metric_title(first)}", show(holdout["metrics"][first]),
                              f"{holdout['rows'] if 'rows' in holdout else holdout.get('n')} sealed rows"
                              + ci((holdout.get("metrics_ci95") or {}).get(first))))
        out.append(f'<div class="stats">{"".join(cards)}</div>')
        out.append(table(["figure", sel["chosen"], "base", "change"],
                         [[t, pct(value(picked, k)), pct(value(base, k)) if base else "-",
                           delta(value(picked, k), value(base, k) if base else None)] for t, k in figures]))
    if not (run["holdout"] or {}).get("metrics"):
        out.append('<p class="skipped">The sealed holdout has not been read: <code>tunestack holdout CONFIG</code>'
                   " reads it once, for the selected checkpoint.</p>")
    losers = [t for t in sel.get("table") or [] if t["name"] != sel["chosen"]]
    if losers:
        out.append("<h3>Why the others lost</h3><ul class=why>" + "".join(
            f"<li><b>{esc(t['name'])}</b>: {esc(t['verdict'])}</li>" for t in losers) + "</ul>")
    return "".join(out)


def data(run: Run) -> str | None:
    report = run["data_report"]
    if not report:
        return None
    counts = report.get("counts") or {}
    kinds = list(counts)
    out = ["<p>" + esc(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())) + ". Splits: "
           + esc(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in (report.get("splits") or {}).items())) + ".</p>"]
    sources = report.get("sources") or {}
    if sources:
        out.append("<h3>Rows per source</h3>" + table(
            ["source", *(k.replace("_", " ") for k in kinds)],
            [[name, *(s.get(k, "-") for k in kinds)] for name, s in sources.items()]))
    removed = [("rejected: " + k, n) for k, n in (report.get("rejected_by_kind") or {}).items()]
    removed += [("decontaminated: " + k, n) for k, n in (report.get("decontaminated_by") or {}).items()]
    for kind, r in (report.get("removals") or {}).items():
        evidence = "; ".join(f"{what} {n}" for what, n in r.get("evidence") or [])
        sim = r.get("similarity") or {}
        removed.append((f"{kind} duplicates" + (f" (similarity {sim.get('min')}-{sim.get('max')})" if sim else ""),
                        f"{r.get('count')}" + (f": {evidence}" if evidence else "")))
    if removed:
        out.append("<h3>Removed, by kind</h3>" + table(["kind", "rows"], removed))
    lengths = (report.get("lengths") or {}).get("splits")
    if lengths:
        out.append(figure(plots.lengths(lengths, (report.get("lengths") or {}).get("max_length")),
                          "Token length per split (the tokenizer's count of each rendered row)."))
    for warning in report.get("warnings") or []:
        out.append(f'<p class="down">Warning: {esc(warning)}</p>')
    return "".join(out)


def training(run: Run) -> str | None:
    if not run.steps:
        return None
    steps = [r.get("step") for r in run.steps]
    marks = [(m["step"], m["name"], m["name"] == run.chosen) for m in evaluated(run)
             if m.get("kind") == "checkpoint" and m.get("step") is not None]
    train = run["train"] or {}
    facts = [f"{len(steps)} logged steps"] + [f"{k.replace('_', ' ')} {train[k]}" for k in
                                               ("method", "precision", "train_seconds", "tokens_per_second")
                                               if train.get(k) is not None]
    return (f"<p>{esc(', '.join(facts))}.</p>"
            + figure(plots.training(steps, [r.get("loss") for r in run.steps],
                                    [r.get("learning_rate") for r in run.steps], marks),
                     "Training loss (left axis) and learning rate (right axis) per step; each evaluated checkpoint "
                     "is a vertical line, the selected one green. Loss is not a selection criterion."))


def metrics(run: Run) -> str | None:
    rows = evaluated(run) + [m for m in run.models if m.get("kind") == "reference"]
    if not rows:
        return None
    scores = {t["name"]: t for t in (run["select"] or {}).get("table") or []}
    task = [(metric_title(k), f"metrics.{k}") for k in (rows[0].get("metrics") or {})] or [
        ("task accuracy", "task_accuracy")]
    cols = [*task, *GENERAL, ("choices", "choice_score"), ("probes", "probe_pass_rate"), ("quartz", "quartz_accuracy"),
            ("instructions", "instruction_pass_rate"), ("EOS", "eos_rate")]
    body = [[r["name"] + (" (reference)" if r.get("kind") == "reference" else ""),
             *(pct(value(r, k)) + ci(interval(r, k)) for _, k in cols),
             "-" if r.get("train_loss") is None else f"{r['train_loss']:.3f}",
             f"{scores[r['name']]['score']:.3f}" if r["name"] in scores else "-"] for r in rows]
    out = [table(["model", *(t for t, _ in cols), "train loss", "weighted score"], body,
                 [r["name"] == run.chosen for r in rows])]
    shown = [(t, k) for t, k in cols[:len(task) + 2]]
    series = {t: [value(r, k) for r in rows] for t, k in shown}
    intervals = {t: [interval(r, k) for r in rows] for t, k in shown}
    out.append(figure(plots.metrics([r["name"] for r in rows], series, intervals, run.chosen),
                      "The task metrics, format compliance and general retention of each model; bars are 95% "
                      "intervals over the eval examples; the selected checkpoint is shaded."))
    shares = (run["results"] or {}).get("references") or []  # the selected model against each reference: pass/fail
    out += [f'<p class="{"up" if r["enough"] else "down"}">{esc(line.replace("**", ""))}</p>'
            for r, line in zip(shares, reference_lines(shares))]
    out.append(noise_html(run["select"] or {}))
    return "".join(out)


def noise_html(sel: dict) -> str:
    tie = sel.get("noise")
    if not tie:
        return ('<p>Noise: no paired interval was computed (fewer than two eligible checkpoints, or per-example '
                'scores missing), so the weighted score decided alone.</p>')
    rows = [[name, f"{v['difference']:+.3f}", f"{v['low']:+.3f} to {v['high']:+.3f}",
             "tied" if name in tie["tied"] else "behind beyond noise"] for name, v in tie["intervals"].items()]
    return (f"<h3>Noise</h3><p>{esc(tie['leader'])}'s weighted score minus each other eligible checkpoint's, 95% "
            f"paired bootstrap interval ({esc(tie['draws'])} draws); tied: {esc(', '.join(tie['tied']))}; "
            f"tie-break: {esc(tie['rule'])}.</p>" + table(["checkpoint", "difference", "95% interval", "verdict"], rows))


def pareto(run: Run) -> str | None:
    sel = run["select"]
    rows = {m["name"]: m for m in evaluated(run)}
    if not sel or not sel.get("table") or not rows:
        return None
    title, key = task_key(next(iter(rows.values())))
    points = [{"name": t["name"], "front": t.get("on_pareto_front", False), "eligible": t.get("eligible", True),
               "selected": t["name"] == sel["chosen"], "task": value(rows[t["name"]], key),
               **{k: rows[t["name"]].get(k) for _, k in GENERAL}} for t in sel["table"] if t["name"] in rows]
    panels = [(title, f"{name}", [{**p, "x": p["task"], "y": p[k]} for p in points
                                  if p["task"] is not None and p[k] is not None]) for name, k in GENERAL]
    titles = ", ".join(o.get("title") or o["key"] for o in sel.get("objectives") or [])
    return (f"<p>Pareto front over {esc(titles or 'the objectives')}: <b>{esc(', '.join(sel['pareto_front']))}"
            f"</b>. Filled points are eligible under the floors, hollow ones are excluded; the star is the selected "
            f"checkpoint.</p>" + figure(plots.pareto(panels), "Each model on the task metric against format "
                                                            "compliance (left) and general retention (right)."))


def retention(run: Run) -> str | None:
    rows = [m for m in run.models if m.get("general_by_suite")]
    if not rows:
        return None
    suites = sorted({s for m in rows for s in m["general_by_suite"]})
    body = [[m["name"], *(f"{m['general_by_suite'][s]['score']:.1%} ({m['general_by_suite'][s]['share']:.0%})"
                          if s in m["general_by_suite"] else "-" for s in suites),
             pct(m.get("format_bleed_rate"), 0)] for m in rows]
    series = {s: [(m["general_by_suite"].get(s) or {}).get("share") for m in rows] for s in suites}
    floors = (run["select"] or {}).get("floors") or {}
    floor = floors.get("min_retention")
    verdicts = {t["name"]: t.get("retention_verdicts") for t in (run["select"] or {}).get("table") or []}
    for m, cells in zip(rows, body):
        cells.append(verdict_cell((verdicts.get(m["name"]) or {}).get("overall")))
    return ("<p>General capability per suite: the absolute score, and in brackets its share of the base model's. A "
            "probe or instruction answered in the task's JSON format fails (format bleed). The verdict decides "
            "general retention against select.min_retention with one-sided bounds of the share (pooled over the "
            "suites, paired with the base model item by item; alpha spent over select.retention_looks): pass where "
            "the lower bound clears the floor less select.retention_margin, fail where the upper bound is below it, "
            "inconclusive between (an inconclusive choice is scored again on more items: see the selection); a suite "
            f"decisively under select.min_suite_retention ({pct(floors.get('min_suite_retention'), 0)}) fails "
            "the checkpoint on its own.</p>"
            + table(["model", *suites, "format bleed", "retention verdict"], body,
                    [m["name"] == run.chosen for m in rows])
            + figure(plots.bars([m["name"] for m in rows], series, "share of the base model's score", floor),
                     "Each suite's score as a share of the base model's; the dashed line is select.min_retention."))


def assess(run: Run) -> str | None:
    body = run["assess"]
    if not body:
        return None
    fails, figures = body.get("failures") or {}, body.get("consistency") or {}
    out = [f'<p><span class="verdict">{esc(body["verdict"])}</span> for {esc(body["model"]["name"])}: accuracy '
           f'{pct(body["accuracy"])}{ci(body.get("accuracy_ci95"))} on {esc(body["sample"]["n"])} examples.</p>',
           "<ul class=why>" + "".join(f"<li>{esc(r)}</li>" for r in body.get("reasons") or []) + "</ul>"]
    if fails.get("by_label"):
        out.append("<h3>Failures</h3>" + table(["failure", "category", "count", "share of failures"],
                                               [[k, v["category"], v["count"], pct(v["share"])]
                                                for k, v in fails["by_label"].items()]))
    if figures.get("examined"):
        classes = [c for c in ("systematic", "isolated", "random") if c in figures]
        out.append(f"<h3>Systematic or random</h3><p>{esc(figures['examined'])} failing examples answered "
                   f"{esc(figures.get('samples'))} more times each.</p>"
                   + table(["class", "examples", "share"], [[c, figures[c], pct(figures.get(c + "_share"))]
                                                             for c in classes]))
    size_ = body.get("training_set") or {}
    if size_.get("suggested"):
        out.append(f"<p>Suggested training set: about {size_['suggested']:,} reviewed examples.</p>")
    return "".join(out)


def judge(run: Run) -> str | None:
    cal = run["calibration"]
    if not cal:
        return None
    from tunestack.judge.report import NAMES, verdict

    report = cal.get("agreement") or {}
    stats = [[NAMES.get(k, k), "n/a" if v["value"] is None else f"{v['value']:.3f}",
              f"{v['ci95'][0]:.3f} to {v['ci95'][1]:.3f}" if v.get("ci95") else "n/a"]
             for k, v in (report.get("metrics") or {}).items()]
    scored = [i for i in cal.get("items") or [] if i.get("judge") is not None]
    out = [f"<p>Judge {esc(cal['judge']['model'])}, rubric {esc(cal['judge']['rubric'])}: {esc(cal['n_scored'])} "
           f"of {esc(cal['n_items'])} answers scored. <b>{esc(verdict(cal))}</b>.</p>",
           table(["agreement statistic", "value", "95% interval"], stats)]
    if scored:
        out.append(figure(plots.calibration([i["human"] for i in scored], [i["judge"] for i in scored]),
                          "Judge score against human score, one point per answer (larger where several coincide); "
                          "the dashed line is perfect agreement."))
    return "".join(out)


def quantize(run: Run) -> str | None:
    q = run["quantize"]
    if not q or not q.get("candidates"):
        return None
    ref, cands = q["reference"], q["candidates"]
    rows = [[c["name"], c.get("method", "-"), c.get("bits", "-"), pct(c["kept"].get("task_accuracy")),
             pct(c["kept"].get("format_compliance")),
             pct(c["general_retention"]) + ci(c.get("general_retention_ci95")), pct(c.get("agreement"), 0),
             size(c["sizes"]["disk_bytes"]) if c.get("sizes") else "-",
             verdict_cell((c.get("retention_verdicts") or {}).get("overall")),
             "chosen" if c["name"] == q["chosen"] else ("passes" if c.get("passes") else "; ".join(c["failures"]))]
            for c in cands]
    floor = ((run["select"] or {}).get("floors") or {}).get("min_retention")
    return (f"<p>Chosen: <b>{esc(q['chosen'] or 'none')}</b> ({esc(q.get('path_ran') or '')}). Each candidate's "
            f"task and format figures are a share of the export's (task {pct(ref.get('task_accuracy'))}, format "
            f"{pct(ref.get('format_compliance'))}, {size(ref['sizes']['disk_bytes'])} on disk); it must keep "
            f"{pct(q.get('min_retention'), 0)} of them.</p>"
            + table(["candidate", "method", "bits", "task kept", "format kept", "retention (95% CI)", "agreement",
                     "on disk", "retention verdict", "gate"], rows, [c["name"] == q["chosen"] for c in cands])
            + figure(plots.retention_intervals([c["name"] for c in cands], [c["general_retention"] for c in cands],
                                               [c.get("general_retention_ci95") for c in cands], q["chosen"], floor,
                                               ref.get("general_retention")),
                     "General retention of each candidate with its 95% interval; the dashed line is the floor, the "
                     "dotted one the export's; the star is the chosen candidate."))


def served(run: Run) -> str | None:
    s = run["served"]
    if not s:
        return None
    rows = [[k.replace("_", " "), pct(c.get("served")), pct(c.get("offline")),
             f"{100 * c['drop_ci95'][0]:+.1f} to {100 * c['drop_ci95'][1]:+.1f} pts" if c.get("drop_ci95") else "-",
             "yes" if c.get("beyond_noise") else "no"] for k, c in (s.get("comparison") or {}).items()]
    out = [f"<p>{esc(s['model'])} on the {esc(s['backend'])} server ({esc(s.get('dtype'))}): "
           f"<b>{esc(s['identical'])} of {esc(s['compared'])}</b> eval answers identical to offline evaluation of "
           f"the same weights (agreement {pct(s.get('agreement'), 0)}).</p>",
           table(["figure", "served", "offline", "offline minus served (95% CI)", "beyond noise"], rows)]
    if s.get("quartz_skipped"):
        out.append(f"<p class=skipped>Quartz skipped through the endpoint: {esc(s['quartz_skipped'])}.</p>")
    return "".join(out)


def cost(run: Run) -> str | None:
    c = run["cost"]
    if not c:
        return None
    outputs = c.get("outputs") or {}

    def fig(key: str) -> str:
        o = outputs.get(key) or {}
        return money(o.get("value"), o.get("unit", ""))

    keys = ("investment", "serving_monthly", "api_monthly", "saving_monthly", "payback_months", "break_even_requests")
    cards = "".join(stat(k.replace("_", " "), fig(k), (outputs.get(k) or {}).get("note", "")) for k in keys[:5])
    out = [f"<p>Against {esc(c.get('api'))} over {esc(c.get('horizon_months'))} months; training on "
           f"{esc((c.get('gpus') or {}).get('training'))}, serving on {esc((c.get('gpus') or {}).get('serving'))}."
           f"</p><div class=stats>{cards}</div>"]
    cum = c.get("cumulative") or {}
    if cum.get("months"):
        out.append(figure(plots.cost(cum["months"], cum["self_hosted"], cum["api"],
                                     (outputs.get("payback_months") or {}).get("value")),
                          "Cumulative cost: the one-time investment plus serving, against paying the API."))
    out.append(table(["figure", "value", "source", "note"], [[k.replace("_", " "), fig(k), o.get("source", ""),
                                                              o.get("note", "")] for k, o in outputs.items()]))
    out += [f"<p class=skipped>{esc(note)}</p>" for note in c.get("notes") or []]
    return "".join(out)


def money(v, unit: str) -> str:
    """A cost output in its unit: dollars with cents, counts without decimals.

    >>> money(73.0, "$/month"), money(0.0342, "$"), money(104285.7, "requests/month"), money(None, "$")
    ('$73.00/month', '$0.034', '104,286 requests/month', '-')
    """
    if v is None:
        return "-"
    if unit.startswith("$"):
        return (f"${v:,.2f}" if abs(v) >= 1 or v == 0 else f"${v:.2g}") + unit[1:]
    if unit in ("months", "GPU-hours"):
        return f"{v:.2g} {unit}"
    return f"{v:,.0f} {unit}".strip()


def sweep(run: Run) -> str | None:
    """A sweep's trials, data ablations and learning curve (`sweep/sweep.json`, in a sweep's own run folder)."""
    body = run["sweep"]
    if not body:
        return None
    trials, final, ledger = body["trials"], body.get("finals") or {}, body.get("ledger") or {}
    out = [f"<p>{len(trials)} trials decided on a dev split of {body['dev_rows']} rows carved from the training rows; "
           f"{body['prepares']} prepares; {body['pruning']['pruned']} trial(s) pruned, about "
           f"{body['pruning']['seconds_saved']:.0f} s saved. Finalists on the eval set: "
           f"{esc(', '.join(final.get('finalists') or []) or 'none')}; winner <b>{esc(final.get('chosen') or '-')}</b>. "
           f"The ledger holds {ledger.get('eval_decisions', 0)} eval-set decision(s) for this sweep (one per finalist) "
           f"and {ledger.get('holdout_reads', 0)} holdout read(s).</p>"]
    header = ["trial", "kind", "settings", "ended", "dev score", "task", "format", "retention", "chosen", "rows",
              "time"]
    cells = [[t["name"], t["label"] or t["kind"], ", ".join(f"{k.split('.')[-1]} {setting(v)}" for k, v in
                                                           t["params"].items()),
              t["state"] + ("" if t["feasible"] or t["state"] != "complete" else " (infeasible)"),
              f"{t['score']:.3f}" if t["score"] is not None else "-", pct(t["task_accuracy"]),
              pct(t["format_compliance"]), pct(t["general_retention"]), t["chosen"] or "-", t["train_rows"] or "-",
              (f"{t['seconds']:.0f} s" if t["seconds"] else "-") + (f" (${t['dollars']:.3f})" if t.get("dollars")
                                                                    else "")] for t in trials]
    winner = (final.get("chosen") or "").split("-")[0]  # tNNN-step-NNNNNN: the trial it came from
    out.append("<h3>Trials</h3>" + table(header, cells, [t["name"] == winner for t in trials]))
    done = [a for a in body.get("ablations") or [] if a.get("effect")]
    if done:
        labels = [a["label"] for a in done]
        series = {key.replace("_", " "): ([a["effect"][key] for a in done], [a["effect"][f"{key}_ci95"] for a in done])
                  for key in ("task_accuracy", "general_retention")}
        out.append("<h3>Data ablations</h3>" + figure(plots.effects(labels, series), "What each source or tier adds on "
                   "the dev split: the baseline minus the trial without it, in points, with paired 95% intervals."))
        out.append(table(["left out", "rows without it", "task accuracy", "95% CI", "retention", "95% CI"],
                         [[a["label"], f"{a['train_rows']} of {a['baseline_rows']}",
                           gain(a["effect"]["task_accuracy"]), points(a["effect"]["task_accuracy_ci95"]),
                           gain(a["effect"]["general_retention"]), points(a["effect"]["general_retention_ci95"])]
                          for a in done]))
    curve = body.get("learning_curve")
    if curve:
        dots = curve["points"]
        out.append("<h3>Learning curve</h3>" + figure(
            plots.learning_curve([p["train_rows"] for p in dots], [p["task_accuracy"] for p in dots],
                                 [p["ci95"] for p in dots], curve["per_doubling"]),
            esc(curve["text"][0].upper() + curve["text"][1:]) + "."))
    return "".join(out)


def setting(value) -> str:
    """A trial's setting as the table shows it.

    >>> setting(0.0025513), setting("out"), setting(16)
    ('0.00255', 'out', '16')
    """
    return f"{value:.3g}" if isinstance(value, float) else str(value)


SECTIONS = [
    ("headline", "Headline", "tunestack select CONFIG", headline),
    ("sweep", "Sweep", "tunestack sweep CONFIG", sweep),
    ("data", "Data", "tunestack prepare CONFIG", data),
    ("training", "Training", "tunestack train CONFIG", training),
    ("grpo", "Rewards (GRPO)", "tunestack train CONFIG (train.method: grpo)", grpo),
    ("metrics", "Metrics per checkpoint", "tunestack evaluate CONFIG", metrics),
    ("pareto", "Pareto front", "tunestack select CONFIG", pareto),
    ("retention", "General retention by suite", "tunestack evaluate CONFIG", retention),
    ("assess", "Assessment", "tunestack assess CONFIG", assess),
    ("judge", "Judge calibration", "tunestack judge calibrate CONFIG --human FILE", judge),
    ("quantize", "Quantization", "tunestack quantize CONFIG (quantize.enabled: true)", quantize),
    ("served", "Served model", "tunestack serve CONFIG --evaluate", served),
    ("cost", "Cost and payback", "tunestack cost CONFIG", cost),
]
"""(anchor, title, the command that produces it, builder), in page order."""
