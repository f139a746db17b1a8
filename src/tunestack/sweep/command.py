"""The `sweep` command. Imported to build the CLI's parser, so nothing heavy at module level."""

from __future__ import annotations

from pathlib import Path

SWEEP_TEXT = (
    "Run experiments over data composition and training settings as trials on Optuna (the `sweep` config section: "
    "a search space of sources and tiers in or out, source weights, the share of rows, the general mix, learning "
    "rate, LoRA rank, epochs, method). The config itself is the first trial; then one trial per source or tier left "
    "out (the ablations), the learning curve's shares of the rows, and sampled trials up to the budget (sweep.trials, "
    "sweep.hours, sweep.dollars). Trials are decided on a dev split carved from the training rows; each checkpoint's "
    "dev score goes to Optuna's pruner, which stops hopeless trials. Only the best sweep.finalists trials meet the "
    "eval set, where select chooses the winner with its floors and intervals; the winner is exported and read on the "
    "holdout once. Writes <runs_dir>/<run.name>-sweep/ (trials/ holds each trial's run folder) and its report.html "
    "with the trial table, the ablation table and the learning curve. An interrupted sweep resumes where it stopped.")


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="Trials over data and settings on Optuna, decided on a dev split.",
                       description=SWEEP_TEXT)
    p.add_argument("config", type=Path, help="the run's YAML config, with a `sweep` section")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides of config keys, e.g. sweep.trials=4")
    p.add_argument("--worker", action="store_true",
                   help="only run trials of a sweep another `tunestack sweep CONFIG` started (on this machine or, "
                        "with an RDB sweep.storage and a shared runs folder, another one), until its budget is spent")
    p.add_argument("--trial", type=int, default=None, help=argparse_hidden())
    p.set_defaults(handler=sweep)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def sweep(args) -> int:
    from tunestack.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.trial is not None:  # a worker's child process: one trial (tunestack.sweep.trial)
        from tunestack.sweep.stage import sweep_root
        from tunestack.sweep.trial import run_trial

        return run_trial(sweep_root(cfg), args.trial)
    from tunestack.sweep.stage import run_sweep

    summary = run_sweep(cfg, args.config, args.overrides, worker=args.worker)
    if summary:
        for line in summary["lines"]:
            print(line)
    return 0
