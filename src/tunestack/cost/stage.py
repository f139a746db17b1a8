"""Stage `cost`: read what the run measured, price it, and write `cost/cost.json`, `cost.md`, `cost.png`.

Recipe: read the train, evaluate and prepare manifests that exist (and `serve/load.json`, what
bench/serve_load.py measured) -> gather the inputs (config, then measured, then
defaults) -> estimate -> sensitivity -> write the report, then the manifest last. It needs no earlier stage: with no
run it estimates from `cost.training` or the prepare manifest, and never loads a model or reads the data.
"""

from __future__ import annotations

import time

from tunestack.config import Config
from tunestack.cost import report
from tunestack.cost.inputs import Manifests, gather
from tunestack.cost.model import cumulative, estimate, sensitivity
from tunestack.rundir import RunDir, content_hash, write_json, write_text

READS = ("train", "evaluate", "prepare")


def run_cost(cfg: Config, run: RunDir) -> dict:
    started = time.time()
    found = Manifests(**{stage: run.manifest(stage) for stage in READS}, serve_load=serve_load(run))
    inputs = gather(cfg, found)
    outputs = estimate(inputs)
    shares = accuracy_shares(cfg, run, found)
    measured_from = [f"{stage}/manifest.json" for stage in READS if getattr(found, stage) is not None]
    measured_from += ["serve/load.json"] if found.serve_load else []
    body = report.build_body(cfg.run.name, inputs, outputs, sensitivity(inputs),
                             cumulative(outputs, inputs.horizon_months), measured_from, found.notes)
    body["accuracy_share"] = shares
    body["quantized"] = quantized_model(cfg, run, body["notes"])
    folder = run.stage("cost")
    write_json(folder / "cost.json", body)
    write_text(folder / "cost.md", report.markdown(body))
    report.plot(folder / "cost.png", body)
    key = content_hash({"cost": cfg.cost.model_dump(mode="json"), "train": cfg.train.model_dump(mode="json"),
                        "upstream": {s: (getattr(found, s) or {}).get("inputs_hash") for s in READS},
                        "select": (run.manifest("select") or {}).get("inputs_hash"),
                        "quantize": (run.manifest("quantize") or {}).get("inputs_hash"),
                        "serve_load": found.serve_load})
    run.finish("cost", key, {"files": ["cost.json", "cost.md", "cost.png"], "measured_from": measured_from,
                             "payback_months": body["outputs"].get("payback_months", {}).get("value")}, started)
    return body


def serve_load(run: RunDir) -> dict | None:
    from tunestack.rundir import read_json

    path = run.root / "serve" / "load.json"
    body = read_json(path) if path.exists() else None
    return body if body and "measurements" in body else None  # an older bench wrote one run, without the device


def accuracy_shares(cfg: Config, run: RunDir, found: Manifests) -> list[dict]:
    """The selected model's accuracy as a share of each reference (`evaluate.references`), with a note beside the
    payback for each, a warning when below `cost.min_accuracy_share`: the saving assumes the fine-tune can
    replace the API."""
    from tunestack.evaluate.references import reference_shares

    selection = run.manifest("select")
    evaluated = found.evaluate or {}
    if selection is None or not evaluated.get("references"):
        return []
    shares = reference_shares(evaluated["models"], evaluated["references"], selection["chosen"],
                              cfg.cost.min_accuracy_share)
    for s in shares:
        if s["share"] is None:
            continue
        said = (f"{s['model']} reaches {s['share']:.0%} of {s['reference']}'s exact match ({s['value']:.1%} vs "
                f"{s['reference_value']:.1%})")
        if s["enough"]:
            found.notes.append(f"{said}, at or above cost.min_accuracy_share ({s['min_share']:.0%}): the payback "
                               "assumes it can replace that API")
        else:
            found.notes.append(f"WARNING: {said}, below cost.min_accuracy_share ({s['min_share']:.0%}): the "
                               f"payback assumes a replacement that is not good enough to replace {s['reference']}")
    return shares


def quantized_model(cfg: Config, run: RunDir, notes: list[str]) -> dict | None:
    """What the quantize stage chose, with its measured size beside the export's, and a warning where the serving
    line is priced for a 4-bit model (`cost.serving.quantization: awq`) that the run did not produce."""
    done = run.manifest("quantize")
    if done is None:
        if cfg.cost.serving.quantization == "awq":
            notes.append("serving is priced for a 4-bit AWQ model, but this run has not quantized its export "
                         "(tunestack quantize measures what 4 bits keep)")
        return None
    chosen = next((c for c in done["candidates"] if c["name"] == done["chosen"]), None)
    export = done["reference"]["sizes"]["disk_bytes"]
    found = {"chosen": done["chosen"], "bits": chosen["bits"] if chosen else None,
             "method": chosen["method"] if chosen else None,
             "disk_bytes": chosen["sizes"]["disk_bytes"] if chosen else None, "export_disk_bytes": export}
    if chosen is not None:
        notes.append(f"the quantize stage chose {chosen['name']}: {chosen['sizes']['disk_bytes'] / 2**20:,.0f} MiB on "
                     f"disk against the export's {export / 2**20:,.0f} MiB (quantize/manifest.json)")
    if cfg.cost.serving.quantization == "awq" and (chosen is None or chosen["bits"] != 4):
        what = f"chose {chosen['name']} ({chosen['bits']}-bit)" if chosen else "found no candidate that passes its gate"
        notes.append(f"WARNING: serving is priced for a 4-bit AWQ model, but the quantize stage {what}: set "
                     "cost.serving.quantization=none, or give cost.serving.throughput_awq for the model you will "
                     "serve")
    return found
