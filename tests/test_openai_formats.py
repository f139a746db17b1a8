"""OpenAI's fine-tuning files read as they are (tests/openai_files.py builds them, with their truth): every valid row
accepted whole, each invalid kind refused with its code, file and line, schema mismatches kept as warnings, the
preference format read; the reason summary names reasons, not turn numbers. Then the loss mask of every family: each
learned assistant turn (text or calls) is a label span ending in the end-of-turn token, a weight-0 turn never is."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openai_files import REJECT_CODES, write_invalid, write_preference, write_sft, write_validation

from tunestack.data.formats import Row
from tunestack.data.prepare import Ledger, reject_rate_problems
from tunestack.data.readers import read_source
from tunestack.tools import answer_text, scored_answer


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("openai")
    return {"sft": write_sft(folder), "validation": write_validation(folder), "invalid": write_invalid(folder),
            "preference": write_preference(folder)}


@pytest.mark.parametrize("name", ["sft", "validation", "preference"])
def test_documented_files_are_accepted_whole(files, name):
    fixture = files[name]
    rows, rejects = read_source(fixture.path)
    assert not rejects, [(r.line, r.reason) for r in rejects]
    assert len(rows) == len(fixture.rows)
    assert not [r.line for r in rows if r.warnings]


def test_sft_rows_keep_tools_calls_results_and_weights(files):
    fixture = files["sft"]
    rows, _ = read_source(fixture.path)
    for row, raw, names in zip(rows, fixture.rows, fixture.tool_names):
        offered = {t["function"]["name"] for t in row.messages[0].get("tools") or []}
        assert offered == names, row.line
        calls = [c for m in row.messages for c in m.get("tool_calls") or []]
        raw_calls = [c["function"] if "function" in c else c
                     for m in raw["messages"] for c in m.get("tool_calls") or ([m["function_call"]]
                                                                                if m.get("function_call") else [])]
        assert [c["function"]["name"] for c in calls] == [c["name"] for c in raw_calls]
        assert [c["function"]["arguments"] for c in calls] == [json.loads(c["arguments"]) for c in raw_calls]
        answered = {m["tool_call_id"] for m in row.messages if m["role"] == "tool"}
        assert answered <= {c["id"] for c in calls}
        weights = [m.get("weight") for m in row.messages if m["role"] == "assistant"]
        assert weights.count(0) == len([m for m in raw["messages"] if m.get("weight") == 0])
        for m in row.messages:
            assert isinstance(m["content"], str)  # text parts joined, null content as ""
    text_parts = [raw for raw in fixture.rows if any(isinstance(m.get("content"), list) for m in raw["messages"])]
    legacy = [raw for raw in fixture.rows if "functions" in raw]
    parallel = [raw for raw in fixture.rows if any(len(m.get("tool_calls") or []) > 1 for m in raw["messages"])]
    assert text_parts and legacy and parallel  # the fixture covers them; read whole above


def test_each_invalid_kind_is_refused_with_its_code_file_and_line(files):
    fixture = files["invalid"]
    rows, rejects = read_source(fixture.path)
    assert {r.line: r.code for r in rejects} == fixture.expected_rejects
    assert set(fixture.expected_rejects.values()) == set(REJECT_CODES)
    assert len(rows) + len(rejects) == len(fixture.rows)
    for reject in rejects:
        assert reject.file == str(fixture.path) and reject.reason
        if reject.code == "unsupported_part":
            assert "not supported" in reject.reason
    warned = {r.line: [w.split(":")[0] for w in r.warnings] for r in rows if r.warnings}
    assert set(warned) == set(fixture.expected_warnings)
    assert all("arguments_schema" in codes for codes in warned.values())


def test_the_reason_summary_names_reasons_not_turns(files):
    fixture = files["invalid"]
    rows, rejects = read_source(fixture.path, origin="openai")
    ledger = Ledger()
    ledger.add("openai", "read", len(rows) + len(rejects))
    ledger.add("openai", "invalid", len(rejects))
    (problem,) = reject_rate_problems(ledger, rejects, 0.1)
    for code in REJECT_CODES:
        assert f"4x {code}" in problem
    assert not re.search(r"\d+x turn", problem)
    assert "invalid.jsonl:" in problem  # where the first of each is


def test_preference_rows_become_prompt_chosen_rejected(files):
    fixture = files["preference"]
    rows, _ = read_source(fixture.path)
    for row, raw, chosen, rejected in zip(rows, fixture.rows, fixture.learned, fixture.non_preferred):
        assert row.messages[-1] == {"role": "assistant", "content": chosen[0]}
        assert row.meta["rejected"] == rejected
        assert len(row.messages) == len(raw["input"]["messages"]) + 1
        assert bool(row.messages[0].get("tools")) == bool(raw["input"].get("tools"))


def test_a_normalised_row_reads_back_the_same(files):
    """train.jsonl holds the internal form; review and synth normalise it again: nothing may change."""
    from tunestack.data.formats import normalize_row

    rows, _ = read_source(files["sft"].path)
    for row in rows:
        again = normalize_row({"messages": row.messages, **row.meta})
        assert again["messages"] == row.messages


# --- labels, per family -----------------------------------------------------------------------------------------

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}


def call(n: int, city: str) -> dict:
    return {"id": f"call_{n:024d}", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": city}}}


CONVERSATION = [
    {"role": "system", "content": "You answer about the weather.", "tools": [TOOL]},
    {"role": "user", "content": "Weather in Alphaville and Betatown?"},
    {"role": "assistant", "content": "", "tool_calls": [call(1, "Alphaville"), call(2, "Betatown")]},
    {"role": "tool", "tool_call_id": call(1, "")["id"], "name": "get_weather", "content": "{\"temp\": 21}"},
    {"role": "tool", "tool_call_id": call(2, "")["id"], "name": "get_weather", "content": "{\"temp\": 3}"},
    {"role": "assistant", "content": "Contextzero says 21 and 3.", "weight": 0},
    {"role": "user", "content": "And Gammaburg?"},
    {"role": "assistant", "content": "", "tool_calls": [call(3, "Gammaburg")], "weight": 1},
    {"role": "tool", "tool_call_id": call(3, "")["id"], "name": "get_weather", "content": "{\"temp\": 25}"},
    {"role": "assistant", "content": "Finalanswer Gammaburg is 25."},
]
LEARNED = ["Alphaville", "Betatown", "Gammaburg", "Finalanswer Gammaburg is 25."]
"""What the labels must hold, by construction: the calls' arguments and the last answer."""
NEVER = ["Contextzero", "answer about the weather", "Weather in Alphaville", "\"temp\""]
"""What they must not: the weight-0 turn, the system and user turns, the tool results."""


def label_spans(tokenizer, rendered) -> list[str]:
    from tunestack.chat import IGNORE_INDEX

    spans, current = [], []
    for token, label in zip(rendered.input_ids, rendered.labels):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    return spans + ([current] if current else [])


def family_tokenizer(name: str, folder: Path):
    from families import build_family_model
    from transformers import AutoTokenizer, GenerationConfig

    from tunestack.models.templates import PLAIN
    from tunestack.models.tokens import fix_stop_tokens

    corpus = [" ".join(LEARNED + NEVER + ["get_weather city tool_call arguments name"])] * 20
    build_family_model(name, folder, corpus)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = PLAIN  # what `model.chat_template: plain` gives a base model
    fix_stop_tokens(tokenizer, GenerationConfig.from_pretrained(folder))
    return tokenizer


NATIVE = {"llama3": (True, False), "qwen2.5": (False, False), "qwen3": (False, False), "mistral": (False, True)}
"""Families whose template renders tools: (one call per turn, 9-character ids)."""


@pytest.mark.parametrize("name", ["base", "gemma2", "gemma3", "llama3", "mistral", "novel", "phi3.5", "phi4",
                                  "qwen2.5", "qwen3", "smollm2"])
def test_loss_mask_per_turn(name, tmp_path):
    from tunestack.chat import render_prompt, render_training, tool_support

    tokenizer = family_tokenizer(name, tmp_path / name)
    support = tool_support(tokenizer)
    assert support.native == (name in NATIVE)
    if name in NATIVE:
        assert (support.one_call, support.short_ids) == NATIVE[name]
    sequences = render_training(tokenizer, CONVERSATION)
    eos = tokenizer.eos_token_id
    learned_text = []
    for rendered in sequences:
        spans = label_spans(tokenizer, rendered)
        assert spans, "a sequence with nothing to learn"
        for span in spans:
            assert span[-1] == eos and span.count(eos) == 1  # each turn ends with its end-of-turn token, once
            learned_text.append(tokenizer.decode(span))
    joined = "\n".join(learned_text)
    for text in LEARNED:
        assert text in joined, (text, learned_text)
    for text in NEVER:
        assert text not in joined, (text, learned_text)
    # what generation sees: the prompt of the last answer is exactly the ids before its labels
    last = sequences[-1]
    final = len(label_spans(tokenizer, last)[-1])
    assert render_prompt(tokenizer, CONVERSATION[:-1]) == last.input_ids[: len(last.input_ids) - final]
    # a model that writes the call exactly as it learned it is scored right, whatever the family's written form
    call_turn = CONVERSATION[7]
    written = tokenizer.decode(label_spans(tokenizer, render_training(tokenizer, CONVERSATION[:8])[-1])[-1],
                               skip_special_tokens=True)
    assert scored_answer(written, call_turn) == answer_text(call_turn) == 'get_weather({"city":"Gammaburg"})'


def test_llama3_names_tool_results_ipython_and_takes_parallel_calls_one_by_one(tmp_path):
    from tunestack.chat import render_text

    text = render_text(family_tokenizer("llama3", tmp_path / "llama3"), CONVERSATION)
    assert text.count("<|start_header_id|>ipython<|end_header_id|>") == 3
    # its template writes a result as a JSON string: {"temp": 21} comes back quoted
    assert text.index("Alphaville\"}}") < text.index('\\"temp\\": 21') < text.index("Betatown\"}}")


def test_mistral_gets_nine_character_ids_mapped_alike_for_call_and_result(tmp_path):
    from tunestack.chat import render_text

    text = render_text(family_tokenizer("mistral", tmp_path / "mistral"), CONVERSATION)
    ids = re.findall(r'"id": "([A-Za-z0-9]+)"', text)
    results = re.findall(r'"call_id": "([A-Za-z0-9]+)"', text)
    assert len(ids) == 3 and all(len(i) == 9 for i in ids)
    assert results == ids and len(set(ids)) == 3
    assert "call_0000" not in text


def test_fallback_puts_tools_in_the_system_turn_and_calls_in_one_wrapper(tmp_path):
    from tunestack.chat import render_text

    text = render_text(family_tokenizer("smollm2", tmp_path / "smollm2"), CONVERSATION)
    system = text[: text.index("Weather in Alphaville")]
    assert "get_weather" in system and "Weather in a city" in system
    assert text.count("<tool_call>{\"name\": \"get_weather\"") == 3
    assert text.count("<tool_response") == 3
    assert text.count("<|im_start|>user\n<tool_response") == 2  # the two parallel results share one user turn


# --- the data checks see calls ------------------------------------------------------------------------------------

def tool_row(line: int, city: str, *, unit: str = "celsius", swapped: bool = False, question: str = "Weather?"):
    arguments = {"unit": unit, "city": city} if swapped else {"city": city, "unit": unit}
    return Row([{"role": "user", "content": question, "tools": [TOOL]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": f"call_{line}", "type": "function",
                     "function": {"name": "get_weather", "arguments": arguments}}]}], "t.jsonl", line)


def test_dedup_and_conflicts_compare_a_call_by_name_and_canonical_arguments():
    from tunestack.data.clean import filler_words, remove_conflicts, remove_duplicates

    rows = [tool_row(1, "Paris"), tool_row(2, "Paris", swapped=True),  # the same call, arguments reordered: a copy
            tool_row(3, "Oslo", question="Oslo?"),                      # another question, another call
            tool_row(4, "Paris", unit="fahrenheit", question="Paris?"),  # not a copy of 1: another question and unit
            tool_row(5, "Rome", question="Paris?")]                     # 4's question, another call: a conflict
    kept, duplicates, weights = remove_duplicates(rows, filler_words([]))
    assert [r.line for r in kept] == [1, 3, 4, 5]
    assert [(d["line"], d["kind"]) for d in duplicates] == [(2, "exact")]
    kept, conflicts = remove_conflicts(kept, weights, "drop", filler_words([]))
    assert [r.line for r in kept] == [1, 3]
    assert sorted(c["line"] for c in conflicts) == [4, 5]
    assert "get_weather" in conflicts[0]["evidence"]


def test_truncation_drops_whole_exchanges_and_keeps_the_tools(tmp_path):
    """Over max_length, the oldest exchanges go first, each with its calls and results, and the tools stay offered
    (they ride on the first turn, which is dropped)."""
    from tunestack.chat import render_training
    from tunestack.data.lengths import token_length, truncate

    tokenizer = family_tokenizer("qwen2.5", tmp_path / "qwen")
    conversation = [{"role": "user", "content": "Weather in Alphaville and Betatown? " * 20, "tools": [TOOL]},
                    *CONVERSATION[2:]]
    full = token_length(tokenizer, conversation, 10_000)
    limit = full - 20
    cut = truncate(tokenizer, conversation, limit)
    assert cut is not None and token_length(tokenizer, cut, limit) <= limit
    assert cut[0]["role"] == "user" and cut[0]["content"] == "And Gammaburg?"  # the first exchange went whole
    assert cut[0]["tools"] == [TOOL] and cut[1:] == CONVERSATION[7:]
    assert render_training(tokenizer, cut)[-1].n_targets > 0


# --- edge cases a review found ------------------------------------------------------------------------------------

def test_alpaca_input_that_looks_like_json_stays_text(tmp_path):
    path = tmp_path / "alpaca.csv"
    path.write_text('instruction,input,output\nSummarise this record,"{""name"": ""Ann""}",Ann is 3.\n'
                    'Add them,"[1, 2, 3]",6\n', encoding="utf-8")
    rows, rejects = read_source(path)
    assert not rejects
    assert [r.messages[0]["content"] for r in rows] == ['Summarise this record\n\n{"name": "Ann"}',
                                                        "Add them\n\n[1, 2, 3]"]


def test_a_call_turn_is_scored_by_its_calls_from_a_model_or_an_endpoint():
    turn = {"role": "assistant", "content": "Let me check.", "tool_calls": [call(1, "Paris")]}
    reference = answer_text(turn)
    assert reference == 'get_weather({"city":"Paris"})'
    written = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    assert scored_answer(written, turn) == reference
    nested = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"q": {"name": "x", "arguments": {}}}}}]}
    assert scored_answer(answer_text(nested), nested) == answer_text(nested)  # an endpoint's reply, already canonical


def test_trailing_weight_0_turns_are_cut_and_a_reused_call_id_is_refused():
    from tunestack.data.formats import normalize_row
    from tunestack.data.openai_format import RowError

    row = normalize_row({"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                                      {"role": "user", "content": "q2"},
                                      {"role": "assistant", "content": "a2", "weight": 0}]})
    assert [m["content"] for m in row["messages"]] == ["q1", "a1"]  # the answer is the last learned turn
    twice = [{"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "A"}'}},
             {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "B"}'}}]
    with pytest.raises(RowError) as refused:
        normalize_row({"tools": [TOOL], "messages": [{"role": "user", "content": "q"},
                                                     {"role": "assistant", "content": None, "tool_calls": twice}]})
    assert refused.value.code == "duplicate_call_id"


def test_a_user_turn_after_tool_results_renders_or_is_refused_per_row(tmp_path):
    """Tool results then a user turn: the fallback joins them into one user turn (Gemma-2 demands alternation);
    Mistral's own template refuses the shape, and prepare rejects that row alone, saying why."""
    from tunestack.chat import render_text
    from tunestack.data.lengths import fit_lengths

    conversation = [{"role": "user", "content": "Weather in Alphaville?", "tools": [TOOL]},
                    {"role": "assistant", "content": "", "tool_calls": [call(1, "Alphaville")]},
                    {"role": "tool", "tool_call_id": call(1, "")["id"], "name": "get_weather", "content": "21"},
                    {"role": "user", "content": "Never mind, and Betatown?"},
                    {"role": "assistant", "content": "Finalanswer unknown."}]
    text = render_text(family_tokenizer("gemma2", tmp_path / "gemma2"), conversation)
    assert "</tool_response>\n\nNever mind" in text
    plain = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    rows = [Row(conversation, "t.jsonl", 1), Row(plain, "t.jsonl", 2)]
    kept, rejects, _ = fit_lengths(rows, family_tokenizer("mistral", tmp_path / "mistral"), 4096, "reject")
    assert [r.line for r in kept] == [2]
    assert [(r.line, r.kind) for r in rejects] == [(1, "template")] and "alternate" in rejects[0].reason
