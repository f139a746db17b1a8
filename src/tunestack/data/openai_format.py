"""OpenAI's fine-tuning files read as they are: the supervised chat format in full and the preference format.

Supervised chat rows (`{"messages": [...], "tools": [...], "parallel_tool_calls": bool}`) become tunestack's internal
form (`tunestack.tools` describes it):

- content given as an array of text parts is joined with newlines; an image, audio or file part is refused (text
  models only);
- `tools` (with `strict`) and legacy `functions` ride on the first message as `tools`; legacy `function_call` on an
  assistant turn becomes one `tool_calls` entry with a made-up id, and a `function` turn becomes a `tool` turn
  answering the latest open call to that function;
- call arguments (JSON strings) are parsed into objects; a tool turn gets the name of the call it answers;
- `weight` (0 or 1) stays on the assistant turn it belongs to.

Refused, each with its code (`RowError.code`, what the data report counts): `undefined_tool` (a call to a function
the row does not define), `arguments_not_json`, `orphan_tool_result` (a `tool_call_id` that answers no call),
`bad_weight`, `unsupported_part`, and the structural ones (`bad_role`, `bad_content`, `order`, `empty`,
`nothing_to_learn`). Arguments that parse but do not match the function's `parameters` schema are kept: the API took
them, so they are warnings (`arguments_schema`), returned to the caller.

Preference rows (`{"input": {"messages", "tools"?}, "preferred_output": [...], "non_preferred_output": [...]}`)
become the `prompt`/`chosen`/`rejected` shape `tunestack.data.formats` already reads. Pure: no torch, no disk.
"""

from __future__ import annotations

import json

from tunestack.tools import TOOLS_KEY, learned_turns

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "weight")
UNSUPPORTED_PARTS = {"image_url": "image", "image": "image", "input_image": "image", "input_audio": "audio",
                     "audio": "audio", "file": "file", "input_file": "file"}


class RowError(ValueError):
    """Why a row is refused, with a short code for the counts (the message says where in the row and how to fix)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def is_openai_preference(obj: dict) -> bool:
    return "input" in obj and ("preferred_output" in obj or "non_preferred_output" in obj)


def from_preference(obj: dict) -> dict:
    """OpenAI's preference row as a `prompt`/`chosen`/`rejected` row (tools on the prompt's first message)."""
    rest = dict(obj)
    given = rest.pop("input")
    if not isinstance(given, dict) or not isinstance(given.get("messages"), list):
        raise RowError("bad_content", "preference row: 'input' must be an object with a 'messages' list")
    chosen, rejected = rest.pop("preferred_output", None), rest.pop("non_preferred_output", None)
    for key, value in (("preferred_output", chosen), ("non_preferred_output", rejected)):
        if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
                and value[0].get("role") == "assistant"):
            raise RowError("bad_content", f"preference row: '{key}' must be a list of one assistant message")
        if value[0].get("tool_calls") or value[0].get("function_call"):
            raise RowError("unsupported_part", f"preference row: '{key}' is a tool call; preference training on "
                                               "tool calls is not supported yet: keep the row for supervised training")
    prompt = normalize_messages({**{k: v for k, v in given.items() if k != "messages"},
                                 "messages": [*given["messages"], {"role": "assistant", "content": "-"}]})[:-1]
    return {"prompt": prompt, "chosen": _text(chosen[0].get("content"), "preferred_output"),
            "rejected": _text(rejected[0].get("content"), "non_preferred_output"),
            **{k: v for k, v in given.items() if k not in ("messages", "tools", "functions")}, **rest}


def normalize_messages(row: dict, warnings: list[str] | None = None) -> list[dict]:
    """The row's conversation in the internal form, checked; raises RowError. Warnings are appended to `warnings`."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RowError("empty", "'messages' must be a non-empty list of {role, content} objects")
    tools = _tools(row)
    by_name = {t["function"]["name"]: t["function"] for t in tools}
    out: list[dict] = []
    open_calls: dict[str, dict] = {}  # id -> call, not yet answered
    warnings = [] if warnings is None else warnings
    for i, raw in enumerate(messages):
        where = f"turn {i}"
        if not isinstance(raw, dict):
            raise RowError("bad_content", f"{where} is not an object")
        role = raw.get("role")
        if role == "function":
            role = "tool"
        elif role not in ROLES:
            raise RowError("bad_role", f"unknown role {role!r} ({where}); expected one of system, user, assistant, "
                                       "tool (or legacy function)")
        where = f"turn {i}, {role}"
        message = {k: v for k, v in raw.items() if k in MESSAGE_KEYS}
        message["role"] = role
        message["content"] = _content(raw.get("content"), where)
        if role == "assistant":
            calls = _calls(raw, i, where, by_name, bool(tools), warnings)
            if calls:
                message["tool_calls"] = calls
                open_calls.update((c["id"], c) for c in calls)
            else:
                message.pop("tool_calls", None)
            if "weight" in raw:
                weight = raw["weight"]
                if isinstance(weight, bool) or weight not in (0, 1):
                    raise RowError("bad_weight", f"weight must be 0 or 1, got {weight!r} ({where}); 0 keeps the turn "
                                                 "as context, 1 (the default) trains on it")
                message["weight"] = int(weight)
        elif "weight" in raw:
            raise RowError("bad_weight", f"weight is only for assistant turns ({where}); remove it")
        if role == "tool":
            message.update(_answered(raw, where, open_calls))
        elif not message["content"].strip() and not message.get("tool_calls"):
            raise RowError("empty", f"turn {i} ({role}) is empty")
        out.append(message)
    _check_order(out)
    out = out[: learned_turns(out)[-1] + 1]  # weight-0 turns after the last learned one are context for nothing: the answer is it
    if tools:
        out[0] = {**out[0], TOOLS_KEY: tools}
    return out


def _text(content: object, where: str) -> str:
    text = _content(content, where)
    if not text.strip():
        raise RowError("empty", f"the {where} answer is empty")
    return text


def _content(content: object, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        if "\x00" in content:
            raise RowError("bad_content", f"a NUL character ({where}): the file is probably binary or mis-encoded")
        try:
            content.encode("utf-8")
        except UnicodeEncodeError:
            raise RowError("bad_content", f"an unpaired surrogate, a broken \\ud8xx escape ({where}); fix the "
                                          "text") from None
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in UNSUPPORTED_PARTS:
                raise RowError("unsupported_part", f"{UNSUPPORTED_PARTS[kind]} content parts are not supported "
                                                   f"({where}, a {kind!r} part): tunestack fine-tunes text models; "
                                                   "remove the part or the row")
            if kind != "text" or not isinstance(part.get("text"), str):
                raise RowError("bad_content", f"a content part must be {{'type': 'text', 'text': str}} ({where}), "
                                              f"got {json.dumps(part)[:80]}")
            texts.append(part["text"])
        return _content("\n".join(texts), where)
    raise RowError("bad_content", f"content must be a string or a list of text parts, got {type(content).__name__} "
                                  f"({where})")


def _tools(row: dict) -> list[dict]:
    tools = []
    first = row["messages"][0] if row.get("messages") else None
    carried = first.get(TOOLS_KEY) if isinstance(first, dict) else None  # a row already in the internal form
    for key, value in (("tools", row.get("tools", carried)), ("functions", row.get("functions"))):
        if value is None:
            continue
        if not isinstance(value, list):
            raise RowError("bad_tools", f"'{key}' must be a list")
        for entry in value:
            function = entry.get("function") if key == "tools" and isinstance(entry, dict) else entry
            if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
                raise RowError("bad_tools", f"each of '{key}' must define a function with a name, got "
                                            f"{json.dumps(entry)[:80]}")
            parameters = function.get("parameters")
            if parameters is not None and not isinstance(parameters, dict):
                raise RowError("bad_tools", f"function {function['name']!r}: 'parameters' must be a JSON Schema object")
            tools.append({"type": "function", "function": function})
    names = [t["function"]["name"] for t in tools]
    if len(set(names)) != len(names):
        raise RowError("bad_tools", f"a function is defined twice: {sorted({n for n in names if names.count(n) > 1})}")
    return tools


def _calls(raw: dict, i: int, where: str, by_name: dict, has_tools: bool, warnings: list[str]) -> list[dict]:
    given = raw.get("tool_calls")
    if raw.get("function_call") is not None:
        if given:
            raise RowError("bad_content", f"both 'tool_calls' and legacy 'function_call' ({where}); keep one")
        given = [{"id": f"call_legacy_{i}", "type": "function", "function": raw["function_call"]}]
    if given is None:
        return []
    if not isinstance(given, list):
        raise RowError("bad_content", f"'tool_calls' must be a list ({where})")
    calls = []
    for call in given:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RowError("bad_content", f"a tool call must be {{'id', 'type': 'function', 'function': {{'name', "
                                          f"'arguments'}}}} ({where})")
        name = function["name"]
        if name not in by_name:
            defined = ", ".join(sorted(by_name)) or "none"
            raise RowError("undefined_tool", f"calls function {name!r}, which the row does not define ({where}; "
                                             f"defined: {defined}); add it to the row's 'tools'")
        arguments = function.get("arguments", "{}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise RowError("arguments_not_json", f"arguments of {name!r} are not JSON ({where}: {exc.msg} at "
                                                     f"character {exc.pos} of {arguments[:60]!r})") from None
        if not isinstance(arguments, dict):
            raise RowError("arguments_not_json", f"arguments of {name!r} must be a JSON object ({where}), got "
                                                 f"{type(arguments).__name__}")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise RowError("bad_content", f"a tool call needs an 'id' string ({where}, {name!r})")
        if any(c["id"] == call_id for c in calls):
            raise RowError("duplicate_call_id", f"two calls in one turn share the id {call_id!r} ({where}): a result "
                                                "could not say which it answers; give each call its own id")
        warnings += schema_mismatches(by_name[name], arguments, where)
        calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
    return calls


def _answered(raw: dict, where: str, open_calls: dict[str, dict]) -> dict:
    """The tool turn's `tool_call_id` and `name`, matched to the open call it answers."""
    call_id = raw.get("tool_call_id")
    if call_id is None and raw.get("role") == "function":  # legacy: answers the latest open call to that function
        call_id = next((k for k, c in reversed(open_calls.items()) if c["function"]["name"] == raw.get("name")), None)
    call = open_calls.pop(call_id, None) if isinstance(call_id, str) else None
    if call is None:
        raise RowError("orphan_tool_result", f"tool result answers no open call ({where}, tool_call_id "
                                             f"{call_id!r}); give the id of a call made earlier in the row")
    return {"tool_call_id": call_id, "name": call["function"]["name"]}


def _check_order(messages: list[dict]) -> None:
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        raise RowError("order", f"a system turn at turn {roles.index('system', 1)}; only the first turn may be one")
    turns = roles[1:] if roles[0] == "system" else roles
    if not turns:
        raise RowError("order", "the conversation has only a system turn")
    if turns[-1] != "assistant":
        raise RowError("order", f"the last turn must be the assistant answer to learn from, got role {turns[-1]}")
    for before, after in zip(turns, turns[1:]):
        if after == "tool" and before not in ("assistant", "tool"):
            raise RowError("order", "a tool result must follow the assistant turn that called the tool")
        if after == before and after != "tool":
            raise RowError("order", "user and assistant turns must alternate")
    if turns[0] != "user":
        raise RowError("order", "the conversation must start with a user turn (after an optional system turn)")
    if not learned_turns(messages):
        raise RowError("nothing_to_learn", "every assistant turn has weight 0: nothing to learn from this row")


def schema_mismatches(function: dict, arguments: dict, where: str) -> list[str]:
    """Why `arguments` do not match the function's `parameters` schema (empty when they do, or there is none)."""
    import jsonschema

    from tunestack.schemas import validator

    schema = function.get("parameters")
    if not schema:
        return []
    try:
        errors = sorted(validator(schema).iter_errors(arguments), key=lambda e: list(e.path))
    except jsonschema.SchemaError as exc:
        return [f"arguments_schema: {function['name']!r} has an invalid parameters schema ({where}): {exc.message}"]
    return [f"arguments_schema: arguments of {function['name']!r} do not match its parameters ({where}"
            f"{', at ' + '/'.join(map(str, e.path)) if e.path else ''}): {e.message}" for e in errors[:3]]
