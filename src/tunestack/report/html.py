"""`report.html`: one self-contained page for a run, read from its run directory alone.

    write_html(runs/<name>) -> runs/<name>/report.html

The page inlines its CSS and its figures (SVG drawn by `plots.py`), names no URL and needs no script, so it opens
offline and can be mailed as one file. Each section is built from one stage's files (`sections.py`); a section whose
stage did not run is one line saying which command produces it. Every text taken from the run is escaped.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tunestack.errors import StageError
from tunestack.rundir import read_json, write_text

FILES = {
    "results": "results.json", "data_report": "prepare/data_report.json", "select": "select/manifest.json",
    "evaluate": "evaluate/manifest.json", "train": "train/manifest.json", "quantize": "quantize/candidates.json",
    "served": "serve/served.json", "cost": "cost/cost.json", "assess": "assess/assess.json",
    "calibration": "judge/calibration.json", "holdout": "holdout/manifest.json", "export": "export/manifest.json",
}
"""What the page reads, each a JSON file of the run directory; a missing one leaves its section out."""


@dataclass
class Run:
    """Everything the page shows, as read from the run directory (None where a stage did not run)."""

    root: Path
    files: dict[str, dict | None]
    steps: list[dict] = field(default_factory=list)
    """The rows of train/metrics.jsonl."""
    config_text: str | None = None

    def __getitem__(self, key: str) -> dict | None:
        return self.files.get(key)

    @property
    def models(self) -> list[dict]:
        """The results' model rows (base, checkpoints, references, quantized, served), else the evaluate stage's."""
        if self["results"]:
            return self["results"].get("models") or []
        from tunestack.report import model_rows

        evaluated = self["evaluate"] or {}
        chosen = (self["select"] or {}).get("chosen")
        return model_rows((evaluated.get("models") or []) + (evaluated.get("references") or []), chosen)

    @property
    def chosen(self) -> str | None:
        return (self["select"] or {}).get("chosen")


def is_run_dir(root: Path) -> bool:
    """A run directory holds the resolved config.yaml or a stage manifest."""
    root = Path(root)
    return root.is_dir() and ((root / "config.yaml").is_file() or any(root.glob("*/manifest.json")))


def load_run(root: Path) -> Run:
    root = Path(root)
    if not is_run_dir(root):
        raise StageError(f"{root} is not a run directory (no config.yaml and no stage manifest in it): give a run "
                         f"folder such as runs/<run.name>, or a config, after `tunestack run CONFIG` has made it")
    files = {}
    for key, name in FILES.items():
        path = root / name
        try:
            files[key] = read_json(path) if path.is_file() else None
        except (OSError, json.JSONDecodeError):  # a half-copied run: leave that section out rather than fail
            files[key] = None
    steps = []
    metrics = root / "train" / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text(encoding="utf-8").splitlines():
            try:
                steps.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    config = root / "config.yaml"
    return Run(root, files, steps, config.read_text(encoding="utf-8") if config.is_file() else None)


def write_html(run_root: Path) -> Path:
    """Write `<run_root>/report.html` and return its path."""
    run = load_run(run_root)
    path = Path(run_root) / "report.html"
    write_text(path, render(run))
    return path


def render(run: Run) -> str:
    from tunestack.report.sections import SECTIONS

    built = []
    for key, title, command, build in SECTIONS:
        body = build(run)
        ran = body is not None
        if not ran:
            body = f'<p class="skipped">Not in this run: <code>{esc(command)}</code> produces it.</p>'
        built.append((key, title, body, ran))
    toc = "".join(f'<li><a href="#{key}"{"" if ran else " class=skipped"}>{esc(title)}</a></li>'
                  for key, title, _, ran in built)
    sections = "".join(f'<section id="{key}"><h2>{esc(title)}</h2>{body}</section>' for key, title, body, _ in built)
    name = (run["results"] or {}).get("run") or run.root.name
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(newest(run.root)))
    return PAGE.format(title=esc(f"tunestack run {name}"), name=esc(name), root=esc(str(run.root)), stamp=stamp,
                       css=CSS, toc=toc, sections=sections)


def newest(root: Path) -> float:
    """When the run last changed: its newest manifest, results or config."""
    paths = [*root.glob("*/manifest.json"), root / "results.json", root / "config.yaml"]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=root.stat().st_mtime)


class Html(str):
    """Text that is already HTML: `table` leaves it unescaped."""


def esc(value) -> str:
    return value if isinstance(value, Html) else html.escape(str(value), quote=True)


def pct(value, digits: int = 1) -> str:
    """A share as a percentage; '-' when absent.

    >>> pct(0.6543), pct(None)
    ('65.4%', '-')
    """
    return "-" if value is None else f"{value:.{digits}%}"


def ci(interval) -> str:
    """A 95% interval of shares, or nothing."""
    return f" ({interval[0]:.0%}-{interval[1]:.0%})" if interval else ""


def table(header: list[str], rows: list[list], marked: list[bool] | None = None, numeric_from: int = 1) -> str:
    """An HTML table; cells are escaped unless `Html`; a marked row is highlighted (the selected model)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, cells in enumerate(rows):
        row_class = ' class="mark"' if marked and marked[i] else ""
        tds = "".join(f'<td{" class=num" if j >= numeric_from and numeric(c) else ""}>{esc(c)}</td>'
                      for j, c in enumerate(cells))
        body.append(f"<tr{row_class}>{tds}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def numeric(cell) -> bool:
    """A short figure (kept on one line), not prose (which wraps)."""
    text = str(cell)
    return len(text) < 32 and (text[:1].isdigit() or text[:1] in "-+$")


def figure(svg: str, caption: str) -> str:
    return f'<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def stat(label: str, value: str, note: str = "") -> str:
    """One headline figure: a label, a large value, a note under it."""
    return (f'<div class="stat"><div class="label">{esc(label)}</div><div class="value">{esc(value)}</div>'
            f'<div class="note">{esc(note)}</div></div>')


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body><header><div class="kicker">tunestack report</div><h1>{name}</h1>
<p class="meta"><code>{root}</code> &middot; last changed {stamp}</p>
<nav aria-label="contents"><ol>{toc}</ol></nav></header>
<main>{sections}</main>
<footer>Written by <code>tunestack report</code> from the files of the run directory.</footer>
</body></html>
"""

CSS = """
:root { --ink:#1f2933; --muted:#6b7785; --line:#e4e7eb; --bg:#fbfbfa; --accent:#2563eb; --good:#059669;
  --bad:#dc2626; --mark:#ecfdf5; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font:15px/1.55 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 28px; }
header { padding-top: 36px; }
.kicker { text-transform: uppercase; letter-spacing:.12em; font-size:12px; color:var(--accent); font-weight:600; }
h1 { font-size: 30px; margin: 4px 0 2px; letter-spacing:-.01em; }
h2 { font-size: 21px; margin: 0 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing:.06em; }
.meta { color: var(--muted); margin: 0 0 16px; font-size: 13px; }
nav ol { display:flex; flex-wrap:wrap; gap:6px 8px; list-style:none; padding:0; margin:0 0 8px;
  counter-reset: toc; }
nav li { counter-increment: toc; }
nav a { display:inline-block; padding:3px 10px; border:1px solid var(--line); border-radius: 999px;
  background:#fff; color:var(--ink); text-decoration:none; font-size:13px; }
nav a::before { content: counter(toc) ". "; color: var(--muted); }
nav a:hover { border-color: var(--accent); color: var(--accent); }
nav a.skipped { color: var(--muted); border-style: dashed; }
section { background:#fff; border:1px solid var(--line); border-radius: 10px; padding: 22px 26px;
  margin: 18px 0; scroll-margin-top: 12px; }
p { margin: 8px 0; max-width: 76ch; }
.skipped { color: var(--muted); font-style: italic; }
code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background:#f3f4f6;
  padding: 1px 5px; border-radius: 4px; }
.scroll { overflow-x: auto; margin: 10px 0; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th { text-align:left; font-weight:600; color:var(--muted); border-bottom: 2px solid var(--line);
  padding: 6px 10px; vertical-align: bottom; }
td { padding: 5px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th:first-child, td:first-child { white-space: nowrap; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.mark td { background: var(--mark); font-weight: 600; }
figure { margin: 14px 0; }
svg.plot { width: 100%; max-width: 760px; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.stats { display:grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px; margin: 14px 0; }
.stat { border:1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.stat .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.stat .note { color: var(--muted); font-size: 12.5px; }
.up { color: var(--good); } .down { color: var(--bad); }
.verdict { display:inline-block; padding: 2px 10px; border-radius: 6px; font-weight: 600; background:#eef2ff; }
ul.why { padding-left: 20px; } ul.why li { margin: 4px 0; max-width: 80ch; }
footer { color: var(--muted); font-size: 12.5px; padding-bottom: 40px; }
"""
