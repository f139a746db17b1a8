"""The sealed holdout: written once by prepare, read once by final validation (`tunestack holdout`), every read
recorded in the data ledger (`tunestack.data.ledger`), which every run sealing the same rows shares.

`read_holdout` is the only reader. It checks the file against the hash prepare recorded (a holdout edited after
the fact is refused), refuses a second read of the same rows, by this run or any other, unless forced with a
reason, and records who read it, when, in which run, why, and whether the read was forced. A holdout read many
times while choosing things is no longer a holdout; the rule stops that, and the ledger shows every exception.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunestack.data.ledger import entries, record
from tunestack.errors import DataError, GuardError
from tunestack.rundir import RunDir, file_hash

KIND = "holdout_read"


def ensure_unread(run: RunDir, ledger: Path, force: bool = False, why: str | None = None) -> list[dict]:
    """The earlier reads of the sealed rows (any run's); raises GuardError if there are any and the read is not
    forced with a reason."""
    earlier = holdout_reads(run, ledger)
    if earlier and not force:
        last = earlier[-1]
        raise GuardError(
            f"the sealed holdout (sha256 {last['sha256'][:12]}) was already read: {len(earlier)} time(s), last by "
            f"'{last['reader']}' ({last['who']}) in run {last['run']} at {last['time']}, as recorded in {ledger}. "
            "The same rows are sealed by every run with the same data and seed, so a new run name does not unseal "
            "them. Reading them again, after choosing with them in view, makes them one more eval set and the "
            "figure optimistic. If you must (a crash before the figures were seen, a deliberate final re-check), "
            "run `tunestack holdout CONFIG --force --why 'REASON'`: the forced read is recorded with the reason")
    if earlier and not (why and why.strip()):
        raise GuardError("a forced read of the sealed holdout needs a reason, recorded in the ledger: add "
                         "--why 'REASON' (for example: the first read crashed before its figures were seen)")
    return earlier


def read_holdout(run: RunDir, ledger: Path, reader: str, force: bool = False, why: str | None = None) -> list[dict]:
    """The holdout rows, once: a second read of the same sealed rows is refused unless `force` (with `why`);
    every read is recorded, a forced one as such."""
    sealed = run.require("prepare")["holdout_sha256"]
    path = run.root / "prepare" / "holdout.jsonl"
    actual = file_hash(path)
    if actual != sealed:
        raise DataError(f"{path} changed after prepare sealed it (sha256 {actual[:12]} vs {sealed[:12]}): re-run "
                        "`tunestack prepare --force`, and do not edit the holdout by hand")
    earlier = ensure_unread(run, ledger, force, why)
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    record(ledger, KIND, actual, reader=reader, run=str(run.root.resolve()), rows=len(rows), forced=bool(earlier),
           read_number=len(earlier) + 1, why=why if earlier else None)
    return rows


def holdout_reads(run: RunDir, ledger: Path) -> list[dict]:
    """Every recorded read of the rows this run sealed, by any run, oldest first."""
    return entries(ledger, KIND, run.require("prepare")["holdout_sha256"])
