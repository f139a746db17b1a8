"""Reference models on the results table: the API the fine-tune would replace (or any OpenAI-compatible endpoint),
evaluated on the same eval split and suites by the same code as every checkpoint, never selectable.

Capturing a reference is the one chance to record an endpoint that is going away (a hosted fine-tune being shut
down), so it is built to survive interruption and outlive the endpoint:

- each answer goes to the endpoint answer cache the moment it arrives (one atomic file per answer), so a capture
  that is killed or fails midway continues where it stopped: the re-run asks only for the answers not cached;
- `requests_per_minute` keeps it under the endpoint's rate limit;
- `<run>/evaluate/references/<name>.json` records, under `capture`, the model id the endpoint reported (a dated
  snapshot, say), the capture's date (UTC, when its last answer arrived), requests sent, answers read from the
  cache, prompt and completion tokens over the whole capture, and their cost when priced;
- the results are stored under a key of everything they depend on (the reference's endpoint and model, the
  evaluate section, the eval split, the suites' contents; not the rate limit), so a re-run builds no client and
  asks nothing. When the key changes but the prompts do not, every answer comes from the cache: no request, no API
  key needed.

`shares` gives the selected model's headline metric as a share of each reference's: the seed's rule is to replace
the API only at 90% or more.
"""

from __future__ import annotations

import logging
from collections import Counter

from tunestack.config import Config
from tunestack.errors import EndpointError
from tunestack.rundir import RunDir, content_hash, file_hash, write_json

log = logging.getLogger("tunestack")


def reference_key(cfg: Config, run: RunDir, spec) -> str:
    from tunestack import fingerprint

    evaluate = cfg.evaluate.model_dump(mode="json", exclude={"backend", "endpoint", "references"})
    reference = spec.model_dump(mode="json", exclude={"requests_per_minute"})  # how fast, not what, is asked
    return content_hash({"reference": reference, "evaluate": evaluate,
                         "eval": file_hash(run.root / "prepare" / "eval.jsonl"), "suites": fingerprint.suites(cfg)})


def reference_config(cfg: Config, spec) -> Config:
    """The config with `evaluate.endpoint` set to the reference's endpoint (other endpoint settings kept)."""
    ep = cfg.evaluate.endpoint
    endpoint = ep.model_copy(update={
        "base_url": spec.base_url, "model": spec.model or spec.name, "api": spec.api, "api_key_env": spec.api_key_env,
        "price_input_per_m": spec.price_input_per_m, "price_output_per_m": spec.price_output_per_m,
        "requests_per_minute": spec.requests_per_minute or ep.requests_per_minute})
    return cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"endpoint": endpoint})})


def evaluate_references(cfg: Config, run: RunDir, suites, base_row: dict, models=None) -> list[dict]:
    """Each reference's row (raw metrics, retention relative to `base_row`, kind `reference`), evaluated now or
    reused when its key is unchanged."""
    from tunestack.rundir import write_jsonl
    from tunestack.evaluate.core import relative_rows, stored_result
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
            try:
                metrics, records, _ = evaluate_target(ref_cfg, run, suites, target, models or Models(cfg))
            except EndpointError as exc:
                raise EndpointError(f"reference {spec.name}: {exc}. Every answer received is cached: run "
                                    "`tunestack evaluate` again to continue the capture where it stopped") from None
            metrics = {**metrics, "capture": capture(metrics["usage"])}
            c = metrics["capture"]
            log.info("[evaluate] reference %s captured: %d answers (%d from the cache, %d requests), model %s",
                     spec.name, c["answers"], c["from_cache"], c["requests"], c["model"])
            folder.mkdir(exist_ok=True)
            write_jsonl(folder / f"{spec.name}.outputs.jsonl", records)
            write_json(stored, {**metrics, "key": key})
        entry = {"name": spec.name, "kind": "reference", "step": None, "path": None, "train_loss": None,
                 "endpoint": {"base_url": spec.base_url, "model": spec.model or spec.name}}
        rows.append(relative_rows([base_row, {**entry, **metrics}], cfg.evaluate.retention.weights)[1])
    return rows


def capture(usage: dict) -> dict:
    """What a capture recorded, over all its attempts: the model id the endpoint reported (the commonest, when
    answers name several), when its last answer arrived, requests sent by this attempt, answers read from the cache
    (those of earlier attempts), tokens and cost of every answer used.

    >>> c = capture({"requests": 3, "completions": 3, "cache_hits": 2, "prompt_tokens": 30, "completion_tokens": 6,
    ...              "cached_prompt_tokens": 20, "cached_completion_tokens": 4, "cost_usd": 0.3,
    ...              "cost_saved_by_cache_usd": 0.2, "models": {"gpt-x-2024": 5},
    ...              "first_answer_at": "2024-05-01T10:00:00Z", "last_answer_at": "2024-05-02T09:00:00Z"})
    >>> c["model"], c["captured_at"], c["answers"], c["prompt_tokens"], c["cost_usd"]
    ('gpt-x-2024', '2024-05-02T09:00:00Z', 5, 50, 0.5)
    """
    models = Counter(usage.get("models") or {})
    cost, saved = usage.get("cost_usd"), usage.get("cost_saved_by_cache_usd")
    return {"model": models.most_common(1)[0][0] if models else None, "models": dict(models),
            "captured_at": usage.get("last_answer_at"), "first_answer_at": usage.get("first_answer_at"),
            "answers": usage["completions"] + usage["cache_hits"], "requests": usage["requests"],
            "from_cache": usage["cache_hits"], "retries": usage.get("retries", 0),
            "prompt_tokens": usage["prompt_tokens"] + usage["cached_prompt_tokens"],
            "completion_tokens": usage["completion_tokens"] + usage["cached_completion_tokens"],
            "cost_usd": None if cost is None else round(cost + (saved or 0.0), 6),
            "cost_this_run_usd": cost}


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


def reference_shares(models: list[dict], references: list[dict], chosen: str, floor: float) -> list[dict]:
    """The selected model's headline metric as a share of each reference's, and whether it clears `floor`."""
    picked = next((m for m in models if m["name"] == chosen), None)
    if picked is None or not references:
        return []
    captures = {r["name"]: r.get("capture") for r in references}
    return [{**s, "model": chosen, "min_share": floor, "enough": s["share"] is not None and s["share"] >= floor,
             "capture": captures.get(s["reference"])} for s in shares(picked, references)]
