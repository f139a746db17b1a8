"""Stage `cost`: read what the run measured, price it, and write `cost/cost.json`, `cost.md`, `cost.png`.

Recipe: read the train, evaluate and prepare manifests that exist -> gather the inputs (config, then measured, then
defaults) -> estimate -> sensitivity -> write the report, then the manifest last. It needs no earlier stage: with no
run it estimates from `cost.training` or the prepare manifest, and never loads a model or reads the data.
"""

from __future__ import annotations

import time

from tunestack.config import Config
from tunestack.cost import report
from tunestack.cost.inputs import Manifests, gather
from tunestack.cost.model import cumulative, estimate, sensitivity
from tunestack.rundir import RunDir, content_hash, write_json

READS = ("train", "evaluate", "prepare")


def run_cost(cfg: Config, run: RunDir) -> dict:
    started = time.time()
    found = Manifests(**{stage: run.manifest(stage) for stage in READS})
    inputs = gather(cfg, found)
    outputs = estimate(inputs)
    measured_from = [f"{stage}/manifest.json" for stage in READS if getattr(found, stage) is not None]
    body = report.build_body(cfg.run.name, inputs, outputs, sensitivity(inputs),
                             cumulative(outputs, inputs.horizon_months), measured_from, found.notes)
    folder = run.stage("cost")
    write_json(folder / "cost.json", body)
    (folder / "cost.md").write_text(report.markdown(body), encoding="utf-8")
    report.plot(folder / "cost.png", body)
    key = content_hash({"cost": cfg.cost.model_dump(mode="json"), "train": cfg.train.model_dump(mode="json"),
                        "upstream": {s: (getattr(found, s) or {}).get("inputs_hash") for s in READS}})
    run.finish("cost", key, {"files": ["cost.json", "cost.md", "cost.png"], "measured_from": measured_from,
                             "payback_months": body["outputs"].get("payback_months", {}).get("value")}, started)
    return body
