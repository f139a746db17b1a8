"""Issue 30, build 2: `tools` on the built-in server, through the real server on 127.0.0.1 and the `openai` client.

The model is the toy one of tests/tool_model.py, taught to call `get_weather` with the city a weather question names
and to answer anything else in text; so which prompts should call, and with which argument, is known by
construction. Its template (ChatML) cannot render tools, so tunestack's fallback writes them: the test covers the
rendering every template without tool support gets."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from tool_model import CITIES, THINGS, TIME, WEATHER, ask_with, build_tool_model, other, weather

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tool_model(tmp_path_factory) -> Path:
    return build_tool_model(tmp_path_factory.mktemp("tool-model") / "model")


@pytest.fixture(scope="module")
def served(tool_model: Path):
    from test_serve import start

    generator, batcher, server = start(tool_model, max_tokens=48, default_max_tokens=48)
    yield generator, server
    server.stop()
    batcher.stop()


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)


def ask(server, messages: list[dict], choice=None, stream: bool = False, tools=(WEATHER,)):
    return ask_with(client(server), "tiny", messages, choice, stream, tools)


def test_tool_calls_come_back_as_the_model_makes_them_offline_streamed_or_not(served):
    from tunestack.tools import extract_calls

    generator, server = served
    asked = [weather(c) for c in CITIES[:6]] + [other(t) for t in THINGS[:3]]
    offline = generator.generate(asked, 48)  # the evaluate stage's own greedy decoding, fp32, tools rendered
    for messages, answer in zip(asked, offline):
        expected = [(c["name"], c["arguments"]) for c in extract_calls(answer.text) or []]
        for stream in (False, True):
            calls, content, finish = ask(server, messages, stream=stream)
            assert calls == expected, (messages[0]["content"], stream, answer.text)
            assert finish == ("tool_calls" if expected else "stop")
            if not expected:
                assert content == answer.text
    weather_calls = [ask(server, weather(c))[0] for c in CITIES[:6]]
    # the toy model calls for every weather question, with a city; a 2-layer model mixes up some cities
    assert all(len(calls) == 1 and calls[0][0] == "get_weather" and set(calls[0][1]) == {"city"}
               for calls in weather_calls), weather_calls
    assert sum(calls == [("get_weather", {"city": c})] for calls, c in zip(weather_calls, CITIES)) >= 4


def test_tool_choice_none_required_and_named(served):
    """`none` renders no tools and reads no calls; `required` and a named function start the turn inside a call (no
    grammar engine: the rest is the model's). Naming `get_time`, a function the toy model never saw, on a weather
    question starts a call to `get_time`: the name is the request's, the arguments the model's (returned as a call when
they parse, else as the text it wrote)."""
    _, server = served
    calls, content, finish = ask(server, weather("Oslo"), choice="none")
    assert calls == [] and content and finish in ("stop", "length")
    named = {"type": "function", "function": {"name": "get_time"}}
    for stream in (False, True):
        calls, _, finish = ask(server, weather("Lima"), choice="required", stream=stream)
        assert finish == "tool_calls" and calls[0][0] == "get_weather", (stream, calls)
        calls, content, finish = ask(server, other("cats"), choice="required", stream=stream)
        assert finish == "tool_calls" or content.startswith("<tool_call>"), (stream, calls, content)
        calls, content, finish = ask(server, weather("Lima"), choice=named, stream=stream, tools=(WEATHER, TIME))
        if finish == "tool_calls":
            assert calls[0][0] == "get_time" and isinstance(calls[0][1], dict), calls
        else:  # the toy model's arguments did not parse: the turn still began inside a call to get_time
            assert content.startswith('<tool_call>{"name": "get_time", "arguments":'), content


def test_a_conversation_that_carries_calls_and_results_is_taken_and_bad_tools_are_a_400(served):
    _, server = served
    api = client(server)
    turns = [{"role": "user", "content": "What is the weather in Oslo?"},
             {"role": "assistant", "content": None, "tool_calls": [
                 {"id": "call00001", "type": "function",
                  "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
             {"role": "tool", "tool_call_id": "call00001", "content": "Sunny, 12 C"}]
    reply = api.chat.completions.create(model="tiny", messages=turns, tools=[WEATHER], temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    bad = [("tools", [{"type": "function"}]), ("tool_choice", {"type": "function", "function": {"name": "nope"}}),
           ("tool_choice", "sometimes")]
    for key, value in bad:
        body = {"tools": [WEATHER], key: value} if key == "tool_choice" else {key: value}
        with pytest.raises(openai.BadRequestError) as caught:
            api.chat.completions.create(model="tiny", messages=weather("Oslo")[:1], **body)
        assert caught.value.status_code == 400 and key in str(caught.value)
