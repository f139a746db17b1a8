"""The LLM judge inside the evaluate stage: every model's answers are scored through a real OpenAI-compatible server
(started by the test on 127.0.0.1), the usage lands in the evaluate manifest, nothing is paid for twice, and the
score counts in selection only after a calibration that clears the threshold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from openai_server import OpenAIServer


def reply(body: dict) -> str:
    """A judge that gives 5 when the answer equals the reference, else 2."""
    prompt = body["messages"][-1]["content"]
    answer = re.search(r"<answer>\n?(.*?)\n?</answer>", prompt, re.S)
    reference = re.search(r"<reference>\n?(.*?)\n?</reference>", prompt, re.S)
    same = answer and reference and answer.group(1).strip() == reference.group(1).strip()
    return json.dumps({"score": 5 if same else 2, "reason": "compared with the reference"})


def test_evaluate_scores_every_model_with_the_judge_and_select_ignores_an_uncalibrated_one(
        tiny_config: Path, tmp_path: Path, monkeypatch):
    from tunestack.config import load_config
    from tunestack.pipeline import run_stages

    monkeypatch.setenv("JUDGE_KEY", "test")
    with OpenAIServer(reply=reply) as server:
        overrides = ["train.max_steps=4", "train.num_checkpoints=1", "judge.enabled=true",
                     f"judge.base_url={server.base_url}", "judge.model=test-model", "judge.api_key_env=JUDGE_KEY",
                     f"judge.cache_dir={tmp_path / 'judge-cache'}", "judge.price_input_per_m=1",
                     "judge.price_output_per_m=2"]
        run = run_stages(load_config(tiny_config, overrides), until="select")
        evaluate = run.require("evaluate")
        models, eval_rows = evaluate["models"], evaluate["eval_examples"]
        usage = evaluate["judge_usage"]
        answers = {m["name"]: [json.loads(line) for line in
                               (run.root / "evaluate" / f"{m['name']}.outputs.jsonl").read_text().splitlines()]
                   for m in models}
        distinct = {(i, o["prediction"]) for outputs in answers.values() for i, o in enumerate(outputs)}
        assert sum(map(len, answers.values())) == len(models) * eval_rows
        # one paid request per distinct (question, answer): a model repeating another's answer costs nothing
        assert usage["completions"] == len(server.chat_requests) == len(distinct)
        assert usage["cost_usd"] == pytest.approx((usage["prompt_tokens"] + 2 * usage["completion_tokens"]) / 1e6)
        for model in models:
            outputs = answers[model["name"]]
            same = sum(o["prediction"].strip() == o["reference"].strip() for o in outputs) / len(outputs)
            assert model["judge_score"] == pytest.approx(((5 * same + 2 * (1 - same)) - 1) / 4, abs=1e-4)
            assert model["judge_unreadable"] == 0
        select = run.require("select")
        assert "judge" in json.dumps(select) and "not calibrated" in json.dumps(select)

        sent = len(server.chat_requests)
        run_stages(load_config(tiny_config, overrides), until="evaluate", force=("evaluate",))
        assert len(server.chat_requests) == sent  # every judgement came from the cache
