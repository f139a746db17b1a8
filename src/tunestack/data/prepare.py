"""Stage `prepare`: validated rows, rendered with the model's chat template, split into train/eval/holdout.

Recipe: read and validate -> reject over-long rows -> remove exact and near duplicates (first occurrence kept) ->
split -> decontaminate train against eval and holdout.

Outputs in `<run>/prepare/`: train.jsonl, eval.jsonl, holdout.jsonl, rejects.jsonl, duplicates.jsonl,
decontaminated.jsonl, then manifest.json with the counts, which reconcile:
read = kept + rejected + exact_duplicates + near_duplicates + decontaminated. The holdout is sealed: later stages
never read it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tunestack.chat import render_example
from tunestack.config import Config
from tunestack.data.dedup import decontaminate, deduplicate, example_pair
from tunestack.data.formats import Reject, Row, read_chat_jsonl
from tunestack.errors import DataError
from tunestack.rundir import RunDir, file_hash


def split_sizes(n: int, eval_size: float, holdout_size: float) -> tuple[int, int]:
    """Counts for eval and holdout; values below 1 are fractions of n.

    >>> split_sizes(1000, 100, 0.05)
    (100, 50)
    """
    def count(size: float) -> int:
        return int(round(size * n)) if size < 1 else int(size)

    n_eval, n_holdout = count(eval_size), count(holdout_size)
    if n_eval + n_holdout >= n:
        raise DataError(
            f"only {n} usable rows, but eval ({n_eval}) and holdout ({n_holdout}) would leave nothing to train on: "
            "add data or lower data.eval_size / data.holdout_size"
        )
    return n_eval, n_holdout


def split_rows(rows: list[Row], n_eval: int, n_holdout: int, seed: int) -> dict[str, list[Row]]:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    shuffled = [rows[i] for i in order]
    return {
        "eval": shuffled[:n_eval],
        "holdout": shuffled[n_eval:n_eval + n_holdout],
        "train": shuffled[n_eval + n_holdout:],
    }


def reject_long_rows(rows: list[Row], tokenizer, max_length: int) -> tuple[list[Row], list[Reject], list[int]]:
    kept, rejects, lengths = [], [], []
    for row in rows:
        chars = sum(len(m["content"]) for m in row.messages)
        if chars > max_length * 16:  # no tokenizer packs 16 characters into a token: too long, no need to tokenize
            reason = f"{chars} characters, far longer than data.max_length={max_length} tokens"
            rejects.append(Reject(row.source, row.line, reason, json.dumps({"messages": row.messages})[:2000]))
            continue
        n = len(render_example(tokenizer, row.messages).input_ids)
        if n > max_length:
            text = json.dumps({"messages": row.messages})
            rejects.append(Reject(row.source, row.line, f"{n} tokens, longer than data.max_length={max_length}", text))
        else:
            kept.append(row)
            lengths.append(n)
    return kept, rejects, lengths


def write_jsonl(path: Path, items) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def remove_duplicates(rows: list[Row], threshold: float) -> tuple[list[Row], list[dict]]:
    kept, removed = deduplicate([example_pair(r.messages) for r in rows], threshold)
    records = [{"kind": d["kind"], "similarity": d["similarity"], "line": rows[d["row"]].line,
                "duplicate_of_line": rows[d["duplicate_of"]].line, "source": rows[d["row"]].source}
               for d in removed]
    return [rows[i] for i in kept], records


def remove_leaks(splits: dict[str, list[Row]], ngram: int, threshold: float) -> list[dict]:
    """Drop training rows that overlap eval or holdout rows; returns one record per removal."""
    protected = splits["eval"] + splits["holdout"]
    hits = decontaminate([example_pair(r.messages) for r in splits["train"]],
                         [example_pair(r.messages) for r in protected], n=ngram, threshold=threshold)
    leaked = {h["row"] for h in hits}
    records = [{"kind": h["kind"], "similarity": h["similarity"], "line": splits["train"][h["row"]].line,
                "matched_line": protected[h["matched"]].line,
                "matched_split": "eval" if h["matched"] < len(splits["eval"]) else "holdout"} for h in hits]
    splits["train"] = [r for i, r in enumerate(splits["train"]) if i not in leaked]
    return records


def run_prepare(cfg: Config, run: RunDir, tokenizer) -> dict:
    """Read, validate, render-check, deduplicate, split and decontaminate the data; returns the manifest body."""
    path = Path(cfg.data.path)
    if not path.exists():
        raise DataError(f"data.path: {path} does not exist (run `tunestack demo` for example data)")
    rows, rejects = read_chat_jsonl(path, cfg.data.max_rows)
    read = len(rows) + len(rejects)
    rows, too_long, lengths = reject_long_rows(rows, tokenizer, cfg.data.max_length)
    length_of = {id(row): n for row, n in zip(rows, lengths)}
    rejects += too_long
    if not rows:
        raise DataError(f"{path}: no usable rows out of {read}; see {run.stage('prepare') / 'rejects.jsonl'}")
    rows, duplicates = remove_duplicates(rows, cfg.data.near_duplicate_threshold)
    n_eval, n_holdout = split_sizes(len(rows), cfg.data.eval_size, cfg.data.holdout_size)
    splits = split_rows(rows, n_eval, n_holdout, cfg.run.seed)
    leaks = remove_leaks(splits, cfg.data.decontamination_ngram, cfg.data.near_duplicate_threshold)
    out = run.stage("prepare")
    for name, part in splits.items():
        write_jsonl(out / f"{name}.jsonl", (row.to_json() for row in part))
    write_jsonl(out / "rejects.jsonl", (r.to_json() for r in rejects))
    write_jsonl(out / "duplicates.jsonl", duplicates)
    write_jsonl(out / "decontaminated.jsonl", leaks)
    counts = {"read": read, "kept": sum(len(p) for p in splits.values()), "rejected": len(rejects),
              "exact_duplicates": sum(d["kind"] == "exact" for d in duplicates),
              "near_duplicates": sum(d["kind"] == "near" for d in duplicates), "decontaminated": len(leaks)}
    removed = counts["rejected"] + counts["exact_duplicates"] + counts["near_duplicates"] + counts["decontaminated"]
    assert counts["read"] == counts["kept"] + removed, counts
    lengths = [length_of[id(row)] for row in splits["train"]]
    return {
        "counts": counts,
        "splits": {name: len(part) for name, part in splits.items()},
        "train_tokens": {"min": min(lengths), "max": max(lengths), "mean": round(sum(lengths) / len(lengths), 1)},
        "holdout_sha256": file_hash(out / "holdout.jsonl"),
        "source_sha256": file_hash(path),
    }
