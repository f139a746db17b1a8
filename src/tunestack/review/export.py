"""The review's results as files for the other stages, in `<run>/review/`:

    reviewed.jsonl      accepted and edited candidates, `reviewed: true` with `reviewer` and `reviewed_at`, their
                        `id`, `source`, `teacher` and `prompt_hash` kept: rows `prepare` reads (its quality tiers
                        count them as reviewed)
    rejected.jsonl      rejected candidates with the `reason` and the `reviewer`
    human_scores.jsonl  rated answers in the `judge calibrate --human` format (id, prompt, answer, reference,
                        human_score), plus the reviewer and the model (hidden while rating, kept here)
    export.json         the counts, written last

Every file is written atomically, so an export taken while others review is a consistent snapshot of each queue.
"""

from __future__ import annotations

from pathlib import Path

from tunestack.errors import StageError
from tunestack.review.store import Store, utc_now
from tunestack.rundir import write_json, write_jsonl


def reviewed_row(item) -> dict:
    """An accepted or edited candidate as a training row: the edit's messages where edited, the provenance kept."""
    row = dict(item.payload)
    if item.status == "edited":
        row["messages"] = item.result["row"]["messages"]
        row["edited"] = True
    row.update(reviewed=True, reviewer=item.decided_by, reviewed_at=item.decided_at)
    return row


def rejected_row(item) -> dict:
    """A rejected candidate as synth wrote it (so still `reviewed: false`: no training row) with why and by whom."""
    return {**item.payload, "rejected": True, "reason": (item.result or {}).get("reason") or None,
            "reviewer": item.decided_by, "rejected_at": item.decided_at}


def human_score_row(item) -> dict:
    answer = item.payload
    return {"id": item.key, "prompt": answer["prompt"], "answer": answer["answer"],
            "reference": answer.get("reference"), "human_score": item.result["rating"], "reviewer": item.decided_by,
            "rated_at": item.decided_at, "model": answer["model"], "line": answer["line"]}


def export_reviews(store: Store, folder: Path) -> dict:
    """Write the three files and export.json; returns the counts, which reconcile with what was imported."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    candidates, answers = store.items("candidates"), store.items("answers")
    by_status = {s: [i for i in candidates if i.status == s] for s in ("accepted", "edited", "rejected", "pending")}
    rated = [i for i in answers if i.status == "rated"]
    counts = {"candidates": {"imported": len(candidates), **{s: len(v) for s, v in by_status.items()}},
              "answers": {"imported": len(answers), "rated": len(rated), "pending": len(answers) - len(rated)}}
    decided = sum(counts["candidates"][s] for s in by_status)
    if decided != len(candidates):
        raise StageError(f"{store.path}: candidate statuses do not add up ({decided} counted, {len(candidates)} "
                         "imported): the database holds a status this export does not know")
    write_jsonl(folder / "reviewed.jsonl", [reviewed_row(i) for i in by_status["accepted"] + by_status["edited"]])
    write_jsonl(folder / "rejected.jsonl", [rejected_row(i) for i in by_status["rejected"]])
    write_jsonl(folder / "human_scores.jsonl", [human_score_row(i) for i in rated])
    write_json(folder / "export.json", {"exported_at": utc_now(), "database": str(store.path), **counts})
    return counts


def count_lines(counts: dict) -> list[str]:
    """The counts as the command prints them: accepted + edited + rejected + pending = imported."""
    c, a = counts["candidates"], counts["answers"]
    return [f"candidates: {c['accepted']} accepted + {c['edited']} edited + {c['rejected']} rejected + "
            f"{c['pending']} pending = {c['imported']} imported",
            f"answers:    {a['rated']} rated + {a['pending']} pending = {a['imported']} imported"]
