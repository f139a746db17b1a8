"""The report's figures, drawn with matplotlib and returned as inline SVG text (no file, no URL), so that
report.html is one self-contained file. Each function takes plain data read from the run directory.

Matplotlib is imported here only, and only when a figure is drawn: `tunestack.report` stays light.
"""

from __future__ import annotations

import io
import re

INK, MUTED, GRID = "#1f2933", "#6b7785", "#e4e7eb"
ACCENT, SECOND, GOOD, BAD, EXTRA = "#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed"
PALETTE = [ACCENT, SECOND, GOOD, EXTRA, "#0891b2", "#db2777", "#65a30d", "#475569"]
WIDTH = 7.2
"""Inches at 96 dpi: about 690 px, the text column of the page."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"], "font.size": 9, "svg.fonttype": "none",
        "axes.edgecolor": MUTED, "axes.labelcolor": INK, "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.color": GRID, "grid.linewidth": 0.8, "axes.axisbelow": True,
        "xtick.color": MUTED, "ytick.color": MUTED, "legend.frameon": False, "figure.dpi": 96,
    })
    return plt


def figure(height: float = 3.0, ncols: int = 1):
    plt = _pyplot()
    fig, axes = plt.subplots(1, ncols, figsize=(WIDTH, height))
    return fig, axes


def to_svg(fig, name: str) -> str:
    """The figure as an `<svg>` element sized by the page (its viewBox kept). The hash salt makes the ids of one
    figure's clip paths differ from another's in the same page; the XML prolog, DOCTYPE and metadata go (the DOCTYPE
    names a URL, and the page needs none)."""
    plt = _pyplot()
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": name}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r"\1", text, count=1)
    return text.replace("<svg ", f'<svg class="plot" role="img" aria-label="{name}" ', 1)


def _percent_axis(ax, axis: str = "y") -> None:
    from matplotlib.ticker import PercentFormatter

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0, decimals=None))


def lengths(splits: dict[str, dict], max_length: int | None) -> str:
    """Token length per split from the data report's summary: the min-max range, the p50-p90 box, p99 and mean (an
    empty split, such as no holdout, is left out)."""
    splits = {name: s for name, s in splits.items() if s.get("count")}
    fig, ax = figure(1.0 + 0.45 * len(splits))
    for i, (name, s) in enumerate(splits.items()):
        ax.hlines(i, s["min"], s["max"], color=MUTED, linewidth=1.2)
        ax.barh(i, s["p90"] - s["p50"], left=s["p50"], height=0.45, color=ACCENT, alpha=0.85)
        ax.plot([s["p99"]], [i], "|", color=INK, markersize=12)
        ax.plot([s["mean"]], [i], "o", color="white", markeredgecolor=INK, markersize=5)
        ax.annotate(f"n={s['count']}", (s["max"], i), xytext=(6, 0), textcoords="offset points", va="center",
                    color=MUTED)
    if max_length and max_length <= 2 * max(s["max"] for s in splits.values()):
        ax.axvline(max_length, color=BAD, linestyle="--", linewidth=1)
        ax.annotate("max_length", (max_length, len(splits) - 0.5), color=BAD, ha="right", fontsize=8)
    ax.set_yticks(range(len(splits)), list(splits))
    ax.set_ylim(-0.6, len(splits) - 0.4)
    ax.set_xlabel("tokens per row: line min-max, box p50-p90, tick p99, dot mean")
    return to_svg(fig, "token lengths per split")


def training(steps: list[int], losses: list[float | None], rates: list[float | None],
             checkpoints: list[tuple[int, str, bool]]) -> str:
    """Training loss and learning rate against step, each checkpoint a vertical line, the selected one emphasised."""
    fig, ax = figure(3.0)
    pairs = [(s, v) for s, v in zip(steps, losses) if v is not None]
    ax.plot([s for s, _ in pairs], [v for _, v in pairs], color=ACCENT, linewidth=1.6, label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss", color=ACCENT)
    right = ax.twinx()
    right.grid(False)
    right.spines["right"].set_visible(True)
    pairs = [(s, v) for s, v in zip(steps, rates) if v is not None]
    right.plot([s for s, _ in pairs], [v for _, v in pairs], color=SECOND, linewidth=1.2, label="learning rate")
    right.set_ylabel("learning rate", color=SECOND)
    right.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    for step, name, selected in checkpoints:
        ax.axvline(step, color=GOOD if selected else MUTED, linestyle="-" if selected else ":",
                   linewidth=1.6 if selected else 1)
        ax.annotate(name + (" (selected)" if selected else ""), (step, 0.03), xycoords=("data", "axes fraction"),
                    rotation=90, ha="right", va="bottom", fontsize=7.5, color=GOOD if selected else MUTED)
    lines = ax.get_lines()[:1] + right.get_lines()[:1]
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    return to_svg(fig, "training loss and learning rate")


def metrics(names: list[str], series: dict[str, list[float | None]], intervals: dict[str, list],
            selected: str | None) -> str:
    """Each metric (a share) per model, in order, with its 95% interval where the evaluation computed one."""
    fig, ax = figure(3.2)
    x = list(range(len(names)))
    for i, (title, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        pts = [(j, v) for j, v in zip(x, values) if v is not None]
        ax.plot([j for j, _ in pts], [v for _, v in pts], "o-", color=color, label=title, linewidth=1.5,
                markersize=4)
        for j, ci in zip(x, intervals.get(title) or []):
            if ci:
                ax.vlines(j + 0.04 * (i - len(series) / 2), ci[0], ci[1], color=color, alpha=0.45, linewidth=3)
    if selected in names:
        ax.axvspan(names.index(selected) - 0.3, names.index(selected) + 0.3, color=GOOD, alpha=0.12)
        ax.annotate("selected", (names.index(selected), 1.0), xycoords=("data", "axes fraction"), ha="center",
                    va="bottom", color=GOOD, fontsize=8)
    ax.set_xticks(x, names, rotation=15 if len(names) > 5 else 0)
    _percent_axis(ax)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14 if len(names) <= 5 else -0.22), ncol=4)
    return to_svg(fig, "metrics per checkpoint")


def pareto(panels: list[tuple[str, str, list[dict]]]) -> str:
    """Each model on two objectives per panel (x title, y title, points): the Pareto front joined, ineligible
    models hollow, the selected one starred. A point: name, x, y, front, eligible, selected."""
    fig, axes = figure(3.3, ncols=len(panels))
    for ax, (x_title, y_title, points) in zip(axes if len(panels) > 1 else [axes], panels):
        front = sorted((p for p in points if p["front"]), key=lambda p: p["x"])
        if len(front) > 1:
            ax.plot([p["x"] for p in front], [p["y"] for p in front], color=ACCENT, alpha=0.4, linewidth=1.2,
                    zorder=1)
        for p in points:
            color = GOOD if p["selected"] else (ACCENT if p["front"] else MUTED)
            ax.scatter([p["x"]], [p["y"]], s=150 if p["selected"] else 45, marker="*" if p["selected"] else "o",
                       facecolors=color if p["eligible"] else "white", edgecolors=color, linewidths=1.4, zorder=2)
            ax.annotate(p["name"], (p["x"], p["y"]), xytext=(5, 4), textcoords="offset points", fontsize=7.5,
                        color=INK)
        ax.set_xlabel(x_title)
        ax.set_ylabel(y_title)
        _percent_axis(ax, "x")
        _percent_axis(ax, "y")
        ax.margins(0.18)
    fig.tight_layout()
    return to_svg(fig, "Pareto front")


def bars(groups: list[str], series: dict[str, list[float | None]], title: str, floor: float | None = None) -> str:
    """Grouped horizontal bars of shares: one group per entry of `groups`, one bar per series."""
    n = max(len(series), 1)
    fig, ax = figure(0.8 + 0.32 * len(groups) * n)
    height = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        ys = [g + (i - (n - 1) / 2) * height for g in range(len(groups))]
        ax.barh(ys, [v or 0 for v in values], height=height * 0.9, color=PALETTE[i % len(PALETTE)], label=name)
    if floor is not None:
        ax.axvline(floor, color=BAD, linestyle="--", linewidth=1)
    ax.set_yticks(range(len(groups)), groups)
    ax.invert_yaxis()
    _percent_axis(ax, "x")
    ax.set_xlabel(title)
    if n > 1:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / len(groups) - 0.12), ncol=n, fontsize=8)
    return to_svg(fig, title)


def retention_intervals(names: list[str], values: list[float], intervals: list[list | None], chosen: str | None,
                        floor: float | None, reference: float | None) -> str:
    """Each quantization candidate's general retention with its 95% interval; the floor and the export's."""
    fig, ax = figure(0.9 + 0.42 * len(names))
    for i, (name, value, ci) in enumerate(zip(names, values, intervals)):
        color = GOOD if name == chosen else ACCENT
        if ci:
            ax.hlines(i, ci[0], ci[1], color=color, linewidth=2.2, alpha=0.6)
        ax.plot([value], [i], "*" if name == chosen else "o", color=color, markersize=11 if name == chosen else 6)
    if floor is not None:
        ax.axvline(floor, color=BAD, linestyle="--", linewidth=1, label=f"floor {floor:.0%}")
    if reference is not None:
        ax.axvline(reference, color=MUTED, linestyle=":", linewidth=1, label=f"export {reference:.1%}")
    ax.set_yticks(range(len(names)), [n + (" (chosen)" if n == chosen else "") for n in names])
    ax.invert_yaxis()
    _percent_axis(ax, "x")
    ax.set_xlabel("general retention, 95% interval")
    ax.legend(loc="lower right", fontsize=8)
    return to_svg(fig, "quantization retention")


def calibration(human: list[float], judge: list[float]) -> str:
    """Judge score against human score, each answer a point (identical pairs drawn larger), and the diagonal."""
    from collections import Counter

    counts = Counter(zip(human, judge))
    fig, ax = figure(3.4)
    ax.scatter([h for h, _ in counts], [j for _, j in counts], s=[25 + 25 * c for c in counts.values()],
               color=ACCENT, alpha=0.6, edgecolors="white")
    low, high = min(human + judge), max(human + judge)
    ax.plot([low, high], [low, high], color=MUTED, linestyle="--", linewidth=1)
    ax.set_xlabel("human score")
    ax.set_ylabel("judge score")
    ax.set_aspect("equal", adjustable="datalim")
    return to_svg(fig, "judge against human scores")


def cost(months: list[float], self_hosted: list[float], api: list[float], payback: float | None) -> str:
    """Cumulative cost, self-hosted against the API, with the payback month marked."""
    fig, ax = figure(3.0)
    ax.plot(months, self_hosted, color=ACCENT, linewidth=1.8, label="fine-tuned, self-hosted")
    if len(api) == len(months):  # empty when no API is configured to compare with
        ax.plot(months, api, color=SECOND, linewidth=1.8, label="API")
    if payback is not None and months and payback <= months[-1]:
        ax.axvline(payback, color=GOOD, linestyle="--", linewidth=1)
        ax.annotate(f"payback {payback:.2g} months", (payback, 0.95), xycoords=("data", "axes fraction"),
                    xytext=(5, 0), textcoords="offset points", color=GOOD, fontsize=8)
    ax.set_xlabel("months")
    ax.set_ylabel("cumulative cost ($)")
    ax.legend(loc="upper left", bbox_to_anchor=(0.02, 0.9))
    return to_svg(fig, "cumulative cost")


def learning_curve(rows: list[int], values: list[float], intervals: list[list], per_doubling: float | None) -> str:
    """Task accuracy on the dev split against training rows (log scale), each point with its 95% interval, and the
    fitted trend (accuracy = a + b log2 rows)."""
    import numpy as np

    fig, ax = figure(3.0)
    low = [v - ci[0] for v, ci in zip(values, intervals)]
    high = [ci[1] - v for v, ci in zip(values, intervals)]
    ax.errorbar(rows, values, yerr=[low, high], fmt="o", color=ACCENT, capsize=4, label="dev task accuracy, 95% CI")
    if per_doubling is not None and len(rows) > 1:
        x = np.log2(rows)
        grid = np.linspace(x.min(), x.max() + 1, 50)
        ax.plot(2 ** grid, np.mean(values) + per_doubling * (grid - x.mean()), color=MUTED, linestyle="--",
                linewidth=1, label=f"trend: {100 * per_doubling:+.1f} pts per doubling")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training rows")
    _percent_axis(ax)
    ax.legend(loc="lower right", fontsize=8)
    return to_svg(fig, "learning curve")


def effects(labels: list[str], series: dict[str, tuple[list[float], list[list | None]]]) -> str:
    """Differences in points with their 95% intervals, one row per label and one marker per series (a forest plot:
    what each source or tier adds)."""
    fig, ax = figure(0.9 + 0.45 * len(labels) * max(len(series), 1))
    n = max(len(series), 1)
    for i, (name, (values, intervals)) in enumerate(series.items()):
        ys = [g + (i - (n - 1) / 2) * 0.3 for g in range(len(labels))]
        for y, v, ci in zip(ys, values, intervals):
            if ci:
                ax.hlines(y, 100 * ci[0], 100 * ci[1], color=PALETTE[i % len(PALETTE)], linewidth=2.2, alpha=0.6)
        ax.plot([100 * v for v in values], ys, "o", color=PALETTE[i % len(PALETTE)], label=name)
    ax.axvline(0, color=MUTED, linewidth=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("points it adds (the baseline minus the trial without it), 95% interval")
    ax.legend(loc="lower right", fontsize=8)
    return to_svg(fig, "ablations")


def rolling(values: list[float | None], window: int) -> list[float | None]:
    """The trailing mean over `window` values (None where a value is missing), to read a noisy per-step series.

    >>> rolling([1, 2, 3, None, 5], 2)
    [1.0, 1.5, 2.5, None, 5.0]
    """
    out = []
    for k, v in enumerate(values):
        seen = [x for x in values[max(0, k - window + 1): k + 1] if x is not None]
        out.append(None if v is None else sum(seen) / len(seen))
    return out


def rewards(steps: list[int], reward: list[float | None], points: list[tuple[int, str, float, list | None, bool]],
            lengths: list[float | None], flat: list[float | None]) -> str:
    """GRPO's view against reward hacking. Left: the training reward per step (right axis: each step's, faint, and
    its trailing mean) and, per model, the task metric on the held-out eval split with its 95% interval (left axis:
    `points` as (step, name, value, interval, selected), the starting model at step 0): the two must move together.
    Right: the sampled answers' mean length and the share of groups whose answers all scored alike (no signal), as
    trailing means."""
    fig, (ax, side) = figure(3.4, ncols=2)
    fig.subplots_adjust(wspace=0.55)
    window = max(1, len(steps) // 8)
    right = ax.twinx()
    right.grid(False)
    right.spines["right"].set_visible(True)
    pairs = [(s, v) for s, v in zip(steps, reward) if v is not None]
    right.plot([s for s, _ in pairs], [v for _, v in pairs], color=SECOND, linewidth=0.8, alpha=0.35)
    smooth = [(s, v) for s, v in zip(steps, rolling(reward, window)) if v is not None]
    right.plot([s for s, _ in smooth], [v for _, v in smooth], color=SECOND, linewidth=1.8,
               label=f"training reward ({window}-step mean)")
    right.set_ylabel("reward", color=SECOND)
    for step, name, v, ci, selected in points:
        color = GOOD if selected else ACCENT
        if ci:
            ax.vlines(step, ci[0], ci[1], color=color, linewidth=3, alpha=0.4)
        ax.plot([step], [v], "o", color=color)
        if selected or name == "start":
            ax.annotate(name, (step, v), textcoords="offset points", xytext=(4, -12), fontsize=7.5, color=color)
    if points:
        ax.plot([p[0] for p in points], [p[2] for p in points], color=ACCENT, linewidth=1.2,
                label="held-out task metric (greedy)")
    _percent_axis(ax)
    ax.set_xlabel("step")
    lines = ax.get_lines()[-1:] + right.get_lines()[1:2]
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1,
              fontsize=8)
    pairs = [(s, v) for s, v in zip(steps, rolling(lengths, window)) if v is not None]
    side.plot([s for s, _ in pairs], [v for _, v in pairs], color=EXTRA, linewidth=1.5, label="mean answer length")
    side.set_ylabel("tokens", color=EXTRA)
    side.set_xlabel("step")
    share = side.twinx()
    share.grid(False)
    share.spines["right"].set_visible(True)
    pairs = [(s, v) for s, v in zip(steps, rolling(flat, window)) if v is not None]
    share.plot([s for s, _ in pairs], [v for _, v in pairs], color=MUTED, linewidth=1.5, linestyle="--",
               label="groups without signal")
    share.set_ylim(0, 1)
    _percent_axis(share)
    lines = side.get_lines()[:1] + share.get_lines()[:1]
    side.legend(lines, [line.get_label() for line in lines], loc="upper center", bbox_to_anchor=(0.5, -0.16),
                ncol=1, fontsize=8)
    return to_svg(fig, "reward against the held-out metric")
