"""What the API's fine-tuning files hold: one file's rows counted (format, tool rows, multi-turn rows, weight-0 turns,
rejects, the final answers' kinds and lengths), and the sizes init infers from them (eval and holdout splits,
`data.max_length`, `evaluate.max_new_tokens`). Pure: rows in, numbers out; the files are read by the caller.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

from tunestack.data.formats import Reject, Row
from tunestack.errors import DataError
from tunestack.evaluate.metrics import parse_json_object
from tunestack.tools import answer_text, tools_of

CHARS_PER_TOKEN = 3
"""Characters per token when sizing lengths from text: English runs about 4 on current tokenizers, JSON and code
about 3, so 3 errs long. Prepare measures every row under the model's own template anyway."""


@dataclass
class DataSummary:
    path: str
    format: str
    """`chat` or `preference` (rows with a rejected answer: `train.method: dpo`)."""
    rows: int
    rejects: list[Reject]
    tool_rows: int
    """Rows that define tools or call them."""
    multi_turn_rows: int
    """Rows with more than one user turn."""
    weight0_turns: int
    """Assistant turns with `weight: 0` (context, never a training target)."""
    weight0_rows: int
    warnings: int
    """Rows kept with a warning (tool arguments that do not match their schema)."""
    answers: Counter
    """The final answers' kinds: `json` (a JSON object), `tool_calls`, `text`."""
    json_answers: list[dict] = field(default_factory=list)
    longest_row_chars: int = 0
    longest_answer_chars: int = 0
    mean_prompt_chars: float = 0.0
    mean_answer_chars: float = 0.0

    def lines(self, role: str) -> list[str]:
        """What was found, for the terminal and the config's header."""
        kind = "preference pairs" if self.format == "preference" else "chat rows"
        out = [f"{role} {self.path}: {self.rows} {kind}"
               + (f", {len(self.rejects)} rejected" if self.rejects else "")]
        weights = plural(self.weight0_turns, "weight-0 turn") + (f" (in {plural(self.weight0_rows, 'row')})"
                                                                 if self.weight0_turns else "")
        out.append(f"  {plural(self.tool_rows, 'tool row')}, {plural(self.multi_turn_rows, 'multi-turn row')}, "
                   f"{weights}" + (f", {plural(self.warnings, 'row')} kept with a warning" if self.warnings else ""))
        kinds = ", ".join(f"{n} {ANSWER_WORDS[k]}" for k, n in self.answers.most_common())
        out.append(f"  final answers: {kinds}")
        for reject in self.rejects[:3]:
            out.append(f"  rejected {reject.file}:{reject.line}: {reject.reason}")
        if len(self.rejects) > 3:
            out.append(f"  ... and {len(self.rejects) - 3} more (prepare lists every one in rejects.jsonl)")
        return out


def plural(n: int, word: str) -> str:
    """A count and its noun.

    >>> plural(1, "row"), plural(3, "row")
    ('1 row', '3 rows')
    """
    return f"{n} {word}{'' if n == 1 else 's'}"


ANSWER_WORDS = {"json": "JSON objects", "tool_calls": "tool calls", "text": "free text"}


def answer_kind(message: dict) -> str:
    """What a final answer is: `tool_calls`, `json` (a JSON object) or `text`.

    >>> answer_kind({"role": "assistant", "content": '{"a": 1}'}), answer_kind({"role": "assistant", "content": "hi"})
    ('json', 'text')
    """
    if message.get("tool_calls"):
        return "tool_calls"
    return "json" if parse_json_object(message.get("content") or "") is not None else "text"


def row_format(row: Row) -> str:
    """`preference` for a row with a rejected answer (OpenAI's preference rows and prompt/chosen/rejected), else
    `chat`."""
    return "preference" if isinstance(row.meta.get("rejected"), str) else "chat"


def summarize(path: str, rows: list[Row], rejects: list[Reject]) -> DataSummary:
    """Counts and answer kinds of one file's rows; a file with no usable rows, or with chat and preference rows
    mixed, is a DataError naming file:line."""
    if not rows and not rejects:
        raise DataError(f"{path}: the file is empty: no rows to read (expected one JSON object per line, in "
                        "OpenAI's chat or preference fine-tuning format)")
    if not rows:
        first = "\n".join(f"  {r.file}:{r.line}: {r.reason}" for r in rejects[:3])
        raise DataError(f"{path}: no usable rows: all {len(rejects)} were rejected; the first:\n{first}")
    formats = Counter(row_format(r) for r in rows)
    fmt = formats.most_common(1)[0][0]
    if len(formats) > 1:
        odd = next(r for r in rows if row_format(r) != fmt)
        raise DataError(f"{odd.file}:{odd.line}: a {row_format(odd)} row in a file of {fmt} rows; a file holds one "
                        "format (chat rows for supervised training, preference rows for DPO): split it in two")
    answers, json_answers, prompts, finals = Counter(), [], [], []
    tool_rows = multi = w_turns = w_rows = 0
    longest = longest_answer = 0
    for row in rows:
        final = row.messages[-1]
        kind = answer_kind(final)
        answers[kind] += 1
        if kind == "json":
            json_answers.append(parse_json_object(final["content"]))
        tool_rows += bool(tools_of(row.messages) or any(m.get("tool_calls") for m in row.messages))
        multi += sum(m["role"] == "user" for m in row.messages) > 1
        zero = sum(m["role"] == "assistant" and m.get("weight") == 0 for m in row.messages)
        w_turns, w_rows = w_turns + zero, w_rows + bool(zero)
        text = answer_text(final)
        prompt_chars = len(json.dumps(row.messages[:-1], ensure_ascii=False))
        # the whole row as JSON: its keys stand in for the template's role headers; DPO also holds the rejected one
        longest = max(longest, prompt_chars + len(text) + len(row.meta.get("rejected") or ""))
        longest_answer = max(longest_answer, len(text), len(row.meta.get("rejected") or ""))
        prompts.append(prompt_chars)
        finals.append(len(text))
    return DataSummary(path, fmt, len(rows), rejects, tool_rows, multi, w_turns, w_rows,
                       sum(bool(getattr(r, "warnings", None)) for r in rows), answers, json_answers, longest,
                       longest_answer, sum(prompts) / len(rows), sum(finals) / len(rows))


def propose_splits(n: int, eval_given: bool) -> tuple[int, int]:
    """Eval and holdout rows for `n` usable rows: eval 10% of them, at least 20 (with 20 rows one answer moves the
    figure 5 points) and at most 200 (past it the Wilson interval narrows slowly, +-7 points at 200, and the rows
    train better); the holdout 5%, at least 10 and at most 100: it is read once, for one number. Small files
    give each at most a fifth and a tenth of the rows, so most of them still train. With a given eval file, only the
    holdout comes from the training rows.

    >>> propose_splits(100, False), propose_splits(5000, False), propose_splits(500, True)
    ((20, 10), (200, 100), (0, 25))
    """
    n_eval = 0 if eval_given else min(200, max(round(0.10 * n), min(20, n // 5), 1))
    n_holdout = min(100, max(round(0.05 * n), min(10, n // 10)))
    return n_eval, n_holdout


def lengths(summaries: list[DataSummary]) -> tuple[int, int, int]:
    """(data.max_length, evaluate.max_new_tokens, longest row in estimated tokens) from the longest row and answer:
    max_length in steps of 256, 512-8192; max_new_tokens 25% over the longest answer, in steps of 16, 32-2048."""
    row_tokens = max(s.longest_row_chars for s in summaries) / CHARS_PER_TOKEN
    answer_tokens = max(s.longest_answer_chars for s in summaries) / CHARS_PER_TOKEN
    max_length = min(8192, max(512, 256 * math.ceil(row_tokens / 256)))
    max_new = min(2048, max(32, 16 * math.ceil(1.25 * answer_tokens / 16)))
    return max_length, max_new, round(row_tokens)
