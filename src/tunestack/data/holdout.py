"""The sealed holdout: written once by prepare, read only by final validation, every read logged.

`read_holdout` is the only reader. It checks the file against the hash prepare recorded (a holdout edited after
the fact is refused) and appends who read it, when, and the hash to `prepare/holdout_reads.jsonl`. A holdout read
many times while choosing things is no longer a holdout; the log makes that visible.
"""

from __future__ import annotations

import json
import time

from tunestack.errors import DataError
from tunestack.rundir import RunDir, file_hash

READS_FILE = "holdout_reads.jsonl"


def read_holdout(run: RunDir, reader: str) -> list[dict]:
    sealed = run.require("prepare")["holdout_sha256"]
    path = run.root / "prepare" / "holdout.jsonl"
    actual = file_hash(path)
    if actual != sealed:
        raise DataError(f"{path} changed after prepare sealed it (sha256 {actual[:12]} vs {sealed[:12]}): re-run "
                        "`tunestack prepare --force`, and do not edit the holdout by hand")
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    with (run.root / "prepare" / READS_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reader": reader, "sha256": actual,
                             "rows": len(rows)}) + "\n")
    return rows


def holdout_reads(run: RunDir) -> list[dict]:
    path = run.root / "prepare" / READS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
