"""`tunestack evaluate CONFIG --model PATH|URL|NAME`: one model, outside the pipeline, on the run's eval split and
retention suites, scored by the same functions as the base model and every checkpoint.

    --model runs/x/export/model                     a model folder (or a built-in name, a cached Hugging Face id)
    --model runs/x/train/checkpoints/step-000046    a checkpoint: a LoRA adapter is merged into the run's base
    --model http://127.0.0.1:8000/v1                an OpenAI-compatible endpoint (the rest from evaluate.endpoint)
    --model gpt-4o                                  with evaluate.backend=openai: that model at evaluate.endpoint

Folders run on the configured local backend (`local` or `vllm`), endpoints on `openai`. Results go to
`<run>/evaluate/standalone/<name>.outputs.jsonl` and then `<name>.json` (written last). The stage's manifest and its
per-model results are left alone; only the base model's results, which retention is relative to, are computed and
stored exactly as the stage would store them when they are missing.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

from tunestack.config import Config
from tunestack.errors import ModelError
from tunestack.models import BUILTIN
from tunestack.rundir import RunDir, git_revision, write_json

log = logging.getLogger("tunestack")


@dataclass(frozen=True)
class Target:
    """The model to evaluate, as the command line named it."""

    kind: str
    """`endpoint`, `checkpoint` (a LoRA adapter folder, merged into the run's base) or `folder`."""
    source: str
    name: str | None = None
    base_url: str | None = None
    model: str | None = None
    """The model's name at the endpoint; None: the one the endpoint lists."""


def resolve_target(cfg: Config, source: str, name: str | None = None) -> Target:
    """What `--model` names: a URL is an endpoint; with `evaluate.backend: openai` a name that is not a folder is a
    model at `evaluate.endpoint.base_url`; an adapter folder is a checkpoint; anything else a model folder."""
    endpoint = cfg.evaluate.endpoint
    if source.startswith(("http://", "https://")):
        return Target("endpoint", source, name, base_url=source.rstrip("/"), model=endpoint.model)
    path = Path(source).expanduser()
    if cfg.evaluate.backend == "openai" and not path.exists():
        return Target("endpoint", source, name, base_url=endpoint.base_url.rstrip("/"), model=source)
    if not path.exists() and source not in BUILTIN and "/" not in source:
        raise ModelError(f"--model {source}: not a URL, a model or checkpoint folder, a built-in model "
                         f"({', '.join(BUILTIN)}) nor a Hugging Face id. To evaluate a model by name at an "
                         "endpoint, add evaluate.backend=openai (and evaluate.endpoint.base_url=URL)")
    kind = "checkpoint" if (path / "adapter_config.json").exists() else "folder"
    return Target(kind, source, name or model_name(source))


def model_name(source: str, served: str | None = None) -> str:
    """A file name for a model's results: the endpoint's host and model, or the folder's name (with its run's name
    for a checkpoint or an export, whose own names say little).

    >>> model_name("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B"), model_name("runs/a/train/checkpoints/step-000046")
    ('127.0.0.1-8000-Qwen-Qwen2.5-7B', 'a-step-000046')
    >>> model_name("runs/a/export/model"), model_name("gpt-4o", "gpt-4o"), model_name("/models/my-model/")
    ('a-export', 'gpt-4o', 'my-model')
    """
    if served is not None:
        host = urlparse(source).netloc if "://" in source else ""
        text = f"{host}-{served}" if host else served
    else:
        path = Path(source.rstrip("/"))
        parts = path.parts
        if len(parts) >= 4 and parts[-2] == "checkpoints":
            text = f"{parts[-4]}-{parts[-1]}"
        elif len(parts) >= 3 and parts[-2] == "export":
            text = f"{parts[-3]}-export"
        else:
            text = path.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"


class Models:
    """The run's base model and tokenizer, loaded on first use (an endpoint whose base results are stored needs
    neither)."""

    def __init__(self, cfg: Config, loaded=None):
        """`loaded`: the (model, tokenizer) pair when a caller already has it."""
        self.cfg, self._loaded = cfg, loaded

    def base(self):
        if self._loaded is None:
            from tunestack.models import load_base, stage_dtype

            self._loaded = load_base(self.cfg.model, dtype=stage_dtype(self.cfg, "evaluate"))  # as the stage does
        return self._loaded

    def tokenizer(self):
        if self._loaded is None:
            from tunestack.models import load_base

            return load_base(self.cfg.model, tokenizer_only=True)[1]
        return self._loaded[1]


def base_metrics(cfg: Config, run: RunDir, suites, models: Models) -> dict:
    """The base model's raw metrics: stored ones when current, else evaluated now and stored as the stage would."""
    from tunestack.evaluate.core import BASE_ENTRY, cached_metrics, evaluate_entry

    stored = cached_metrics(cfg, run, BASE_ENTRY)
    if stored is not None:
        return stored
    log.info("[evaluate] no current results for the base model: evaluating it too (retention is relative to it)")
    model, tokenizer = models.base()
    return evaluate_entry(cfg, run, suites, model, tokenizer, BASE_ENTRY)[0]


def endpoint_generator(cfg: Config, target: Target, models: Models):
    """The `openai` backend for the target, its model name looked up when not given; returns (generator, target)."""
    from tunestack.client import CompletionsTransport, EndpointClient, EndpointSettings, served_model
    from tunestack.evaluate.endpoint import EndpointGenerator
    from tunestack.models import cache_dir

    ep = cfg.evaluate.endpoint
    folder = Path(ep.cache_dir) if ep.cache_dir else cache_dir() / "endpoint"
    settings = EndpointSettings(
        base_url=target.base_url or ep.base_url, model=target.model or "", api_key_env=ep.api_key_env,
        max_concurrency=ep.max_concurrency, timeout_s=ep.timeout_s, max_retries=ep.max_retries,
        backoff_s=ep.backoff_s, price_input_per_m=ep.price_input_per_m, price_output_per_m=ep.price_output_per_m,
        cache_dir=folder if ep.cache else None, requests_per_minute=ep.requests_per_minute)
    if not settings.model:
        settings = replace(settings, model=served_model(settings))
    target = replace(target, model=settings.model, name=target.name or model_name(target.source, settings.model))
    completions = ep.api == "completions"
    client = EndpointClient(settings, CompletionsTransport(settings) if completions else None)
    if ep.api == "chat" and ep.score_with_completions:
        scoring = EndpointClient(settings, CompletionsTransport(settings))
        scoring.usage = client.usage  # one account: the answers, then the scores (never both at once)
        scorer = EndpointGenerator(scoring, "completions", models.tokenizer())
        return EndpointGenerator(client, "chat", scorer=scorer), target
    return EndpointGenerator(client, ep.api, models.tokenizer() if completions else None), target


def evaluate_target(cfg: Config, run: RunDir, suites, target: Target, models: Models) -> tuple[dict, list, Target]:
    """Raw metrics and outputs of the target; an endpoint's metrics carry its requests, tokens and cost."""
    from tunestack.evaluate.core import entry_model, evaluate_generator, evaluate_model, local_backend
    from tunestack.models import load_model, resolve_model, stage_dtype

    if target.kind == "endpoint":
        generator, target = endpoint_generator(cfg, target, models)
        try:
            metrics, records = evaluate_generator(generator, suites, target.name)
        finally:
            generator.close()
        return {**metrics, "backend": "openai", "usage": generator.client.summary()}, records, target
    workdir = run.stage("evaluate") / "standalone" / f".{target.name}.vllm"
    if target.kind == "checkpoint":
        base, tokenizer = models.base()
        with entry_model(cfg, base, {"name": target.name, "path": target.source}) as model:
            metrics, records = evaluate_model(cfg, suites, model, tokenizer, target.name, workdir)
    else:
        model, tokenizer = load_model(resolve_model(target.source), stage_dtype(cfg, "evaluate"))
        metrics, records = evaluate_model(cfg, suites, model, tokenizer, target.name, workdir)
    return {**metrics, "backend": local_backend(cfg)}, records, target


def run_standalone(cfg: Config, run: RunDir, source: str, name: str | None = None) -> dict:
    """Evaluate one model named by `--model`; returns what it writes to `evaluate/standalone/<name>.json`."""

    from tunestack.rundir import write_jsonl
    from tunestack.models.load import setup_torch
    from tunestack.evaluate.core import BASE_ENTRY, Suites, relative_rows

    setup_torch(cfg)
    suites = Suites(cfg, run)
    models = Models(cfg)
    base = base_metrics(cfg, run, suites, models)
    started = time.time()
    metrics, records, target = evaluate_target(cfg, run, suites, resolve_target(cfg, source, name), models)
    seconds = time.time() - started
    entry = {"name": target.name, "kind": target.kind, "step": None, "path": target.source, "train_loss": None}
    base_row, row = relative_rows([{**BASE_ENTRY, **base}, {**entry, **metrics}],
                                  cfg.evaluate.retention.weights)
    folder = run.stage("evaluate") / "standalone"
    folder.mkdir(exist_ok=True)
    write_jsonl(folder / f"{target.name}.outputs.jsonl", records)
    result = {"model": source, "name": target.name, "kind": target.kind, "backend": metrics["backend"],
              "endpoint": ({"base_url": target.base_url, "model": target.model, "api": cfg.evaluate.endpoint.api}
                           if target.kind == "endpoint" else None),
              "eval_examples": len(suites.rows), "seconds": round(seconds, 2),
              "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "git_revision": git_revision(),
              "evaluate": cfg.evaluate.model_dump(mode="json"), "base": base_row, "result": row,
              "probe_answers": metrics["probes"].get("answers", []),
              "instruction_answers": (metrics.get("instructions") or {}).get("answers", [])}
    write_json(folder / f"{target.name}.json", result)
    return result
