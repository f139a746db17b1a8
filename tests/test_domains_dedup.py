"""Recall and precision of the duplicate and leak detectors on ten structurally different domains.

The detectors were once tuned on templated radiology reports and destroyed rows of other kinds that were merely
alike; later they folded every symbol away, so `ER+ PR-` equalled `ER- PR+` and `-3` equalled `3`. tests/domains.py
plants exact copies, cosmetic copies, inserted-word copies, eval leaks of each kind, one-slot variants and one-symbol
variants with ground truth, in the four original domains and six where symbols or a script without spaces carry
meaning; these tests run the prepare stage's order (deduplicate the train rows, then decontaminate the kept ones
against the eval rows), list the inserted-word copies with their suggested setting, apply it, and score every planted
kind. `pytest -s` prints one line of figures per case.

The fixture tests at the top need nothing from tunestack, so they pass before the detector API lands; the detector
is imported inside the tests that use it. No test derives its truth from the detector's own normalisation.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from domains import (DISTINCT, DOMAINS, EVAL_COPIES, FILLER, clause_key, conflicting_copy,
                     distinct_rows, exact_key, identity, is_near, planted, prompt_key, sequence_key, symbol_change,
                     tokens, vocabulary, _sentence_lines)
from domains_oracle import inserted_words, related, shared_passages, tokens_of

# the planted fixtures are built once a process (lru_cache in tests/domains.py): under pytest-xdist these tests
# share one worker, so they are built once
pytestmark = pytest.mark.xdist_group("domains")

SPEC_FILLER = ("a", "an", "the", "please", "kindly", "also", "basically", "actually", "simply", "um", "uh", "ok",
               "okay", "hi", "hello", "hey", "thanks")
KINDS = ("exact_dup", "near_dup", "eval_copy", "eval_near", "eval_inserted")
PLANTED = {"distinct": 300, "exact_dup": 100, "near_dup": 100, "inserted_dup": 100, "eval_copy": 100, "eval_near": 100,
           "eval_inserted": 100, "slot_variant": 100, "symbol_variant": 100}


@functools.lru_cache(maxsize=None)
def _planted(domain: str, n_eval: int):
    # Shared by the tests of a session: building the 1000-row cases is most of a fixture test's time.
    return planted(domain, n_eval)


def _detectors():
    from tunestack.data.dedup import deduplicate, filler_setting, near_copies
    from tunestack.data.leaks import decontaminate

    return deduplicate, decontaminate, near_copies, filler_setting


def _messages(rows: list[dict]) -> list[list[dict]]:
    return [row["messages"] for row in rows]


# --- the oracle and the fixture (no tunestack needed) ---------------------------------------------------------------

def test_the_oracle_follows_the_rule():
    assert FILLER == SPEC_FILLER
    different = [("ER+ PR-", "ER- PR+"), ("7 + 3", "7 - 3"), ("-3", "3"), ("1/2", "1.2"), ("1.2", "12"), ("1,2", "1.2"),
                 ("x²", "x2"), ("10⁻³", "10-3"), ("H₂O", "H2O"), ("Fe2+", "Fe3+"), ("SO4 2-", "SO4 2+"),
                 ("Ki-67 <10%", "Ki-67 >10%"), ("HER2-", "HER2"), ("a - b", "a b"), ("x >= 1", "x > 1")]
    for a, b in different:
        assert tokens(a) != tokens(b), (a, b)
    same = [("＋１２", "+12"), ("ﬁne", "fine"), ("X-ray", "X ray"), ("X–ray", "x ray"), ("a — b", "a b"),
            ("“Hi,” she said!", "hi she said"), ("１２，５", "12,5"), ("ｶﾞ", "ガ"), ("a\u00a0b\u3000c", "a b c"),
            ("3 − 2", "3 - 2"), ("订单，号。", "订 单 号")]
    for a, b in same:
        assert tokens(a) == tokens(b), (a, b)
    assert tokens("3.5, 1,000 and 10:30 v1.2") == ["3.5", "1,000", "and", "10:30", "v1.2"]
    assert tokens("张三买了3件iPad") == ["张", "三", "买", "了", "3", "件", "ipad"]
    code = "Fix it:\n```python\ndef f(x):\n    return x\n```"
    moved = "Fix it:\n```py\n  def f(x):\n      return  x\n```"
    assert exact_key([{"role": "user", "content": code}]) == exact_key([{"role": "user", "content": moved}])
    one_line = "Fix it:\n```python\ndef f(x):\nreturn x\n```"
    assert exact_key([{"role": "user", "content": code}]) != exact_key([{"role": "user", "content": one_line}])
    assert tokens("```js\nlet Value = a;\n```") != tokens("```js\nlet value = a;\n```")
    row = {"messages": [{"role": "user", "content": "Sign it. Then file it!"}]}
    assert is_near({"messages": [{"role": "user", "content": "Then file it! Sign it."}]}, row)
    assert is_near({"messages": [{"role": "user", "content": "Please sign it. Then file it."}]}, row)
    hereby = {"messages": [{"role": "user", "content": "Sign it hereby. Then file it."}]}
    assert not is_near(hereby, row) and related(hereby, row)
    assert not related({"messages": [{"role": "user", "content": "Do not sign it. Then file it."}]}, row)


@pytest.mark.parametrize("domain", DOMAINS)
def test_generator_rows_are_distinct_and_deterministic(domain):
    rows = distinct_rows(domain, 150, seed=3)
    assert rows == distinct_rows(domain, 150, seed=3)
    assert rows != distinct_rows(domain, 150, seed=4)
    for key in (exact_key, sequence_key, clause_key, prompt_key):
        assert len({key(row) for row in rows}) == len(rows), key.__name__
    # planted() is deterministic: test_fixture_does_not_depend_on_the_hash_seed builds it twice, in two processes
    assert _planted(domain, 20).train != planted(domain, 20, seed=6).train


def test_fixture_does_not_depend_on_the_hash_seed():
    # Sets are used for membership only; this catches an ordering that would leak in through iteration.
    code = ("import hashlib, json, domains; print(hashlib.sha256(json.dumps([domains.planted(d, 20).train "
            "for d in domains.DOMAINS], default=str).encode()).hexdigest())")
    runs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).parent, env=dict(os.environ, PYTHONHASHSEED=seed))
            for seed in ("1", "2")]
    digests = {run.communicate()[0] for run in runs}
    assert all(run.returncode == 0 for run in runs) and len(digests) == 1


def _check_shape(domain: str, row: dict) -> None:
    roles = [m["role"] for m in row["messages"]]
    body = roles[1:] if roles[0] == "system" else roles
    assert body == ["user", "assistant"] * (len(body) // 2), roles
    user, answer = row["messages"][-2]["content"], row["messages"][-1]["content"]
    if domain == "contracts":
        assert 60 <= len(tokens(row["messages"][0]["content"])) <= 80
        assert 6 <= len(user.split("\n")[1].split(". ")) <= 8
        assert set(json.loads(answer)) == {"parties", "effective", "law", "term", "renewal", "notice", "payment",
                                           "late_interest_pct"}
    elif domain == "classification":
        assert 5 <= len(tokens(user)) <= 18
        assert answer in ("billing", "login", "sync", "shipping", "refund", "praise")
    elif domain == "qa":
        assert 60 <= len(tokens(answer)) <= 150 and 4 <= answer.count(". ") + 1 <= 7
    elif domain == "chat":
        assert 2 <= roles.count("user") <= 3
    elif domain == "labs":
        assert re.search(r"ER[+-] PR[+-], HER2 (0|[123]\+), Ki-67 [<>]?\d+%", user) and "hormone receptor" in answer
    elif domain == "arithmetic":
        assert re.search(r" [=≈] -?[\d.]+", answer)
    elif domain == "code":
        assert re.fullmatch(r"[^\n]+\n```(python|javascript)\n(.+\n)+```", user) and answer.startswith("It prints ")
    elif domain == "chemistry":
        assert re.search(r"[+\-⁺⁻]", user)
    elif domain == "json":
        assert all(isinstance(v, (int, float, str)) for v in json.loads(answer).values())
    else:
        assert re.search(r"[\u4e00-\u9fff]{4}", user) and re.search(r"\d", user)


@pytest.mark.parametrize("domain", DOMAINS)
def test_planted_fixture_is_sound(domain):
    p = _planted(domain, 100)
    assert Counter(kind for kind, _ in p.truth.values()) == PLANTED
    for row in p.eval + [p.train[i] for i, (kind, _) in p.truth.items() if kind in DISTINCT]:
        _check_shape(domain, row)
    if domain in ("contracts", "json"):  # copies edit JSON answers only in ways that keep them JSON
        assert all(json.loads(row["messages"][-1]["content"]) for row in p.train)
    by_kind = {kind: [(i, t) for i, (k, t) in p.truth.items() if k == kind] for kind in PLANTED}
    originals = [t for kind in ("exact_dup", "near_dup", "inserted_dup") for _, t in by_kind[kind]]
    assert len(set(originals)) == 300 and all(p.truth[t][0] == "distinct" for t in originals)
    for kind in EVAL_COPIES:
        assert len({t for _, t in by_kind[kind]}) == 100
    # Sentence moves are a good share of the cosmetic copies wherever a turn has sentences to move.
    movable = moved = 0
    for i, t in by_kind["near_dup"] + by_kind["eval_near"]:
        original = p.train[t] if p.truth[i][0] == "near_dup" else p.eval[t]
        if any(_sentence_lines(m["content"]) for m in original["messages"][1:]):
            movable += 1
            moved += sequence_key(p.train[i]) != sequence_key(original)
    assert movable == 0 or moved >= movable / 3, (moved, movable)
    for i, t in by_kind["slot_variant"] + by_kind["symbol_variant"]:
        a, b = p.train[i]["slots"], p.train[t]["slots"]
        assert t < i and sum(a[k] != b[k] for k in a) == 1 and prompt_key(p.train[i]) != prompt_key(p.train[t])
    # Every inserted word is held by the planted copies, never is a number or a symbol, and each phrase is used.
    inserted = Counter()
    for i, t in by_kind["inserted_dup"] + by_kind["eval_inserted"]:
        original = p.train[t] if p.truth[i][0] == "inserted_dup" else p.eval[t]
        inserted.update(set(inserted_words(p.train[i], original)))
    assert set(inserted) == vocabulary(domain) and min(inserted.values()) >= 30, inserted
    rng = random.Random(1)
    for row in p.eval[:30]:
        other = conflicting_copy(row, domain, rng)
        assert prompt_key(other) == prompt_key(row) and sequence_key(other) != sequence_key(row)


@pytest.mark.parametrize("domain", DOMAINS)
def test_symbol_variants_change_symbols_only(domain):
    """A symbol variant is distinct, yet differs from its original by a few prompt tokens none of which is a word."""
    p = _planted(domain, 100)
    changed = Counter()
    for i, (kind, t) in p.truth.items():
        if kind == "symbol_variant":
            diff = symbol_change(p.train[i], p.train[t])
            assert diff and not related(p.train[i], p.train[t]), (i, t)
            changed.update(diff)
    print(f"\n{domain}: symbols changed " + " ".join(f"{s!r}x{n}" for s, n in changed.most_common(12)))


# The 1,000-row cases are the slow tier (TUNESTACK_SLOW=1): about two minutes of the suite on two cores.
SIZES = (20, 100, pytest.param(1000, marks=pytest.mark.slow))


@pytest.mark.parametrize("n_eval", (20, pytest.param(1000, marks=pytest.mark.slow)))
@pytest.mark.parametrize("domain", DOMAINS)
def test_planted_fixture_builds_at_every_size(domain, n_eval):
    # planted() checks itself (_check): no two identities conflict, copies are of their kind, inserted words are held
    # by at least max(5, 1%) of the rows at this size.
    p = _planted(domain, n_eval)
    counts = Counter(kind for kind, _ in p.truth.values())
    assert counts["eval_inserted"] == min(n_eval, 100) and counts["symbol_variant"] == 100


# --- a passage of an eval row quoted in a language written without spaces ------------------------------------------

def _quoted_passages(seed: int = 21) -> tuple[list[dict], list[dict], dict[int, int], list[str]]:
    """Chinese eval rows, distinct train rows, and train rows that quote a passage of an eval row's order line (its
    quantity, item, order number and price: 13+ characters) inside other text. Returns (train, eval, {train index:
    eval index}, passages)."""
    rows = distinct_rows("chinese", 400, seed=seed)
    evals, train = rows[:100], rows[100:]
    quotes, passages = {}, []
    frames = ("我在论坛上看到有人说：「{}」这是真的吗？", "朋友转发给我一段话：{}。请帮我核实一下。",
              "有一条评论写着“{}”，我也想买同样的东西。")
    for j, row in enumerate(evals):
        if row["slots"]["t"] != 0:
            continue
        passage = re.search(r"下单购买了.+?元", row["messages"][1]["content"]).group()
        quotes[len(train)] = j
        passages.append(passage)
        train.append({"messages": [{"role": "system", "content": row["messages"][0]["content"]},
                                   {"role": "user", "content": frames[j % 3].format(passage)},
                                   {"role": "assistant", "content": "抱歉，我无法核实别人的订单，请以订单页面的信息为准。"}]})
    return train, evals, quotes, passages


def test_quoted_passages_are_evidence_by_construction():
    train, evals, quotes, passages = _quoted_passages()
    assert len(quotes) >= 25 and all(len(tokens(p)) >= 13 for p in passages)
    assert shared_passages(train, evals) == quotes


def test_a_quoted_passage_of_an_eval_row_is_a_leak_in_chinese():
    _, decontaminate, _, _ = _detectors()
    train, evals, quotes, _ = _quoted_passages()
    hits = {h["row"]: h for h in decontaminate(_messages(train), _messages(evals))}
    missed = {i: j for i, j in quotes.items() if hits.get(i, {}).get("matched") != j}
    wrong = {i: h for i, h in hits.items() if i not in quotes}
    assert not missed and not wrong, (f"{len(missed)} of {len(quotes)} quoted passages missed, e.g. "
                                      f"{[train[i]['messages'][1]['content'] for i in list(missed)[:2]]}; "
                                      f"{len(wrong)} distinct rows flagged, e.g. {list(wrong.values())[:2]}")


# --- the detectors ---------------------------------------------------------------------------------------------------

def _row_text(row: dict, width: int = 160) -> str:
    return " | ".join(m["content"].replace("\n", " / ") for m in row["messages"] if m["role"] != "system")[:width]


def _score(p, removed: list[dict], hits: list[dict]) -> dict:
    """Per planted kind: the rows found, missed, and the false positives of each detector."""
    dropped = {r["row"]: r for r in removed}
    flagged = {h["row"]: h for h in hits}
    found = {kind: [] for kind in KINDS}
    missed = {kind: [] for kind in KINDS}
    absorbed = 0
    for i, (kind, target) in p.truth.items():
        if kind in ("exact_dup", "near_dup"):
            ok = dropped.get(i, {}).get("duplicate_of") == target
        elif kind in EVAL_COPIES:
            # Removed by deduplicate as a copy of another copy of the same eval row: gone either way.
            inner = i in dropped and identity(p.truth, dropped[i]["duplicate_of"]) == ("eval", target)
            absorbed += inner
            ok = inner or flagged.get(i, {}).get("matched") == target
        else:
            continue
        (found if ok else missed)[kind].append(i)
    false_dedup = [r for r in removed if identity(p.truth, r["row"]) != identity(p.truth, r["duplicate_of"])]
    false_decon = [h for h in hits if identity(p.truth, h["row"]) != ("eval", h["matched"])]
    clean = [i for i, (kind, _) in p.truth.items() if kind in DISTINCT]
    lost = [i for i in clean if i in dropped or i in flagged]
    inserted_removed = [i for i, (kind, _) in p.truth.items() if kind == "inserted_dup" and i in dropped]
    return {"found": found, "missed": missed, "absorbed": absorbed, "false_dedup": false_dedup,
            "false_decon": false_decon, "clean": clean, "lost": lost, "dropped": dropped, "flagged": flagged,
            "inserted_removed": inserted_removed}


def _explain(p, s: dict) -> str:
    """A few misses and false positives, each with the rows involved and the detector's evidence."""
    lines = []
    for kind, rows in s["missed"].items():
        for i in rows[:3]:
            target = p.truth[i][1]
            original = p.eval[target] if kind.startswith("eval") else p.train[target]
            record = s["dropped"].get(i) or s["flagged"].get(i)
            lines.append(f"MISSED {kind} train[{i}] -> {target}; got {record}\n   copy: {_row_text(p.train[i])}"
                         f"\n   orig: {_row_text(original)}")
    for label, records, key, source in (("FALSE dedup", s["false_dedup"], "duplicate_of", p.train),
                                        ("FALSE decon", s["false_decon"], "matched", p.eval)):
        for r in records[:4]:
            lines.append(f"{label} train[{r['row']}] ({p.truth[r['row']][0]}) -> {r[key]}: {r}"
                         f"\n   row:   {_row_text(p.train[r['row']])}\n   other: {_row_text(source[r[key]])}")
    for i in s["inserted_removed"][:3]:
        lines.append(f"REMOVED inserted_dup train[{i}] (only to be listed): {s['dropped'][i]}")
    return "\n".join(lines)


def _figures(p, s: dict, removed: list[dict], hits: list[dict], direct: list[dict]) -> tuple[dict, dict]:
    """Recall per planted kind, precision per detector."""
    recall = {kind: len(s["found"][kind]) / max(1, len(s["found"][kind]) + len(s["missed"][kind])) for kind in KINDS}
    matched = {h["row"]: h["matched"] for h in direct}
    for kind in EVAL_COPIES:
        rows = [i for i, (k, _) in p.truth.items() if k == kind]
        recall[f"{kind}(direct)"] = sum(matched.get(i) == p.truth[i][1] for i in rows) / len(rows)
    wrong_direct = [h for h in direct if identity(p.truth, h["row"]) != ("eval", h["matched"])]
    precision = {"dedup": 1 - len(s["false_dedup"]) / max(1, len(removed)),
                 "decon": 1 - len(s["false_decon"]) / max(1, len(hits)),
                 "decon(direct)": 1 - len(wrong_direct) / max(1, len(direct))}
    return recall, precision


def _near_copies(p, domain: str, kept: list[int], near_copies, filler_setting) -> tuple[dict, list[str], list[str]]:
    """The inserted-word copies listed among the kept rows: recall of the planted ones (with their original), the
    listings that pair different identities, and the suggested setting's words against the planted words."""
    records = [dict(r, row=kept[r["row"]], duplicate_of=kept[r["duplicate_of"]])
               for r in near_copies(_messages([p.train[i] for i in kept]))]
    pairs = {(r["row"], r["duplicate_of"]) for r in records}
    pairs |= {(b, a) for a, b in pairs}
    planted_rows = [(i, t) for i, (k, t) in p.truth.items() if k == "inserted_dup"]
    listed = sum((i, t) in pairs or any(a == i and identity(p.truth, b) == ("train", t) for a, b in pairs)
                 for i, t in planted_rows)
    wrong = [r for r in records if identity(p.truth, r["row"]) != identity(p.truth, r["duplicate_of"])]
    words, line = filler_setting(records)
    got = {t for w in words for t, _ in tokens_of(w)}  # a detector may name "请问" or its characters
    problems = []
    if listed < 0.99 * len(planted_rows):
        problems.append(f"near_copies listed {listed} of {len(planted_rows)} inserted copies")
    if wrong:
        problems.append(f"{len(wrong)} near copies pair different rows, e.g. " + "; ".join(
            f"{r} {_row_text(p.train[r['row']])!r} vs {_row_text(p.train[r['duplicate_of']])!r}" for r in wrong[:3]))
    if got != vocabulary(domain):
        problems.append(f"setting {line!r}: words {sorted(got)} != planted {sorted(vocabulary(domain))}")
    return {"listed": listed / len(planted_rows), "records": len(records), "wrong": len(wrong)}, words, problems


def _with_setting(p, deduplicate, words: list[str]) -> tuple[dict, list[str]]:
    """deduplicate again with the suggested words as filler: the inserted copies go, no distinct row does."""
    kept, removed = deduplicate(_messages(p.train), frozenset(SPEC_FILLER) | set(words))
    dropped = {r["row"]: r for r in removed}
    planted_rows = [(i, t) for i, (k, t) in p.truth.items() if k == "inserted_dup"]
    gone = sum(identity(p.truth, dropped[i]["duplicate_of"]) == ("train", t) for i, t in planted_rows if i in dropped)
    false = [r for r in removed if identity(p.truth, r["row"]) != identity(p.truth, r["duplicate_of"])]
    lost = [i for i, (k, _) in p.truth.items() if k in DISTINCT and i in dropped]
    problems = []
    if gone < 0.99 * len(planted_rows):
        problems.append(f"with the setting deduplicate removed {gone} of {len(planted_rows)} inserted copies")
    if false or lost:
        problems.append(f"with the setting {len(false)} false removals, {len(lost)} distinct rows lost, e.g. "
                        + "; ".join(f"{r} {_row_text(p.train[r['row']])!r}" for r in false[:3]))
    return {"removed": gone / len(planted_rows), "false": len(false)}, problems


@pytest.mark.parametrize("n_eval", SIZES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_detectors_on_planted_rows(domain, n_eval):
    deduplicate, decontaminate, near_copies, filler_setting = _detectors()
    p = _planted(domain, n_eval)
    start = time.perf_counter()
    kept, removed = deduplicate(_messages(p.train))
    hits = decontaminate([p.train[i]["messages"] for i in kept], _messages(p.eval))
    hits = [dict(h, row=kept[h["row"]]) for h in hits]  # back to indices into p.train
    # Up to n_eval=100 every eval row has copies of each kind and deduplicate absorbs some before decontaminate sees
    # them, so decontaminate also runs on all the train rows: that scores every eval kind directly.
    direct = decontaminate(_messages(p.train), _messages(p.eval))
    near, words, problems = _near_copies(p, domain, kept, near_copies, filler_setting)
    applied, more = _with_setting(p, deduplicate, words)
    seconds = time.perf_counter() - start
    s = _score(p, removed, hits)
    recall, precision = _figures(p, s, removed, hits, direct)
    direct_lost = [h for h in direct if p.truth[h["row"]][0] in DISTINCT]
    # Reported, not asserted: whether a correct removal carries its kind's label, and the hit kinds of the inserted
    # eval copies.
    relabelled = sum(s["dropped"][i]["kind"] != kind.split("_")[0] for kind in ("exact_dup", "near_dup")
                     for i in s["found"][kind])
    inserted_kinds = Counter(s["flagged"][i]["kind"] for i in s["found"]["eval_inserted"] if i in s["flagged"])
    print(f"\n{domain:14s} eval={n_eval:4d} train={len(p.train):4d} | recall "
          + " ".join(f"{k}={v:.3f}" for k, v in recall.items()) + " | precision "
          + " ".join(f"{k}={v:.3f}" for k, v in precision.items())
          + f" (removed {len(removed)}, hits {len(hits)}, direct {len(direct)})"
          + f" | distinct lost {len(s['lost'])}+{len(direct_lost)}/{len(s['clean'])} | absorbed {s['absorbed']}"
          + f" | near_copies listed={near['listed']:.3f} records={near['records']} wrong={near['wrong']}"
          + f" | setting {words} removes={applied['removed']:.3f} false={applied['false']}"
          + f" | relabelled {relabelled} | inserted hits {dict(inserted_kinds)} | {seconds:.2f}s")
    problems += more + [f"recall {k} {v:.3f}" for k, v in recall.items() if v < 0.99]
    problems += [f"precision {k} {v:.3f}" for k, v in precision.items() if v < 0.99]
    problems += [f"{len(s['lost'])} distinct rows removed"] if s["lost"] else []
    problems += [f"{len(direct_lost)} distinct rows flagged by decontaminate on all rows"] if direct_lost else []
    problems += [f"{len(s['inserted_removed'])} inserted copies removed (to be listed only)"] if s["inserted_removed"] \
        else []
    assert not problems, f"{domain} n_eval={n_eval}: {', '.join(problems)}\n{_explain(p, s)}"


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_symbol_variant_is_neither_a_conflicting_label_nor_a_copy(domain):
    """One sign, operator, decimal point, comparison, charge or indentation makes another prompt: no conflicting
    label among the training rows, and against its original as an eval row no exact, near, prompt or inserted-word
    hit (a shared passage of names and numbers is n-gram evidence, by design)."""
    from tunestack.data.dedup import resolve_conflicts

    decontaminate = _detectors()[1]
    p = _planted(domain, 100)
    pairs = [(i, t) for i, (kind, t) in p.truth.items() if kind == "symbol_variant"]
    rows = [i for i, (kind, _) in p.truth.items() if kind in DISTINCT]
    _, removed = resolve_conflicts(_messages([p.train[i] for i in rows]))
    assert not removed, removed[:3]
    hits = decontaminate(_messages([p.train[i] for i, _ in pairs]), _messages([p.train[t] for _, t in pairs]))
    wrong = [(h, _row_text(p.train[pairs[h["row"]][0]]), _row_text(p.train[pairs[h["row"]][1]]))
             for h in hits if not h["kind"].endswith("-gram")]
    assert not wrong, f"{len(wrong)} symbol variants taken for copies of their original, e.g. {wrong[:3]}"


@pytest.mark.parametrize("domain", DOMAINS)
def test_conflicting_labels_are_not_duplicates(domain):
    deduplicate = _detectors()[0]
    rows, rng = distinct_rows(domain, 300, seed=11), random.Random(7)
    conflicts = [conflicting_copy(rows[i], domain, rng) for i in range(0, 300, 6)]
    kept, removed = deduplicate(_messages(rows + conflicts))
    wrong = [r for r in removed if r["row"] >= len(rows)]
    assert not wrong, f"{len(wrong)} conflicting copies removed as duplicates, e.g. {wrong[:3]}\n" + "\n".join(
        f"   {_row_text((rows + conflicts)[r['row']])}\n   {_row_text(rows[r['duplicate_of']])}" for r in wrong[:3])


@pytest.mark.parametrize("domain", DOMAINS)
def test_conflicting_copy_of_an_eval_row_is_a_prompt_leak(domain):
    decontaminate = _detectors()[1]
    rows, rng = distinct_rows(domain, 250, seed=12), random.Random(8)
    evals, train = rows[:50], rows[50:]
    conflicts = [conflicting_copy(row, domain, rng) for row in evals]
    hits = {h["row"]: h for h in decontaminate(_messages(train + conflicts), _messages(evals))}
    wrong = [(j, hits.get(len(train) + j)) for j in range(len(evals))]
    wrong = [(j, h) for j, h in wrong if not h or h["kind"] != "prompt" or h["matched"] != j]
    assert not wrong, f"{len(wrong)} of {len(evals)} conflicting eval copies not found as prompt leaks: {wrong[:3]}"
