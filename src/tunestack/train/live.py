"""Evaluation while training: each checkpoint is evaluated as soon as the train stage publishes it.

It is the evaluate stage's own evaluation (same function, same prompts, same cache key), run on rank 0 inside the
checkpoint callback, so `evaluate/progress.md` gains a row per checkpoint while training runs and the evaluate stage
afterwards reuses every result instead of computing it again. Training's RNG streams are forked around it, so a run
with evaluation while training trains exactly the same weights as one without.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from tunestack.config import Config
from tunestack.evaluate.core import relative_rows
from tunestack.models.load import dtype_name, stage_dtype
from tunestack.rundir import RunDir, write_text

log = logging.getLogger("tunestack")

LISTENERS: list = []
"""Called after each checkpoint's evaluation while training, as `listener(cfg, rows, task_metrics)` (the rows so
far, base first, retention relative to it): a sweep's trial reports each to Optuna's pruner here, and stops the run
by raising from it."""


class LiveEvaluation:
    """Evaluates the base model before training starts (`evaluate_base`), then each checkpoint as it is published
    (called with its metadata). The checkpoint just saved is evaluated as the training model itself (`model`, set
    by the train stage): LoRA with its adapter merged into the base for the evaluation and the base weights restored
    bit for bit after, QLoRA with its adapter on the 4-bit base, both in eval mode, without a copy. That is the
    same model, in the same dtype, that the evaluate stage builds from the saved checkpoint, so the results are
    shared. Where it would not be (full fine-tuning's fp32 master weights, a training precision other than the
    evaluation one, the vLLM backend) the checkpoint is loaded from disk in the evaluation dtype instead."""

    def __init__(self, cfg: Config, run: RunDir, tokenizer):
        self.cfg, self.run, self.tokenizer = cfg, run, tokenizer
        self.suites = None
        self.rows: list[dict] = []
        """Raw rows of the models evaluated so far, base first."""
        self.seconds = 0.0
        """Time spent evaluating, which the train stage leaves out of its throughput."""
        self.model = None
        """The model being trained, once the train stage has built it."""

    def describe(self) -> dict:
        """For the train manifest: how checkpoints were evaluated while training, and the time it took."""
        training = uses_training_model(self.cfg) and self.model is not None
        return {"checkpoints_as": "the training model" if training else "loaded from disk",
                "dtype": stage_dtype(self.cfg, "evaluate"), "seconds": round(self.seconds, 1)}

    def evaluate_base(self, model) -> None:
        """Evaluate the base model before any weight changes: `model` as the train stage loaded it (None for QLoRA,
        which loads its own 4-bit base), used as it is when it has the evaluation dtype, else loaded from disk."""
        from tunestack.evaluate.core import BASE_ENTRY

        started = time.time()
        try:
            usable = model is not None and dtype_name(model) == stage_dtype(self.cfg, "evaluate")
            self._evaluate([dict(BASE_ENTRY)], base=model if usable else None)
        finally:
            self.seconds += time.time() - started

    def __call__(self, meta: dict) -> None:
        from tunestack.evaluate.core import checkpoint_entry
        from tunestack.train.resume import published

        started = time.time()
        try:
            # a resumed run's earlier checkpoints (usually cached) first, then the one just published
            earlier = [checkpoint_entry(m) for m in published(Path(meta["path"]).parent) if m["name"] != meta["name"]]
            self._evaluate(earlier)
            self._evaluate([checkpoint_entry(meta)], training=uses_training_model(self.cfg) and self.model is not None)
        finally:
            self.seconds += time.time() - started
        rows = relative_rows(self.rows, self.cfg.evaluate.retention.weights)
        write_progress(self.run.stage("evaluate") / "progress.md", rows)
        now = rows[-1]
        log.info("[train] evaluated %s while training: %s %.1f%%, format %.1f%%, retention %.1f%% (table: %s)",
                 now["name"], self.suites.scorer.describe()[0]["key"].replace("_", " "), 100 * now["task_accuracy"],
                 100 * now["format_compliance"], 100 * now["general_retention"],
                 self.run.root / "evaluate" / "progress.md")
        for listener in LISTENERS:
            listener(self.cfg, rows, self.suites.scorer.describe())

    def _evaluate(self, entries: list[dict], base=None, training: bool = False) -> None:
        """Evaluate the entries not evaluated yet: on the training model (`training`), on `base`, or with the base
        loaded from disk in the evaluation dtype when one is needed and freed after."""
        from tunestack.evaluate.core import Suites, evaluate_entry, needs_base

        done = {row["name"] for row in self.rows}
        entries = [e for e in entries if e["name"] not in done]
        if not entries:
            return
        devices = list(range(torch.cuda.device_count()))
        with torch.random.fork_rng(devices=devices):
            self.suites = self.suites or Suites(self.cfg, self.run)
            if base is None and not training and any(needs_base(self.cfg, e) for e in entries):
                from tunestack.models import load_base

                base = load_base(self.cfg.model, dtype=stage_dtype(self.cfg, "evaluate"))[0]
            models = (lambda entry: as_checkpoint(self.model, self.cfg.train.method)) if training else None
            self.rows += [{**e, **evaluate_entry(self.cfg, self.run, self.suites, base, self.tokenizer, e, models)[0]}
                          for e in entries]
            del base


def uses_training_model(cfg: Config) -> bool:
    """Whether the checkpoint just published can be evaluated as the training model itself, giving the results the
    evaluate stage would get from the saved checkpoint (see `LiveEvaluation`)."""
    from tunestack.evaluate.core import local_backend
    from tunestack.models import use_bf16

    if local_backend(cfg) != "local" or cfg.train.every_weight:
        return False
    if cfg.train.method == "qlora":
        return use_bf16(cfg.train.precision) == use_bf16(cfg.evaluate.precision)
    return stage_dtype(cfg, "train") == stage_dtype(cfg, "evaluate")


@contextmanager
def as_checkpoint(model, method: str):
    """The training model as the checkpoint just saved from it, in eval mode, for the duration of the block."""
    from tunestack.models.merge import adapter_merged

    was_training = model.training
    model.eval()
    try:
        if method == "qlora":  # evaluated on its 4-bit base, unmerged, as the evaluate stage does
            yield model
        else:
            with adapter_merged(model):
                yield model
    finally:
        model.train(was_training)


def timed_train(trainer, live, start: Path | None):
    """Train (from checkpoint `start`, if any). Returns (the Trainer's result, optimizer seconds with the
    checkpoints' live evaluations taken out, seconds spent evaluating in all, the base model's included)."""
    started = time.time()
    before = live.seconds if live else 0.0  # the base model's evaluation, done before training started
    result = trainer.train(resume_from_checkpoint=str(start) if start else None)
    evaluating = live.seconds if live else 0.0
    seconds = time.time() - started - (evaluating - before)  # optimizer time: checkpoints' evaluations taken out
    return result, seconds, evaluating


def write_progress(path: Path, rows: list[dict]) -> None:
    from tunestack.tables import model_rows, table_lines

    lines = ["# Evaluation while training", "", "One row per checkpoint, added as each is saved. The evaluate stage "
             "reuses these results; `select` chooses among them when training is done.", "",
             *table_lines(model_rows(rows, chosen=None), markdown=True)]
    write_text(path, "\n".join(lines) + "\n")


def live_evaluation(cfg: Config, run: RunDir, tokenizer, world_size: int) -> LiveEvaluation | None:
    """The publish hook, when `train.evaluate_checkpoints` is on and the run is one process (in a multi-process run
    the other ranks would wait on rank 0; the evaluate stage evaluates every checkpoint after training instead)."""
    if not cfg.train.evaluate_checkpoints:
        return None
    if world_size > 1:
        log.info("[train] %d processes: checkpoints are evaluated by the evaluate stage after training", world_size)
        return None
    return LiveEvaluation(cfg, run, tokenizer)
