"""Stage `prepare`: every source read and validated, one template, duplicates and leaks removed, sealed splits.

The recipe, in order:
1. read each source (JSONL, CSV, Parquet or a `datasets` folder; any row shape) and validate every row;
2. apply the quality policy (production-log rows need a review or a rating; optional caps per tier);
3. measure token lengths under the chat template; reject, truncate or fail on rows over max_length;
4. report mixed system prompts or answer formats (an error with `strict`);
5. remove exact and near duplicates (first occurrence kept), then resolve conflicting labels (`data.conflicts`);
6. split eval and holdout (by ratio, stratified, or from given files);
7. remove training rows that leak from eval/holdout, and from the general eval suites;
8. prepare the general mix (a user file, cleaned the same way, or the self-replay prompt pool);
9. weight the sources, write the files and the data report;
10. stop when a source lost more than `data.max_removed_share` of its rows, or too few training rows are left;
    else the manifest.

Rows kept with a warning (tool-call arguments that do not match the function's schema) are listed in
`warnings.jsonl`; training rows that differ from another only by frequent words inserted (`dedup.near_copies`) in
`near_copies.jsonl`, with the `data.filler_words` setting that would remove them. Every row that does not reach an
output file is in `rejects.jsonl`, `duplicates.jsonl` (duplicates and conflicting labels) or `decontaminated.jsonl`
with its file, line, reason and evidence, and the counts reconcile per source:
read = kept + rejected + exact_duplicates + near_duplicates + conflicting_labels + decontaminated.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tunestack.config import Config
from tunestack.data.canon import RULE
from tunestack.data.checks import apply_quality, consistency_findings
from tunestack.data.clean import (filler_words, list_near_copies, protected_items, remove_conflicts, remove_duplicates,
                                  remove_leaks)
from tunestack.data.dedup import filler_setting
from tunestack.data.formats import Reject, Row
from tunestack.data.general import general_suite, replay_count, replay_pool, share_warning
from tunestack.data.guard import REMOVALS, check_removals, check_train_size, count_of
from tunestack.data.leaks import decontaminate, suite_rows
from tunestack.data.lengths import fit_lengths, length_stats
from tunestack.data.readers import read_source
from tunestack.data.report import COUNTS, write_data_report
from tunestack.data.splits import split_rows, split_sizes, stratum
from tunestack.errors import DataError
from tunestack.rundir import RunDir, file_hash, read_json, write_json, write_jsonl

log = logging.getLogger("tunestack")
GENERAL = "general mix"


class Ledger:
    """Per-source counts, so that read = kept + rejected + duplicates + decontaminated can be checked per source."""

    def __init__(self):
        self.counts: dict[str, Counter] = {}

    def add(self, origin: str, what: str, n: int = 1) -> None:
        self.counts.setdefault(origin, Counter())[what] += n

    def table(self) -> dict[str, dict]:
        return {name: {c: counts[c] for c in COUNTS} for name, counts in self.counts.items()}

    def total(self) -> dict:
        return {c: sum(counts[c] for counts in self.counts.values()) for c in COUNTS}

    def check(self) -> None:
        for name, c in self.table().items():
            if c["read"] != c["kept"] + sum(c[k] for k in REMOVALS):
                raise AssertionError(f"counts do not reconcile for {name}: {c}")


def read_inputs(cfg: Config, ledger: Ledger) -> tuple[list[Row], list[Reject]]:
    """All configured sources, validated; the provenance default of each source applied."""
    rows, rejects = [], []
    for name, source in cfg.data.named_sources():
        got, bad = read_source(Path(source.path), declared=source.format, columns=source.columns, origin=name,
                               max_rows=cfg.data.max_rows, split=source.split)
        for row in got:
            if source.provenance and row.meta.get("source") is None:
                row.meta["source"] = source.provenance
            if source.kind == "code":
                row.meta["identity"] = "code"  # every later reader of the row (calibration, synth) sees it too
        ledger.add(name, "read", len(got) + len(bad))
        ledger.add(name, "invalid", len(bad))
        rows += got
        rejects += bad
    return rows, rejects


def reject_rate_problems(ledger: Ledger, rejects: list[Reject], limit: float) -> list[str]:
    """A line for each source whose share of malformed rows is over data.max_reject_rate: that knob alone governs
    malformed rows (data.max_removed_share, checked at the end, leaves them out)."""
    problems = []
    for name, counts in ledger.counts.items():
        if counts["read"] and counts["invalid"] / counts["read"] > limit:
            reasons = Counter(r.code or r.reason for r in rejects if r.origin == name and r.kind == "invalid")
            top = "; ".join(f"{n}x {reason} (first: {_first(rejects, name, reason)})"
                            for reason, n in reasons.most_common(6))
            problems.append(f"{name}: {counts['invalid']} of {counts['read']} rows are malformed "
                            f"({counts['invalid'] / counts['read']:.0%}, over data.max_reject_rate={limit:.0%}, the "
                            "limit for malformed rows; data.max_removed_share does not count them). "
                            f"Most common: {top}. Fix the rows (each is in rejects.jsonl with its line and reason), "
                            "or raise data.max_reject_rate to train on the rest of the source without them")
    return problems


def _first(rejects: list[Reject], origin: str, reason: str) -> str:
    first = next(r for r in rejects if r.origin == origin and r.kind == "invalid" and (r.code or r.reason) == reason)
    return f"{Path(first.file).name}:{first.line}, {first.reason}"


def row_warnings(rows: list[Row]) -> list[dict]:
    """What is odd about rows that were kept (tool arguments off their schema, ...), one record per warning."""
    return [{"origin": row.origin, "file": row.file, "line": row.line, "code": w.split(":")[0],
             "warning": w.split(": ", 1)[-1]} for row in rows for w in row.warnings]


def drop_duplicates(d, rows: list[Row]) -> tuple[list[Row], list[dict]]:
    """Exact and near duplicates, then conflicting labels (a majority counts the duplicates): rows and records."""
    filler = filler_words(d.filler_words)
    rows, duplicates, weights = remove_duplicates(rows, filler)
    rows, conflicts = remove_conflicts(rows, weights, d.conflicts, filler)
    return rows, duplicates + conflicts


def drop_leaks(d, rows: list[Row], protected: list[tuple[str, list[dict]]]) -> tuple[list[Row], list[dict]]:
    return remove_leaks(rows, protected, d.decontamination_ngram, filler_words(d.filler_words),
                        d.decontamination_rare_df)


def make_splits(cfg: Config, rows: list[Row], tokenizer, ledger: Ledger,
                rejects: list[Reject]) -> tuple[dict[str, list], list[dict]]:
    """Eval and holdout from given files where configured, the rest split off deterministically. Task rows that
    copy a given eval or holdout row are removed before the split (returned as leak records), so no copy of an eval
    row can land in the split-off holdout."""
    d = cfg.data
    given = {}
    for split, path in (("eval", d.eval_path), ("holdout", d.holdout_path)):
        if path:
            name = f"{split} file"
            got, bad = read_source(Path(path), origin=name)
            for row in got if d.all_code() else ():
                row.meta["identity"] = "code"
            ledger.add(name, "read", len(got) + len(bad))
            ledger.add(name, "invalid", len(bad))
            got, too_long, _ = fit_lengths(got, tokenizer, d.max_length, "reject" if d.too_long == "fail" else d.too_long)
            rejects += bad + too_long
            given[split] = got
    problems = reject_rate_problems(ledger, rejects, d.max_reject_rate)
    if problems:
        raise DataError("the given eval/holdout file is mostly unusable:\n- " + "\n- ".join(problems))
    leaks = []
    if given:
        protected = [item for split, part in given.items() for item in protected_items(part, split)]
        rows, leaks = drop_leaks(d, rows, protected)
    try:
        n_eval, n_holdout = split_sizes(len(rows), 0 if "eval" in given else d.eval_size,
                                        0 if "holdout" in given else d.holdout_size) if len(given) < 2 else (0, 0)
    except DataError as err:
        if not leaks:
            raise
        evidence = Counter(item["evidence"] for item in leaks).most_common(3)
        raise DataError(f"{err}. Before the split, {len(leaks)} rows were removed as leaks of the given eval/holdout "
                        f"files (most frequent evidence: {'; '.join(f'{n}x {e!r}' for e, n in evidence)}; every one "
                        "is listed with what it matched once the stage completes): if that evidence is template "
                        "text, lower data.decontamination_rare_df") from None
    key = None
    if d.stratify_by:
        key = stratum(d.stratify_by)
        if rows and all(key(row) == "(missing)" for row in rows):
            raise DataError(f"data.stratify_by: no row has a field {d.stratify_by!r} (use a row key, or answer.<key> "
                            "for a key of a JSON answer)")
    splits = split_rows(rows, n_eval, n_holdout, cfg.run.seed, key)
    splits.update(given)
    if not splits["eval"]:
        raise DataError("the eval set is empty: set data.eval_size above 0 or give data.eval_path")
    return splits, leaks


def sealed_holdout(cfg: Config, tokenizer) -> list[Row]:
    """The rows prepare seals as holdout under this config (a given holdout file's included), found the way prepare
    finds them and with nothing written, so that another reader of the sources (`assess`) can leave them out."""
    d, ledger = cfg.data, Ledger()
    rows, rejects = read_inputs(cfg, ledger)
    rows, _ = apply_quality(rows, d.quality.production_min_rating, d.quality.tier_caps)
    rows, _, _ = fit_lengths(rows, tokenizer, d.max_length, "reject" if d.too_long == "fail" else d.too_long)
    rows, _ = drop_duplicates(d, rows)
    return make_splits(cfg, rows, tokenizer, ledger, rejects)[0]["holdout"]


def weight_sources(cfg: Config, train: list[Row]) -> tuple[list[Row], list[Row], dict]:
    """Repeat (weight > 1) or subsample (weight < 1) each source's training rows; returns rows, left-out, summary."""
    weights = {name: source.weight for name, source in cfg.data.named_sources()}
    rng = random.Random(cfg.run.seed + 1)
    by_origin: dict[str, list[Row]] = defaultdict(list)
    for row in train:
        by_origin[row.origin].append(row)
    weighted, left_out, summary = [], [], {}
    for origin, rows in by_origin.items():
        weight = weights.get(origin, 1.0)
        whole, fraction = int(weight), weight - int(weight)
        extra_n = round(fraction * len(rows))
        chosen = set(rng.sample(range(len(rows)), extra_n))
        for i, row in enumerate(rows):
            copies = whole + (i in chosen)
            weighted += [row] * copies
            if copies == 0:
                left_out.append(row)
        summary[origin] = {"weight": weight, "unique": len(rows), "rows": whole * len(rows) + extra_n}
    rng.shuffle(weighted)
    return weighted, left_out, summary


def eval_age(cfg: Config, run: RunDir, eval_hash: str) -> tuple[str, int]:
    """When the eval set was made, and its age in days; the run remembers when it first saw each eval set."""
    history_path = run.root / "eval_history.json"
    history = read_json(history_path) if history_path.exists() else {}
    today = dt.date.today()
    history.setdefault(eval_hash, today.isoformat())
    write_json(history_path, history)
    if cfg.data.eval_created:
        created = cfg.data.eval_created
    elif cfg.data.eval_path:
        created = dt.date.fromtimestamp(Path(cfg.data.eval_path).stat().st_mtime)
    else:
        created = dt.date.fromisoformat(history[eval_hash])
    return created.isoformat(), (today - created).days


def prepare_general(cfg: Config, tokenizer, protected: list, suite: list, ledger: Ledger, n_task: int = 0) -> dict:
    """The general mix's rows (from a file, cleaned like task rows) or its self-replay prompt pool, sized for
    `n_task` task rows with a margin for answers replay cannot use."""
    d, mix = cfg.data, cfg.train.general_mix
    if mix.source == "file":
        rows, rejects = read_source(Path(mix.path), origin=GENERAL)
        ledger.add(GENERAL, "read", len(rows) + len(rejects))
        ledger.add(GENERAL, "invalid", len(rejects))
        problems = reject_rate_problems(ledger, rejects, d.max_reject_rate)
        if problems:
            raise DataError("train.general_mix.path is mostly unusable:\n- " + "\n- ".join(problems))
        rows, policy = apply_quality(rows, d.quality.production_min_rating, {})
        rejects += policy
        rows, too_long, _ = fit_lengths(rows, tokenizer, d.max_length, "reject" if d.too_long == "fail" else d.too_long)
        rows, duplicates = drop_duplicates(d, rows)
        rows, leaks = drop_leaks(d, rows, protected)
        rows, suite_leaks = drop_leaks(d, rows, suite)
        return {"rows": [r.to_json() for r in rows], "kept": rows, "rejects": rejects + too_long,
                "duplicates": duplicates, "leaks": leaks + suite_leaks,
                "detail": f"{len(rows)} usable rows in {mix.path}."}

    pool = replay_pool(math.ceil(replay_count(n_task, mix.share) * 1.3) + 10, cfg.run.seed)
    dropped = pool_leaks(d, pool, suite + protected)
    kept = [p for i, p in enumerate(pool) if i not in dropped]
    return {"rows": kept, "kept": [], "rejects": [], "duplicates": [], "leaks": [],
            "detail": f"Self-replay: the base model answers up to {len(kept)} general prompts at train time "
                      f"({sum(not p['id'].startswith('evals:') for p in kept)} built in, the rest from the evals "
                      f"package; {len(dropped)} of {len(pool)} dropped for overlapping an eval item)."}


def pool_leaks(d, pool: list[dict], protected: list[tuple[str, list[dict]]]) -> set[int]:
    """The self-replay prompts that leak a protected item. A replay prompt is a row with an empty answer: the same
    prompt as an eval item is a leak."""
    hits = decontaminate([[{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": ""}]
                          for p in pool], [m for _, m in protected], n=d.decontamination_ngram,
                         filler=filler_words(d.filler_words), rare_df=d.decontamination_rare_df)
    return {h["row"] for h in hits}


@dataclass
class ReadRows:
    """What reading hands on: the rows past validation, the quality policy and the length check; every reject so
    far (later steps add theirs); and what the report says of them."""

    rows: list[Row]
    rejects: list[Reject]
    row_warnings: list[dict]
    tiers: Counter
    lengths: dict
    findings: list[dict]


@dataclass
class Cleaned:
    """What cleaning and splitting hand on: the splits (train without duplicates or leaks), the general mix, the
    records of the rows removed, and the training rows kept as near copies (with the filler setting that would
    remove them)."""

    splits: dict[str, list[Row]]
    general: dict
    duplicates: list[dict]
    leaks: list[dict]
    near: list[dict]
    near_words: list[str]
    setting: str


def run_prepare(cfg: Config, run: RunDir, tokenizer) -> dict:
    """Read, validate, length-check, deduplicate, split and decontaminate the data; returns the manifest body."""
    out, ledger = run.stage("prepare"), Ledger()
    read = read_rows(cfg, tokenizer, out, ledger)
    cleaned = clean_rows(cfg, tokenizer, read, ledger)
    weighted, left_out, weighting = weight_sources(cfg, cleaned.splits["train"])
    write_outputs(cfg, out, read, cleaned, weighted, left_out)
    reconcile(ledger, read, cleaned)
    warnings, created, age = stage_warnings(cfg, run, out, read, cleaned)
    body = report_body(cfg, out, ledger, read, cleaned, warnings, created, age, weighted=len(weighted),
                       left_out=len(left_out), weighting=weighting)
    write_data_report(out, body, {name: [r.tokens for r in part] for name, part in cleaned.splits.items()},
                      cfg.data.max_length, cleaned.duplicates + cleaned.leaks)
    log.info("[prepare] %s; report: %s", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in body["counts"].items()),
             out / "data_report.md")
    check_stops(cfg, out, ledger, cleaned, len(weighted), body["counts"])
    return body


def read_rows(cfg: Config, tokenizer, out: Path, ledger: Ledger) -> ReadRows:
    """Steps 1-4: the sources read and validated, the quality policy applied, lengths measured; `warnings.jsonl`
    and `rejects.jsonl` written; stops on too many malformed rows, rows too long under `too_long: fail`,
    inconsistencies under `strict`, or no usable row."""
    d = cfg.data
    rows, rejects = read_inputs(cfg, ledger)
    kept_warnings = row_warnings(rows)
    write_jsonl(out / "warnings.jsonl", kept_warnings)
    tiers_read = Counter(row.tier for row in rows)
    problems = reject_rate_problems(ledger, rejects, d.max_reject_rate)
    rows, policy_rejects = apply_quality(rows, d.quality.production_min_rating, d.quality.tier_caps)
    rows, too_long, length_counts = fit_lengths(rows, tokenizer, d.max_length, d.too_long)
    rejects += policy_rejects + too_long
    write_jsonl(out / "rejects.jsonl", (r.to_json() for r in rejects))
    if d.too_long == "fail" and too_long:
        problems.append(f"{len(too_long)} rows are longer than data.max_length={d.max_length} (first: "
                        f"{too_long[0].file}:{too_long[0].line}, {too_long[0].reason}); data.too_long is 'fail'")
    findings = consistency_findings(rows, d.mixed_share)
    if d.strict:
        problems += [f["message"] for f in findings]
    if problems:
        raise DataError("prepare stopped; every rejected row is in " + str(out / "rejects.jsonl") + ":\n- "
                        + "\n- ".join(problems))
    if not rows:
        raise DataError(f"no usable rows out of {ledger.total()['read']}; see {out / 'rejects.jsonl'}")
    return ReadRows(rows, rejects, kept_warnings, tiers_read, length_counts, findings)


def clean_rows(cfg: Config, tokenizer, read: ReadRows, ledger: Ledger) -> Cleaned:
    """Steps 5-8: duplicates and conflicting labels removed, eval and holdout split off, training rows that leak
    them or the general eval suites removed, the general mix prepared, near copies within train listed. The
    rejects of given eval/holdout files and of the general mix are added to `read.rejects`."""
    d = cfg.data
    rows, duplicates = drop_duplicates(d, read.rows)
    splits, leaks = make_splits(cfg, rows, tokenizer, ledger, read.rejects)
    protected = protected_items(splits["eval"], "eval") + protected_items(splits["holdout"], "holdout")
    splits["train"], split_leaks = drop_leaks(d, splits["train"], protected)
    leaks += split_leaks
    suite = suite_rows(general_suite(cfg)) if d.decontaminate_general else []
    splits["train"], suite_leaks = drop_leaks(d, splits["train"], suite)
    general = prepare_general(cfg, tokenizer, protected, suite, ledger, len(splits["train"]))
    read.rejects += general["rejects"]
    duplicates += general["duplicates"]
    leaks += suite_leaks + general["leaks"]
    near = list_near_copies(splits["train"], filler_words(d.filler_words))
    near_words, setting = filler_setting(near, d.filler_words)
    return Cleaned(splits, general, duplicates, leaks, near, near_words, setting)


def write_outputs(cfg: Config, out: Path, read: ReadRows, cleaned: Cleaned, weighted: list[Row],
                  left_out: list[Row]) -> None:
    """Step 9's files: the splits (train weighted), the general mix or replay pool, and every removed row."""
    for name in ("eval", "holdout"):
        write_jsonl(out / f"{name}.jsonl", (row.to_json() for row in cleaned.splits[name]))
    write_jsonl(out / "train.jsonl", (row.to_json() for row in weighted))
    write_jsonl(out / "general.jsonl" if cfg.train.general_mix.source == "file" else out / "replay_prompts.jsonl",
                cleaned.general["rows"])
    write_jsonl(out / "weighted_out.jsonl", (row.to_json() for row in left_out))
    write_jsonl(out / "rejects.jsonl", (r.to_json() for r in read.rejects))
    write_jsonl(out / "duplicates.jsonl", cleaned.duplicates)
    write_jsonl(out / "decontaminated.jsonl", cleaned.leaks)
    write_jsonl(out / "near_copies.jsonl", cleaned.near)


def reconcile(ledger: Ledger, read: ReadRows, cleaned: Cleaned) -> None:
    """Every row's fate counted per source; read = kept + removed must hold for each."""
    splits = cleaned.splits
    for row in [*splits["eval"], *splits["holdout"], *splits["train"], *cleaned.general["kept"]]:
        ledger.add(row.origin, "kept")
    for r in read.rejects:
        ledger.add(r.origin, "rejected")
    for item in cleaned.duplicates + cleaned.leaks:
        ledger.add(item["origin"], count_of(item))
    ledger.check()


def stage_warnings(cfg: Config, run: RunDir, out: Path, read: ReadRows,
                   cleaned: Cleaned) -> tuple[list[str], str, int]:
    """The stage's warnings (mixed formats, near copies kept, the general share, an old eval set), each logged;
    returns them with the eval set's creation date and age in days."""
    d = cfg.data
    warnings = [f["message"] for f in read.findings]
    if cleaned.near:
        warnings.append(f"{len(cleaned.near)} training rows differ from another training row only by frequent words "
                        f"inserted ({', '.join(cleaned.near_words[:8])}): kept, and listed in near_copies.jsonl. If "
                        f"those words carry no meaning here, this setting removes them as near duplicates: "
                        f"{cleaned.setting}")
    mix_warning = share_warning(cfg.train.general_mix.share)
    warnings += [mix_warning] if mix_warning else []
    created, age = eval_age(cfg, run, file_hash(out / "eval.jsonl"))
    if age > d.eval_max_age_days:
        warnings.append(f"the eval set is {age} days old (created {created}), over data.eval_max_age_days="
                        f"{d.eval_max_age_days}: rotate it, since a team that tunes against one eval set for months "
                        "overfits to it")
    for warning in warnings:
        log.warning("prepare: %s", warning)
    return warnings, created, age


def report_body(cfg: Config, out: Path, ledger: Ledger, read: ReadRows, cleaned: Cleaned, warnings: list[str],
                created: str, age: int, *, weighted: int, left_out: int, weighting: dict) -> dict:
    """The manifest body and data report's figures: counts per source and reason, splits, tiers, lengths, the
    general mix, warnings and the hashes of what was written and read."""
    d, splits, leaks, rejects = cfg.data, cleaned.splits, cleaned.leaks, read.rejects
    return {
        "counts": ledger.total(),
        "sources": ledger.table(),
        "rejected_by_kind": dict(Counter(r.kind for r in rejects)),
        "invalid_by_reason": dict(Counter(r.code or "other" for r in rejects if r.kind == "invalid")),
        "row_warnings": dict(Counter(w["code"] for w in read.row_warnings)),
        "decontaminated_by": dict(Counter(item["matched"].split(" ")[0] for item in leaks)),
        "identity_rule": RULE,
        "near_copies": {"eval_or_holdout_removed": sum(item["kind"] == "inserted" for item in leaks),
                        "within_train_kept": len(cleaned.near), "words": cleaned.near_words,
                        "setting": cleaned.setting if cleaned.near else None},
        "splits": {"train": weighted, "train_unique": len(splits["train"]), "weighted_out": left_out,
                   "eval": len(splits["eval"]), "holdout": len(splits["holdout"])},
        "weighting": weighting if any(w["weight"] != 1 for w in weighting.values()) else {},
        "tiers": tier_counts(read.tiers, [*splits["eval"], *splits["holdout"], *splits["train"]]),
        "lengths": {"max_length": d.max_length, "policy": d.too_long, **read.lengths,
                    "splits": {name: length_stats([r.tokens for r in part]) for name, part in splits.items()}},
        "general_mix": {"source": cfg.train.general_mix.source, "share": cfg.train.general_mix.share,
                        "planned": replay_count(weighted, cfg.train.general_mix.share),
                        "available": len(cleaned.general["rows"]), "detail": cleaned.general["detail"]},
        "findings": read.findings,
        "warnings": warnings,
        "holdout_sha256": file_hash(out / "holdout.jsonl"),
        "eval_sha256": file_hash(out / "eval.jsonl"),
        "eval_created": created,
        "eval_age_days": age,
        "source_sha256": {name: file_hash(Path(s.path)) for name, s in cfg.data.named_sources()
                          if Path(s.path).is_file()},
    }


def check_stops(cfg: Config, out: Path, ledger: Ledger, cleaned: Cleaned, n_train: int, counts: dict) -> None:
    """Step 10: stop when a source lost more than its `max_removed_share`, or too few training rows are left."""
    d = cfg.data
    limits = {"": d.max_removed_share, **{name: s.max_removed_share for name, s in d.named_sources()
                                          if s.max_removed_share is not None}}
    by_origin = defaultdict(list)
    for item in cleaned.duplicates + cleaned.leaks:
        by_origin[item["origin"]].append(item)
    check_removals(ledger.counts, limits, by_origin, out)  # with `invalid`, which the manifest's table leaves out
    check_train_size(n_train, d.min_train_rows, cfg.train.micro_batch_size * cfg.train.grad_accum, counts)


def tier_counts(read: Counter, kept: list[Row]) -> dict:
    """Valid rows read and rows kept, per provenance tier."""
    kept_n = Counter(r.tier for r in kept)
    return {tier: {"read": read[tier], "kept": kept_n[tier]} for tier in sorted(set(read) | set(kept_n))}
