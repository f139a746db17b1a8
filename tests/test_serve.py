"""The built-in OpenAI-compatible server, started for real on 127.0.0.1 and spoken to with the `openai` client
(and, for the requests no client would send, raw HTTP): it answers as offline evaluation does, batches concurrent
requests, streams, refuses bad requests with a 4xx, answers overload with 429 and Retry-After, and wants its API key
when it has one."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

PROMPTS = [[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": f"Item {i}: say {word}."}]
           for i, word in enumerate(["yes", "no", "red", "blue", "ten", "cat", "sun", "tree"])]


def start(tiny_model: Path, api_key: str | None = None, **limits):
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import load_model
    from tunestack.serve.app import Limits, build_app
    from tunestack.serve.batcher import Batcher
    from tunestack.serve.server import BackgroundServer

    model, tokenizer = load_model(tiny_model)
    generator = LocalGenerator(model, tokenizer, batch_size=8)
    queue = limits.pop("max_queue", 64)
    batch = limits.pop("max_batch_size", 8)
    batcher = Batcher(generator, max_batch_size=batch, batch_wait_s=0.02, max_queue=queue).start()
    app = build_app("tiny", generator, batcher, Limits(**{"max_prompt_tokens": 256, "max_tokens": 64,
                                                          "default_max_tokens": 16, **limits}), api_key=api_key)
    return generator, batcher, BackgroundServer(app).start()


@pytest.fixture(scope="module")
def served(tiny_model: Path):
    generator, batcher, server = start(tiny_model)
    yield generator, batcher, server
    server.stop()
    batcher.stop()


def client(server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=60)


def test_concurrent_requests_are_batched_and_answer_as_offline_evaluation(served):
    generator, batcher, server = served
    offline = generator.generate(PROMPTS, 12)  # the evaluate stage's own greedy decoding, fp32
    api = client(server)
    assert [m.id for m in api.models.list().data] == ["tiny"]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        answers = list(pool.map(lambda p: api.chat.completions.create(model="tiny", messages=p, max_tokens=12,
                                                                      temperature=0), PROMPTS))
    assert [a.choices[0].message.content for a in answers] == [o.text for o in offline]
    for answer, expected, prompt in zip(answers, offline, PROMPTS):
        assert answer.choices[0].finish_reason == ("stop" if expected.ended_with_eos else "length")
        assert answer.usage.completion_tokens == len(expected.token_ids)
        assert answer.usage.prompt_tokens == len(generator.tokenizer.apply_chat_template(
            prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
    metrics = httpx.get(server.base_url.removesuffix("/v1") + "/metrics").text
    batches = float(next(line.split()[-1] for line in metrics.splitlines()
                         if line.startswith("tunestack_batch_size_count")))
    assert batches < len(PROMPTS)  # concurrent requests shared batches
    assert 'tunestack_requests_total{route="chat",status="200"}' in metrics

    # A shorter max_tokens is the same answer's beginning; a stream adds up to the same text.
    short = api.chat.completions.create(model="tiny", messages=PROMPTS[0], max_tokens=3, temperature=0)
    assert short.usage.completion_tokens == min(3, len(offline[0].token_ids))
    stream = api.chat.completions.create(model="tiny", messages=PROMPTS[1], max_tokens=12, temperature=0,
                                         stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == offline[1].text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length") and len(chunks) > 2

    # The legacy completions API takes token ids (what `tunestack evaluate --model URL` sends with api: completions).
    ids = generator.tokenizer.apply_chat_template(PROMPTS[2], add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"]
    done = api.completions.create(model="tiny", prompt=ids, max_tokens=12, temperature=0)
    assert done.choices[0].text.strip() == offline[2].text


def test_bad_requests_get_a_4xx_and_others_are_still_served(served):
    _, _, server = served
    url = server.base_url + "/chat/completions"
    good = {"model": "tiny", "messages": PROMPTS[0], "max_tokens": 4, "temperature": 0}
    cases = bad_requests(good)
    stop = threading.Event()
    slow = trickle(server.host, server.port, stop)  # a client sending its headers a byte at a time
    try:
        with httpx.Client(timeout=30) as http:
            for name, (body, status) in cases.items():
                reply = http.post(url, content=body, headers={"Content-Type": "application/json"})
                assert reply.status_code == status, (name, reply.text)
                error = reply.json()["error"]
                assert error["message"] and error["type"], name
            assert http.post(url, json=good).status_code == 200  # served beside the trickling client
            assert http.get(server.base_url.removesuffix("/v1") + "/health").json()["status"] == "ok"
            assert http.get(server.base_url + "/nothing").status_code == 404
    finally:
        stop.set()
        slow.close()
    try:
        client(server).chat.completions.create(model="gpt-9", messages=PROMPTS[0])
    except openai.NotFoundError as exc:
        assert "serves tiny" in str(exc)
    else:
        raise AssertionError("an unknown model was served")


def test_overload_is_answered_with_429_and_retry_after_never_a_hang(tiny_model: Path):
    _, batcher, server = start(tiny_model, max_queue=2, max_batch_size=1)
    try:
        body = {"model": "tiny", "messages": PROMPTS[3], "max_tokens": 48, "temperature": 0}

        def ask(_):
            reply = httpx.post(server.base_url + "/chat/completions", json=body, timeout=60)
            return reply.status_code, reply.headers.get("retry-after")

        with ThreadPoolExecutor(24) as pool:
            replies = list(pool.map(ask, range(24)))
        statuses = [s for s, _ in replies]
        assert set(statuses) <= {200, 429} and statuses.count(429) > 0 and statuses.count(200) >= 3
        assert all(after is not None and int(after) >= 1 for s, after in replies if s == 429)
        assert httpx.post(server.base_url + "/chat/completions", json=body, timeout=60).status_code == 200
    finally:
        server.stop()
        batcher.stop()


def test_with_an_api_key_a_request_without_it_gets_401(tiny_model: Path):
    _, batcher, server = start(tiny_model, api_key="s3cret-key")
    try:
        with pytest.raises(openai.AuthenticationError):
            client(server, "wrong").chat.completions.create(model="tiny", messages=PROMPTS[0], max_tokens=2)
        assert httpx.post(server.base_url + "/chat/completions", json={"model": "tiny"}).status_code == 401
        assert httpx.get(server.base_url + "/models").status_code == 401
        assert httpx.get(server.base_url.removesuffix("/v1") + "/health").status_code == 200
        answer = client(server, "s3cret-key").chat.completions.create(model="tiny", messages=PROMPTS[0],
                                                                      max_tokens=2, temperature=0)
        assert answer.usage.completion_tokens >= 1
    finally:
        server.stop()
        batcher.stop()


def test_a_planted_template_or_stop_mismatch_is_refused_at_start_up(tiny_config: Path, tiny_model: Path,
                                                                     tmp_path: Path):
    """The served folder renders prompts with its own chat template and stops on its own generation config; a
    folder whose template or EOS is not what training used is refused before the server takes a request, with
    the differing ids."""
    import shutil

    from tunestack.config import load_config
    from tunestack.errors import StageError
    from tunestack.pipeline import run_stages
    from tunestack.serve import prepare_server

    cfg = load_config(tiny_config)
    run = run_stages(cfg, until="prepare")
    app, batcher, served, report = prepare_server(cfg, run, model=str(tiny_model))  # the base itself: parity holds
    batcher.stop()
    assert served.kind == "folder" and report["prompts"] == 16 and report["trained_eos"] in report["stop_ids"]

    planted = tmp_path / "planted"
    shutil.copytree(tiny_model, planted)
    template = (planted / "chat_template.jinja").read_text()
    changed = template.replace("<|im_start|>", "<|im_start|> ", 1)  # one space more in the first turn's header
    assert changed != template
    (planted / "chat_template.jinja").write_text(changed)
    with pytest.raises(StageError, match=r"eval prompt 0 renders differently than in training, from token \d+ "
                                         r"on: training \[[\d, ]+\]") as refused:
        prepare_server(cfg, run, model=str(planted))
    assert "served [" in str(refused.value)

    wrong_stop = tmp_path / "wrong-stop"  # a base model's end of text where training taught its end of turn
    shutil.copytree(tiny_model, wrong_stop)
    tokenizer = json.loads((wrong_stop / "tokenizer_config.json").read_text())
    trained_eos = report["trained_eos"]
    tokenizer["eos_token"] = tokenizer["pad_token"]
    (wrong_stop / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    for name in ("generation_config.json", "config.json"):
        settings = json.loads((wrong_stop / name).read_text())
        settings["eos_token_id"] = settings.get("pad_token_id", 0)
        (wrong_stop / name).write_text(json.dumps(settings))
    # The loader takes the end-of-turn token from the chat template (models.tokens.fix_stop_tokens), so the
    # built-in server still stops where training taught; parity confirms it rather than trusting the folder.
    app, batcher, _, report = prepare_server(cfg, run, model=str(wrong_stop))
    batcher.stop()
    assert report["trained_eos"] == trained_eos and trained_eos in report["stop_ids"]

    from tunestack.serve.stage import parity  # a served model that would not stop there is refused
    with pytest.raises(StageError, match=f"training taught the model to end with id {trained_eos}"):
        parity(_tokenizer(tiny_model), _tokenizer(tiny_model), [], [trained_eos + 1], None)


def _tokenizer(folder: Path):
    from tunestack.models import load_tokenizer

    return load_tokenizer(folder)


def test_the_served_model_is_evaluated_through_its_endpoint_and_matches_offline_in_fp32(tiny_run, monkeypatch):
    """`tunestack serve --evaluate`: the eval suite through the real server (an API key required and sent),
    every answer identical to offline evaluation of the same weights in fp32, the comparison in results.json and
    report.md, and the key in no file of the run folder."""
    import jsonschema
    import yaml

    from tunestack.cli import main
    from tunestack.report.results import results_schema
    from tunestack.rundir import read_json

    tiny_config = tiny_run.config  # the session's tiny run: prepare and train are current, evaluate on run again
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["evaluate"]["precision"] = "fp32"
    cfg["serve"] = {"backend": "builtin", "api_key_env": "TUNESTACK_TEST_SERVE_KEY"}  # test_serve_vllm: vLLM
    tiny_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(tiny_config)]) == 0
    key = "sk-tunestack-test-0123456789abcdef"
    monkeypatch.setenv("TUNESTACK_TEST_SERVE_KEY", key)
    assert main(["serve", str(tiny_config), "--evaluate"]) == 0
    root = Path(cfg["run"]["runs_dir"]) / "tiny"
    served = read_json(root / "serve" / "served.json")
    assert served["kind"] == "export" and served["dtype"] == "float32"
    assert served["compared"] == 16 and served["identical"] == 16 and not served["differing"]
    for name, figures in served["comparison"].items():
        assert figures["served"] == figures["offline"] and not figures["beyond_noise"], name
    assert served["comparison"]["task_accuracy"]["drop_ci95"] == [0.0, 0.0]
    assert served["quartz_skipped"] is None  # quartz scored through /v1/completions with echo and logprobs
    assert served["comparison"]["quartz_accuracy"]["served"] is not None
    # one account for the endpoint: 16 eval answers and 6 probes through chat, and quartz's 12 questions scored
    # through completions (a request per choice)
    assert served["usage"]["completions"] >= 16 + 6 + 12
    results = read_json(root / "results.json")
    jsonschema.validate(results, results_schema())
    row = next(m for m in results["models"] if m["kind"] == "served")
    assert row["name"].endswith("(served)") and results["served"]["agreement"] == 1.0
    assert "**Served** (builtin server" in (root / "report.md").read_text()
    assert main(["serve", str(tiny_config), "--print"]) == 0  # the deploy recipe
    script = (root / "serve" / "deploy" / "serve.sh").read_text()
    export = read_json(root / "export" / "manifest.json")["path"]
    assert f"--model {Path(export).resolve()}" in script and "--chat-template" in script
    assert 'VLLM_API_KEY="${TUNESTACK_TEST_SERVE_KEY:?' in script and "-O0" not in script
    # serve.vllm_args go last on vLLM's command line; the options tunestack supervises the server by are refused
    assert main(["serve", str(tiny_config), "--print", "serve.vllm_args=[-O0, --max-num-seqs, '4']"]) == 0
    script = (root / "serve" / "deploy" / "serve.sh").read_text()
    assert "# WARNING: " in script and "heads 16 wide" in script  # the tiny model: the recipe is for a GPU
    line = next(x for x in script.splitlines() if "--model" in x and not x.startswith("#"))
    assert line.split()[-3:] == ["-O0", "--max-num-seqs", "4"] and "--max-num-seqs 16" in line
    assert main(["serve", str(tiny_config), "--print", "serve.vllm_args=[--port=9000]"]) == 2
    import subprocess
    assert subprocess.run(["bash", "-n", str(root / "serve" / "deploy" / "serve.sh")]).returncode == 0
    compose = yaml.safe_load((root / "serve" / "deploy" / "docker-compose.yml").read_text())
    (service,) = compose["services"].values()
    assert service["volumes"] == [f"{Path(export).resolve()}:/model:ro"] and "/model" in service["command"]
    assert service["ports"] == ["127.0.0.1:8000:8000"]
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) > 20 and not [p for p in files if key.encode() in p.read_bytes()]


def test_the_served_comparison_has_an_interval_for_a_task_metric_with_parts():
    """A task metric with parts (per-field accuracy first among the metrics) gets its interval of offline minus
    served, resampled as the evaluate stage aggregates it (each field's mean, then the mean of the fields); it was
    silently left without one. A drop beyond noise fails the stage like any other."""
    from tunestack.errors import StageError
    from tunestack.evaluate.metrics import aggregate
    from tunestack.serve.evaluate import compare, fail_if_worse, paired_drop

    offline_fields = [{"name": True, "dose": True}, {"name": True, "dose": True, "route": True}] * 30
    served_fields = [{"name": True, "dose": False}, {"name": True, "dose": False, "route": True}] * 30
    offline = {"task_accuracy": aggregate("f", offline_fields)[0],
               "per_example": {"metrics": {"field_accuracy": offline_fields}, "format": [1] * 60}}
    served = {"task_accuracy": aggregate("f", served_fields)[0],
              "per_example": {"metrics": {"field_accuracy": served_fields}, "format": [1] * 60}}
    drop = paired_drop(offline, served, "task_accuracy")
    assert drop is not None and drop[0] > 0  # dose is always lost: a third of the fields, on every draw
    assert drop == [round(1 - aggregate("f", served_fields)[0], 4)] * 2
    assert paired_drop(offline, offline, "task_accuracy") == [0.0, 0.0]
    comparison = compare(offline, served)
    assert comparison["task_accuracy"]["beyond_noise"] and not comparison["format_compliance"]["beyond_noise"]
    assert comparison["probe_pass_rate"]["drop_ci95"] is None  # no per-probe scores: no interval, as before
    with pytest.raises(StageError, match=r"beyond noise on task_accuracy \(0/60 answers identical\)"):
        fail_if_worse({"comparison": comparison, "identical": 0, "compared": 60},
                      [{"line": 1, "served": "{}", "offline": "{}"}], "served.json")


def test_lora_adapters_are_served_beside_their_base_one_per_request_by_model_name(tiny_run):
    """`serve --model a=CKPT --model b=CKPT`: one base with two unmerged adapters; requests for the base and both
    adapters, sent at once, are each answered as offline evaluation answers that model (fp32: the checkpoint merged
    into the base), and `/v1/completions` with `echo` and `logprobs` gives the prompt's log-probabilities that
    offline scoring gives (how quartz is scored through an endpoint)."""
    import yaml

    from tunestack.config import load_config
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import load_base
    from tunestack.pipeline import run_stages
    from tunestack.serve import prepare_server
    from tunestack.serve.server import BackgroundServer
    from tunestack.serve.stage import Served, eval_prompts, load_served

    tiny_config = tiny_run.config  # the session's tiny run: its checkpoints are current
    raw = yaml.safe_load(tiny_config.read_text())
    raw["evaluate"]["precision"] = "fp32"
    raw["train"]["num_checkpoints"] = 2
    tiny_config.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(tiny_config)
    run = run_stages(cfg, until="train")
    first, last = sorted((run.root / "train" / "checkpoints").glob("step-*"))[-2:]
    app, batcher, served, _ = prepare_server(cfg, run, model=[f"early={first}", f"late={last}"])
    prompts = eval_prompts(run, 6)
    offline = {}
    for name, folder in (("early", first), ("late", last)):
        model, tokenizer = load_served(cfg, Served(name, str(folder), "checkpoint"))
        offline[name] = LocalGenerator(model, tokenizer, batch_size=8)
    base_model, base_tokenizer = load_base(cfg.model, dtype="float32")
    offline[served.name] = LocalGenerator(base_model, base_tokenizer, batch_size=8)
    expected = {name: [g.text for g in generator.generate(prompts, 24)] for name, generator in offline.items()}
    assert expected["late"] != expected[served.name]
    try:
        with BackgroundServer(app) as server:
            api = client(server)
            listed = {m.id: getattr(m, "parent", None) for m in api.models.list().data}
            assert listed == {served.name: None, "early": served.name, "late": served.name}
            asks = [(name, p) for p in prompts for name in expected]  # interleaved: batches mix the adapters
            with ThreadPoolExecutor(len(asks)) as pool:
                answers = list(pool.map(lambda a: api.chat.completions.create(
                    model=a[0], messages=a[1], max_tokens=24, temperature=0).choices[0].message.content, asks))
            for name in expected:
                assert [a for (n, _), a in zip(asks, answers) if n == name] == expected[name], name

            context = offline["late"].tokenizer.apply_chat_template(prompts[0], add_generation_prompt=True,
                                                                    tokenize=True, return_dict=True)["input_ids"]
            answer = offline["late"].tokenizer.encode(" yes", add_special_tokens=False)
            echoed = api.completions.create(model="late", prompt=context + answer, max_tokens=1, temperature=0,
                                            echo=True, logprobs=2).choices[0]
            logprobs = echoed.logprobs
            assert len(logprobs.token_logprobs) >= len(context) + len(answer) and logprobs.token_logprobs[0] is None
            assert all(len(top) <= 2 for top in logprobs.top_logprobs[1:])
            picked = logprobs.token_logprobs[len(context): len(context) + len(answer)]
            (score,) = offline["late"].loglikelihood([(context, answer)])
            assert abs(sum(picked) / len(picked) - score) < 1e-4
            assert echoed.text.startswith(offline["late"].tokenizer.decode(context))
            early = api.completions.create(model="early", prompt=context + answer, max_tokens=1, temperature=0,
                                           echo=True, logprobs=0).choices[0].logprobs
            assert early.token_logprobs != logprobs.token_logprobs  # the other adapter scored it
            (score,) = offline["early"].loglikelihood([(context, answer)])
            assert abs(sum(early.token_logprobs[len(context): len(context) + len(answer)]) / len(answer) - score) < 1e-4
    finally:
        batcher.stop()


def test_auto_serves_with_the_builtin_server_what_vllm_cannot_run_here(tmp_path: Path, monkeypatch, caplog):
    """`serve.backend: auto` picks a backend that can serve the chosen model on this machine: with vLLM installed
    (here an interpreter named by TUNESTACK_VLLM_PYTHON) a folder its CPU build cannot run (8-bit weights, heads
    narrower than 32) or a LoRA checkpoint goes to the built-in server, with the reason; an explicit `vllm` keeps
    the error. A --model folder that does not exist says so."""
    import logging

    import torch

    from tunestack.config import Config
    from tunestack.errors import ModelError, StageError
    from tunestack.serve.stage import Served, backend, vllm_command

    if torch.cuda.is_available():
        pytest.skip("on a GPU vLLM runs these")
    monkeypatch.setenv("TUNESTACK_VLLM_PYTHON", sys.executable)
    wide = {"hidden_size": 256, "num_attention_heads": 4}  # heads 64 wide
    w8 = {"quant_method": "compressed-tensors", "config_groups": {
        "group_0": {"targets": ["Linear"], "weights": {"num_bits": 4}},
        "group_1": {"targets": ["re:.*down_proj"], "weights": {"num_bits": 8}}}}
    folders = {"w4": {**wide, "quantization_config": {**w8, "config_groups": {"group_0": w8["config_groups"]["group_0"]}}},
               "w8": {**wide, "quantization_config": w8}, "narrow": {"hidden_size": 64, "num_attention_heads": 4},
               "plain": wide}
    for name, config in folders.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    (tmp_path / "ckpt").mkdir()

    def choice(name: str, setting: str = "auto", kind: str = "folder") -> str:
        cfg = Config.model_validate({"data": {"path": "x.jsonl"}, "serve": {"backend": setting}})
        return backend(cfg, Served(name, str(tmp_path / name), kind))

    with caplog.at_level(logging.INFO, logger="tunestack"):
        assert [choice(n) for n in ("w4", "plain", "w8", "narrow")] == ["vllm", "vllm", "builtin", "builtin"]
        assert choice("ckpt", kind="checkpoint") == "builtin"
    said = caplog.text
    assert "8-bit weights, which vLLM's CPU kernels cannot run" in said and "heads 16 wide" in said
    assert "is a LoRA checkpoint, and vLLM serves model folders" in said
    assert choice("w8", "vllm") == "vllm" and choice("w8", "builtin") == "builtin"
    cfg = Config.model_validate({"data": {"path": "x.jsonl"}, "serve": {"backend": "vllm"}})
    with pytest.raises(StageError, match="8-bit weights, which vLLM's CPU kernels cannot run"):
        vllm_command(cfg, Served("w8", str(tmp_path / "w8"), "folder"), "127.0.0.1", 8000)
    monkeypatch.setenv("TUNESTACK_VLLM_PYTHON", str(tmp_path / "no-such-python"))
    assert choice("plain") == "builtin"
    with pytest.raises(StageError, match="vLLM is not installed"):
        choice("plain", "vllm")

    from tunestack.models import resolve_model

    for missing in (str(tmp_path / "runs" / "x" / "export" / "model"), "./no-model", f"{tmp_path.name}/model"):
        monkeypatch.chdir(tmp_path.parent)
        with pytest.raises(ModelError, match="no folder .* check the path"):
            resolve_model(missing)


def bad_requests(good: dict) -> dict[str, tuple[bytes, int]]:
    """Requests no well-behaved client sends, each with the status the built-in server answers; vLLM's server is
    held to no 5xx on the same set (tests/test_serve_vllm.py)."""
    return {
        "malformed JSON": (b'{"model": "tiny", "messages": [', 400),
        "not an object": (b"[1, 2]", 400),
        "unknown model": (json.dumps({**good, "model": "gpt-9"}).encode(), 404),
        "max_tokens too large": (json.dumps({**good, "max_tokens": 100000}).encode(), 400),
        "max_tokens zero": (json.dumps({**good, "max_tokens": 0}).encode(), 400),
        "max_tokens a string": (json.dumps({**good, "max_tokens": "8"}).encode(), 400),
        "temperature out of range": (json.dumps({**good, "temperature": 3.5}).encode(), 400),
        "top_p zero": (json.dumps({**good, "top_p": 0}).encode(), 400),
        "no messages": (json.dumps({"model": good["model"], "messages": []}).encode(), 400),
        "bad role": (json.dumps({**good, "messages": [{"role": "robot", "content": "x"}]}).encode(), 400),
        "image part": (json.dumps({**good, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "x"}}]}]}).encode(), 400),
        "n above one": (json.dumps({**good, "n": 2}).encode(), 400),
        "a JSON schema": (json.dumps({**good, "response_format": {"type": "json_schema"}}).encode(), 400),
        "prompt too long": (json.dumps({**good, "messages": [{"role": "user", "content": "word " * 400}]}).encode(),
                            400),
        "oversized body": (json.dumps({**good, "pad": "x" * 1_100_000}).encode(), 413),
    }


def trickle(host: str, port: int, stop: threading.Event) -> socket.socket:
    """A client that sends its request headers a byte at a time, in a thread; returns its socket."""
    slow = socket.create_connection((host, port))

    def send():
        for byte in b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n":
            if stop.is_set():
                return
            try:
                slow.send(bytes([byte]))
            except OSError:
                return
            time.sleep(0.05)

    threading.Thread(target=send, daemon=True).start()
    return slow
