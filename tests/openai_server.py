"""A minimal OpenAI-compatible server for tests: stdlib `http.server` in a thread on 127.0.0.1, a free port.

    with OpenAIServer(reply=lambda body: '{"score": 4}') as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...
        server.fail_next(429, retry_after=0)   # the next request gets HTTP 429 with a Retry-After header
        server.stall_next(2.0)                  # the next request waits 2 s before answering (client timeouts)
        server.chat_requests, server.max_in_flight, server.statuses

`POST /v1/chat/completions` answers with `reply(body)` (a function of the request's JSON body), cut to
`max_tokens` words (then `finish_reason` is "length"), and a `usage` that counts whitespace-separated words
(`count_tokens`), so a test can compute the token figures it expects. `reply` may also return
`(text, finish_reason)` to script the finish reason, or a message dict `{"tool_calls": [...], "content": None}` to
call tools (arguments as given: OpenAI sends JSON strings; `finish_reason` "tool_calls"; each call's arguments count
as completion tokens). A request's `tools` are kept in `tools` (None when it sent none), the time each request
arrived in `arrivals` (`time.monotonic()`). `served_as` is the model id the responses report (OpenAI answers a request
for `gpt-4o` as `gpt-4o-2024-08-06`); default: the requested name. `GET /v1/models` lists the served model.

`POST /v1/completions` (the legacy API, as vLLM and llama.cpp serve it) takes `prompt` as text or token ids and
answers the same way; with `echo` and `logprobs` it also returns `token_logprobs` for the prompt (None for the first
token, then `score(prompt_ids, i)` for token i) followed by -1.0 for each generated word. Its requests are in
`completion_requests`.

Every request is recorded with its headers; the server tracks how many requests were in flight at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def count_tokens(text: str) -> int:
    """The server's token count: whitespace-separated words."""
    return len(text.split())


def prompt_tokens(messages: list[dict]) -> int:
    return sum(count_tokens(m.get("content") or "") for m in messages)


class OpenAIServer:
    def __init__(self, reply: Callable[[dict], str | tuple[str, str] | dict] = lambda body: "ok",
                 delay_s: float = 0.0, api_key: str | None = None, model: str = "test-model",
                 score: Callable[[list[int], int], float] = lambda ids, i: -((ids[i] * 7 + i) % 11) / 4,
                 served_as: str | None = None):
        self.reply, self.delay_s, self.api_key, self.model, self.score = reply, delay_s, api_key, model, score
        self.served_as = served_as
        self.faults: deque[tuple[str, float, dict]] = deque()
        self.chat_requests: list[dict] = []
        self.tools: list[list[dict] | None] = []
        self.arrivals: list[float] = []
        self.completion_requests: list[dict] = []
        self.headers: list[dict] = []
        self.statuses: Counter = Counter()
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def fail_next(self, status: int, retry_after: float | None = None, times: int = 1) -> None:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        self.faults.extend([("status", status, headers)] * times)

    def stall_next(self, seconds: float, times: int = 1) -> None:
        self.faults.extend([("stall", seconds, {})] * times)

    def __enter__(self) -> OpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()  # releases stalled handlers
        self.httpd.shutdown()
        self.httpd.server_close()

    def _next_fault(self):
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def _enter(self, body: dict, headers: dict) -> None:
        with self.lock:
            (self.chat_requests if "messages" in body else self.completion_requests).append(body)
            self.tools.append(body.get("tools"))
            self.arrivals.append(time.monotonic())
            self.headers.append(headers)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self, status: int) -> None:
        with self.lock:
            self.in_flight -= 1
            self.statuses[status] += 1

    def _text(self, body: dict, answer=None) -> tuple[str, str]:
        answer = self.reply(body) if answer is None else answer
        text, finish = answer if isinstance(answer, tuple) else (answer, "stop")
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if limit is not None and len(text.split()) > limit:
            text, finish = " ".join(text.split()[:limit]), "length"
        return text, finish

    def completion(self, body: dict) -> dict:
        answer = self.reply(body)
        if isinstance(answer, dict):  # a message that calls tools
            message = {"role": "assistant", "content": answer.get("content"), "tool_calls": answer["tool_calls"]}
            finish = "tool_calls"
            spoken = (answer.get("content") or "") + " " + " ".join(str(c["function"]["arguments"])
                                                                 for c in answer["tool_calls"])
        else:
            text, finish = self._text(body, answer)
            message, spoken = {"role": "assistant", "content": text}, text
        usage = {"prompt_tokens": prompt_tokens(body["messages"]), "completion_tokens": count_tokens(spoken)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": f"chatcmpl-{len(self.chat_requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": self.served_as or body.get("model", self.model),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}

    def text_completion(self, body: dict) -> dict:
        prompt = body["prompt"]
        text, finish = self._text(body)
        n_prompt = len(prompt) if isinstance(prompt, list) else count_tokens(prompt)
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        if body.get("echo") and body.get("logprobs") is not None:
            if not isinstance(prompt, list):
                raise ValueError("this test server scores token-id prompts only")
            scores = [None] + [self.score(prompt, i) for i in range(1, len(prompt))]
            choice["logprobs"] = {"token_logprobs": scores + [-1.0] * count_tokens(text),
                                  "tokens": [str(t) for t in prompt] + text.split(), "top_logprobs": None,
                                  "text_offset": None}
            choice["text"] = " ".join(str(t) for t in prompt) + " " + text
        usage = {"prompt_tokens": n_prompt, "completion_tokens": count_tokens(text),
                 "total_tokens": n_prompt + count_tokens(text)}
        return {"id": f"cmpl-{len(self.completion_requests)}", "object": "text_completion",
                "created": int(time.time()), "model": self.served_as or body.get("model", self.model),
                "choices": [choice], "usage": usage}


def _handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            if getattr(self, "answering", False):  # counted before the client can read the reply
                self.answering = False
                server._leave(status)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout): fine
                pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            route = self.path.rstrip("/")
            if route not in ("/v1/chat/completions", "/v1/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            server._enter(body, dict(self.headers))
            self.answering = True
            try:
                self._answer(body, server.completion if route.endswith("chat/completions")
                             else server.text_completion)
            finally:
                if self.answering:  # the answer raised before it was sent
                    self.answering = False
                    server._leave(500)

        def _answer(self, body: dict, respond: Callable[[dict], dict]) -> None:
            if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
                return
            fault = server._next_fault()
            if fault and fault[0] == "status":
                _, status, headers = fault
                self._send(int(status), {"error": {"message": f"scripted {status}", "type": "server_error"}}, headers)
                return
            if fault and fault[0] == "stall":
                server.closing.wait(fault[1])
            elif server.delay_s:
                time.sleep(server.delay_s)
            self._send(200, respond(body))

    return Handler
