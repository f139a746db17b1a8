"""`results.json`, built from the stage manifests, and `report.md` beside it. Pure but for reading and writing the
run directory.
"""

from __future__ import annotations

import json
import time
from importlib import resources

from tunestack.config import Config
from tunestack.evaluate.references import reference_shares
from tunestack.report.markdown import render_markdown
from tunestack.rundir import RunDir, git_revision, read_json, write_json, write_text
from tunestack.tables import model_rows


def results_schema() -> dict:
    return json.loads(resources.files("tunestack.resources").joinpath("results.schema.json").read_text())


def build_results(cfg: Config, run: RunDir) -> dict:
    selection = run.require("select")
    evaluated = run.require("evaluate")
    references = evaluated.get("references") or []
    quantized = run.manifest("quantize")
    train = run.manifest("train") or {}
    prepare = run.manifest("prepare") or {}
    served_path = run.root / "serve" / "served.json"
    served = read_json(served_path) if served_path.exists() else None
    return {
        "schema_version": 1,
        "run": cfg.run.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "git_revision": git_revision(),
        "seed": cfg.run.seed,
        "config": cfg.model_dump(mode="json"),
        "data": {"counts": prepare.get("counts"), "splits": prepare.get("splits"), "sources": prepare.get("sources"),
                 "warnings": prepare.get("warnings")},
        "train": {k: train.get(k) for k in ("method", "steps", "precision", "train_seconds", "tokens_per_second",
                                            "rows", "grpo")},
        "models": model_rows(evaluated["models"] + references, selection["chosen"])
        + [{**row, "chosen": row["name"] == quantized["chosen"]}
           for row in model_rows(quantized["candidates"] if quantized else [], None)]
        + [{**row, "kind": "served"} for row in model_rows([served["row"]] if served else [], None)],
        "references": reference_shares(evaluated["models"], references, selection["chosen"],
                                       cfg.cost.min_accuracy_share),
        "selection": {k: selection.get(k) for k in ("chosen", "reason", "pareto_front", "table", "objectives",
                                                     "weights", "min_retention", "floors", "judge", "eval_set_decisions",
                                                     "eval_decisions", "noise", "retention_looks",
                                                     "against_start")},
        "export": run.manifest("export"),
        "quantize": quantize_summary(quantized),
        "served": {k: served.get(k) for k in ("model", "kind", "source", "backend", "dtype", "identical", "compared",
                                              "agreement", "comparison", "differing", "parity", "quartz_skipped")}
        if served else None,
        "holdout": run.manifest("holdout"),
    }


def quantize_summary(manifest: dict | None) -> dict | None:
    """What results.json keeps of the quantize stage: the choice, the reference, and each candidate's gate figures
    (the candidates' metrics are rows of `models`, kind `quantized`)."""
    if not manifest:
        return None
    keep = ("name", "method", "bits", "group_size", "symmetric", "observer", "eight_bit", "kept", "kept_of_selected",
            "general_retention", "general_retention_ci95", "general_retention_drop_ci95", "agreement",
            "calibration_rows", "calibration_seconds", "sizes", "passes", "failures", "path", "retention_verdicts",
            "retention_looks")
    reference = manifest["reference"]
    return {"chosen": manifest["chosen"], "path": manifest["path"], "device": manifest.get("device"),
            "path_ran": manifest.get("path_ran"), "min_retention": manifest.get("min_retention"),
            "calibration": manifest.get("calibration"), "selected_checkpoint": manifest.get("selected_checkpoint"),
            "reference": {k: reference.get(k) for k in ("task_accuracy", "format_compliance", "general_retention",
                                                        "sizes", "path")},
            "candidates": [{k: c.get(k) for k in keep} for c in manifest["candidates"]]}


def write_report(cfg: Config, run: RunDir) -> dict:
    results = build_results(cfg, run)
    write_json(run.root / "results.json", results)
    write_text(run.root / "report.md", render_markdown(results))
    return results
