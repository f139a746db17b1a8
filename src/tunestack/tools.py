"""Tool (function) calls: the one form every stage holds them in, OpenAI's wire form, their canonical text, and the
adapters a chat template needs. Pure: no torch, no disk.

The internal form (what `tunestack.data.formats.normalize_row` makes of an OpenAI row, what `train.jsonl` holds):

- the row's tool definitions ride on its **first message**, under `tools`, as OpenAI's `tools` list
  (`[{"type": "function", "function": {"name", "description", "parameters", "strict"}}]`; legacy `functions` are
  converted). A conversation is then one value wherever it goes (sliced to a prompt, cached, sent to an endpoint),
  and every rendering finds its tools without another argument;
- an assistant turn that calls tools: `{"role": "assistant", "content": "" or text, "tool_calls": [{"id", "type":
  "function", "function": {"name", "arguments": {...}}}]}`, arguments parsed to a JSON object (Hugging Face chat
  templates render a mapping; OpenAI sends a string, `to_openai` turns it back);
- a tool result: `{"role": "tool", "tool_call_id", "name", "content": str}`;
- `weight` (0 or 1) on an assistant turn: 0 makes it context, never a training target.

Fallback, for a chat template that cannot render tools (Gemma, Phi, SmolLM2, a base model's `plain`): the tool
definitions are appended to the system turn (one made if there is none), each call is written as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` in the assistant's text, and tool results become a user
turn of `<tool_response>` blocks. Training, evaluation and serving all render through `tunestack.chat`, so they
share it.
"""

from __future__ import annotations

import hashlib
import json
import re
import string

TOOLS_KEY = "tools"
FALLBACK_OPEN, FALLBACK_CLOSE = "<tool_call>", "</tool_call>"
FALLBACK_INSTRUCTIONS = (
    "You can call the functions below. To call one, answer with "
    '<tool_call>{"name": <function name>, "arguments": <arguments as a JSON object>}</tool_call>, '
    "one such block per call.\n\nFunctions:"
)


def tools_of(messages: list[dict]) -> list[dict] | None:
    """The tool definitions a conversation carries (on its first message), or None."""
    return (messages[0].get(TOOLS_KEY) or None) if messages else None


def without_tools(messages: list[dict]) -> list[dict]:
    """The conversation without the `tools` key on its first message (the messages themselves are not changed)."""
    if not messages or TOOLS_KEY not in messages[0]:
        return messages
    head = {k: v for k, v in messages[0].items() if k != TOOLS_KEY}
    return [head, *messages[1:]]


def with_tools(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """The conversation with `tools` riding on its first message (a request's `tools`, for instance)."""
    if not tools or not messages:
        return messages
    return [{**messages[0], TOOLS_KEY: tools}, *messages[1:]]


def learned_turns(messages: list[dict]) -> list[int]:
    """Indexes of the assistant turns training learns: every one whose weight is not 0.

    >>> learned_turns([{"role": "user"}, {"role": "assistant", "weight": 0}, {"role": "user"},
    ...                {"role": "assistant"}])
    [3]
    """
    return [k for k, m in enumerate(messages) if m["role"] == "assistant" and m.get("weight", 1) != 0]


def arguments_text(arguments: object) -> str:
    """Canonical JSON of a call's arguments: keys sorted, no spaces, non-ASCII kept.

    >>> arguments_text({"b": 1, "a": "é"})
    '{"a":"é","b":1}'
    """
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_call(call: dict) -> str:
    """A call as its function name plus canonical arguments: what dedup, conflicts, leaks and exact match compare.
    The call id is not part of it (ids are arbitrary).

    >>> canonical_call({"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"y": 2, "x": 1}}})
    'f({"x":1,"y":2})'
    """
    function = call.get("function", call)
    return f"{function['name']}({arguments_text(function.get('arguments', {}))})"


def answer_text(message: dict) -> str:
    """An assistant turn as it is scored: a turn that calls tools by its calls, each in canonical form on its own
    line (text written beside the calls, "Let me check.", is commentary and not scored), any other by its content.

    >>> answer_text({"role": "assistant", "content": "Let me check.", "tool_calls": [
    ...     {"id": "a", "type": "function", "function": {"name": "f", "arguments": {"q": "x"}}}]})
    'f({"q":"x"})'
    """
    calls = message.get("tool_calls")
    return calls_answer(calls) if calls else message.get("content") or ""


def message_text(message: dict) -> str:
    """Any turn as text for the data checks, everything it says: an assistant turn's content and then its calls in
    canonical form, a tool result with its function's name in front (the same result from another function is
    another row)."""
    if message.get("role") == "tool":
        return f"{message.get('name') or ''}: {message.get('content') or ''}"
    content = message.get("content") or ""
    calls = answer_text(message) if message.get("tool_calls") else ""
    return "\n".join(part for part in (content, calls) if part.strip())


def to_openai(messages: list[dict]) -> tuple[list[dict], list[dict] | None]:
    """The conversation as OpenAI's chat API takes it: messages with arguments as JSON strings and no `weight`, and
    the tools, separately."""
    wire = []
    for message in without_tools(messages):
        out = {k: v for k, v in message.items() if k != "weight"}
        if message.get("tool_calls"):
            out["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["function"]["name"],
                                               "arguments": json.dumps(c["function"]["arguments"],
                                                                       ensure_ascii=False)}}
                                 for c in message["tool_calls"]]
            out["content"] = message.get("content") or None
        wire.append(out)
    return wire, tools_of(messages)


def from_openai_calls(calls: list[dict]) -> list[dict]:
    """A response's `tool_calls` in the internal form (arguments parsed; text that is not JSON kept as a string, so
    a reply is recorded as it came)."""
    out = []
    for call in calls:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                pass
        out.append({"id": call.get("id") or "", "type": "function",
                    "function": {"name": function.get("name") or "", "arguments": arguments}})
    return out


_ALNUM = string.ascii_letters + string.digits


def short_id(call_id: str, length: int = 9) -> str:
    """A call id as `length` alphanumeric characters (Mistral's templates refuse any other id), the same for the
    same id, so a call and its result still match after mapping.

    >>> short_id("call_abc"), len(short_id("call_abc")), short_id("call_abc") == short_id("call_abc")
    ('JmVIJqX1J', 9, True)
    """
    if len(call_id) == length and call_id.isalnum() and call_id.isascii():
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALNUM))
        chars.append(_ALNUM[digit])
    return "".join(chars)


def map_ids(messages: list[dict], mapper) -> list[dict]:
    """Every call id and `tool_call_id` passed through `mapper`."""
    out = []
    for message in messages:
        if message.get("tool_calls"):
            message = {**message, "tool_calls": [{**c, "id": mapper(c.get("id") or "")}
                                                 for c in message["tool_calls"]]}
        elif message.get("role") == "tool":
            message = {**message, "tool_call_id": mapper(message.get("tool_call_id") or "")}
        out.append(message)
    return out


def one_call_per_turn(messages: list[dict]) -> list[dict]:
    """Parallel calls as a sequence (Llama 3.1's template takes one call per assistant turn): an assistant turn with
    calls c1..cn followed by their results becomes c1, result of c1, c2, result of c2, ... Each part keeps the turn's
    weight; the turn's text goes with its first call."""
    out: list[dict] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        calls = message.get("tool_calls") or []
        if len(calls) < 2:
            out.append(message)
            i += 1
            continue
        j = i + 1
        results = {}
        while j < len(messages) and messages[j].get("role") == "tool":
            results.setdefault(messages[j].get("tool_call_id"), []).append(messages[j])
            j += 1
        for n, call in enumerate(calls):
            out.append({**message, "content": message.get("content") if n == 0 else "", "tool_calls": [call]})
            out.extend(results.pop(call.get("id"), []))
        out.extend(r for rs in results.values() for r in rs)  # results naming no call of this turn stay, in order
        i = j
    return out


def fallback_messages(messages: list[dict]) -> list[dict]:
    """The conversation in plain roles, for a template without tool support (see the module docstring)."""
    tools = tools_of(messages)
    messages = without_tools(messages)
    out: list[dict] = []
    if tools:
        listing = "\n".join(json.dumps(t.get("function", t), ensure_ascii=False) for t in tools)
        block = f"{FALLBACK_INSTRUCTIONS}\n{listing}"
        if messages and messages[0]["role"] == "system":
            out.append({**messages[0], "content": f"{messages[0]['content']}\n\n{block}"})
            messages = messages[1:]
        else:
            out.append({"role": "system", "content": block})
    for message in messages:
        if message["role"] == "user" and out and out[-1].get("_tool_results"):  # one user turn: templates alternate
            out[-1] = {"role": "user", "content": f"{out[-1]['content']}\n\n{message['content']}"}
        elif message.get("tool_calls"):
            parts = [message.get("content") or ""] if (message.get("content") or "").strip() else []
            parts += [FALLBACK_OPEN + json.dumps({"name": c["function"]["name"],
                                                  "arguments": c["function"]["arguments"]}, ensure_ascii=False)
                      + FALLBACK_CLOSE for c in message["tool_calls"]]
            out.append({k: v for k, v in message.items() if k != "tool_calls"} | {"content": "\n".join(parts)})
        elif message.get("role") == "tool":
            block = f"<tool_response name=\"{message.get('name') or ''}\">\n{message['content']}\n</tool_response>"
            if out and out[-1]["role"] == "user" and out[-1].get("_tool_results"):
                out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n{block}"}
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
        else:
            out.append(message)
    return [{k: v for k, v in m.items() if k != "_tool_results"} for m in out]


def extract_calls(text: str) -> list[dict] | None:
    """The calls a generated answer makes, in whichever of the common written forms the model used: JSON objects
    with `name` and `arguments` (Qwen, Hermes, Mistral, the fallback) or `parameters` (Llama 3.1), alone, in a list,
    or inside `<tool_call>` tags. None when it makes none.

    >>> extract_calls('<tool_call>\\n{"name": "f", "arguments": {"a": 1}}\\n</tool_call>')
    [{'name': 'f', 'arguments': {'a': 1}}]
    >>> extract_calls('[TOOL_CALLS] [{"name": "g", "arguments": {}, "id": "abcdefghi"}]')
    [{'name': 'g', 'arguments': {}}]
    >>> extract_calls("The answer is 4.") is None
    True
    """
    decoder = json.JSONDecoder()
    calls, i = [], 0
    while i < len(text):
        if text[i] not in "{[":
            i += 1
            continue
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        found = [v for v in (value if isinstance(value, list) else [value]) if _is_call(v)]
        if found:
            calls += [{"name": v["name"], "arguments": v.get("arguments", v.get("parameters"))} for v in found]
            i = end
        else:
            i += 1
    return calls or None


def _is_call(value: object) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("name"), str)
            and isinstance(value.get("arguments", value.get("parameters")), dict))


def calls_answer(calls: list[dict]) -> str:
    """Calls (in the internal form, or as extracted) in `answer_text`'s form, so a generated call compares with the
    reference's.

    >>> calls_answer([{"name": "f", "arguments": {"q": "x"}}])
    'f({"q":"x"})'
    """
    return "\n".join(canonical_call(c) for c in calls)


def scored_pairs(texts: list[str], turns: list[dict]) -> tuple[list[str], list[str]]:
    """Generated answers and their reference turns as the scorer compares them: (predictions, references).

    >>> scored_pairs(["4"], [{"role": "assistant", "content": "4"}])
    (['4'], ['4'])
    """
    return [scored_answer(text, turn) for text, turn in zip(texts, turns)], [answer_text(turn) for turn in turns]


def scored_answer(text: str, reference: dict) -> str:
    """A generated answer as it is compared with the reference turn: where the reference calls tools, the calls the
    answer makes in `answer_text`'s form (whatever the template wrote around them), else the text as it is.

    >>> ref = {"role": "assistant", "content": "", "tool_calls": [
    ...     {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"q": 1}}}]}
    >>> scored_answer('{"name": "f", "parameters": {"q": 1}}', ref) == answer_text(ref)
    True
    """
    if reference.get("tool_calls") and not _canonical(text):  # an endpoint's reply comes canonical already
        calls = extract_calls(text)
        if calls:
            return calls_answer(calls)
    return text


_CANONICAL_CALL = re.compile(r"^[^\s(){}\[\]\"]+\((\{.*\})\)$")


def canonical_calls(text: str) -> list[tuple[str, dict]] | None:
    """The calls in `answer_text`'s form, one `name({...})` a line, as (name, arguments); None when `text` is not
    calls in that form.

    >>> canonical_calls('f({"a":1})\\ng({})'), canonical_calls("Paris")
    ([('f', {'a': 1}), ('g', {})], None)
    """
    calls = []
    for line in text.strip().splitlines():
        match = _CANONICAL_CALL.match(line.strip())
        if not match:
            return None
        try:
            arguments = json.loads(match[1])
        except json.JSONDecodeError:
            return None
        if not isinstance(arguments, dict):
            return None
        calls.append((match[0][: match.start(1) - 1], arguments))
    return calls or None


def _canonical(text: str) -> bool:
    """Whether `text` is calls in `answer_text`'s form, one `name({...})` a line.

    >>> _canonical('f({"q":{"name":"x","arguments":{}}})'), _canonical('{"name": "f", "arguments": {}}')
    (True, False)
    """
    return canonical_calls(text) is not None
