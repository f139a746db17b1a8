"""The evaluate stage's models on one vLLM engine (`evaluate.backend: vllm`): which entries go through it, which run
on the local backend and why, and the results stored as the local backend stores them (`tunestack.evaluate.core`).
The engine itself is `tunestack.evaluate.vllm_backend`."""

from __future__ import annotations

import logging

from tunestack.config import Config
from tunestack.evaluate.vllm_backend import BASE_NAME, VllmEngine

log = logging.getLogger("tunestack")


def route(cfg: Config, entry: dict, base_vocab: int | None) -> str | None:
    """Why an evaluated entry cannot go through vLLM (a phrase after its name), or None when it can."""
    from tunestack.evaluate.core import on_nf4
    from tunestack.models.merge import earlier
    from tunestack.vllm import adapter_unfit

    path = entry.get("path")
    if not path:
        return None
    if on_nf4(cfg, entry):
        return "is a QLoRA adapter, evaluated on the 4-bit base it was trained on"
    why = adapter_unfit(path, base_vocab)
    if why:
        return why
    if earlier(path):
        return "was trained from another checkpoint (train.init_from), merged into the base first"
    return None


def evaluate_entries(cfg: Config, run, suites, base, tokenizer, entries: list[dict]) -> tuple[list[dict], int, dict]:
    """Raw metrics of each entry (in order), how many were reused, and each entry's route: `vllm`, or `local: why`.
    `base` gives the dense base model for the entries that run locally (a callable, so it is loaded only then)."""
    from tunestack.evaluate.core import cached_metrics, evaluate_entry, model_key, store_entry, evaluate_generator

    base_vocab = base_vocabulary(cfg)
    keys = {e["name"]: model_key(cfg, run, e) for e in entries}
    stored = {e["name"]: cached_metrics(cfg, run, e, keys[e["name"]]) for e in entries}
    routes = {e["name"]: route(cfg, e, base_vocab) for e in entries}
    for name, why in routes.items():
        if why and stored[name] is None:
            log.info("[evaluate] %s %s: evaluated on the local backend, not through vLLM", name, why)
    through = [e for e in entries if routes[e["name"]] is None and stored[e["name"]] is None]
    results = {n: m for n, m in stored.items() if m is not None}
    if through:
        from tunestack.models import resolve_model

        adapters = {e["name"]: e["path"] for e in through if e.get("path")}
        engine = VllmEngine(cfg, resolve_model(cfg.model.name, cfg.model.revision), run.stage("evaluate") /
                            "vllm.log", adapters)
        with engine:
            for entry in through:
                generator = engine.generator(tokenizer, entry["name"] if entry.get("path") else BASE_NAME)
                try:
                    metrics, records = evaluate_generator(generator, suites, entry["name"])
                finally:
                    generator.close()
                store_entry(run, entry, metrics, records, keys[entry["name"]])
                results[entry["name"]] = metrics
    for entry in entries:
        if entry["name"] not in results:
            results[entry["name"]] = evaluate_entry(cfg, run, suites, base(), tokenizer, entry, backend="local",
                                                    key=keys[entry["name"]])[0]
    described = {n: "vllm" if why is None else f"local: {why}" for n, why in routes.items()}
    return [results[e["name"]] for e in entries], sum(m is not None for m in stored.values()), described


def base_vocabulary(cfg: Config) -> int | None:
    """The base model's embedding rows, from its config."""
    import json

    from tunestack.models import resolve_model

    config = json.loads((resolve_model(cfg.model.name, cfg.model.revision) / "config.json").read_text())
    return (config.get("text_config") or config).get("vocab_size")
