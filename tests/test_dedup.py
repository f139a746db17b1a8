"""Planted exact duplicates, near duplicates and eval leaks in template-like data are found; distinct rows that
look alike but teach different answers are not collapsed; crowded buckets neither hide an old original nor raise the
exact checks per row past the cap; results do not depend on the process."""

from __future__ import annotations

import inspect
import json
import os
import random
import subprocess
import sys

from tunestack.data.dedup import DuplicateIndex, deduplicate, decontaminate, example_pair, jaccard, normalize, shingles
from tunestack.demo.radiology import generate

SYNONYMS = {"Hx:": "History:", "Exam:": "Study:", "Impression:": "Conclusion:", "Findings:": "Result:"}


def distinct_pool(n: int, seed: int) -> list[dict]:
    """Demo rows that are pairwise not duplicates by the brute-force definition (no LSH involved)."""
    pool, kept_shingles = [], []
    for row in generate(n * 2, seed=seed):
        text, answer = example_pair(row["messages"])
        sh = shingles(text)
        if any(jaccard(sh, other) >= 0.8 and a == answer for other, a in kept_shingles):
            continue
        pool.append(row)
        kept_shingles.append((sh, answer))
        if len(pool) == n:
            break
    return pool


def exact_copy(row: dict) -> dict:
    messages = [dict(m) for m in row["messages"]]
    messages[1]["content"] = "  " + messages[1]["content"].upper().replace(" ", "  ") + " "
    return {"messages": messages}


def near_copy(row: dict, rng: random.Random) -> dict:
    """An edit that changes no meaning: one word swapped for a synonym, or a filler word added."""
    messages = [dict(m) for m in row["messages"]]
    report = messages[1]["content"]
    swaps = [k for k in SYNONYMS if k in report]
    if swaps:
        key = rng.choice(swaps)
        report = report.replace(key, SYNONYMS[key], 1)
    else:
        report = "Report: " + report
    messages[1]["content"] = report
    return {"messages": messages}


def test_planted_duplicates_found_with_high_recall_and_precision():
    rng = random.Random(0)
    pool = distinct_pool(600, seed=11)
    originals = pool[:500]
    planted = {}
    rows = list(originals)
    for i in rng.sample(range(500), 50):
        planted[len(rows)] = ("exact", i)
        rows.append(exact_copy(originals[i]))
    for i in rng.sample(range(500), 50):
        planted[len(rows)] = ("near", i)
        rows.append(near_copy(originals[i], rng))
    kept, removed = deduplicate([example_pair(r["messages"]) for r in rows])
    found = {r["row"]: r for r in removed}
    for kind in ("exact", "near"):
        truth = {row for row, (k, _) in planted.items() if k == kind}
        hits = {row for row, r in found.items() if row in truth}
        assert len(hits) / len(truth) >= 0.99, f"{kind} recall {len(hits)}/{len(truth)}"
    assert all(row in planted for row in found), "a distinct row was removed as a duplicate"
    assert all(found[row]["duplicate_of"] == original for row, (_, original) in planted.items())
    assert kept == list(range(500))  # the first occurrence is the one kept


def test_eval_leaks_are_removed_and_name_the_eval_row():
    rng = random.Random(1)
    pool = distinct_pool(700, seed=12)
    eval_rows, train = pool[:100], pool[100:600]
    leaks = {}
    for j in rng.sample(range(100), 30):
        leaks[len(train)] = j
        train.append(eval_rows[j] if len(leaks) % 2 else near_copy(eval_rows[j], rng))
    hits = decontaminate([example_pair(r["messages"]) for r in train],
                         [example_pair(r["messages"]) for r in eval_rows])
    flagged = {h["row"]: h["matched"] for h in hits}
    assert flagged == leaks


def test_template_rows_with_different_answers_are_not_duplicates():
    a = {"messages": [{"role": "user", "content": "CT chest: sm L PTX. Hx: cough."},
                      {"role": "assistant", "content": '{"side": "left"}'}]}
    b = {"messages": [{"role": "user", "content": "CT chest: sm R PTX. Hx: cough."},
                      {"role": "assistant", "content": '{"side": "right"}'}]}
    kept, removed = deduplicate([example_pair(a["messages"]), example_pair(b["messages"])])
    assert kept == [0, 1] and removed == []


def test_a_shared_13_gram_with_an_eval_row_is_a_leak():
    passage = ("the patient was admitted with a long history of chest pain radiating to the left arm and was "
               "treated with aspirin before the scan was performed at the regional hospital")
    eval_rows = [(f"Summarise: {passage}", "Chest pain, treated with aspirin.")]
    train = [("Summarise: an unrelated note about a knee", "Knee pain."),
             ("Rewrite: " + " ".join(passage.split()[5:20]) + " and nothing else", "Something else entirely.")]
    hits = decontaminate(train, eval_rows)
    assert hits == [{"row": 1, "kind": "13-gram", "matched": 0, "similarity": None}]


def crowded_rows(n: int) -> list[tuple[str, str]]:
    """Rows sharing 30 words of boilerplate and one short answer, each with six words of its own: pairwise Jaccard
    0.7, so they crowd the same buckets without being duplicates."""
    boilerplate = " ".join(f"w{i}" for i in range(30))
    return [(f"{boilerplate} " + " ".join(f"r{i}x{j}" for j in range(6)), "ok") for i in range(n)]


def test_an_old_original_in_crowded_buckets_is_found_with_few_candidates_verified():
    rows = crowded_rows(400)
    text, answer = rows[3]
    rows.append((text.replace("r3x5", "changed"), answer))  # a near copy of row 3, far back behind 396 look-alikes
    index = DuplicateIndex(bucket_size=4, depth=3, max_candidates=2)
    for entry in index.entries(rows[:-1]):
        assert index.find(entry) is None
        index.add(entry)
    copy = index.entry(*rows[-1])
    assert len(index._candidates(copy)) <= 2  # the cap on exact checks holds, however many rows share buckets
    kind, idx, similarity = index.find(copy)
    assert (kind, idx) == ("near", 3) and similarity >= 0.8
    # The true near duplicate outranks the look-alikes: with one exact check allowed, it is still the one checked.
    index.max_candidates = 1
    assert index._candidates(copy) == [3]


def test_deduplicate_is_the_same_in_another_process():
    code = inspect.getsource(crowded_rows) + (
        "import json\nfrom tunestack.data.dedup import deduplicate\nrows = crowded_rows(300)\n"
        "rows += [(t.replace('x5', 'y5'), a) for t, a in rows[::7]]\nprint(json.dumps(deduplicate(rows)))\n")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1
    kept, removed = json.loads(runs.pop())
    assert len(removed) == 43 and all(r["kind"] == "near" for r in removed)


def test_batched_entries_match_single_ones():
    pairs = [example_pair(r["messages"]) for r in generate(50, seed=3)]
    pairs += [("Ｆｕｌｌ width ＣＴ, é", "Ok"), ("", "")]
    index = DuplicateIndex()
    for batched, (text, answer) in zip(index.entries(pairs), pairs):
        single = index.entry(text, answer)
        assert batched.key == single.key and batched.band_keys == single.band_keys
        assert (batched.shingles == single.shingles).all() and (batched.signature == single.signature).all()
    assert normalize("Ｆｕｌｌ width ＣＴ, é") == "full width ct é"
