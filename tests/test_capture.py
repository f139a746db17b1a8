"""The endpoint client as a capture tool, against the test OpenAI-compatible server on 127.0.0.1 through the `openai`
client: a conversation with tools arrives as OpenAI's API takes it (`tools`, arguments as JSON strings) and a reply
that calls tools comes back as the text that is scored; the tools are part of the cache key; the model id the
endpoint reports and when each answer arrived are recorded and cached; the rate limit holds across threads (a fake
clock, and the arrival times at the server); cached answers are read with no API key. The kill-and-resume capture
of a reference through `tunestack evaluate` is in tests/test_references.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from openai_server import OpenAIServer
from tunestack.client import EndpointClient, EndpointSettings
from tunestack.client.endpoint import RateLimiter
from tunestack.errors import EndpointError

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now in a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


def conversation(tools: list[dict] | None = TOOLS) -> list[dict]:
    """A tool row in tunestack's form: tools on the first message, arguments as objects, a weighted turn."""
    head = {"role": "system", "content": "You answer with the tools."}
    return [{**head, "tools": tools} if tools else head,
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": "", "weight": 0, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
            {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "4 C, rain"},
            {"role": "user", "content": "And in Paris?"}]


def calls_paris(body: dict) -> dict:
    return {"content": None, "tool_calls": [{"id": "call_9", "type": "function",
                                             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}


def settings_for(server: OpenAIServer, **kw) -> EndpointSettings:
    return EndpointSettings(**{"base_url": server.base_url, "model": "old-model", "api_key_env": None,
                               "max_retries": 0, **kw})


def test_a_tool_row_arrives_with_its_tools_and_string_arguments_and_a_call_is_scored_as_its_text(tmp_path: Path):
    with OpenAIServer(reply=calls_paris, served_as="old-model-2024-07-18") as server:
        client = EndpointClient(settings_for(server, cache_dir=tmp_path / "cache"))
        completion = client.complete(conversation(), {"temperature": 0.0, "max_tokens": 64})
        client.close()
    body = server.chat_requests[0]
    assert server.tools == [TOOLS] and body["tools"] == TOOLS
    assert all("tools" not in m and "weight" not in m for m in body["messages"])
    sent = body["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert isinstance(sent, str) and json.loads(sent) == {"city": "Oslo"}
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "name": "get_weather",
                                   "content": "4 C, rain"}
    assert completion.text == 'get_weather({"city":"Paris"})'  # tools.answer_text: what is scored
    assert completion.tool_calls == [{"id": "call_9", "type": "function",
                                      "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert completion.turn() == {"role": "assistant", "content": "", "tool_calls": completion.tool_calls}
    assert completion.finish_reason == "tool_calls" and completion.model == "old-model-2024-07-18"
    assert client.summary()["models"] == {"old-model-2024-07-18": 1}


def test_the_tools_are_part_of_the_cache_key_and_a_cached_call_keeps_its_calls_and_model(tmp_path: Path):
    other = [{**TOOLS[0], "function": {**TOOLS[0]["function"], "description": "Weather tomorrow."}}]
    with OpenAIServer(reply=calls_paris, served_as="old-model-2024-07-18") as server:
        client = EndpointClient(settings_for(server, cache_dir=tmp_path / "cache"))
        first = client.complete_many([conversation(), conversation(other), conversation(None)])
        assert len(server.chat_requests) == 3  # three tool sets (none is one): three answers
        again = EndpointClient(settings_for(server, cache_dir=tmp_path / "cache"))  # a later run
        cached = again.complete(conversation())
    assert len(server.chat_requests) == 3  # sent concurrently: in any order
    assert sorted(map(json.dumps, server.tools)) == sorted(map(json.dumps, [TOOLS, other, None]))
    assert cached.cached and cached.text == first[0].text and cached.tool_calls == first[0].tool_calls
    assert cached.model == "old-model-2024-07-18" and cached.received_at == first[0].received_at
    summary = again.summary()
    assert summary["requests"] == 0 and summary["cache_hits"] == 1
    assert summary["models"] == {"old-model-2024-07-18": 1} and summary["last_answer_at"].endswith("Z")


def test_the_rate_limiter_spaces_starts_across_threads_on_a_fake_clock():
    slept, lock = [], threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            slept.append(seconds)

    limiter = RateLimiter(30, clock=lambda: 100.0, sleep=sleep)  # the clock stands still: each wait queues
    threads = [threading.Thread(target=limiter.wait) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(slept) == [2.0 * k for k in range(1, 8)]  # one start free, then every 60/30 s


def test_requests_reach_the_server_no_faster_than_requests_per_minute():
    with OpenAIServer(reply=lambda body: "fine") as server:
        client = EndpointClient(settings_for(server, max_concurrency=8, requests_per_minute=600))
        client.complete([{"role": "user", "content": "warm-up"}])  # the first request also makes the client
        client.complete_many([[{"role": "user", "content": f"question {i}"}] for i in range(8)])
        client.close()
    arrivals = server.arrivals[1:]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    # 600 a minute: starts 0.1 s apart though 8 may be in flight (arrivals vary by the wire's few milliseconds)
    assert len(arrivals) == 8 and min(gaps) > 0.07 and arrivals[-1] - arrivals[0] > 0.65


def test_cached_answers_need_no_key_and_a_missing_answer_names_the_variable(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OLD_ENDPOINT_KEY", "secret")
    with OpenAIServer(reply=lambda body: "captured", api_key="secret") as server:
        settings = settings_for(server, api_key_env="OLD_ENDPOINT_KEY", cache_dir=tmp_path / "cache")
        EndpointClient(settings).complete([{"role": "user", "content": "kept"}])
    monkeypatch.delenv("OLD_ENDPOINT_KEY")  # the endpoint is gone, and its key with it
    client = EndpointClient(settings)
    assert client.complete([{"role": "user", "content": "kept"}]).text == "captured"
    client.close()
    with pytest.raises(EndpointError, match="environment variable OLD_ENDPOINT_KEY, which is not set"):
        client.complete([{"role": "user", "content": "never asked"}])
    with pytest.raises(EndpointError, match="OLD_ENDPOINT_KEY"):  # without a cache every answer is asked for
        EndpointClient(settings_for(server, api_key_env="OLD_ENDPOINT_KEY"))


def test_the_share_of_a_reference_is_a_pass_or_a_fail_against_90_percent():
    from tunestack.evaluate.references import reference_shares
    from tunestack.report.markdown import reference_lines

    models = [{"name": "step-000010", "task_accuracy": 0.63}]
    capture = {"model": "gpt-x-2024-07-18", "captured_at": "2025-06-01T12:00:00Z", "answers": 200,
               "prompt_tokens": 41000, "completion_tokens": 9000, "cost_usd": 0.0123}
    refs = [{"name": "weak", "task_accuracy": 0.7, "capture": capture}, {"name": "strong", "task_accuracy": 0.9}]
    found = reference_shares(models, refs, "step-000010", 0.9)
    assert [(s["share"], s["enough"]) for s in found] == [(0.9, True), (0.7, False)]
    weak, strong = reference_lines(found)
    assert weak == ("Against weak: step-000010's exact match 63.0% is 90% of weak's 70.0%, which clears the 90% "
                    "needed to replace it: **PASS**. Captured from `gpt-x-2024-07-18` (as its endpoint reported it), "
                    "last answer 2025-06-01T12:00:00Z: 200 answers, 41000 prompt + 9000 completion tokens, $0.0123.")
    assert strong.endswith("which is below the 90% needed to replace it: **FAIL**.")
