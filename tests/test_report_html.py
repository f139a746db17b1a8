"""`tunestack report`, `runs` and `compare` through the real CLI, on two small complete runs built once for the
module (the tiny model of conftest), and report.html opened in a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from browser import chrome, needs_browser, screenshot
from tunestack.cli import main

SECTION_IDS = ("headline", "sweep", "data", "training", "grpo", "metrics", "pareto", "retention", "assess", "judge",
               "quantize", "served", "cost")
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def runs(tiny_run_session) -> dict:
    """Two runs of the tiny config: `tiny` (with the cost stage) and `tiny-b`, which differs in
    train.learning_rate. Built once for the module: `tiny` is the session's run of the tiny config (conftest's
    `tiny_run`, so `run` finds it current), `tiny-b` takes about half a minute."""
    shared = tiny_run_session.fresh()
    folder, config = shared.folder, shared.config  # the same config as the tiny_config fixture
    assert main(["-q", "run", str(config)]) == 0
    assert main(["-q", "cost", str(config)]) == 0
    assert main(["-q", "run", str(config), "run.name=tiny-b", "train.learning_rate=1e-3"]) == 0
    root = folder / "runs"
    return {"config": config, "a": root / "tiny", "b": root / "tiny-b", "runs_dir": root}


@pytest.fixture(scope="module")
def page(runs) -> Path:
    assert main(["report", str(runs["a"])]) == 0
    return runs["a"] / "report.html"


def section(text: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', text, re.S)
    assert match, f"no section {key}"
    return match.group(1)


def test_report_has_every_section_the_run_produced(runs, page, capsys):
    assert main(["report", str(runs["a"])]) == 0
    assert capsys.readouterr().out.strip() == str(page)
    text = page.read_text(encoding="utf-8")
    for key in SECTION_IDS:  # every section is there: with content, or one line naming its command
        assert f'<section id="{key}">' in text
        assert f'href="#{key}"' in text
    produced = {"headline": "Selected: step-", "data": "Rows per source", "training": "svg",
                "metrics": "weighted score", "pareto": "Pareto front over", "retention": "format bleed",
                "cost": "Cumulative cost"}
    for key, marker in produced.items():
        body = section(text, key)
        assert "Not in this run" not in body, key
        assert marker in body, key
    chosen = json.loads((runs["a"] / "select" / "manifest.json").read_text())["chosen"]
    assert f"Selected: {chosen}" in section(text, "headline")
    for key, command in (("assess", "tunestack assess"), ("judge", "tunestack judge calibrate"),
                         ("quantize", "tunestack quantize"), ("served", "tunestack serve"),
                         ("sweep", "tunestack sweep"), ("grpo", "tunestack train")):
        assert f"Not in this run: <code>{command}" in section(text, key)
    # self-contained: figures inline, no URL in any src or href, no stylesheet or script fetched
    assert text.count("<svg") >= 6
    assert not EXTERNAL.search(text)
    assert "<link" not in text and "<script" not in text and "<img" not in text


def test_report_escapes_and_shows_assess_and_judge(runs, tmp_path):
    """A run with an assessment and a judge calibration (written here in the stages' shapes) gets both sections;
    text from the data is escaped."""
    root = tmp_path / "run"
    shutil.copytree(runs["a"], root, ignore=shutil.ignore_patterns("checkpoints", "model", "trainer"))
    (root / "assess").mkdir()
    (root / "assess" / "assess.json").write_text(json.dumps({
        "model": {"name": "<base>"}, "sample": {"n": 40}, "accuracy": 0.25, "accuracy_ci95": [0.14, 0.4],
        "verdict": "fine-tune", "reasons": ["failures repeat: <script>alert(1)</script>"],
        "failures": {"n": 30, "by_label": {"wrong field: side": {"category": "content", "count": 20, "share": 2 / 3},
                                           "not JSON": {"category": "format", "count": 10, "share": 1 / 3}}},
        "consistency": {"examined": 10, "samples": 4, "systematic": 7, "systematic_share": 0.7, "isolated": 1,
                        "isolated_share": 0.1, "random": 2, "random_share": 0.2},
        "training_set": {"suggested": 800}}))
    (root / "judge").mkdir()
    items = [{"human": h, "judge": j} for h, j in [(1, 1), (2, 2), (3, 4), (4, 4), (5, 5), (2, 1)]]
    (root / "judge" / "calibration.json").write_text(json.dumps({
        "judge": {"model": "judge-model", "rubric": "correctness"}, "n_items": 6, "n_scored": 6, "items": items,
        "agreement": {"metrics": {"spearman": {"value": 0.93, "ci95": [0.71, 1.0]}}},
        "rule": {"metric": "spearman", "threshold": 0.6, "on": "lower_bound"}, "agreement_ok": True}))
    assert main(["report", str(root)]) == 0
    text = (root / "report.html").read_text(encoding="utf-8")
    assess = section(text, "assess")
    assert "fine-tune" in assess and "systematic" in assess and "random" in assess and "70.0%" in assess
    assert "<script>" not in text and "&lt;script&gt;" in assess and "&lt;base&gt;" in assess
    judge = section(text, "judge")
    assert "0.930" in judge and "0.710 to 1.000" in judge and "<svg" in judge
    assert "the judge counts in selection" in judge


@needs_browser
def test_report_renders_in_a_browser(page):
    with chrome() as driver:
        driver.get(page.as_uri())
        sizes = driver.execute_script(
            "return [...document.querySelectorAll('svg, img')].filter(e => !e.closest('svg') || e.matches('svg.plot'))"
            ".map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })")
        assert len(sizes) >= 6
        assert all(w > 100 and h > 50 for w, h in sizes), sizes
        targets = driver.execute_script(
            "return [...document.querySelectorAll('nav a')].map(a => { const id = a.getAttribute('href').slice(1);"
            " const s = document.getElementById(id); return [id, !!s && s.tagName, !!s && s.offsetHeight]; })")
        assert [t[0] for t in targets] == list(SECTION_IDS)
        assert all(tag == "SECTION" and height > 0 for _, tag, height in targets), targets
        path = screenshot(driver, "report")
    assert path.stat().st_size > 10_000


def test_runs_lists_each_run(runs, capsys, tmp_path):
    (runs["runs_dir"] / "not-a-run").mkdir(exist_ok=True)
    partial = runs["runs_dir"] / "partial"  # a run that stopped after prepare still gets a line
    (partial / "prepare").mkdir(parents=True, exist_ok=True)
    shutil.copy(runs["a"] / "config.yaml", partial / "config.yaml")
    shutil.copy(runs["a"] / "prepare" / "manifest.json", partial / "prepare" / "manifest.json")
    assert main(["runs", "--dir", str(runs["runs_dir"])]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["run", "modified", "selected"]
    lines = {line.split()[0]: line.split() for line in out[1:]}
    assert set(lines) == {"tiny", "tiny-b", "partial"}
    chosen = json.loads((runs["a"] / "select" / "manifest.json").read_text())["chosen"]
    assert lines["tiny"][3] == chosen
    assert lines["partial"][3:] == ["-"] * 6


def test_compare_shows_the_differing_config_key_and_both_figures(runs, capsys):
    assert main(["compare", str(runs["a"]), str(runs["b"])]) == 0
    out = capsys.readouterr().out
    table, _, differences = out.partition("config differences")
    assert "tiny" in table and "tiny-b" in table and "B - A" in table
    for title in ("format compliance", "general retention"):  # both runs' figures and their difference
        row = next(line for line in table.splitlines() if line.startswith(title))
        assert len(re.findall(r"\d+\.\d%", row)) == 2 and row.rstrip().endswith("pts"), row
    selected = next(line for line in table.splitlines() if line.startswith("selected")).split()
    assert selected[1:] == [json.loads((runs[k] / "select" / "manifest.json").read_text())["chosen"]
                            for k in ("a", "b")]
    keys = {line.split()[0]: line.split()[1:] for line in differences.splitlines()[2:] if line.strip()}
    assert keys["train.learning_rate"] == ["0.003", "0.001"]
    assert keys["run.name"] == ["tiny", "tiny-b"]
    assert len(keys) == 2


def test_report_of_a_config_finds_its_run(runs, capsys):
    assert main(["report", str(runs["config"]), "run.name=tiny-b"]) == 0
    assert capsys.readouterr().out.strip() == str(runs["b"] / "report.html")
    assert (runs["b"] / "report.html").exists()


def test_not_a_run_directory_is_a_clean_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a run directory" in err and "tunestack run" in err and "Traceback" not in err
    assert main(["compare", str(tmp_path), str(tmp_path / "missing")]) == 2
    assert main(["runs", "--dir", str(tmp_path / "missing")]) == 2


def test_report_command_imports_nothing_heavy():
    import subprocess

    code = ("import sys, tunestack.report.command, tunestack.report.html; "
            "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
