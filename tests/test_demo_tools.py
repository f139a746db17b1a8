"""The tools demo's data (`tunestack.demo.tool_calling`): read by prepare as OpenAI wrote it, every row's answer
derivable from its request and tools, and `tunestack demo --task tools` run from an empty folder (a tiny model and a
few steps stand in for SmolLM2 and the full demo; `make demo-tools` runs that).

The checks on the rows are written here from the task's statement, not read from the generator: a call names an
offered function, passes its schema, and each argument's value shows in the request (a city or label verbatim, a
currency by its code, symbol or name, a unit by its symbol or name, a number in digits or words)."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest

from tunestack.demo.tool_calling import generate, write_demo_data

SHOWN = {"USD": ("$", "dollar", "USD"), "EUR": ("€", "euro", "EUR"), "GBP": ("£", "pound", "GBP"),
         "JPY": ("¥", "yen", "JPY"), "CHF": ("franc", "CHF"), "celsius": ("°C", "celsius", "centigrade"),
         "fahrenheit": ("°F", "fahrenheit")}
WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "eight": 8, "half an hour": 30, "an hour and a half": 90,
         "an hour": 60, "two hours": 120}


def numbers_in(text: str) -> set[float]:
    found = {float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)}
    for words, value in sorted(WORDS.items(), key=lambda kv: -len(kv[0])):
        if words in text.lower():
            found.add(float(value))
            text = text.lower().replace(words, "")
    return found


def shown(value, request: str) -> bool:
    if isinstance(value, (int, float)):
        return float(value) in numbers_in(request)
    if value in SHOWN:
        return any(form.lower() in request.lower() for form in SHOWN[value])
    return value.lower() in request.lower()


def test_every_call_is_offered_valid_and_derivable_from_its_request():
    rows = generate(400, seed=3)
    kinds = collections.Counter()
    requests = [row["messages"][1]["content"] for row in rows]
    assert len(set(requests)) == len(requests)  # no request twice: nothing for dedup or conflicts to remove
    for row in rows:
        offered = {t["function"]["name"]: t["function"]["parameters"] for t in row["tools"]}
        last = row["messages"][-1]
        calls = [m for m in row["messages"] if m.get("tool_calls")]
        if last.get("tool_calls"):
            kinds["call"] += 1
        elif calls:
            kinds["result"] += 1
            assert calls[0].get("weight") == 0 and row["messages"][-2]["role"] == "tool"
        else:
            kinds["text"] += 1
            assert "I can only" in last["content"] or last["content"]
        for message in calls:
            (call,) = message["tool_calls"]
            name, arguments = call["function"]["name"], json.loads(call["function"]["arguments"])
            schema = offered[name]  # the function called is one the row offers
            assert set(arguments) == set(schema["required"]) == set(schema["properties"])
            for key, value in arguments.items():
                spec = schema["properties"][key]
                assert {"string": str, "number": (int, float), "integer": int}[spec["type"]] == type(value) or (
                    spec["type"] == "number" and isinstance(value, (int, float))), (key, value)
                assert value in spec.get("enum", [value])
                assert shown(value, row["messages"][1]["content"]), (key, value, row["messages"][1]["content"])
    assert kinds["call"] > 0.6 * len(rows) and kinds["text"] > 0.08 * len(rows) and kinds["result"] > 0.08 * len(rows)


def test_prepare_reads_the_file_whole(tmp_path: Path, tiny_model: Path):
    """OpenAI's format as written (arguments as JSON strings, `content: null`, weight-0 calls, tool turns): every row
    read and kept, the learned turns as the file says."""
    from tunestack.config import parse_config
    from tunestack.pipeline import run_stages
    from tunestack.rundir import read_jsonl

    path = write_demo_data(tmp_path / "data", n=60, seed=0)
    cfg = parse_config(json.dumps({"run": {"name": "t", "runs_dir": str(tmp_path / "runs")},
                                   "model": {"name": str(tiny_model)},
                                   "data": {"path": str(path), "eval_size": 10, "holdout_size": 5,
                                            "max_length": 1000, "min_train_rows": 8}}), [])
    run = run_stages(cfg, until="prepare")
    counts = run.manifest("prepare")["sources"][path.name]
    assert counts["read"] == counts["kept"] == 60
    rows = read_jsonl(run.root / "prepare" / "train.jsonl")
    assert all(r["messages"][0].get("tools") for r in rows)


@pytest.mark.integration
def test_the_tools_demo_runs_from_any_folder(tmp_path: Path, tiny_model: Path):
    from test_terminal import demo_folders, tunestack

    general, work = demo_folders(tmp_path)
    done = tunestack("demo", "--task", "tools", "--rows", "60", f"model.name={tiny_model}", "data.eval_size=10",
                     "data.holdout_size=5", "data.max_length=1000", "train.max_steps=2", "train.num_checkpoints=1",
                     "evaluate.batch_size=10", "evaluate.max_new_tokens=8", "evaluate.retention.quartz_examples=4",
                     "evaluate.retention.max_probes=2", "evaluate.retention.instructions=14",
                     "evaluate.retention.instruction_max_new_tokens=8", "select.min_retention=0", "train.general_mix.source=file",
                     f"train.general_mix.path={general}", "run.threads=1", cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "data" / "demo-tools" / "tool_calling.jsonl").exists()
    results = json.loads((work / "runs" / "tools" / "results.json").read_text())
    base = next(m for m in results["models"] if m["name"] == "base")
    assert set(base["metrics"]) == {"tool_arguments", "tool_name", "tool_argument_accuracy", "tool_schema_valid",
                                    "tool_decision"}
