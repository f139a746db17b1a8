"""Serving under load: the built-in server against a per-request transformers `pipeline` server, in one run, on
the same model, the same prompts and the same greedy decoding, both on 127.0.0.1 and both driven by the same
clients.

- builtin: `tunestack serve`'s server (`tunestack.serve.prepare_server`: parity check, dynamic batching on the
  evaluate stage's greedy loop), serving the demo run's export (`make demo` first; `--model` another folder).
- vllm: where `make vllm` has been run, vLLM's server started by tunestack on the same folder
  (`tunestack.serve.vllm`), `--max-num-seqs` the number of clients; its start-up is not timed.
- pipeline: the same folder, loaded the same way in the same dtype, behind a starlette app whose handler calls
  `transformers.pipeline("text-generation")` once per request with the chat messages (greedy, KV cache), one request
  at a time (a lock: the model is not safe to share between threads). This is the server the issue names as the
  baseline: what serving a model with transformers looks like before anyone batches.

Clients: `--clients` threads (64), each sending `--requests` chat requests (2) one after another, prompts taken in
turn from the run's eval split, `max_tokens` `--max-tokens` (48), through httpx with a 300 s timeout. Reported per
server: completion tokens per second of wall time, p50 and p99 latency, errors (any status but 200, and requests
that got no answer), and the ratios builtin / pipeline and vllm / pipeline (the issue's bars: 3x and 10x).
Everything measured is written to `<run>/serve/load.json` (`tunestack.serve.load`: one measurement per weight
width, so a second run with `--model` the 4-bit folder adds the other), where `tunestack cost` reads the fastest
clean server's prompt + completion tokens/s as serving throughput (with AWQ for 4-bit weights, without for 16-bit).
Then the overload phase: the built-in server restarted with
`--overload-queue` (8) places in its queue and the same clients at once: every request must get 200 or 429 with
Retry-After, never a 5xx or no answer.

    python bench/serve_load.py [--clients 64] [--requests 2] [--max-tokens 48] [--overload-queue 8]
                               [--max-batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]


def pipeline_app(model, tokenizer, stops: list[int]):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # it warns per call that max_new_tokens overrides the config's max_length
    generate = pipeline("text-generation", model=model, tokenizer=tokenizer)
    lock = threading.Lock()

    def chat(request):  # sync: starlette runs it in its thread pool
        import json

        import anyio.from_thread

        body = json.loads(anyio.from_thread.run(request.body))
        with lock:
            out = generate(body["messages"], max_new_tokens=body.get("max_tokens", 48), do_sample=False,
                           eos_token_id=stops, pad_token_id=tokenizer.pad_token_id, return_full_text=False)
        text = out[0]["generated_text"]
        text = text[-1]["content"] if isinstance(text, list) else text
        n = len(tokenizer(text, add_special_tokens=False).input_ids)
        return JSONResponse({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 0, "completion_tokens": n, "total_tokens": n}})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def drive(base_url: str, model: str, prompts: list[list[dict]], clients: int, requests: int, max_tokens: int):
    import httpx

    results = []
    lock = threading.Lock()

    def client(k: int):
        with httpx.Client(timeout=300) as http:
            for j in range(requests):
                messages = prompts[(k * requests + j) % len(prompts)]
                started = time.monotonic()
                try:
                    reply = http.post(base_url + "/chat/completions", json={
                        "model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0})
                    status = reply.status_code
                    tokens = reply.json()["usage"]["completion_tokens"] if status == 200 else 0
                    prompt_tokens = reply.json()["usage"].get("prompt_tokens", 0) if status == 200 else 0
                    after = reply.headers.get("retry-after")
                    text = reply.json()["choices"][0]["message"]["content"] if status == 200 else None
                except httpx.HTTPError as exc:
                    status, tokens, after, text = f"no answer ({type(exc).__name__})", 0, None, None
                    prompt_tokens = 0
                with lock:
                    results.append({"client": k, "request": j, "status": status, "tokens": tokens,
                                    "prompt_tokens": prompt_tokens,
                                    "seconds": time.monotonic() - started, "retry_after": after, "text": text})

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return results, time.monotonic() - started


def summary(name: str, results: list[dict], wall: float) -> dict:
    ok = [r for r in results if r["status"] == 200]
    latencies = sorted(r["seconds"] for r in ok)
    tokens = sum(r["tokens"] for r in ok)
    prompt_tokens = sum(r.get("prompt_tokens", 0) for r in ok)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan")
    out = {"name": name, "requests": len(results), "ok": len(ok), "errors": len(results) - len(ok),
           "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall if wall else 0.0,
           "prompt_tokens": prompt_tokens,
           "total_tokens_per_s": (tokens + prompt_tokens) / wall if wall else 0.0,
           "p50_s": statistics.median(latencies) if latencies else float("nan"), "p99_s": p99}
    print(f"{name:<9} {out['requests']:>5} requests, {out['ok']:>5} ok, {out['errors']:>3} errors, "
          f"{tokens:>6} tokens in {wall:6.1f} s = {out['tokens_per_s']:7.1f} tokens/s, "
          f"p50 {out['p50_s']:.2f} s, p99 {out['p99_s']:.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=2, help="requests per client")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--overload-queue", type=int, default=8)
    parser.add_argument("--max-batch-size", type=int, default=32, help="serve.max_batch_size of the built-in server")
    parser.add_argument("--model", help="the folder all three servers serve (default: the run's export, which "
                                        "vLLM's CPU kernels can run; they take 4-bit quantized weights only)")
    args = parser.parse_args()

    import torch

    from tunestack.config import load_config
    from tunestack.rundir import RunDir
    from tunestack.serve import prepare_server
    from tunestack.serve.server import BackgroundServer
    from tunestack.serve.stage import eval_prompts

    cfg = load_config(args.config, ["serve.max_queue=4096", f"serve.max_batch_size={args.max_batch_size}"])
    run = RunDir(ROOT / cfg.run.runs_dir / cfg.run.name)
    if run.manifest("export") is None:
        raise SystemExit(f"{run.root} has no export: run `make demo` first")
    torch.set_num_threads(cfg.run.threads or os.cpu_count() or 1)
    prompts = eval_prompts(run, 100)
    print(f"{args.clients} clients x {args.requests} requests, max_tokens {args.max_tokens}, "
          f"{torch.get_num_threads()} threads")

    model = args.model or run.manifest("export")["path"]
    app, batcher, served, _ = prepare_server(cfg, run, model)
    generator = batcher.generator
    print(f"serving {served.name} ({served.kind}) in {generator.model.dtype}")
    with BackgroundServer(app) as server:
        drive(server.base_url, served.name, prompts[:4], 4, 1, args.max_tokens)  # warm-up
        results, wall = drive(server.base_url, served.name, prompts, args.clients, args.requests, args.max_tokens)
    batcher.stop()
    builtin = summary("builtin", results, wall)

    with BackgroundServer(pipeline_app(generator.model, generator.tokenizer, generator.stops)) as server:
        drive(server.base_url, served.name, prompts[:2], 2, 1, args.max_tokens)  # warm-up
        base_results, base_wall = drive(server.base_url, served.name, prompts, args.clients, args.requests,
                                        args.max_tokens)
    baseline = summary("pipeline", base_results, base_wall)
    same = sum(a["text"] == b["text"] for a, b in zip(sorted(results, key=lambda r: (r["client"], r["request"])),
                                                      sorted(base_results, key=lambda r: (r["client"], r["request"])))
               if a["text"] is not None)
    print(f"builtin / pipeline: {builtin['tokens_per_s'] / max(baseline['tokens_per_s'], 1e-9):.1f}x tokens/s; "
          f"identical answers {same}/{len(results)}")
    from tunestack.models import resolve_model
    from tunestack.serve.load import best_throughput, record, weight_width

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    measured = {"clients": args.clients, "requests": args.requests, "max_tokens": args.max_tokens,
                "model": served.name, "kind": served.kind, "source": served.source,
                "weights": weight_width(resolve_model(served.source)), "device": device,
                "dtype": str(generator.model.dtype).removeprefix("torch."),
                "threads": torch.get_num_threads(), "builtin": builtin, "pipeline": baseline}

    from tunestack.vllm import find_vllm

    if find_vllm() and served.kind != "checkpoint":
        from tunestack.serve.stage import vllm_command
        from tunestack.vllm import VllmServer, free_port

        wide = load_config(args.config, [f"serve.max_batch_size={args.clients}"])
        started = time.monotonic()
        with VllmServer(vllm_command(wide, served, "127.0.0.1", free_port()), run.stage("serve") / "vllm-bench.log") as vllm:
            print(f"vLLM up in {time.monotonic() - started:.0f} s")
            drive(vllm.base_url, served.name, prompts[:4], 4, 1, args.max_tokens)  # warm-up
            v_results, v_wall = drive(vllm.base_url, served.name, prompts, args.clients, args.requests,
                                      args.max_tokens)
        fast = summary("vllm", v_results, v_wall)
        same = sum(a["text"] == b["text"] for a, b in zip(
            sorted(v_results, key=lambda r: (r["client"], r["request"])),
            sorted(results, key=lambda r: (r["client"], r["request"]))) if a["text"] is not None)
        print(f"vllm / pipeline: {fast['tokens_per_s'] / max(baseline['tokens_per_s'], 1e-9):.1f}x tokens/s; "
              f"answers identical to the built-in server's {same}/{len(v_results)}")
        measured["vllm"] = fast
    else:
        print("vLLM is not installed (make vllm): its phase is skipped")

    overload_cfg = load_config(args.config, [f"serve.max_queue={args.overload_queue}",
                                             f"serve.max_batch_size={args.max_batch_size}"])
    app, batcher, served, _ = prepare_server(overload_cfg, run, model)
    with BackgroundServer(app) as server:
        results, wall = drive(server.base_url, served.name, prompts, args.clients, args.requests, args.max_tokens)
    batcher.stop()
    statuses: dict = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    throttled = [r for r in results if r["status"] == 429]
    print(f"overload (queue {args.overload_queue}): statuses {statuses}; every 429 with Retry-After: "
          f"{all(r['retry_after'] for r in throttled)}; no 5xx and none unanswered: "
          f"{set(statuses) <= {200, 429}}")
    measured["overload"] = {"queue": args.overload_queue, "statuses": {str(k): v for k, v in statuses.items()}}
    record(run.stage("serve") / "load.json", measured)
    best = best_throughput(measured)
    if best:
        print(f"for `tunestack cost`: {best[1]:,.0f} prompt + completion tokens/s ({best[0]}, {measured['weights']} "
              f"weights, {device}); it prices them when cost.serving.gpu names this hardware")
    print(f"written: {run.stage('serve') / 'load.json'}")


if __name__ == "__main__":
    main()
