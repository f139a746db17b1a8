"""Reading chat-format JSONL and validating each row. Pure: no torch.

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
    if not isinstance(obj, dict) or "messages" not in obj:
        return None, "expected an object with a 'messages' list (OpenAI chat format)", text
    reason = check_messages(obj["messages"])
    return (None, reason, text) if reason else (obj, None, text)
