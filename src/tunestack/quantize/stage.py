"""Stage `quantize`: the exported model quantized by each candidate in turn, each evaluated by the evaluate stage's own
code, the first that keeps the export's task accuracy, format compliance and general capability chosen.

For each candidate (`quantize.candidates`, or the `auto` ladder of `tunestack.quantize.methods.default_ladder`):
the fp32 export is loaded, llm-compressor calibrates and quantizes it on rows of the training split (`calibration`),
the result is saved as compressed-tensors (what vLLM loads) and loaded back decompressed in the evaluation dtype
(`tunestack.models.load.compressed`), and it is evaluated on the eval split and the retention suites exactly as the
evaluate stage evaluates a checkpoint. It passes when it keeps at least `quantize.min_retention` of the export's task
accuracy and format compliance (both measured here, in the same dtype), and its general retention (relative to the
base model, as selection computes it) stays at or above `quantize.min_general_retention` (by default the floor
selection held the checkpoint to, `select.min_retention`). The first candidate that
passes is chosen and the later ones are not tried; none passing stops the stage with the table and what to try.

On a CPU llm-compressor calibrates on the CPU (`methods.cpu_workaround`), on a GPU on the device; the manifest
says which.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from tunestack.config import Config
from tunestack.errors import StageError
from tunestack.quantize.calibration import as_dataset, calibration_rows
from tunestack.quantize.methods import (CALIBRATED, cpu_workaround, default_ladder, quantized_layers, recipe,
                                        require_llmcompressor, validate)
from tunestack.quantize.sizes import folder_sizes
from tunestack.rundir import RunDir, content_hash, read_json, write_json, write_jsonl
from tunestack.terminal import quiet_bars
from tunestack.verdict import collapsed, retention_verdicts

log = logging.getLogger("tunestack")

LIBRARY_WARNINGS = ("Attempting to save a model with offloaded modules",)
"""transformers warns so whenever llm-compressor has hooked the model, on a CPU too, where nothing is offloaded."""

GATED = ("task_accuracy", "format_compliance")
"""The figures a candidate must keep `quantize.min_retention` of, as a share of the export's; general retention is
held to an absolute floor instead (what it keeps of the export's is reported)."""


def candidates_for(cfg: Config, layers: dict[str, int]):
    specs = default_ladder(layers) if cfg.quantize.candidates == "auto" else list(cfg.quantize.candidates)
    validate(specs, layers)
    return specs


def layer_map(folder: Path, ignore: list[str], trust_remote_code: bool) -> dict[str, int]:
    """The quantizable layers of the model in `folder`, from its config alone (built on the meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return quantized_layers(model, ignore)


def calibrate(cfg: Config, spec, source: Path, target: Path, rows: list[dict], log_dir: Path) -> float:
    """Quantize the fp32 model in `source` by `spec` and save it compressed to `target` (staged, then renamed);
    the seconds llm-compressor took."""
    import torch
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32,
                                                 trust_remote_code=cfg.model.trust_remote_code)
    started = time.time()
    calibrated = CALIBRATED[spec.method]
    with cpu_workaround(), quiet_bars(*LIBRARY_WARNINGS):
        oneshot(model=model, recipe=recipe(spec, cfg.quantize.ignore),
                dataset=as_dataset(rows) if calibrated else None, num_calibration_samples=len(rows),
                max_seq_length=cfg.quantize.calibration.max_length, shuffle_calibration_samples=False,
                pipeline="sequential" if calibrated else "datafree", log_dir=str(log_dir))
    seconds = time.time() - started
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    with quiet_bars(*LIBRARY_WARNINGS):
        model.save_pretrained(staging, save_compressed=True)
    for name in os.listdir(source):  # tokenizer, chat template, generation config: the export's own
        if not name.endswith(".safetensors") and name not in ("config.json", "model.safetensors.index.json") and \
                (source / name).is_file():
            shutil.copy2(source / name, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    del model
    return seconds


def evaluated(cfg: Config, run: RunDir, suites, folder: Path, name: str) -> tuple[dict, list[dict]]:
    """Raw metrics and outputs of the model in `folder` (compressed or not), loaded in the evaluation dtype."""
    from tunestack.evaluate.core import evaluate_model
    from tunestack.models import load_model, stage_dtype

    model, tokenizer = load_model(folder, stage_dtype(cfg, "evaluate"), chat_template=cfg.model.chat_template,
                                  trust_remote_code=cfg.model.trust_remote_code)
    try:
        return evaluate_model(cfg, suites, model, tokenizer, name, run.stage("quantize") / f".{name}.vllm")
    finally:
        del model


def reference_metrics(cfg: Config, run: RunDir, suites, export: Path) -> tuple[dict, list[dict]]:
    """The export's own metrics in the evaluation dtype, computed once per export and evaluation setup."""
    from tunestack import fingerprint
    from tunestack.rundir import read_jsonl
    from tunestack.evaluate.core import stored_result
    from tunestack.models import stage_dtype

    out = run.stage("quantize")
    key = content_hash({"export": (run.manifest("export") or {}).get("inputs_hash"), "evaluate":
                        cfg.evaluate.model_dump(mode="json"), "dtype": stage_dtype(cfg, "evaluate"),
                        "seed": cfg.run.seed, "libraries": fingerprint.libraries()})
    stored = stored_result(out / "export.json", key)
    if stored is not None and (out / "export.outputs.jsonl").exists():
        return stored, read_jsonl(out / "export.outputs.jsonl")
    metrics, records = evaluated(cfg, run, suites, export, "export")
    write_jsonl(out / "export.outputs.jsonl", records)
    write_json(out / "export.json", {**metrics, "key": key})
    return metrics, records


def kept(candidate: float | None, reference: float | None) -> float | None:
    """The share of the reference's figure the candidate keeps (1.0 where the reference scores 0)."""
    if candidate is None or reference is None:
        return None
    return round(candidate / reference, 4) if reference > 0 else 1.0


def general_floor(cfg: Config) -> float:
    """The gate's floor on general retention: `quantize.min_general_retention`, else select's."""
    floor = cfg.quantize.min_general_retention
    return cfg.select.min_retention if floor is None else floor


def kept_failures(cfg: Config, row: dict) -> list[str]:
    """The export's figures the candidate does not keep enough of."""
    return [f"keeps {row['kept'][k]:.1%} of the export's {k.replace('_', ' ')} (needs "
            f"{cfg.quantize.min_retention:.0%})" for k in GATED
            if row["kept"][k] is not None and row["kept"][k] < cfg.quantize.min_retention]


def judge(cfg: Config, row: dict) -> list[str]:
    """Why a candidate fails the gate (empty: it passes). General retention is decided by its verdict where the
    verdict is decisive, by the point estimate (of the last look) where it is not."""
    floor = general_floor(cfg)
    failures = kept_failures(cfg, row)
    overall = (row.get("retention_verdicts") or {}).get("overall") or {}
    later = overall.get("look", 1) > 1 and overall.get("retention") is not None
    point = overall["retention"] if later else row["general_retention"]
    if overall.get("outcome") == "fail" or (overall.get("outcome") != "pass" and point < floor):
        drawn = f" (look {overall['look']}, {overall['n']} items)" if later else ""
        failures.append(f"general retention {point:.1%}{drawn} is below {floor:.0%}")
    for suite, found in collapsed(row.get("retention_verdicts")):
        failures.append(f"{suite} retention {found['retention']:.1%} is decisively below the suite floor "
                        f"{cfg.select.min_suite_retention:.0%} (95% upper bound {found['interval'][1]:.1%})")
    return failures


def gate_verdicts(cfg: Config, raw: dict, base: dict, look: int = 1) -> dict | None:
    """The candidate's retention verdicts (`tunestack.verdict`) at look `look` of `select.retention_looks`: general
    retention against the gate's floor, each suite against `select.min_suite_retention`, with
    `select.retention_margin`."""
    return retention_verdicts(raw, base, cfg.evaluate.retention.weights, general_floor(cfg),
                              cfg.select.min_suite_retention, cfg.select.retention_margin, look=look,
                              looks=cfg.select.retention_looks)


def look_again(cfg: Config, run: RunDir, row: dict, target: Path, loaded: dict) -> list[dict]:
    """Further looks at a candidate whose retention verdict is inconclusive while nothing else fails it
    (`tunestack.evaluate.looks`): it and the base model on a larger draw, the verdict taken there; the looks taken."""
    from tunestack.evaluate.looks import described, look_suites, scored

    taken = []
    while True:
        overall = (row.get("retention_verdicts") or {}).get("overall") or {}
        look = overall.get("look", 1)
        if overall.get("outcome") != "inconclusive" or look >= cfg.select.retention_looks or kept_failures(cfg, row):
            return taken
        started = time.perf_counter()
        suites = look_suites(cfg, run, look + 1, loaded)
        base = scored(cfg, run, None, look + 1, loaded)
        loaded.pop("model", None)  # the candidate is loaded next: not both at once
        raw, _ = evaluated(suites.cfg, run, suites, target, f"{row['name']}.look-{look + 1}")
        found = gate_verdicts(cfg, raw, base, look + 1)
        if found is None:
            return taken
        row["retention_verdicts"] = found
        taken.append({**described(suites, look + 1, started), "outcome": found["overall"]["outcome"],
                      "reason": found["overall"]["reason"]})


def figures(raw: dict, base: dict, weights: dict[str, float]) -> dict:
    from tunestack.evaluate.retention import SUITES, combine, without_answers

    scores = without_answers(raw)
    return {"task_accuracy": raw["task_accuracy"], "task_accuracy_ci95": raw.get("task_accuracy_ci95"),
            "field_accuracy": raw.get("field_accuracy"), "per_field_accuracy": raw.get("per_field_accuracy"),
            "metrics": raw.get("metrics"), "metrics_ci95": raw.get("metrics_ci95"),
            "format_compliance": raw["format_compliance"], "eos_rate": raw.get("eos_rate"),
            **{suite: scores.get(suite) for suite, _ in SUITES}, **combine(raw, base, weights)}


def intervals(raw: dict, reference: dict, base: dict, weights: dict[str, float]) -> dict:
    """95% intervals of a candidate's general retention, and of what it lost against the export (export minus
    candidate, paired: the same probes and questions in every bootstrap draw), from the selection stage's paired
    bootstrap (`tunestack.stats`); empty where per-item scores are missing."""
    from tunestack.stats import Draws, Noise, ci95

    draws = Draws([reference, base, raw], Noise(weights=weights))
    mine, theirs = draws.retention(raw, base, None), draws.retention(reference, base, None)
    if mine is None or theirs is None:
        return {}
    return {"general_retention_ci95": ci95(mine), "general_retention_drop_ci95": ci95(theirs - mine)}


def advice(rows: list[dict]) -> str:
    tried = {(r["method"], r["bits"], r["group_size"]) for r in rows}
    hints = []
    if not any(bits == 8 for _, bits, _ in tried):
        hints.append("W8A16 (method gptq, bits 8, group_size null) keeps the most")
    if not any(r.get("eight_bit") for r in rows):
        hints.append("mixed precision: the layers that cost most at 8 bits (eight_bit, e.g. re:.*down_proj)")
    smallest = min((g for _, bits, g in tried if g and bits == 4), default=None)
    if smallest and smallest > 16:
        hints.append(f"a smaller group size than {smallest}")
    hints.append("more calibration rows (quantize.calibration.rows) or calibration.mix: training")
    hints.append("more layers left in full precision (quantize.ignore, e.g. the last decoder layer's mlp)")
    return "; ".join(hints)


def table(rows: list[dict]) -> str:
    lines = [f"{'candidate':<24} {'task kept':>9} {'format kept':>11} {'retention (kept)':>16} {'agreement':>9}  "
             "verdict"]
    for r in rows:
        retention = f"{r['general_retention']:.1%} ({r['kept']['general_retention']:.0%})"
        lines.append(f"{r['name']:<24} {r['kept']['task_accuracy']:>9.1%} {r['kept']['format_compliance']:>11.1%} "
                     f"{retention:>16} {r['agreement']:>9.1%}  "
                     f"{'passes' if r['passes'] else '; '.join(r['failures'])}")
    return "\n".join(lines)


def run_quantize(cfg: Config, run: RunDir, tokenizer) -> dict:
    import torch

    from tunestack.evaluate.core import Suites

    require_llmcompressor()
    export = run.require("export")
    source = Path(export["path"])
    out = run.stage("quantize")
    layers = layer_map(source, cfg.quantize.ignore, cfg.model.trust_remote_code)
    specs = candidates_for(cfg, layers)
    rows = calibration_rows(cfg, run, tokenizer)
    write_jsonl(out / "calibration.jsonl", [{**{k: v for k, v in r.items() if k != "input_ids"},
                                             "tokens": len(r["input_ids"])} for r in rows])
    suites = Suites(cfg, run)
    base = read_json(run.root / "evaluate" / "base.json")
    weights = cfg.evaluate.retention.weights
    reference, reference_records = reference_metrics(cfg, run, suites, source)
    ref = figures(reference, base, weights)
    selected = read_json(run.root / "evaluate" / f"{export['chosen']}.json")
    results, chosen, loaded = [], None, {}
    for spec in specs:
        target = out / "candidates" / spec.name
        used = len(rows) if CALIBRATED[spec.method] else 0
        log.info("[quantize] %s: calibrating on %d rows", spec.name, used)
        seconds = calibrate(cfg, spec, source, target, rows, out / "llmcompressor")
        raw, records = evaluated(cfg, run, suites, target, spec.name)
        write_jsonl(out / f"{spec.name}.outputs.jsonl", records)
        mine = figures(raw, base, weights)
        same = sum(a["token_ids"] == b["token_ids"] for a, b in zip(records, reference_records))
        row = {"name": spec.name, "kind": "quantized", "step": None, **spec.model_dump(mode="json"),
               "symmetric": spec.sym,
               "calibration_rows": used, "calibration_seconds": round(seconds, 1), **mine,
               "kept": {k: kept(mine[k], ref[k]) for k in ("task_accuracy", "field_accuracy", "format_compliance",
                                                            "general_retention")},
               "kept_of_selected": {k: kept(mine[k], selected.get(k)) for k in GATED},
               **intervals(raw, reference, base, weights), "retention_verdicts": gate_verdicts(cfg, raw, base),
               "agreement": round(same / max(1, len(records)), 4), "identical": same, "compared": len(records),
               "sizes": folder_sizes(target), "path": str(target)}
        row["retention_looks"] = look_again(cfg, run, row, target, loaded)
        row["failures"] = judge(cfg, row)
        row["passes"] = not row["failures"]
        results.append(row)
        log.info("[quantize] %s: %s (calibrated in %.0f s)", spec.name,
                 "passes" if row["passes"] else "; ".join(row["failures"]), seconds)
        if row["passes"]:
            chosen = row
            break
    if cfg.quantize.keep == "chosen":
        for row in results:
            if row is not chosen:
                shutil.rmtree(row["path"], ignore_errors=True)
                row["path"] = None
    reference_row = {**ref, "sizes": folder_sizes(source), "path": str(source)}
    body = {"chosen": chosen["name"] if chosen else None, "path": chosen["path"] if chosen else None,
            "candidates": results, "reference": reference_row, "selected_checkpoint": export["chosen"],
            "min_retention": cfg.quantize.min_retention,
            "calibration": {"rows": len(rows), "mix": cfg.quantize.calibration.mix,
                            "max_length": cfg.quantize.calibration.max_length,
                            "sources": {s: sum(r["source"] == s for r in rows) for s in ("train", "general")}},
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "path_ran": ("calibrated on the GPU" if torch.cuda.is_available() else
                         "calibrated on the CPU (pin-memory workaround), evaluated decompressed")}
    write_json(out / "candidates.json", body)
    if chosen is None:
        raise StageError(f"quantize: no candidate keeps the export's quality:\n{table(results)}\n"
                         f"Try: {advice(results)}. Every candidate's figures: {out / 'candidates.json'}")
    return body
