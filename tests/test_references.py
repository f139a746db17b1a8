"""Reference models on the results table: a reference served by an OpenAI-compatible server (the test server, on
127.0.0.1, through the `openai` client) is evaluated on the same eval split by the same code, appears as a row of
the results table and the report (never selectable), the selected model's accuracy is given as a share of it, and
`cost` states that share beside the payback, warning below `cost.min_accuracy_share`. A re-run asks it nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from openai_server import OpenAIServer
from tunestack.report import results_schema

pytestmark = pytest.mark.integration


def tunestack(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunestack", *args], capture_output=True, text=True, timeout=900)


def test_a_served_reference_is_a_row_with_the_selected_models_share(tiny_config: Path, tmp_path: Path):
    cfg = yaml.safe_load(tiny_config.read_text())
    answers = {}
    for line in Path(cfg["data"]["path"]).read_text().splitlines():
        messages = json.loads(line)["messages"]
        answers[messages[-2]["content"]] = messages[-1]["content"]

    def reply(body: dict) -> str:  # the API being replaced: right on every task row, "Paris" to any probe
        return answers.get(body["messages"][-1]["content"], "Paris")

    with OpenAIServer(reply=reply) as server:
        cfg["evaluate"]["references"] = [{"name": "api", "base_url": server.base_url, "model": "test-model",
                                          "api_key_env": None}]
        cfg["evaluate"]["endpoint"] = {"cache_dir": str(tmp_path / "answers")}
        cfg["cost"] = {"gpus": {"cpu": 0.1}, "training": {"gpu": "cpu", "model_size_b": 0.001},
                       "serving": {"gpu": "cpu", "throughput_awq": 400, "throughput_without_awq": 300},
                       "api": {"name": "api", "input_per_million": 2.5, "output_per_million": 10.0,
                               "monthly_requests": 300000, "input_tokens_per_request": 120,
                               "output_tokens_per_request": 40}}
        tiny_config.write_text(yaml.safe_dump(cfg))
        done = tunestack("run", str(tiny_config))
        assert done.returncode == 0, done.stderr[-3000:]
        asked = len(server.chat_requests)
        assert asked >= 16  # every eval row (and the probes)

        run = Path(cfg["run"]["runs_dir"]) / "tiny"
        results = json.loads((run / "results.json").read_text())
        jsonschema.validate(results, results_schema())
        reference = next(m for m in results["models"] if m["kind"] == "reference")
        assert reference["name"] == "api" and reference["task_accuracy"] == 1.0 and not reference["selected"]
        assert "api" not in [t["name"] for t in results["selection"]["table"]]  # never selectable
        chosen = next(m for m in results["models"] if m["selected"])
        share = results["references"][0]
        assert share["share"] == round(chosen["task_accuracy"] / 1.0, 4) and share["min_share"] == 0.9
        assert "api (reference)" in done.stdout
        report = (run / "report.md").read_text()
        assert f"Against api: {chosen['name']}'s exact match {chosen['task_accuracy']:.1%} is " \
               f"{share['share']:.0%} of api's 100.0%" in report

        cost = tunestack("cost", str(tiny_config))
        assert cost.returncode == 0, cost.stderr[-3000:]
        body = json.loads((run / "cost" / "cost.json").read_text())
        assert body["accuracy_share"][0]["share"] == share["share"]
        assert share["share"] < 0.9  # a tiny model is no replacement: the warning stands beside the payback
        assert any(n.startswith("WARNING:") and "below cost.min_accuracy_share (90%)" in n for n in body["notes"])
        assert "below cost.min_accuracy_share" in cost.stdout

        again = tunestack("evaluate", str(tiny_config), "--force")
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(server.chat_requests) == asked  # evaluated once: the stored results are reused
