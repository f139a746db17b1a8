"""A client for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, a proxy, ...).

Used by the LLM judge, the endpoint generation backend (`tunestack evaluate --model URL`), assess and the serve
stage's tests. What it adds to the `openai` package:

- **our own retry policy**, observable: 429, 5xx, dropped connections and timeouts are retried with exponential
  backoff and jitter, or after the server's `Retry-After`; every retry is counted by reason. The `openai` client's
  own retries are off (`max_retries=0`), or they would hide inside ours.
- **bounded concurrency**: at most `max_concurrency` requests in flight (a thread pool), and with
  `requests_per_minute` a rate limit shared by all of them (`RateLimiter`: requests start at least 60/rpm seconds
  apart, retries included).
- **a response cache on disk**, keyed by a content hash of (base_url, model, messages, decoding params), so nothing
  is paid for twice. Each answer is written (atomically) as it arrives, so a run that is killed keeps every answer it
  got, and its re-run asks only for the rest. Identical requests within one batch are sent once.
- **token and cost accounting** from each response's `usage` and the configured $ per million tokens, and the model
  id each answer came from as the endpoint reported it (`gpt-4o` answers as `gpt-4o-2024-08-06`).
- **tools**: a conversation in tunestack's form (`tunestack.tools`: the tool definitions on its first message, call
  arguments as objects) is sent as OpenAI's chat API takes it (`tools=`, arguments as JSON strings); a reply that
  calls tools is a `Completion` whose `text` is the turn's canonical text (`tools.answer_text`), what is scored, with
  the calls themselves in `tool_calls`. The tools are part of the cache key (they ride on the first message).

The API key is read from the environment variable the config names: when the client is built if it has no cache
(every answer must be asked for), else when the first answer is not in the cache, so stored answers stay readable
without a key after an endpoint is gone. It is never written anywhere (not in the cache key, not in a file). The
wire sits behind the small `Transport` protocol, so a test can swap in an in-memory fake; `OpenAITransport` is the
real one.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

from tunestack.errors import EndpointError, MissingDependencyError
from tunestack.rundir import content_hash, read_json, write_json
from tunestack.tools import answer_text, from_openai_calls, to_openai

log = logging.getLogger("tunestack")

Messages = list[dict]


@dataclass(frozen=True)
class EndpointSettings:
    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the key; None for a local server that wants none."""
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 1.0
    """First retry waits about this long; each later one twice as long, with jitter."""
    max_backoff_s: float = 60.0
    """No wait is longer, whatever the backoff or the server's Retry-After says."""
    price_input_per_m: float | None = None
    price_output_per_m: float | None = None
    cache_dir: Path | None = None
    """Where responses are cached; None: no cache."""
    requests_per_minute: float | None = None
    """At most this many requests start per minute, across all threads (retries count); None: no limit."""


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False
    logprobs: list[float | None] | None = None
    """Per-token log-probabilities, when the request asked for them (completions with `echo`: the prompt's too)."""
    model: str | None = None
    """The model id the endpoint says answered (its response's `model`), which may name a dated snapshot."""
    tool_calls: list[dict] | None = None
    """The calls a reply made, in tunestack's form (`tools.from_openai_calls`); `text` is then `answer_text` of the
    turn: each call in canonical form, as a call answer is scored."""
    content: str | None = None
    """With `tool_calls`: the reply's own text (without the calls)."""
    received_at: float | None = None
    """When the answer arrived (Unix time); kept in the cache, so a capture's date survives a re-run."""

    def turn(self) -> dict:
        """The reply as an assistant turn in tunestack's form."""
        if self.tool_calls:
            return {"role": "assistant", "content": self.content or "", "tool_calls": self.tool_calls}
        return {"role": "assistant", "content": self.text}


class Retryable(Exception):
    """A failure worth another try: HTTP 429 or 5xx, a dropped connection, a timeout."""

    def __init__(self, reason: str, kind: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.kind, self.retry_after = reason, kind, retry_after


class Transport(Protocol):
    """Sends one chat-completions request. Raises `Retryable` for transient failures, `EndpointError` otherwise."""

    def send(self, model: str, messages: Messages, params: dict) -> Completion: ...


class OpenAITransport:
    """The real wire: the `openai` package's client, its own retries off, one timeout per request. The client (and
    the API key) is made on first use."""

    def __init__(self, settings: EndpointSettings):
        try:
            import openai
        except ImportError:
            raise MissingDependencyError("openai", "judge") from None
        self._openai, self._settings, self._client, self._lock = openai, settings, None, threading.Lock()
        self.base_url = settings.base_url
        self.timeout_s = settings.timeout_s

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                s = self._settings
                self._client = self._openai.OpenAI(base_url=s.base_url, api_key=read_api_key(s.api_key_env),
                                                   timeout=s.timeout_s, max_retries=0)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def send(self, model: str, messages: Messages, params: dict) -> Completion:
        wire, tools = to_openai(messages)
        extra = {"tools": tools} if tools is not None else {}
        response = self.request(self.client.chat.completions.create, model=model, messages=wire, **extra, **params)
        if not response.choices:
            raise EndpointError(f"{self.base_url} returned no choices for model {model!r}")
        choice, usage = response.choices[0], response.usage
        content = choice.message.content or ""
        raw_calls = [c.model_dump() for c in choice.message.tool_calls or []]
        calls = from_openai_calls(raw_calls) if raw_calls else None
        text = answer_text({"role": "assistant", "content": content, "tool_calls": calls}) if calls else content
        return Completion(text=text, finish_reason=choice.finish_reason,
                          prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                          model=getattr(response, "model", None) or None, tool_calls=calls,
                          content=content if calls else None)

    def request(self, create: Callable, **kwargs):
        """One call of an `openai` client method, its failures mapped: `Retryable` or `EndpointError`."""
        openai, model = self._openai, kwargs.get("model")
        try:
            return create(**kwargs)
        except openai.APITimeoutError:
            raise Retryable(f"no answer within {self.timeout_s:g}s", "timeout") from None
        except openai.APIConnectionError as exc:
            raise Retryable(f"connection failed ({exc})", "connection") from None
        except openai.APIStatusError as exc:
            code = exc.status_code
            if code == 429 or code >= 500:
                raise Retryable(f"HTTP {code}", str(code), retry_after(exc.response.headers)) from None
            raise EndpointError(f"{self.base_url} answered HTTP {code} for model {model!r}: {exc.message}. "
                                f"{_status_hint(code)}") from None


def _status_hint(code: int) -> str:
    if code in (401, 403):
        return "Check the key in the environment variable named by api_key_env."
    if code == 404:
        return "Check base_url (it usually ends in /v1) and the model name."
    return "The request was refused as sent; this is not retried."


def read_api_key(env: str | None) -> str:
    """The key from the named environment variable. Servers that need none get a placeholder (the client wants
    one)."""
    if env is None:
        return "none"
    key = os.environ.get(env)
    if not key:
        raise EndpointError(f"the API key is read from the environment variable {env}, which is not set: "
                            f"`export {env}=...` (keys are never read from files), or set api_key_env to null "
                            "for a local server that needs no key")
    return key


def retry_after(headers) -> float | None:
    """Seconds to wait as the server asks: `retry-after-ms`, or `retry-after` in seconds or as an HTTP date.

    >>> retry_after({"retry-after": "7"}), retry_after({"retry-after-ms": "250"}), retry_after({})
    (7.0, 0.25, None)
    """
    from email.utils import parsedate_to_datetime

    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            pass
    value = headers.get("retry-after")
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time()) if value else None
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, settings: EndpointSettings, server_asked: float | None, rng: random.Random) -> float:
    """Wait before retry number `attempt` (0-based): what the server asked for, else exponential with jitter
    (between half and all of backoff_s * 2^attempt, so clients that failed together do not retry together)."""
    if server_asked is not None:
        return min(server_asked, settings.max_backoff_s)
    ceiling = min(settings.max_backoff_s, settings.backoff_s * 2**attempt)
    return ceiling * (0.5 + rng.random() / 2)


def request_key(settings: EndpointSettings, messages: Messages, params: dict) -> str:
    """Content hash of everything that decides the answer (and nothing secret)."""
    return content_hash({"base_url": settings.base_url.rstrip("/"), "model": settings.model,
                         "messages": messages, "params": params})


class RateLimiter:
    """At most `per_minute` starts a minute, shared by every thread: each `wait()` reserves the next free slot (at
    least 60/per_minute seconds after the one before) and sleeps until it comes. A minimum interval rather than a
    burst allowance, so a capture never opens with a burst the endpoint would answer with 429s.

    >>> now = [0.0]
    >>> limiter = RateLimiter(120, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    >>> [(limiter.wait(), now[0])[1] for _ in range(3)]
    [0.0, 0.5, 1.0]
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval, self._clock, self._sleep = 60.0 / per_minute, clock, sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            slot = now if self._next is None else max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


class ResponseCache:
    """One JSON file per response, `<dir>/<key[:2]>/<key>.json`, written atomically (a killed writer leaves at most
    a temporary file, never a half entry)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Completion | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return Completion(**{**read_json(path), "cached": True})
        except (ValueError, TypeError):  # a damaged entry is a miss, and is overwritten
            return None

    def put(self, key: str, completion: Completion) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {k: v for k, v in asdict(completion).items() if k != "cached"})


@dataclass
class Usage:
    """What the client did and what it cost. Cached answers cost nothing; their tokens are counted apart."""

    requests: int = 0
    """HTTP requests sent, retries included."""
    completions: int = 0
    cache_hits: int = 0
    retries: Counter = field(default_factory=Counter)
    """Retries by reason: '429', '500', ..., 'timeout', 'connection'."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    models: Counter = field(default_factory=Counter)
    """Answers by the model id the endpoint reported (cached answers too)."""
    first_answer_at: float | None = None
    last_answer_at: float | None = None
    """When the earliest and the latest answer used arrived (cached ones when they were first received)."""

    def saw(self, completion: Completion) -> None:
        """Count an answer's model id and arrival time (the caller holds the lock)."""
        if completion.model:
            self.models[completion.model] += 1
        at = completion.received_at
        if at is not None:
            self.first_answer_at = at if self.first_answer_at is None else min(self.first_answer_at, at)
            self.last_answer_at = at if self.last_answer_at is None else max(self.last_answer_at, at)

    def cost(self, settings: EndpointSettings, cached: bool = False) -> float | None:
        if settings.price_input_per_m is None or settings.price_output_per_m is None:
            return None
        prompt, completion = ((self.cached_prompt_tokens, self.cached_completion_tokens) if cached
                              else (self.prompt_tokens, self.completion_tokens))
        return (prompt * settings.price_input_per_m + completion * settings.price_output_per_m) / 1e6

    def summary(self, settings: EndpointSettings) -> dict:
        return {"requests": self.requests, "completions": self.completions, "cache_hits": self.cache_hits,
                "retries": sum(self.retries.values()), "retries_by_reason": dict(self.retries),
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": self.cost(settings),
                "cached_prompt_tokens": self.cached_prompt_tokens,
                "cached_completion_tokens": self.cached_completion_tokens,
                "cost_saved_by_cache_usd": self.cost(settings, cached=True),
                "models": dict(self.models), "first_answer_at": utc_iso(self.first_answer_at),
                "last_answer_at": utc_iso(self.last_answer_at)}


def utc_iso(at: float | None) -> str | None:
    """Unix time as UTC ISO 8601, to the second.

    >>> utc_iso(0.0), utc_iso(None)
    ('1970-01-01T00:00:00Z', None)
    """
    return None if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


class EndpointClient:
    """Chat completions with our retries, a bounded thread pool, a rate limit, the cache and the accounting."""

    def __init__(self, settings: EndpointSettings, transport: Transport | None = None,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.transport = transport if transport is not None else OpenAITransport(settings)
        self.cache = ResponseCache(settings.cache_dir) if settings.cache_dir else None
        if self.cache is None and transport is None:
            read_api_key(settings.api_key_env)  # every answer will be asked for: a missing key fails now
        self.usage = Usage()
        self.limiter = RateLimiter(settings.requests_per_minute, clock, sleep) if settings.requests_per_minute \
            else None
        # Unseeded by default: jitter exists so that separate clients do not retry in step.
        self._sleep, self._rng, self._lock = sleep, random.Random(seed), threading.Lock()

    def close(self) -> None:
        """Close the transport's connections (nothing to do when no request was sent)."""
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    def complete(self, messages: Messages, params: dict | None = None) -> Completion:
        return self.complete_many([messages], params)[0]

    def complete_many(self, batch: list[Messages], params: dict | None = None) -> list[Completion]:
        """One completion per conversation, in order. Cached ones are read, identical ones sent once, the rest sent
        at most `max_concurrency` at a time. The first request that cannot succeed stops the batch (what finished
        is cached, so a re-run pays only for the rest)."""
        params = dict(params or {})
        keys = [request_key(self.settings, messages, params) for messages in batch]
        done: dict[str, Completion] = {}
        todo: dict[str, Messages] = {}
        for key, messages in zip(keys, batch):
            if key in done or key in todo:
                continue
            hit = self.cache.get(key) if self.cache else None
            if hit is not None:
                done[key] = hit
            else:
                todo[key] = messages
        self._count_hits([done[k] for k in keys if k in done])
        done.update(self._send_all(todo, params))
        return [done[key] for key in keys]

    def _count_hits(self, hits: list[Completion]) -> None:
        with self._lock:
            self.usage.cache_hits += len(hits)
            self.usage.cached_prompt_tokens += sum(h.prompt_tokens for h in hits)
            self.usage.cached_completion_tokens += sum(h.completion_tokens for h in hits)
            for hit in hits:
                self.usage.saw(hit)

    def _send_all(self, todo: dict[str, Messages], params: dict) -> dict[str, Completion]:
        if not todo:
            return {}
        getattr(self.transport, "client", None)  # the wire (and the key) made now, not inside the first rate slot
        with ThreadPoolExecutor(max_workers=self.settings.max_concurrency, thread_name_prefix="endpoint") as pool:
            futures: dict[Future, str] = {pool.submit(self._send, key, m, params): key for key, m in todo.items()}
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in finished if f.exception() is not None]
            if failed:
                for future in futures:
                    future.cancel()
                raise failed[0].exception()  # type: ignore[misc]
        return {key: future.result() for future, key in futures.items()}

    def _send(self, key: str, messages: Messages, params: dict) -> Completion:
        settings = self.settings
        for attempt in range(settings.max_retries + 1):
            if self.limiter is not None:
                self.limiter.wait()
            with self._lock:
                self.usage.requests += 1
            try:
                completion = self.transport.send(settings.model, messages, params)
            except Retryable as exc:
                if attempt == settings.max_retries:
                    raise EndpointError(
                        f"{settings.base_url}: {exc.reason} on all {attempt + 1} attempts (model {settings.model!r})."
                        " Try again later, or raise max_retries or timeout_s"
                        + ("; the answers received so far are cached" if self.cache else "")
                    ) from None
                with self._lock:
                    self.usage.retries[exc.kind] += 1
                    delay = backoff_delay(attempt, settings, exc.retry_after, self._rng)
                log.info("[endpoint] %s; retry %d/%d in %.2fs", exc.reason, attempt + 1, settings.max_retries, delay)
                self._sleep(delay)
                continue
            completion = replace(completion, received_at=time.time())
            self._record(key, completion)
            return completion
        raise AssertionError("unreachable")

    def _record(self, key: str, completion: Completion) -> None:
        with self._lock:
            self.usage.completions += 1
            self.usage.prompt_tokens += completion.prompt_tokens
            self.usage.completion_tokens += completion.completion_tokens
            self.usage.saw(completion)
        if self.cache:
            self.cache.put(key, completion)

    def summary(self) -> dict:
        return self.usage.summary(self.settings)
