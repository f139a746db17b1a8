"""What it takes to decide general retention at the floor: per suite, the paired 95% interval of a fine-tune's
retention (its score as a share of the base model's on the same items), what one item costs to score, and how many
items the interval would need to be +-3 points.

It reads a finished run (default: the demo's, `runs/quickstart`), loads the base model and a fine-tuned model of that
run (default: its export; `--model` names a checkpoint folder or any model folder), and scores both on larger
retention suites than the run used: the multiple-choice questions by log-likelihood, adjusted for chance (`--choices`,
drawn stratified from the registry's eight sets) and fourteen kinds of generated everyday
skill, the generative probes (all of
them), the instruction-following items (`--instructions`). Both models run the same items on the evaluate stage's own local
generator, in the stage's dtype, timed per suite.

For each choice set it prints the base model's and the fine-tune's chance-adjusted scores and whether the set counts
(the base model answers it above chance: `tunestack.stats.informative`). For each suite and for the suites pooled with the default `evaluate.retention.weights` (`tunestack.verdict.pooled`) it prints:
the base and tuned scores, the share of items the two models disagree on, retention with Fieller's 95% interval
(two-sided, `tunestack.verdict.ratio_bounds`), its half-width, seconds per item per model, and the item count a
half-width of 3 points would take at the same disagreement (half-widths shrink as 1/sqrt(n)), with what that count
would cost per model. The projection is the measurement's, not a promise: it assumes the extra items are like the
ones scored.

    python bench/retention_resolution.py [--run runs/quickstart] [--model PATH] [--choices 3000]
                                         [--instructions 560] [--target 0.03]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]


def score_model(cfg, folder: Path | None, suites: dict) -> tuple[dict, dict]:
    """Per-item scores of one model (the run's base where `folder` is None) on each suite, and seconds per suite."""
    from tunestack.evaluate.core import folder_generator
    from tunestack.evaluate.retention import score_choices, score_instructions, score_probes
    from tunestack.models import load_base, load_model, stage_dtype

    dtype = stage_dtype(cfg, "evaluate")
    model, tokenizer = load_base(cfg.model, dtype=dtype) if folder is None else load_model(folder, dtype)
    generator = folder_generator(cfg, model, tokenizer, Path("unused"), backend="local")
    ret = cfg.evaluate.retention
    runs = {"choices": lambda: score_choices(generator, suites["choices"])["scores"],
            "probes": lambda: score_probes(generator, suites["probes"], ret.probe_max_new_tokens)["passed"],
            "instructions": lambda: score_instructions(generator, suites["instructions"],
                                                       ret.instruction_max_new_tokens)["passed"]}
    scores, seconds = {}, {}
    for suite, run in runs.items():
        started = time.perf_counter()
        scores[suite] = run()
        seconds[suite] = time.perf_counter() - started
    return scores, seconds


def line(name: str, tuned, base, seconds_per_item: float, target: float) -> str:
    import numpy as np

    from tunestack.verdict import ratio_bounds

    t, b = np.asarray(tuned, dtype=float), np.asarray(base, dtype=float)
    n = len(t)
    low, high = ratio_bounds(t, b, 1.959964)
    ratio = t.mean() / b.mean() if b.mean() > 1e-9 else math.nan
    half = (high - low) / 2 if math.isfinite(low) and math.isfinite(high) else math.inf
    needed = math.ceil(n * (half / target) ** 2) if math.isfinite(half) else None
    differ = float(np.mean(t != b))
    cost = f"{needed * seconds_per_item:8.0f} s" if needed else "       -"
    return (f"{name:<16} {n:>6} {b.mean():>6.1%} {t.mean():>6.1%} {differ:>7.1%} {ratio:>8.1%} "
            f"{low:>7.1%} {high:>7.1%} {half * 100:>6.1f} {seconds_per_item:>8.3f} "
            f"{needed if needed else '-':>8} {cost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/quickstart", help="a finished run folder")
    parser.add_argument("--model", help="the fine-tuned model folder (default: the run's export/model)")
    parser.add_argument("--choices", type=int, default=3000)
    parser.add_argument("--instructions", type=int, default=560)
    parser.add_argument("--target", type=float, default=0.03, help="the half-width to project to")
    args = parser.parse_args()

    from tunestack.config import load_config
    from tunestack.data.instructions import build_instructions
    from tunestack.data.choices import stratified
    from tunestack.data.suites import load_probes
    from tunestack.stats import RETENTION_WEIGHTS, suite_pair
    from tunestack.verdict import pooled

    run = Path(args.run)
    cfg = load_config(run / "config.yaml", [])
    folder = Path(args.model) if args.model else run / "export" / "model"
    if not folder.exists():
        raise SystemExit(f"{folder}: no such model folder; run the demo first (make demo) or pass --model")
    suites = {"choices": stratified(args.choices, cfg.run.seed), "probes": load_probes("builtin"),
              "instructions": build_instructions(args.instructions, cfg.run.seed)}
    print(f"run {run}, fine-tune {folder}; suites: " + ", ".join(f"{k} {len(v)}" for k, v in suites.items()),
          flush=True)
    base, base_s = score_model(cfg, None, suites)
    tuned, tuned_s = score_model(cfg, folder, suites)
    print(f"\n{'suite':<16} {'items':>6} {'base':>6} {'tuned':>6} {'differ':>7} {'retain':>8} {'low':>7} "
          f"{'high':>7} {'+-pts':>6} {'s/item':>8} {'for +-' + format(args.target * 100, '.0f'):>8} {'cost':>10}")
    tasks = [q.task for q in suites["choices"]]
    rows = [{"choices": {"tasks": tasks}, "per_example": scores} for scores in (tuned, base)]
    pairs = {s: suite_pair(rows[0], rows[1], s) for s in suites}
    per_item = (base_s["choices"] + tuned_s["choices"]) / 2 / max(len(tasks), 1)
    for task in dict.fromkeys(tasks):
        mine = [i for i, t in enumerate(tasks) if t == task]
        counts = bool(pairs["choices"][1][mine].any())
        print(line(f"  {task}{'' if counts else ' (x)'}", [tuned["choices"][i] for i in mine],
                   [base["choices"][i] for i in mine], per_item, args.target))
    for suite in suites:
        per_item = (base_s[suite] + tuned_s[suite]) / 2 / max(len(suites[suite]), 1)
        print(line(suite, *pairs[suite], per_item, args.target))
    weights = RETENTION_WEIGHTS  # today's default, whatever the run was configured with
    t, b = pooled(pairs, weights)
    per_item = sum(base_s.values()) / 2 / len(t) + sum(tuned_s.values()) / 2 / len(t)
    print(line("pooled", t, b, per_item, args.target))
    print(f"\npooled with the default evaluate.retention.weights {weights}; seconds per item are per model (the mean of the "
          f"two); a choice question costs one forward pass per option, a probe or instruction item a greedy "
          f"generation. (x): a choice set the base model answers at chance, left out of the suite's figure (its "
          f"questions count 0 on both sides).")


if __name__ == "__main__":
    main()
