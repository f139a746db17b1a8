"""Token lengths under the model's chat template, and what happens to rows over `data.max_length`.

`truncate` never cuts the answer or its EOS (a model trained on cut answers learns never to stop): it drops the
oldest user/assistant exchanges first, then shortens the last user turn in the middle, keeping its head and tail.
A row whose answer alone is too long is rejected.
"""

from __future__ import annotations

import json
import math

from tqdm.auto import tqdm

from tunestack.chat import render_training
from tunestack.data.formats import Reject, Row
from tunestack.tools import tools_of, with_tools, without_tools

CHARS_PER_TOKEN_LIMIT = 16
"""No tokenizer packs more characters than this into a token: a longer row is too long without tokenizing it."""
ELLIPSIS = " [...] "


def fit_lengths(rows: list[Row], tokenizer, max_length: int, policy: str) -> tuple[list[Row], list[Reject], dict]:
    """Rows that fit (truncated ones included), rejects for the rest, and counts.

    With policy `fail` the over-long rows come back as rejects too; the caller writes them and stops. A row the chat
    template refuses (Mistral's and Gemma's raise on turns out of their order) is a reject of kind `template`."""
    kept, rejects = [], []
    stats = {"over_max_length": 0, "truncated": 0}
    for row in tqdm(rows, desc="token lengths", unit="row", disable=len(rows) < 5000):
        try:
            n = token_length(tokenizer, row.messages, max_length)
        except Exception as exc:  # noqa: BLE001 - the template's own raise_exception: this row, not the run
            rejects.append(Reject(row.file, row.line, f"the model's chat template cannot render this conversation: "
                                  f"{exc}", json.dumps({"messages": row.messages}, ensure_ascii=False), "template",
                                  row.origin, code="template"))
            continue
        if n <= max_length:
            kept.append((row, n))
            continue
        stats["over_max_length"] += 1
        if policy == "truncate":
            messages = truncate(tokenizer, row.messages, max_length)
            if messages is not None:
                stats["truncated"] += 1
                row.messages = messages
                row.meta["truncated"] = True
                kept.append((row, token_length(tokenizer, messages, max_length)))
                continue
            reason = f"the answer alone is longer than data.max_length={max_length} tokens: nothing can be truncated"
        else:
            reason = (f"{_describe(n)}, longer than data.max_length={max_length} (raise it, or set "
                      "data.too_long: truncate)")
        text = json.dumps({"messages": row.messages}, ensure_ascii=False)
        rejects.append(Reject(row.file, row.line, reason, text, "too_long", row.origin))
    for row, n in kept:
        row.tokens = n
    return [row for row, _ in kept], rejects, stats


def _describe(n: int) -> str:
    return f"{n} tokens" if n < math.inf else "far over the token limit (by character count)"


def token_length(tokenizer, messages: list[dict], max_length: int) -> float:
    """The longest training sequence the conversation renders to (`tunestack.chat.render_training`)."""
    chars = sum(len(m.get("content") or "") for m in messages) + len(json.dumps(tools_of(messages) or ""))
    if chars > max_length * CHARS_PER_TOKEN_LIMIT:
        return math.inf  # a 10 MB line is not worth tokenizing
    return max(len(r.input_ids) for r in render_training(tokenizer, messages))


def truncate(tokenizer, messages: list[dict], max_length: int) -> list[dict] | None:
    """The conversation shortened to fit, answer intact; None when the answer alone does not fit."""
    tools = tools_of(messages)
    messages = without_tools(messages)
    head = messages[:1] if messages[0]["role"] == "system" else []
    body = messages[len(head):]

    def conversation(turns: list[dict]) -> list[dict]:  # the tools ride on the first turn, whichever it now is
        return with_tools([*head, *turns], tools)

    while (later := _second_exchange(body)) and token_length(tokenizer, conversation(body), max_length) > max_length:
        body = body[later:]  # drop the oldest exchange: up to the next user turn, tool calls and results included
    if token_length(tokenizer, conversation(body), max_length) <= max_length:
        return conversation(body)
    user, answer = body[-2], body[-1]
    if user["role"] != "user":
        return None  # the answer follows tool results: they are the evidence it rests on, not to be cut
    text = user["content"]

    def shortened(keep: int) -> list[dict]:
        cut = text[: keep - keep // 2] + ELLIPSIS + text[len(text) - keep // 2:] if keep < len(text) else text
        return conversation([*body[:-2], {**user, "content": cut}, answer])

    lo, hi = 0, min(len(text), max_length * CHARS_PER_TOKEN_LIMIT)
    if token_length(tokenizer, shortened(lo), max_length) > max_length:
        return None
    while lo < hi:  # the longest kept prefix+suffix that fits
        mid = (lo + hi + 1) // 2
        if token_length(tokenizer, shortened(mid), max_length) <= max_length:
            lo = mid
        else:
            hi = mid - 1
    return shortened(lo)


def _second_exchange(body: list[dict]) -> int | None:
    """Where the conversation's second user turn is, if it has one."""
    return next((i for i in range(1, len(body)) if body[i]["role"] == "user"), None)


def length_stats(lengths: list[int]) -> dict:
    """min, mean, percentiles and max of token lengths.

    >>> length_stats([10, 20, 30, 40])
    {'count': 4, 'min': 10, 'mean': 25.0, 'p50': 20, 'p90': 40, 'p99': 40, 'max': 40}
    """
    if not lengths:
        return {"count": 0}
    ordered = sorted(lengths)

    def pct(q: float) -> int:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"count": len(ordered), "min": ordered[0], "mean": round(sum(ordered) / len(ordered), 1),
            "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": ordered[-1]}
