"""The sealed holdout is read once, by any run: a second read of the same rows is refused unless forced with a
reason, every read is recorded in the data ledger, a forced one as such, and an edited holdout is refused. The CLI
path (`tunestack holdout`, a second run name, then `--force --why`) is in test_pipeline."""

from __future__ import annotations

import json
import time

import pytest

from tunestack.data.holdout import ensure_unread, holdout_reads, read_holdout
from tunestack.errors import DataError, GuardError
from tunestack.evaluate.metrics import score_answers
from tunestack.evaluate.registry import FormatCheck, bind_metrics
from tunestack.holdout.stage import holdout_markdown
from tunestack.report.markdown import holdout_line
from tunestack.rundir import RunDir, file_hash


def sealed_run(tmp_path, name: str = "run") -> RunDir:
    run = RunDir(tmp_path / name)
    path = run.stage("prepare") / "holdout.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                     {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                            for i in range(3)))
    run.finish("prepare", "sealed", {"holdout_sha256": file_hash(path)}, time.time())
    return run


def test_the_holdout_is_read_once_and_a_forced_read_is_logged(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESTACK_USER", "ana")
    run, ledger = sealed_run(tmp_path), tmp_path / "ledger.jsonl"
    assert ensure_unread(run, ledger) == []
    assert len(read_holdout(run, ledger, "holdout: final validation of step-2")) == 3
    with pytest.raises(GuardError, match=r"already read: 1 time\(s\), last by 'holdout: final validation of step-2' "
                                         r"\(ana@"):
        read_holdout(run, ledger, "holdout: final validation of step-3")
    with pytest.raises(GuardError, match="tunestack holdout CONFIG --force --why"):
        ensure_unread(run, ledger)
    with pytest.raises(GuardError, match="needs a reason"):  # forced, but without saying why
        read_holdout(run, ledger, "holdout: final validation of step-3", force=True)
    assert len(holdout_reads(run, ledger)) == 1  # a refused read reads nothing and logs nothing

    assert len(read_holdout(run, ledger, "holdout: final validation of step-3", force=True,
                            why="the first read crashed before its figures were seen")) == 3
    reads = holdout_reads(run, ledger)
    assert [(r["reader"], r["forced"], r["read_number"], r["why"]) for r in reads] == [
        ("holdout: final validation of step-2", False, 1, None),
        ("holdout: final validation of step-3", True, 2, "the first read crashed before its figures were seen")]
    assert {r["sha256"] for r in reads} == {run.manifest("prepare")["holdout_sha256"]}
    assert all(r["who"].startswith("ana@") and r["run"] == str(run.root.resolve()) for r in reads)


def test_another_run_sealing_the_same_rows_cannot_read_them_again(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    first, second = sealed_run(tmp_path, "try1"), sealed_run(tmp_path, "try2")  # same data and seed: same rows
    read_holdout(first, ledger, "holdout: final validation of step-2")
    with pytest.raises(GuardError, match=f"in run {first.root.resolve()}"):
        read_holdout(second, ledger, "holdout: final validation of step-2")
    assert len(holdout_reads(second, ledger)) == 1  # the first run's read, shared


def test_force_on_a_first_read_is_an_ordinary_read(tmp_path):
    run, ledger = sealed_run(tmp_path), tmp_path / "ledger.jsonl"
    read_holdout(run, ledger, "holdout: first", force=True)
    assert holdout_reads(run, ledger)[0]["forced"] is False


def test_a_new_sealed_holdout_starts_unread(tmp_path):
    run, ledger = sealed_run(tmp_path), tmp_path / "ledger.jsonl"
    read_holdout(run, ledger, "holdout: first")
    path = run.root / "prepare" / "holdout.jsonl"  # prepare re-sealed a different split
    path.write_text(path.read_text().replace("a0", "b0"))
    run.finish("prepare", "resealed", {"holdout_sha256": file_hash(path)}, time.time())
    assert len(read_holdout(run, ledger, "holdout: of the new split")) == 3


def test_an_edited_holdout_is_refused(tmp_path):
    run, ledger = sealed_run(tmp_path), tmp_path / "ledger.jsonl"
    path = run.root / "prepare" / "holdout.jsonl"
    path.write_text(path.read_text().replace("a1", "peeked"))
    with pytest.raises(DataError, match="changed after prepare sealed it"):
        read_holdout(run, ledger, "holdout: first")
    assert holdout_reads(run, ledger) == []


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
