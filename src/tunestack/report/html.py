"""`report.html`: one self-contained page for a run, read from its run directory alone.

    write_html(runs/<name>) -> runs/<name>/report.html

The page inlines its CSS and its figures (SVG drawn by `plots.py`), names no URL and needs no script, so it opens
offline and can be mailed as one file. Each section is built from one stage's files (`sections.py`); a section whose
stage did not run is one line saying which command produces it. Every text taken from the run is escaped.
"""

from __future__ import annotations

import time
from pathlib import Path

from tunestack.report.blocks import esc
from tunestack.report.runfiles import Run, load_run, newest
from tunestack.report.sections import SECTIONS
from tunestack.rundir import write_text


def write_html(run_root: Path) -> Path:
    """Write `<run_root>/report.html` and return its path."""
    run = load_run(run_root)
    path = Path(run_root) / "report.html"
    write_text(path, render(run))
    return path


def render(run: Run) -> str:
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
