"""Prepare's two stops: a source losing more of its rows than data.max_removed_share allows, and a training set too
small to train on.

Both run after every output file is written (and before the manifest, so the stage is not complete), and say why in
terms a user can check: per removal kind the count, the most frequent evidence, three example pairs with the
characters that tell them apart marked, and what to do, starting with what keeps the data.

Two knobs, one each: `data.max_reject_rate` governs malformed rows (the ledger's `invalid`, stopped early in
`prepare`); `data.max_removed_share` governs every other removal (quality, length and tier-cap rejects, duplicates,
conflicting labels, leaks) and never counts a malformed row, so a limit the user set on one is not overruled by the
other.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from difflib import SequenceMatcher

from tunestack.errors import DataError

REMOVALS = ("rejected", "exact_duplicates", "near_duplicates", "conflicting_labels", "decontaminated")
CHECK_THE_RULE = (
    "Check the rule against these rows first: look at the marked characters. If they carry meaning (a sign, an "
    "operator, a unit, a negation), these rows are different and were matched wrongly: tunestack's identity rule "
    "(docs/prepare.md, 'When are two rows the same') should keep them apart, and if it does not, that is a bug to report with "
    "these pairs; if the source is code, set its `kind: code` (data.sources[].kind) or put the code in ``` fences.")
# The steps of "How to proceed", in order: the ones that keep the data come first.
ADVICE = {
    "rejected": ["See rejects.jsonl by kind: `quality` (production rows neither reviewed nor rated "
                 "data.quality.production_min_rating: review or rate them), `too_long` (raise data.max_length, or "
                 "set data.too_long: truncate), `tier_cap` (data.quality.tier_caps), `template` (the model's chat "
                 "template refuses the row)."],
    "exact_duplicates": [CHECK_THE_RULE, "If they really are copies, the source repeats itself (every copy is in "
                         "duplicates.jsonl, the first of each group is kept): if the repeats were meant as weight, "
                         "give the source a `weight` (data.sources[].weight) instead of copies."],
    "near_duplicates": [CHECK_THE_RULE, "If they really are copies (the marks fall on case, spacing, punctuation or "
                        "filler words), the source repeats itself (duplicates.jsonl; if the repeats were meant as "
                        "weight, use the source's `weight`); a word in data.filler_words that carries meaning makes "
                        "rows collapse: remove it from the list."],
    "conflicting_labels": [CHECK_THE_RULE, "If the prompts really are the same, one prompt has several answers "
                           "(duplicates.jsonl): check the labels and fix them in the source, or choose how they are "
                           "resolved with data.conflicts (majority, keep_first, drop)."],
    "decontaminated": ["Training rows overlap eval or holdout rows (decontaminated.jsonl): if the evidence above is "
                       "template text, lower data.decontamination_rare_df; if the rows are real copies, the eval set "
                       "was drawn from the training data."],
}


def mark_differences(a: str, b: str, width: int = 160) -> tuple[str, str]:
    """Both texts with the characters that tell them apart in brackets, each cut to about `width` characters around
    the first difference: whether two matched rows are copies shows in what the marks hold (case, spacing) or carry
    (a sign, a unit, a negation). What one text lacks is marked `[]` where it would be; a gap of one or two equal
    characters between two differences joins them. Texts less than half alike are shown unmarked: marks on every
    other character would tell nothing.

    >>> mark_differences("Receptor status: ER+, PR-", "Receptor status: ER-, PR+")
    ('Receptor status: ER[+], PR[-]', 'Receptor status: ER[-], PR[+]')
    >>> mark_differences("no bleeding seen", "bleeding seen")
    ('[no ]bleeding seen', '[]bleeding seen')
    >>> mark_differences("x = a + b", "x = a + b")
    ('x = a + b', '(identical text)')
    """
    if a == b:
        return _window(a, 0, width), "(identical text)"
    matcher = SequenceMatcher(None, a, b, autojunk=False)  # autojunk would skip spaces and common letters
    if matcher.ratio() < 0.5:
        return _window(a, 0, width), _window(b, 0, width)
    segments = [(tag == "equal", a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes()]
    merged: list[tuple[bool, str, str]] = []
    for k, (same, x, y) in enumerate(segments):
        gap = same and len(x) <= 2 and k < len(segments) - 1
        if merged and not merged[-1][0] and (not same or gap):
            merged[-1] = (False, merged[-1][1] + x, merged[-1][2] + y)
        else:
            merged.append((same, x, y))
    first = len(merged[0][1]) if merged[0][0] else 0
    marked_a = "".join(x if same else f"[{x}]" for same, x, _ in merged)
    marked_b = "".join(y if same else f"[{y}]" for same, _, y in merged)
    return _window(marked_a, first, width), _window(marked_b, first, width)


def _window(text: str, at: int, width: int) -> str:
    """About `width` characters of `text` centred on position `at`, each cut shown as '...'."""
    if len(text) <= width:
        return text
    start = max(0, min(at - width // 2, len(text) - width))
    return ("..." if start else "") + text[start:start + width] + ("..." if start + width < len(text) else "")


def removal_problems(sources: dict[str, dict], limits: dict[str, float], removed: dict[str, list[dict]]) -> list[str]:
    """A paragraph for each source whose removals exceed its limit; `removed` maps a source to its removal records
    (duplicates, conflicts and leaks; rejects are only counted). Malformed rows (`invalid`, part of `rejected`) are
    left out of both the removals and the rows they are a share of: data.max_reject_rate governs them."""
    problems = []
    for name, counts in sources.items():
        invalid = counts.get("invalid", 0)
        removals = {k: counts[k] - (invalid if k == "rejected" else 0) for k in REMOVALS}
        usable, total = counts["read"] - invalid, sum(removals.values())
        limit = limits.get(name, limits[""])
        if not usable or total / usable <= limit:
            continue
        main = max(REMOVALS, key=lambda k: removals[k])
        knob = ("this source's " if name in limits else "data.") + f"max_removed_share={limit:.0%}"
        by_kind = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in removals.items() if n)
        malformed = f" well-formed (its {invalid} malformed rows are data.max_reject_rate's, not counted here)" \
            if invalid else ""
        lines = [f"{name}: {total} of {usable}{malformed} rows would be removed ({total / usable:.0%}, over {knob}): "
                 f"{by_kind}.", *_evidence(removed.get(name, []), main), "  How to proceed:"]
        lines += [textwrap.fill(step, 116, initial_indent=f"    {i}. ", subsequent_indent="       ")
                  for i, step in enumerate(ADVICE[main], start=1)]
        own = f", this source's own {limit:.0%}" if name in limits else ""
        lines.append(textwrap.fill(
            f"This stop is data.max_removed_share (now {limits['']:.0%}{own}; this source loses {total / usable:.0%}): "
            "it counts duplicates, conflicting labels, leaks and quality, length and tier-cap rejects, not malformed "
            "rows (data.max_reject_rate governs those).", 116, initial_indent="  ", subsequent_indent="  "))
        problems.append("\n".join(lines))
    return problems


def _evidence(records: list[dict], main: str) -> list[str]:
    """The most frequent evidence, and three example pairs of the commonest kind first."""
    records = sorted(records, key=lambda r: count_of(r) != main)
    evidence = Counter(r["evidence"] for r in records if r.get("evidence"))
    lines = ["  Most frequent evidence: " + "; ".join(f"{n}x {e!r}" for e, n in evidence.most_common(5))] \
        if evidence else []
    return lines + [_example(r) for r in records[:3]]


def _example(record: dict) -> str:
    """One removal and what it matched: the two texts one above the other, their differences marked."""
    other = record.get("duplicate_of") or {}
    where = record.get("matched") or (_at(other) if other else "no row kept (data.conflicts: drop)")
    matched = record.get("matched_text") or other.get("text")
    if matched:
        texts = mark_differences(record["text"], matched)
    else:  # the sealed holdout's text stays sealed; a dropped conflict group keeps no row
        texts = (_window(record["text"], 0, 160), "(sealed holdout text)" if "matched" in record else "(none kept)")
    return (f"  e.g. {record['kind']} {record['file']}:{record['line']} (similarity {record['similarity']}), matched "
            f"{where}\n      removed  {texts[0]}\n      matched  {texts[1]}")


def count_of(record: dict) -> str:
    """The count a removal record adds to (leak records name what they `matched`)."""
    if "matched" in record:
        return "decontaminated"
    return {"exact": "exact_duplicates", "near": "near_duplicates"}.get(record["kind"], "conflicting_labels")


def _at(where: dict) -> str:
    return f"{where.get('file')}:{where.get('line')}" if where else "?"


def check_removals(sources: dict[str, dict], limits: dict[str, float], removed: dict[str, list[dict]],
                   folder) -> None:
    """Stop when a source loses more than its max_removed_share; `sources` holds each source's ledger counts,
    `invalid` included, so that malformed rows stay data.max_reject_rate's."""
    problems = removal_problems(sources, limits, removed)
    if problems:
        raise DataError("prepare stopped: a source would lose more of its rows than data.max_removed_share allows. "
                        f"Every file is written in {folder} (no manifest, so the stage is not complete):\n- "
                        + "\n- ".join(problems))


def check_train_size(rows: int, minimum: int, step_rows: int, counts: dict) -> None:
    """Stop when the training set is smaller than `minimum` or one optimizer step (`step_rows`)."""
    need = max(minimum, step_rows)
    if rows < need:
        removed = ", ".join(f"{counts[k]} {k.replace('_', ' ')}" for k in REMOVALS if counts.get(k))
        raise DataError(
            f"only {rows} training rows are left, fewer than {need} (data.min_train_rows={minimum}; one optimizer "
            f"step takes train.micro_batch_size x train.grad_accum = {step_rows}). Of {counts['read']} rows read: "
            f"{removed or 'none removed'}, {counts.get('kept', 0)} kept across train, eval and holdout. Add data, "
            "lower data.eval_size / data.holdout_size, or lower data.min_train_rows.")
