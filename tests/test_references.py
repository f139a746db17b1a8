"""Reference models on the results table: a reference served by an OpenAI-compatible server (the test server, on
127.0.0.1, through the `openai` client) is evaluated on the same eval split by the same code, appears as a row of
the results table and the report (never selectable), the selected model's accuracy is given as a share of it, pass
or fail against 90%, and `cost` states that share beside the payback, warning below `cost.min_accuracy_share`. A
re-run asks it nothing.

Capturing an endpoint before it goes: `tunestack evaluate` is SIGKILLed in the middle of a rate-limited capture; the
re-run asks only for the answers the killed run did not get; the model id the endpoint reported, the date, the
requests, tokens and cost are recorded; with the server stopped and its key gone, `evaluate` (stored results, then
a changed key with every answer cached) and `report` still show the row and its share.

Both tests share one tiny pipeline run (`reference_run`, one `tunestack run`, on the session's tiny run)."""

from __future__ import annotations

import calendar
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from openai_server import OpenAIServer, count_tokens, prompt_tokens
from tunestack.report.results import results_schema

pytestmark = pytest.mark.integration

OLD_KEY = "OLD_FINETUNE_KEY"


def tunestack(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunestack", *args], capture_output=True, text=True, timeout=900,
                          env=env)


@pytest.fixture(scope="module")
def reference_run(tiny_run_session):
    """The tiny pipeline run once with reference `api` (right on every task row, "Paris" to any probe), its server
    up for the module: (config path, config dict, run folder, the run's output, the server). It continues the
    session's `tunestack run` of the same config (conftest's `tiny_run`): prepare and train are current, and the
    stages the reference changes (evaluate and after) run again."""
    shared = tiny_run_session.fresh()
    tmp_path, config = shared.folder, shared.config  # the same config as the tiny_config fixture
    cfg = yaml.safe_load(config.read_text())
    answers = {}
    for line in Path(cfg["data"]["path"]).read_text().splitlines():
        messages = json.loads(line)["messages"]
        answers[messages[-2]["content"]] = messages[-1]["content"]

    with OpenAIServer(reply=lambda body: answers.get(body["messages"][-1]["content"], "Paris")) as server:
        cfg["evaluate"]["references"] = [{"name": "api", "base_url": server.base_url, "model": "test-model",
                                          "api_key_env": None}]
        cfg["evaluate"]["endpoint"] = {"cache_dir": str(tmp_path / "answers")}
        cfg["cost"] = {"gpus": {"cpu": 0.1}, "training": {"gpu": "cpu", "model_size_b": 0.001},
                       "serving": {"gpu": "cpu", "throughput_awq": 400, "throughput_without_awq": 300},
                       "api": {"name": "api", "input_per_million": 2.5, "output_per_million": 10.0,
                               "monthly_requests": 300000, "input_tokens_per_request": 120,
                               "output_tokens_per_request": 40}}
        config.write_text(yaml.safe_dump(cfg))
        done = tunestack("run", str(config))
        assert done.returncode == 0, done.stderr[-3000:]
        yield config, cfg, Path(cfg["run"]["runs_dir"]) / "tiny", done, server


def test_a_served_reference_is_a_row_with_the_selected_models_share(reference_run):
    config, cfg, run, done, server = reference_run
    asked = len(server.chat_requests)
    assert asked >= 16  # every eval row (and the probes)

    results = json.loads((run / "results.json").read_text())
    jsonschema.validate(results, results_schema())
    reference = next(m for m in results["models"] if m["kind"] == "reference")
    assert reference["name"] == "api" and reference["task_accuracy"] == 1.0 and not reference["selected"]
    assert "api" not in [t["name"] for t in results["selection"]["table"]]  # never selectable
    chosen = next(m for m in results["models"] if m["selected"])
    share = results["references"][0]
    assert share["share"] == round(chosen["task_accuracy"] / 1.0, 4) and share["min_share"] == 0.9
    assert share["capture"]["model"] == "test-model" and share["capture"]["answers"] == asked
    assert "api (reference)" in done.stdout and "Against api:" in done.stdout
    report = (run / "report.md").read_text()
    assert f"Against api: {chosen['name']}'s exact match {chosen['task_accuracy']:.1%} is " \
           f"{share['share']:.0%} of api's 100.0%, which is below the 90% needed to replace it: **FAIL**." in report

    cost = tunestack("cost", str(config))
    assert cost.returncode == 0, cost.stderr[-3000:]
    body = json.loads((run / "cost" / "cost.json").read_text())
    assert body["accuracy_share"][0]["share"] == share["share"]
    assert share["share"] < 0.9  # a tiny model is no replacement: the warning stands beside the payback
    assert any(n.startswith("WARNING:") and "below cost.min_accuracy_share (90%)" in n for n in body["notes"])
    assert "below cost.min_accuracy_share" in cost.stdout

    again = tunestack("evaluate", str(config), "--force")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(server.chat_requests) == asked  # evaluated once: the stored results are reused


def cache_entries(folder: Path) -> set[Path]:
    return set(folder.glob("*/*.json")) - set(folder.glob("*/.*"))


def test_a_capture_killed_midway_resumes_and_its_row_outlives_the_endpoint(reference_run):
    config, cfg, run, _, api_server = reference_run
    cache = Path(cfg["evaluate"]["endpoint"]["cache_dir"])
    eval_rows = [json.loads(line)["messages"] for line in (run / "prepare" / "eval.jsonl").read_text().splitlines()]
    # the old fine-tune: right on every other task row (50%), "Paris" to any probe
    answers = {rows[-2]["content"]: rows[-1]["content"] if i % 2 == 0 else "{}" for i, rows in enumerate(eval_rows)}
    retention = cfg["evaluate"]["retention"]
    n_prompts = len(eval_rows) + retention["max_probes"] + retention["instructions"]  # chat: no quartz

    def answer(body: dict) -> str:
        return answers.get(body["messages"][-1]["content"], "Paris")

    kill_at, seen, lock = 8, [0], threading.Lock()
    arrived, release = threading.Event(), threading.Event()

    def reply(body: dict) -> str:  # the kill_at-th request is held until the capture has been killed
        with lock:
            seen[0] += 1
            hold = seen[0] == kill_at
        if hold:
            arrived.set()
            release.wait(120)
        return answer(body)

    before = cache_entries(cache)
    with OpenAIServer(reply=reply, api_key="secret", served_as="ft:gpt-4o-mini:acme::old-2024") as old:
        cfg["evaluate"]["references"].append({
            "name": "old", "base_url": old.base_url, "model": "ft:gpt-4o-mini:acme::old", "api_key_env": OLD_KEY,
            "requests_per_minute": 1200, "price_input_per_m": 0.3, "price_output_per_m": 1.2})
        cfg["evaluate"]["endpoint"].update({"max_retries": 1, "backoff_s": 0.0})  # offline, fail fast
        config.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, OLD_KEY: "secret"}

        killed = subprocess.Popen([sys.executable, "-m", "tunestack", "evaluate", str(config)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert arrived.wait(600), "the capture never reached its 8th request"
        finally:
            os.kill(killed.pid, signal.SIGKILL)
            killed.wait(60)
            release.set()
        first = list(old.chat_requests)
        cached = len(cache_entries(cache) - before)
        assert 0 < cached < n_prompts and not (run / "evaluate" / "references" / "old.json").exists()

        resumed = tunestack("evaluate", str(config), env=env)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        again = old.chat_requests[len(first):]
        assert len(again) == n_prompts - cached  # only what the killed run had not got
        bodies = {json.dumps(b["messages"], sort_keys=True): b for b in [*first, *again]}
        assert len(bodies) == n_prompts  # between them, every prompt once (a request cut by the kill: again)
        arrivals = old.arrivals[len(first):]
        # 1200 a minute: starts 0.05 s apart at the client; arrivals at the server carry scheduling jitter (a loaded
        # 2-core machine delayed the first by 0.08 s), an unlimited client sends them all within a few hundredths
        assert arrivals[-1] - arrivals[0] > (len(arrivals) - 1) * 0.05 * 0.75
        assert "old (reference)" in resumed.stdout and "Against old:" in resumed.stdout

        stored = json.loads((run / "evaluate" / "references" / "old.json").read_text())
        capture = stored["capture"]
        assert capture["model"] == "ft:gpt-4o-mini:acme::old-2024"  # as the endpoint reported it
        assert capture["answers"] == n_prompts and capture["from_cache"] == cached
        assert capture["requests"] == len(again)
        captured_at = calendar.timegm(time.strptime(capture["captured_at"], "%Y-%m-%dT%H:%M:%SZ"))  # UTC
        assert abs(captured_at - time.time()) < 600
        tokens = (sum(prompt_tokens(b["messages"]) for b in bodies.values()),
                  sum(count_tokens(answer(b)) for b in bodies.values()))
        assert (capture["prompt_tokens"], capture["completion_tokens"]) == tokens
        assert capture["cost_usd"] == pytest.approx((tokens[0] * 0.3 + tokens[1] * 1.2) / 1e6, abs=1e-6)
        asked = len(old.chat_requests)
    # the endpoint is gone, and its key with it
    offline = {k: v for k, v in os.environ.items() if k != OLD_KEY}
    api_asked = len(api_server.chat_requests)

    cfg["evaluate"]["references"][1]["price_input_per_m"] = 0.25  # a new key for the stored results, same prompts
    config.write_text(yaml.safe_dump(cfg))
    gone = tunestack("evaluate", str(config), env=offline)
    assert gone.returncode == 0, gone.stderr[-3000:]
    assert len(old.chat_requests) == asked and len(api_server.chat_requests) == api_asked
    recaptured = json.loads((run / "evaluate" / "references" / "old.json").read_text())["capture"]
    assert recaptured["requests"] == 0 and recaptured["from_cache"] == n_prompts
    assert recaptured["captured_at"] == capture["captured_at"]  # the answers' date, not today's re-read

    results = json.loads((run / "results.json").read_text())
    jsonschema.validate(results, results_schema())
    share = next(s for s in results["references"] if s["reference"] == "old")
    picked = next(m for m in results["models"] if m["selected"])
    row = next(m for m in results["models"] if m["name"] == "old")
    assert row["kind"] == "reference" and row["task_accuracy"] == 0.5 and "old (reference)" in gone.stdout
    assert share["share"] == round(picked["task_accuracy"] / 0.5, 4) and share["enough"] == (share["share"] >= 0.9)
    verdict = "clears the 90% needed to replace it: **PASS**" if share["enough"] else \
        "is below the 90% needed to replace it: **FAIL**"
    line = (f"Against old: {picked['name']}'s exact match {picked['task_accuracy']:.1%} is {share['share']:.0%} of "
            f"old's 50.0%, which {verdict}. Captured from `ft:gpt-4o-mini:acme::old-2024` (as its endpoint reported "
            f"it), last answer {capture['captured_at']}: {n_prompts} answers")
    assert line in (run / "report.md").read_text()
    assert line.replace("**", "") in gone.stdout

    report = tunestack("report", str(run), env=offline)
    assert report.returncode == 0, report.stderr[-3000:]
    page = (run / "report.html").read_text()
    assert "old (reference)" in page and f"which {verdict.replace('**', '')}" in page
    assert len(old.chat_requests) == asked and len(api_server.chat_requests) == api_asked
