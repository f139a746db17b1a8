"""Prepare's two stops: a source losing most of its rows, and a training set too small to train on.

Both run after every output file is written (and before the manifest, so the stage is not complete), and say why in
terms a user can check: per removal kind the count, the most frequent evidence, three example pairs, and what to do.
"""

from __future__ import annotations

from collections import Counter

from tunestack.errors import DataError

REMOVALS = ("rejected", "exact_duplicates", "near_duplicates", "conflicting_labels", "decontaminated")
ADVICE = {
    "rejected": "see rejects.jsonl: fix the rows, or change the quality policy (data.quality)",
    "exact_duplicates": "the source repeats itself (duplicates.jsonl); if repeats are meant as weight, use the "
                        "source's `weight` instead",
    "near_duplicates": "rows differ only in case, punctuation, filler words or sentence order (duplicates.jsonl); "
                       "a word in data.filler_words that carries meaning makes rows collapse: remove it",
    "conflicting_labels": "one prompt has several answers (duplicates.jsonl): check the labels, or choose "
                          "data.conflicts (keep_first, majority, drop)",
    "decontaminated": "training rows overlap eval or holdout rows (decontaminated.jsonl): if the evidence below is "
                      "template text, lower data.decontamination_rare_df; if the rows are real copies, the eval "
                      "set was drawn from the training data",
}


def removal_problems(sources: dict[str, dict], limits: dict[str, float], removed: dict[str, list[dict]]) -> list[str]:
    """A paragraph for each source whose removals exceed its limit; `removed` maps a source to its removal records
    (duplicates, conflicts and leaks; rejects are only counted)."""
    problems = []
    for name, counts in sources.items():
        total = sum(counts[k] for k in REMOVALS)
        limit = limits.get(name, limits[""])
        if not counts["read"] or total / counts["read"] <= limit:
            continue
        by_kind = ", ".join(f"{counts[k]} {k.replace('_', ' ')}" for k in REMOVALS if counts[k])
        main = max(REMOVALS, key=lambda k: counts[k])
        lines = [f"{name}: {total} of {counts['read']} rows would be removed ({total / counts['read']:.0%}, over "
                 f"max_removed_share={limit:.0%}): {by_kind}."]
        # examples of the commonest kind first
        records = sorted(removed.get(name, []), key=lambda r: count_of(r) != main)
        evidence = Counter(r["evidence"] for r in records if r.get("evidence"))
        if evidence:
            lines.append("  Most frequent evidence: " + "; ".join(f"{n}x {e!r}" for e, n in evidence.most_common(5)))
        for r in records[:3]:
            other = r.get("duplicate_of") or {}
            matched = r.get("matched_text") or other.get("text") or "(sealed holdout text)"
            lines.append(f"  e.g. {r['kind']} {r['file']}:{r['line']} (similarity {r['similarity']}): "
                         f"{r['text'][:120]!r}\n      matched {r.get('matched') or _at(other)}: {matched[:120]!r}")
        lines.append(f"  How to proceed: {ADVICE[main]}. To accept the loss, set data.max_removed_share (or this "
                     f"source's max_removed_share) to {min(1.0, total / counts['read'] + 0.05):.2f}.")
        problems.append("\n".join(lines))
    return problems


def count_of(record: dict) -> str:
    """The count a removal record adds to (leak records name what they `matched`)."""
    if "matched" in record:
        return "decontaminated"
    return {"exact": "exact_duplicates", "near": "near_duplicates"}.get(record["kind"], "conflicting_labels")


def _at(where: dict) -> str:
    return f"{where.get('file')}:{where.get('line')}" if where else "?"


def check_removals(sources: dict[str, dict], limits: dict[str, float], removed: dict[str, list[dict]],
                   folder) -> None:
    problems = removal_problems(sources, limits, removed)
    if problems:
        raise DataError(f"prepare stopped: a source would lose most of its rows. Every file is written in {folder} "
                        "(no manifest, so the stage is not complete):\n- " + "\n- ".join(problems))


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
