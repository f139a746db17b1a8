"""The whole pipeline on one device, every training method, with peak memory against the pre-flight estimate.

    bench/gpu_check.sh               # on a CUDA machine: a ~0.5B Llama-shaped model built from a config
    bench/gpu_check.sh --shape tiny  # the same steps with a tiny model, on a CPU (a smoke test of this script)

The model has random weights (no download): what is checked is that each method trains, evaluates, selects and
exports on the device, and how its measured peak (`torch.cuda.max_memory_allocated` on a GPU) compares with the
estimate the pre-flight makes at the lengths really trained on. DPO runs prepare and train only (its data are
preference pairs, which the SFT task metrics do not score). One table at the end; the exit status is non-zero when a
method failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SHAPES = {
    "0.5b": {"hidden_size": 1536, "intermediate_size": 4096, "num_hidden_layers": 20, "num_attention_heads": 12,
             "num_key_value_heads": 4, "vocab_size": 32000, "tie_word_embeddings": True},
    "tiny": {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 1024, "tie_word_embeddings": True},
}


def pairs(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        system, user, answer = row["messages"]
        finding = json.loads(answer["content"])["finding"].replace("_", " ")
        out.append({"prompt": [system, user], "chosen": answer["content"], "rejected": f"The finding is {finding}."})
    return out


def run_method(root: Path, model: Path, data: Path, schema: Path, method: str, steps: int) -> dict:
    sft = method != "dpo"
    cfg = {"run": {"name": method, "runs_dir": str(root / "runs")}, "model": {"name": str(model)},
           "data": {"path": str(data), "eval_size": 32, "holdout_size": 8, "max_length": 512},
           "train": {"method": method, "max_steps": steps, "micro_batch_size": 8, "num_checkpoints": 2,
                     "learning_rate": 1e-4, "general_mix": {"share": 0.0}},
           "evaluate": {"max_new_tokens": 32, "format": {"type": "json_schema", "schema_path": str(schema)},
                        "retention": {"quartz_examples": 16, "max_probes": 8}},
           "select": {"min_retention": 0.0}}
    config = root / f"{method}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    started = time.time()
    commands = [["run", str(config)]] if sft else [["prepare", str(config)], ["train", str(config)]]
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "tunestack", *command], capture_output=True, text=True)
        if done.returncode:
            lines = [line for line in done.stderr.splitlines() if line.strip() and "it/s]" not in line]
            return {"method": method, "ok": False, "error": " | ".join(lines[-3:])}
    run = root / "runs" / method
    train = json.loads((run / "train" / "manifest.json").read_text())
    export = run / "export" / "manifest.json"
    verification = json.loads(export.read_text())["verification"] if export.exists() else None
    return {"method": method, "ok": True, "seconds": round(time.time() - started, 1), "steps": train["steps"],
            "tokens_per_second": train.get("tokens_per_second"), "preflight_gb": (train.get("memory") or {}).get(
                "estimated_gb"), **{k: train["memory_measured"][k] for k in ("estimated_gb", "measured_gb", "ratio")},
            "measured_as": train["memory_measured"]["measured_as"],
            "export": None if verification is None else f"{verification['identical']}/{verification['compared']}"}


def main() -> int:
    import torch

    from tunestack.demo.radiology import generate, write_demo_data
    from tunestack.models import build_tiny_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="0.5b")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--methods", default="lora,qlora,full,dpo")
    args = parser.parse_args()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no CUDA device)"
    root = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    data, schema = write_demo_data(root / "data", n=400, seed=1)
    texts = [m["content"] for row in generate(300, seed=5) for m in row["messages"]]
    model = build_tiny_model(root / "model", texts, shape=SHAPES[args.shape])
    params = sum(p.numel() for p in __import__("safetensors.torch").torch.load_file(
        str(root / "model" / "model.safetensors")).values()) / 1e9
    dpo_data = root / "data" / "pairs.jsonl"
    dpo_data.write_text("".join(json.dumps(p) + "\n" for p in pairs(generate(300, seed=21))))
    print(f"device: {device}; model: {args.shape}, {params:.2f}B parameters, random init; {args.steps} steps each",
          flush=True)
    results = []
    for method in args.methods.split(","):
        result = run_method(root, model, dpo_data if method == "dpo" else data, schema, method, args.steps)
        results.append(result)
        print(json.dumps(result), flush=True)
    print(f"\n{'method':7} {'ok':3} {'seconds':>8} {'tok/s':>9} {'preflight':>10} {'estimate':>9} {'peak':>7} "
          f"{'peak/est':>8} {'export':>8}")
    for r in results:
        if not r["ok"]:
            print(f"{r['method']:7} no  {r['error']}")
            continue
        print(f"{r['method']:7} yes {r['seconds']:8.1f} {r['tokens_per_second'] or 0:9.0f} {r['preflight_gb']!s:>9}G "
              f"{r['estimated_gb']:8.2f}G {r['measured_gb']:6.2f}G {r['ratio']:8.2f} {r['export'] or '-':>8}")
    print(f"peak: {results[0].get('measured_as', '')}; estimate: the pre-flight's formula at the lengths trained on "
          f"(preflight: at data.max_length)")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
