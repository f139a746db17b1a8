"""prepare: every input format, every bad row in rejects with file, line and reason, counts that reconcile,
quality tiers, consistency checks, splits, the sealed holdout, lengths and the data report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tunestack.data.formats import normalize_row
from tunestack.data.splits import split_rows, split_sizes
from tunestack.data.readers import read_source
from tunestack.demo.radiology import generate
from tunestack.errors import DataError
from tunestack.rundir import read_jsonl

COUNTS = ("read", "kept", "rejected", "exact_duplicates", "near_duplicates", "conflicting_labels", "decontaminated")


def chat(user: str, answer: str, **meta) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], **meta}


GOOD = chat("hi", "hello")


def write_lines(path: Path, lines: list) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else json.dumps(x).encode() for x in lines) + b"\n")
    return path


def prepare(tmp_path: Path, tiny_model: Path, data: dict, name: str = "run"):
    """Run the prepare stage on a config whose `data` section is given; returns (manifest body, output folder)."""
    from transformers import AutoTokenizer

    from tunestack.config import parse_config
    from tunestack.data.prepare import run_prepare
    from tunestack.rundir import RunDir

    cfg = parse_config(yaml.safe_dump({"data": data, "evaluate": {"format": {"type": "json"},
                                                                  "retention": {"quartz_examples": 0}}}), [])
    run = RunDir(tmp_path / name)
    body = run_prepare(cfg, run, AutoTokenizer.from_pretrained(tiny_model))
    return body, run.root / "prepare"


def reconciles(counts: dict) -> bool:
    return counts["read"] == sum(counts[c] for c in COUNTS[1:])


def demo_rows(n: int, seed: int = 3) -> list[dict]:
    return generate(n, seed=seed)


# --- the malformed corpus: 20+ kinds of bad rows across JSONL, CSV and preference files ------------------------

MALFORMED_JSONL = [  # (line content, expected reason fragment); None = a valid row that must be kept
    (b"\xef\xbb\xbf" + json.dumps(GOOD).encode(), None),                                   # BOM on line 1: valid
    (b"{not json", "invalid JSON"),
    (json.dumps([1, 2]).encode(), "expected a JSON object"),
    (json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(), "unknown role"),
    (json.dumps(chat("q", " ")).encode(), "(assistant) is empty"),
    (b"\xff\xfe bad bytes", "not valid UTF-8"),
    (json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}).encode(),
     "must be a string"),
    (json.dumps({"text": "no messages"}).encode(), "unknown row format"),
    (json.dumps({"messages": [{"role": "user", "content": "only a question"}]}).encode(), "last turn"),
    (json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                              {"role": "assistant", "content": "c"}]}).encode(), "alternate"),
    (json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"},
                              {"role": "assistant", "content": "c"}]}).encode(), "only the first turn"),
    (b'{"messages": [{"role": "user", "content": "bad \\ud800 escape"}, {"role": "assistant", "content": "x"}]}',
     "unpaired surrogate"),
    (json.dumps(chat("nul \x00 inside", "x")).encode(), "NUL"),
    (json.dumps(chat("q", "big " * 2_600_000)).encode(), "far over the token limit"),  # a 10 MB line
    (json.dumps(chat("q", "a", source="scraped")).encode(), "'source' is 'scraped'"),
    (json.dumps(chat("q", "a", rating="great")).encode(), "'rating' must be a number"),
    (json.dumps({"instruction": 7, "output": "x"}).encode(), "'instruction' and 'input' must be strings"),
    (json.dumps({"messages": []}).encode(), "non-empty list"),
    (json.dumps({"messages": [{"role": "system", "content": "s"}]}).encode(), "only a system turn"),
    (json.dumps(chat("q", "a", tags=[1, 2])).encode(), "'tags' must be a list of strings"),
    (json.dumps({"prompt": "Hi", "completion": 3}).encode(), "'completion' must be a string"),
]
PREFERENCES = [
    ({"prompt": "Capital of Mongolia?", "chosen": "Ulaanbaatar", "rejected": "Darkhan"}, None),  # no probe asks it
    ({"prompt": "2+2?", "chosen": "4", "rejected": " 4 "}, "identical"),
    ({"chosen": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
      "rejected": [{"role": "user", "content": "DIFFERENT"}, {"role": "assistant", "content": "c"}]},
     "same conversation"),
    ({"prompt": "x?", "chosen": "y", "rejected": ""}, "non-empty assistant answer"),
    ({"prompt": "x?", "chosen": "y"}, "needs both"),
]


def write_malformed(folder: Path) -> tuple[dict, dict]:
    """The corpus in three files, plus 40 good demo rows so there is something to split; returns (sources config,
    expected {(file name, line): reason fragment or None})."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    good = [json.dumps(r).encode() for r in demo_rows(40)]
    lines = [content for content, _ in MALFORMED_JSONL] + good
    write_lines(folder / "bad.jsonl", lines)
    expected.update({("bad.jsonl", i): reason for i, (_, reason) in enumerate(MALFORMED_JSONL, start=1)})
    expected.update({("bad.jsonl", len(MALFORMED_JSONL) + i): None for i in range(1, 41)})
    # CSV: a broken quote on line 3 must not swallow lines 4-5; line 6 has too many fields.
    pairs = [(r["messages"][1]["content"], r["messages"][2]["content"]) for r in demo_rows(3, seed=11)]

    def q(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    text = "".join(["question,answer\n", f"{q(pairs[0][0])},{q(pairs[0][1])}\n", '"an unclosed quote,{}\n',
                    f"{q(pairs[1][0])},{q(pairs[1][1])}\n", f"{q(pairs[2][0])},{q(pairs[2][1])}\n",
                    "one,two,three\n"])
    (folder / "bad.csv").write_text(text, encoding="utf-8")
    expected.update({("bad.csv", 2): None, ("bad.csv", 3): "broken CSV quoting", ("bad.csv", 4): None,
                     ("bad.csv", 5): None, ("bad.csv", 6): "3 fields where the header has 2"})
    write_lines(folder / "pairs.jsonl", [p for p, _ in PREFERENCES])
    expected.update({("pairs.jsonl", i): reason for i, (_, reason) in enumerate(PREFERENCES, start=1)})
    sources = [{"path": str(folder / "bad.jsonl")},
               {"path": str(folder / "bad.csv"), "columns": {"prompt": "question", "completion": "answer"}},
               {"path": str(folder / "pairs.jsonl"), "format": "preference"}]
    return sources, expected


def test_malformed_corpus_every_bad_row_lands_in_rejects_and_counts_reconcile(tmp_path: Path, tiny_model: Path):
    sources, expected = write_malformed(tmp_path / "in")
    assert sum(1 for reason in expected.values() if reason) >= 15
    body, out = prepare(tmp_path, tiny_model, {"sources": sources, "eval_size": 5, "holdout_size": 2,
                                               "max_reject_rate": 1.0, "max_removed_share": 1.0,
                                               "max_length": 256, "min_train_rows": 1})
    rejects = {(Path(r["file"]).name, r["line"]): r["reason"] for r in read_jsonl(out / "rejects.jsonl")}
    for where, fragment in expected.items():
        if fragment is None:
            assert where not in rejects, (where, rejects.get(where))
        else:
            assert where in rejects and fragment in rejects[where], (where, fragment, rejects.get(where))
    kept = [(Path(r["file"]).name, r["line"]) for split in ("train", "eval", "holdout")
            for r in read_jsonl(out / f"{split}.jsonl")]
    good = [where for where, fragment in expected.items() if fragment is None]
    assert len(good) >= 40
    missing = [where for where in good if where not in kept]
    assert not missing, f"good rows lost: {missing}"  # every good row reaches train, eval or holdout
    assert len(kept) == len(set(kept)) == len(good)
    assert reconciles(body["counts"]) and all(reconciles(c) for c in body["sources"].values())
    assert body["sources"]["bad.csv"]["read"] == 5 and body["sources"]["pairs.jsonl"]["read"] == 5
    pair = next(r for r in [*read_jsonl(out / "train.jsonl"), *read_jsonl(out / "eval.jsonl"),
                            *read_jsonl(out / "holdout.jsonl")] if r.get("rejected"))
    assert pair["messages"][-1]["content"] == "Ulaanbaatar" and pair["rejected"] == "Darkhan"


def test_too_many_malformed_rows_stop_the_stage_with_a_summary_and_keep_the_rejects(tmp_path: Path,
                                                                                      tiny_model: Path):
    sources, _ = write_malformed(tmp_path / "in")
    with pytest.raises(DataError, match=r"pairs.jsonl: 4 of 5 rows are malformed .*identical") as info:
        prepare(tmp_path, tiny_model, {"sources": sources, "eval_size": 5, "holdout_size": 2,
                                       "max_reject_rate": 0.5})
    assert "bad.jsonl" not in str(info.value)  # 19 of 61 malformed: under the limit
    assert len(read_jsonl(tmp_path / "run" / "prepare" / "rejects.jsonl")) >= 20


# --- formats -----------------------------------------------------------------------------------------------

def test_csv_parquet_and_datasets_folder_read_like_jsonl_with_a_column_mapping(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    records = [{"q": r["messages"][1]["content"], "a": r["messages"][2]["content"], "score": i % 5,
                "conv_tags": "x,y"} for i, r in enumerate(demo_rows(6))]
    records[2]["q"] = 'a "quoted", comma\nand a second line'
    with (tmp_path / "d.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "d.parquet")
    DatasetDict({"train": Dataset.from_list(records)}).save_to_disk(str(tmp_path / "folder"))
    write_lines(tmp_path / "d.jsonl", records)
    columns = {"prompt": "q", "completion": "a", "rating": "score", "tags": "conv_tags"}
    results = {}
    for name in ("d.jsonl", "d.csv", "d.parquet", "folder"):
        rows, rejects = read_source(tmp_path / name, columns=columns, declared="prompt_completion")
        assert not rejects, rejects
        results[name] = [(r.messages, r.meta) for r in rows]
    assert results["d.csv"] == results["d.jsonl"] == results["d.parquet"] == results["folder"]
    assert results["d.csv"][2][0][0]["content"].endswith("and a second line")
    assert results["d.csv"][1][1] == {"rating": 1.0, "tags": ["x", "y"]}


def test_declared_format_rejects_rows_of_another_shape():
    with pytest.raises(ValueError, match="expected a alpaca row, this one looks like chat"):
        normalize_row(GOOD, "alpaca")
    assert normalize_row({"chosen": GOOD["messages"], "rejected": [*GOOD["messages"][:1],
                                                                    {"role": "assistant", "content": "bye"}]},
                         "preference")["rejected"] == "bye"


# --- quality, consistency, splits ----------------------------------------------------------------------------

def test_production_rows_need_a_review_or_rating_and_tiers_are_counted_and_capped(tmp_path: Path, tiny_model: Path):
    rows = demo_rows(60)
    lines = [dict(r, source="synthetic") for r in rows[:30]]
    lines += [dict(r, source="production", rating=[5, 2, None][i % 3]) for i, r in enumerate(rows[30:45])]
    lines += [dict(r, source="production", reviewed=True) for r in rows[45:50]]
    lines += rows[50:]  # no provenance: the source's default applies
    write_lines(tmp_path / "d.jsonl", lines)
    body, out = prepare(tmp_path, tiny_model, {
        "sources": [{"path": str(tmp_path / "d.jsonl"), "provenance": "human"}], "eval_size": 5, "holdout_size": 2,
        "quality": {"production_min_rating": 4, "tier_caps": {"synthetic": 20}},
        "max_removed_share": 0.5})  # the policy drops a third of the rows here, by design
    rejects = read_jsonl(out / "rejects.jsonl")
    quality = sorted(r["line"] for r in rejects if r["kind"] == "quality")
    assert quality == [i for i in range(31, 46) if (i - 31) % 3 != 0]  # rated 2 or unrated
    assert sorted(r["line"] for r in rejects if r["kind"] == "tier_cap") == list(range(21, 31))
    assert body["tiers"]["production"] == {"read": 20, "kept": 10}
    assert body["tiers"]["synthetic"] == {"read": 30, "kept": 20} and body["tiers"]["human"]["read"] == 10
    assert reconciles(body["counts"])


def test_mixed_answer_formats_warn_and_fail_when_strict(tmp_path: Path, tiny_model: Path):
    rows = demo_rows(40)
    rows[7] = chat(rows[7]["messages"][1]["content"], "The modality is CT and the region is the chest.")
    write_lines(tmp_path / "d.jsonl", rows)
    body, _ = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "d.jsonl"), "eval_size": 5, "holdout_size": 2})
    messages = " ".join(body["warnings"])
    assert "2 different answer formats" in messages and "d.jsonl:8" in messages
    assert "2 different system prompts" in messages  # row 8 also lost the system prompt
    with pytest.raises(DataError, match="answer formats"):
        prepare(tmp_path, tiny_model, {"path": str(tmp_path / "d.jsonl"), "eval_size": 5, "holdout_size": 2,
                                       "strict": True}, name="strict")


def test_split_is_deterministic_and_disjoint():
    rows = list(range(100))
    a = split_rows(rows, 10, 5, seed=1)
    assert a == split_rows(rows, 10, 5, seed=1)
    assert len(set(a["train"]) | set(a["eval"]) | set(a["holdout"])) == 100
    assert split_rows(rows, 10, 5, seed=2)["eval"] != a["eval"]


def test_stratified_split_keeps_each_stratum_in_proportion():
    rows = [{"k": "a"}] * 60 + [{"k": "b"}] * 30 + [{"k": "c"}] * 10
    rows = [dict(r, i=i) for i, r in enumerate(rows)]
    parts = split_rows(rows, 20, 10, seed=0, key=lambda r: r["k"])
    assert [sum(r["k"] == k for r in parts["eval"]) for k in "abc"] == [12, 6, 2]
    assert [sum(r["k"] == k for r in parts["holdout"]) for k in "abc"] == [6, 3, 1]
    assert len({r["i"] for p in parts.values() for r in p}) == 100


def test_split_that_leaves_nothing_to_train_is_an_error():
    with pytest.raises(DataError, match="nothing to train on"):
        split_sizes(100, 80, 20)


def test_given_eval_and_holdout_files_are_used_and_train_is_decontaminated_against_them(tmp_path: Path,
                                                                                          tiny_model: Path):
    rows = demo_rows(50)
    write_lines(tmp_path / "train.jsonl", rows[:40] + [rows[41]])  # row 41 is also in the eval file: a leak
    write_lines(tmp_path / "eval.jsonl", rows[40:46])
    write_lines(tmp_path / "holdout.jsonl", rows[46:50])
    body, out = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "train.jsonl"),
                                               "eval_path": str(tmp_path / "eval.jsonl"),
                                               "holdout_path": str(tmp_path / "holdout.jsonl"),
                                               "stratify_by": "answer.modality"})
    assert body["splits"]["eval"] == 6 and body["splits"]["holdout"] == 4 and body["splits"]["train"] == 40
    leaks = read_jsonl(out / "decontaminated.jsonl")
    assert [(leak["line"], leak["kind"]) for leak in leaks] == [(41, "exact")]
    assert leaks[0]["matched"].startswith("eval ") and leaks[0]["matched"].endswith("eval.jsonl:2")
    assert all(reconciles(c) for c in body["sources"].values())


def test_source_weights_repeat_or_subsample_training_rows(tmp_path: Path, tiny_model: Path):
    rows = demo_rows(70)
    write_lines(tmp_path / "a.jsonl", rows[:40])
    write_lines(tmp_path / "b.jsonl", rows[40:])
    body, out = prepare(tmp_path, tiny_model, {"sources": [{"path": str(tmp_path / "a.jsonl"), "weight": 0.5},
                                                           {"path": str(tmp_path / "b.jsonl"), "weight": 2}],
                                               "eval_size": 6, "holdout_size": 4})
    w = body["weighting"]
    assert w["a.jsonl"]["rows"] == round(w["a.jsonl"]["unique"] * 0.5) and w["b.jsonl"]["rows"] == 2 * w["b.jsonl"][
        "unique"]
    assert body["splits"]["train"] == w["a.jsonl"]["rows"] + w["b.jsonl"]["rows"]
    assert len(read_jsonl(out / "weighted_out.jsonl")) == w["a.jsonl"]["unique"] - w["a.jsonl"]["rows"]


# --- lengths ----------------------------------------------------------------------------------------------

def test_truncation_keeps_the_answer_and_its_eos_and_fail_stops(tmp_path: Path, tiny_model: Path):
    from transformers import AutoTokenizer

    from tunestack.chat import render_example
    from tunestack.data.lengths import truncate

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rows = demo_rows(30)
    long_report = " ".join(r["messages"][1]["content"] for r in rows[:12])
    rows[3]["messages"][1]["content"] = long_report
    rows[4]["messages"] = [rows[4]["messages"][0], {"role": "user", "content": long_report},
                           {"role": "assistant", "content": "earlier answer"}, *rows[4]["messages"][1:]]
    write_lines(tmp_path / "d.jsonl", rows)
    body, out = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "d.jsonl"), "eval_size": 3,
                                               "holdout_size": 2, "max_length": 128, "too_long": "truncate"})
    assert body["lengths"]["over_max_length"] == 2 and body["lengths"]["truncated"] == 2
    cut = [r for p in ("train", "eval", "holdout") for r in read_jsonl(out / f"{p}.jsonl") if r.get("truncated")]
    assert sorted(r["line"] for r in cut) == [4, 5]
    for row in cut:
        assert row["messages"][-1] == rows[row["line"] - 1]["messages"][-1]  # the answer is intact
        ids = render_example(tokenizer, row["messages"]).input_ids
        assert len(ids) <= 128 and ids[-1] == tokenizer.eos_token_id
    assert len(next(r for r in cut if r["line"] == 5)["messages"]) == 3  # the oldest exchange was dropped
    assert truncate(tokenizer, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a " * 400}],
                    128) is None
    with pytest.raises(DataError, match="2 rows are longer than data.max_length=128"):
        prepare(tmp_path, tiny_model, {"path": str(tmp_path / "d.jsonl"), "eval_size": 3, "holdout_size": 2,
                                       "max_length": 128, "too_long": "fail"}, name="fail")


# --- holdout, eval age, report, general suite --------------------------------------------------------------

def test_holdout_is_sealed_and_every_read_is_logged(tmp_path: Path, tiny_model: Path):
    from tunestack.data.holdout import holdout_reads, read_holdout
    from tunestack.rundir import RunDir, write_json

    write_lines(tmp_path / "d.jsonl", demo_rows(40))
    body, out = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "d.jsonl"), "eval_size": 5, "holdout_size": 4})
    run = RunDir(tmp_path / "run")
    write_json(out / "manifest.json", body)  # what the pipeline does when the stage finishes
    ledger = tmp_path / "ledger.jsonl"
    assert holdout_reads(run, ledger) == []
    assert len(read_holdout(run, ledger, "test: final validation")) == 4
    assert [r["reader"] for r in holdout_reads(run, ledger)] == ["test: final validation"]
    (out / "holdout.jsonl").write_text((out / "holdout.jsonl").read_text() + json.dumps(GOOD) + "\n")
    with pytest.raises(DataError, match="changed after prepare sealed it"):
        read_holdout(run, ledger, "test")


def test_old_eval_set_gets_a_rotation_warning(tmp_path: Path, tiny_model: Path):
    write_lines(tmp_path / "d.jsonl", demo_rows(40))
    body, _ = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "d.jsonl"), "eval_size": 5, "holdout_size": 2,
                                             "eval_created": "2020-01-01"})
    assert body["eval_age_days"] > 90 and any("rotate it" in w for w in body["warnings"])
    fresh, _ = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "d.jsonl"), "eval_size": 5, "holdout_size": 2},
                       name="fresh")
    assert fresh["eval_age_days"] == 0 and not any("rotate" in w for w in fresh["warnings"])


def test_data_report_shows_every_count_and_a_length_histogram(tmp_path: Path, tiny_model: Path):
    rows = demo_rows(40)
    write_lines(tmp_path / "d.jsonl", rows + [rows[0], b"{bad"])
    body, out = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "d.jsonl"), "eval_size": 5, "holdout_size": 2})
    report = (out / "data_report.md").read_text()
    for count in COUNTS:
        assert count in report
    assert "| d.jsonl | 42 | 40 | 1 | 1 | 0 | 0 | 0 |" in report
    assert (out / "length_histogram.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "data_report.json").read_text())["counts"] == body["counts"]
    assert body["lengths"]["splits"]["train"]["count"] == 33


def test_training_and_general_rows_that_copy_a_general_eval_probe_are_removed(tmp_path: Path, tiny_model: Path):
    from tunestack.data.suites import load_probes

    probe = load_probes("builtin")[0]
    rows = demo_rows(40) + [chat(probe["prompt"], probe["answers"][0])]
    write_lines(tmp_path / "d.jsonl", rows)
    general = [chat(probe["prompt"], probe["answers"][0]), chat("Name a warm colour.", "Red is a warm colour.")]
    write_lines(tmp_path / "general.jsonl", general)
    from transformers import AutoTokenizer

    from tunestack.config import parse_config
    from tunestack.data.prepare import run_prepare
    from tunestack.rundir import RunDir

    cfg = parse_config(yaml.safe_dump({
        # one of the general file's two rows is a planted leak: half of that source goes, by design
        "data": {"path": str(tmp_path / "d.jsonl"), "eval_size": 5, "holdout_size": 2, "max_removed_share": 0.6},
        "train": {"general_mix": {"source": "file", "path": str(tmp_path / "general.jsonl"), "share": 0.12}},
        "evaluate": {"format": {"type": "json"}, "retention": {"quartz_examples": 10}}}), [])
    body = run_prepare(cfg, RunDir(tmp_path / "run"), AutoTokenizer.from_pretrained(tiny_model))
    out = tmp_path / "run" / "prepare"
    leaks = read_jsonl(out / "decontaminated.jsonl")
    assert sorted((Path(x["file"]).name, x["matched"]) for x in leaks) == [("d.jsonl", "probes"),
                                                                         ("general.jsonl", "probes")]
    assert [r["messages"][0]["content"] for r in read_jsonl(out / "general.jsonl")] == ["Name a warm colour."]
    assert body["sources"]["general mix"] == {"read": 2, "kept": 1, "rejected": 0, "exact_duplicates": 0,
                                              "near_duplicates": 0, "conflicting_labels": 0, "decontaminated": 1}
    assert body["general_mix"]["source"] == "file" and body["general_mix"]["available"] == 1


# --- odd but plausible input found in review ---------------------------------------------------------------

def test_odd_rows_are_rejected_not_fatal(tmp_path: Path):
    lines = [{"prompt": "q", "chosen": ["a"], "rejected": ["b"]},                # turns that are not messages
             {"chosen": ["x", "y"], "rejected": ["x", "z"]},
             {"prompt": "q", "chosen": "a", "rejected": [5]},
             dict(GOOD, rejected=False, reviewer="ann"),                          # chat row with review metadata
             dict(GOOD, source="production", rating=True),                        # a bool is not a rating
             dict(GOOD, source="production", rating=float("inf"))]
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")  # inf is written as Infinity
    rows, rejects = read_source(path)
    assert [r.line for r in rows] == [4] and rows[0].meta["rejected"] is False
    reasons = {r.line: r.reason for r in rejects}
    assert set(reasons) == {1, 2, 3, 5, 6}
    assert "one assistant answer" in reasons[1] and "finite" in reasons[6] and "number" in reasons[5]


def test_parquet_timestamps_and_long_quoted_csv_fields_are_kept_whole(tmp_path: Path):
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"prompt": "q", "completion": "a", "created": dt.datetime(2026, 1, 2)}]),
                   tmp_path / "t.parquet")
    rows, rejects = read_source(tmp_path / "t.parquet")
    assert not rejects and json.dumps(rows[0].to_json())  # JSON-safe
    code = "\n".join(f"x{i} = f(a, b)" for i in range(250))
    with (tmp_path / "code.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", "completion"])
        writer.writerow(["Write code", code])
    rows, rejects = read_source(tmp_path / "code.csv")
    assert not rejects and len(rows) == 1 and rows[0].messages[-1]["content"] == code


def test_a_given_eval_file_keeps_its_copies_out_of_the_split_off_holdout(tmp_path: Path, tiny_model: Path):
    rows = demo_rows(60)
    write_lines(tmp_path / "d.jsonl", rows)
    write_lines(tmp_path / "eval.jsonl", rows[:10])
    body, out = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "d.jsonl"),
                                               "eval_path": str(tmp_path / "eval.jsonl"), "holdout_size": 0.3})
    eval_users = {r["messages"][1]["content"] for r in read_jsonl(out / "eval.jsonl")}
    holdout = read_jsonl(out / "holdout.jsonl")
    assert holdout and not any(r["messages"][1]["content"] in eval_users for r in holdout)
    assert body["counts"]["decontaminated"] == 10 and all(reconciles(c) for c in body["sources"].values())


def test_a_stratify_field_no_row_has_is_an_error(tmp_path: Path, tiny_model: Path):
    write_lines(tmp_path / "d.jsonl", demo_rows(30))
    with pytest.raises(DataError, match="no row has a field 'categroy'"):
        prepare(tmp_path, tiny_model, {"path": str(tmp_path / "d.jsonl"), "eval_size": 5, "holdout_size": 2,
                                       "stratify_by": "categroy"})
