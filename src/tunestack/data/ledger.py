"""The data ledger: every read of a sealed holdout and every selection made against an eval set, recorded under
the content hash of those rows, outside any run folder.

The same data and seed seal the same rows whatever the run is called, so the read budget belongs to the rows, not
to the run: a second run (`run.name=try2`) that seals the same holdout finds the first run's read here and is
refused. Likewise the count of decisions made against an eval set is every run's. One JSONL file, appended under an
exclusive lock (two processes never interleave a line); each line says what happened, to which rows (sha256), in
which run, by whom, when and why.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import time
from pathlib import Path

FILE = "tunestack-ledger.jsonl"


def ledger_path(cfg) -> Path:
    """The ledger file `data.ledger` names: beside the first source, in the tunestack cache, or in a folder."""
    where = cfg.data.ledger
    if where == "beside_data":
        first = cfg.data.named_sources()[0][1].path
        return Path(first).resolve().parent / FILE
    if where == "cache":
        from tunestack.models import cache_dir

        return cache_dir() / "ledger" / FILE
    return Path(where) / FILE


def who() -> str:
    """The user and machine an entry is recorded for (`$TUNESTACK_USER` overrides the login name)."""
    try:
        user = os.environ.get("TUNESTACK_USER") or getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def record(path: Path, kind: str, sha256: str, **fields) -> dict:
    """Append one entry (with time and who) and return it."""
    entry = {"kind": kind, "sha256": sha256, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "who": who(), **fields}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return entry


def entries(path: Path, kind: str, sha256: str) -> list[dict]:
    """Every entry of `kind` for these rows, oldest first (a torn last line, from a crash mid-write, is skipped)."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("kind") == kind and entry.get("sha256") == sha256:
            found.append(entry)
    return found
