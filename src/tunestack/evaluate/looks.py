"""More items where a retention verdict cannot decide: the second (third, ...) look that select and the quantize
gate take.

Evaluate scores every checkpoint on the configured retention suites: enough to rank them, not always enough to say
whether the one select would choose (or a quantized candidate) keeps the floor. Where its verdict
(`tunestack.verdict`) is inconclusive, the base model and that model are scored again on `select.retention_growth`
times as many items of every suite (the multiple-choice draw, quartz, the instruction items, every probe, an lm-eval
`limit`; capped at what each holds), and the verdict is taken on the larger draw. Each look tests at alpha /
`select.retention_looks` (Bonferroni's alpha spending): the chance of a false pass at any of the looks is at most
alpha, whichever look the decision stops at (tests/test_verdict.py simulates it). The task metrics and the ranking
stay those of evaluate's draw, the same for every model; only the retention decision of the looked-at model moves.
The base model's and checkpoints' results are kept in `<run>/select/look-<k>/` under the same cache keys as
evaluate's, so a re-run (or the quantize gate after select) does not score them again.
"""

from __future__ import annotations

import time
from pathlib import Path

from tunestack.config import Config
from tunestack.rundir import RunDir


def enlarged(cfg: Config, look: int) -> Config:
    """The config with every retention suite `retention_growth ** (look - 1)` times larger, capped at what it holds."""
    from tunestack.data.choices import available
    from tunestack.data.instructions import most_items

    ret = cfg.evaluate.retention
    growth = cfg.select.retention_growth ** (look - 1)

    def grow(n: int | None, most: int | None = None) -> int | None:
        if not n:
            return n
        return min(int(round(n * growth)), most) if most else int(round(n * growth))

    sizes = {"choices": grow(ret.choices, available() if ret.choices else None),
             "quartz_examples": grow(ret.quartz_examples, quartz_count() if ret.quartz_examples else None),
             "instructions": grow(ret.instructions, most_items()),
             "max_probes": None,
             "lm_eval": ret.lm_eval.model_copy(update={"limit": grow(ret.lm_eval.limit)})}
    evaluate = cfg.evaluate.model_copy(update={"retention": ret.model_copy(update=sizes)})
    return cfg.model_copy(update={"evaluate": evaluate})


def quartz_count() -> int:
    from tunestack.data.suites import quartz_path

    with quartz_path().open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def score_look(cfg: Config, run: RunDir, entry: dict, look: int, loaded: dict) -> tuple[dict, dict, dict]:
    """The base model's and a checkpoint's rows on the look's larger draw, and what the look was (sizes, seconds);
    `loaded` keeps the base model (and the look's suites) between calls."""
    started = time.perf_counter()
    base = scored(cfg, run, None, look, loaded)
    mine = scored(cfg, run, {k: entry[k] for k in ("name", "kind", "step", "path", "train_loss")}, look, loaded)
    return base, mine, described(loaded[look], look, started)


def scored(cfg: Config, run: RunDir, entry: dict | None, look: int, loaded: dict) -> dict:
    """One model's row on the look's draw (`entry` None: the base model), scored once and kept."""
    from tunestack.evaluate.core import BASE_ENTRY, evaluate_entry

    suites = look_suites(cfg, run, look, loaded)
    if "model" not in loaded:
        from tunestack.models.load import load_for_stage, setup_torch

        setup_torch(cfg)
        loaded["model"], loaded["tokenizer"] = load_for_stage(cfg, "evaluate")
    entry = entry or dict(BASE_ENTRY)
    metrics, _ = evaluate_entry(suites.cfg, run, suites, loaded["model"], loaded["tokenizer"], entry,
                                backend="local", folder=Path(run.stage("select")) / f"look-{look}")
    return {**entry, **metrics}


def look_suites(cfg: Config, run: RunDir, look: int, loaded: dict):
    """The suites of look `look` (built once)."""
    from tunestack.evaluate.core import Suites

    if look not in loaded:
        loaded[look] = Suites(enlarged(cfg, look), run)
    return loaded[look]


def described(suites, look: int, started: float) -> dict:
    """What a look drew and how long it took."""
    return {"look": look, "sizes": {"choices": len(suites.choices), "quartz": len(suites.quartz),
                                    "instructions": len(suites.instructions), "probes": len(suites.probes),
                                    "lm_eval_limit": suites.cfg.evaluate.retention.lm_eval.limit},
            "seconds": round(time.perf_counter() - started, 1)}
