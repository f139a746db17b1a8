"""lm-evaluation-harness tasks as a retention suite (`tunestack.evaluate.harness`), on the local tasks shipped in
tests/lm_eval_tasks (a two-choice task scored by log-likelihood, a short-answer task scored by exact match).

The truth is the harness's own: the same tasks run by lm-eval on its own (`simple_evaluate` with `model="hf"` loading
the model folder itself) give the figures tunestack must report, item for item; through the built-in server, the
served answers must be the ones lm-eval's HFLM generates from the local weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

TASKS = Path(__file__).parent / "lm_eval_tasks"


def spec(tasks: list[str], **kw):
    from tunestack.config.evaluate import LmEvalSection

    return LmEvalSection(tasks=tasks, include_path=str(TASKS), **kw)


def harness_alone(folder: Path, tasks: list[str]) -> dict:
    """lm-eval on its own: it loads the folder, renders the chat template and scores, as a user running it would."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    return simple_evaluate(model="hf", model_args={"pretrained": str(folder), "dtype": "float32", "device": "cpu"},
                           tasks=tasks, task_manager=TaskManager(include_path=str(TASKS)), apply_chat_template=True,
                           log_samples=True, bootstrap_iters=0, batch_size=8)


def test_a_local_task_scores_as_the_harness_scores_it_on_its_own(tiny_model: Path):
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.evaluate.harness import score_lm_eval
    from tunestack.models import load_model

    model, tokenizer = load_model(tiny_model)
    ours = score_lm_eval(LocalGenerator(model, tokenizer, batch_size=8), spec(["tunestack_choice", "tunestack_echo"]))
    alone = harness_alone(tiny_model, ["tunestack_choice", "tunestack_echo"])

    choice, echo = ours["tasks"]["tunestack_choice"], ours["tasks"]["tunestack_echo"]
    assert (choice["n"], echo["n"], ours["n"]) == (24, 12, 36)
    assert choice["metric"] == "acc" and echo["metric"] == "exact_match"
    assert choice["accuracy"] == alone["results"]["tunestack_choice"]["acc,none"] == choice["harness"]
    assert echo["accuracy"] == alone["results"]["tunestack_echo"]["exact_match,none"] == echo["harness"]
    assert 0 < choice["accuracy"] < 1  # the pretrained tiny model is right on some and wrong on others
    by_doc = sorted(alone["samples"]["tunestack_choice"], key=lambda s: s["doc_id"])
    assert ours["correct"][:24] == [float(s["acc"]) for s in by_doc]
    assert echo["answers"] == [s["filtered_resps"][0] for s in
                               sorted(alone["samples"]["tunestack_echo"], key=lambda s: s["doc_id"])]
    assert ours["settings"]["apply_chat_template"] and ours["settings"]["lm_eval"] == "0.4.13"
    assert "{% for message in messages %}" in ours["settings"]["chat_template"]


def test_through_the_built_in_server_the_answers_are_the_local_ones(tiny_model: Path):
    from test_serve import start

    from tunestack.client import EndpointClient, EndpointSettings
    from tunestack.evaluate.endpoint import EndpointGenerator
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.evaluate.harness import score_lm_eval
    from tunestack.models import load_model

    model, tokenizer = load_model(tiny_model)
    local = score_lm_eval(LocalGenerator(model, tokenizer, batch_size=8), spec(["tunestack_echo"]))
    generator, batcher, server = start(tiny_model)
    try:
        settings = EndpointSettings(base_url=server.base_url, model="tiny", api_key_env=None, max_concurrency=2)
        endpoint = EndpointGenerator(EndpointClient(settings), "chat")
        served = score_lm_eval(endpoint, spec(["tunestack_echo"]))
        skipped = score_lm_eval(endpoint, spec(["tunestack_choice"]))
    finally:
        server.stop()
        batcher.stop()
    assert served["tasks"]["tunestack_echo"]["answers"] == local["tasks"]["tunestack_echo"]["answers"]
    assert served["correct"] == local["correct"] and served["n"] == 12
    assert served["tasks"]["tunestack_echo"]["accuracy"] == served["tasks"]["tunestack_echo"]["harness"]
    assert skipped["n"] == 0 and "log-likelihoods" in skipped["skipped"]


def test_the_suite_pairs_with_the_base_model_in_a_standalone_evaluation(tiny_config: Path, tiny_model: Path):
    """`tunestack evaluate CONFIG --model FOLDER` with lm-eval tasks: the suite is scored for the base model and the
    model on the same items, and counts in retention."""
    from test_terminal import tunestack

    done = tunestack("evaluate", str(tiny_config), "--model", str(tiny_model), "--name", "same",
                     f"evaluate.retention.lm_eval.include_path={TASKS}",
                     "evaluate.retention.lm_eval.tasks=[tunestack_choice]")
    assert done.returncode == 0, done.stderr[-3000:]
    saved = next(tiny_config.parent.rglob("standalone/same.json"))
    body = json.loads(saved.read_text())
    base, row = body["base"], body["result"]
    assert base["lm_eval"]["n"] == row["lm_eval"]["n"] == 24
    assert row["general_by_suite"]["lm_eval"]["share"] == 1.0  # the same weights as the base model
    assert row["lm_eval"]["tasks"]["tunestack_choice"]["harness"] == row["lm_eval"]["accuracy"]
