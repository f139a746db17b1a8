"""A tiny model taught, in a few seconds of full-parameter training on rendered conversations, to call `get_weather`
with the city a weather question names and to answer anything else in text. Which prompts should call, and with
which argument, is known by construction. Used by the built-in server's and vLLM's tool tests.

    folder = build_tool_model(tmp / "model")                                   # ChatML: tunestack's fallback
    folder = build_tool_model(tmp / "model", template=QWEN, shape=WIDE_HEAD)   # a template that renders tools
"""

from __future__ import annotations

import json
from pathlib import Path

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Today's weather in a city.",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The time in a city.",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
CITIES = ["Oslo", "Lima", "Quito", "Dakar", "Hanoi", "Perth", "Cairo", "Delhi", "Paris", "Tokyo", "Rome", "Kyiv",
          "Seoul", "Accra", "Minsk", "Doha", "Riga", "Sofia", "Tunis", "Lagos"]
THINGS = ["cats", "rain", "bread", "trains", "music", "chess", "tea", "boats"]
WIDE_HEAD = {"num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 64}
"""One 64-wide attention head: vLLM's CPU attention takes heads 32 wide and up."""


def weather(city: str) -> list[dict]:
    return [{"role": "user", "content": f"What is the weather in {city}?", "tools": [WEATHER]}]


def other(thing: str) -> list[dict]:
    return [{"role": "user", "content": f"Say something about {thing}.", "tools": [WEATHER]}]


def call_turn(city: str) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}]}


def build_tool_model(folder: Path, template: str | None = None, shape: dict | None = None, steps: int = 300) -> Path:
    """The toy model in `folder`, with `template` as its chat template (default: the tiny model's ChatML)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunestack.chat import IGNORE_INDEX, render_text, render_training
    from tunestack.models import build_tiny_model

    rows = [weather(c) + [call_turn(c)] for c in CITIES] + [other(t) + [{"role": "assistant", "content": "No."}]
                                                             for t in THINGS]

    def with_template(path: Path):
        tokenizer = AutoTokenizer.from_pretrained(path)
        if template is not None:
            tokenizer.chat_template = template
            tokenizer.save_pretrained(path)
        return tokenizer

    probe = with_template(build_tiny_model(folder, ["x"]))  # the template, to write the corpus the tokenizer learns
    corpus = [render_text(probe, row) for row in rows]
    build_tiny_model(folder, corpus * 4, shape=shape)
    tokenizer = with_template(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    examples = [r for row in rows for r in render_training(tokenizer, row)]
    width = max(len(r.input_ids) for r in examples)
    ids = torch.tensor([r.input_ids + [0] * (width - len(r.input_ids)) for r in examples])
    labels = torch.tensor([r.labels + [IGNORE_INDEX] * (width - len(r.labels)) for r in examples])
    mask = torch.tensor([[1] * len(r.input_ids) + [0] * (width - len(r.input_ids)) for r in examples])
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(folder)
    return folder


def ask_with(api, model: str, messages: list[dict], choice=None, stream: bool = False, tools=(WEATHER,)):
    """One request with the tools, as a client sends them (the `openai` client `api`): (tool calls as [(name,
    arguments)], content, finish_reason)."""
    plain = [{k: v for k, v in m.items() if k != "tools"} for m in messages]
    extra = {"tools": list(tools), "max_tokens": 48} | ({} if choice is None else {"tool_choice": choice})
    if not stream:
        reply = api.chat.completions.create(model=model, messages=plain, temperature=0, **extra)
        choice0 = reply.choices[0]
        calls = [(c.function.name, parsed(c.function.arguments)) for c in choice0.message.tool_calls or []]
        return calls, choice0.message.content, choice0.finish_reason
    return read_stream(api.chat.completions.create(model=model, messages=plain, temperature=0, stream=True, **extra))


def read_stream(chunks) -> tuple[list[tuple[str, dict]], str | None, str | None]:
    """A streamed chat reply put together: (calls as [(name, arguments)], content, finish_reason)."""
    calls, content, finish = {}, "", None
    for chunk in chunks:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, ["", ""])
            entry[0] += call.function.name or "" if call.function else ""
            entry[1] += call.function.arguments or "" if call.function else ""
        finish = chunk.choices[0].finish_reason or finish
    return [(n, parsed(a)) for n, a in calls.values()], content or None, finish


def parsed(arguments: str):
    """A call's arguments as JSON, or the text itself where it does not parse (a cut-off call)."""
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments
