"""Prepare refuses to destroy data: a source losing most of its rows stops the stage with a summary that shows why
(after every file is written), a training set too small to train on stops prepare rather than the trainer,
conflicting labels follow the policy, template data from another domain keeps its rows, and `assess` on the sources
never sees a row prepare seals as holdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_data import prepare, read_jsonl, reconciles, write_lines
from test_dedup import template_rows

from tunestack.errors import DataError


def as_rows(messages: list[list[dict]]) -> list[dict]:
    return [{"messages": m} for m in messages]


def test_template_data_with_a_given_eval_file_keeps_every_distinct_row(tmp_path: Path, tiny_model: Path):
    rows = as_rows(template_rows(550, seed=4))
    write_lines(tmp_path / "train.jsonl", rows[100:])
    write_lines(tmp_path / "eval.jsonl", rows[:100])
    body, out = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "train.jsonl"),
                                               "eval_path": str(tmp_path / "eval.jsonl"), "holdout_size": 20,
                                               "max_length": 512})
    assert body["counts"]["read"] == 550 and body["counts"]["kept"] == 550, body["counts"]
    assert body["splits"]["train"] == 430 and read_jsonl(out / "decontaminated.jsonl") == []


def test_the_three_cases_of_the_report_keep_their_rows(tmp_path: Path, tiny_model: Path):
    """The cases that once left 1, 19 and 0 training rows: template rows with a given eval file of 200, 200
    duplicates and 100 eval copies; 300 distinct rows with an eval split of 20 (the third is the test above)."""
    rows = as_rows(template_rows(2200, seed=8))
    eval_rows, train = rows[:200], rows[200:]
    copies = [{"messages": [dict(m, content=m["content"].replace(". ", ".  ")) for m in r["messages"]]}
              for r in train[:200]]
    write_lines(tmp_path / "train.jsonl", train + copies + eval_rows[:100])
    write_lines(tmp_path / "eval.jsonl", eval_rows)
    body, out = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "train.jsonl"),
                                               "eval_path": str(tmp_path / "eval.jsonl"), "holdout_size": 50,
                                               "max_length": 512})
    c = body["counts"]
    assert (c["exact_duplicates"], c["near_duplicates"], c["decontaminated"]) == (200, 0, 100), c
    assert body["splits"]["train"] == 2000 - 50 and reconciles(c)
    write_lines(tmp_path / "small.jsonl", rows[:300])
    body, _ = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "small.jsonl"), "eval_size": 20,
                                             "holdout_size": 10, "max_length": 512}, name="small")
    assert body["counts"]["kept"] == 300 and body["splits"]["train"] == 270


@pytest.mark.parametrize("domain", ["contracts", "classification", "qa", "chat"])
def test_the_prepare_stage_on_each_planted_domain_keeps_every_distinct_row(domain, tmp_path: Path, tiny_model: Path):
    from domains import planted

    p = planted(domain, 100)
    write_lines(tmp_path / "train.jsonl", [{"messages": r["messages"]} for r in p.train])
    write_lines(tmp_path / "eval.jsonl", [{"messages": r["messages"]} for r in p.eval])
    # 300 of the 800 training rows are planted copies: over the default guard, by design
    body, out = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "train.jsonl"),
                                               "eval_path": str(tmp_path / "eval.jsonl"), "holdout_size": 20,
                                               "max_length": 4096, "max_removed_share": 0.6})
    kept = {r["line"] for split in ("train", "holdout") for r in read_jsonl(out / f"{split}.jsonl")
            if r["file"].endswith("train.jsonl")}
    distinct = {i + 1 for i, (kind, _) in p.truth.items() if kind in ("distinct", "slot_variant")}
    copies = {i + 1 for i, (kind, _) in p.truth.items() if kind not in ("distinct", "slot_variant")}
    # A distinct row may go only as a leak of its own slot variant split off into the holdout: the two share all but
    # one slot value, so the holdout row's names and numbers are in it (the n-gram evidence), and training on it
    # would teach the holdout answer.
    leaks = {r["line"]: int(r["matched"].rsplit(":", 1)[1]) for r in read_jsonl(out / "decontaminated.jsonl")
             if r["matched"].startswith("holdout")}
    pairs = {frozenset((i + 1, target + 1)) for i, (kind, target) in p.truth.items() if kind == "slot_variant"}
    lost = distinct - kept
    assert all(frozenset((line, leaks.get(line))) in pairs for line in lost), f"distinct rows lost: {sorted(lost)}"
    assert len(lost) <= 0.01 * len(distinct)
    assert not copies & kept, f"planted copies kept: {sorted(copies & kept)[:10]}"
    c = body["counts"]
    assert reconciles(c) and c["rejected"] == 0 and c["kept"] == len(distinct) - len(lost) + len(p.eval)


def test_a_destructive_case_stops_with_the_evidence_and_three_example_pairs(tmp_path: Path, tiny_model: Path):
    rows = as_rows(template_rows(200, seed=5))
    copies = [{"messages": [dict(m, content=m["content"].lower()) for m in r["messages"]]} for r in rows[:90]]
    write_lines(tmp_path / "d.jsonl", rows)
    write_lines(tmp_path / "copies.jsonl", copies + rows[150:160])
    with pytest.raises(DataError) as info:
        prepare(tmp_path, tiny_model, {"sources": [{"path": str(tmp_path / "d.jsonl")},
                                                   {"path": str(tmp_path / "copies.jsonl")}],
                                       "eval_size": 20, "holdout_size": 10, "max_length": 512})
    message = str(info.value)
    assert "copies.jsonl: 100 of 100 rows would be removed (100%, over max_removed_share=30%): 100 exact duplicates" \
        in message and "d.jsonl" not in message.split("copies.jsonl")[0].split("- ")[-1]
    assert "90x 'case, spacing or punctuation'; 10x 'identical'" in message
    assert message.count("e.g. exact") == 3 and "matched" in message and "How to proceed" in message
    assert "max_removed_share" in message
    out = tmp_path / "run" / "prepare"
    assert len(read_jsonl(out / "duplicates.jsonl")) == 100 and (out / "data_report.md").exists()
    assert not (out / "manifest.json").exists()
    # The per-source limit lets it through, and the counts reconcile.
    body, _ = prepare(tmp_path, tiny_model, {"sources": [{"path": str(tmp_path / "d.jsonl")},
                                                         {"path": str(tmp_path / "copies.jsonl"),
                                                          "max_removed_share": 1.0}],
                                             "eval_size": 20, "holdout_size": 10, "max_length": 512}, name="again")
    assert reconciles(body["counts"]) and body["counts"]["exact_duplicates"] == 100
    report = (tmp_path / "again" / "prepare" / "data_report.md").read_text()
    assert "## Why rows were removed" in report and "| exact | 100 |" in report
    assert (tmp_path / "again" / "prepare" / "removal_similarity.png").stat().st_size > 1000


def test_a_training_set_smaller_than_one_optimizer_step_stops_prepare(tmp_path: Path, tiny_model: Path):
    write_lines(tmp_path / "d.jsonl", as_rows(template_rows(40, seed=6)))
    base = {"path": str(tmp_path / "d.jsonl"), "eval_size": 20, "holdout_size": 10, "max_length": 512}
    with pytest.raises(DataError, match=r"only 10 training rows are left, fewer than 16 \(data.min_train_rows=16"):
        prepare(tmp_path, tiny_model, base)
    body, _ = prepare(tmp_path, tiny_model, {**base, "min_train_rows": 8}, name="small")
    assert body["splits"]["train"] == 10


def conflicting(n: int) -> list[dict]:
    system = {"role": "system", "content": "Classify the ticket as billing, bug or other."}
    return [{"messages": [system, {"role": "user", "content": f"Ticket {i}: the export is slow."},
                          {"role": "assistant", "content": label}]} for i, label in n]


def test_conflicting_labels_within_training_follow_the_policy_and_across_eval_are_leaks(tmp_path: Path,
                                                                                        tiny_model: Path):
    pool = as_rows(template_rows(80, seed=7))
    labels = conflicting([(1, "bug"), (1, "other"), (1, "bug "), (2, "billing"), (2, "bug")])
    # (1, "bug ") is a duplicate of the first: majority is bug (2 rows) against other (1)
    write_lines(tmp_path / "d.jsonl", pool + labels)
    write_lines(tmp_path / "eval.jsonl", conflicting([(3, "other")]) + pool[:0])
    write_lines(tmp_path / "train_with_eval_prompt.jsonl", conflicting([(3, "bug")]))
    body, out = prepare(tmp_path, tiny_model, {
        "sources": [{"path": str(tmp_path / "d.jsonl")}, {"path": str(tmp_path / "train_with_eval_prompt.jsonl"),
                                                          "max_removed_share": 1.0}],
        "eval_path": str(tmp_path / "eval.jsonl"), "holdout_size": 5, "max_length": 512, "conflicts": "majority"})
    records = read_jsonl(out / "duplicates.jsonl")
    conflicts = sorted(r["line"] for r in records if r["kind"] == "conflicting_label")
    assert conflicts == [82, 85]  # "other" loses to bug x2; the tie 2:billing/bug goes to billing, seen first
    assert body["counts"]["conflicting_labels"] == 2 and reconciles(body["counts"])
    leaks = read_jsonl(out / "decontaminated.jsonl")
    assert [(Path(r["file"]).name, r["kind"]) for r in leaks] == [("train_with_eval_prompt.jsonl", "prompt")]


def test_assess_on_the_sources_never_samples_a_sealed_row(tmp_path: Path, tiny_config: Path):
    from tunestack.assess.sample import source_rows
    from tunestack.config import load_config
    from tunestack.pipeline import execute
    from tunestack.rundir import RunDir

    cfg = load_config(tiny_config, ["assess.data=sources"])
    run = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)
    execute(cfg, run, "prepare")
    sealed = {(r["file"], r["line"]) for r in read_jsonl(run.root / "prepare" / "holdout.jsonl")}
    assert len(sealed) == 8
    rows = source_rows(cfg)
    assert not sealed & {(r.file, r.line) for r in rows}
    # Only the sealed rows and their copies are left out: every other row the quality policy keeps is there.
    from tunestack.data.checks import apply_quality
    from tunestack.data.prepare import Ledger, read_inputs

    everything, _ = apply_quality(read_inputs(cfg, Ledger())[0], 4, {})
    copies = {(r["file"], r["line"]) for r in read_jsonl(run.root / "prepare" / "duplicates.jsonl")
              if (r["duplicate_of"]["file"], r["duplicate_of"]["line"]) in sealed}
    left_out = {(r.file, r.line) for r in everything} - {(r.file, r.line) for r in rows}
    assert left_out - copies == sealed
    # A given holdout file is sealed too: none of its rows, nor copies of them in the sources, are sampled.
    data = yaml.safe_load(tiny_config.read_text())["data"]["path"]
    lines = Path(data).read_text().splitlines()
    holdout = tmp_path / "holdout.jsonl"
    holdout.write_text("\n".join(lines[:5]) + "\n")
    cfg = load_config(tiny_config, ["assess.data=sources", f"data.holdout_path={holdout}"])
    texts = {json.dumps(json.loads(line)["messages"]) for line in lines[:5]}
    assert not texts & {json.dumps(r.messages) for r in source_rows(cfg)}

