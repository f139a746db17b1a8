"""The deploy recipe `tunestack serve CONFIG --print` writes: the exact vLLM command line as a shell script, and a
compose file for one replica."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path


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
