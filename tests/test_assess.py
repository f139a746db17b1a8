"""`tunestack assess`: the failure categories, the systematic/random split and the verdict rule as pure functions;
sampling in the backends (greedy stays the default); three planted models of the demo task, each served by the test
OpenAI-compatible server on 127.0.0.1 and assessed through the CLI, getting the three verdicts; and the command on a
tiny local model.

Every expected figure of the planted scenarios is computed from what the server answered, not written down."""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from openai_server import OpenAIServer
from tunestack.assess.categories import Failure, categorise, is_correct, slip_kind
from tunestack.assess.sample import draw
from tunestack.assess.verdict import (DONT, FINETUNE, GAP, Examined, classify, consistency, decide,
                                      recurring_patterns, training_set_size)
from tunestack.cli import main
from tunestack.config import AssessSection
from tunestack.data.formats import Row
from tunestack.demo.radiology import FIELDS, answer_schema, write_demo_data
from tunestack.evaluate.backends import Sampling

REF = '{"modality": "ct", "region": "chest", "finding": "pneumothorax", "side": "left", "severity": "mild"}'


def answer(**changes) -> str:
    return json.dumps({**json.loads(REF), **changes})


# ---------------------------------------------------------------------------------------------------------------
# Categories


@pytest.mark.parametrize("prediction, eos, format_ok, label, pattern", [
    ("I'm sorry, but I cannot read medical reports.", True, False, "refusal", "refusal"),
    ('{"modality": "ct", "region": "ch', False, False, "truncation", "truncation"),
    ("Here is the JSON:\n```json\n" + REF + "\n```", True, False, "format: wrapped", "format: wrapped"),
    ("modality: CT, region: chest", True, False, "format: not JSON", "format: not JSON"),
    ("The report describes a CT of the chest with a small left", False, False, "format: not JSON",
     "format: not JSON"),  # prose that also ran long: the format failed first
    (answer(modality="CT"), True, False, "vocabulary: modality", "vocabulary: modality (case)"),
    (answer(finding="pneumo thorax", side="Left"), True, False, "vocabulary: finding, side",
     "vocabulary: finding (punctuation), side (case)"),
    (answer(side="right"), True, True, "field: side", "field: side = right"),
    (answer(side="right", severity="severe"), True, True, "fields: side, severity",
     "fields: side = right, severity = severe"),
    (answer(side="right", modality="CT"), True, False, "field: side", "field: side = right"),  # content first
    (json.dumps({k: v for k, v in json.loads(REF).items() if k != "side"}), True, False, "field: side",
     "field: side = (missing)"),
    (answer(extra="x"), True, False, "format: schema", "format: schema"),
    (answer(extra="x"), True, True, "format: extra keys", "format: extra keys"),
])
def test_each_wrong_answer_gets_one_primary_category(prediction, eos, format_ok, label, pattern):
    failure = categorise(prediction, REF, eos, format_ok, AssessSection().refusal_phrases)
    assert (failure.label, failure.pattern) == (label, pattern)
    assert failure.category == label.split(":")[0].replace("fields", "field")


def test_a_refusal_inside_the_json_is_not_a_refusal_and_plain_answers_are_one_field():
    assert categorise(answer(finding="I cannot tell"), REF, True, False, ["I cannot"]).label == "field: finding"
    assert categorise("I'm sorry for the wait: " + REF, REF, True, False, ["I'm sorry"]).label == "format: wrapped"
    assert categorise("Lyon", "Paris", True, True, []).pattern == "field: answer = Lyon"
    assert categorise("paris", "Paris", True, True, []).pattern == "vocabulary: answer (case)"
    assert categorise("Paris!", "Paris", True, False, []).label == "format: invalid"
    assert categorise("The capital of France is a city that", "Paris", False, True, []).label == "truncation"


def test_vocabulary_slips_are_the_right_value_written_differently():
    assert slip_kind("lung, left", "left lung") == "word order"
    assert slip_kind("Left Lung", "left lung") == "case"
    assert slip_kind("X-ray", "xray") == "punctuation"
    assert slip_kind("computed tomography", "ct") is None
    assert slip_kind("Computed Tomography", "ct", {"ct": ["computed tomography"]}) == "synonym"
    assert slip_kind("right", "left") is None and slip_kind("", "left") is None


def test_every_wrong_field_is_recorded_whatever_the_primary_category():
    failure = categorise(answer(side="right", modality="CT"), REF, True, False, [])
    assert failure.label == "field: side" and failure.wrong == {"side": "right"}
    assert failure.fields == {"side": "content", "modality": "case"}


def test_the_headline_score_decides_right_or_wrong():
    assert is_correct(True) and is_correct(1.0) and is_correct({"a": True, "b": 1.0})
    assert not is_correct(False) and not is_correct({"a": True, "b": False}) and not is_correct({})


# ---------------------------------------------------------------------------------------------------------------
# Systematic or random, and the verdict


def vocab(value: str) -> Failure:
    """The modality written in upper case: a slip of the right value."""
    return categorise(answer(modality=value), answer(modality=value.lower()), True, False, [])


def field(name: str, value: str) -> Failure:
    return categorise(answer(**{name: value}), REF, True, True, [])


def test_a_failure_is_systematic_when_it_repeats_across_samples_and_examples():
    ct, mri = vocab("CT"), vocab("MRI")
    assert ct.signature != mri.signature and ct.pattern == mri.pattern  # one slip, two values
    recurring = recurring_patterns([ct, mri, field("side", "right")], min_share=0.5)
    assert recurring == {"vocabulary: modality (case)": 2}
    assert classify(Examined(ct, [ct.signature] * 5), recurring, 0.8) == "systematic"
    assert classify(Examined(ct, [ct.signature] * 4 + [None]), recurring, 0.8) == "systematic"
    assert classify(Examined(ct, [ct.signature] * 3 + [None, mri.signature]), recurring, 0.8) == "random"
    lone = field("side", "right")
    assert classify(Examined(lone, [lone.signature] * 5), recurring, 0.8) == "isolated"


def verdict_of(accuracy: float, wrong: list[Failure], examined: list[Examined], **settings) -> tuple[str, list[str]]:
    section = AssessSection(**settings)
    recurring = recurring_patterns(wrong, section.min_pattern_share)
    return decide(accuracy, [accuracy - 0.05, accuracy + 0.05], wrong, recurring,
                  consistency(examined, recurring, section), section)


def test_the_verdict_rule_with_its_thresholds():
    same = [vocab("CT") for _ in range(10)]
    steady = [Examined(f, [f.signature] * 5) for f in same]
    scattered = [field(name, "x") for name in FIELDS for _ in range(2)]
    wobbly = [Examined(f, [None, f.signature, field("region", "y").signature, None, None]) for f in scattered]

    assert verdict_of(0.90, same, steady)[0] == DONT  # above 85%, whatever the failures
    assert verdict_of(0.65, same, steady)[0] == FINETUNE
    verdict, reasons = verdict_of(0.65, scattered, wobbly)
    assert verdict == GAP and "100% of the examined failures change between samples" in reasons[2]
    # The thresholds are the config's.
    assert verdict_of(0.90, same, steady, dont_finetune_above=0.95)[0] == FINETUNE
    assert verdict_of(0.65, same, steady[:5] + wobbly[:5], systematic_share=0.4)[0] == FINETUNE
    assert verdict_of(0.65, same, steady[:5] + wobbly[:5], systematic_share=0.6)[0] == GAP
    # Without samples the repeats across examples decide alone, and the reasons say so.
    verdict, reasons = verdict_of(0.65, same, [])
    assert verdict == FINETUNE and "not measured" in reasons[1]


def test_the_suggested_training_set_is_guidance_scaled_by_model_size_and_systematic_share():
    at_7b = training_set_size(FINETUNE, 1.0, 7, False)
    assert at_7b["range"] == [500, 2000] and at_7b["suggested"] == 500 and "guidance" in at_7b["note"]
    assert training_set_size(FINETUNE, 0.0, 7, False)["suggested"] == 2000
    assert training_set_size(FINETUNE, 0.5, 0.5, False)["suggested"] > training_set_size(FINETUNE, 0.5, 70, False)[
        "suggested"]
    assumed = training_set_size(GAP, 0.2, 7, True)
    assert "assumed" in assumed["note"] and "unlikely" in assumed["when"]


def test_the_sample_is_stratified_and_seeded():
    rows = [Row([{"role": "user", "content": str(i)}, {"role": "assistant", "content": json.dumps({"m": m})}],
                "f", i) for i, m in enumerate(["ct"] * 60 + ["mri"] * 30 + ["xray"] * 10)]
    picked, strata = draw(rows, 20, seed=3, stratify_by="answer.m")
    assert strata == {"ct": 12, "mri": 6, "xray": 2} and len(picked) == 20
    assert draw(rows, 20, seed=3, stratify_by="answer.m")[0] == picked
    assert len(draw(rows, 500, seed=3, stratify_by=None)[0]) == 100  # fewer rows than asked: all of them


# ---------------------------------------------------------------------------------------------------------------
# Sampling in the backends; greedy stays the default


def test_the_endpoint_sends_sampling_only_when_asked():
    from tunestack.evaluate.endpoint import EndpointGenerator
    from tunestack.client.endpoint import EndpointClient, EndpointSettings

    with OpenAIServer(reply=lambda body: "ok") as server:
        settings = EndpointSettings(base_url=server.base_url, model="test-model", api_key_env=None)
        generator = EndpointGenerator(EndpointClient(settings), "chat")
        prompt = [[{"role": "user", "content": "hi"}]]
        generator.generate(prompt, 8)
        generator.generate(prompt, 8, sampling=Sampling(temperature=0.7, top_p=0.9, seed=3))
        generator.close()
    greedy, sampled = server.chat_requests
    assert {k: greedy[k] for k in ("temperature", "max_tokens")} == {"temperature": 0.0, "max_tokens": 8}
    assert "seed" not in greedy and "top_p" not in greedy
    assert (sampled["temperature"], sampled["top_p"], sampled["seed"], sampled["max_tokens"]) == (0.7, 0.9, 3, 8)


@pytest.mark.integration
def test_local_sampling_is_seeded_and_leaves_greedy_and_the_global_rng_alone(tiny_model: Path):
    import torch

    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import load_model

    model, tok = load_model(tiny_model)
    generator = LocalGenerator(model, tok, batch_size=4)
    prompts = [[{"role": "user", "content": text}] for text in ["CT chest: sm L PTX.", "MRI head: NAD.", "hi"]]
    greedy = [g.token_ids for g in generator.generate(prompts, 12)]
    state = torch.get_rng_state()

    def sample(seed: int) -> list[list[int]]:
        return [g.token_ids for g in generator.generate(prompts, 12, sampling=Sampling(temperature=1.5, seed=seed))]

    first, again, other = sample(1), sample(1), sample(2)
    assert torch.equal(state, torch.get_rng_state())  # forked: the global RNG is untouched
    assert first == again and first != other
    assert [g.token_ids for g in generator.generate(prompts, 12)] == greedy


# ---------------------------------------------------------------------------------------------------------------
# Three planted models of the demo task, served on 127.0.0.1, assessed through the CLI


@pytest.fixture(scope="module")
def demo_task(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The demo data and a config that assesses an endpoint on 200 of its rows; the reference of every report."""
    folder = tmp_path_factory.mktemp("assess")
    data, schema = write_demo_data(folder / "data", n=300, seed=3)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    references = {row["messages"][1]["content"]: row["messages"][2]["content"] for row in rows}
    cfg = {"run": {"runs_dir": str(folder / "runs"), "seed": 0},
           "data": {"path": str(data), "stratify_by": "answer.modality"},
           "evaluate": {"format": {"type": "json_schema", "schema_path": str(schema)},
                        "endpoint": {"api_key_env": None, "cache": False, "backoff_s": 0.01}},
           "assess": {"data": "sources"}}
    path = folder / "assess.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, references


def rng(body: dict, per_sample: bool) -> random.Random:
    """The planted model's randomness: per report, or per report and sampling seed (greedy requests have none)."""
    key = body["messages"][-1]["content"] + (f"#{body.get('seed')}" if per_sample else "")
    return random.Random(hashlib.sha256(key.encode()).hexdigest())


def wrong_value(name: str, right: str, draw: random.Random) -> str:
    return draw.choice([v for v in answer_schema()["properties"][name]["enum"] if v != right])


def assess(config: Path, server: OpenAIServer, name: str, capsys) -> tuple[dict, str]:
    assert main(["assess", str(config), "--model", server.base_url, f"run.name={name}"]) == 0
    out = capsys.readouterr().out
    folder = yaml.safe_load(config.read_text())["run"]["runs_dir"]
    return json.loads((Path(folder) / name / "assess" / "assess.json").read_text()), out


def served(server: OpenAIServer, reply) -> tuple[dict[str, str], dict[str, list[str]]]:
    """What the planted model answered: the greedy answer per report, and the sampled answers per report."""
    greedy, sampled = {}, defaultdict(list)
    for body in server.chat_requests:
        prompt = body["messages"][-1]["content"]
        if body["temperature"] == 0:
            greedy[prompt] = reply(body)
        else:
            sampled[prompt].append(reply(body))
    return greedy, sampled


def right(text: str, reference: str) -> bool:
    try:
        return json.loads(text) == json.loads(reference)
    except json.JSONDecodeError:
        return False


def right_90_percent(references: dict[str, str]):
    """Planted model 1: one report in ten gets one field wrong, the same way every time."""

    def reply(body: dict) -> str:
        truth, draw = json.loads(references[body["messages"][-1]["content"]]), rng(body, per_sample=False)
        if draw.random() < 0.1:
            name = draw.choice(FIELDS)
            truth[name] = wrong_value(name, truth[name], draw)
        return json.dumps(truth)

    return reply


def systematic(references: dict[str, str]):
    """Planted model 2: modality "ct" always written "CT"; reports with "Exam:" always answered with prose around the
    JSON. Every sample the same."""

    def reply(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        truth = json.loads(references[prompt])
        if truth["modality"] == "ct":
            truth["modality"] = "CT"
        text = json.dumps(truth)
        return f"Here is the extracted JSON: {text}" if "Exam:" in prompt else text

    return reply


def at_random(references: dict[str, str]):
    """Planted model 3: each answer, greedy or sampled, gets 1-2 random fields wrong 40% of the time."""

    def reply(body: dict) -> str:
        truth, draw = json.loads(references[body["messages"][-1]["content"]]), rng(body, per_sample=True)
        if draw.random() < 0.4:
            for name in draw.sample(FIELDS, draw.choice([1, 1, 2])):
                truth[name] = wrong_value(name, truth[name], draw)
        return json.dumps(truth)

    return reply


def test_a_model_right_about_90_percent_of_the_time_gets_dont_finetune(demo_task, capsys):
    config, references = demo_task
    reply = right_90_percent(references)
    with OpenAIServer(reply=reply) as server:
        body, out = assess(config, server, "right90", capsys)
        greedy, sampled = served(server, reply)
    correct = sum(right(text, references[p]) for p, text in greedy.items())
    assert len(greedy) == body["sample"]["n"] == 200
    assert body["correct"] == correct and body["accuracy"] == pytest.approx(correct / 200)
    assert 0.85 < body["accuracy"] < 0.95
    assert body["failures"]["n"] == 200 - correct
    assert set(body["failures"]["by_category"]) == {"field"}
    assert body["consistency"]["examined"] == len(sampled) == 200 - correct  # all fewer than 40 failures examined
    assert body["verdict"] == DONT and "above 85%" in body["reasons"][0]
    assert "verdict: don't fine-tune" in out


def test_a_model_that_fails_systematically_gets_finetune(demo_task, capsys):
    config, references = demo_task
    reply = systematic(references)
    with OpenAIServer(reply=reply) as server:
        body, out = assess(config, server, "systematic", capsys)
        greedy, sampled = served(server, reply)
    wrapped = sum("Exam:" in p for p in greedy)
    upper = sum("Exam:" not in p and json.loads(references[p])["modality"] == "ct" for p in greedy)
    assert body["correct"] == sum(right(text, references[p]) for p, text in greedy.items()) == 200 - wrapped - upper
    assert body["failures"]["by_label"]["format: wrapped"]["count"] == wrapped
    assert body["failures"]["by_label"]["vocabulary: modality"]["count"] == upper
    assert body["failures"]["field_errors"] == {"modality": {"content": 0, "vocabulary": upper}}
    assert {p["pattern"] for p in body["failures"]["patterns"] if p["recurring"]} == {
        "format: wrapped", "vocabulary: modality (case)"}
    figures = body["consistency"]
    assert figures["examined"] == len(sampled) == min(40, wrapped + upper)
    assert all(texts == [greedy[p]] * 5 for p, texts in sampled.items())  # the same failure in every sample
    assert figures["mean_agreement"] == 1.0 and figures["systematic_share"] == 1.0 and figures["random"] == 0
    assert body["accuracy"] <= 0.85 and body["verdict"] == FINETUNE
    assert body["training_set"]["suggested"] == body["training_set"]["range"][0]  # all systematic: the low end
    assert "verdict: fine-tune" in out


def test_a_model_that_fails_at_random_gets_capability_gap(demo_task, capsys):
    config, references = demo_task
    reply = at_random(references)
    with OpenAIServer(reply=reply) as server:
        body, out = assess(config, server, "random", capsys)
        greedy, sampled = served(server, reply)
    correct = sum(right(text, references[p]) for p, text in greedy.items())
    assert body["correct"] == correct
    assert set(body["failures"]["by_category"]) == {"field"}
    assert len(body["failures"]["field_errors"]) == len(FIELDS)  # spread over every field
    figures = body["consistency"]
    agreement = {p: sum(t == greedy[p] for t in texts) / len(texts) for p, texts in sampled.items()}
    assert figures["examined"] == len(agreement) == 40
    assert figures["mean_agreement"] == pytest.approx(sum(agreement.values()) / 40)
    assert figures["random"] == sum(a < 0.8 for a in agreement.values())
    assert figures["random_share"] > 0.9 and figures["systematic_share"] < 0.6
    assert body["accuracy"] <= 0.85 and body["verdict"] == GAP
    assert "verdict: capability gap" in out


# ---------------------------------------------------------------------------------------------------------------
# On a tiny local model


@pytest.mark.integration
def test_assess_runs_the_base_model_locally_and_writes_its_files(tiny_config: Path, capsys):
    overrides = ["data.stratify_by=answer.modality", "assess.examples=24", "assess.consistency_examples=3",
                 "assess.samples=2", "evaluate.max_new_tokens=16"]
    assert main(["assess", str(tiny_config), *overrides]) == 0
    out = capsys.readouterr().out
    run = tiny_config.parent / "runs" / "tiny"
    body = json.loads((run / "assess" / "assess.json").read_text())
    outputs = [json.loads(line) for line in (run / "assess" / "outputs.jsonl").read_text().splitlines()]
    assert body["model"]["kind"] == "base" and body["model"]["backend"] == "local"
    assert 0 < body["model"]["size_b"] < 0.01 and body["training_set"]["range"] == [1000, 4000]
    assert body["sample"]["n"] == len(outputs) == 24 and sum(body["sample"]["strata"].values()) == 24
    assert body["correct"] == sum(o["correct"] for o in outputs)
    assert body["failures"]["n"] == sum(item["count"] for item in body["failures"]["by_label"].values())
    assert body["consistency"]["examined"] == sum("samples" in o for o in outputs) == min(3, body["failures"]["n"])
    assert all(len(o["samples"]) == 2 for o in outputs if "samples" in o)
    assert body["verdict"] in (DONT, FINETUNE, GAP) and body["reasons"]
    holdout = {json.loads(line)["messages"][-2]["content"]
               for line in (run / "prepare" / "holdout.jsonl").read_text().splitlines()}
    assert holdout and not holdout & {o["prompt"] for o in outputs}  # the sealed holdout is never drawn
    assert f"verdict: {body['verdict']}" in out and "assess.md" in out
    markdown = (run / "assess" / "assess.md").read_text()
    assert "| failure | category | count |" in markdown and body["verdict"] in markdown
    assert (run / "assess" / "manifest.json").exists()
