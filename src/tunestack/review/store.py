"""The review store: one SQLite file holding both queues' items and every action taken on them.

    items    one row per thing to review: a candidate row (queue `candidates`, keyed by its id) or a model's answer
             to an eval prompt (queue `answers`, keyed by `<model>:<line>`); its status and a version number
    actions  the audit trail, one row per action: who, when (UTC), what, the row before and after an edit, the
             reason of a rejection, the rating

Several browsers (and processes) may review at once. An item is decided at most once: the decision is a
compare-and-set (`UPDATE items ... WHERE id=? AND version=? AND status='pending'`) and its audit row are written in
one `BEGIN IMMEDIATE` transaction, so the second of two reviewers gets a `Decision` saying who was first, and nothing
of theirs is written. Every form carries an action id of its own; `actions.action_id` is UNIQUE, so a resubmitted
form (a double click, a reload after POST) is recognised and never counted twice.

WAL mode lets pages read while another reviewer writes; the busy timeout makes a writer wait for the lock instead of
failing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

QUEUES = ("candidates", "answers")
DECISIONS = {"accept": "accepted", "edit": "edited", "reject": "rejected", "rate": "rated"}
"""Action -> the status it leaves the item in. Candidates take accept, edit and reject; answers take rate."""
QUEUE_ACTIONS = {"candidates": ("accept", "edit", "reject"), "answers": ("rate",)}
BUSY_TIMEOUT_MS = 15_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id          INTEGER PRIMARY KEY,
    queue       TEXT NOT NULL CHECK (queue IN ('candidates', 'answers')),
    key         TEXT NOT NULL,
    position    INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'accepted', 'edited', 'rejected', 'rated')),
    version     INTEGER NOT NULL DEFAULT 0,
    result      TEXT,
    decided_by  TEXT,
    decided_at  TEXT,
    imported_at TEXT NOT NULL,
    UNIQUE (queue, key)
);
CREATE INDEX IF NOT EXISTS items_next ON items (queue, status, position);
CREATE TABLE IF NOT EXISTS actions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id   TEXT NOT NULL UNIQUE,
    item_id     INTEGER NOT NULL REFERENCES items (id),
    action      TEXT NOT NULL CHECK (action IN ('accept', 'edit', 'reject', 'rate')),
    reviewer    TEXT NOT NULL,
    at          TEXT NOT NULL,
    before      TEXT,
    after       TEXT,
    reason      TEXT,
    rating      INTEGER CHECK (rating BETWEEN 1 AND 5)
);
CREATE INDEX IF NOT EXISTS actions_item ON actions (item_id);
"""


def utc_now() -> str:
    """UTC time to the millisecond, ISO 8601 with a Z: what every action records."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


@dataclass
class Item:
    id: int
    queue: str
    key: str
    payload: dict
    status: str
    version: int
    result: dict | None
    decided_by: str | None
    decided_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Item:
        return cls(row["id"], row["queue"], row["key"], json.loads(row["payload"]), row["status"], row["version"],
                   json.loads(row["result"]) if row["result"] else None, row["decided_by"], row["decided_at"])


@dataclass(frozen=True)
class Decision:
    """What became of a submitted action: `saved`, `duplicate` (this action id was recorded before: nothing new),
    or `conflict` (someone else decided the item first: `by`, `status`)."""

    outcome: str
    item_id: int
    status: str
    by: str | None

    @property
    def message(self) -> str:
        if self.outcome == "conflict":
            return f"Item #{self.item_id} was already {self.status} by {self.by}: your action was not recorded."
        if self.outcome == "duplicate":
            return f"Item #{self.item_id}: that action was already recorded ({self.status} by {self.by})."
        return f"Item #{self.item_id} {self.status}."


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own (one per operation, so any thread may use the store), in autocommit mode:
        transactions are opened explicitly."""
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys=ON")
        try:
            yield db
        finally:
            db.close()

    def add_items(self, queue: str, entries: list[tuple[str, dict]]) -> int:
        """Import `(key, payload)` entries at the end of the queue; keys already there are left alone (so an import
        is idempotent). Returns how many were added."""
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}; expected one of {', '.join(QUEUES)}")
        now = utc_now()
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            start = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM items WHERE queue=?",
                               (queue,)).fetchone()[0]
            added = 0
            for offset, (key, payload) in enumerate(entries):
                cursor = db.execute("INSERT OR IGNORE INTO items (queue, key, position, payload, imported_at) "
                                    "VALUES (?, ?, ?, ?, ?)", (queue, key, start + offset, json.dumps(payload), now))
                added += cursor.rowcount
            db.execute("COMMIT")
        return added

    def item(self, item_id: int) -> Item | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM items WHERE id=?", (item_id,)).fetchone()
        return Item.from_row(row) if row else None

    def next_pending(self, queue: str) -> Item | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM items WHERE queue=? AND status='pending' ORDER BY position, id LIMIT 1",
                             (queue,)).fetchone()
        return Item.from_row(row) if row else None

    def items(self, queue: str) -> list[Item]:
        with self.connect() as db:
            rows = db.execute("SELECT * FROM items WHERE queue=? ORDER BY position, id", (queue,)).fetchall()
        return [Item.from_row(r) for r in rows]

    def progress(self) -> dict[str, dict[str, int]]:
        """Per queue: items by status, and `total`."""
        counts = {queue: {"total": 0} for queue in QUEUES}
        with self.connect() as db:
            for row in db.execute("SELECT queue, status, COUNT(*) AS n FROM items GROUP BY queue, status"):
                counts[row["queue"]][row["status"]] = row["n"]
                counts[row["queue"]]["total"] += row["n"]
        return counts

    def actions(self) -> list[dict]:
        with self.connect() as db:
            return [dict(r) for r in db.execute("SELECT * FROM actions ORDER BY seq")]

    def decide(self, item_id: int, version: int, action: str, reviewer: str, action_id: str, *,
               after: dict | None = None, reason: str | None = None, rating: int | None = None) -> Decision:
        """Record one reviewer's decision on one item, at most once (see the module docstring). `after` is the
        edited row of an edit, `reason` an optional rejection reason, `rating` 1-5 for an answer."""
        if action not in DECISIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {', '.join(DECISIONS)}")
        if not reviewer or not action_id:
            raise ValueError("a decision needs a reviewer and an action id")
        status = DECISIONS[action]
        result = {"row": after} if action == "edit" else {"reason": reason} if action == "reject" else \
            {"rating": rating} if action == "rate" else {}
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock first: no other writer between the check and the set
            try:
                known = db.execute("SELECT a.reviewer, i.status FROM actions a JOIN items i ON i.id = a.item_id "
                                   "WHERE a.action_id=?", (action_id,)).fetchone()
                if known:
                    db.execute("ROLLBACK")
                    return Decision("duplicate", item_id, known["status"], known["reviewer"])
                row = db.execute("SELECT * FROM items WHERE id=?", (item_id,)).fetchone()
                if row is None:
                    raise KeyError(item_id)
                if action not in QUEUE_ACTIONS[row["queue"]]:
                    raise ValueError(f"action {action!r} does not apply to the {row['queue']} queue")
                now = utc_now()
                changed = db.execute(
                    "UPDATE items SET status=?, version=version+1, result=?, decided_by=?, decided_at=? "
                    "WHERE id=? AND version=? AND status='pending'",
                    (status, json.dumps(result), reviewer, now, item_id, version)).rowcount
                if not changed:
                    db.execute("ROLLBACK")
                    return Decision("conflict", item_id, row["status"], row["decided_by"])
                before = row["payload"] if action == "edit" else None
                db.execute("INSERT INTO actions (action_id, item_id, action, reviewer, at, before, after, reason, "
                           "rating) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (action_id, item_id, action, reviewer, now, before,
                            json.dumps(after) if after is not None else None, reason, rating))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return Decision("saved", item_id, status, reviewer)
