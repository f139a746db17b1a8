"""Row-level removal for prepare: duplicates, conflicting labels and leaks, each removed row recorded with where it
came from, what it matched, how alike the two look and the evidence. The detection itself is pure (`dedup`,
`leaks`); this module maps it onto `Row`s and their files and lines."""

from __future__ import annotations

from collections import Counter

from tunestack.data.canon import FILLER, example_text, identity_view
from tunestack.data.dedup import deduplicate, near_copies, resolve_conflicts
from tunestack.data.formats import Row
from tunestack.data.leaks import decontaminate

SNIPPET = 240


def filler_words(extra: list[str]) -> frozenset:
    return FILLER | {w.lower() for w in extra}


def snippet(messages: list[dict]) -> str:
    """The row as a short line for records and summaries; the system turn left out, as it rarely tells rows apart."""
    turns = [m for m in messages if m["role"] != "system"] or messages
    text = " ".join(example_text(turns).split())
    return text if len(text) <= SNIPPET else text[:SNIPPET - 3] + "..."


def _record(row: Row, found: dict, **extra) -> dict:
    return {"kind": found["kind"], "similarity": found["similarity"], "evidence": found["evidence"],
            "origin": row.origin, "file": row.file, "line": row.line, "text": snippet(row.messages), **extra}


def remove_duplicates(rows: list[Row], filler: frozenset) -> tuple[list[Row], list[dict], list[int]]:
    """Rows kept, a record per duplicate removed, and how many input rows each kept row stands for."""
    kept, removed = deduplicate(views(rows), filler)
    copies = Counter(d["duplicate_of"] for d in removed)
    records = [_record(rows[d["row"]], d, duplicate_of=_where(rows[d["duplicate_of"]])) for d in removed]
    return [rows[i] for i in kept], records, [1 + copies[i] for i in kept]


def remove_conflicts(rows: list[Row], weights: list[int], policy: str,
                     filler: frozenset) -> tuple[list[Row], list[dict]]:
    kept, removed = resolve_conflicts(views(rows), weights, policy, filler)
    records = [_record(rows[d["row"]], d, duplicate_of=_where(rows[d["duplicate_of"]])
                       if d["duplicate_of"] is not None else None) for d in removed]
    return [rows[i] for i in kept], records


def _where(row: Row) -> dict:
    return {"file": row.file, "line": row.line, "text": snippet(row.messages)}


def remove_leaks(train: list[Row], protected: list[tuple[str, list[dict]]], ngram: int, filler: frozenset,
                 rare_df: int | None) -> tuple[list[Row], list[dict]]:
    """Drop training rows that leak a protected item; `protected` holds (where, messages)."""
    if not protected or not train:
        return train, []
    hits = decontaminate(views(train), [m for _, m in protected], n=ngram, filler=filler,
                         rare_df=rare_df)
    records = []
    for h in hits:
        where, messages = protected[h["matched"]]
        # the holdout's text stays inside the sealed file
        shown = {} if where.startswith("holdout") else {"matched_text": snippet(messages)}
        records.append(_record(train[h["row"]], h, matched=where, **shown))
    leaked = {h["row"] for h in hits}
    return [r for i, r in enumerate(train) if i not in leaked], records


def list_near_copies(rows: list[Row], filler: frozenset) -> list[dict]:
    """Training rows that differ from another only by frequent words inserted (kept; a record each, with the
    words)."""
    return [_record(rows[d["row"]], d, duplicate_of=_where(rows[d["duplicate_of"]]), words=d["words"])
            for d in near_copies(views(rows), filler)]


def protected_items(rows: list[Row], split: str) -> list[tuple[str, list[dict]]]:
    """(where, the row as the identity rule reads it) for each eval or holdout row."""
    return [(f"{split} {row.file}:{row.line}", identity_view(row.messages, row.meta)) for row in rows]


def views(rows: list[Row]) -> list[list[dict]]:
    """The rows as the identity rule reads them (`canon.identity_view`: a `kind: code` source's turns are code)."""
    return [identity_view(r.messages, r.meta) for r in rows]
