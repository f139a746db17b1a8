"""A sweep's data: the user's split once, a dev split carved from its training rows, and each trial's training data
as a view of the rest (sources and tiers in or out, weights, a share of the rows).

The sweep's own run folder prepares the user's config once (`prepare/`): its eval split and sealed holdout are the
ones a plain run of the config would make, and its training rows (each once, before weighting) are the pool every
trial draws from. `sweep/dev.jsonl` is carved from that pool (stratified like the eval split); the rest is written
per source and per trial view under `sweep/data/`, named by content, so that trials with the same data section name
the same files and share one prepare. A trial's prepare reads those files as its sources, with `dev.jsonl` as its
eval set and no holdout: it trains on no dev row and never sees the eval set or the holdout.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path

from tunestack.config import Config
from tunestack.config.sweep import source_key
from tunestack.data.formats import Row
from tunestack.data.splits import split_rows, split_sizes, stratum
from tunestack.errors import DataError
from tunestack.rundir import content_hash, read_jsonl, write_jsonl

PLACE = ("origin", "file", "line")
"""Where a prepared row came from: kept on the row as `sweep_from`, not as its own keys."""


def pool(root: Path) -> list[dict]:
    """The prepared training rows of the sweep's run, each once (before source weights repeated or dropped them)."""
    prepared = root / "prepare"
    seen, rows = set(), []
    for path in (prepared / "train.jsonl", prepared / "weighted_out.jsonl"):
        for row in read_jsonl(path) if path.exists() else []:
            place = (row.get("origin"), row.get("file"), row.get("line"))
            if place not in seen:
                seen.add(place)
                rows.append(row)
    rows.sort(key=lambda r: (str(r.get("origin")), str(r.get("file")), int(r.get("line") or 0)))
    return rows


def carve_dev(cfg: Config, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The dev split (`sweep.dev_size` of the rows, stratified by `data.stratify_by`) and the rows left to train on."""
    try:
        n_dev = split_sizes(len(rows), cfg.sweep.dev_size, 0)[0]
    except DataError as err:
        raise DataError(f"sweep.dev_size: {err}") from None
    if n_dev < 10:
        raise DataError(f"sweep.dev_size gives {n_dev} dev rows of {len(rows)}: too few to decide trials on; raise "
                        "sweep.dev_size or add training rows")
    as_rows = [Row(r["messages"], str(r.get("file")), int(r.get("line") or 0), meta=r) for r in rows]
    key = stratum(cfg.data.stratify_by) if cfg.data.stratify_by else None
    parts = split_rows(as_rows, n_dev, 0, cfg.run.seed + 7, key)
    return [r.meta for r in parts["eval"]], [r.meta for r in parts["train"]]


def plain(row: dict) -> dict:
    """A prepared row as a source row again: its place in the user's files kept as `sweep_from`."""
    out = {k: v for k, v in row.items() if k not in PLACE}
    out["sweep_from"] = f"{row.get('file')}:{row.get('line')}"
    return out


def write_once(folder: Path, rows: list[dict]) -> Path:
    """The rows in a file named by their content (written once: the same rows are the same file)."""
    path = folder / f"{content_hash(rows)[:16]}.jsonl"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_jsonl(path, rows)  # atomic: a worker reading it never sees half a file
    return path


def kept_share(rows: list[dict], share: float, seed: int) -> list[dict]:
    """`share` of the rows, drawn by a fixed order: a smaller share is always part of a larger one (a learning curve
    adds rows, never swaps them)."""
    if share >= 1:
        return rows
    order = sorted(range(len(rows)), key=lambda i: random.Random(f"{seed}:{i}").random())
    keep = set(order[:max(1, math.ceil(share * len(rows)))])
    return [r for i, r in enumerate(rows) if i in keep]


def trial_sources(cfg: Config, sweep: Path, rest: list[dict], settings: dict) -> list[dict]:
    """The trial's `data.sources`: each source that is in, its rows of the tiers that are in, the trial's share of
    them, at the trial's weight; written under `sweep/data/`."""
    by_origin = defaultdict(list)
    for row in rest:
        by_origin[row.get("origin")].append(row)
    tiers_out = {key.removeprefix("data.tiers.") for key, v in settings.items()
                 if key.startswith("data.tiers.") and v == "out"}
    share = float(settings.get("data.fraction", 1.0))
    sources = []
    for name, source in cfg.data.named_sources():
        found = {what: settings.get(key) for key in settings if (sk := source_key(key)) and sk[0] == name
                 for what in [sk[1]]}
        if found.get("in") == "out":
            continue
        rows = [plain(r) for r in by_origin.get(name, []) if (r.get("source") or "unspecified") not in tiers_out]
        rows = kept_share(rows, share, cfg.run.seed)
        if not rows:
            continue
        entry = {"path": str(write_once(sweep / "data", rows)), "name": name, "format": "chat",
                 "weight": float(found.get("weight", source.weight)), "kind": source.kind,
                 "max_removed_share": source.max_removed_share}
        sources.append({k: v for k, v in entry.items() if v is not None})
    if not sources:
        raise DataError(f"the trial's data section leaves no training row ({json.dumps(settings)}): every source or "
                        "tier is out")
    return sources
