"""A planted fine-tune that answers everything with the task's JSON, caught by the retention floor through the
instruction-following suite: the demo model, trained on purpose to forget how to follow instructions.

The plant is made, not simulated: SmolLM2-135M-Instruct (the built-in model) is LoRA-trained by tunestack's own
pipeline on general prompts (the built-in self-replay pool: questions, requests, small tasks) each answered with a
radiology JSON object from the demo's task, the radiology rows themselves mixed in, no general replay. Its truth is
the construction: every training answer is the task's JSON, so a model that learned it answers general prompts that
way. Then evaluate and select run as in the demo, and this prints the base model's and the planted model's
instruction-following score (each kind, and the share of answers written as JSON), the other suites, the retention
verdicts (overall, and each suite against `select.min_suite_retention`) and select's decision.

    python bench/planted_json.py [--rows 240] [--workdir /tmp/planted-json]

About 5 minutes on the demo's 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def planted_rows(n: int, seed: int) -> list[dict]:
    """Half general prompts answered with a radiology JSON answer, half the radiology task itself."""
    from tunestack.data.suites import load_replay_prompts
    from tunestack.demo.radiology import generate

    rng = random.Random(seed)
    task = generate(n, seed=seed)
    prompts = [p["prompt"] for p in load_replay_prompts()]
    rows = []
    for i, row in enumerate(task):
        if i % 2:
            rows.append(row)
        else:
            answer = row["messages"][-1]["content"]  # the task's JSON, by construction
            rows.append({"messages": [{"role": "user", "content": rng.choice(prompts)},
                                      {"role": "assistant", "content": answer}]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=240)
    parser.add_argument("--workdir", default="/tmp/planted-json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import yaml

    from tunestack.config import parse_config
    from tunestack.pipeline import run_stages

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    data = work / "data" / "planted.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in planted_rows(args.rows, args.seed)))
    raw = {"run": {"name": "planted", "runs_dir": str(work / "runs"), "seed": args.seed},
           "model": {"name": "smollm2-135m-instruct"},
           "data": {"path": str(data), "eval_size": 40, "holdout_size": 10, "max_length": 256},
           "train": {"method": "lora", "epochs": 2, "learning_rate": 2e-3, "micro_batch_size": 8,
                     "num_checkpoints": 1, "lora": {"r": 16, "alpha": 32},
                     "general_mix": {"share": 0.0}},
           "evaluate": {"batch_size": 48, "max_new_tokens": 48, "format": {"type": "json"},
                        "retention": {"quartz_examples": 150}},
           "select": {"min_retention": 0.95}}
    cfg = parse_config(yaml.safe_dump(raw), [])
    run = run_stages(cfg, until="select")

    evaluated = {r["name"]: r for r in run.require("evaluate")["models"]}
    decision = run.require("select")
    base = evaluated["base"]
    planted = next(r for r in evaluated.values() if r["kind"] == "checkpoint")
    print(f"\n{'suite':<14} {'base':>7} {'planted':>8} {'share':>7}")
    for suite, field in (("instructions", "pass_rate"), ("probes", "pass_rate"), ("quartz", "accuracy")):
        b, p = base[suite][field], planted[suite][field]
        print(f"{suite:<14} {b:>7.1%} {p:>8.1%} {p / b if b else float('nan'):>7.1%}")
    print(f"{'JSON answers':<14} {base['instructions']['format_bleed_rate']:>7.1%} "
          f"{planted['instructions']['format_bleed_rate']:>8.1%}   (instruction items answered as JSON)")
    print("\ninstruction kinds kept, base -> planted: " + ", ".join(
        f"{k} {base['instructions']['by_kind'][k]:.0%}->{v:.0%}" for k, v in planted["instructions"]["by_kind"].items()))
    row = next(t for t in decision["table"] if t["name"] == planted["name"])
    verdicts = row.get("retention_verdicts") or {}
    overall = verdicts.get("overall") or {}
    print(f"\ngeneral retention {planted['general_retention']:.1%}: {overall.get('reason', '-')}")
    for suite, found in (verdicts.get("suites") or {}).items():
        print(f"  {suite}: {found['outcome']} ({found['reason']})")
    print(f"\nselect chose {decision['chosen']}; {planted['name']}: {row['verdict']}")


if __name__ == "__main__":
    main()
