"""LLM-as-judge: the agreement statistics (hand-checked cases, brute-force definitions, a planted judge whose
population agreement is known), the rubric's score reader, the endpoint client through the real `openai` package
against a real HTTP server on 127.0.0.1 (429, 5xx, timeouts, cache, tokens and cost, bounded concurrency), and
`tunestack judge calibrate` end to end through the CLI."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from openai_server import OpenAIServer, count_tokens, prompt_tokens
from tunestack.config import parse_config
from tunestack.errors import ConfigError, DataError, EndpointError
from tunestack.judge.calibrate import METRICS, agreement, agreement_ok, statistic
from tunestack.client.endpoint import Completion, EndpointClient, EndpointSettings, Retryable
from tunestack.judge.rubric import CORRECTNESS, QUALITY, judge_messages, parse_score
from tunestack.judge.stage import JudgeItem, judge_counts, read_human_scores, score_items
from tunestack.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV, KEY = "TUNESTACK_TEST_JUDGE_KEY", "sk-test-not-a-real-key-4711"


# ---------------------------------------------------------------------------------------------------------------
# Statistics: small cases worked out by hand


@pytest.mark.parametrize("name", METRICS)
def test_perfect_agreement_is_one_and_reversed_is_minus_one(name):
    human = [1, 2, 3, 4, 5] * 3
    assert statistic(name, human, human) == pytest.approx(1.0)
    # Reversed on a symmetric sample: kappa is -1 too, since sum((x - y)^2) = 2 * sum((x - y')^2 expected).
    assert statistic(name, human, [6 - h for h in human]) == pytest.approx(-1.0)


def test_small_table_worked_by_hand():
    # human 1 1 2 2 / judge 1 2 2 2. Pairs: 6; concordant 2 (each human-1 item with the (2,2) items... only the
    # (1,1) item: (1,1)-(2,2) twice); discordant 0; tied on human 2 pairs, on judge 3 pairs.
    human, judge = [1, 1, 2, 2], [1, 2, 2, 2]
    assert statistic("kendall", human, judge) == pytest.approx(2 / math.sqrt((6 - 2) * (6 - 3)))
    # Pearson: deviations (-.5 -.5 .5 .5) and (-.75 .25 .25 .25): cov sum .5, squares 1 and .75.
    assert statistic("pearson", human, judge) == pytest.approx(0.5 / math.sqrt(0.75))
    # Midranks (1.5 1.5 3.5 3.5) and (1 3 3 3) are linear in the scores, so Spearman equals Pearson here.
    assert statistic("spearman", human, judge) == pytest.approx(0.5 / math.sqrt(0.75))
    # Kappa: observed weighted disagreement 1 (one (1,2) item); expected cells (1,2) 2*3/4 and (2,1) 2*1/4, each
    # with weight 1: 2. Kappa = 1 - 1/2.
    assert statistic("kappa", human, judge) == pytest.approx(0.5)


def test_one_swap_in_three_worked_by_hand():
    human, judge = [1, 2, 3], [1, 3, 2]
    assert statistic("spearman", human, judge) == pytest.approx(1 - 6 * 2 / (3 * (9 - 1)))  # 0.5
    assert statistic("pearson", human, judge) == pytest.approx(0.5)
    assert statistic("kendall", human, judge) == pytest.approx((2 - 1) / 3)
    # Kappa: observed (2-3)^2 + (3-2)^2 = 2; expected 1/3 in every cell, sum of (i-j)^2 over the 3x3 grid is 12.
    assert statistic("kappa", human, judge) == pytest.approx(1 - 2 / (12 / 3))


def _midranks(values):
    values = np.asarray(values, dtype=float)
    return np.array([(values < v).sum() + ((values == v).sum() + 1) / 2 for v in values])


def _kendall_by_pairs(x, y):
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        a, b = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        ties_x += a == 0
        ties_y += b == 0
        concordant += a * b > 0
        discordant += a * b < 0
    pairs = len(x) * (len(x) - 1) / 2
    return (concordant - discordant) / math.sqrt((pairs - ties_x) * (pairs - ties_y))


def _kappa_by_definition(x, y):
    n = len(x)
    observed = sum((a - b) ** 2 for a, b in zip(x, y)) / n
    expected = sum((a - b) ** 2 for a in x for b in y) / n**2
    return 1 - observed / expected


def test_statistics_equal_their_textbook_definitions_on_tied_data():
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.integers(1, 6, 60).tolist()
        y = np.clip(np.array(x) + rng.integers(-2, 3, 60), 1, 5).tolist()
        assert statistic("pearson", x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
        assert statistic("spearman", x, y) == pytest.approx(np.corrcoef(_midranks(x), _midranks(y))[0, 1])
        assert statistic("kendall", x, y) == pytest.approx(_kendall_by_pairs(x, y))
        assert statistic("kappa", x, y) == pytest.approx(_kappa_by_definition(x, y))


def test_a_constant_rater_gives_undefined_statistics_that_never_pass():
    report = agreement([1, 2, 3, 4, 5, 3], [4] * 6, resamples=200)
    assert all(report["metrics"][m]["value"] is None for m in ("spearman", "kendall", "pearson"))
    assert not agreement_ok(report, "spearman", -1.0)


def test_bootstrap_is_seeded():
    human, judge = planted_judge(80, 0.5, seed=1)
    first, again = agreement(human, judge, seed=7), agreement(human, judge, seed=7)
    other = agreement(human, judge, seed=8)
    assert first["metrics"] == again["metrics"]
    assert first["metrics"]["kendall"]["ci95"] != other["metrics"]["kendall"]["ci95"]


# ---------------------------------------------------------------------------------------------------------------
# A planted judge with known population agreement


def planted_judge(n: int, p: float, seed: int) -> tuple[list[int], list[int]]:
    """Human scores uniform on 1-5; the judge copies the human score with probability p, else scores uniformly at
    random. Then the judge's scores are uniform too, and with U independent of H:
      cov(H, J) = p var(H) and var(J) = var(H), so Pearson = p;
      the same midrank transform g applies to both (equal marginals), so Spearman = corr(g(H), g(J)) = p;
      E(H - J)^2 = (1 - p) E(H - U)^2 against the chance term E(H - U)^2, so quadratic kappa = p.
    Kendall's tau-b has no such shortcut: `population_kendall` computes it from the joint distribution."""
    rng = np.random.default_rng(seed)
    human = rng.integers(1, 6, n)
    judge = np.where(rng.random(n) < p, human, rng.integers(1, 6, n))
    return human.tolist(), judge.tolist()


def population_kendall(p: float) -> float:
    """tau-b of two independent draws from P(h, j) = p [h = j] / 5 + (1 - p) / 25."""
    joint = np.full((5, 5), (1 - p) / 25) + np.eye(5) * p / 5
    concordant = discordant = 0.0
    for a, b, c, d in itertools.product(range(5), repeat=4):
        sign = np.sign(c - a) * np.sign(d - b)
        concordant += joint[a, b] * joint[c, d] * (sign > 0)
        discordant += joint[a, b] * joint[c, d] * (sign < 0)
    rows, cols = joint.sum(1), joint.sum(0)
    return (concordant - discordant) / math.sqrt((1 - (rows**2).sum()) * (1 - (cols**2).sum()))


def true_agreement(p: float) -> dict[str, float]:
    return {"spearman": p, "pearson": p, "kappa": p, "kendall": population_kendall(p)}


def test_the_planted_truth_holds_on_a_very_large_sample():
    human, judge = planted_judge(400_000, 0.6, seed=0)
    for name, truth in true_agreement(0.6).items():
        assert statistic(name, human, judge) == pytest.approx(truth, abs=0.005), name


def test_calibration_interval_contains_the_planted_agreement():
    human, judge = planted_judge(300, 0.6, seed=11)
    report = agreement(human, judge, resamples=1000, seed=0)
    for name, truth in true_agreement(0.6).items():
        low, high = report["metrics"][name]["ci95"]
        assert low <= truth <= high, (name, truth, low, high)
        assert high - low < 0.25  # informative, not merely wide


def test_bootstrap_intervals_cover_the_truth_about_95_percent_of_the_time():
    truth, replications = true_agreement(0.6), 200
    covered = dict.fromkeys(truth, 0)
    for seed in range(replications):
        human, judge = planted_judge(200, 0.6, seed=seed)
        report = agreement(human, judge, resamples=1000, seed=seed)
        for name, value in truth.items():
            low, high = report["metrics"][name]["ci95"]
            covered[name] += low <= value <= high
    # 95% nominal; with 200 replications the binomial sd is 1.5 points, so 0.90-0.99 allows 3 sd either side.
    for name, hits in covered.items():
        assert 0.90 <= hits / replications <= 0.99, (name, hits / replications)


def test_a_pure_noise_judge_contains_zero_and_fails_the_threshold():
    human, judge = planted_judge(300, 0.0, seed=5)
    report = agreement(human, judge, resamples=1000, seed=0)
    for name in METRICS:
        low, high = report["metrics"][name]["ci95"]
        assert low <= 0 <= high, name
        assert not agreement_ok(report, name, 0.6) and not agreement_ok(report, name, 0.6, on="estimate")


# ---------------------------------------------------------------------------------------------------------------
# The rubric


@pytest.mark.parametrize(("reply", "score"), [
    ('{"score": 4, "reason": "one field off"}', 4),
    ('```json\n{"score": "5", "reason": "exact"}\n```', 5),
    ('Let me check. {"note": 1} Verdict: {"score": 2.0, "reason": "wrong code"}', 2),
    ("The answer misses the date.\nScore: 3", 3),
    ("**Rating:** 4/5", 4),
    ("At first glance score: 2, but on reflection the final score: 4", 4),
    ("[[1]]", 1),
])
def test_scores_are_read_from_json_or_labelled_text(reply, score):
    parsed = parse_score(reply)
    assert parsed.ok and parsed.score == score and parsed.raw == reply


@pytest.mark.parametrize("reply", ["I cannot grade this.", '{"score": 9}', "Score: 3.5", '{"score": "four"}', ""])
def test_unreadable_replies_are_failures_that_keep_the_raw_text(reply):
    parsed = parse_score(reply)
    assert not parsed.ok and parsed.score is None and parsed.raw == reply and parsed.error


def test_judge_prompt_holds_question_reference_and_answer():
    with_reference = judge_messages(CORRECTNESS, "Extract the modality.", '{"modality": "CT"}', '{"modality": "MR"}')
    text = with_reference[1]["content"]
    assert "Extract the modality." in text and '{"modality": "CT"}' in text and "<reference>" in text
    assert '"score"' in with_reference[0]["content"] and "1:" in with_reference[0]["content"]
    assert "<reference>" not in judge_messages(QUALITY, "Hi?", "Hello.")[1]["content"]


# ---------------------------------------------------------------------------------------------------------------
# The endpoint client: the real openai client against a real server on 127.0.0.1


def settings_for(server: OpenAIServer, **changes) -> EndpointSettings:
    base = {"base_url": server.base_url, "model": "judge-model", "api_key_env": KEY_ENV, "max_retries": 3,
            "backoff_s": 0.01, "timeout_s": 5.0}
    return EndpointSettings(**{**base, **changes})


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def test_429_then_success_is_one_retry_after_the_servers_retry_after():
    with OpenAIServer(reply=lambda body: '{"score": 4, "reason": "ok"}', api_key=KEY) as server:
        server.fail_next(429, retry_after=7)
        waits: list[float] = []
        client = EndpointClient(settings_for(server), sleep=waits.append)
        scores = score_items(client, [JudgeItem("q", "a", "a")], CORRECTNESS, max_tokens=64)
    assert [s.score for s in scores] == [4]
    assert waits == [7.0]  # Retry-After honoured, not our backoff
    assert client.summary()["retries"] == 1 and client.summary()["retries_by_reason"] == {"429": 1}
    assert server.statuses == {429: 1, 200: 1} and client.usage.requests == 2


def test_retry_after_is_really_waited_for():
    with OpenAIServer(reply=lambda body: "Score: 5") as server:
        server.fail_next(429, retry_after=0.3)
        started = time.monotonic()
        completion = EndpointClient(settings_for(server)).complete(ask("x"))
        elapsed = time.monotonic() - started
    assert completion.text == "Score: 5" and elapsed >= 0.3


def test_5xx_then_success_backs_off_exponentially_with_jitter():
    with OpenAIServer(reply=lambda body: '{"score": 2}') as server:
        server.fail_next(500)
        server.fail_next(503)
        waits: list[float] = []
        client = EndpointClient(settings_for(server, backoff_s=1.0), sleep=waits.append)
        assert parse_score(client.complete(ask("x")).text).score == 2
    assert client.usage.retries == {"500": 1, "503": 1}
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0  # between half and all of 1 s * 2^attempt


def test_a_timeout_is_retried_and_counted():
    with OpenAIServer(reply=lambda body: '{"score": 3}') as server:
        server.stall_next(3.0)
        client = EndpointClient(settings_for(server, timeout_s=0.4))
        started = time.monotonic()
        completion = client.complete(ask("x"))
        elapsed = time.monotonic() - started
    assert parse_score(completion.text).score == 3
    assert client.usage.retries == {"timeout": 1} and elapsed < 3.0


def test_retries_run_out_with_a_clear_error_and_the_openai_clients_own_retries_are_off():
    with OpenAIServer() as server:
        server.fail_next(502, times=10)
        client = EndpointClient(settings_for(server, max_retries=2), sleep=lambda s: None)
        with pytest.raises(EndpointError, match=r"HTTP 502 on all 3 attempts"):
            client.complete(ask("x"))
        assert len(server.chat_requests) == 3  # openai's max_retries=0: every attempt is ours

        server.faults.clear()
        server.fail_next(500)
        with pytest.raises(EndpointError, match="on all 1 attempts"):
            EndpointClient(settings_for(server, max_retries=0)).complete(ask("y"))
        assert len(server.chat_requests) == 4


def test_a_refused_connection_is_retried_then_reported():
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = EndpointSettings(base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key_env=KEY_ENV,
                                max_retries=2, timeout_s=2.0)
    client = EndpointClient(settings, sleep=lambda s: None)
    with pytest.raises(EndpointError, match="connection failed.*on all 3 attempts"):
        client.complete(ask("x"))
    assert client.usage.retries == {"connection": 2}


def test_a_bad_key_is_not_retried_and_a_missing_key_names_its_variable(monkeypatch):
    with OpenAIServer(api_key="the-right-key") as server:
        with pytest.raises(EndpointError, match="HTTP 401.*api_key_env"):
            EndpointClient(settings_for(server)).complete(ask("x"))
        assert server.statuses == {401: 1}
        monkeypatch.delenv(KEY_ENV)
        with pytest.raises(EndpointError, match=f"environment variable {KEY_ENV}, which is not set"):
            EndpointClient(settings_for(server))


def test_the_cache_means_nothing_is_paid_for_twice(tmp_path):
    with OpenAIServer(reply=lambda body: '{"score": 5, "reason": "right"}') as server:
        client = EndpointClient(settings_for(server, cache_dir=tmp_path / "cache"))
        first = client.complete(ask("same question"), {"temperature": 0.0, "max_tokens": 64})
        second = client.complete(ask("same question"), {"temperature": 0.0, "max_tokens": 64})
        assert len(server.chat_requests) == 1
        assert not first.cached and second.cached and second.text == first.text
        # A new client (a later run) reads the same cache from disk.
        later = EndpointClient(settings_for(server, cache_dir=tmp_path / "cache"))
        assert later.complete(ask("same question"), {"temperature": 0.0, "max_tokens": 64}).cached
        assert len(server.chat_requests) == 1 and later.usage.cache_hits == 1
        # Anything that changes the answer is a different key: the decoding, the model, the messages.
        later.complete(ask("same question"), {"temperature": 0.0, "max_tokens": 32})
        EndpointClient(settings_for(server, cache_dir=tmp_path / "cache", model="other")).complete(
            ask("same question"), {"temperature": 0.0, "max_tokens": 64})
        later.complete(ask("another question"), {"temperature": 0.0, "max_tokens": 64})
        assert len(server.chat_requests) == 4
    cached_text = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert KEY not in cached_text and KEY_ENV not in cached_text


def test_identical_requests_in_one_batch_are_sent_once():
    with OpenAIServer(reply=lambda body: "Score: 4") as server:
        client = EndpointClient(settings_for(server))
        out = client.complete_many([ask("a"), ask("b"), ask("a"), ask("a")])
    assert [c.text for c in out] == ["Score: 4"] * 4 and len(server.chat_requests) == 2


def test_tokens_and_cost_are_accounted_from_usage(tmp_path):
    def reply(body):
        return f'{{"score": 3, "reason": "{body["messages"][-1]["content"]} is half right"}}'

    with OpenAIServer(reply=reply) as server:
        client = EndpointClient(settings_for(server, cache_dir=tmp_path, price_input_per_m=2.5,
                                             price_output_per_m=10.0))
        batch = [ask(f"question number {i} " * (i + 1)) for i in range(5)]
        client.complete_many(batch)
        client.complete_many(batch[:2])  # cached: counted apart, costs nothing
    expected_in = sum(prompt_tokens(m) for m in batch)
    expected_out = sum(count_tokens(reply({"messages": m})) for m in batch)
    summary = client.summary()
    assert (summary["prompt_tokens"], summary["completion_tokens"]) == (expected_in, expected_out)
    assert summary["cost_usd"] == pytest.approx((expected_in * 2.5 + expected_out * 10.0) / 1e6)
    assert summary["cache_hits"] == 2
    assert summary["cached_prompt_tokens"] == sum(prompt_tokens(m) for m in batch[:2])
    assert summary["cost_saved_by_cache_usd"] > 0


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_is_bounded(limit):
    with OpenAIServer(reply=lambda body: "Score: 1", delay_s=0.05) as server:
        client = EndpointClient(settings_for(server, max_concurrency=limit))
        out = client.complete_many([ask(f"q{i}") for i in range(4 * limit + 4)])
    assert len(out) == 4 * limit + 4 and len(server.chat_requests) == 4 * limit + 4
    assert server.max_in_flight == limit  # reached, never exceeded


class ScriptedTransport:
    """An in-memory transport: fails as scripted, then answers. No HTTP at all."""

    def __init__(self, failures: list[Retryable]):
        self.failures, self.calls = list(failures), 0

    def send(self, model, messages, params):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return Completion(text="Score: 2", finish_reason="stop", prompt_tokens=3, completion_tokens=2)


def test_an_in_memory_transport_stands_in_for_the_wire():
    transport = ScriptedTransport([Retryable("HTTP 429", "429", retry_after=120.0), Retryable("reset", "connection")])
    waits: list[float] = []
    settings = EndpointSettings(base_url="http://nowhere/v1", model="m", max_backoff_s=30.0)
    client = EndpointClient(settings, transport=transport, sleep=waits.append)
    assert client.complete(ask("x")).text == "Score: 2"
    assert transport.calls == 3 and client.usage.retries == {"429": 1, "connection": 1}
    assert waits[0] == 30.0  # a Retry-After beyond the cap waits the cap


# ---------------------------------------------------------------------------------------------------------------
# Config, the human-scores file, and `tunestack judge calibrate` end to end


def test_judge_config_problems_are_reported_with_paths():
    base = "data: {path: rows.jsonl}\n"
    with pytest.raises(ConfigError, match="Did you mean 'max_concurrency'"):
        parse_config(base + "judge: {max_concurency: 4}\n", [])
    with pytest.raises(ConfigError, match=r"judge \(line 2\): enabled is true but model is not set"):
        parse_config(base + "judge: {enabled: true}\n", [])
    with pytest.raises(ConfigError, match="price_output_per_m, or neither"):
        parse_config(base, ["judge.price_input_per_m=2.5"])
    cfg = parse_config(base + "judge: {model: gpt-x, agreement_metric: kappa}\n", ["judge.max_concurrency=2"])
    assert cfg.judge.agreement_metric == "kappa" and cfg.judge.max_concurrency == 2 and cfg.judge.cache


def test_bad_human_rows_are_all_reported_with_file_and_line(tmp_path):
    path = tmp_path / "human.jsonl"
    good = {"id": "a", "prompt": "p", "answer": "x", "human_score": 3}
    lines = [json.dumps(good), "{not json", json.dumps({**good, "id": "b", "human_score": 7}),
             json.dumps({"id": "c", "prompt": "p"}), json.dumps({**good}), json.dumps({**good, "id": "d",
                                                                                        "answer": 5})]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read_human_scores(path)
    message = str(info.value)
    assert "5 bad row(s)" in message
    for line, needle in [(2, "not valid JSON"), (3, "human_score must be a number from 1 to 5, got 7"),
                         (4, "missing answer, human_score"), (5, "id 'a' already used on line 1"),
                         (6, "answer must be a string")]:
        assert f"{path}:{line}: {needle}" in message


def planted_server_reply(judge_scores: dict[str, int], unreadable: set[str]):
    """The judge model: finds the item id in the answer and replies with its planted score, in a few formats."""
    def reply(body):
        item = re.search(r"item-(\d+)", body["messages"][-1]["content"]).group(0)
        if item in unreadable:
            return "I am not able to grade this answer."
        score = judge_scores[item]
        if int(item.split("-")[1]) % 3 == 0:
            return f"The answer matches the reference in part.\nScore: {score}"
        return json.dumps({"score": score, "reason": f"planted score for {item}"})
    return reply


def write_calibration_case(tmp_path: Path, n: int, p: float, seed: int) -> tuple[Path, dict, set]:
    human, judge = planted_judge(n, p, seed)
    ids = [f"item-{i:03d}" for i in range(n)]
    rows = [{"id": i, "prompt": f"Question {i}?", "answer": f"answer for {i}", "reference": f"reference {i}",
             "human_score": h} for i, h in zip(ids, human)]
    path = tmp_path / "human.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, dict(zip(ids, judge)), {ids[-1]}


def test_judge_calibrate_end_to_end_through_the_cli(tmp_path):
    n, p = 150, 0.7
    human_file, judge_scores, unreadable = write_calibration_case(tmp_path, n, p, seed=2)
    with OpenAIServer(reply=planted_server_reply(judge_scores, unreadable), api_key=KEY) as server:
        config = tmp_path / "run.yaml"
        config.write_text(yaml.safe_dump({
            "run": {"name": "judged", "runs_dir": str(tmp_path / "runs"), "seed": 0},
            "data": {"path": str(tmp_path / "unused.jsonl")},
            "judge": {"base_url": server.base_url, "model": "judge-model", "api_key_env": KEY_ENV,
                      "max_concurrency": 8, "cache_dir": str(tmp_path / "cache"), "price_input_per_m": 3.0,
                      "price_output_per_m": 15.0, "agreement_metric": "spearman", "agreement_threshold": 0.5},
        }))
        command = [sys.executable, "-m", "tunestack", "judge", "calibrate", str(config), "--human", str(human_file),
                   "judge.max_concurrency=4"]
        env = {**os.environ, KEY_ENV: KEY}
        first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        requests_after_first = len(server.chat_requests)
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert requests_after_first == n and len(server.chat_requests) == n  # the second run paid for nothing
    assert server.max_in_flight <= 4

    out = tmp_path / "runs" / "judged" / "judge"
    calibration = json.loads((out / "calibration.json").read_text())
    assert (out / "manifest.json").exists() and (out / "calibration.md").exists()
    assert calibration["n_items"] == n and calibration["n_scored"] == n - 1 and calibration["n_failed"] == 1
    failed = [item for item in calibration["items"] if item["judge"] is None]
    assert failed[0]["id"] in unreadable and failed[0]["raw"] == "I am not able to grade this answer."
    scored = {item["id"]: item["judge"] for item in calibration["items"] if item["judge"] is not None}
    assert scored == {i: s for i, s in judge_scores.items() if i not in unreadable}

    truth = true_agreement(p)
    for name, value in truth.items():
        low, high = calibration["agreement"]["metrics"][name]["ci95"]
        assert low <= value <= high, (name, value, low, high)
    assert calibration["agreement_ok"] is True and "counts in selection" in first.stdout

    usage = calibration["usage"]  # the second run: every answer from the cache
    assert usage["cache_hits"] == n and usage["requests"] == 0 and usage["cost_usd"] == 0
    assert usage["cached_prompt_tokens"] == sum(prompt_tokens(body["messages"]) for body in server.chat_requests)
    assert usage["cost_saved_by_cache_usd"] == pytest.approx(
        (usage["cached_prompt_tokens"] * 3.0 + usage["cached_completion_tokens"] * 15.0) / 1e6)
    markdown = (out / "calibration.md").read_text()
    assert "Kendall tau-b" in markdown and "Unreadable judge replies" in markdown and "item-000" in markdown

    written = "".join(p.read_text(errors="ignore") for p in (tmp_path / "runs").rglob("*") if p.is_file())
    assert KEY not in written  # the key never reaches a file
    run = RunDir(tmp_path / "runs" / "judged")
    cfg = parse_config(config.read_text(), [])
    assert judge_counts(cfg, run)[0] is True
    stricter = parse_config(config.read_text(), ["judge.agreement_threshold=0.95"])
    ok, why = judge_counts(stricter, run)
    assert ok is False and "does NOT count" in why
    assert judge_counts(parse_config(config.read_text(), ["judge.model=another"]), run)[0] is False


def test_a_noise_judge_fails_the_threshold_through_the_stage(tmp_path):
    from tunestack.judge.stage import run_calibration

    human_file, judge_scores, _ = write_calibration_case(tmp_path, 120, 0.0, seed=4)
    with OpenAIServer(reply=planted_server_reply(judge_scores, set())) as server:
        cfg = parse_config(yaml.safe_dump({
            "run": {"name": "noise", "runs_dir": str(tmp_path / "runs")}, "data": {"path": "unused.jsonl"},
            "judge": {"base_url": server.base_url, "model": "m", "api_key_env": KEY_ENV, "cache": False}}), [])
        calibration = run_calibration(cfg, RunDir(tmp_path / "runs" / "noise"), human_file)
    low, high = calibration["agreement"]["metrics"]["spearman"]["ci95"]
    assert low <= 0 <= high and calibration["agreement_ok"] is False
    assert calibration["usage"]["cost_usd"] is None  # unpriced: not reported as free


def test_cli_reports_a_missing_human_file_cleanly(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"run": {"runs_dir": str(tmp_path / "runs")}, "data": {"path": "x.jsonl"},
                                      "judge": {"model": "m"}}))
    done = subprocess.run([sys.executable, "-m", "tunestack", "judge", "calibrate", str(config), "--human",
                           str(tmp_path / "nope.jsonl")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "cannot read the human scores" in done.stderr and "Traceback" not in done.stderr


def test_the_pure_judge_modules_import_no_network_client():
    code = ("import sys\nimport tunestack.judge.rubric, tunestack.judge.calibrate, tunestack.judge.report\n"
            "import tunestack.client.endpoint  # openai is imported only when a real transport is built\n"
            "bad = [m for m in ('openai', 'httpx', 'httpx2', 'torch') if m in sys.modules]\nassert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
