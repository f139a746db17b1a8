"""The sealed holdout: written once by prepare, read once by final validation (`tunestack holdout`), every read
logged.

`read_holdout` is the only reader. It checks the file against the hash prepare recorded (a holdout edited after
the fact is refused), refuses a second read of the same sealed holdout unless forced, and appends who read it,
when, the hash and whether the read was forced to `prepare/holdout_reads.jsonl`. A holdout read many times while
choosing things is no longer a holdout; the rule stops that, and the log shows every exception to it.
"""

from __future__ import annotations

import json
import time

from tunestack.errors import DataError, GuardError
from tunestack.rundir import RunDir, file_hash

READS_FILE = "holdout_reads.jsonl"


def ensure_unread(run: RunDir, force: bool = False) -> list[dict]:
    """The earlier reads of the sealed holdout; raises GuardError if there are any and the read is not forced."""
    sealed = run.require("prepare")["holdout_sha256"]
    earlier = [r for r in holdout_reads(run) if r.get("sha256") == sealed]
    if earlier and not force:
        last = earlier[-1]
        raise GuardError(
            f"the sealed holdout was already read ({len(earlier)} time(s); last by '{last['reader']}' at "
            f"{last['time']}). Reading it again, after choosing with it in view, makes it one more eval set and its "
            "figure optimistic. If you must (a crash before the figures were seen, a deliberate final re-check), "
            "run `tunestack holdout CONFIG --force`: the forced read is logged in prepare/holdout_reads.jsonl "
            "and shown in the report")
    return earlier


def read_holdout(run: RunDir, reader: str, force: bool = False) -> list[dict]:
    """The holdout rows, once: a second read of the same sealed file is refused unless `force`; every read is
    logged, a forced one as such."""
    sealed = run.require("prepare")["holdout_sha256"]
    path = run.root / "prepare" / "holdout.jsonl"
    actual = file_hash(path)
    if actual != sealed:
        raise DataError(f"{path} changed after prepare sealed it (sha256 {actual[:12]} vs {sealed[:12]}): re-run "
                        "`tunestack prepare --force`, and do not edit the holdout by hand")
    earlier = ensure_unread(run, force)
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    with (run.root / "prepare" / READS_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reader": reader, "sha256": actual,
                             "rows": len(rows), "forced": bool(earlier), "read_number": len(earlier) + 1}) + "\n")
    return rows


def holdout_reads(run: RunDir) -> list[dict]:
    path = run.root / "prepare" / READS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
