"""The prepared GPU check (issue 29): what tunestack does on one GPU, in one command that fits a lent machine.

    bench/gpu_check.sh                 # on the GPU machine: its python3, the carried wheels, src/ on PYTHONPATH
    bench/gpu_check.sh --dry-run       # the same script on this CPU with the tiny shape (in `make test`)

Three parts, each item written to `$OUT/gpu_check.json` as soon as it is measured (a timeout keeps what finished),
and everything printed also to `$OUT/gpu_check.log`:

1. **methods**: a mid-size Llama shape (`0.5b`, random weights) through the pipeline (`tunestack run`: prepare,
   train, evaluate through `generate`, select, export) for lora with SDPA, lora with Liger, full and qlora (where
   bitsandbytes is there); dpo through prepare and train. Each: tokens/s, the pre-flight's estimate beside
   `torch.cuda.max_memory_allocated` (the train manifest's `memory_measured`), the evaluate stage's seconds and the
   export check.
2. **throughput**: an 8B shape, LoRA r16 on every linear layer at seq 2048: plain transformers + peft in the
   configurations a careful user would run (no gradient checkpointing, SDPA; and with Liger's kernels where
   installed) against tunestack's training path, in this one process; tunestack's tokens/s as a ratio to the best
   plain one, and MFU against a bf16 matmul measured in the same run.
3. **levers**: tunestack's training path on the mid shape with one setting changed at a time against a baseline
   (SDPA, no Liger, padded, no compile, no checkpointing): Liger, padding-free packing (rows of varied length),
   torch.compile, gradient checkpointing, twice the micro-batch; real tokens/s, peak memory, the gain.

Model weights are random (no download): the figures are speed and memory, not quality. `--budget-s` stops starting
new items once spent, so the JSON is written before the machine's limit.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import train_throughput as tt  # noqa: E402 - bench/ scripts share their pieces

MID = {  # a 0.5B Llama shape
    "0.5b": {"hidden_size": 1536, "intermediate_size": 4096, "num_hidden_layers": 20, "num_attention_heads": 12,
             "num_key_value_heads": 4, "vocab_size": 32000, "tie_word_embeddings": True},
    "tiny": {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 1024, "tie_word_embeddings": True},
}


class Report:
    """The JSON and the log under `out`, rewritten as each item lands."""

    def __init__(self, out: Path, header: dict):
        out.mkdir(parents=True, exist_ok=True)
        self.json, self.log = out / "gpu_check.json", (out / "gpu_check.log").open("a")
        self.body = {**header, "methods": [], "throughput": [], "levers": [], "skipped": []}
        self.started = time.time()
        self.write()

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def add(self, part: str, item: dict) -> None:
        self.body[part].append(item)
        self.say(f"[{part}] " + json.dumps(item))
        self.write()

    def write(self) -> None:
        self.body["seconds"] = round(time.time() - self.started, 1)
        tmp = self.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.body, indent=2))
        tmp.replace(self.json)


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


# --- 1. methods through the pipeline -------------------------------------------------------------------------------

METHODS = {  # name -> (train section overrides, whether it runs the whole pipeline)
    "lora-sdpa": ({"method": "lora", "attention": "sdpa", "liger": False}, True),
    "lora-liger": ({"method": "lora", "attention": "sdpa", "liger": True}, True),
    "full": ({"method": "full", "learning_rate": 1e-5}, True),
    "qlora": ({"method": "qlora"}, True),
    "dpo": ({"method": "dpo"}, False),
}


def method_unavailable(name: str, cuda: bool) -> str | None:
    if name == "lora-liger" and not (cuda and installed("liger_kernel")):
        return "Liger needs a CUDA GPU and the liger-kernel package"
    if name == "qlora" and not installed("bitsandbytes"):
        return "bitsandbytes is not installed here"
    return None


def run_method(root: Path, model: Path, data: Path, schema: Path, name: str, steps: int, eval_rows: int) -> dict:
    train, whole = METHODS[name]
    cfg = {"run": {"name": name, "runs_dir": str(root / "runs")}, "model": {"name": str(model)},
           "data": {"path": str(data), "eval_size": eval_rows, "holdout_size": 4, "max_length": 512},
           "train": {"max_steps": steps, "micro_batch_size": 8, "num_checkpoints": 1, "learning_rate": 1e-4,
                     "general_mix": {"share": 0.0}, **train},
           "evaluate": {"max_new_tokens": 32, "format": {"type": "json_schema", "schema_path": str(schema)},
                        "retention": {"quartz_examples": 0, "choices": 0, "max_probes": 4}},
           "select": {"min_retention": 0.0, "min_format": 0.0, "max_format_drop": None}}
    config = root / f"{name}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    started = time.time()
    for command in ([["run", str(config)]] if whole else [["prepare", str(config)], ["train", str(config)]]):
        done = subprocess.run([sys.executable, "-m", "tunestack", *command], capture_output=True, text=True)
        if done.returncode:
            lines = [line for line in done.stderr.splitlines() if line.strip() and "it/s]" not in line]
            return {"method": name, "ok": False, "error": " | ".join(lines[-4:])}
    run = root / "runs" / name
    trained = json.loads((run / "train" / "manifest.json").read_text())
    measured = trained["memory_measured"]
    result = {"method": name, "ok": True, "seconds": round(time.time() - started, 1), "steps": trained["steps"],
              "tokens_per_second": trained.get("tokens_per_second"),
              "estimated_gb": measured["estimated_gb"], "measured_gb": measured["measured_gb"],
              "measured_as": measured["measured_as"], "peak_over_estimate": measured["ratio"],
              "preflight_gb": (trained.get("memory") or {}).get("estimated_gb")}
    evaluated = run / "evaluate" / "manifest.json"
    if evaluated.exists():
        manifest = json.loads(evaluated.read_text())
        result["evaluate"] = {"seconds": manifest["seconds"], "models": len(manifest["models"]),
                              "backend": manifest["backend"], "precision": manifest["precision"]}
    exported = run / "export" / "manifest.json"
    if exported.exists():
        check = json.loads(exported.read_text())["verification"] or {}
        result["export"] = f"{check.get('identical')}/{check.get('compared')}"
    return result


def methods_part(report: Report, root: Path, shape: str, steps: int, names: list[str], budget: float,
                 cuda: bool) -> None:
    from tunestack.demo.radiology import generate, write_demo_data
    from tunestack.models import build_tiny_model

    data, schema = write_demo_data(root / "data", n=240, seed=1)
    texts = [m["content"] for row in generate(200, seed=5) for m in row["messages"]]
    model = build_tiny_model(root / "model", texts, shape=MID[shape])
    pairs = root / "data" / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in preference_pairs(generate(200, seed=21))))
    for name in names:
        why = method_unavailable(name, cuda) or over_budget(report, budget)
        if why:
            report.body["skipped"].append({"part": "methods", "item": name, "why": why})
            report.say(f"[methods] {name} skipped: {why}")
            continue
        report.add("methods", run_method(root, model, pairs if name == "dpo" else data, schema, name, steps,
                                         eval_rows=16))


def preference_pairs(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        system, user, answer = row["messages"]
        finding = json.loads(answer["content"])["finding"].replace("_", " ")
        out.append({"prompt": [system, user], "chosen": answer["content"], "rejected": f"The finding is {finding}."})
    return out


def over_budget(report: Report, budget: float) -> str | None:
    spent = time.time() - report.started
    return f"the time budget ({budget:.0f} s) was spent ({spent:.0f} s)" if spent > budget else None


# --- 2. the large shape: plain transformers + peft against tunestack ------------------------------------------------

def throughput_part(report: Report, root: Path, shape: str, seq: int, steps: int, micro_batch: int, budget: float,
                    cuda: bool) -> None:
    import torch

    device = "cuda" if cuda else "cpu"
    why = over_budget(report, budget)
    if why:
        report.body["skipped"].append({"part": "throughput", "item": shape, "why": why})
        return
    ceiling = tt.matmul_ceiling(device, seconds=2.0 if cuda else 0.5)
    rng = random.Random(0)
    vocab = tt.SHAPES[shape]["vocab_size"]
    rows = [[rng.randrange(vocab) for _ in range(seq)] for _ in range(16)]
    folder = root / f"model-{shape}"
    model = tt.random_model(shape, folder, seq)
    params = sum(p.numel() for p in model.parameters())
    rates = {}
    variants = [("plain, SDPA, no checkpointing", False)]
    if cuda and installed("liger_kernel"):
        variants.append(("plain, SDPA, no checkpointing, Liger", True))
    else:
        report.body["skipped"].append({"part": "throughput", "item": "plain with Liger",
                                       "why": "Liger needs a CUDA GPU and the liger-kernel package"})
    for name, liger in variants:
        if liger:
            from liger_kernel.transformers import _apply_liger_kernel_to_instance

            _apply_liger_kernel_to_instance(model=model)
        rates[name] = tt.plain_loop(model, rows, micro_batch, steps, device, quantized=False)
        report.say(f"[throughput] {shape} {name}: {rates[name]:,.0f} tokens/s")
    del model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to(device)
    ours = tt.tunestack_path(folder, base, rows, micro_batch, steps, "lora", root / "out-throughput")
    best_name = max(rates, key=rates.get)
    report.add("throughput", {
        "shape": shape, "parameters_b": round(params / 1e9, 2), "seq": seq, "micro_batch": micro_batch,
        "steps": steps, "matmul_tflops": round(ceiling / 1e12, 1), "plain": {k: round(v) for k, v in rates.items()},
        "tunestack": round(ours), "best_plain": best_name, "ratio_to_best_plain": round(ours / rates[best_name], 3),
        "mfu": {"tunestack": round(ours * 4 * params / ceiling, 3),  # LoRA: forward, and backward to the inputs
                "best_plain": round(rates[best_name] * 4 * params / ceiling, 3)}})
    del base
    gc.collect()


# --- 3. levers on tunestack's own path -----------------------------------------------------------------------------

LEVERS = [
    ("baseline", {}),
    ("liger", {"liger": True}),
    ("padding-free packing", {"packing": True}),
    ("torch.compile", {"compile": True}),
    ("gradient checkpointing", {"gradient_checkpointing": True}),
    ("micro-batch x2", {"double_batch": True}),
]
BASELINE = {"attention": "sdpa", "liger": False, "packing": False, "compile": False, "gradient_checkpointing": False}


def lever_unavailable(name: str, cuda: bool) -> str | None:
    if name == "liger" and not (cuda and installed("liger_kernel")):
        return "Liger needs a CUDA GPU and the liger-kernel package"
    if name == "torch.compile" and not cuda:
        return "measured on a GPU only: on this CPU compiling alone outlasts the dry run"
    return None


def lever_rate(folder: Path, model, rows: list[list[int]], micro_batch: int, steps: int, changes: dict,
               out: Path, cuda: bool) -> dict:
    """Real (non-padding) tokens/s of tunestack's training path with `changes` on the baseline, and its peak."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from tunestack.config import Config
    from tunestack.train.mapping import sft_kwargs
    from tunestack.train.methods import attention_kernel, liger_on, trainable_model
    from tunestack.train.packing import pack, packing_on
    from tunestack.train.trl_shim import enable_compact_loss

    changes = dict(changes)
    if changes.pop("double_batch", False):
        micro_batch *= 2
    seq = max(len(r) for r in rows)
    cfg = Config.model_validate({"data": {"path": "unused.jsonl", "max_length": seq}, "train": {
        "method": "lora", "micro_batch_size": micro_batch, "max_steps": steps + 2, "learning_rate": 1e-4,
        "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear"}, **BASELINE, **changes}})
    bf16 = cuda
    packed = packing_on(cfg.train.packing, attention_kernel(cfg.train.attention, bf16))
    rendered = [{"input_ids": r, "labels": r} for r in rows]
    dataset = pack(rendered, seq)[0] if packed else Dataset.from_list(rendered)
    args = SFTConfig(**sft_kwargs(cfg.train, output_dir=str(out), seed=0, bf16=bf16, use_cpu=not cuda,
                                  max_length=seq, steps=steps + 2, packed=packed, liger=liger_on(cfg.train.liger)))
    subject = trainable_model(cfg, folder, model, bf16=bf16)
    enable_compact_loss()
    marks = TokenMarks(cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer = SFTTrainer(model=subject, args=args, train_dataset=dataset, processing_class=tt._token_ids_only(),
                         callbacks=[marks])
    trainer.train()
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    subject.unload()  # the base as it was, for the next lever
    return {"tokens_per_second": round(marks.rate()), "peak_gb": None if peak is None else round(peak, 2),
            "micro_batch": micro_batch, "packed": packed}


def TokenMarks(cuda: bool):  # noqa: N802 - a TrainerCallback instance, built lazily so --help needs no transformers
    from transformers import TrainerCallback

    class _Marks(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[float, int]] = []

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                import torch

                torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))

        def rate(self) -> float:
            (t0, n0), (t1, n1) = self.marks[1], self.marks[-1]  # from the end of the second (warm-up) step
            return (n1 - n0) / (t1 - t0)

    return _Marks()


def levers_part(report: Report, root: Path, shape: str, seq: int, steps: int, micro_batch: int, budget: float,
                cuda: bool) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    why = over_budget(report, budget)
    if why:
        report.body["skipped"].append({"part": "levers", "item": "all", "why": why})
        return
    folder = root / "model"  # the mid shape the methods part built
    if not (folder / "config.json").exists():
        from tunestack.demo.radiology import generate
        from tunestack.models import build_tiny_model

        build_tiny_model(folder, [m["content"] for row in generate(200, seed=5) for m in row["messages"]],
                         shape=MID[shape])
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16 if cuda else torch.float32)
    model.to("cuda" if cuda else "cpu")
    rng = random.Random(1)
    vocab = model.config.vocab_size
    rows = [[rng.randrange(vocab) for _ in range(rng.randint(seq // 8, seq))] for _ in range(64)]
    base_rate = None
    for name, changes in LEVERS:
        why = lever_unavailable(name, cuda) or over_budget(report, budget)
        if why:
            report.body["skipped"].append({"part": "levers", "item": name, "why": why})
            report.say(f"[levers] {name} skipped: {why}")
            continue
        try:
            got = lever_rate(folder, model, rows, micro_batch, steps, changes, root / f"out-{len(report.body['levers'])}",
                             cuda)
        except Exception as exc:  # noqa: BLE001 - one lever failing must not lose the others' figures
            report.add("levers", {"lever": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:400]})
            continue
        base_rate = base_rate or got["tokens_per_second"]
        report.add("levers", {"lever": name, "ok": True, **got,
                              "gain": round(got["tokens_per_second"] / base_rate, 3)})
        gc.collect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="the tiny shapes on this machine (a CPU is fine)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check-out"))
    parser.add_argument("--parts", default="methods,throughput,levers")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="start no new item after this many seconds (default: %(default)s)")
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        print("no CUDA device: run with --dry-run here, or on the GPU machine", file=sys.stderr)
        return 2
    dry = args.dry_run
    sizes = {"mid": "tiny" if dry else "0.5b", "big": "tiny" if dry else "8b", "seq": 128 if dry else 2048,
             "method_steps": 4 if dry else 30, "steps": 2 if dry else 8, "micro_batch": 2,
             "lever_seq": 128 if dry else 2048, "lever_steps": 3 if dry else 8, "lever_micro_batch": 4}
    device = torch.cuda.get_device_name(0) if cuda else "CPU (dry run)"
    versions = {name: __import__(name).__version__ for name in ("torch", "transformers", "peft", "trl")
                if installed(name)}
    report = Report(args.out, {"device": device, "dry_run": dry, "sizes": sizes, "versions": versions,
                               "liger": installed("liger_kernel"), "bitsandbytes": installed("bitsandbytes")})
    report.say(f"device: {device}; versions {versions}; budget {args.budget_s:.0f} s")
    root = Path(tempfile.mkdtemp(prefix="gpu-check-"))  # models and runs: large, and not for $OUT
    parts = args.parts.split(",")
    if "methods" in parts:
        methods_part(report, root, sizes["mid"], sizes["method_steps"], args.methods.split(","), args.budget_s, cuda)
    if "throughput" in parts:
        throughput_part(report, root, sizes["big"], sizes["seq"], sizes["steps"], sizes["micro_batch"],
                        args.budget_s, cuda)
    if "levers" in parts:
        levers_part(report, root, sizes["mid"], sizes["lever_seq"], sizes["lever_steps"],
                    sizes["lever_micro_batch"], args.budget_s, cuda)
    report.write()
    failed = [m["method"] for m in report.body["methods"] if not m["ok"]]
    failed += [lv["lever"] for lv in report.body["levers"] if not lv["ok"]]
    report.say(f"done in {report.body['seconds']} s; failed: {failed or 'none'}; JSON: {report.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
