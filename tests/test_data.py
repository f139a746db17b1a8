"""prepare: bad rows go to rejects with file, line and reason; counts reconcile; splits are deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunestack.data.formats import read_chat_jsonl
from tunestack.data.prepare import split_rows, split_sizes
from tunestack.errors import DataError

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_rows_are_rejected_with_line_and_reason(tmp_path: Path):
    good = json.dumps(GOOD).encode()
    lines = [
        b"\xef\xbb\xbf" + good,                                      # 1: BOM on the first line: valid, kept
        b"{not json",                                                 # 2
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(),  # 3 unknown role
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]}).encode(),
        b"\xff\xfe bad bytes",                                        # 5 not UTF-8
        json.dumps({"text": "no messages"}).encode(),                 # 6
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}).encode(),  # 7
        good,                                                         # 8
        b"",                                                          # 9 blank: not a row
    ]
    rows, rejects = read_chat_jsonl(write_lines(tmp_path / "d.jsonl", lines))
    assert [r.line for r in rows] == [1, 8]
    reasons = {r.line: r.reason for r in rejects}
    assert set(reasons) == {2, 3, 4, 5, 6, 7}
    assert "invalid JSON" in reasons[2] and "unknown role" in reasons[3] and "empty" in reasons[4]
    assert "UTF-8" in reasons[5] and "unknown row format" in reasons[6] and "last turn" in reasons[7]
    assert all(r.source.endswith("d.jsonl") for r in rejects)


def test_split_is_deterministic_and_disjoint():
    rows = list(range(100))
    a = split_rows(rows, 10, 5, seed=1)
    b = split_rows(rows, 10, 5, seed=1)
    assert a == b
    assert len(set(a["train"]) | set(a["eval"]) | set(a["holdout"])) == 100
    assert split_rows(rows, 10, 5, seed=2)["eval"] != a["eval"]


def test_split_that_leaves_nothing_to_train_is_an_error():
    with pytest.raises(DataError, match="nothing to train on"):
        split_sizes(100, 80, 20)


def test_prepare_removes_planted_duplicates_and_counts_reconcile(tmp_path: Path, tiny_model: Path):
    from transformers import AutoTokenizer

    from tunestack.config import parse_config
    from tunestack.data.prepare import read_jsonl, run_prepare
    from tunestack.demo.radiology import generate
    from tunestack.rundir import RunDir

    rows = generate(60, seed=3)
    copied = dict(rows[0])
    lines = [json.dumps(r) for r in rows] + [json.dumps(copied), "{broken", json.dumps(rows[5])]
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(lines) + "\n")
    cfg = parse_config(f"data: {{path: {data}, eval_size: 10, holdout_size: 5}}\nevaluate: {{format: {{type: json}}}}\n",
                       [])
    run = RunDir(tmp_path / "run")
    manifest = run_prepare(cfg, run, AutoTokenizer.from_pretrained(tiny_model))
    counts = manifest["counts"]
    assert counts["read"] == 63 and counts["rejected"] == 1 and counts["exact_duplicates"] == 2
    assert counts["read"] == (counts["kept"] + counts["rejected"] + counts["exact_duplicates"]
                              + counts["near_duplicates"] + counts["decontaminated"])
    dups = read_jsonl(run.root / "prepare" / "duplicates.jsonl")
    assert {(d["line"], d["duplicate_of_line"]) for d in dups if d["kind"] == "exact"} == {(61, 1), (63, 6)}
    assert sum(manifest["splits"].values()) == counts["kept"]


def test_alpaca_and_prompt_completion_rows_become_conversations(tmp_path: Path):
    lines = [json.dumps({"instruction": "Add the numbers", "input": "2 and 3", "output": "5", "source": "human"}),
             json.dumps({"prompt": "Hi", "completion": "Hello"}),
             json.dumps({"prompt": [{"role": "user", "content": "Q"}],
                         "completion": [{"role": "assistant", "content": "A"}]}),
             json.dumps({"prompt": "Hi", "completion": ["not", "a", "message"]})]
    rows, rejects = read_chat_jsonl(write_lines(tmp_path / "mixed.jsonl", [line.encode() for line in lines]))
    assert [r.messages[-1]["content"] for r in rows] == ["5", "Hello", "A"]
    assert rows[0].messages[0]["content"] == "Add the numbers\n\n2 and 3" and rows[0].meta == {"source": "human"}
    assert [r.line for r in rejects] == [4] and "both must be strings" in rejects[0].reason


def test_a_10mb_line_is_rejected_without_tokenizing_it(tmp_path: Path, tiny_model: Path):
    from transformers import AutoTokenizer

    from tunestack.data.prepare import reject_long_rows

    huge = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y " * 5_000_000}]}
    rows, rejects = read_chat_jsonl(write_lines(tmp_path / "big.jsonl", [json.dumps(GOOD).encode(),
                                                                          json.dumps(huge).encode()]))
    kept, too_long, lengths = reject_long_rows(rows, AutoTokenizer.from_pretrained(tiny_model), 512)
    assert [r.line for r in kept] == [1] and len(lengths) == 1
    assert [r.line for r in too_long] == [2] and "characters" in too_long[0].reason
