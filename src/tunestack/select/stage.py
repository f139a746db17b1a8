"""Stage `select`: apply `choose` to the evaluate stage's rows and record the decision."""

from __future__ import annotations

from tunestack.config import Config
from tunestack.rundir import RunDir
from tunestack.select.choose import choose


def run_select(cfg: Config, run: RunDir) -> dict:
    rows = run.require("evaluate")["models"]
    decision = choose(rows, dict(cfg.select.weights), cfg.select.min_retention)
    # Every selection made against the eval set is a chance to overfit it; the count is kept with the run.
    previous = (run.manifest("select") or {}).get("eval_set_decisions", 0)
    return {**decision, "eval_set_decisions": previous + 1}
