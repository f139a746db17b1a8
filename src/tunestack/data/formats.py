"""Reading JSONL rows in the common fine-tuning formats and validating each one. Pure: no torch.

Every row is normalised into one conversation form, `{"messages": [...]}`:
- chat (OpenAI): `{"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}`
- alpaca: `{"instruction": ..., "input": optional, "output": ..., "system": optional}`
- prompt/completion: `{"prompt": str, "completion": str}`, or both as message lists
Other keys of a row (source, reviewed, rating, tags, ...) are kept beside the messages.

A bad row never stops the read: it becomes a `Reject` with its file, line and reason, and the caller writes it to
`rejects.jsonl`. The counts always reconcile: read = kept + rejected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("system", "user", "assistant")


@dataclass
class Row:
    messages: list[dict]
    source: str
    line: int
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"messages": self.messages, "source": self.source, "line": self.line, **self.meta}


@dataclass
class Reject:
    source: str
    line: int
    reason: str
    text: str

    def to_json(self) -> dict:
        return {"source": self.source, "line": self.line, "reason": self.reason, "text": self.text[:2000]}


def check_messages(messages: object) -> str | None:
    """Why a `messages` value is not a usable conversation, or None if it is.

    >>> check_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]) is None
    True
    >>> check_messages([{"role": "user", "content": "hi"}])
    'the last turn must be the assistant answer to learn from, got role user'
    """
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list of {role, content} objects"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"turn {i} is not an object"
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            return f"turn {i} has unknown role {role!r}; expected one of {', '.join(ROLES)}"
        if not isinstance(content, str):
            return f"turn {i} ({role}) content must be a string, got {type(content).__name__}"
        if not content.strip():
            return f"turn {i} ({role}) is empty"
        if role == "system" and i != 0:
            return f"turn {i} is a system turn; only the first turn may be a system turn"
    turns = [m["role"] for m in messages if m["role"] != "system"]
    if turns[-1] != "assistant":
        return f"the last turn must be the assistant answer to learn from, got role {turns[-1]}"
    if any(a == b for a, b in zip(turns, turns[1:])):
        return "user and assistant turns must alternate"
    if turns[0] != "user":
        return "the conversation must start with a user turn (after an optional system turn)"
    return None


def read_chat_jsonl(path: Path, max_rows: int | None = None) -> tuple[list[Row], list[Reject]]:
    """Read `{"messages": [...]}` rows; every unusable line becomes a Reject with its reason."""
    rows: list[Row] = []
    rejects: list[Reject] = []
    source = str(path)
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if max_rows is not None and len(rows) >= max_rows:
                break
            row, reason, text = _parse_line(raw, number)
            if reason:
                rejects.append(Reject(source, number, reason, text))
            elif row is not None:
                rows.append(Row(row.pop("messages"), source, number, row))
    return rows, rejects


def _parse_line(raw: bytes, number: int) -> tuple[dict | None, str | None, str]:
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte-order mark on the first line is harmless
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 at byte {exc.start}; re-encode the file as UTF-8", raw.decode("utf-8", "replace")
    if not text.strip():
        return None, None, text  # blank lines are not rows
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at column {exc.colno})", text
    if not isinstance(obj, dict):
        return None, "expected a JSON object per line", text
    try:
        obj = to_messages(obj)
    except ValueError as exc:
        return None, str(exc), text
    reason = check_messages(obj["messages"])
    return (None, reason, text) if reason else (obj, None, text)


def to_messages(obj: dict) -> dict:
    r"""Normalise a chat, alpaca or prompt/completion row into `{"messages": [...], **other keys}`.

    >>> to_messages({"instruction": "Add", "input": "2 and 3", "output": "5", "source": "human"})["messages"][0]
    {'role': 'user', 'content': 'Add\n\n2 and 3'}
    >>> to_messages({"prompt": "Hi", "completion": "Hello"})["messages"][1]
    {'role': 'assistant', 'content': 'Hello'}
    """
    rest = dict(obj)
    if "messages" in rest:
        return rest
    if "instruction" in rest and "output" in rest:
        instruction, extra = rest.pop("instruction"), rest.pop("input", "") or ""
        if not isinstance(instruction, str) or not isinstance(extra, str):
            raise ValueError("alpaca row: 'instruction' and 'input' must be strings")
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        system = rest.pop("system", None)
        messages = ([{"role": "system", "content": system}] if system else [])
        return {"messages": [*messages, {"role": "user", "content": user},
                             {"role": "assistant", "content": rest.pop("output")}], **rest}
    if "prompt" in rest and "completion" in rest:
        prompt, completion = rest.pop("prompt"), rest.pop("completion")
        if isinstance(prompt, str) and isinstance(completion, str):
            return {"messages": [{"role": "user", "content": prompt},
                                 {"role": "assistant", "content": completion}], **rest}
        if isinstance(prompt, list) and isinstance(completion, list):
            return {"messages": [*prompt, *completion], **rest}
        raise ValueError("prompt/completion row: both must be strings, or both lists of messages")
    raise ValueError("unknown row format: expected 'messages' (chat), 'instruction'+'output' (alpaca) or "
                     "'prompt'+'completion'")
