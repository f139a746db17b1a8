"""The sample `tunestack assess` runs on: a stratified draw from the task's rows. No torch.

Rows come from the prepared eval, train and weighted-out splits (`assess.data: prepared`; the sealed holdout is never
read), or from the configured sources as read, validated and filtered by the quality policy (`assess.data: sources`),
less the rows prepare seals as holdout for the same config, which are found the way prepare finds them.
The draw is seeded and, with `data.stratify_by`, proportional to each stratum's size (the same allocation as the
eval split).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from tunestack.config import Config
from tunestack.data.formats import Row
from tunestack.data.splits import split_rows, stratum
from tunestack.errors import DataError
from tunestack.rundir import RunDir, read_jsonl

PREPARED = ("eval", "train", "weighted_out")
ROW_KEYS = ("messages", "origin", "file", "line")


@dataclass(frozen=True)
class Sample:
    rows: list[Row]
    available: int
    """Distinct task rows the sample was drawn from."""
    origin: str
    """Where they came from, for the report."""
    strata: dict[str, int]
    """Rows drawn per stratum (empty without `data.stratify_by`)."""


def as_row(item: dict) -> Row:
    """A prepared split's JSON line back as a Row (its extra keys are its metadata)."""
    meta = {k: v for k, v in item.items() if k not in ROW_KEYS}
    return Row(item["messages"], item.get("file", ""), item.get("line", 0), meta, item.get("origin", ""))


def prepared_rows(run: RunDir) -> list[Row]:
    """The prepared task rows, each once (a source weight above 1 repeats rows in train.jsonl)."""
    folder, rows, seen = run.root / "prepare", [], set()
    for split in PREPARED:
        path = folder / f"{split}.jsonl"
        for item in read_jsonl(path) if path.exists() else []:
            key = json.dumps(item["messages"], sort_keys=True)
            if key not in seen:
                seen.add(key)
                rows.append(as_row(item))
    return rows


def source_rows(cfg: Config) -> list[Row]:
    """The configured sources' valid rows that the quality policy keeps, less every row prepare seals as holdout
    (by file and line, and any copy of one by the duplicate keys)."""
    from tunestack.data.checks import apply_quality
    from tunestack.data.prepare import Ledger, read_inputs, sealed_holdout

    rows, _ = read_inputs(cfg, Ledger())
    kept, _ = apply_quality(rows, cfg.data.quality.production_min_rating, cfg.data.quality.tier_caps)
    from tunestack.data.clean import filler_words

    filler = filler_words(cfg.data.filler_words)
    sealed = sealed_holdout(cfg, _tokenizer(cfg))
    places = {(r.file, r.line) for r in sealed}
    keys = {key for r in sealed for key in _keys(r, filler)}
    return [r for r in kept if (r.file, r.line) not in places and not keys.intersection(_keys(r, filler))]


def _keys(row: Row, filler: frozenset) -> tuple[bytes, ...]:
    from tunestack.data.canon import identity_view, row_keys

    k = row_keys(identity_view(row.messages, row.meta), filler)
    return k.exact, k.sequence, k.clauses


def _tokenizer(cfg: Config):
    """The tokenizer prepare measures lengths with: which rows are sealed depends on which are too long."""
    from tunestack.models import load_base

    return load_base(cfg.model, tokenizer_only=True)[1]


def draw(rows: list[Row], n: int, seed: int, stratify_by: str | None) -> tuple[list[Row], dict[str, int]]:
    """`n` rows (all of them when there are fewer), stratified when asked; deterministic for a seed.

    >>> rows = [Row([{"role": "assistant", "content": "{}"}], "f", i, {"kind": "ab"[i % 4 == 0]}) for i in range(40)]
    >>> picked, strata = draw(rows, 8, seed=0, stratify_by="kind")
    >>> len(picked), strata
    (8, {'a': 6, 'b': 2})
    """
    key = stratum(stratify_by) if stratify_by else None
    picked = split_rows(rows, min(n, len(rows)), 0, seed, key)["eval"]
    return picked, dict(sorted(Counter(key(r) for r in picked).items())) if key else {}


def draw_sample(cfg: Config, run: RunDir) -> Sample:
    """The sample the config asks for; a clear error when there is nothing to draw from."""
    prepared = cfg.assess.data == "prepared"
    rows = prepared_rows(run) if prepared else source_rows(cfg)
    rows = [r for r in rows if r.messages and r.messages[-1]["role"] == "assistant"]
    where = f"{run.root / 'prepare'} (eval, train)" if prepared else "data.sources"
    if not rows:
        raise DataError(f"assess: no task rows with an answer in {where}: check the data, or set "
                        f"assess.data={'sources' if prepared else 'prepared'}")
    picked, strata = draw(rows, cfg.assess.examples, cfg.run.seed, cfg.data.stratify_by)
    origin = "prepared eval and train splits" if prepared else "data sources (validated, quality policy applied)"
    return Sample(picked, len(rows), origin, strata)
