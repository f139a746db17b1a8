"""The sealed holdout is read once: a second read is refused unless forced, every read is logged, a forced one as
such, and an edited holdout is refused. The CLI path (`tunestack holdout`, then `--force`) is in test_pipeline."""

from __future__ import annotations

import json
import time

import pytest

from tunestack.data.holdout import ensure_unread, holdout_reads, read_holdout
from tunestack.errors import DataError, GuardError
from tunestack.evaluate.metrics import score_answers
from tunestack.evaluate.registry import FormatCheck, bind_metrics
from tunestack.holdout.stage import holdout_markdown
from tunestack.report import holdout_line
from tunestack.rundir import RunDir, file_hash


def sealed_run(tmp_path) -> RunDir:
    run = RunDir(tmp_path / "run")
    path = run.stage("prepare") / "holdout.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                     {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                            for i in range(3)))
    run.finish("prepare", "sealed", {"holdout_sha256": file_hash(path)}, time.time())
    return run


def test_the_holdout_is_read_once_and_a_forced_read_is_logged(tmp_path):
    run = sealed_run(tmp_path)
    assert ensure_unread(run) == []
    assert len(read_holdout(run, "holdout: final validation of step-2")) == 3
    with pytest.raises(GuardError, match=r"already read \(1 time\(s\); last by 'holdout: final validation of step-2'"):
        read_holdout(run, "holdout: final validation of step-3")
    with pytest.raises(GuardError, match="tunestack holdout CONFIG --force"):
        ensure_unread(run)
    assert len(holdout_reads(run)) == 1  # a refused read reads nothing and logs nothing

    assert len(read_holdout(run, "holdout: final validation of step-3", force=True)) == 3
    reads = holdout_reads(run)
    assert [(r["reader"], r["forced"], r["read_number"]) for r in reads] == [
        ("holdout: final validation of step-2", False, 1), ("holdout: final validation of step-3", True, 2)]
    assert {r["sha256"] for r in reads} == {run.manifest("prepare")["holdout_sha256"]}


def test_force_on_a_first_read_is_an_ordinary_read(tmp_path):
    run = sealed_run(tmp_path)
    read_holdout(run, "holdout: first", force=True)
    assert holdout_reads(run)[0]["forced"] is False


def test_a_new_sealed_holdout_starts_unread(tmp_path):
    run = sealed_run(tmp_path)
    read_holdout(run, "holdout: first")
    path = run.root / "prepare" / "holdout.jsonl"  # prepare re-sealed a different split
    path.write_text(path.read_text().replace("a0", "b0"))
    run.finish("prepare", "resealed", {"holdout_sha256": file_hash(path)}, time.time())
    assert len(read_holdout(run, "holdout: of the new split")) == 3


def test_an_edited_holdout_is_refused(tmp_path):
    run = sealed_run(tmp_path)
    path = run.root / "prepare" / "holdout.jsonl"
    path.write_text(path.read_text().replace("a1", "peeked"))
    with pytest.raises(DataError, match="changed after prepare sealed it"):
        read_holdout(run, "holdout: first")
    assert holdout_reads(run) == []


def test_holdout_report_names_the_model_the_reads_and_each_metric():
    scores = score_answers(["a", "b", "c", "d"], ["a", "b", "c", "x"], bind_metrics(["exact_match", "contains"]),
                           FormatCheck("none"))
    body = {**scores, "eos_rate": 1.0, "rows": 4, "model": "step-5", "forced": True, "read_number": 2}
    text = holdout_markdown(body)
    assert text.startswith("# Final validation on the sealed holdout: step-5")
    assert "4 rows, read 2 times (this read was forced, and is logged)" in text
    low, high = scores["metrics_ci95"]["exact_match"]
    assert f"| exact match | 75.0% | {low:.1%}-{high:.1%} |" in text and "| contains | 75.0% |" in text
    line = holdout_line(body)
    assert "read 2 times, the later reads forced and logged" in line and "model step-5" in line
