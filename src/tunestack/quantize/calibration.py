"""Calibration rows for quantization: drawn from what the model was trained on, never from eval or holdout.

`quantize.calibration.mix: training` draws task rows (`prepare/train.jsonl`) and the general rows training mixed in
(`train/general.jsonl`) in the share training used them, so the activations AWQ and GPTQ fit their scales to
include the general capability the gate measures; `task` draws task rows only. Each row is the whole conversation
as training rendered it (the model's chat template, the answer included), cut to `max_length` tokens.
"""

from __future__ import annotations

import random

from tunestack.chat import render_example
from tunestack.config import Config
from tunestack.data.canon import identity_view, row_keys
from tunestack.errors import GuardError, StageError
from tunestack.rundir import RunDir, read_jsonl

__all__ = ["calibration_rows", "conversation_hash", "prompt_hash"]


def conversation_hash(row: dict) -> str:
    """A prepared row's identity as prepare's exact-duplicate check sees it (`tunestack.data.canon`'s rule: case of
    prose, Unicode form, sentence punctuation and spacing do not count; signs and operators do)."""
    return row_keys(identity_view(row["messages"], row)).exact.hex()


def prompt_hash(row: dict) -> str:
    """The same for the conversation without its answer: a calibration row whose prompt is an eval or holdout
    prompt leaks it, whatever its answer."""
    return row_keys(identity_view(row["messages"], row)).prompt.hex()


def calibration_rows(cfg: Config, run: RunDir, tokenizer) -> list[dict]:
    """`quantize.calibration.rows` rows, each {source, line, hash, prompt_hash, input_ids}, seeded by `run.seed`.
    Raises GuardError if one of them has an eval or holdout prompt (prepare's decontamination should make that
    impossible)."""
    spec = cfg.quantize.calibration
    task = read_jsonl(run.root / "prepare" / "train.jsonl")
    general_path = run.root / "train" / "general.jsonl"
    general = read_jsonl(general_path) if spec.mix == "training" and general_path.exists() else []
    if not task:
        raise StageError("quantize: prepare/train.jsonl is empty; there is nothing to calibrate on")
    rng = random.Random(cfg.run.seed)
    n = min(spec.rows, len(task) + len(general))
    n_general = round(n * len(general) / (len(task) + len(general))) if general else 0
    n_general = min(n_general, len(general))
    picked = [("train", row) for row in rng.sample(task, min(n - n_general, len(task)))]
    picked += [("general", row) for row in rng.sample(general, n_general)]
    sealed = {prompt_hash(row) for name in ("eval", "holdout")
              for row in read_jsonl(run.root / "prepare" / f"{name}.jsonl")}
    leaked = [(source, row.get("line")) for source, row in picked if prompt_hash(row) in sealed]
    if leaked:
        raise GuardError(f"quantize: {len(leaked)} calibration rows have an eval or holdout prompt (first: "
                         f"{leaked[0][0]} line {leaked[0][1]}); re-run prepare, which decontaminates the training "
                         "split")
    rows = []
    for source, row in picked:
        ids = render_example(tokenizer, row["messages"]).input_ids[: spec.max_length]
        rows.append({"source": source, "line": row.get("line"), "hash": conversation_hash(row),
                     "prompt_hash": prompt_hash(row), "input_ids": ids})
    return rows


def as_dataset(rows: list[dict]):
    """The rows as the tokenized `datasets.Dataset` llm-compressor's `oneshot` takes."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows],
                              "attention_mask": [[1] * len(r["input_ids"]) for r in rows]})
