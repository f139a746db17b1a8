"""Config of `tunestack synth`: candidate training rows from a teacher model (`synth:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tunestack.config.base import Section


class SynthSection(Section):
    mode: Literal["write", "answer"] = "write"
    """`write`: the teacher writes new examples, shown `instruction` and a sample of seeds. `answer`: the teacher
    answers each seed's prompt (the conversation before its last assistant turn, tools included) and its reply, text
    or tool calls, becomes that row's answer: a model's answers captured as training rows (an old fine-tuned model
    as the teacher). `instruction` is not used; `count` caps the seeds answered."""
    base_url: str = "https://api.openai.com/v1"
    """The teacher's OpenAI-compatible chat-completions endpoint (OpenAI, a vLLM server, a proxy)."""
    model: str | None = None
    """The teacher model's name at that endpoint (required to run `synth`)."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable that holds the API key (never written anywhere); null for a local server."""
    instruction: str | None = None
    """What to write, in words: the task, the variety wanted, anything the seeds do not show. Sent to the teacher
    with the seed examples (required to run `synth` in mode `write`)."""
    seeds_path: str | None = None
    """JSONL of seed examples (the data formats `prepare` reads); unset: the run's training split, else
    `data.path`."""
    seeds_per_request: int = Field(4, ge=1, le=32)
    """Seed examples shown to the teacher in each request (a different sample each time)."""
    count: int = Field(100, ge=1, le=1_000_000)
    """Candidate rows to ask for (one per request)."""
    temperature: float = Field(0.9, ge=0, le=2)
    """Teacher sampling temperature; each request has its own seed, so a re-run reads the same answers from the
    cache."""
    max_tokens: int = Field(1024, ge=16)
    """Longest teacher reply."""
    max_requests: int | None = Field(None, ge=1)
    """Budget: requests sent at most (cache hits do not count); unset: `count` x 2."""
    max_cost_usd: float | None = Field(None, gt=0)
    """Budget: US$ spent at most, from the token prices below; generation stops before a request would pass it."""
    price_input_per_m: float | None = Field(None, ge=0)
    """US$ per million input tokens (needed for `max_cost_usd`)."""
    price_output_per_m: float | None = Field(None, ge=0)
    """US$ per million output tokens."""
    max_concurrency: int = Field(4, ge=1, le=256)
    """Requests in flight at once."""
    timeout_s: float = Field(120, gt=0)
    """Per-request timeout; a request that times out is retried."""
    max_retries: int = Field(5, ge=0, le=20)
    """Retries of one request after HTTP 429 or 5xx, a connection error or a timeout."""
    requests_per_minute: float | None = Field(None, gt=0)
    """Rate limit: requests start at least 60/this seconds apart, across all concurrent ones; unset: no limit."""
    cache: bool = True
    """Keep replies in the endpoint cache, so a re-run pays only for what it has not asked before."""

    @model_validator(mode="after")
    def _prices_for_budget(self) -> SynthSection:
        if self.max_cost_usd is not None and (self.price_input_per_m is None or self.price_output_per_m is None):
            raise ValueError("synth.max_cost_usd needs synth.price_input_per_m and synth.price_output_per_m to count "
                             "the spend")
        return self
