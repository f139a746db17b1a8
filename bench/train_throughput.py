"""Training throughput: `tunestack train` against TRL's SFTTrainer run two ways, in one invocation.

CPU (default): the built-in SmolLM2-135M-Instruct on the demo data. Every run trains a LoRA adapter of the same rank
on the same training rows (no general mix), with the same micro-batch, learning rate and number of optimizer steps,
and every run counts real (non-padding) tokens the same way (the Trainer's `num_input_tokens_seen`). The TRL runs
get prompt/completion rows with TRL's completion-only loss and its own (unpatched) loss path. They all run first,
before tunestack's TRL shim is switched on.

- TRL defaults: what SFTConfig gives: fp32 base weights under bf16 autocast, gradient checkpointing on, SDPA,
  padding to the longest row of each micro-batch. A floor, not the bar.
- tuned TRL: what a careful user sets for speed on this machine: base weights loaded in bf16 where the CPU has it
  (`tunestack.models.use_bf16("auto")`: AMX or AVX512-BF16; bf16 set explicitly, `use_cpu=True`), gradient
  checkpointing off, `use_cache` off, and the fastest attention transformers offers here for training, timed in
  the run: SDPA and eager are both run and the faster is the baseline (`--tuned-attention`). Nothing faster exists
  on a CPU: flash-attention 2/3/4 need CUDA, and flex attention has no CPU backward ("FlexAttention does not support
  backward on CPU"). Batch layout (`--tuned-layout`): padded, because TRL's padding-free and packed layouts are
  slower on this CPU with SDPA or eager, whose packed batches need a block mask over the whole flattened batch
  (measured here, 8 steps, tokens/s: SDPA padded 335, padding-free 282, packed 215; eager padded 380, padding-free
  337, packed 104); they are one flag away for a machine where that differs. Neither side uses torch.compile (the
  train stage does not on a CPU either).

    python bench/train_throughput.py [--steps 12] [--micro-batch 8] [--tuned-attention sdpa,eager]
                                     [--tuned-layout padded]

Prints real tokens/s of each run and tunestack's ratio over each baseline, overall and per-step median. Targets on
this CPU: tunestack at least 1.25x tuned TRL and at least 2x TRL defaults.

GPU (`--gpu`, the default when CUDA is present): random-init Llama shapes (`--shapes 1b,8b`), LoRA r16 on every
linear layer at seq 2048, and QLoRA (NF4, double quantization) on the last shape. For each: a plain
transformers+peft loop (SDPA, the model's own loss, no gradient checkpointing, micro-batch 2) against tunestack's
training path (its trainable model and TRL settings: flash-attention 2 or SDPA, Liger kernels when installed,
TRL's chunked LM head), the same micro-batch, steps and data. Prints tokens/s, MFU against a bf16 matmul ceiling
measured in the same run (model FLOPs per token taken as 4 x parameters: forward, and the backward to the inputs)
and the ratio. Targets on an H200: 8B LoRA at least 12,700 tokens/s; QLoRA at least 7,800. `--shapes tiny` runs
the same code on a CPU in seconds, to check it, not to measure.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def plain_trl(model_folder: Path, rows: list[dict], steps: int, micro_batch: int, lr: float, out: Path,
              tuned: bool = False, attention: str = "sdpa", layout: str = "padded") -> dict:
    """TRL's SFTTrainer on the prompt/completion rows, as a user writes it. `tuned` False: TRL's defaults (fp32
    base under bf16 autocast, gradient checkpointing on, SDPA). `tuned`: what a careful user sets for speed: base
    weights in bf16 where the hardware has it, gradient checkpointing off, `attention`, and `layout` (padded,
    padding_free, or packing: TRL's best-fit-decreasing packing, padding-free)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tunestack.models import fix_special_tokens, use_bf16

    bf16 = use_bf16("auto")
    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    if tuned:
        model = AutoModelForCausalLM.from_pretrained(model_folder, dtype=torch.bfloat16 if bf16 else torch.float32,
                                                     attn_implementation=attention)
        model.config.use_cache = False  # training: no KV cache (packed rows need it off)
        tuning = {"gradient_checkpointing": False, "padding_free": layout == "padding_free",
                  "packing": layout == "packing",
                  # padding-free without packing does not truncate: TRL wants max_length None (no row is longer)
                  "max_length": None if layout == "padding_free" else 256}
    else:
        model = AutoModelForCausalLM.from_pretrained(model_folder, dtype=torch.float32)
        tuning = {"max_length": 256}
    fix_special_tokens(tokenizer, model)
    data = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    args = SFTConfig(output_dir=str(out), per_device_train_batch_size=micro_batch, learning_rate=lr, max_steps=steps,
                     use_cpu=not torch.cuda.is_available(), bf16=bf16, report_to=[], save_strategy="no",
                     logging_steps=1, include_num_input_tokens_seen="non_padding", **tuning)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                     "o_proj"], task_type="CAUSAL_LM"))
    marks = StepMarks()
    trainer.add_callback(marks)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
            "median_step": median_rate(marks.points), "dtype": str(model.dtype).removeprefix("torch."),
            "attention": model.config._attn_implementation, "checkpointing": bool(args.gradient_checkpointing),
            "layout": layout if tuned else "padded"}


def StepMarks():  # noqa: N802 - a TrainerCallback instance, built lazily so --help needs no transformers
    from transformers import TrainerCallback

    class _Marks(TrainerCallback):
        """(seconds, real tokens seen) at the start and after every optimizer step."""

        def __init__(self):
            self.points = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.points.append((time.perf_counter(), 0))

        def on_step_end(self, args, state, control, **kwargs):
            self.points.append((time.perf_counter(), int(state.num_input_tokens_seen)))

    return _Marks()


def median_rate(points: list[tuple[float, int]]) -> float:
    """Median over steps of (real tokens in the step / its seconds): robust to a few steps slowed by a shared
    machine, which the overall rate is not."""
    import statistics

    rates = [(t2 - t1) / (s2 - s1) for (s1, t1), (s2, t2) in zip(points, points[1:]) if s2 > s1]
    return statistics.median(rates)


def ours(runs: Path, steps: int, micro_batch: int, lr: float) -> tuple[dict, Path]:
    from tunestack.config import load_config
    from tunestack.demo.radiology import write_demo_data
    from tunestack.pipeline import run_stages

    write_demo_data(ROOT / "data" / "demo", n=640, seed=0)
    cfg = load_config(ROOT / "configs" / "quickstart.yaml", [
        f"run.runs_dir={runs}", "run.name=bench", f"train.max_steps={steps}", "train.num_checkpoints=1",
        "train.general_mix.share=0", "train.evaluate_checkpoints=false", f"train.micro_batch_size={micro_batch}", f"train.learning_rate={lr}"])
    run = run_stages(cfg, until="prepare")
    return cfg, run


SHAPES = {  # Llama-3 shapes; `tiny` only checks the code path
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256),
}


def matmul_ceiling(device: str, seconds: float = 3.0) -> float:
    """bf16 dense matmul FLOP/s measured now, on this device."""
    import torch

    n = 8192 if device == "cuda" else 512
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    _sync(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    _sync(device)
    return 2 * n**3 * count / (time.perf_counter() - started)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def random_model(shape: str, folder: Path, seq: int):
    """A random-init Llama of `shape`, saved once (QLoRA quantizes from a folder)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SHAPES[shape], max_position_embeddings=seq, tie_word_embeddings=False)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    return model


def plain_loop(model, rows, micro_batch: int, steps: int, device: str, quantized: bool) -> float:
    """transformers + peft as a user writes it: LoRA r16 on every linear layer, the model's loss, AdamW."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    tokens, started = 0, None
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            _sync(device)
            started = time.perf_counter()
        batch = torch.tensor([rows[(step * micro_batch + i) % len(rows)] for i in range(micro_batch)], device=device)
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += batch.numel() if step >= 2 else 0
    _sync(device)
    model.unload() if not quantized else None
    return tokens / (time.perf_counter() - started)


def tunestack_path(folder: Path, model, rows, micro_batch: int, steps: int, method: str, out: Path) -> float:
    """The train stage's own pieces: its trainable model (method, attention kernel), its TRL settings and loss."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from tunestack.config import Config
    from tunestack.train.mapping import sft_kwargs
    from tunestack.train.methods import liger_on, trainable_model
    from tunestack.train.trl_shim import enable_compact_loss

    cfg = Config.model_validate({"data": {"path": "unused.jsonl"}, "train": {
        "method": method, "micro_batch_size": micro_batch, "max_steps": steps + 2, "learning_rate": 1e-4,
        "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear"}}})
    timer = StepTimer(device="cuda" if torch.cuda.is_available() else "cpu")
    args = SFTConfig(**sft_kwargs(cfg.train, output_dir=str(out), seed=0, bf16=True,
                                  use_cpu=not torch.cuda.is_available(), max_length=len(rows[0]), steps=steps + 2,
                                  liger=liger_on(cfg.train.liger)))
    subject = trainable_model(cfg, folder, model, bf16=True)
    enable_compact_loss()
    data = Dataset.from_list([{"input_ids": r, "labels": r} for r in rows])
    trainer = SFTTrainer(model=subject, args=args, train_dataset=data, processing_class=_token_ids_only(),
                         callbacks=[timer])
    trainer.train()
    return timer.tokens_per_second(micro_batch * len(rows[0]))


def _token_ids_only():
    """A stand-in tokenizer: the rows are token ids already; the Trainer needs only the pad and EOS ids."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                   pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


class StepTimer:
    """Times optimizer steps after two warm-up steps."""

    def __new__(cls, device: str):
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def __init__(self):
                self.marks = []

            def on_step_end(self, args, state, control, **kwargs):
                _sync(device)
                self.marks.append(time.perf_counter())

            def tokens_per_second(self, tokens_per_step: int) -> float:
                timed = self.marks[1:]  # from the end of step 2
                return tokens_per_step * (len(timed) - 1) / (timed[-1] - timed[0])

        return _Timer()


def gpu_main(shapes: list[str], steps: int, seq: int, micro_batch: int) -> None:
    import gc
    import random

    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = "cuda" if torch.cuda.is_available() else "cpu"
    ceiling = matmul_ceiling(device)
    print(f"bf16 matmul ceiling on {device}: {ceiling / 1e12:.0f} TFLOP/s", flush=True)
    for index, shape in enumerate(shapes):
        rng = random.Random(0)
        vocab = SHAPES[shape]["vocab_size"]
        rows = [[rng.randrange(vocab) for _ in range(seq)] for _ in range(16)]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            model = random_model(shape, folder, seq)
            params = sum(p.numel() for p in model.parameters())
            methods = ["lora", "qlora"] if index == len(shapes) - 1 else ["lora"]
            for method in methods:
                if method == "qlora":
                    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
                    model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant,
                                                                 dtype=torch.bfloat16, device_map={"": device})
                plain = plain_loop(model, rows, micro_batch, steps, device, quantized=method == "qlora")
                del model
                gc.collect()
                torch.cuda.empty_cache() if device == "cuda" else None
                base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to(device)
                ours = tunestack_path(folder, None if method == "qlora" else base, rows, micro_batch, steps, method,
                                      Path(tmp) / "out")
                model = base
                for name, rate in (("plain transformers+peft", plain), ("tunestack train", ours)):
                    mfu = rate * 4 * params / ceiling
                    print(f"{shape} {method} seq {seq} mb {micro_batch}: {name:<24} {rate:8,.0f} tokens/s, "
                          f"MFU {mfu:.0%}", flush=True)
                print(f"{shape} {method}: ratio {ours / plain:.2f}x", flush=True)
            del model
            gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tuned-attention", default="sdpa,eager", help="the attention kernels the tuned TRL "
                        "baseline is timed with, comma-separated; the faster is the baseline (default: %(default)s)")
    parser.add_argument("--tuned-layout", choices=["padded", "padding_free", "packing"], default="padded",
                        help="the tuned TRL baseline's batch layout (default: %(default)s, the fastest on this CPU; "
                        "see the docstring)")
    parser.add_argument("--gpu", action="store_true", help="the GPU benchmark (default when CUDA is present)")
    parser.add_argument("--shapes", default="1b,8b", help="GPU benchmark shapes: tiny, 1b, 8b (default: %(default)s)")
    parser.add_argument("--seq", type=int, default=2048, help="GPU benchmark sequence length")
    args = parser.parse_args()
    import torch

    if args.gpu or torch.cuda.is_available():
        micro_batch = 2 if args.micro_batch == 8 else args.micro_batch  # the reference runs used micro-batch 2
        gpu_main(args.shapes.split(","), args.steps, args.seq, micro_batch)
        return

    from tunestack.rundir import read_jsonl
    from tunestack.models import resolve_model
    from tunestack.pipeline import run_stages

    with tempfile.TemporaryDirectory() as tmp:
        cfg, run = ours(Path(tmp), args.steps, args.micro_batch, args.lr)
        rows = read_jsonl(run.root / "prepare" / "train.jsonl")
        folder = resolve_model(cfg.model.name)
        # Every TRL baseline runs before tunestack's train stage switches its TRL shim on (enable_compact_loss).
        plain = plain_trl(folder, rows, args.steps, args.micro_batch, args.lr, Path(tmp) / "plain")
        show("TRL defaults", plain)
        tuned_runs = []
        for attention in args.tuned_attention.split(","):
            tuned_runs.append(plain_trl(folder, rows, args.steps, args.micro_batch, args.lr, Path(tmp) / attention,
                                        tuned=True, attention=attention, layout=args.tuned_layout))
            show(f"tuned TRL ({attention})", tuned_runs[-1])
        tuned = max(tuned_runs, key=lambda r: r["tokens_per_second"])
        run_stages(cfg, until="train")
        manifest = run.require("train")
        packing = manifest["packing"]
        how = (f"packing: {packing['examples']} examples in {packing['sequences']} rows, {packing['fill']:.0%} full"
               if packing["enabled"] else f"no packing, {packing['real_token_share']:.0%} of token slots real")
        print(f"{'tunestack train':<24} {manifest['tokens_seen']} real tokens in {manifest['train_seconds']:.1f} s = "
              f"{manifest['tokens_per_second']:.0f} tokens/s ({manifest['precision']}, attention "
              f"{manifest['kernels']['attention']}, {how})", flush=True)
        logged = [json.loads(line) for line in (run.root / "train" / "metrics.jsonl").read_text().splitlines()]
        steps = [(0.0, 0)] + [(r["elapsed_s"], r["tokens_seen"]) for r in logged if "tokens_seen" in r]
        ours_median = median_rate(steps)
        for name, base, target in ((f"tuned TRL ({tuned['attention']}, the faster)", tuned, 1.25),
                                   ("TRL defaults", plain, 2.0)):
            overall = manifest["tokens_per_second"] / base["tokens_per_second"]
            median = ours_median / base["median_step"]
            verdict = "met" if min(overall, median) >= target else "MISSED" if max(overall, median) < target \
                else "met on one measure only"
            print(f"ratio over {name}: {overall:.2f}x overall; {median:.2f}x per-step median ({ours_median:.0f} vs "
                  f"{base['median_step']:.0f} tokens/s); target >= {target:g}x: {verdict}", flush=True)
        print(f"({args.steps} optimizer steps each, micro-batch {args.micro_batch}, lr {args.lr:g}, LoRA r16 on "
              "attention, the same training rows)")


def show(name: str, result: dict) -> None:
    print(f"{name:<24} {result['tokens']} real tokens in {result['seconds']:.1f} s = "
          f"{result['tokens_per_second']:.0f} tokens/s ({result['dtype']} base, attention {result['attention']}, "
          f"gradient checkpointing {'on' if result['checkpointing'] else 'off'}, {result['layout']}; per-step "
          f"median {result['median_step']:.0f} tokens/s)", flush=True)

if __name__ == "__main__":
    main()
