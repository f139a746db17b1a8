"""Select takes a further look at retention where the checkpoint it would choose has an inconclusive verdict: the
base model and that checkpoint scored on a larger draw, the verdict taken there at alpha / looks, the choice made
again. Planted per-item scores give the truth of each outcome (their ratios and spreads are set here); the real
look runs on the session's tiny run."""

from __future__ import annotations

import time

import numpy as np
import yaml

from tunestack.config import load_config, parse_config
from tunestack.report.markdown import render_markdown
from tunestack.report.results import write_report
from tunestack.rundir import RunDir
from tunestack.select.stage import run_select


def per_item(n: int, base_right: int, lost: int, gained: int) -> tuple[list[int], list[int]]:
    """The base model right on the first `base_right` items; the fine-tune loses `lost` of them and gains `gained`
    of the rest: its retention is (base_right - lost + gained) / base_right by construction."""
    base = [1] * base_right + [0] * (n - base_right)
    tuned = list(base)
    for i in range(lost):
        tuned[i] = 0
    for i in range(gained):
        tuned[base_right + i] = 1
    return base, tuned


def model_row(name: str, kind: str, task: float, quartz: list[int], base: list[int]) -> dict:
    share = float(np.mean(quartz) / np.mean(base))
    return {"name": name, "kind": kind, "step": 0, "path": None, "train_loss": None, "task_accuracy": task,
            "metrics": {"exact_match": task}, "format_compliance": 1.0, "general_retention": share,
            "quartz": {"n": len(quartz), "accuracy": float(np.mean(quartz))},
            "general_by_suite": {"quartz": {"score": float(np.mean(quartz)), "base": float(np.mean(base)),
                                            "share": share}},
            "per_example": {"quartz": quartz, "metrics": {"exact_match": [task] * 4}, "format": [1] * 4}}


def planted(tmp_path) -> tuple[RunDir, object]:
    """step-2 leads on the task and keeps 95% of the base model's quartz on 200 questions: the interval holds the
    floor (inconclusive); step-1 is behind on the task and keeps everything."""
    cfg = parse_config(yaml.safe_dump({"data": {"path": str(tmp_path / "rows.jsonl")},
                                       "evaluate": {"retention": {"weights": {"quartz": 1.0}}},
                                       "select": {"noise_draws": 0, "min_format": 0.0}}), [])
    run = RunDir(tmp_path / "run")
    run.stage("prepare")
    (run.root / "prepare" / "eval.jsonl").write_text('{"messages": []}\n')
    base, step2 = per_item(200, 120, 10, 4)  # 114 / 120 = 95%, 14 items differ
    models = [model_row("base", "base", 0.1, base, base), model_row("step-1", "checkpoint", 0.7, base, base),
              model_row("step-2", "checkpoint", 0.8, step2, base)]
    tasks = [{"key": "exact_match", "metric": "exact_match", "higher_is_better": True, "params": {}}]
    run.finish("evaluate", "planted", {"models": models, "task_metrics": tasks}, time.time())
    return run, cfg


def scorer(retained: float, calls: list):
    """A planted look: 800 questions, the base right on 480; the fine-tune keeps `retained` of them."""
    def score(cfg, run, row, look, loaded):
        calls.append((row["name"], look))
        kept = int(round(480 * retained))
        base, tuned = per_item(800, 480, 480 - kept, 0)
        return (model_row("base", "base", 0.1, base, base), model_row(row["name"], "checkpoint", 0.8, tuned, base),
                {"look": look, "sizes": {"quartz": 800}, "seconds": 0.0, "folder": "planted"})
    return score


def test_an_inconclusive_choice_is_looked_at_again_and_a_failed_look_moves_the_choice(tmp_path):
    run, cfg = planted(tmp_path)
    first = {t["name"]: t for t in run_select(cfg, run, score=scorer(1.0, []))["table"]}
    calls: list = []
    decision = run_select(cfg, run, score=scorer(0.85, calls))
    assert calls == [("step-2", 2)]  # step-1 passed at the first look: nothing more to draw for it
    assert decision["chosen"] == "step-1"
    step2 = {t["name"]: t for t in decision["table"]}["step-2"]
    assert "forgetting" in step2["flags"] and any("look 2, 800 items" in p for p in step2["problems"])
    look = decision["retention_looks"][0]
    assert look["model"] == "step-2" and look["outcome"] == "fail" and "look 2 of 2" in look["reason"]
    # where the look finds everything kept, step-2 passes there and stays chosen
    verdict = first["step-2"]["retention_verdicts"]["overall"]
    assert verdict["look"] == 2 and verdict["outcome"] == "pass"
    run.finish("select", "planted", decision, time.time())
    assert "Retention look 2 at step-2" in render_markdown(write_report(cfg, run))


def test_a_passed_look_keeps_the_choice_and_one_planned_look_draws_nothing(tmp_path):
    run, cfg = planted(tmp_path)
    calls: list = []
    decision = run_select(cfg, run, score=scorer(1.0, calls))
    assert decision["chosen"] == "step-2" and calls == [("step-2", 2)]
    once = cfg.model_copy(update={"select": cfg.select.model_copy(update={"retention_looks": 1})})
    calls.clear()
    decision = run_select(once, run, score=scorer(0.85, calls))
    assert calls == [] and decision["chosen"] == "step-2" and decision["retention_looks"] == []
    verdict = {t["name"]: t for t in decision["table"]}["step-2"]["retention_verdicts"]["overall"]
    assert verdict["outcome"] == "inconclusive" and verdict["looks"] == 1


def test_a_real_look_scores_the_base_and_the_checkpoint_on_a_larger_draw(tiny_run):
    """A checkpoint of the tiny run with the floor set at its own retention, the best of those select may choose, so
    the first look cannot decide: select loads the base model, scores both on four times the items, and takes the
    verdict there."""
    from tunestack.rundir import read_json

    run = RunDir(tiny_run.run)
    rows = run.manifest("evaluate")["models"]
    eligible = [r for r in rows[1:] if r["format_compliance"] >= rows[0]["format_compliance"]]
    assert eligible, [(r["name"], r["format_compliance"]) for r in rows]
    target = max(eligible, key=lambda r: r["general_retention"])
    cfg = load_config(tiny_run.config, [f"select.min_retention={target['general_retention']}",
                                        "select.retention_margin=0", "select.min_suite_retention=0",
                                        "select.noise_draws=0"])
    decision = run_select(cfg, run)
    looks = decision["retention_looks"]
    assert [look["model"] for look in looks][:1] == [target["name"]], decision["reason"]
    sizes, ret = looks[0]["sizes"], cfg.evaluate.retention
    assert sizes["choices"] == 4 * ret.choices and sizes["quartz"] == 4 * ret.quartz_examples
    assert sizes["instructions"] == 4 * ret.instructions and sizes["probes"] == 80  # every probe
    for name in ("base", target["name"]):
        stored = read_json(run.root / "select" / "look-2" / f"{name}.json")
        assert len(stored["per_example"]["quartz"]) == 4 * ret.quartz_examples
    assert "look 2 of 2" in looks[0]["reason"]
    verdict = {t["name"]: t for t in decision["table"]}[target["name"]]["retention_verdicts"]["overall"]
    assert verdict["look"] == 2 and verdict["n"] > 4 * ret.quartz_examples
    again = run_select(cfg, run)  # scored once: a re-run reads the look's results
    assert again["retention_looks"][0]["seconds"] < looks[0]["seconds"]


def test_the_quantize_gate_looks_again_at_an_inconclusive_candidate(tmp_path, monkeypatch):
    """A candidate that keeps the export's task and format, with retention inconclusive on 200 questions: the gate
    scores it and the base model on a larger draw (planted: 800 questions) and decides there, either way."""
    from types import SimpleNamespace

    from tunestack.evaluate import looks
    from tunestack.quantize import stage

    run, cfg = planted(tmp_path)
    base, tuned = per_item(200, 120, 10, 4)
    rows = {"base": model_row("base", "base", 0.1, base, base)}

    def candidate() -> dict:
        row = {**model_row("w4", "quantized", 0.8, tuned, base), "kept": {"task_accuracy": 1.0,
                                                                          "format_compliance": 1.0}}
        row["retention_verdicts"] = stage.gate_verdicts(cfg, row, rows["base"])
        return row

    def at_look(keep: float):
        kept = int(round(480 * keep))
        big_base, big = per_item(800, 480, 480 - kept, 0)
        monkeypatch.setattr(looks, "look_suites", lambda *a: SimpleNamespace(
            cfg=cfg, choices=[], quartz=[0] * 800, instructions=[], probes=[]))
        monkeypatch.setattr(looks, "scored", lambda *a: model_row("base", "base", 0.1, big_base, big_base))
        monkeypatch.setattr(stage, "evaluated", lambda *a: (model_row("w4", "quantized", 0.8, big, big_base), []))

    for keep, outcome in ((0.85, "fail"), (1.0, "pass")):
        row = candidate()
        assert row["retention_verdicts"]["overall"]["outcome"] == "inconclusive"
        at_look(keep)
        taken = stage.look_again(cfg, run, row, tmp_path, {})
        assert [(t["look"], t["outcome"]) for t in taken] == [(2, outcome)]
        assert bool(stage.judge(cfg, row)) == (outcome == "fail")
    row = candidate()
    row["kept"]["task_accuracy"] = 0.5  # it fails on the task already: no look is worth drawing
    assert stage.look_again(cfg, run, row, tmp_path, {}) == []
