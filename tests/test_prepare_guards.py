"""Prepare refuses to destroy data: a source losing most of its rows stops the stage with a summary that shows why
(after every file is written), a training set too small to train on stops prepare rather than the trainer,
conflicting labels follow the policy, template data from another domain keeps its rows, and `assess` on the sources
never sees a row prepare seals as holdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from domains import DOMAINS
from test_data import chat, prepare, read_jsonl, reconciles, write_lines
from test_dedup import template_rows

from tunestack.data import guard
from tunestack.data.guard import mark_differences, removal_problems
from tunestack.errors import DataError

# the planted fixtures are built once a process (lru_cache in tests/domains.py): under pytest-xdist these tests
# share one worker, so they are built once
pytestmark = pytest.mark.xdist_group("domains")


def as_rows(messages: list[list[dict]]) -> list[dict]:
    return [{"messages": m} for m in messages]


def stop_message(tmp_path: Path, tiny_model: Path, rows: list, copies: list, **data) -> str:
    """Prepare on `rows` (source d.jsonl) beside `copies` (source copies.jsonl), which must stop it: the message."""
    write_lines(tmp_path / "d.jsonl", rows)
    write_lines(tmp_path / "copies.jsonl", copies)
    with pytest.raises(DataError) as info:
        prepare(tmp_path, tiny_model, {"sources": [{"path": str(tmp_path / "d.jsonl")},
                                                   {"path": str(tmp_path / "copies.jsonl")}], **data})
    return str(info.value)


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


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_prepare_stage_on_each_planted_domain_keeps_every_distinct_row(domain, tmp_path: Path, tiny_model: Path):
    """The whole stage on each planted domain (symbols, code, a script without spaces, the four prose ones): every
    distinct row kept, every copy of a training or eval row gone, near copies by inserted words listed."""
    from domains import DISTINCT
    from test_domains_dedup import _planted

    p = _planted(domain, 100)  # built once a session, shared with the detector tests
    write_lines(tmp_path / "train.jsonl", [{"messages": r["messages"]} for r in p.train])
    write_lines(tmp_path / "eval.jsonl", [{"messages": r["messages"]} for r in p.eval[:80]])
    write_lines(tmp_path / "holdout.jsonl", [{"messages": r["messages"]} for r in p.eval[80:]])
    kind = {i + 1: k for i, (k, _) in p.truth.items()}  # by line
    distinct = {line for line, k in kind.items() if k in DISTINCT}
    removed = {line for line, k in kind.items() if k not in DISTINCT and k != "inserted_dup"}
    share = len(removed) / len(p.train) + 0.05  # the planted copies, by construction, and a margin
    body, out = prepare(tmp_path, tiny_model, {"path": str(tmp_path / "train.jsonl"),
                                               "eval_path": str(tmp_path / "eval.jsonl"),
                                               "holdout_path": str(tmp_path / "holdout.jsonl"),
                                               "max_length": 4096, "max_removed_share": share})
    kept = {r["line"] for r in read_jsonl(out / "train.jsonl") if r["file"].endswith("train.jsonl")}
    lost = {line: kind[line] for line in distinct - kept}
    assert not lost, f"distinct rows lost: {sorted(lost.items())[:10]}"
    assert not removed & kept, f"planted copies kept: {sorted((n, kind[n]) for n in removed & kept)[:10]}"
    inserted = {line: p.truth[line - 1][1] + 1 for line, k in kind.items() if k == "inserted_dup"}
    # the training split is shuffled, so either row of a pair may come first and be listed as the copy
    listed = {frozenset((r["line"], r["duplicate_of"]["line"])) for r in read_jsonl(out / "near_copies.jsonl")}
    found = [line for line, original in inserted.items() if frozenset((line, original)) in listed]
    assert len(found) >= 0.99 * len(inserted) and len(listed) == len(found), (len(found), len(listed))
    c = body["counts"]
    assert reconciles(c) and c["rejected"] == 0 and c["kept"] == len(distinct) + len(inserted) + len(p.eval)
    assert body["identity_rule"] == "identity-2" and "identity-2" in (out / "data_report.md").read_text()


@pytest.mark.parametrize("domain", ["labs", "code", "chinese"])
def test_a_source_of_planted_copies_stops_the_stage(domain, tmp_path: Path, tiny_model: Path):
    """The distinct rows beside a second source that is all planted copies of them: that source stops the stage,
    with its summary."""
    from domains import DISTINCT
    from test_domains_dedup import _planted

    p = _planted(domain, 100)
    write_lines(tmp_path / "eval.jsonl", [{"messages": r["messages"]} for r in p.eval[:80]])
    write_lines(tmp_path / "holdout.jsonl", [{"messages": r["messages"]} for r in p.eval[80:]])
    copies = [{"messages": p.train[i]["messages"]} for i, (k, _) in p.truth.items() if k in ("exact_dup", "near_dup")]
    message = stop_message(tmp_path, tiny_model, [{"messages": r["messages"]} for i, r in enumerate(p.train)
                                                  if p.truth[i][0] in DISTINCT], copies,
                           eval_path=str(tmp_path / "eval.jsonl"), holdout_path=str(tmp_path / "holdout.jsonl"),
                           max_length=4096)
    assert f"copies.jsonl: {len(copies)} of {len(copies)} rows would be removed" in message, message[:600]
    assert "\n- d.jsonl:" not in message  # the distinct rows' source loses nothing
    assert "How to proceed" in message and "accept the loss" not in message


def test_a_destructive_case_stops_with_the_evidence_and_three_example_pairs(tmp_path: Path, tiny_model: Path):
    rows = as_rows(template_rows(200, seed=5))
    copies = [{"messages": [dict(m, content=m["content"].lower()) for m in r["messages"]]} for r in rows[:90]]
    message = stop_message(tmp_path, tiny_model, rows, copies + rows[150:160], eval_size=20, holdout_size=10,
                           max_length=512)
    assert "copies.jsonl: 100 of 100 rows would be removed (100%, over data.max_removed_share=30%): 100 exact " \
           "duplicates" in message and "d.jsonl" not in message.split("copies.jsonl")[0].split("- ")[-1]
    assert "90x 'case, spacing or punctuation'; 10x 'identical'" in message
    assert message.count("e.g. exact") == 3 and "matched" in message and "How to proceed" in message
    # Each example pair shows both texts, the characters that differ marked: here only case, so real copies.
    assert message.count("\n      removed  [t]his [a]greement is made between [") == 3
    assert message.count("\n      matched  [T]his [A]greement is made between [") == 3
    flat = " ".join(message.split())
    assert "This stop is data.max_removed_share (now 30%; this source loses 100%)" in flat
    assert "accept the loss" not in flat and "to 1.0" not in flat
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


def receptor_rows(n: int) -> list[dict]:
    """Distinct rows (by report number) whose answers carry their meaning in signs."""
    sign = "+-"
    return [chat(f"Pathology report {i:03d}: invasive ductal carcinoma, grade {i % 3 + 1}. State the receptor status.",
                 f"Receptor status: ER{sign[i % 2]}, PR{sign[i // 2 % 2]}, HER2{sign[i // 4 % 2]}.") for i in range(n)]


def test_real_copies_of_symbol_bearing_rows_stop_with_marked_pairs_and_advice_that_checks_the_rule_first(
        tmp_path: Path, tiny_model: Path):
    """40 copies of sign-bearing answers that differ from their originals in case only: the stop shows an example
    pair with exactly the changed letters marked, and its first advice is to check the identity rule against them."""
    rows = receptor_rows(40)
    copies = [chat(r["messages"][0]["content"], r["messages"][1]["content"].lower()) for r in rows]
    message = stop_message(tmp_path, tiny_model, rows + as_rows(template_rows(40, seed=10)), copies, eval_size=10,
                           holdout_size=5, max_length=512)
    assert "copies.jsonl: 40 of 40 rows would be removed (100%, over data.max_removed_share=30%): 40 exact " \
           "duplicates." in message
    prompt = rows[0]["messages"][0]["content"]  # report 000: ER+, PR+, HER2+; its copy is the first example
    assert f"e.g. exact {tmp_path / 'copies.jsonl'}:1 (similarity " in message
    assert f"\n      removed  {prompt} [r]eceptor status: [er]+, [pr]+, [her]2+.\n" in message
    assert f"\n      matched  {prompt} [R]eceptor status: [ER]+, [PR]+, [HER]2+." in message
    flat = " ".join(message.split())
    advice = flat.split("How to proceed:")[1]
    assert advice.startswith(" 1. Check the rule against these rows first: look at the marked characters.")
    assert "(a sign, an operator, a unit, a negation)" in advice and "a bug to report with these pairs" in advice
    assert "`kind: code` (data.sources[].kind)" in advice
    assert advice.index("identity rule") < advice.index("2. If they really are copies") < advice.index("`weight`")
    assert "accept the loss" not in flat.lower()
    assert "not malformed rows (data.max_reject_rate governs those)" in flat


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_limit_on_malformed_rows_is_honoured_and_the_other_limit_leaves_them_out(suffix, tmp_path: Path,
                                                                                  tiny_model: Path):
    """Once, a two-row file with one broken row stopped prepare through max_removed_share (50% removed) even under
    `max_reject_rate: 1.0`. max_reject_rate governs malformed rows; max_removed_share counts every other removal."""
    write_lines(tmp_path / "main.jsonl", as_rows(template_rows(60, seed=9)))
    good = ("What does ER+ mean in a pathology report?", "The tumour cells carry oestrogen receptors.")
    broken = tmp_path / f"broken.{suffix}"
    if suffix == "csv":
        broken.write_text(f'question,answer\n"an unclosed quote,{{}}\n"{good[0]}","{good[1]}"\n', encoding="utf-8")
        source, bad_line = {"path": str(broken), "columns": {"prompt": "question", "completion": "answer"}}, 2
    else:
        write_lines(broken, [b'{"messages": [', chat(*good)])
        source, bad_line = {"path": str(broken)}, 1
    base = {"sources": [{"path": str(tmp_path / "main.jsonl")}, source], "eval_size": 5, "holdout_size": 5,
            "max_length": 512, "min_train_rows": 8}
    with pytest.raises(DataError) as info:
        prepare(tmp_path, tiny_model, base)  # the default max_reject_rate, 10%
    flat = " ".join(str(info.value).split())
    assert f"broken.{suffix}: 1 of 2 rows are malformed (50%, over data.max_reject_rate=10%, the limit for malformed " \
           "rows; data.max_removed_share does not count them)" in flat
    body, out = prepare(tmp_path, tiny_model, {**base, "max_reject_rate": 1.0}, name="allowed")
    counts = body["sources"][f"broken.{suffix}"]
    assert (counts["read"], counts["rejected"], counts["kept"]) == (2, 1, 1) and reconciles(counts)
    assert [(Path(r["file"]).name, r["line"], r["kind"]) for r in read_jsonl(out / "rejects.jsonl")] == \
        [(f"broken.{suffix}", bad_line, "invalid")]


def test_the_removed_share_leaves_malformed_rows_out_of_both_its_counts():
    zero = dict.fromkeys(guard.REMOVALS, 0)
    # 10 rows read, 5 malformed and 1 quality reject: 1 of the 5 well-formed rows is removed, 20%
    counts = {**zero, "read": 10, "invalid": 5, "rejected": 6, "kept": 4}
    assert removal_problems({"s": counts}, {"": 0.3}, {}) == []
    # The same with 2 quality rejects: 2 of 5, 40%, over the limit; the message says which knob governs what.
    [problem] = removal_problems({"s": {**counts, "rejected": 7, "kept": 3}}, {"": 0.3}, {})
    assert problem.startswith("s: 2 of 5 well-formed (its 5 malformed rows are data.max_reject_rate's, not counted "
                              "here) rows would be removed (40%, over data.max_removed_share=30%): 2 rejected.")
    flat = " ".join(problem.split())
    assert "1. See rejects.jsonl by kind" in flat and "accept the loss" not in flat
    # A source's own limit is named as such.
    [problem] = removal_problems({"s": {**counts, "rejected": 7}}, {"": 0.3, "s": 0.35}, {})
    assert "over this source's max_removed_share=35%" in problem
    assert "(now 30%, this source's own 35%; this source loses 40%)" in " ".join(problem.split())


def test_marked_differences_are_exactly_the_characters_changed():
    # Truth by construction: flip the signs at known places in a long text; only they are marked, centred on the
    # first one, and each line stays short.
    head, tail = "Clinical history: " + "routine screening, no complaints. " * 6, " Follow-up in 12 months. " * 4
    a, b = head + "ER+, PR-, HER2-." + tail, head + "ER-, PR+, HER2-." + tail
    marked_a, marked_b = mark_differences(a, b)
    assert "ER[+], PR[-], HER2-." in marked_a and "ER[-], PR[+], HER2-." in marked_b
    assert marked_a.count("[") == marked_b.count("[") == 2
    assert marked_a.startswith("...") and marked_a.endswith("...") and len(marked_a) <= 166
    assert abs(marked_a.index("ER[") - len(marked_a) // 2) < 10  # centred on the first difference
    # An insertion is bracketed on the side that has it, an empty bracket where the other lacks it.
    assert mark_differences("no mass in the left breast", "mass in the left breast") == \
        ("[no ]mass in the left breast", "[]mass in the left breast")
    assert mark_differences("x > 0", "x > 0") == ("x > 0", "(identical text)")
    # Unrelated texts are shown as they are: marks on every other character would tell nothing.
    assert mark_differences("alpha beta", "1234 5678") == ("alpha beta", "1234 5678")


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



def test_a_code_project_reads_its_given_eval_file_as_code(tmp_path: Path, tiny_model: Path):
    """Every source `kind: code`: a given eval file is read as code too, so a training row that is an eval row is an
    exact leak (were the eval file read as prose, the two would never share a key), and two functions that differ
    only in one line's indentation are both kept."""
    rows = [chat(f"Complete the function {i}.", f"def f{i}(x):\n    if x > {i}:\n        x = x - {i}\n    return x")
            for i in range(60)]
    indented = chat("Complete the function 0.", "def f0(x):\n    if x > 0:\n        x = x - 0\n        return x")
    write_lines(tmp_path / "code.jsonl", rows + [indented])
    write_lines(tmp_path / "eval.jsonl", rows[50:])
    body, out = prepare(tmp_path, tiny_model, {"sources": [{"path": str(tmp_path / "code.jsonl"), "kind": "code"}],
                                               "eval_path": str(tmp_path / "eval.jsonl"), "holdout_size": 5,
                                               "max_length": 512, "max_removed_share": 0.5})
    leaks = read_jsonl(out / "decontaminated.jsonl")
    assert sorted(r["line"] for r in leaks) == list(range(51, 61)) and {r["kind"] for r in leaks} == {"exact"}
    kept = {r["line"] for split in ("train", "holdout") for r in read_jsonl(out / f"{split}.jsonl")}
    assert {1, 61} <= kept and body["counts"]["exact_duplicates"] == 0
