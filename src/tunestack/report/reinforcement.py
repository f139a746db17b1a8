"""The report's GRPO section: the training reward against the held-out task metric per checkpoint (they must move
together; a reward that climbs while the metric does not is reward hacking), the answers' length, the share of
groups without signal, and the selected checkpoint against the model GRPO started from."""

from __future__ import annotations

from tunestack.report import plots
from tunestack.report.blocks import esc, figure, gain, pct, points, stat, table
from tunestack.report.runfiles import Run
from tunestack.tables import metric_title


def windows(steps: list[dict], marks: list[int]) -> dict[int, dict]:
    """Per checkpoint step, the mean of the reward, the answer length and the share of groups without signal over
    the logged steps since the previous checkpoint.

    >>> logged = [{"step": s, "reward": r, "completions/mean_length": 10, "frac_reward_zero_std": 0.5}
    ...           for s, r in [(1, 1.0), (2, 2.0), (3, 3.0)]]
    >>> windows(logged, [2, 3])[2]["reward"], windows(logged, [2, 3])[3]["reward"]
    (1.5, 3.0)
    """
    out, previous = {}, 0
    for mark in sorted(marks):
        inside = [s for s in steps if previous < s.get("step", 0) <= mark and "reward" in s]
        out[mark] = {name: (sum(float(s[key]) for s in inside if key in s) / len(inside) if inside else None)
                     for name, key in (("reward", "reward"), ("length", "completions/mean_length"),
                                       ("flat", "frac_reward_zero_std"))}
        previous = mark
    return out


def grpo(run: Run) -> str | None:
    train = run["train"] or {}
    if train.get("method") != "grpo" or not run.steps:
        return None
    g = train.get("grpo") or {}
    evaluated = run["evaluate"] or {}
    checkpoints = [m for m in evaluated.get("models") or [] if m.get("kind") == "checkpoint"]
    start = evaluated.get("start")
    key = next(iter((checkpoints[0] if checkpoints else start or {}).get("metrics") or {}), None)
    if key is None:
        return None
    chosen = (run["select"] or {}).get("chosen")
    logged = [s for s in run.steps if "reward" in s]
    per = windows(logged, [m["step"] for m in checkpoints])
    reward, length, flat = (g.get("reward") or {}), (g.get("answer_length") or {}), (g.get("zero_spread_share") or {})
    cards = [stat("training reward", f"{_num(reward.get('first_quarter'))} -> {_num(reward.get('last_quarter'))}",
                  f"mean of the first and last {g.get('steps_per_quarter')} steps"),
             stat("groups without signal", pct(flat.get("all")),
                  f"all {g.get('group_size')} answers scored alike; {pct(flat.get('first_quarter'))} -> "
                  f"{pct(flat.get('last_quarter'))}"),
             stat("answer length", f"{_num(length.get('first_quarter'), 1)} -> {_num(length.get('last_quarter'), 1)}",
                  "tokens, first and last quarter")]
    rows = ([["start (" + str(start.get("path", "")).rsplit("/", 1)[-1] + ")", 0, "-",
              pct(start["metrics"].get(key)), pct(start.get("format_compliance")), "-", "-"]] if start else [])
    rows += [[m["name"], m["step"], _num(per[m["step"]]["reward"]), pct(m["metrics"].get(key)),
              pct(m.get("format_compliance")), _num(per[m["step"]]["length"], 1), pct(per[m["step"]]["flat"])]
             for m in checkpoints]
    marked = ([False] if start else []) + [m["name"] == chosen for m in checkpoints]
    view = [(0, "start", start["metrics"][key], (start.get("metrics_ci95") or {}).get(key), False)] if start else []
    view += [(m["step"], m["name"], m["metrics"][key], (m.get("metrics_ci95") or {}).get(key), m["name"] == chosen)
             for m in checkpoints]
    rewards_text = ", ".join(f"{r['name']} x{r['weight']:g}" for r in g.get("rewards") or [])
    out = [f"<p>GRPO with rewards {esc(rewards_text)}; {esc(g.get('group_size'))} answers per prompt at temperature "
           f"{esc(g.get('temperature'))}, KL coefficient {esc(g.get('kl'))}, answers sampled with "
           f"{esc(g.get('generation'))}. Selection used the task metrics and retention on the eval split, never the "
           f"reward.</p>", f'<div class="stats">{"".join(cards)}</div>',
           table(["model", "step", "training reward (window)", f"eval {metric_title(key)}", "format",
                  "answer length", "groups without signal"], rows, marked),
           figure(plots.rewards([s["step"] for s in logged], [s.get("reward") for s in logged], view,
                                [s.get("completions/mean_length") for s in logged],
                                [s.get("frac_reward_zero_std") for s in logged]),
                  "Left: the reward of the sampled answers per step (orange, right axis: each step faint, the "
                  "trailing mean bold; each step draws other prompts) and the held-out task metric of each "
                  "checkpoint and of the starting model (blue, 95% intervals; the selected one green). Right: mean "
                  "answer length and the share of groups whose answers all scored alike (trailing means).")]
    out.append(against_start(run))
    return "".join(out)


def against_start(run: Run) -> str:
    versus = (run["select"] or {}).get("against_start")
    if not versus or not versus.get("metrics"):
        return ""
    rows = [[m["title"], pct(m["chosen"]), pct(m["start"]), gain(m["difference"]), points(m["ci95"]),
             "-" if m.get("rows") is None else f"{m['better']} / {m['worse']} of {m['rows']}"]
            for m in versus["metrics"].values()]
    return (f"<h3>Against the starting model</h3><p>{esc(versus['chosen'])} against "
            f"<code>{esc(versus['start'])}</code> on the same eval rows (95% paired bootstrap interval of the "
            f"difference, in points). Only the rows where the two differ move the difference; the more of them, "
            f"the wider the interval.</p>"
            + table(["metric", versus["chosen"], "start", "difference (pts)", "95% interval",
                     "rows better / worse"], rows))


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
