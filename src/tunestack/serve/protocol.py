"""The OpenAI wire format, as the built-in server speaks it: requests checked field by field (an `ApiError` names
the field and what was expected, and becomes a 4xx), responses and stream chunks built.

Supported: `/v1/chat/completions` (messages with string or text-part content; `max_tokens` or
`max_completion_tokens`, `temperature`, `top_p`, `seed`, `stream`, `stop`, `n: 1`) and `/v1/completions` (`prompt`
as text or token ids, the same decoding fields, and `echo` and `logprobs` up to `MAX_LOGPROBS`: the prompt's
log-probabilities are how log-likelihood suites such as quartz are scored through an endpoint). Not supported,
refused with 400 and the reason: `n` above 1, legacy `functions`, chat `logprobs`, and `response_format` with a
JSON schema (constrained decoding needs a grammar engine in the decode loop; vLLM's server has one). Chat takes
`tools` and `tool_choice`, assistant `tool_calls` and `tool` results (`tunestack.serve.tool_calls`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

__all__ = ["ApiError", "Request", "parse_chat", "parse_completion"]

ROLES = ("system", "user", "assistant", "tool")
MAX_LOGPROBS = 5


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class Request:
    model: str
    messages: list[dict] | None
    """Chat: the conversation (the server renders it with the model's chat template)."""
    prompt: str | list[int] | None
    """Completions: text (tokenized as it is) or token ids."""
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stream: bool
    stop: list[str]
    echo: bool = False
    """Completions: the prompt comes back before the answer (with its log-probabilities when `logprobs` is set)."""
    logprobs: int | None = None
    """Completions: each token's log-probability, and the `logprobs` likeliest tokens at each position."""
    tools: list[dict] | None = None
    """Chat: the functions the model may call (OpenAI's `tools`)."""
    tool_choice: str | dict | None = None
    """Chat, with tools: `auto`, `none`, `required`, or `{"type": "function", "function": {"name": ...}}`."""
    prefix: str = ""
    """Chat: the text the assistant's turn was started with (the opening of a call, for `tool_choice` `required`
    or a named function); the answer is read with it in front."""

    @property
    def reads_calls(self) -> bool:
        """Chat with tools the model may call: its reply is read for calls."""
        return bool(self.tools) and self.tool_choice != "none"


def _number(body: dict, key: str, default: float, low: float, high: float, low_open: bool = False) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"'{key}' must be a number, got {type(value).__name__}", key)
    if value < low or value > high or (low_open and value == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise ApiError(400, f"'{key}' must be in {bound}, got {value}", key)
    return float(value)


def _common(body: dict, served: list[str], default_max_tokens: int, max_tokens_limit: int) -> dict:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required: the name GET /v1/models lists", "model")
    if model not in served:
        raise ApiError(404, f"the model '{model}' does not exist here; this server serves {', '.join(served)}",
                       "model", "model_not_found")
    raw = body.get("max_completion_tokens", body.get("max_tokens"))
    if raw is None:
        max_tokens = min(default_max_tokens, max_tokens_limit)
    elif isinstance(raw, bool) or not isinstance(raw, int):
        raise ApiError(400, f"'max_tokens' must be an integer, got {type(raw).__name__}", "max_tokens")
    elif not 1 <= raw <= max_tokens_limit:
        raise ApiError(400, f"'max_tokens' must be between 1 and {max_tokens_limit} (serve.max_tokens), got {raw}",
                       "max_tokens")
    else:
        max_tokens = raw
    n = body.get("n", 1)
    if n not in (1, None):
        raise ApiError(400, "'n' above 1 is not supported by the built-in server: send n requests", "n")
    if body.get("functions") not in (None, False, []):
        raise ApiError(400, "'functions' (the legacy form) is not supported by the built-in server: send 'tools'",
                       "functions")
    form = body.get("response_format")
    if form not in (None, {"type": "text"}):
        raise ApiError(400, "'response_format' other than text is not supported by the built-in server: it has no "
                            "grammar engine to constrain decoding to a schema (vLLM's server has one; `tunestack "
                            "serve` runs it where installed)", "response_format")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise ApiError(400, "'stop' must be a string or a list of at most 4 non-empty strings", "stop")
    seed = body.get("seed", 0)
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ApiError(400, "'seed' must be an integer", "seed")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", "stream")
    return {"model": model, "max_tokens": max_tokens, "stop": stop, "seed": seed, "stream": stream,
            "temperature": _number(body, "temperature", 1.0, 0.0, 2.0),
            "top_p": _number(body, "top_p", 1.0, 0.0, 1.0, low_open=True)}


def _content(message: dict, at: str) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        parts = []
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"{at}.content[{k}] must be a text part ({{\"type\": \"text\", \"text\": ...}}): "
                                    "this model takes text only", f"{at}.content")
            parts.append(part["text"])
        return "".join(parts)
    raise ApiError(400, f"{at}.content must be a string or a list of text parts", f"{at}.content")


def parse_chat(body, served: list[str], default_max_tokens: int, max_tokens_limit: int) -> Request:
    common = _common(body, served, default_max_tokens, max_tokens_limit)
    for key in ("logprobs", "top_logprobs"):
        if body.get(key) not in (None, False, 0):
            raise ApiError(400, f"'{key}' is not supported on chat completions by the built-in server; "
                                "/v1/completions returns them (with `echo` for the prompt's)", key)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content}", "messages")
    clean = []
    for i, message in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{at} must be an object with 'role' and 'content'", at)
        role = message.get("role")
        if role == "developer":
            role = "system"
        if role not in ROLES:
            raise ApiError(400, f"{at}.role must be one of {', '.join(ROLES)}, got {role!r}", f"{at}.role")
        clean.append(_message(message, role, at))
    if clean[-1]["role"] == "assistant":
        raise ApiError(400, "the last message is the assistant's: there is nothing to answer", "messages")
    tools, choice = _tools(body)
    return Request(messages=clean, prompt=None, tools=tools, tool_choice=choice, **common)


def _message(message: dict, role: str, at: str) -> dict:
    """One message in tunestack's form: an assistant's calls with their arguments parsed, a tool result with its
    call's id."""
    from tunestack.tools import from_openai_calls

    calls = message.get("tool_calls") if role == "assistant" else None
    content = "" if calls and message.get("content") is None else _content(message, at)
    out = {"role": role, "content": content}
    if calls:
        if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("function"), dict)
                                                  for c in calls):
            raise ApiError(400, f"{at}.tool_calls must be a list of {{id, type, function: {{name, arguments}}}}",
                           f"{at}.tool_calls")
        out["tool_calls"] = from_openai_calls(calls)
    if role == "tool":
        if not isinstance(message.get("tool_call_id"), str):
            raise ApiError(400, f"{at}.tool_call_id is required on a tool message", f"{at}.tool_call_id")
        out["tool_call_id"] = message["tool_call_id"]
        if isinstance(message.get("name"), str):
            out["name"] = message["name"]
    return out


def _tools(body: dict) -> tuple[list[dict] | None, str | dict | None]:
    tools, choice = body.get("tools"), body.get("tool_choice")
    if tools in (None, []):
        if choice not in (None, "none", "auto"):
            raise ApiError(400, "'tool_choice' needs 'tools'", "tool_choice")
        return None, None
    if not isinstance(tools, list) or not all(
            isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
            and isinstance(t["function"].get("name"), str) and t["function"]["name"] for t in tools):
        raise ApiError(400, "'tools' must be a list of {\"type\": \"function\", \"function\": {\"name\", "
                            "\"description\", \"parameters\"}}", "tools")
    names = [t["function"]["name"] for t in tools]
    if choice is None:
        choice = "auto"
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
        if name not in names:
            raise ApiError(400, f"'tool_choice' names a function that is not in 'tools' ({', '.join(names)})",
                           "tool_choice")
    elif choice not in ("auto", "none", "required"):
        raise ApiError(400, "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", "
                            "\"function\": {\"name\": ...}}", "tool_choice")
    return tools, choice


def parse_completion(body, served: list[str], default_max_tokens: int, max_tokens_limit: int) -> Request:
    common = _common(body, served, default_max_tokens, max_tokens_limit)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str) and prompt:
        pass
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                                     for t in prompt):
        pass
    else:
        raise ApiError(400, "'prompt' must be a non-empty string or a list of token ids (one prompt per request)",
                       "prompt")
    echo = body.get("echo", False)
    if echo is None:
        echo = False
    if not isinstance(echo, bool):
        raise ApiError(400, "'echo' must be true or false", "echo")
    logprobs = body.get("logprobs")
    if logprobs is not None and (isinstance(logprobs, bool) or not isinstance(logprobs, int)
                                 or not 0 <= logprobs <= MAX_LOGPROBS):
        raise ApiError(400, f"'logprobs' must be an integer from 0 to {MAX_LOGPROBS}, got {logprobs!r}", "logprobs")
    if common["stream"] and (echo or logprobs is not None):
        raise ApiError(400, "'echo' and 'logprobs' are not supported with 'stream' by the built-in server", "stream")
    return Request(messages=None, prompt=prompt, echo=echo, logprobs=logprobs, **common)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_response(rid: str, model: str, text: str, finish: str, n_prompt: int, n_completion: int,
                  tool_calls: list[dict] | None = None) -> dict:
    message = {"role": "assistant", "content": None, "tool_calls": tool_calls} if tool_calls else \
        {"role": "assistant", "content": text}
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else finish,
                         "logprobs": None}],
            "usage": usage(n_prompt, n_completion)}


def completion_response(rid: str, model: str, text: str, finish: str, n_prompt: int, n_completion: int,
                        logprobs: dict | None = None) -> dict:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": logprobs}],
            "usage": usage(n_prompt, n_completion)}


def logprobs_body(tokens: list[str], token_logprobs: list[float | None], top: list[dict[str, float] | None],
                  start: int = 0) -> dict:
    """The completions API's `logprobs` object: each token's text, log-probability, top alternatives and offset in
    the returned text (which begins at `start`)."""
    offsets, at = [], start
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets}


def chat_chunk(rid: str, model: str, delta: dict, finish: str | None = None) -> dict:
    return {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}


def completion_chunk(rid: str, model: str, text: str, finish: str | None = None) -> dict:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}
