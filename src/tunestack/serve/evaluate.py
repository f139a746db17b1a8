"""`tunestack serve CONFIG --evaluate`: the served endpoint evaluated with the run's own suite, against offline
evaluation of the same weights.

The server is started on 127.0.0.1 (a free port) exactly as `tunestack serve` starts it, parity check included; the
eval split and the probes go through the endpoint (the shared client, `tunestack evaluate --model URL`'s code: the
chat API, so the server's own chat template renders every prompt), and quartz is scored through the same server's
`/v1/completions` with `echo` and `logprobs` (`evaluate.endpoint.score_with_completions`); then the same loaded
model is evaluated offline by the evaluate stage's local backend. What is compared:

- each eval answer, served against offline (the share of identical answers, and the first that differ);
- task accuracy, format compliance, the probes' pass rate and quartz accuracy, with the 95% interval of offline minus served from
  a paired bootstrap over the same items (`tunestack.stats.paired_difference`; a task metric with parts, such as
  per-field accuracy, is resampled as the mean of its parts' means). A drop whose interval lies wholly above zero
  is beyond noise: the stage fails, after writing everything, with the differing answers.

Written to `<run>/serve/served.json` (and the served answers to `served.outputs.jsonl`); `results.json` and
`report.md` carry it as the `served` row.
"""

from __future__ import annotations

import logging
from tunestack.config import Config
from tunestack.errors import StageError
from tunestack.rundir import RunDir, write_json
from tunestack.tables import SUITE_FIGURES

log = logging.getLogger("tunestack")

COMPARED = ("task_accuracy", "format_compliance", "choice_score", "probe_pass_rate", "quartz_accuracy", "instruction_pass_rate",
            "lm_eval_accuracy")
CONFIGURED = ("lm_eval_accuracy",)
"""Compared only where the run configured the suite (`evaluate.retention.lm_eval.tasks`)."""


def paired_drop(offline: dict, served: dict, key: str, draws: int = 2000) -> list[float] | None:
    """95% interval of offline minus served for one figure, resampling the same items for both; None where the
    per-item scores are missing or do not pair up."""
    from tunestack.stats import paired_difference

    a, b = offline.get("per_example") or {}, served.get("per_example") or {}
    if key in SUITE_FIGURES:
        suite = SUITE_FIGURES[key][0]
        x, y = a.get(suite), b.get(suite)
    elif key == "format_compliance":
        x, y = a.get("format"), b.get("format")
    else:
        metric = next(iter(a.get("metrics") or {}), None)
        x, y = (a.get("metrics") or {}).get(metric), (b.get("metrics") or {}).get(metric)
    return paired_difference(x, y, draws)


def compare(offline: dict, served: dict) -> dict:
    """Each compared figure, served and offline, with the interval of the drop and whether it is beyond noise."""
    comparison = {}
    for key in COMPARED:
        if key in CONFIGURED and not any((raw.get(SUITE_FIGURES[key][0]) or {}).get("n") for raw in (offline, served)):
            continue  # a suite that runs only where configured, and was not
        drop = paired_drop(offline, served, key)
        comparison[key] = {"served": figure(served, key), "offline": figure(offline, key), "drop_ci95": drop,
                           "beyond_noise": bool(drop and drop[0] > 0)}
    return comparison


def fail_if_worse(body: dict, differing: list[dict], path) -> None:
    """Stop the stage (after everything is written) where a compared figure dropped beyond noise."""
    worse = [k for k, c in body["comparison"].items() if c["beyond_noise"]]
    if worse:
        shown = "\n".join(f"  line {d['line']}: served {d['served']!r}\n           offline {d['offline']!r}"
                          for d in differing[:5])
        raise StageError(f"serve: the served model is worse than offline evaluation of the same weights beyond "
                         f"noise on {', '.join(worse)} ({body['identical']}/{body['compared']} answers identical). "
                         f"First differing answers:\n{shown}\nDetails: {path}")


def figure(raw: dict, key: str) -> float | None:
    if key in SUITE_FIGURES:
        suite, field = SUITE_FIGURES[key]
        return (raw.get(suite) or {}).get(field)
    return raw.get(key)


def evaluate_served(cfg: Config, run: RunDir, model: str | None = None) -> dict:
    from tunestack.rundir import write_jsonl
    from tunestack.evaluate.core import BASE_ENTRY, Suites, evaluate_model, relative_rows
    from tunestack.evaluate.standalone import Models, Target, base_metrics, evaluate_target
    from tunestack.serve.server import BackgroundServer
    from tunestack.serve.stage import (api_key, backend, load_served, prepare_server, vllm_command, vllm_parity,
                                       what_to_serve)
    from tunestack.vllm import VllmServer, free_port

    served = what_to_serve(cfg, run, model)
    if served.kind == "adapters":
        raise StageError("serve --evaluate compares one served model with its offline evaluation: give one --model "
                         "(each adapter in turn); several adapters are served together without --evaluate")
    suites = Suites(cfg, run)
    models = Models(cfg)
    base = base_metrics(cfg, run, suites, models)
    kind = backend(cfg, served, run)
    out = run.stage("serve")
    requests_log = logging.getLogger("tunestack.serve")
    level = requests_log.level
    requests_log.setLevel(logging.WARNING)  # one line per request is for a server's operator, not this report

    def through(base_url: str, name: str):
        endpoint = cfg.evaluate.endpoint.model_copy(update={
            "model": name, "api": "chat", "score_with_completions": True, "api_key_env": cfg.serve.api_key_env,
            "cache": False,
            "max_concurrency": max(cfg.serve.max_batch_size, 1), "timeout_s": cfg.serve.request_timeout_s + 10})
        served_cfg = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"endpoint": endpoint})})
        log.info("[serve] evaluating %s through %s (%s)", name, base_url, kind)
        target = Target("endpoint", base_url, "served", base_url=base_url, model=name)
        return evaluate_target(served_cfg, run, suites, target, models)[:2]

    command = vllm_command(cfg, served, "127.0.0.1", free_port()) if kind == "vllm" else None
    try:
        if kind == "vllm":
            with VllmServer(command, out / "vllm.log", api_key(cfg)) as server:
                parity = vllm_parity(cfg, run, server, served)
                raw, records = through(server.base_url, served.name)
            loaded, tokenizer = load_served(cfg, served)
        else:
            app, batcher, served, parity = prepare_server(cfg, run, model, api_key(cfg))
            try:
                with BackgroundServer(app) as server:
                    raw, records = through(server.base_url, served.name)
            finally:
                batcher.stop()
            loaded, tokenizer = batcher.generator.model, batcher.generator.tokenizer
    finally:
        requests_log.setLevel(level)
    offline, offline_records = evaluate_model(cfg, suites, loaded, tokenizer, "offline", out / ".offline.vllm")
    base_row, served_row, offline_row = relative_rows(
        [{**BASE_ENTRY, **base}, {**raw, "name": "served", "kind": "served", "step": None},
         {**offline, "name": "offline", "kind": "offline", "step": None}], cfg.evaluate.retention.weights)
    pairs = list(zip(records, offline_records))
    differing = [{"line": a["line"], "served": a["prediction"], "offline": b["prediction"]}
                 for a, b in pairs if a["prediction"] != b["prediction"]]
    comparison = compare(offline, raw)
    body = {"model": served.name, "kind": served.kind, "source": served.source, "parity": parity,
            "backend": kind, "vllm_options": command[3:] if command else None,
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "identical": len(pairs) - len(differing), "compared": len(pairs),
            "agreement": round((len(pairs) - len(differing)) / max(1, len(pairs)), 4),
            "differing": differing[:20], "comparison": comparison, "usage": raw.get("usage"),
            "row": {**{k: v for k, v in served_row.items() if k not in ("per_example", "usage")},
                    "name": f"{served.name} (served)"},
            "offline_row": {k: v for k, v in offline_row.items() if k != "per_example"},
            "quartz_skipped": (raw.get("quartz") or {}).get("skipped")}
    write_jsonl(out / "served.outputs.jsonl", records)
    write_json(out / "served.json", body)
    fail_if_worse(body, differing, out / "served.json")
    return body
