"""Batch invariance of greedy evaluation: how far greedy answers, and the task metrics computed from them, move with
the batch size, the padding, the precision and the thread count, on the demo task's eval split.

The models are the built-in SmolLM2-135M-Instruct and, when `make demo` has left it, the fine-tuned LoRA checkpoint
runs/quickstart/train/checkpoints/step-000068 merged into it (`tunestack.models.merge.merged_in_place`, as the
evaluate stage merges it): fine-tuned answers are what selection compares. The eval split is the one `tunestack
prepare` writes for configs/quickstart.yaml (`bench/eval_throughput.py` builds it the same way), its rows scored with
the run's own scorer (`tunestack.evaluate.scoring.load_scorer`): exact match, per-field accuracy, format compliance.

Each model runs in bf16 and in fp32, and for each precision:

- stage, batch B: the evaluate stage's generator (`LocalGenerator` with its defaults: its own greedy loop, eager
  attention on a CPU that aligns every row's keys at an even column, finished rows dropped, the shared prompt prefix
  computed once) at batch sizes 1, 8 and 48, on 2 threads, and at batch 48 on 1 thread.
- stage, unaligned padding: the same loop with transformers' own eager attention, so about half the rows attend
  over keys left-padded by an odd number of columns (the alignment switched off): what padding alone moves.
- generate, batch B: the former path, transformers' `generate` on left-padded batches with the model's own attention
  (SDPA), as `LocalGenerator` ran before its own loop; it is still its path for sampled decoding.
- generate, right padding: `generate` on right-padded batches (padding side right, which transformers warns
  against for decoder-only models: the first new token is predicted from a pad column).

Agreement is counted against `stage, batch 1` of the same precision (a prompt alone: nothing shares its batch); the
`generate` rows are also compared with `generate, batch 1`. At the end, each model's batch-1 answers are compared
across precisions, and fp32 `stage, batch 1` with fp32 `generate, batch 1` (the loop must reproduce transformers'
one-prompt-at-a-time greedy answers).

    python bench/batch_invariance.py [--examples 48] [--models checkpoint,base] [--precisions bf16,fp32]
                                     [--full]

The default run takes about 10 minutes on 2 cores (fp32 is 3-4x slower than bf16 there, which has AMX): in fp32 it
leaves out what the bf16 table shows (the unaligned run, identical to the default there, and the former path's
batch 8 and right padding); `--full` runs them too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "runs" / "quickstart" / "train" / "checkpoints" / "step-000068"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_throughput import eval_rows  # noqa: E402 - the same eval split as the throughput bench


def stage_answers(model, tokenizer, prompts, max_new_tokens: int, batch_size: int, aligned: bool = True):
    """The evaluate stage's generator (its defaults) at `batch_size`; `aligned=False`: see `unaligned`."""
    import tunestack.evaluate.generate as local

    with (nullcontext() if aligned else unaligned()):
        outputs = local.LocalGenerator(model, tokenizer, batch_size).generate(prompts, max_new_tokens, desc="stage")
    return [o.text for o in outputs]


@contextmanager
def unaligned():
    """The stage's loop with transformers' own eager attention (not `grouped_eager`, which aligns odd paddings) and
    prompts batched whatever their lengths: rows left-padded by odd numbers of columns."""
    import tunestack.evaluate.generate as local
    import tunestack.evaluate.kernels as kernels

    with mock.patch.object(kernels, "plain_eager", lambda model: False), \
            mock.patch.object(local, "alignment", lambda kernel, dtype: 1):
        yield


def generate_answers(model, tokenizer, prompts, max_new_tokens: int, batch_size: int, side: str = "left"):
    """transformers' `generate`, greedy, on batches of `batch_size` prompts sorted by length, padded on `side`, the
    model's own attention: left is `LocalGenerator`'s former path (its `_generate`, which it keeps for sampling)."""
    import torch

    from tunestack.evaluate.backends import prompt_ids
    from tunestack.evaluate.generate import LocalGenerator, _decoding, contiguous_head

    generator = LocalGenerator(model, tokenizer, batch_size)
    tokens = [prompt_ids(tokenizer, p) for p in prompts]
    with torch.inference_mode(), contiguous_head(model):
        if side == "left":
            return [o.text for o in generator._generate(tokens, max_new_tokens, "generate", None, model.device)]
        order = sorted(range(len(tokens)), key=lambda i: -len(tokens[i]))
        answers: list[str] = [""] * len(tokens)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            width = max(len(tokens[i]) for i in batch)
            ids = torch.full((len(batch), width), generator.pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, :len(tokens[i])] = torch.tensor(tokens[i])
                mask[row, :len(tokens[i])] = 1
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 eos_token_id=generator.stops, pad_token_id=generator.pad, **_decoding(None))
            for row, i in enumerate(batch):
                answers[i] = generator._decode(out[row, width:].tolist()).text
        return answers


def runs_for(precision: str, full: bool) -> list[tuple[str, dict]]:
    """(label, how) of every run for one model in one precision, the reference (`stage, batch 1`) first. In fp32
    (3-4x slower here) only what the bf16 table needs beside it, unless `full`: the unaligned run is the default one
    there (eager attention in fp32 needs no alignment), and the former path's drift shows in bf16."""
    runs = [("stage, batch 1", {"kind": "stage", "batch": 1}),
            ("stage, batch 8", {"kind": "stage", "batch": 8}),
            ("stage, batch 48", {"kind": "stage", "batch": 48}),
            ("stage, batch 48, 1 thread", {"kind": "stage", "batch": 48, "threads": 1}),
            ("stage, batch 48, unaligned padding", {"kind": "stage", "batch": 48, "aligned": False}),
            ("generate, batch 1", {"kind": "generate", "batch": 1}),
            ("generate, batch 8", {"kind": "generate", "batch": 8}),
            ("generate, batch 48", {"kind": "generate", "batch": 48}),
            ("generate, batch 48, right padding", {"kind": "generate", "batch": 48, "side": "right"})]
    if precision == "fp32" and not full:
        left_out = ("stage, batch 48, unaligned padding", "generate, batch 8", "generate, batch 48, right padding")
        runs = [run for run in runs if run[0] not in left_out]
    return runs


def measure(model, tokenizer, prompts, max_new_tokens: int, how: dict) -> tuple[float, list[str]]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(how.get("threads", 2))
    try:
        started = time.perf_counter()
        if how["kind"] == "stage":
            answers = stage_answers(model, tokenizer, prompts, max_new_tokens, how["batch"], how.get("aligned", True))
        else:
            answers = generate_answers(model, tokenizer, prompts, max_new_tokens, how["batch"],
                                       how.get("side", "left"))
        return time.perf_counter() - started, answers
    finally:
        torch.set_num_threads(threads)


def table(title: str, results: list[tuple[str, float, list[str]]], scorer, references: list[str]) -> None:
    """Seconds, agreement with the reference run (and, for `generate` runs, with `generate, batch 1`) and the
    task metrics of each run."""
    reference = results[0][2]
    former = next((answers for label, _, answers in results if label == "generate, batch 1"), None)
    n = len(reference)
    print(f"\n== {title}, {n} eval rows ==")
    print(f"{'run':<36} {'seconds':>7}  {'same as stage b1':>16}  {'same as generate b1':>19}  {'exact':>6}  "
          f"{'fields':>6}  {'format':>6}")
    for label, seconds, answers in results:
        metrics = scorer.score(answers, references)
        same = sum(a == b for a, b in zip(answers, reference))
        versus = "" if former is None or not label.startswith("generate") else \
            f"{sum(a == b for a, b in zip(answers, former))}/{n}"
        print(f"{label:<36} {seconds:7.1f}  {f'{same}/{n}':>16}  {versus:>19}  {metrics['task_accuracy']:6.1%}  "
              f"{metrics['field_accuracy'] or 0:6.1%}  {metrics['format_compliance']:6.1%}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=48, help="eval rows (default: %(default)s)")
    parser.add_argument("--models", default="checkpoint,base", help="checkpoint (step-000068 merged, when present) "
                        "and/or base (default: %(default)s)")
    parser.add_argument("--precisions", default="bf16,fp32", help="default: %(default)s")
    parser.add_argument("--full", action="store_true", help="in fp32 too, every run bf16 gets")
    args = parser.parse_args()

    import transformers

    from tunestack.evaluate.scoring import load_scorer
    from tunestack.models import load_model, resolve_model
    from tunestack.models.merge import merged_in_place

    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, rows = eval_rows(Path(tmp), args.examples, 48)
    scorer = load_scorer(cfg)
    prompts = [row["messages"][:-1] for row in rows]
    references = [row["messages"][-1]["content"] for row in rows]
    max_new_tokens = cfg.evaluate.max_new_tokens
    folder = resolve_model(cfg.model.name)
    models = [m for m in args.models.split(",") if m != "checkpoint" or CHECKPOINT.exists()]
    if "checkpoint" in args.models.split(",") and not CHECKPOINT.exists():
        print(f"{CHECKPOINT.relative_to(ROOT)} not found (make demo writes it): base model only")
    print(f"{cfg.model.name}, {len(rows)} eval rows, up to {max_new_tokens} new tokens, greedy; "
          f"{os.cpu_count()} CPUs", flush=True)
    first: dict[tuple[str, str], dict[str, list[str]]] = {}
    total = time.perf_counter()
    for name in models:
        for precision in args.precisions.split(","):
            base, tokenizer = load_model(folder, "bfloat16" if precision == "bf16" else "float32")
            with merged_in_place(base, CHECKPOINT if name == "checkpoint" else None) as model:
                model.eval()
                stage_answers(model, tokenizer, prompts[:2], 4, 2)  # warm-up: first-call allocations
                results = []
                for label, how in runs_for(precision, args.full):
                    seconds, answers = measure(model, tokenizer, prompts, max_new_tokens, how)
                    results.append((label, seconds, answers))
                title = (f"{CHECKPOINT.name} (LoRA, merged)" if name == "checkpoint" else cfg.model.name) + \
                    f", {precision}"
                table(title, results, scorer, references)
                first[(name, precision)] = {label: answers for label, _, answers in results}
            del base, model
    print()
    for name in models:
        runs = {p: first[(name, p)] for p in args.precisions.split(",") if (name, p) in first}
        if {"bf16", "fp32"} <= runs.keys():
            for label in ("stage, batch 1", "generate, batch 1"):
                same = sum(a == b for a, b in zip(runs["bf16"][label], runs["fp32"][label]))
                print(f"[{name}] {label}: bf16 against fp32, identical answers {same}/{len(rows)}")
        if "fp32" in runs:
            same = sum(a == b for a, b in zip(runs["fp32"]["stage, batch 1"], runs["fp32"]["generate, batch 1"]))
            print(f"[{name}] fp32: stage batch 1 against transformers generate one at a time, identical answers "
                  f"{same}/{len(rows)}")
    print(f"total {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
