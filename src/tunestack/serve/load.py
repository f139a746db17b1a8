"""What `bench/serve_load.py` measured, kept for `tunestack cost`: `<run>/serve/load.json` holds one measurement per
weight width served (`16-bit` for the export, `4-bit` for an AWQ/GPTQ W4 folder, `8-bit` for W8), so benching the
export and then `--model` the 4-bit folder fills both of the cost model's serving throughputs (with and without
AWQ). Each measurement names the device it ran on; `cost` uses it only for that hardware (`cost.serving.gpu`)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["best_throughput", "record", "weight_width"]


def weight_width(folder: str | Path) -> str:
    """`4-bit`, `8-bit` or `16-bit`: the served folder's weights, from its compressed-tensors config."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return "16-bit"
    groups = ((config.get("quantization_config") or {}).get("config_groups") or {}).values()
    bits = [(g.get("weights") or {}).get("num_bits") for g in groups if g.get("weights")]
    bits = [b for b in bits if b]
    return f"{max(bits)}-bit" if bits else "16-bit"


def record(path: Path, measured: dict) -> dict:
    """`measured` (one bench run, with `weights`) merged into the file's measurements, replacing the same width's."""
    from tunestack.rundir import read_json, write_json

    body = read_json(path) if path.exists() else {}
    measurements = dict(body.get("measurements") or {})
    measurements[measured["weights"]] = measured
    body = {"measurements": measurements, "latest": measured["weights"]}
    write_json(path, body)
    return body


def best_throughput(measurement: dict) -> tuple[str, float] | None:
    """(server, prompt + completion tokens per second) of the fastest of tunestack's servers (vLLM, built-in) that
    answered every request; None if none did."""
    clean = [(name, measurement[name]) for name in ("vllm", "builtin")
             if measurement.get(name) and not measurement[name].get("errors") and measurement[name].get("ok")]
    if not clean:
        return None
    name, figures = max(clean, key=lambda item: item[1].get("total_tokens_per_s", 0.0))
    return name, float(figures.get("total_tokens_per_s", 0.0))
