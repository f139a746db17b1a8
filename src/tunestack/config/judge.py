"""Config of the LLM judge and its calibration (`judge:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tunestack.config.base import Section


class JudgeSection(Section):
    enabled: bool = False
    """Score answers with an LLM judge too (rubrics `correctness` and `quality`, 1-5). Its scores count in selection
    only once `tunestack judge calibrate` shows its agreement with human scores clears `agreement_threshold`."""
    base_url: str = "https://api.openai.com/v1"
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, a llama.cpp server, a proxy)."""
    model: str | None = None
    """The judge model's name at that endpoint."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable that holds the API key (the key itself never goes in a file); null for a local server
    that needs none."""
    max_concurrency: int = Field(8, ge=1, le=256)
    """Requests in flight at once."""
    timeout_s: float = Field(60, gt=0)
    """Per-request timeout; a request that times out is retried."""
    max_retries: int = Field(5, ge=0, le=20)
    """Retries of one request after HTTP 429 or 5xx, a connection error or a timeout: exponential backoff with jitter,
    or the wait the server's Retry-After asks for."""
    backoff_s: float = Field(1.0, ge=0)
    """The first retry waits about this long, each later one twice as long (at most 60 s)."""
    max_tokens: int = Field(256, ge=16)
    """Longest judge reply (it is asked for one line of JSON); decoding is greedy, temperature 0."""
    price_input_per_m: float | None = Field(None, ge=0)
    """US$ per million input tokens, for the cost report; unset: cost is not reported."""
    price_output_per_m: float | None = Field(None, ge=0)
    """US$ per million output tokens."""
    agreement_metric: Literal["spearman", "kendall", "pearson", "kappa"] = "spearman"
    """The judge-human agreement statistic that decides whether the judge counts (kappa: quadratic-weighted)."""
    agreement_threshold: float = Field(0.6, ge=-1, le=1)
    """The judge counts in selection only when its agreement reaches this."""
    agreement_on: Literal["lower_bound", "estimate"] = "lower_bound"
    """Compare the threshold with the lower bound of the agreement's bootstrap 95% interval (agreement shown, not
    just likely), or with the point estimate."""
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)
    """Bootstrap resamples for the 95% intervals (seeded with `run.seed`)."""
    cache: bool = True
    """Cache responses on disk, keyed by a content hash of (base_url, model, messages, decoding parameters), so no
    request is paid for twice."""
    cache_dir: str | None = None
    """Response cache folder; default: `judge/` in the tunestack cache (`$TUNESTACK_CACHE`, `~/.cache/tunestack`)."""

    @model_validator(mode="after")
    def _model_and_prices(self) -> JudgeSection:
        if self.enabled and not self.model:
            raise ValueError("enabled is true but model is not set: set judge.model to the judge's model name")
        if (self.price_input_per_m is None) != (self.price_output_per_m is None):
            raise ValueError("set both judge.price_input_per_m and judge.price_output_per_m, or neither")
        return self
