"""Row formats: every supported row shape normalised into one conversation form, and validated. Pure: no torch.

Shapes (detected per row, or declared per source):
- chat (OpenAI's fine-tuning format in full: tools, tool calls, tool results, legacy functions, `weight`, text parts;
  `tunestack.data.openai_format` reads it): `{"messages": [{"role": ..., "content": ...}, ...], "tools": [...]}`
- alpaca: `{"instruction": ..., "input": optional, "output": ..., "system": optional}`
- prompt_completion: `{"prompt": str, "completion": str}`, or both as message lists
- preference: `{"prompt": ..., "chosen": ..., "rejected": ...}` with strings or message lists, or `chosen` and
  `rejected` as whole conversations that share everything but the last turn (TRL's implicit-prompt form), or
  OpenAI's `{"input": {"messages": ...}, "preferred_output": [...], "non_preferred_output": [...]}`

The normalised row is `{"messages": [...], **other keys}`, in the form `tunestack.tools` describes: for a preference
pair `messages` ends with the chosen answer and `rejected` holds the rejected one as a string. Provenance keys are
checked here too: `source` (synthetic, human or production), `reviewed` (bool), `rating` (number) and `tags` (list of
strings).

A bad row never stops a read: the caller gets a reason (a `RowError` with a code for the counts), and writes the row
to `rejects.jsonl` with its file and line. Warnings about a kept row (tool arguments that do not match their schema)
go to the list the caller passes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from tunestack.data.openai_format import (RowError, from_preference, is_openai_preference,
                                          normalize_messages)

FORMATS = ("chat", "alpaca", "prompt_completion", "preference")
TIERS = ("synthetic", "human", "production")
_TRUE, _FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n", ""}


@dataclass
class Row:
    messages: list[dict]
    file: str
    line: int
    meta: dict = field(default_factory=dict)
    origin: str = ""
    """The name of the configured source the row came from."""
    tokens: int = 0
    """Token length under the chat template, once measured."""
    warnings: list[str] = field(default_factory=list)
    """What is odd about the row but kept (`code: message`), for `warnings.jsonl`."""

    @property
    def tier(self) -> str:
        return self.meta.get("source") or "unspecified"

    def to_json(self) -> dict:
        return {"messages": self.messages, **self.meta, "origin": self.origin, "file": self.file, "line": self.line}


@dataclass
class Reject:
    file: str
    line: int
    reason: str
    text: str
    kind: str = "invalid"
    """invalid (malformed), quality (provenance policy), too_long, tier_cap, template (the chat template refuses it)."""
    origin: str = ""
    code: str = ""
    """For an invalid row, what is wrong in a word or two (`undefined_tool`, `bad_weight`, ...): what counts group
    by."""

    def to_json(self) -> dict:
        return {"origin": self.origin, "file": self.file, "line": self.line, "kind": self.kind,
                "code": self.code, "reason": self.reason, "text": self.text[:2000]}


def detect_format(obj: dict) -> str | None:
    """The row shape from its keys, or None.

    >>> detect_format({"prompt": "q", "chosen": "a", "rejected": "b"})
    'preference'
    """
    if "messages" in obj:
        return "chat"  # a chat row may carry a `rejected` answer of its own (tunestack's outputs do)
    if is_openai_preference(obj):
        return "preference"
    if "chosen" in obj or "rejected" in obj:
        return "preference"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    if "prompt" in obj and "completion" in obj:
        return "prompt_completion"
    return None


def normalize_row(obj: dict, declared: str = "auto", warnings: list[str] | None = None) -> dict:
    """A raw row as `{"messages": [...], **other keys}`, checked; raises RowError (a ValueError) with the reason.

    >>> normalize_row({"instruction": "Add", "input": "2 and 3", "output": "5"})["messages"][0]
    {'role': 'user', 'content': 'Add\\n\\n2 and 3'}
    >>> normalize_row({"prompt": "Hi", "chosen": "Hello", "rejected": "Hello"})
    Traceback (most recent call last):
    ...
    tunestack.data.openai_format.RowError: chosen and rejected answers are identical: the pair teaches no preference
    """
    shape = detect_format(obj)
    if shape is None:
        raise RowError("unknown_format", f"unknown row format (keys: {', '.join(sorted(obj)) or 'none'}): expected "
                                         "'messages' (chat), 'instruction'+'output' (alpaca), 'prompt'+'completion', "
                                         "or 'chosen'+'rejected' (preference); map other column names with the "
                                         "source's `columns`")
    if declared != "auto" and shape != declared:
        raise RowError("unknown_format", f"expected a {declared} row, this one looks like {shape} "
                                         f"(keys: {', '.join(sorted(obj))})")
    row = _NORMALIZERS[shape](dict(obj))
    row["messages"] = normalize_messages(row, warnings)
    for key in ("tools", "functions"):
        row.pop(key, None)  # now on the first message
    reason = check_provenance(row)
    if reason:
        raise RowError("provenance", reason)
    return row


def _chat(rest: dict) -> dict:
    return rest


def _alpaca(rest: dict) -> dict:
    instruction, extra = rest.pop("instruction"), rest.pop("input", "") or ""
    if not isinstance(instruction, str) or not isinstance(extra, str):
        raise RowError("bad_content", "alpaca row: 'instruction' and 'input' must be strings")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    system = rest.pop("system", None)
    head = [{"role": "system", "content": system}] if system else []
    return {"messages": [*head, {"role": "user", "content": user},
                         {"role": "assistant", "content": rest.pop("output")}], **rest}


def _prompt_completion(rest: dict) -> dict:
    prompt, completion = rest.pop("prompt"), rest.pop("completion")
    return {"messages": [*_prompt_turns(prompt, rest.pop("system", None)), *_answer_turns(completion, "completion")],
            **rest}


def _preference(rest: dict) -> dict:
    if is_openai_preference(rest):
        rest = from_preference(rest)
    if "chosen" not in rest or "rejected" not in rest:
        raise RowError("bad_preference", "preference row needs both 'chosen' and 'rejected'")
    chosen, rejected = rest.pop("chosen"), rest.pop("rejected")
    if "prompt" in rest:
        prompt = _prompt_turns(rest.pop("prompt"), rest.pop("system", None))
        chosen_turns, rejected_turns = _answer_turns(chosen, "chosen"), _answer_turns(rejected, "rejected")
    elif isinstance(chosen, list) and isinstance(rejected, list) and chosen and rejected:
        if chosen[:-1] != rejected[:-1]:  # implicit prompt: the conversations must differ only in the last turn
            raise RowError("bad_preference", "preference row without 'prompt': chosen and rejected must be the same "
                                             "conversation except for the last (assistant) turn")
        prompt, chosen_turns, rejected_turns = chosen[:-1], chosen[-1:], rejected[-1:]
    else:
        raise RowError("bad_preference", "preference row: give 'prompt' with 'chosen'/'rejected', or 'chosen' and "
                                         "'rejected' as whole conversations (message lists)")
    if len(chosen_turns) != 1 or len(rejected_turns) != 1 or not all(
            isinstance(t, dict) for t in (*chosen_turns, *rejected_turns)):
        raise RowError("bad_preference", "preference row: chosen and rejected must each be one assistant answer "
                         "(a string or one {role: assistant, content} message)")
    chosen_text, rejected_text = chosen_turns[0].get("content"), rejected_turns[0].get("content")
    if rejected_turns[0].get("role") != "assistant" or not isinstance(rejected_text, str) or not rejected_text.strip():
        raise RowError("bad_preference", "preference row: 'rejected' must be a non-empty assistant answer")
    if isinstance(chosen_text, str) and " ".join(chosen_text.split()) == " ".join(rejected_text.split()):
        raise RowError("identical_pair", "chosen and rejected answers are identical: the pair teaches no preference")
    return {"messages": [*prompt, *chosen_turns], "rejected": rejected_text, **rest}


def _prompt_turns(prompt: object, system: object) -> list[dict]:
    head = [{"role": "system", "content": system}] if system else []
    if isinstance(prompt, str):
        return [*head, {"role": "user", "content": prompt}]
    if isinstance(prompt, list):
        return [*head, *prompt]
    raise RowError("bad_content", f"'prompt' must be a string or a list of messages, got {type(prompt).__name__}")


def _answer_turns(answer: object, key: str) -> list[dict]:
    if isinstance(answer, str):
        return [{"role": "assistant", "content": answer}]
    if isinstance(answer, list):
        return answer
    raise RowError("bad_content", f"'{key}' must be a string or a list of messages, got {type(answer).__name__}")


_NORMALIZERS = {"chat": _chat, "alpaca": _alpaca, "prompt_completion": _prompt_completion, "preference": _preference}


def check_provenance(row: dict) -> str | None:
    """Check, and coerce in place (CSV cells are strings), the provenance keys of a normalised row.

    >>> r = {"source": "production", "reviewed": "yes", "rating": "4", "tags": "a, b"}
    >>> check_provenance(r), r["reviewed"], r["rating"], r["tags"]
    (None, True, 4.0, ['a', 'b'])
    """
    source = row.get("source")
    if source is not None and source not in TIERS:
        return f"'source' is {source!r}; expected one of {', '.join(TIERS)} (or leave it out)"
    if "reviewed" in row and not isinstance(row["reviewed"], bool):
        text = str(row["reviewed"]).strip().lower()
        if text not in _TRUE | _FALSE:
            return f"'reviewed' must be true or false, got {row['reviewed']!r}"
        row["reviewed"] = text in _TRUE
    if row.get("rating") is not None:
        if isinstance(row["rating"], bool):
            return f"'rating' must be a number, got {row['rating']!r}"
        try:
            row["rating"] = float(row["rating"])
        except (TypeError, ValueError):
            return f"'rating' must be a number, got {row['rating']!r}"
        if not math.isfinite(row["rating"]):
            return f"'rating' must be a finite number, got {row['rating']}"
    if "tags" in row:
        tags = row["tags"]
        if isinstance(tags, str) and tags.strip().startswith("["):
            try:
                tags = row["tags"] = json.loads(tags)
            except json.JSONDecodeError:
                pass
        if isinstance(tags, str):
            row["tags"] = [t.strip() for t in tags.split(",") if t.strip()]
        elif not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            return "'tags' must be a list of strings (or one comma-separated string)"
    return None


def parse_json_cell(value: object) -> object:
    """A CSV/Parquet cell holding a JSON list of messages (a `messages` or `prompt` column) is decoded; anything
    else, a JSON answer included, stays the string it is.

    >>> parse_json_cell('[{"role": "user", "content": "hi"}]'), parse_json_cell('{"a": 1}')
    ([{'role': 'user', 'content': 'hi'}], '{"a": 1}')
    """
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(decoded, list) and decoded and all(isinstance(m, dict) and "role" in m for m in decoded):
            return decoded
    return value
