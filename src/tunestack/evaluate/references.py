"""Reference models on the results table: the API the fine-tune would replace (or any OpenAI-compatible endpoint),
evaluated on the same eval split and suites by the same code as every checkpoint, never selectable.

Each reference's results are stored in `<run>/evaluate/references/<name>.json` under a key of everything they
depend on (the reference's endpoint and model, the evaluate section, the eval split, the suites' contents), so a
re-run asks the endpoint nothing; its answers are also in the endpoint answer cache. `shares` gives the selected
model's headline metric as a share of each reference's: the seed's rule is to replace the API only at 90% or more.
"""

from __future__ import annotations

import logging

from tunestack.config import Config
from tunestack.rundir import RunDir, content_hash, file_hash, write_json

log = logging.getLogger("tunestack")


def reference_key(cfg: Config, run: RunDir, spec) -> str:
    from tunestack import fingerprint

    evaluate = cfg.evaluate.model_dump(mode="json", exclude={"backend", "endpoint", "references"})
    return content_hash({"reference": spec.model_dump(mode="json"), "evaluate": evaluate,
                         "eval": file_hash(run.root / "prepare" / "eval.jsonl"), "suites": fingerprint.suites(cfg)})


def reference_config(cfg: Config, spec) -> Config:
    """The config with `evaluate.endpoint` set to the reference's endpoint (other endpoint settings kept)."""
    endpoint = cfg.evaluate.endpoint.model_copy(update={
        "base_url": spec.base_url, "model": spec.model or spec.name, "api": spec.api, "api_key_env": spec.api_key_env,
        "price_input_per_m": spec.price_input_per_m, "price_output_per_m": spec.price_output_per_m})
    return cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"endpoint": endpoint})})


def evaluate_references(cfg: Config, run: RunDir, suites, base_row: dict, models=None) -> list[dict]:
    """Each reference's row (raw metrics, retention relative to `base_row`, kind `reference`), evaluated now or
    reused when its key is unchanged."""
    from tunestack.data.prepare import write_jsonl
    from tunestack.evaluate.stage import relative_rows, stored_result
    from tunestack.evaluate.standalone import Models, Target, evaluate_target

    rows = []
    folder = run.stage("evaluate") / "references"
    for spec in cfg.evaluate.references:
        key = reference_key(cfg, run, spec)
        stored = folder / f"{spec.name}.json"
        metrics = stored_result(stored, key)
        if metrics is None:
            log.info("[evaluate] reference %s: %s at %s", spec.name, spec.model or spec.name, spec.base_url)
            ref_cfg = reference_config(cfg, spec)
            target = Target("endpoint", spec.base_url, spec.name, base_url=spec.base_url.rstrip("/"),
                            model=spec.model or spec.name)
            metrics, records, _ = evaluate_target(ref_cfg, run, suites, target, models or Models(cfg))
            folder.mkdir(exist_ok=True)
            write_jsonl(folder / f"{spec.name}.outputs.jsonl", records)
            write_json(stored, {**metrics, "key": key})
        entry = {"name": spec.name, "kind": "reference", "step": None, "path": None, "train_loss": None,
                 "endpoint": {"base_url": spec.base_url, "model": spec.model or spec.name}}
        rows.append(relative_rows([base_row, {**entry, **metrics}], cfg.evaluate.retention.probe_weight)[1])
    return rows


def shares(chosen: dict, references: list[dict], key: str = "task_accuracy") -> list[dict]:
    """The chosen model's `key` as a share of each reference's.

    >>> shares({"task_accuracy": 0.63}, [{"name": "api", "task_accuracy": 0.7}])
    [{'reference': 'api', 'reference_value': 0.7, 'value': 0.63, 'share': 0.9}]
    """
    out = []
    for ref in references:
        value, theirs = chosen.get(key), ref.get(key)
        share = round(value / theirs, 4) if value is not None and theirs else None
        out.append({"reference": ref["name"], "reference_value": theirs, "value": value, "share": share})
    return out
