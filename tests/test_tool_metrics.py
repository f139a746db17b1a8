"""Issue 30, build 1: tool-call metrics in the registry. The truth is by construction: each generated answer below
is the reference with one known change (a wrong function, a wrong value, a missing argument, an argument of the
wrong type, a text answer where a call was due, a call where text was due), written in the forms the major templates
use (Hermes/Qwen `<tool_call>` tags, Llama 3.1 `parameters`, Mistral `[TOOL_CALLS]`, a bare JSON object), and the
expected score of every metric on every row is written beside it by hand."""

from __future__ import annotations

import pytest

from tunestack.config import EvaluateSection
from tunestack.evaluate.registry import TOOL_METRICS, task_scorer
from tunestack.tools import scored_pairs

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city"], "additionalProperties": False}}}
BOOK = {"type": "function", "function": {"name": "book_room", "parameters": {
    "type": "object", "properties": {"room": {"type": "integer"}, "day": {"type": "string"}},
    "required": ["room", "day"]}}}


def call(name: str, arguments: dict) -> dict:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


def row(reference: dict) -> list[dict]:
    return [{"role": "user", "content": "...", "tools": [WEATHER, BOOK]}, reference]


CALL_OSLO = {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo", "unit": "c"})]}
CALL_BOOK = {"role": "assistant", "content": "", "tool_calls": [call("book_room", {"room": 12, "day": "Mon"})]}
TEXT = {"role": "assistant", "content": "It is sunny."}

# (generated text, reference turn, expected: name, arguments, argument accuracy, schema valid, decision, format)
CASES = [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"unit": "c", "city": "Oslo"}}\n</tool_call>', CALL_OSLO,
     (1, 1, 1.0, 1, 1, 1)),
    ('{"name": "get_weather", "parameters": {"city": "Bergen", "unit": "c"}}', CALL_OSLO, (1, 0, 0.5, 1, 1, 1)),
    ('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Oslo"}}]', CALL_OSLO, (1, 0, 0.5, 1, 1, 1)),
    ('{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "k"}}', CALL_OSLO, (1, 0, 0.5, 0, 1, 1)),
    ('{"name": "book_room", "arguments": {"room": 12, "day": "Mon"}}', CALL_OSLO, (0, 0, 0.0, 1, 1, 1)),
    ('<tool_call>{"name": "book_room", "arguments": {"room": "12", "day": "Mon"}}</tool_call>', CALL_BOOK,
     (1, 0, 0.5, 0, 1, 1)),
    ("I would book room 12 on Monday.", CALL_BOOK, (0, 0, 0.0, 0, 0, 0)),
    ('{"name": "cancel_room", "arguments": {"room": 12}}', CALL_BOOK, (0, 0, 0.0, 0, 1, 1)),
    ("It is sunny.", TEXT, (1, 1, 1.0, 1, 1, None)),
    ('{"name": "get_weather", "arguments": {"city": "Oslo"}}', TEXT, (0, 0, 0.0, 1, 0, None)),
]


def test_every_tool_metric_scores_each_answer_as_constructed():
    section = EvaluateSection(metrics=list(TOOL_METRICS), format={"type": "none"})
    scorer = task_scorer(section)
    texts, turns = [c[0] for c in CASES], [c[1] for c in CASES]
    predictions, references = scored_pairs(texts, turns)
    out = scorer.score(predictions, references, [row(t) for t in turns])
    each = out["per_example"]["metrics"]
    for k, (text, _, expected) in enumerate(CASES):
        got = tuple(each[name][k] for name in TOOL_METRICS)
        assert got == pytest.approx(expected[:5]), (k, text, got)
        if expected[5] is not None:  # rows whose reference calls: the format is the call's shape
            assert out["per_example"]["format"][k] == expected[5], (k, text)
    for j, name in enumerate(TOOL_METRICS):  # the aggregate is the mean of what was constructed
        assert out["metrics"][name] == pytest.approx(sum(c[2][j] for c in CASES) / len(CASES))
    assert out["task_accuracy"] == out["metrics"]["tool_name"]


def test_a_text_row_keeps_the_configured_format_and_a_call_row_is_checked_as_a_call():
    section = EvaluateSection(metrics=["exact_match", "tool_decision"], format={"type": "regex", "pattern": r"[A-Z].*\."})
    scorer = task_scorer(section)
    texts = ["It is sunny.", "it is sunny", '{"name": "get_weather", "arguments": "Oslo"}',
             '{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}']
    turns = [TEXT, TEXT, CALL_OSLO, CALL_OSLO]
    predictions, references = scored_pairs(texts, turns)
    out = scorer.score(predictions, references, [row(t) for t in turns])
    assert out["per_example"]["format"] == [1, 0, 0, 1]
    assert out["per_example"]["metrics"]["exact_match"] == [1.0, 0.0, 0.0, 1.0]
    assert out["per_example"]["metrics"]["tool_decision"] == [1.0, 1.0, 0.0, 1.0]


def test_without_the_rows_tools_a_schema_check_has_nothing_to_pass():
    section = EvaluateSection(metrics=["tool_schema_valid"], format={"type": "none"})
    predictions, references = scored_pairs(['{"name": "get_weather", "arguments": {"city": "Oslo"}}'], [CALL_OSLO])
    assert task_scorer(section).score(predictions, references)["metrics"]["tool_schema_valid"] == 0.0
    assert task_scorer(section).score(predictions, references, [row(CALL_OSLO)])["metrics"]["tool_schema_valid"] == 1
