"""The identity rule: which differences are cosmetic and which make another row, and every user of row keys agreeing.

Each planted pair knows its truth by construction: the second text is the first with one edit whose kind decides
(a case, quote, spacing or full-width change is cosmetic; a sign, operator, decimal point, superscript, one line's
indentation in code or a negation is not). Nothing here asks `canon` what the truth is; the users of the rule are
asked, each in its own terms, whether the two rows are one row, and must all answer as the pair says.
"""

from __future__ import annotations

import pytest

# (first, second, the same row?, the edit); the same row only through filler words is a near duplicate, not exact
PAIRS = [
    ("Receptor status: ER+, PR-, HER2 1+.", "receptor status:  ER+ PR- HER2 1+", True, "case, spacing, punctuation"),
    ("Receptor status: ER+, PR-, HER2 1+.", "Receptor status: ER-, PR+, HER2 1+.", False, "signs swapped"),
    ("What is 7 + 3?", "What is 7 - 3?", False, "operator"),
    ("What is 7 + 3?", "what is 7+3", True, "case and spacing"),
    ("Convert to postfix: y - b * c", "Convert to postfix: y + b * c", False, "operator"),
    ('Return {"shift_mm": -3}', 'Return {"shift_mm": 3}', False, "minus of a negative number"),
    ('Return {"dose_mg": 1.25}', 'Return {"dose_mg": 12.5}', False, "decimal point moved"),
    ("Is x < 5 for every sample?", "Is x > 5 for every sample?", False, "comparison reversed"),
    ("Take 1/2 of the dose.", "Take 1.2 of the dose.", False, "slash against decimal point"),
    ("The limit is 10⁻³ mol/L.", "The limit is 10-3 mol/L.", False, "superscript minus folded away"),
    ("Solve x² = 4.", "Solve x2 = 4.", False, "superscript folded away"),
    ("Balance Fe2+ + Cl-.", "Balance Fe3+ + Cl-.", False, "charge"),
    ("Ｈｅｌｌｏ，ＥＲ＋ ＰＲ－ status", "Hello, ER+ PR- status", True, "full-width forms"),
    ("He said “ER+” today.", 'He said "ER+" today.', True, "quotes"),
    ("The lease is renewed.", "The lease is not renewed.", False, "negation"),
    ("患者的体温是38.5度。", "患者的体温是38.5度", True, "a sentence stop in a script without spaces"),
    ("患者的体温是38.5度。", "患者的体温是39.5度。", False, "a number in a script without spaces"),
    ("```python\nif x:\n    y()\nz()\n```", "```python\nif x:\n    y()\n    z()\n```", False, "one line's indentation"),
    ("```python\nif x:\n    y()\n```", "```py\n    if x:\n        y()\n```", True, "the whole block indented"),
    ("```js\nconst Total = a;\n```", "```js\nconst total = a;\n```", False, "case of an identifier in code"),
    ("Please summarise the X-ray report.", "Summarise the X ray report", True, "filler and a hyphen between letters"),
    ("Take .5 mg twice.", "Take 5 mg twice.", False, "a leading decimal point"),
    ("Return [1,2,3] sorted.", "Return [1, 2, 3] sorted.", True, "spacing after a list's commas"),
    ("The total is 1,250 units.", "The total is 1.250 units.", False, "thousands comma against decimal point"),
    ("Check the\u200b lease\u00ad terms ❤\ufe0f", "Check the lease terms ❤", True, "invisible format characters"),
    ("```ls``` lists THE files.", "```ls``` lists the files.", True, "a one-line ``` span is not a fence"),
]
SYSTEM = {"role": "system", "content": "Answer the question."}
IDS = [f"{i}-{edit}" for i, (_, _, _, edit) in enumerate(PAIRS)]


def row(text: str, answer: str = "OK", system: bool = True) -> list[dict]:
    return [SYSTEM] * system + [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]


@pytest.mark.parametrize(("a", "b", "same", "edit"), PAIRS, ids=IDS)
def test_every_user_of_row_keys_agrees(a, b, same, edit):
    from tunestack.assess.sample import _keys
    from tunestack.config.data import DataSection
    from tunestack.data.clean import filler_words
    from tunestack.data.dedup import deduplicate, resolve_conflicts
    from tunestack.data.formats import Row
    from tunestack.data.leaks import decontaminate
    from tunestack.data.prepare import pool_leaks
    from tunestack.quantize.calibration import conversation_hash, prompt_hash
    from tunestack.synth.stage import screen

    verdicts = {
        "dedup": bool(deduplicate([row(a), row(b)])[1]),
        "conflicts": bool(resolve_conflicts([row(a, "yes"), row(b, "no")])[1]),
        "leaks": bool(decontaminate([row(b)], [row(a)])),
        "general pool": bool(pool_leaks(DataSection(path="unused.jsonl"), [{"id": "p", "prompt": b}],
                                        [("probe", row(a, system=False))])),
        "calibration": conversation_hash({"messages": row(a)}) == conversation_hash({"messages": row(b)}),
        "calibration prompt": prompt_hash({"messages": row(a, "yes")}) == prompt_hash({"messages": row(b, "no")}),
        "assess sampling": bool(set(_keys(Row(row(a), "f", 1), filler_words([])))
                                & set(_keys(Row(row(b), "f", 2), filler_words([])))),
        "synth": not screen([row(a)], [{"messages": row(b), "request": 0}], [], lambda m: m)[0],
        "synth leak": not screen([], [{"messages": row(b), "request": 0}], [row(a)], lambda m: m)[0],
    }
    expected = dict.fromkeys(verdicts, same)
    expected["calibration"] = same and "filler" not in edit  # its row hash is the exact key: a near copy is another
    wrong = {user: verdict for user, verdict in verdicts.items() if verdict != expected[user]}
    assert not wrong, f"{edit}: {'the same row' if same else 'different rows'} by construction, but {wrong}"


def test_a_code_source_compares_case_and_indentation_without_fences():
    from tunestack.data.canon import identity_view
    from tunestack.data.dedup import deduplicate

    a, b = "if x:\n    y()\nz()", "if x:\n    y()\n    z()"
    fenced_a, fenced_b = f"```python\n{a}\n```", f"```python\n{b}\n```"  # fences inside a code source's turn
    prose = [row(a), row(b), row("Total = 1"), row("total = 1")]
    assert len(deduplicate(prose)[1]) == 2  # as prose, indentation and case are cosmetic
    code = [identity_view(m, {"identity": "code"}) for m in [*prose, row(fenced_a), row(fenced_b)]]
    assert deduplicate(code)[1] == []
    result = [{"role": "user", "content": "Run it."},
              {"role": "assistant", "content": "", "tool_calls": [
                  {"id": "c1", "type": "function", "function": {"name": "run", "arguments": {"code": "x"}}}]},
              {"role": "tool", "tool_call_id": "c1", "name": "run", "content": "Traceback:\n  File X\n    Error"}]
    other = [*result[:2], dict(result[2], content="traceback:\n  file x\n  error")]
    views = [identity_view(m, {"identity": "code"}) for m in (result, other)]
    assert deduplicate(views)[1] == [] and len(deduplicate([result, other])[1]) == 1


def test_near_copies_by_inserted_words_are_told_from_replaced_slot_values():
    """Rows built so that the truth is known: 40 templates, each with a copy that only inserts "hereby" (a near copy)
    and a variant that puts another frequent state in place of the first (a different row)."""
    from tunestack.data.dedup import filler_setting, near_copies

    states = ["Delaware", "Texas", "Ohio", "Utah"]
    originals = [row(f"Party {i} agrees to the terms under {states[i % 4]} law.", f"{i}") for i in range(40)]
    inserted = [row(f"Party {i} hereby agrees to the terms under {states[i % 4]} law.", f"{i}") for i in range(40)]
    replaced = [row(f"Party {i} agrees to the terms under {states[(i + 1) % 4]} law.", f"{i}") for i in range(40)]
    negated = [row(f"Party {i} never agrees to the terms under {states[i % 4]} law.", f"{i}") for i in range(0, 40, 4)]
    rows = originals + inserted + replaced + negated
    found = {r["row"]: r for r in near_copies(rows)}
    assert sorted(found) == list(range(40, 80))
    assert all(found[40 + i]["duplicate_of"] == i and found[40 + i]["words"] == ["hereby"] for i in range(40))
    assert filler_setting(list(found.values()))[1] == "data.filler_words: [hereby]"


def test_an_inserted_word_copy_of_an_eval_row_is_a_leak_and_a_replaced_word_is_not():
    from tunestack.data.leaks import decontaminate

    evals = [row(f"Ticket {i}: the courier lost parcel {100 + i}.", "shipping") for i in range(30)]
    train = [row(f"Hey there, ticket {i}: the courier lost parcel {100 + i}. Thanks in advance!", "shipping")
             for i in range(30)]
    train += [row(f"Ticket {i}: the courier found parcel {100 + i}.", "shipping") for i in range(30)]
    hits = {h["row"]: h for h in decontaminate(train, evals)}
    assert sorted(hits) == list(range(30)) and all(hits[i]["kind"] == "inserted" and hits[i]["matched"] == i
                                                   for i in range(30))


def test_the_fast_path_for_token_sets_reads_as_the_sentences_do():
    """`token_sets` reads ASCII prose in one pass; the tokens and words it finds must be those of the full
    tokenisation."""
    from tunestack.data.canon import NEGATIONS, sentences, token_sets

    texts = [a for a, *_ in PAIRS] + [b for _, b, *_ in PAIRS] + [
        "It isn't renewed; X-ray of HER2-negative ab1.5 a_b v1.2 e.g. don't", "Fe2+ & co. (note) 3.5mm 3. 5 end.3 x.y",
        "Net 30 days.\nNo refund!\n\nTotal: USD 1,000.50 (v2.1-beta)"]
    for text in texts:
        words = {w for s, code in sentences(text) if not code for w in s if w.isalpha() and w not in NEGATIONS}
        held = {t for s, _ in sentences(text) for t in s}
        assert token_sets([{"role": "user", "content": text}]) == (held, words), text


def test_a_slot_value_moved_and_changed_is_not_a_near_copy():
    """Frequent slot values (a history of fall, fever, pain) dropped in one place and added in another are a changed
    slot value, however far apart: a near copy only ever adds words."""
    from tunestack.data.canon import inserted_words

    drop = frozenset({"hx", "fall", "fever", "exam", "impression"})
    a = row("Hx: fall. Exam: CT abdomen. Impression: no acute abnormality.")
    b = row("CT abdomen: no acute abnormality. Hx: fever.")
    c = row("Exam: CT abdomen. Impression: no acute abnormality. Hx: fever.")
    assert inserted_words(a, b, drop) is None
    assert inserted_words(c, b, drop) == ["exam", "impression"] == inserted_words(b, c, drop)


def test_a_negation_written_without_spaces_is_never_an_inserted_word():
    """`高くない` (not expensive) is `高い` (expensive) with く and な put in before its い: the inserted characters
    hold no negation, the turn does."""
    from tunestack.data.canon import inserted_words

    drop = frozenset("この店は高くないです食べた")
    for positive, negative in (("この店は高い", "この店は高くない"), ("食べたい", "食べたくない")):
        assert inserted_words(row(positive), row(negative), drop) is None
        assert inserted_words(row(negative), row(positive), drop) is None
    assert inserted_words(row("この店は高い"), row("この店はとても高い"), frozenset("とても")) == ["て", "と", "も"]
