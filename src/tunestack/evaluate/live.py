"""Evaluation while training: each checkpoint is evaluated as soon as the train stage publishes it.

It is the evaluate stage's own evaluation (same function, same prompts, same cache key), run on rank 0 inside the
checkpoint callback, so `evaluate/progress.md` gains a row per checkpoint while training runs and the evaluate stage
afterwards reuses every result instead of computing it again. Training's RNG streams are forked around it, so a run
with evaluation while training trains exactly the same weights as one without.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from tunestack.config import Config
from tunestack.rundir import RunDir

log = logging.getLogger("tunestack")


class LiveEvaluation:
    """Called with each published checkpoint's metadata; evaluates the base model first, once."""

    def __init__(self, cfg: Config, run: RunDir, tokenizer):
        self.cfg, self.run, self.tokenizer = cfg, run, tokenizer
        self.suites = None
        self.rows: list[dict] = []
        """Raw rows of the models evaluated so far, base first."""
        self.seconds = 0.0
        """Time spent evaluating, which the train stage leaves out of its throughput."""

    def __call__(self, meta: dict) -> None:
        started = time.time()
        try:
            self._evaluate(meta)
        finally:
            self.seconds += time.time() - started

    def _evaluate(self, meta: dict) -> None:
        """Evaluate what has not been yet: the base model and any checkpoint published before this run started
        (a resumed run; usually cached), then the new checkpoint. The fp32 base is loaded for the evaluation and
        freed after it, so training does not hold a second copy between checkpoints."""
        from tunestack.evaluate.stage import BASE_ENTRY, Suites, checkpoint_entry, evaluate_entry, relative_rows
        from tunestack.models import load_base
        from tunestack.train.checkpoints import published

        done = {row["name"] for row in self.rows}
        entries = [dict(BASE_ENTRY)] + [checkpoint_entry(m) for m in published(Path(meta["path"]).parent)]
        devices = list(range(torch.cuda.device_count()))
        with torch.random.fork_rng(devices=devices):
            base, _ = load_base(self.cfg.model)  # fp32, as the evaluate stage merges into
            self.suites = self.suites or Suites(self.cfg, self.run)
            self.rows += [{**e, **evaluate_entry(self.cfg, self.run, self.suites, base, self.tokenizer, e)[0]}
                          for e in entries if e["name"] not in done]
            del base
        rows = relative_rows(self.rows, self.cfg.evaluate.retention.probe_weight)
        write_progress(self.run.stage("evaluate") / "progress.md", rows)
        now = rows[-1]
        log.info("[train] evaluated %s while training: %s %.1f%%, format %.1f%%, retention %.1f%% (table: %s)",
                 now["name"], self.suites.scorer.describe()[0]["key"].replace("_", " "), 100 * now["task_accuracy"],
                 100 * now["format_compliance"], 100 * now["general_retention"],
                 self.run.root / "evaluate" / "progress.md")

def write_progress(path: Path, rows: list[dict]) -> None:
    from tunestack.report import model_rows, table_lines

    lines = ["# Evaluation while training", "", "One row per checkpoint, added as each is saved. The evaluate stage "
             "reuses these results; `select` chooses among them when training is done.", "",
             *table_lines(model_rows(rows, chosen=None), markdown=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def live_evaluation(cfg: Config, run: RunDir, tokenizer, world_size: int) -> LiveEvaluation | None:
    """The publish hook, when `train.evaluate_checkpoints` is on and the run is one process (in a multi-process run
    the other ranks would wait on rank 0; the evaluate stage evaluates every checkpoint after training instead)."""
    if not cfg.train.evaluate_checkpoints:
        return None
    if world_size > 1:
        log.info("[train] %d processes: checkpoints are evaluated by the evaluate stage after training", world_size)
        return None
    return LiveEvaluation(cfg, run, tokenizer)
