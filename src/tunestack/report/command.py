"""The `report`, `runs` and `compare` commands: read run directories, write report.html, print summaries.

Imported to build the CLI's parser, so nothing heavy at module level: matplotlib waits for `write_html`.
"""

from __future__ import annotations

import time
from pathlib import Path

from tunestack.errors import StageError

REPORT_TEXT = ("Write <RUN>/report.html: one self-contained page (inline CSS and SVG figures, no URL, no script) "
               "with the selected checkpoint and why, the data, the training curves, every metric per checkpoint "
               "with its noise interval, the Pareto front, general retention by suite, and, where those stages "
               "ran, the assessment, the judge calibration, the quantization candidates, the served model and the "
               "cost. Reads only the run directory's files; a section whose stage did not run says which command "
               "produces it. Prints the page's path.")
RUNS_TEXT = ("List the runs under a folder, one line each: name, last modified, selected checkpoint, task metric, "
             "format compliance, general retention, holdout (when read) and the chosen quantized model. A run "
             "missing stages still gets a line, '-' where it has no figure.")
COMPARE_TEXT = ("Compare two runs: their headline figures side by side with the difference (B minus A, in "
                "points), their selected checkpoints, and every config key whose value differs (from each run's "
                "config.yaml). Each RUN is a run directory or a config file.")


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="Write a self-contained report.html for a run.", description=REPORT_TEXT)
    p.add_argument("run", type=Path, metavar="RUN", help="a run directory (runs/<run.name>) or the run's config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="with a config: dotted overrides, as for `tunestack run` (e.g. run.name=trial2)")
    p.set_defaults(handler=report)

    p = sub.add_parser("runs", help="List the runs in a folder with their headline figures.", description=RUNS_TEXT)
    p.add_argument("--dir", type=Path, default=Path("runs"), help="the folder of runs (default: %(default)s)")
    p.set_defaults(handler=runs)

    p = sub.add_parser("compare", help="Compare two runs: figures, selected checkpoints, config differences.",
                       description=COMPARE_TEXT)
    p.add_argument("run_a", type=Path, metavar="RUN_A", help="a run directory or config file")
    p.add_argument("run_b", type=Path, metavar="RUN_B", help="a run directory or config file")
    p.set_defaults(handler=compare)


def resolve(path: Path, overrides: list[str] | None = None) -> Path:
    """A run directory as given, or the run of a config file (`<run.runs_dir>/<run.name>`)."""
    from tunestack.report.runfiles import is_run_dir

    path = Path(path)
    if path.is_file() and path.suffix in (".yaml", ".yml") and path.name != "config.yaml":
        from tunestack.config import load_config

        cfg = load_config(path, overrides or [])
        root = Path(cfg.run.runs_dir) / cfg.run.name
        if not is_run_dir(root):
            raise StageError(f"the run of {path} has not started: {root} holds no stage yet; run "
                             f"`tunestack run {path}` first")
        return root
    if path.is_file() and path.name == "config.yaml":
        path = path.parent
    if not is_run_dir(path):
        raise StageError(f"{path} is not a run directory (no config.yaml and no stage manifest in it): give "
                         "runs/<run.name> or the run's config file, after `tunestack run CONFIG`")
    return path


def report(args) -> int:
    from tunestack.report.html import write_html

    print(write_html(resolve(args.run, args.overrides)))
    return 0


def summary(root: Path) -> dict:
    """A run's headline figures, '-' free: None where the run lacks them."""
    from tunestack.report.runfiles import load_run, newest
    from tunestack.report.sections import evaluated, task_key, value

    run = load_run(root)
    picked = next((m for m in evaluated(run) if m["name"] == run.chosen), None)
    title, key = task_key(picked) if picked else ("task", "task_accuracy")
    holdout = run["holdout"] or {}
    first = next(iter(holdout.get("metrics") or {}), None)
    return {"name": root.name, "modified": time.strftime("%Y-%m-%d %H:%M", time.localtime(newest(root))),
            "selected": run.chosen, "task_title": title,
            "task": value(picked, key) if picked else None,
            "format": picked.get("format_compliance") if picked else None,
            "retention": picked.get("general_retention") if picked else None,
            "holdout": holdout["metrics"][first] if first else None,
            "quantized": (run["quantize"] or {}).get("chosen"), "config": run.config_text}


def runs(args) -> int:
    from tunestack.report.runfiles import is_run_dir
    from tunestack.report.blocks import pct

    folder = Path(args.dir)
    if not folder.is_dir():
        raise StageError(f"{folder} is not a folder: give --dir the folder your runs are in (run.runs_dir)")
    found = sorted(p for p in folder.iterdir() if is_run_dir(p))
    if not found:
        print(f"no runs in {folder} (a run is a folder with config.yaml or a stage manifest)")
        return 0
    header = ["run", "modified", "selected", "task", "format", "retention", "holdout", "quantized"]
    rows = []
    for path in found:
        s = summary(path)
        rows.append([s["name"], s["modified"], s["selected"] or "-", pct(s["task"]), pct(s["format"]),
                     pct(s["retention"]), pct(s["holdout"]), s["quantized"] or "-"])
    print("\n".join(columns([header, *rows])))
    return 0


def columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def clip(value, width: int = 48) -> str:
    """A config value for a column: long lists and paths cut in the middle."""
    text = str(value)
    return text if len(text) <= width else text[: width // 2 - 2] + " .. " + text[-(width // 2 - 2):]


def flatten(obj, prefix: str = "") -> dict:
    """Nested mappings as dotted keys.

    >>> flatten({"train": {"lr": 1e-4, "lora": {"r": 8}}, "seed": 0})
    {'train.lr': 0.0001, 'train.lora.r': 8, 'seed': 0}
    """
    if not isinstance(obj, dict):
        return {prefix: obj}
    out = {}
    for key, item in obj.items():
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(text_a: str | None, text_b: str | None) -> list[tuple[str, object, object]]:
    """(dotted key, value in A, value in B) for every key whose value differs, run.name included."""
    import yaml

    a, b = flatten(yaml.safe_load(text_a or "") or {}), flatten(yaml.safe_load(text_b or "") or {})
    missing = "(absent)"
    return [(k, a.get(k, missing), b.get(k, missing)) for k in sorted(set(a) | set(b))
            if a.get(k, missing) != b.get(k, missing)]


def compare(args) -> int:
    from tunestack.report.blocks import pct

    a, b = summary(resolve(args.run_a)), summary(resolve(args.run_b))
    rows = [["", a["name"], b["name"], "B - A"]]
    for title, key in ((f"{a['task_title']}", "task"), ("format compliance", "format"),
                       ("general retention", "retention"), ("holdout", "holdout")):
        diff = "-" if a[key] is None or b[key] is None else f"{100 * (b[key] - a[key]):+.1f} pts"
        rows.append([title, pct(a[key]), pct(b[key]), diff])
    rows.append(["selected", a["selected"] or "-", b["selected"] or "-", ""])
    rows.append(["quantized", a["quantized"] or "-", b["quantized"] or "-", ""])
    print("\n".join(columns(rows)))
    differences = config_differences(a["config"], b["config"])
    print(f"\nconfig differences ({len(differences)}):" if differences else "\nconfigs identical")
    print("\n".join(columns([["key", a["name"], b["name"]], *[[k, clip(x), clip(y)] for k, x, y in differences]]))
          if differences else "", end="\n" if differences else "")
    return 0
