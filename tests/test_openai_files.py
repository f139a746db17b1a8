"""The OpenAI-format fixtures in tests/openai_files.py are what they claim. These tests check the fixture files
themselves, with a small reference checker written here and jsonschema, never tunestack's reader."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator
from openai_files import (ARGUMENTS_NOT_JSON, ARGUMENTS_SCHEMA, BAD_WEIGHT, ORPHAN_TOOL_RESULT, REJECT_CODES,
                          UNDEFINED_TOOL, UNSUPPORTED_PART, write_invalid, write_preference, write_sft,
                          write_validation)

CALL_ID = re.compile(r"call_[A-Za-z0-9]{24}")
MARKER = re.compile(r"\((ANS|CTX|NOT)-(\d+)-(\d+)\)$")
TICKET = re.compile(r"^\[#\d+\] ")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openai")
    return {"sft": write_sft(folder), "validation": write_validation(folder), "invalid": write_invalid(folder),
            "preference": write_preference(folder)}


def calls(m: dict) -> list[dict]:
    if "tool_calls" in m:
        return [call["function"] for call in m["tool_calls"]]
    return [m["function_call"]] if "function_call" in m else []


def parameters(row: dict) -> dict[str, dict]:
    defined = {t["function"]["name"]: t["function"]["parameters"] for t in row.get("tools", [])}
    return defined | {f["name"]: f["parameters"] for f in row.get("functions", [])}


def defects(row: dict) -> list[tuple[str, int]]:
    """(code, 1-based turn) of every defect a reader must reject the row for."""
    found, seen, defined = [], set(), parameters(row)
    for turn, m in enumerate(row["messages"], 1):
        content = m.get("content")
        if isinstance(content, list) and any(part.get("type") != "text" for part in content):
            found.append((UNSUPPORTED_PART, turn))
        if m["role"] == "assistant" and "weight" in m and (type(m["weight"]) is not int or m["weight"] not in (0, 1)):
            found.append((BAD_WEIGHT, turn))
        for function in calls(m):
            if function["name"] not in defined:
                found.append((UNDEFINED_TOOL, turn))
            try:
                json.loads(function["arguments"])
            except ValueError:
                found.append((ARGUMENTS_NOT_JSON, turn))
        seen |= {call["id"] for call in m.get("tool_calls", [])}
        if m["role"] == "tool" and m["tool_call_id"] not in seen:
            found.append((ORPHAN_TOOL_RESULT, turn))
    return found


def mismatches(row: dict) -> list[str]:
    """The JSON Schema keyword (required, type, enum, additionalProperties) of each way a call's arguments break its
    function's `parameters`, by jsonschema."""
    defined = parameters(row)
    return [error.validator for m in row["messages"] for f in calls(m)
            for error in Draft202012Validator(defined[f["name"]]).iter_errors(json.loads(f["arguments"]))]


def targets(row: dict) -> tuple[list[str], list[str]]:
    learned, context = [], []
    for m in row["messages"]:
        if m["role"] == "assistant":
            (context if m.get("weight") == 0 else learned).extend([f["name"] for f in calls(m)] or [m["content"]])
    return learned, context


def chat_rows(fixture) -> list[dict]:
    return [row["input"] if "input" in row else row for row in fixture.rows]


def test_every_line_is_json_and_is_the_row(files):
    for fixture in files.values():
        lines = fixture.path.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == fixture.rows
        assert len(fixture.learned) == len(fixture.context_only) == len(fixture.tool_names) == len(lines)


def test_valid_files_have_no_defect_and_arguments_match_their_schema(files):
    for name in ("sft", "validation", "preference"):
        fixture = files[name]
        assert not fixture.expected_rejects and not fixture.expected_warnings
        for row in chat_rows(fixture):
            assert defects(row) == [] and mismatches(row) == []
            for m in row["messages"]:
                assert m.get("weight", 1) in (0, 1) and (m["role"] != "assistant" or "content" in m)
                assert all(isinstance(f["arguments"], str) for f in calls(m))
                if calls(m):
                    assert m["content"] is None


def test_invalid_lines_have_exactly_their_defect(files):
    fixture = files["invalid"]
    for line, row in enumerate(fixture.rows, 1):
        code = fixture.expected_rejects.get(line)
        assert defects(row) == ([(code, fixture.defect_turns[line])] if code else []), line
        if line in fixture.expected_warnings:
            assert fixture.expected_warnings[line] == ARGUMENTS_SCHEMA
            assert len(mismatches(row)) == 1, line
        elif code is None:
            assert mismatches(row) == [], line


def test_invalid_counts_and_turn_positions(files):
    fixture = files["invalid"]
    codes = list(fixture.expected_rejects.values())
    assert set(codes) == set(REJECT_CODES) and all(codes.count(code) >= 3 for code in REJECT_CODES)
    assert len(fixture.expected_warnings) >= 4 and not set(fixture.expected_warnings) & set(fixture.expected_rejects)
    valid = set(range(1, len(fixture.rows) + 1)) - set(fixture.expected_rejects) - set(fixture.expected_warnings)
    assert len(valid) >= 4
    for code in REJECT_CODES:
        turns = {fixture.defect_turns[line] for line, c in fixture.expected_rejects.items() if c == code}
        assert len(turns) >= 2, code
    warned = [e for line in fixture.expected_warnings for e in mismatches(fixture.rows[line - 1])]
    assert set(warned) == {"required", "type", "enum", "additionalProperties"}


def test_markers_are_unique_and_the_truth_matches_the_rows(files):
    for name, fixture in files.items():
        text = fixture.path.read_text(encoding="utf-8")
        for i, row in enumerate(fixture.rows):
            texts = fixture.learned[i] + fixture.context_only[i] + fixture.non_preferred[i:i + 1]
            for t in (t for t in texts if MARKER.search(t)):
                index = MARKER.search(t).group(2)
                assert int(index) == i and text.count(MARKER.search(t).group(0)) == 1, t
            assert all(MARKER.search(t).group(1) == "CTX" for t in fixture.context_only[i])
            if name == "preference":
                assert fixture.learned[i] == [row["preferred_output"][0]["content"]]
                assert fixture.non_preferred[i] == row["non_preferred_output"][0]["content"]
                assert fixture.context_only[i] == [m["content"] for m in row["input"]["messages"]
                                                   if m["role"] == "assistant" and m["content"]]
            elif i + 1 not in fixture.expected_rejects or fixture.expected_rejects[i + 1] == UNDEFINED_TOOL:
                assert (fixture.learned[i], fixture.context_only[i]) == targets(row), (name, i)
            assert fixture.tool_names[i] == set(parameters(chat_rows(fixture)[i]))


def test_call_ids_are_unique_and_shaped_like_openai(files):
    ids = [call["id"] for fixture in files.values() for row in chat_rows(fixture) for m in row["messages"]
           for call in m.get("tool_calls", [])]
    assert len(ids) == len(set(ids)) > 100 and all(CALL_ID.fullmatch(i) for i in ids)


def test_sft_covers_the_documented_shapes(files):
    rows = files["sft"].rows
    has = lambda test: sum(1 for row in rows if test(row))  # noqa: E731
    msgs = lambda row, role: [m for m in row["messages"] if m["role"] == role]  # noqa: E731
    assert has(lambda r: any(t["function"].get("strict") is True for t in r.get("tools", []))) >= 5
    assert has(lambda r: any(t["function"].get("strict") is None for t in r.get("tools", []))) >= 5
    parallel = [r for r in rows if r.get("parallel_tool_calls") is True and any(len(m.get("tool_calls", [])) > 1
                                                                                 for m in r["messages"])]
    assert {len(m["tool_calls"]) for r in parallel for m in r["messages"] if "tool_calls" in m} >= {2, 3}
    assert has(lambda r: any("name" in m for m in msgs(r, "tool"))) and has(
        lambda r: any("name" not in m for m in msgs(r, "tool")))
    assert has(lambda r: "functions" in r and msgs(r, "function") and all("name" in m for m in msgs(r, "function")))
    assert has(lambda r: "tools" not in r and "functions" not in r) >= 5
    assert has(lambda r: any(m.get("weight") == 0 for m in r["messages"])) >= 10
    assert has(lambda r: any(m.get("weight") == 1 for m in r["messages"])) >= 10
    assert has(lambda r: calls(r["messages"][-1])) >= 5 and has(lambda r: not calls(r["messages"][-1])) >= 40
    assert {len(msgs(r, "user")) for r in rows} >= {1, 2, 3, 4}
    assert has(lambda r: r["messages"][0]["role"] == "system") >= 0.7 * len(rows)
    for role in ("user", "system"):
        assert has(lambda r: any(isinstance(m["content"], list) for m in msgs(r, role))) >= 3
    text = files["sft"].path.read_text(encoding="utf-8")
    assert all(s in text for s in ("ER+ PR-", "−", "°C", "×", "の", "strict", '"additionalProperties": false'))
    schemas = json.dumps([r.get("tools") for r in rows])
    assert all(s in schemas for s in ('"enum"', '"type": "array"', '"required"', '"when": {"type": "object"'))


def test_validation_is_not_a_copy_of_train(files):
    def content(row):  # the row with tickets, markers and call ids left out
        return re.sub(r"\[#\d+\] |\((ANS|CTX)-\d+-\d+\)|call_[A-Za-z0-9]{24}", "", json.dumps(row["messages"]))

    train = {content(row) for row in files["sft"].rows}
    assert not any(content(row) in train for row in files["validation"].rows)
    firsts = lambda f: {json.dumps(next(m for m in r["messages"] if m["role"] == "user")) for r in f.rows}  # noqa
    assert not firsts(files["sft"]) & firsts(files["validation"])


def test_preference_rows(files):
    fixture = files["preference"]
    assert len(fixture.rows) == 30
    for row in fixture.rows:
        assert set(row) == {"input", "preferred_output", "non_preferred_output"}
        good, bad = row["preferred_output"], row["non_preferred_output"]
        assert len(good) == len(bad) == 1 and good[0]["role"] == bad[0]["role"] == "assistant"
        assert good[0]["content"] != bad[0]["content"] and row["input"]["messages"][-1]["role"] in ("user", "tool")
        assert not any("weight" in m for m in row["input"]["messages"])
    inputs = [row["input"] for row in fixture.rows]
    assert sum("tools" in i for i in inputs) >= 5 and sum("parallel_tool_calls" in i for i in inputs) >= 5
    assert sum(sum(m["role"] == "user" for m in i["messages"]) > 1 for i in inputs) >= 5


def test_files_are_deterministic(files, tmp_path):
    for name, write in (("sft", write_sft), ("validation", write_validation), ("invalid", write_invalid),
                        ("preference", write_preference)):
        assert write(tmp_path).path.read_bytes() == files[name].path.read_bytes()
