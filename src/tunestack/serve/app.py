"""The built-in OpenAI-compatible server: a starlette ASGI app over the dynamic batcher.

Routes: `GET /health`, `GET /metrics` (Prometheus), `GET /v1/models`, `POST /v1/chat/completions` and
`POST /v1/completions`, both streaming (server-sent events) or not; completions also with `echo` and `logprobs` (the
prompt's log-probabilities, from one scoring pass of the evaluate stage's own `LocalGenerator`). With LoRA adapters
(`tunestack.serve.adapters`) every adapter and the base are listed, and a request's `model` picks one. Every failure a client can cause is a 4xx with
an OpenAI-style error body naming the field: malformed JSON, a body over `serve.max_body_bytes` (413), an unknown
model (404), `max_tokens` or `temperature` out of range, a prompt over `max_prompt_tokens`; a full queue is 429 with
Retry-After, a request not answered within `serve.request_timeout_s` 503 with Retry-After. With an API key, a
request without it (or with another) gets 401; keys are compared in constant time, `/health` needs none.

Each request is logged as one line (method, path, status, milliseconds, prompt and answer token counts), without
its content unless `serve.log_content`.

A chat prompt is rendered by `tunestack.chat.render_prompt`, the function training and evaluation render with, so
the served model sees the token ids it was trained on. Greedy answers are the evaluate stage's (`batcher`); the
answer text is the evaluate stage's too (`tunestack.evaluate.backends.stopped`: decoded without the stop token and
stripped); a stream's deltas add up to the same text.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass

from tunestack.chat import render_prompt
from tunestack.evaluate.backends import Sampling
from tunestack.serve.batcher import Batcher, Job, QueueFull, ShuttingDown
from tunestack.serve.tool_calls import conversation, prefix_for, reply_calls, stream_deltas
from tunestack.serve.protocol import (ApiError, Request, chat_chunk, chat_response, completion_chunk,
                                      completion_response, logprobs_body, new_id, parse_chat, parse_completion,
                                      usage)

log = logging.getLogger("tunestack.serve")

__all__ = ["Limits", "Server", "build_app"]


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1_000_000
    max_prompt_tokens: int = 2048
    max_tokens: int = 512
    default_max_tokens: int = 256
    request_timeout_s: float = 120.0
    log_content: bool = False


class Metrics:
    def __init__(self, batcher: Batcher):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("tunestack_requests", "Requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("tunestack_request_seconds", "Seconds from request to last byte", ["route"],
                                 registry=self.registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128))
        self.prompt_tokens = Counter("tunestack_prompt_tokens", "Prompt tokens of answered requests",
                                     registry=self.registry)
        self.completion_tokens = Counter("tunestack_completion_tokens", "Tokens generated", registry=self.registry)
        self.batch_size = Histogram("tunestack_batch_size", "Requests decoded together", registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.batch_seconds = Histogram("tunestack_batch_seconds", "Seconds per batch", registry=self.registry)
        queued = Gauge("tunestack_queue_depth", "Requests waiting for a batch", registry=self.registry)
        queued.set_function(batcher.depth)

    def batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)


class Detokenizer:
    """Text deltas from token ids as they come: the whole answer decoded again each time (ids are few), a partial
    UTF-8 character held back, and with `strip` leading and trailing whitespace held back, so the deltas add up to
    the stripped answer; stop strings end the text before them."""

    def __init__(self, tokenizer, stops: list[int], stop_strings: list[str], strip: bool):
        self.tokenizer, self.stops, self.stop_strings, self.strip = tokenizer, set(stops), stop_strings, strip
        self.ids: list[int] = []
        self.sent = 0
        self.stopped = False

    def _text(self) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        return text.lstrip() if self.strip else text

    def push(self, token: int) -> str:
        if self.stopped or token in self.stops:
            return ""
        self.ids.append(token)
        text = self._text()
        for stop in self.stop_strings:
            at = text.find(stop)
            if at >= 0:
                self.stopped = True
                delta = text[self.sent: at] if at > self.sent else ""
                self.sent = max(self.sent, at)
                return delta
        safe = len(text.rstrip()) if self.strip else len(text)
        if text.endswith("\ufffd"):
            safe = min(safe, len(text) - 1)
        hold = max((len(s) - 1 for s in self.stop_strings), default=0)
        safe = max(self.sent, min(safe, len(text) - hold))
        delta, self.sent = text[self.sent: safe], safe
        return delta

    def finish(self) -> str:
        if self.stopped:
            return ""
        text = self._text()
        text = text.rstrip() if self.strip else text
        delta, self.sent = text[self.sent:], len(text)
        return delta


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    at = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:at], True) if at >= 0 else (text, False)


def error_response(exc: ApiError):
    from starlette.responses import JSONResponse

    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def read_json(request, limit: int):
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"the request body is {length} bytes; this server takes at most {limit} "
                            "(serve.max_body_bytes)", code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body is over {limit} bytes (serve.max_body_bytes)",
                           code="body_too_large")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None


class Server:
    """What the route handlers share, kept on `app.state.server`: the generator and its tokenizer, the batcher, the
    limits, the metrics, the API key and the served names (each mapped to its adapter; None: the base)."""

    def __init__(self, name: str | dict[str, str | None], generator, batcher: Batcher, limits: Limits,
                 api_key: str | None, default_temperature: float):
        self.generator, self.tokenizer, self.batcher, self.limits = generator, generator.tokenizer, batcher, limits
        self.api_key, self.default_temperature = api_key, default_temperature
        self.metrics = Metrics(batcher)
        batcher.on_batch = self.metrics.batch
        self.adapters = name if isinstance(name, dict) else {name: None}
        self.served = list(self.adapters)
        self.base = next((n for n, a in self.adapters.items() if a is None), None)

    def authorised(self, request) -> bool:
        if self.api_key is None:
            return True
        sent = request.headers.get("authorization", "")
        token = sent[7:] if sent[:7].lower() == "bearer " else ""
        return hmac.compare_digest(token.encode(), self.api_key.encode())

    def record(self, request, route: str, status: int, started: float, n_prompt: int = 0, n_answer: int = 0,
               content: str | None = None) -> None:
        seconds = time.monotonic() - started
        self.metrics.requests.labels(route, str(status)).inc()
        self.metrics.latency.labels(route).observe(seconds)
        line = f"{request.method} {request.url.path} {status} {seconds * 1000:.0f} ms prompt={n_prompt} " \
               f"answer={n_answer}"
        log.info(line + (f" content={content!r}" if self.limits.log_content and content is not None else ""))

    async def parsed(self, request, parse) -> Request:
        body = await read_json(request, self.limits.max_body_bytes)
        if isinstance(body, dict) and "temperature" not in body:
            body = {**body, "temperature": self.default_temperature}
        return parse(body, self.served, self.limits.default_max_tokens, self.limits.max_tokens)

    def prompt_of(self, req: Request) -> list[int]:
        if req.messages is not None:
            messages = conversation(req.messages, req.tools, req.tool_choice)
            req.prefix = prefix_for(self.tokenizer, messages, req.tool_choice) if req.reads_calls else ""
            ids = render_prompt(self.tokenizer, messages)
            return ids + (self.tokenizer.encode(req.prefix, add_special_tokens=False) if req.prefix else [])
        if isinstance(req.prompt, str):
            return self.tokenizer(req.prompt).input_ids
        vocabulary = len(self.tokenizer)
        if max(req.prompt) >= vocabulary:
            raise ApiError(400, f"'prompt' holds token id {max(req.prompt)}; the vocabulary has {vocabulary}",
                           "prompt")
        return list(req.prompt)

    def job_for(self, req: Request, ids: list[int], on_token=None) -> Job:
        if len(ids) > self.limits.max_prompt_tokens:
            raise ApiError(400, f"the prompt is {len(ids)} tokens; this server takes at most "
                                f"{self.limits.max_prompt_tokens} (serve.max_prompt_tokens)", "messages",
                           "context_length_exceeded")
        sampling = None if req.temperature == 0 else Sampling(req.temperature, req.top_p, req.seed)
        return Job(prompt_ids=ids, max_tokens=req.max_tokens, sampling=sampling, on_token=on_token,
                   adapter=self.adapters[req.model], logprobs=req.logprobs)

    def submit(self, job: Job):
        try:
            return self.batcher.submit(job)
        except QueueFull as exc:
            raise ApiError(429, f"the server is busy ({self.batcher.depth()} requests queued); retry after "
                                f"{exc.retry_after} s", code="queue_full", kind="rate_limit_error",
                           headers={"Retry-After": str(exc.retry_after)}) from None
        except ShuttingDown:
            raise ApiError(503, "the server is shutting down", kind="server_error",
                           headers={"Retry-After": "5"}) from None

    async def answer(self, job: Job):
        """The job's generation, queued and awaited; 503 (and the job cancelled) past `serve.request_timeout_s`."""
        future = self.submit(job)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.limits.request_timeout_s)
        except asyncio.TimeoutError:
            job.cancelled = True
            raise ApiError(503, f"no answer within {self.limits.request_timeout_s:.0f} s (serve.request_timeout_s)",
                           kind="server_error", code="timeout", headers={"Retry-After": "5"}) from None

    def logprobs_of(self, job: Job, ids: list[int], generation, echo: bool) -> dict | None:
        if job.scores is None:
            return None
        picked, tops = job.scores
        shown = [k for k in range(len(ids), len(picked))
                 if generation.token_ids[k - len(ids)] not in self.generator.stops]
        shown = (list(range(len(ids))) if echo else []) + shown
        seq = ids + list(generation.token_ids)
        tokens = [self.tokenizer.decode([seq[k]]) for k in shown]
        top = [None if tops[k] is None else {self.tokenizer.decode([t]): v for t, v in tops[k].items()}
               for k in shown]
        return logprobs_body(tokens, [picked[k] for k in shown], top if job.logprobs else [None] * len(shown))


def refused():
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": "a valid API key is required (Authorization: Bearer KEY)",
                                   "type": "authentication_error", "param": None, "code": "invalid_api_key"}},
                        status_code=401)


async def generate(request, route: str, parse, chat: bool):
    """A chat or completions request answered: authorised, parsed, checked, queued, then answered whole or
    streamed; a client's failure is its 4xx."""
    server: Server = request.app.state.server
    started = time.monotonic()
    if not server.authorised(request):
        server.record(request, route, 401, started)
        return refused()
    try:
        req = await server.parsed(request, parse)
        ids = server.prompt_of(req)
        if req.stream:
            return stream(server, request, route, req, ids, chat, started)
        job = server.job_for(req, ids)
        generation = await server.answer(job)
    except ApiError as exc:
        server.record(request, route, exc.status, started)
        return error_response(exc)
    return whole(server, request, route, req, ids, job, generation, chat, started)


def whole(server: Server, request, route: str, req: Request, ids: list[int], job: Job, generation, chat: bool,
          started: float):
    """The non-streamed answer: the text cut at a stop string, the usage counted and the request logged."""
    from starlette.responses import JSONResponse

    n_answer = len(generation.token_ids)
    if chat:
        text = generation.text
    else:
        text = server.tokenizer.decode([t for t in generation.token_ids if t not in server.generator.stops],
                                       skip_special_tokens=True)
    text, hit = cut_at_stop(text, req.stop)
    finish = "stop" if generation.ended_with_eos or hit else "length"
    server.metrics.prompt_tokens.inc(len(ids))
    server.metrics.completion_tokens.inc(n_answer)
    server.record(request, route, 200, started, len(ids), n_answer, text)
    rid = new_id("chatcmpl" if chat else "cmpl")
    if chat:
        calls = reply_calls(req.prefix + text) if req.reads_calls else None
        return JSONResponse(chat_response(rid, req.model, req.prefix + text, finish, len(ids), n_answer, calls))
    echoed = (req.prompt if isinstance(req.prompt, str) else server.tokenizer.decode(ids)) if req.echo else ""
    return JSONResponse(completion_response(rid, req.model, echoed + text, finish, len(ids), n_answer,
                                            server.logprobs_of(job, ids, generation, req.echo)))


def event(payload: dict) -> str:
    """One server-sent event."""
    return f"data: {json.dumps(payload)}\n\n"


def stream(server: Server, request, route: str, req: Request, ids: list[int], chat: bool, started: float):
    """The streamed answer: the job queued now (so a full queue is still a 429), its tokens turned into text
    deltas as the batcher hands them over."""
    from starlette.responses import StreamingResponse

    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue = asyncio.Queue()
    job = server.job_for(req, ids, on_token=lambda t: loop.call_soon_threadsafe(tokens.put_nowait, t))
    future = server.submit(job)
    future.add_done_callback(lambda f: loop.call_soon_threadsafe(tokens.put_nowait, None))
    rid = new_id("chatcmpl" if chat else "cmpl")
    text = Detokenizer(server.tokenizer, server.generator.stops, req.stop, strip=chat)

    def chunk(delta: str, finish: str | None = None) -> dict:
        if chat:
            return chat_chunk(rid, req.model, {"content": delta} if delta or finish is None else {}, finish)
        return completion_chunk(rid, req.model, delta, finish)

    held = [req.prefix] if chat and req.reads_calls else []  # a reply read for calls is sent whole at the end

    async def events():
        count, status = 0, 200
        try:
            if chat:
                yield event(chat_chunk(rid, req.model, {"role": "assistant", "content": ""}))
            while True:
                try:
                    token = await asyncio.wait_for(tokens.get(), server.limits.request_timeout_s)
                except asyncio.TimeoutError:
                    job.cancelled, status = True, 503
                    yield event({"error": {"message": "no token within serve.request_timeout_s",
                                           "type": "server_error", "code": "timeout"}})
                    return
                if token is None:
                    break
                count += 1
                delta = text.push(token)
                if delta and not held:
                    yield event(chunk(delta))
                elif delta:
                    held.append(delta)
            if future.exception() is not None:
                status = 500
                yield event({"error": {"message": "generation failed", "type": "server_error"}})
                return
            generation = future.result()
            tail = text.finish()
            finish = "stop" if generation.ended_with_eos or text.stopped else "length"
            if held:  # a reply read for calls: whole, as calls or as text
                whole_text = "".join(held) + tail
                calls = reply_calls(whole_text)
                for delta in stream_deltas(calls) if calls else [{"content": whole_text}] if whole_text else []:
                    yield event(chat_chunk(rid, req.model, delta))
                finish = "tool_calls" if calls else finish
            elif tail:
                yield event(chunk(tail))
            final = chunk("", finish)
            final["usage"] = usage(len(ids), len(generation.token_ids))
            yield event(final)
            yield "data: [DONE]\n\n"
            server.metrics.prompt_tokens.inc(len(ids))
            server.metrics.completion_tokens.inc(len(generation.token_ids))
        except asyncio.CancelledError:  # the client went away
            job.cancelled, status = True, 499
            raise
        finally:
            server.record(request, route, status, started, len(ids), count)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def chat_completions(request):
    return await generate(request, "chat", parse_chat, chat=True)


async def completions(request):
    return await generate(request, "completions", parse_completion, chat=False)


async def models(request):
    from starlette.responses import JSONResponse

    server: Server = request.app.state.server
    started = time.monotonic()
    if not server.authorised(request):
        server.record(request, "models", 401, started)
        return refused()
    server.record(request, "models", 200, started)
    limits = server.limits
    return JSONResponse({"object": "list", "data": [
        {"id": served_name, "object": "model", "created": int(time.time()), "owned_by": "tunestack",
         "max_model_len": limits.max_prompt_tokens + limits.max_tokens,
         **({"parent": server.base} if adapter is not None and server.base else {})}
        for served_name, adapter in server.adapters.items()]})


async def health(request):
    from starlette.responses import JSONResponse

    batcher = request.app.state.server.batcher
    alive = batcher.thread.is_alive() and not batcher.closing.is_set()
    return JSONResponse({"status": "ok" if alive else "unavailable", "queued": batcher.depth()},
                        status_code=200 if alive else 503)


async def prometheus(request):
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.responses import Response

    server: Server = request.app.state.server
    if not server.authorised(request):
        return refused()
    return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def not_found(request, exc):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": f"no route {request.method} {request.url.path}",
                                   "type": "invalid_request_error", "param": None, "code": "not_found"}},
                        status_code=getattr(exc, "status_code", 404))


def build_app(name: str | dict[str, str | None], generator, batcher: Batcher, limits: Limits,
              api_key: str | None = None, default_temperature: float = 0.0):
    """The ASGI app serving `generator`'s model as `name` (the batcher decodes with `generator`). With LoRA adapters,
    `name` maps each served name to its adapter (None: the base), and a request's `model` picks one. The handlers
    read what they share from `app.state.server` (a `Server`)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    server = Server(name, generator, batcher, limits, api_key, default_temperature)
    routes = [Route("/health", health), Route("/metrics", prometheus), Route("/v1/models", models),
              Route("/v1/chat/completions", chat_completions, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"])]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.server = server
    app.state.metrics = server.metrics
    return app
