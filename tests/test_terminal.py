"""The terminal of a real `tunestack run` (a subprocess, as a user runs it): one line per stage start and end, a
compact training line every tenth of the steps instead of TRL's dictionary per step, no warning twice, `--quiet`
and `--log-json` for scripts, every step's full dictionary in run.log; and `tunestack demo` from any folder with
the config that ships inside the package. The plain `tunestack run` is the session's one (`tiny_run` in conftest,
shared with test_pipeline)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def tunestack(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "tunestack", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=900)


def lines(stream: str) -> list[str]:
    """What stays on a terminal: the text after each carriage return (a progress bar redraws itself with one)."""
    return [part.split("\r")[-1].rstrip() for part in stream.splitlines() if part.split("\r")[-1].strip()]


def test_the_terminal_shows_stages_compact_training_lines_and_each_warning_once(tiny_run):
    tiny_config, done = tiny_run.config, tiny_run.done  # `tunestack run tiny.yaml`, run once a session (conftest)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = lines(done.stderr)
    assert not [line for line in shown if "{'loss'" in line or "'grad_norm'" in line]  # no per-step dictionaries
    for stage in ("prepare", "train", "evaluate", "select", "export"):
        assert shown.count(f"[{stage}] running") == 1, stage
        assert sum(bool(re.fullmatch(rf"\[{stage}\] done in [\d.]+s", line)) for line in shown) == 1, stage
    steps = [line for line in shown if re.match(r"\[train\] step \d+/\d+ loss [\d.]+, lr ", line)]
    total = int(re.search(r"/(\d+) ", steps[-1]).group(1))
    assert 5 <= len(steps) <= 11 and f"step {total}/{total}" in steps[-1]  # about every tenth of the steps
    warnings = [line for line in shown if "Warning" in line or line.startswith("WARNING")]
    assert not [text for text, n in Counter(warnings).items() if n > 1]
    assert not [line for line in shown if "DeprecationWarning" in line]  # libraries' notices: run.log only
    assert "results:" in done.stdout and "selected:" in done.stdout

    run_log = (Path(yaml.safe_load(tiny_config.read_text())["run"]["runs_dir"]) / "tiny" / "run.log").read_text()
    logged = [json.loads(line.split("tunestack.steps: step ", 1)[1].split(" ", 1)[1])
              for line in run_log.splitlines() if "tunestack.steps: step " in line]
    assert len(logged) >= total and all("loss" in entry or "train_runtime" in entry for entry in logged)

    as_json = tunestack("--log-json", "run", str(tiny_config), "--force", "train")
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    records = [json.loads(line) for line in as_json.stderr.splitlines() if line.strip()]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(records[0])
    messages = [r["message"] for r in records]
    assert "[train] running" in messages and any(m.startswith("[train] step ") for m in messages)
    assert "\r" not in as_json.stderr  # no progress bars

    quiet = tunestack("--quiet", "run", str(tiny_config))
    assert quiet.returncode == 0 and not lines(quiet.stderr)  # nothing but the results on stdout
    assert "selected:" in quiet.stdout


def demo_folders(tmp_path: Path) -> tuple[Path, Path]:
    """A general-mix file of ten short chat rows (a tiny model's self-replay would be noise), and an empty folder to
    run a demo in."""
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Say {w}."},
                                                        {"role": "assistant", "content": w}]}) + "\n"
                               for w in ("yes", "no", "red", "blue", "one", "two", "cat", "dog", "sun", "sea")))
    work = tmp_path / "anywhere"
    work.mkdir()
    return general, work


def test_demo_runs_from_any_folder_with_the_packaged_config(tmp_path: Path, tiny_model: Path):
    """`tunestack demo` in an empty folder: the packaged quickstart.yaml, its data and run written there (a tiny
    model and a few steps stand in for SmolLM2 and the full demo; `make demo` runs that)."""
    general, work = demo_folders(tmp_path)
    done = tunestack("demo", f"model.name={tiny_model}", "data.eval_size=16",
                     "data.holdout_size=8", "train.max_steps=4", "train.num_checkpoints=1", "quantize.enabled=false",
                     "evaluate.batch_size=16", "evaluate.retention.quartz_examples=8", "evaluate.retention.max_probes=4",
                     "select.min_retention=0", "select.min_format=0", "select.max_format_drop=null",
                     "train.general_mix.source=file", f"train.general_mix.path={general}", "run.threads=1",
                     cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "data" / "demo" / "radiology.jsonl").exists()
    assert (work / "runs" / "quickstart" / "report.md").exists() and (work / "runs" / "quickstart" / "cost").is_dir()


def test_the_demo_config_is_inside_the_wheel(tmp_path: Path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("tunestack-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tunestack/demo/quickstart.yaml" in names and "tunestack/resources/probes.jsonl" in names
    assert "tunestack/demo/tools.yaml" in names
    assert "tunestack/review/static/review.js" in names and "tunestack/review/templates/base.html" in names
