"""`tunestack synth CONFIG`: the command line of the synth stage."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

TEXT = ("Ask a teacher model behind any OpenAI-compatible endpoint (synth.base_url, synth.model) for candidate "
        "training rows: each request shows it synth.instruction and a fresh sample of seed examples "
        "(synth.seeds_path, else the run's training split). Every reply is validated, deduplicated (against the "
        "other candidates and the seeds) and decontaminated against the eval and holdout splits by prepare's own "
        "code; the candidates (source: synthetic, reviewed: false, the teacher and a prompt hash on each) go to "
        "<run>/synth/candidates.jsonl for `tunestack review`, every other reply to synth/rejects.jsonl with its "
        "reason. Replies are cached, so a re-run pays only for new requests. Budget: synth.max_requests and "
        "synth.max_cost_usd (with the token prices).")


def add_parser(sub) -> None:
    p = sub.add_parser("synth", help="Candidate training rows from a teacher model, checked by prepare's code.",
                       description=textwrap.fill(TEXT, 100), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help="the run's YAML config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides of config keys, e.g. synth.count=50")
    p.set_defaults(handler=run)


def run(args) -> int:
    from tunestack.config import load_config
    from tunestack.rundir import RunDir
    from tunestack.synth.stage import run_synth

    cfg = load_config(args.config, args.overrides)
    run_dir = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)
    body = run_synth(cfg, run_dir)
    counts, usage = body["counts"], body["usage"]
    spent = f", ${usage['cost_usd']:.4f}" if usage.get("cost_usd") is not None else ""
    print(f"synth: {counts['candidates']} candidates of {counts['asked']} asked ({counts['invalid']} invalid, "
          f"{counts['duplicates']} duplicates, {counts['leaks']} eval/holdout leaks, {counts['not_sent']} not sent)")
    print(f"teacher: {usage['requests']} requests, {usage['cache_hits']} from the cache, {usage['prompt_tokens']} "
          f"prompt + {usage['completion_tokens']} completion tokens{spent}")
    if body["budget_stop"]:
        print(f"stopped by the budget: {body['budget_stop']}")
    folder = run_dir.root / "synth"
    print(f"candidates: {folder / 'candidates.jsonl'}   rejects: {folder / 'rejects.jsonl'}   next: "
          f"tunestack review {args.config}")
    return 0
