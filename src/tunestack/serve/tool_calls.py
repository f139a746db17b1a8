"""Tools on the built-in server: a request's `tools` and `tool_choice` rendered into the prompt the way training
rendered them, and a reply's calls returned as OpenAI's `tool_calls`.

- The request's tools ride on the conversation's first message (`tunestack.tools.with_tools`), so the model's chat
  template renders them exactly as in training (or tunestack's fallback for a template without tools).
- `tool_choice`: `auto` (the default with tools) lets the model answer or call; `none` renders no tools and never
  reads calls; `required` and a named function start the assistant's turn with the opening of a call as the
  template writes one (`call_prefix`: the template's rendering of a probe call, cut before the name, or before the
  arguments for a named function), so decoding continues inside a call. There is no grammar engine: the rest of
  the call is the model's.
- A reply is read for calls by the rule scoring uses (`tunestack.tools.extract_calls`); one that makes calls is
  returned as `tool_calls` (arguments as a JSON string) with `finish_reason: "tool_calls"`.

vLLM renders a request's tools with the folder's chat template and reads calls with one of its parsers
(`--tool-call-parser`). `vllm_tool_parser` names the parser for the written form the template uses (`hermes` for
`<tool_call>` blocks, as Qwen2.5 and Hermes write them; `mistral` for `[TOOL_CALLS]`; `llama3_json` for Llama-3.1's
bare JSON), or says why there is none: a template that cannot render tools gets tunestack's fallback, which lives in
tunestack's rendering, not in the template vLLM reads, so vLLM would render such a model's tools differently than
training did (the serve stage then uses the built-in server, or refuses `serve.backend: vllm`, saying so).
"""

from __future__ import annotations

import json
import uuid

from tunestack.chat import render_text, tool_support
from tunestack.tools import extract_calls, with_tools

PROBE_NAME, PROBE_ARGUMENT = "tunestack_probe_function", "tunestack_probe_argument"


def conversation(messages: list[dict], tools: list[dict] | None, choice: str | dict | None) -> list[dict]:
    """The conversation the model answers: with the request's tools on its first message, unless `none`."""
    return messages if not tools or choice == "none" else with_tools(messages, tools)


def call_prefix(tokenizer, messages: list[dict], name: str | None = None) -> str | None:
    """The text the template writes at the start of an assistant turn that calls a function: up to the call's
    object where the template marks calls with text of its own, else up to the function's name (given `name`, up to
    its arguments), cut where the tokenizer's tokens break; None where the template's rendering does not show it."""
    turn = probe_turn(tokenizer, messages, name)
    if turn is None:
        return None
    if name is None:  # up to the call's own object where the template marks calls (`<tool_call>`, `[TOOL_CALLS] [`):
        at = turn.find(PROBE_NAME)  # the model writes the name with the tokens it learned to write it with
        opening = turn.rfind("{", 0, at)
        at = opening if opening > 0 and turn[:opening].strip() else at
    else:
        at = turn.find(PROBE_ARGUMENT)
        at = turn.rfind("{", 0, at) if at > 0 else -1
    return on_token_boundary(tokenizer, turn, at) if at > 0 else None


VLLM_PARSERS = (("<tool_call>", "hermes"), ("[TOOL_CALLS]", "mistral"), ('{"name"', "llama3_json"))
"""A written form of a call in a template's rendering, and the vLLM parser (vLLM 0.32's names) that reads it; the
first found wins."""

NO_TOOLS_IN_TEMPLATE = (
    "has a chat template that does not render tools: tunestack writes them in its fallback form (the functions in the "
    "system turn, each call a <tool_call> block), which is tunestack's rendering, not the template vLLM renders "
    "requests with, so vLLM would not show the model its tools as training did")


def vllm_tool_parser(tokenizer) -> tuple[str | None, str | None]:
    """(vLLM's `--tool-call-parser` for the template's written calls, None) or (None, why vLLM cannot serve the
    model's tools as training rendered them)."""
    if not tool_support(tokenizer).native:
        return None, NO_TOOLS_IN_TEMPLATE
    tool = {"type": "function", "function": {"name": PROBE_NAME, "description": "a probe", "parameters": {
        "type": "object", "properties": {PROBE_ARGUMENT: {"type": "integer"}}}}}
    turn = probe_turn(tokenizer, [{"role": "user", "content": "u", "tools": [tool]}]) or ""
    for marker, parser in VLLM_PARSERS:
        if marker in turn:
            return parser, None
    return None, (f"has a chat template that writes calls as {turn.strip()[:80]!r}, a form none of vLLM's parsers "
                  "that tunestack knows reads")


def probe_turn(tokenizer, messages: list[dict], name: str | None = None) -> str | None:
    """The text the template writes for an assistant turn calling one function (`name`, or a probe's) after
    `messages`; None where the rendering of the conversation does not extend its generation prompt."""
    probe = {"role": "assistant", "content": "", "tool_calls": [{"id": "call00001", "type": "function", "function": {
        "name": name or PROBE_NAME, "arguments": {PROBE_ARGUMENT: 0}}}]}
    prompt = render_text(tokenizer, messages, add_generation_prompt=True)
    full = render_text(tokenizer, [*messages, probe])
    return full[len(prompt):] if full.startswith(prompt) else None


def on_token_boundary(tokenizer, text: str, at: int) -> str | None:
    """`text` cut at or before `at` where the tokenizer's own tokens of `text` break, so that what the model
    continues from is tokenized as in training (a name glued to the quote before it is one token there)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    kept = ""
    for k in range(1, len(ids) + 1):
        piece = tokenizer.decode(ids[:k])
        if len(piece) > at or not text.startswith(piece):
            break
        kept = piece
    return kept or None


def prefix_for(tokenizer, messages: list[dict], choice: str | dict | None) -> str:
    """What the assistant's turn starts with for `tool_choice` (empty for `auto` and `none`)."""
    if choice == "required":
        return call_prefix(tokenizer, messages) or ""
    if isinstance(choice, dict):
        return call_prefix(tokenizer, messages, choice["function"]["name"]) or ""
    return ""


def reply_calls(text: str) -> list[dict] | None:
    """The calls a reply makes, as OpenAI's `tool_calls` (ids made here, arguments as JSON text), or None.

    >>> [c["function"] for c in reply_calls('<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>')]
    [{'name': 'f', 'arguments': '{"a": 1}'}]
    """
    calls = extract_calls(text)
    if not calls:
        return None
    return [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
            for c in calls]


def stream_deltas(calls: list[dict]) -> list[dict]:
    """A reply's calls as the deltas a stream carries: each call whole, with its index."""
    return [{"tool_calls": [{"index": k, **call}]} for k, call in enumerate(calls)]
