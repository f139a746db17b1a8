"""What counts as a duplicate, a conflicting label and a leak, edit by edit: cosmetic edits collapse, any change of
meaning (a name, a number, a date, a code, a negation, who does what) keeps rows apart; shared boilerplate is never
evidence of a leak, a copied passage is; results do not depend on the process.
(The four-domain recall/precision matrix is in test_domains_dedup.py.)"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from tunestack.data.canon import clauses, content_words, row_keys
from tunestack.data.dedup import deduplicate, resolve_conflicts
from tunestack.data.leaks import decontaminate

SYSTEM = ("You extract the key terms of a contract excerpt. Answer with one line of JSON with the keys law, term, "
          "notice and renewal, and nothing else.")
BASE = ("This Agreement is made between Acme Corp and Globex Ltd on 3 March 2021. It is governed by the laws of "
        "Delaware. The initial term is 12 months. Either party may terminate on 30 days written notice.")
ANSWER = '{"law": "Delaware", "term": "12 months", "notice": 30}'


def row(user: str, answer: str = ANSWER, system: str = SYSTEM) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user},
            {"role": "assistant", "content": answer}]


COSMETIC = {
    "case and spacing": ("exact", BASE.upper().replace(" ", "  ")),
    "punctuation": ("exact", BASE.replace(".", "!").replace(" on 3", ", on 3")),
    "a filler word": ("near", BASE.replace("The initial", "Please note the initial".replace("note ", ""))),
    "an article dropped": ("near", BASE.replace("the laws", "laws")),
    "a sentence moved": ("near", "The initial term is 12 months. " + BASE.replace(" The initial term is 12 months.", "")),
    "filler, case and a moved sentence": ("near", "please, THE initial term is 12 months. "
                                          + BASE.replace(" The initial term is 12 months.", "")),
}
DIFFERENT = {
    "a name": BASE.replace("Globex Ltd", "Initech Ltd"),
    "a number": BASE.replace("30 days", "60 days"),
    "a date": BASE.replace("3 March 2021", "4 March 2021"),
    "a code": BASE.replace("Delaware", "Delaware (ref DE-114)"),
    "a negation": BASE.replace("Either party may", "Neither party may not"),
    "a plain negation": BASE.replace("may terminate", "may not terminate"),
    "a synonym": BASE.replace("terminate", "end"),
    "who does what": BASE.replace("between Acme Corp and Globex Ltd", "between Globex Ltd and Acme Corp"),
}


@pytest.mark.parametrize("edit", sorted(COSMETIC))
def test_a_cosmetic_edit_collapses(edit):
    kind, text = COSMETIC[edit]
    kept, removed = deduplicate([row(BASE), row(text)])
    assert kept == [0] and [(r["kind"], r["duplicate_of"]) for r in removed] == [(kind, 0)], removed
    assert removed[0]["evidence"]


@pytest.mark.parametrize("edit", sorted(DIFFERENT))
def test_a_change_of_meaning_keeps_both_rows(edit):
    kept, removed = deduplicate([row(BASE), row(DIFFERENT[edit])])
    assert kept == [0, 1] and removed == []


def test_the_same_words_with_another_answer_are_not_duplicates_and_a_different_system_prompt_is_content():
    kept, removed = deduplicate([row(BASE), row(BASE, ANSWER.replace("30", "60")),
                                 row(BASE, system="Summarise the excerpt in one sentence.")])
    assert kept == [0, 1, 2] and removed == []


def test_negations_are_never_filler_and_moved_words_inside_a_sentence_are_not_a_moved_sentence():
    assert "not" in content_words("It is NOT renewed.") and "t" in content_words("It isn't renewed.")
    assert clauses("A pays B. B ships.") == clauses("B ships. A pays B.")
    assert clauses("A pays B.") != clauses("B pays A.")
    assert row_keys(row("3.5 mg daily"))[2] != row_keys(row("5.3 mg daily"))[2]  # a decimal point ends no sentence


def test_the_kept_row_is_the_first_of_its_group_whatever_the_order_of_the_copies():
    rows = [row(BASE), row(COSMETIC["a filler word"][1]), row(BASE.upper()), row(DIFFERENT["a name"]),
            row(COSMETIC["a sentence moved"][1])]
    kept, removed = deduplicate(rows)
    assert kept == [0, 3] and {r["row"]: r["duplicate_of"] for r in removed} == {1: 0, 2: 0, 4: 0}


# --- conflicting labels ------------------------------------------------------------------------------------------

def labelled(text: str, label: str) -> list[dict]:
    return row(text, label, system="Classify the ticket: billing, bug or other.")


@pytest.mark.parametrize("policy, kept", [("keep_first", [0, 3]), ("majority", [1, 3]), ("drop", [3])])
def test_conflicting_labels_follow_the_policy(policy, kept):
    rows = [labelled("The app crashes.", "other"), labelled("the app crashes", "bug"),
            labelled("The app crashes!", "billing"), labelled("I was charged twice.", "billing")]
    weights = [1, 3, 1, 1]  # row 1 stands for three rows (it had two duplicates)
    got, removed = resolve_conflicts(rows, weights, policy)
    assert got == kept
    assert {r["row"] for r in removed} == set(range(4)) - set(kept)
    assert all(r["kind"] == "conflicting_label" and "same prompt" in r["evidence"] for r in removed)


def test_majority_ties_go_to_the_answer_seen_first_and_unknown_policies_are_refused():
    rows = [labelled("Refund me.", "billing"), labelled("Refund me", "other")]
    assert resolve_conflicts(rows, [1, 1], "majority")[0] == [0]
    with pytest.raises(ValueError, match="keep_first, majority, drop"):
        resolve_conflicts(rows, None, "vote")


# --- leaks -------------------------------------------------------------------------------------------------------

def test_a_short_prompt_shared_with_an_eval_row_is_a_leak_whatever_the_answer():
    hits = decontaminate([labelled("Charged twice.", "bug"), labelled("Charged once.", "billing")],
                         [labelled("Charged twice", "billing")])
    assert [(h["row"], h["kind"], h["matched"]) for h in hits] == [(0, "prompt", 0)]


def test_a_suite_question_without_a_system_turn_matches_under_any_system_prompt():
    suite = [[{"role": "user", "content": "Which is heavier, a kilo of iron or a kilo of feathers?"},
              {"role": "assistant", "content": "Neither"}]]
    hits = decontaminate([labelled("Which is heavier, a kilo of iron or a kilo of feathers?", "iron")], suite)
    assert [(h["kind"], h["matched"]) for h in hits] == [("prompt", 0)]


def template_rows(n: int, seed: int) -> list[list[dict]]:
    """Rows that share a long system prompt and boilerplate sentences whose slots take a handful of values; the
    party names and the date make each row distinct."""
    rng = random.Random(seed)
    names = [f"{a} {b}" for a in ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay")
             for b in ("Corp", "Ltd", "LLC", "Group", "Partners")]
    rows = []
    for i in range(n):
        law, months, notice = rng.choice(["Delaware", "New York", "Texas"]), rng.choice([12, 24]), rng.choice([30, 60])
        a, b = rng.sample(names, 2)
        user = (f"This Agreement is made between {a} and {b} on {rng.randint(1, 28)} {rng.choice(['May', 'June'])} "
                f"{rng.randint(2015, 2024)}. It is governed by the laws of the State of {law} and shall be construed "
                f"in accordance with them. The initial term of this Agreement is {months} months from the "
                f"effective date. Either party may terminate this Agreement at any time on {notice} days written "
                f"notice to the other party. Renewal is automatic for successive periods of {months} months unless "
                f"either party gives notice of non-renewal. Invoice {i:06d} applies.")
        rows.append(row(user, json.dumps({"law": law, "term": f"{months} months", "notice": notice})))
    return rows


@pytest.mark.parametrize("n_eval", [20, 100])
def test_boilerplate_with_low_cardinality_slots_is_template_not_a_leak(n_eval):
    rows = template_rows(400 + n_eval, seed=n_eval)
    kept, removed = deduplicate(rows)
    assert removed == []
    hits = decontaminate(rows[n_eval:], rows[:n_eval])
    assert hits == [], hits[:3]


def test_a_passage_copied_from_an_eval_row_is_a_leak_and_names_the_ngram():
    rows = template_rows(300, seed=1)
    eval_rows = rows[:20]
    # The passage holds the row's own invoice and order numbers: words no other row holds.
    passage = eval_rows[7][1]["content"].replace("applies.", "applies to order 77-QX-31.")
    eval_rows[7] = row(passage, eval_rows[7][2]["content"])
    quoted = row("Summarise the following. " + passage[passage.index("Renewal"):] + " Thanks in advance.",
                 "A summary.", system="Summarise contracts.")
    hits = decontaminate(rows[20:] + [quoted], eval_rows)
    assert [(h["row"], h["kind"], h["matched"]) for h in hits] == [(280, "13-gram", 7)]
    assert "000007" in hits[0]["evidence"]
    # One rare word is not enough: the invoice number alone could be a slot value seen twice by chance.
    plain = rows[7][1]["content"]
    alone = row("Summarise the following. " + plain[plain.index("Renewal"):], "A summary.", system="Summarise.")
    assert decontaminate(rows[20:] + [alone], rows[:20]) == []


def test_results_are_the_same_in_another_process():
    code = ("import json, sys\nsys.path.insert(0, %r)\nfrom test_dedup import template_rows, row, BASE\n"
            "from tunestack.data.dedup import deduplicate\nfrom tunestack.data.leaks import decontaminate\n"
            "rows = template_rows(200, 3) + [row(BASE), row(BASE.lower())]\n"
            "print(json.dumps([deduplicate(rows), decontaminate(rows[20:], rows[:20])]))\n") % os.path.dirname(__file__)
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1
    (kept, removed), hits = json.loads(runs.pop())
    assert len(kept) == 201 and [r["row"] for r in removed] == [201] and hits == []
