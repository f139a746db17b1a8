"""`tunestack init`: a commented config from an API's fine-tuning files. The answers' JSON Schema is checked by
construction (rows written with known keys, types and vocabularies), every written config passes `tunestack
validate` through the real entry point, bad input fails with file:line, and an init-written config runs end to end
on the tiny model with a served reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

import tunestack.init as init
from tunestack.cli import main
from tunestack.init import infer_schema, pick_model, plural, propose_splits

LABELS = ["billing", "bug", "feature"]
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}


def tunestack(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunestack", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=900, env=env)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def answer(i: int) -> dict:
    """A JSON answer whose schema is known: every type, an optional key, a nullable label, a list of labels."""
    out = {"label": LABELS[i % 3], "priority": i % 5, "confidence": [0.5, 1][i % 2], "urgent": i % 4 == 0,
           "summary": f"ticket number {i} summarised", "tags": ["a"] if i % 2 else ["a", "b"],
           "team": None if i % 3 == 0 else ["red", "blue"][i % 2]}
    if i % 2 == 0:
        out["assignee"] = f"person-{i}"
    return out


EXPECTED = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": LABELS},
        "priority": {"type": "integer"},
        "confidence": {"type": "number"},  # 0.5 and 1: integers are numbers
        "urgent": {"type": "boolean"},
        "summary": {"type": "string"},  # every value new: free text, no enum
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
        "team": {"type": ["string", "null"], "enum": ["blue", "red", None]},
        "assignee": {"type": "string"},
    },
    "required": ["label", "priority", "confidence", "urgent", "summary", "tags", "team"],  # not assignee
    "additionalProperties": False,
}


def json_rows(n: int, start: int = 0) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "Classify the ticket as JSON."},
                          {"role": "user", "content": f"Ticket {i}: the invoice for order {i * 7} looks wrong"},
                          {"role": "assistant", "content": json.dumps(answer(i))}]} for i in range(start, start + n)]


def text_rows(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(n)]


def run_init(tmp_path: Path, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(init, "gpu_memory", lambda: None)  # this machine's GPU must not decide what a test sees
    code = main(["init", *args])
    out, err = capsys.readouterr()
    return code, out, err


def validate(config: Path) -> None:
    done = tunestack("validate", str(config.name), cwd=config.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stdout


# ---------------------------------------------------------------------------------------------------------------
# The pure inferences


def test_init_imports_no_torch():  # its doctests run in test_pure with every module's
    code = "import sys, tunestack.init; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_schema_of_answers_written_with_known_keys_types_and_vocabularies():
    answers = [answer(i) for i in range(30)]
    schema = infer_schema(answers)
    assert schema == EXPECTED
    validator = jsonschema.Draft202012Validator(schema)
    assert all(validator.is_valid(a) for a in answers)
    assert validator.is_valid({k: v for k, v in answers[0].items() if k != "assignee"})  # optional
    assert not validator.is_valid({**answers[0], "label": "refund"})  # outside the vocabulary
    assert not validator.is_valid({k: v for k, v in answers[0].items() if k != "label"})  # required
    assert not validator.is_valid({**answers[0], "comment": "x"})  # a key no answer has
    assert not validator.is_valid({**answers[0], "priority": "high"})  # the wrong type


def test_few_rows_give_no_enum_and_nested_objects_are_inferred():
    # three answers, three labels: seen once each, so nothing says the vocabulary is closed
    assert "enum" not in infer_schema([{"k": "x"}, {"k": "y"}, {"k": "z"}])["properties"]["k"]
    nested = infer_schema([{"where": {"city": "Oslo", "zip": 1}}, {"where": {"city": "Rome"}}])
    assert nested["properties"]["where"] == {"type": "object", "properties": {"city": {"type": "string"},
                                                                              "zip": {"type": "integer"}},
                                             "required": ["city"], "additionalProperties": False}


@pytest.mark.parametrize("n", [12, 40, 100, 333, 1000, 20000])
def test_splits_leave_most_rows_to_train_on(n):
    n_eval, n_holdout = propose_splits(n, eval_given=False)
    assert 1 <= n_eval <= 200 and 0 <= n_holdout <= 100 and n_holdout <= n_eval
    assert n - n_eval - n_holdout >= 0.7 * n
    assert propose_splits(n, eval_given=True) == (0, n_holdout)


def test_the_model_fits_the_machine():
    builtin = pick_model(None, preference=False)
    assert builtin.name == "smollm2-135m-instruct" and builtin.method == "lora" and "no CUDA" in builtin.reason
    big = pick_model(("NVIDIA H100 80GB HBM3", 79.1), preference=False)
    assert big.name == "Qwen/Qwen2.5-7B-Instruct" and big.method == "lora" and big.gpu == "h100"
    assert "79 GiB free on NVIDIA H100" in big.reason
    assert pick_model(("NVIDIA A10G", 30.0), False).train["gradient_checkpointing"] is True
    assert pick_model(("NVIDIA L4", 21.9), False).method == "qlora"
    assert pick_model(("NVIDIA L4", 21.9), True).method == "dpo"  # DPO trains LoRA in bf16: no QLoRA preset
    assert pick_model(("Tesla T4", 5.0), False).name == "Qwen/Qwen2.5-0.5B-Instruct"
    assert pick_model(("NVIDIA H100", 79.1), False, given="org/mine").name == "org/mine"


# ---------------------------------------------------------------------------------------------------------------
# Through the command line


def test_init_on_plain_chat_rows(tmp_path, monkeypatch, capsys):
    write_jsonl(tmp_path / "chat.jsonl", text_rows(80))
    code, out, _ = run_init(tmp_path, monkeypatch, capsys, "chat.jsonl", "--output", "my.yaml")
    assert code == 0
    assert "train chat.jsonl: 80 chat rows" in out and "80 free text" in out
    assert "no CUDA device here" in out and "wrote my.yaml" in out
    text = (tmp_path / "my.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["model"]["name"] == "smollm2-135m-instruct" and cfg["run"]["name"] == "chat"
    assert cfg["data"] == {"path": "chat.jsonl", "eval_size": 16, "holdout_size": 8, "max_length": 512}
    assert cfg["train"]["method"] == "lora" and cfg["evaluate"]["format"] == {"type": "none"}
    assert "evaluate.references" not in text and "references" not in cfg["evaluate"]
    assert not (tmp_path / "my.schema.json").exists()
    assert text.count("\n#") >= 6 and "free text" in text  # each section says what it is for
    validate(tmp_path / "my.yaml")

    code, _, err = run_init(tmp_path, monkeypatch, capsys, "chat.jsonl", "--output", "my.yaml")
    assert code == 2 and "my.yaml already exists: pass --force" in err


def test_init_infers_the_json_schema_and_names_the_reference(tmp_path, monkeypatch, capsys):
    write_jsonl(tmp_path / "tickets.jsonl", json_rows(60))
    code, out, _ = run_init(tmp_path, monkeypatch, capsys, "tickets.jsonl", "--output", "configs/tickets.yaml",
                            "--reference-model", "ft:gpt-4o-mini-2024-07-18:acme::AbC12", "--name", "tickets-v1")
    assert code == 0 and "60 JSON objects" in out and "7 required" in out
    cfg = yaml.safe_load((tmp_path / "configs" / "tickets.yaml").read_text())
    schema_file = tmp_path / "configs" / "tickets.schema.json"
    schema = json.loads(schema_file.read_text())
    assert schema.pop("$schema").endswith("2020-12/schema") and schema == EXPECTED
    assert cfg["evaluate"]["format"] == {"type": "json_schema", "schema_path": "configs/tickets.schema.json"}
    assert cfg["evaluate"]["metrics"] == ["exact_match", "field_accuracy"]
    assert cfg["evaluate"]["references"] == [{"name": "ft-gpt-4o-mini-2024-07-18-acme-AbC12",
                                              "base_url": "https://api.openai.com/v1",
                                              "model": "ft:gpt-4o-mini-2024-07-18:acme::AbC12",
                                              "api_key_env": "OPENAI_API_KEY"}]
    assert cfg["cost"]["api"] == {"name": "ft-gpt-4o-mini-2024-07-18-acme-AbC12"}
    assert cfg["run"]["name"] == "tickets-v1"
    done = tunestack("validate", "configs/tickets.yaml", cwd=tmp_path)  # paths are read from the working folder
    assert done.returncode == 0, done.stderr


def test_the_validation_file_is_the_eval_set(tmp_path, monkeypatch, capsys):
    write_jsonl(tmp_path / "train.jsonl", json_rows(60))
    write_jsonl(tmp_path / "valid.jsonl", json_rows(15, start=100))
    code, out, _ = run_init(tmp_path, monkeypatch, capsys, "train.jsonl", "--validation", "valid.jsonl")
    assert code == 0 and "validation valid.jsonl: 15 chat rows" in out and "data.eval_path" in out
    cfg = yaml.safe_load((tmp_path / "tunestack.yaml").read_text())
    assert cfg["data"]["eval_path"] == "valid.jsonl" and "eval_size" not in cfg["data"]
    assert cfg["data"]["holdout_size"] == propose_splits(60, eval_given=True)[1] == 6
    assert "75 answers" in (tmp_path / "tunestack.yaml").read_text()  # the schema covers both files' answers
    validate(tmp_path / "tunestack.yaml")

    write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}])
    code, _, err = run_init(tmp_path, monkeypatch, capsys, "train.jsonl", "--validation", "pairs.jsonl", "--force")
    assert code == 2 and "pairs.jsonl: preference rows, but train.jsonl holds chat rows" in err


def test_init_on_preference_rows_trains_dpo(tmp_path, monkeypatch, capsys):
    openai_pairs = [{"input": {"messages": [{"role": "user", "content": f"Greet guest {i}"}]},
                     "preferred_output": [{"role": "assistant", "content": f"Welcome, guest {i}!"}],
                     "non_preferred_output": [{"role": "assistant", "content": "What do you want?"}]}
                    for i in range(40)]
    write_jsonl(tmp_path / "prefs.jsonl", openai_pairs)
    code, out, _ = run_init(tmp_path, monkeypatch, capsys, "prefs.jsonl", "--output", "prefs.yaml")
    assert code == 0 and "40 preference pairs" in out and "(dpo)" in out
    cfg = yaml.safe_load((tmp_path / "prefs.yaml").read_text())
    assert cfg["train"]["method"] == "dpo" and cfg["train"]["learning_rate"] == pytest.approx(1e-4)
    validate(tmp_path / "prefs.yaml")

    trl_pairs = [{"prompt": f"Greet guest {i}", "chosen": f"Welcome, guest {i}!", "rejected": "No."}
                 for i in range(30)]
    write_jsonl(tmp_path / "trl.jsonl", trl_pairs)
    code, out, _ = run_init(tmp_path, monkeypatch, capsys, "trl.jsonl", "--output", "trl.yaml")
    assert code == 0 and yaml.safe_load((tmp_path / "trl.yaml").read_text())["train"]["method"] == "dpo"


def test_init_counts_tool_rows_multi_turn_rows_and_weight_0_turns(tmp_path, monkeypatch, capsys):
    def call(i: int, city: str) -> dict:
        return {"id": f"call_{i}", "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}

    rows = []
    for i in range(30):
        city = ["Paris", "Rome", "Oslo"][i % 3]
        if i % 3 == 0:  # a call as the answer
            rows.append({"messages": [{"role": "user", "content": f"Weather in {city}, day {i}?"},
                                      {"role": "assistant", "tool_calls": [call(i, city)]}], "tools": [TOOL]})
        elif i % 3 == 1:  # two user turns, the first answer kept as context only, a call and its result
            rows.append({"messages": [{"role": "user", "content": f"Hi, it is day {i}"},
                                      {"role": "assistant", "content": "Hello!", "weight": 0},
                                      {"role": "user", "content": f"Weather in {city}?"},
                                      {"role": "assistant", "tool_calls": [call(i, city)]},
                                      {"role": "tool", "tool_call_id": f"call_{i}", "content": "sunny"},
                                      {"role": "assistant", "content": f"It is sunny in {city}."}],
                         "tools": [TOOL]})
        else:  # legacy functions
            rows.append({"messages": [{"role": "user", "content": f"Weather in {city} on day {i}?"},
                                      {"role": "assistant", "function_call": {
                                          "name": "get_weather", "arguments": json.dumps({"city": city})}}],
                         "functions": [TOOL["function"]]})
    rows.append({"messages": [{"role": "user", "content": "x"},
                              {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                                    "function": {"name": "nope", "arguments": "{}"}}]}],
                 "tools": [TOOL]})
    write_jsonl(tmp_path / "tools.jsonl", rows)
    code, out, _ = run_init(tmp_path, monkeypatch, capsys, "tools.jsonl")
    assert code == 0, out
    assert "30 chat rows, 1 rejected" in out
    assert "30 tool rows, 10 multi-turn rows, 10 weight-0 turns (in 10 rows)" in out
    assert "20 tool calls, 10 free text" in out
    assert "rejected tools.jsonl:31: calls function 'nope'" in out
    cfg = yaml.safe_load((tmp_path / "tunestack.yaml").read_text())
    assert cfg["evaluate"]["format"] == {"type": "none"} and cfg["evaluate"]["metrics"] == ["exact_match"]
    assert "weight 0: context, never a training target" in (tmp_path / "tunestack.yaml").read_text()
    validate(tmp_path / "tunestack.yaml")


def raw_counts(rows: list[dict]) -> tuple[int, int, int, int]:
    """Tool rows, multi-turn rows, weight-0 turns and final answers that call a tool, counted on the raw OpenAI
    rows (chat or preference) without tunestack's reader."""
    tool = multi = zero = calls = 0
    for row in rows:
        given = row.get("input", row)
        messages = [*given["messages"], *row.get("preferred_output", [])]
        tool += bool(given.get("tools") or given.get("functions")
                     or any(m.get("tool_calls") or m.get("function_call") for m in messages))
        multi += sum(m["role"] == "user" for m in messages) > 1
        zero += sum(m["role"] == "assistant" and m.get("weight") == 0 for m in messages)
        calls += bool(messages[-1].get("tool_calls") or messages[-1].get("function_call"))
    return tool, multi, zero, calls


def test_init_on_openai_fixture_files(tmp_path, monkeypatch, capsys):
    """The shared fixtures in OpenAI's formats (tests/openai_files.py): the counts init reports are the ones counted
    on the raw rows, the validation file is the eval set, the rejects are named by line, preference rows train DPO."""
    from openai_files import write_invalid, write_preference, write_sft, write_validation

    sft, validation = write_sft(tmp_path), write_validation(tmp_path)
    code, out, _ = run_init(tmp_path, monkeypatch, capsys, "sft.jsonl", "--validation", "validation.jsonl")
    assert code == 0, out
    tool, multi, zero, calls = raw_counts(sft.rows)
    assert tool and multi and zero and calls  # the fixture has each kind
    assert f"train sft.jsonl: {len(sft.rows)} chat rows\n" in out
    assert f"{plural(tool, 'tool row')}, {plural(multi, 'multi-turn row')}, {plural(zero, 'weight-0 turn')}" in out
    assert f"{calls} tool calls" in out and f"validation validation.jsonl: {len(validation.rows)} chat rows" in out
    cfg = yaml.safe_load((tmp_path / "tunestack.yaml").read_text())
    assert cfg["data"]["eval_path"] == "validation.jsonl" and cfg["evaluate"]["format"] == {"type": "none"}
    validate(tmp_path / "tunestack.yaml")

    bad = write_invalid(tmp_path)
    code, out, _ = run_init(tmp_path, monkeypatch, capsys, "invalid.jsonl", "--output", "invalid.yaml")
    assert code == 0 and f"{len(bad.expected_rejects)} rejected" in out
    for line in sorted(bad.expected_rejects)[:3]:
        assert f"rejected invalid.jsonl:{line}: " in out
    assert f"{len(bad.expected_warnings)} rows kept with a warning" in out

    prefs = write_preference(tmp_path)
    code, out, _ = run_init(tmp_path, monkeypatch, capsys, "preference.jsonl", "--output", "prefs.yaml")
    tool, multi, zero, _ = raw_counts(prefs.rows)
    assert code == 0 and f"{len(prefs.rows)} preference pairs" in out and f"{plural(tool, 'tool row')}" in out
    assert yaml.safe_load((tmp_path / "prefs.yaml").read_text())["train"]["method"] == "dpo"
    validate(tmp_path / "prefs.yaml")


def test_the_model_follows_the_gpu(tmp_path, monkeypatch, capsys):
    write_jsonl(tmp_path / "chat.jsonl", text_rows(40))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(init, "gpu_memory", lambda: ("NVIDIA H100 80GB HBM3", 79.1))
    assert main(["init", "chat.jsonl"]) == 0
    text = (tmp_path / "tunestack.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["model"]["name"] == "Qwen/Qwen2.5-7B-Instruct" and cfg["cost"]["training"]["gpu"] == "h100"
    assert "79 GiB free on NVIDIA H100 80GB HBM3" in text
    validate(tmp_path / "tunestack.yaml")

    tiny = tmp_path / "tiny-model"
    tiny.mkdir()
    (tiny / "config.json").write_text("{}")
    monkeypatch.setattr(init, "gpu_memory", lambda: pytest.fail("--model needs no GPU probe"))
    assert main(["init", "chat.jsonl", "--model", str(tiny), "--force"]) == 0
    assert yaml.safe_load((tmp_path / "tunestack.yaml").read_text())["model"]["name"] == "tiny-model"


@pytest.mark.parametrize("content, expected", [
    (None, "missing.jsonl does not exist"),
    ("", "empty.jsonl: the file is empty"),
    ('{"question": "q", "answer": "a"}\n{"question": "r", "answer": "b"}\n',
     "unknown.jsonl:1: unknown row format (keys: answer, question)"),
    ('not json\n', "broken.jsonl:1: invalid JSON"),
    ("".join(json.dumps(r) + "\n" for r in [*text_rows(2), {"prompt": "p", "chosen": "a", "rejected": "b"}]),
     "mixed.jsonl:3: a preference row in a file of chat rows"),
])
def test_bad_input_fails_with_file_and_line(tmp_path, monkeypatch, capsys, content, expected):
    name = expected.split(":")[0].split()[0]
    if content is not None:
        (tmp_path / name).write_text(content)
    code, out, err = run_init(tmp_path, monkeypatch, capsys, name)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and expected in err, err
    assert not (tmp_path / "tunestack.yaml").exists()


def test_a_reference_url_needs_its_model_and_a_bad_run_name_is_caught(tmp_path, monkeypatch, capsys):
    write_jsonl(tmp_path / "chat.jsonl", text_rows(40))
    code, _, err = run_init(tmp_path, monkeypatch, capsys, "chat.jsonl", "--reference", "http://127.0.0.1:9/v1")
    assert code == 2 and "--reference needs --reference-model" in err
    code, _, err = run_init(tmp_path, monkeypatch, capsys, "chat.jsonl", "--name", "my run")
    assert code == 2 and "run.name" in err and not (tmp_path / "tunestack.yaml").exists()


# ---------------------------------------------------------------------------------------------------------------
# End to end


@pytest.mark.integration
def test_an_init_written_config_runs_unchanged_on_openai_files(tmp_path: Path):
    """OpenAI's tool-calling training and validation files as they are, a tiny Qwen2.5-family model, and the old model
    behind the test server: init, capture the old model, then `tunestack run` on the written config as it is (no
    override). The validation file is the eval set, the old model a reference row whose answers came from the
    capture, and every row was read."""
    from families import build_family_model
    from openai_files import write_sft, write_validation
    from openai_server import OpenAIServer

    train, valid = write_sft(tmp_path, n=40), write_validation(tmp_path, n=12)
    model = build_family_model("qwen2.5", tmp_path / "model", [json.dumps(r) for r in train.rows + valid.rows],
                               vocab_size=2000)

    def gold(raw: dict) -> str | dict:  # what the old model answers: the file's own final turn, as the API sends it
        last = raw["messages"][-1]
        if last.get("function_call"):
            return {"content": None, "tool_calls": [{"id": "call_0", "type": "function",
                                                     "function": last["function_call"]}]}
        return {"content": None, "tool_calls": last["tool_calls"]} if last.get("tool_calls") else last["content"]

    def first_user(messages: list[dict]) -> str:
        content = next(m["content"] for m in messages if m["role"] == "user")
        return content if isinstance(content, str) else "\n".join(part["text"] for part in content)

    answers = {first_user(r["messages"]): gold(r) for r in valid.rows}
    with OpenAIServer(reply=lambda body: answers.get(first_user(body["messages"]), "I do not know.")) as server:
        done = tunestack("init", "sft.jsonl", "--validation", "validation.jsonl", "--model", str(model),
                         "--reference", server.base_url, "--reference-model", "test-model", "--output", "cfg.yaml",
                         cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "40 chat rows" in done.stdout and "tool rows" in done.stdout
        env = {**os.environ, "OPENAI_API_KEY": "test", "TUNESTACK_CACHE": str(tmp_path / "cache")}
        # capture the old model first, before anything is trained: its answers land in the endpoint cache
        done = tunestack("evaluate", "cfg.yaml", "--model", "test-model", "evaluate.backend=openai",
                         f"evaluate.endpoint.base_url={server.base_url}", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        captured = len(server.chat_requests)
        assert captured >= 12 and any(r.get("tools") for r in server.chat_requests)  # every eval row, and probes
        done = tunestack("run", "cfg.yaml", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(server.chat_requests) == captured  # the reference row came from the captured answers

    cfg = yaml.safe_load((tmp_path / "cfg.yaml").read_text())
    run = tmp_path / "runs" / cfg["run"]["name"]
    prepare = json.loads((run / "prepare" / "manifest.json").read_text())
    assert prepare["counts"]["rejected"] == 0 and prepare["sources"]["sft.jsonl"]["read"] == 40
    eval_rows = [json.loads(line) for line in (run / "prepare" / "eval.jsonl").read_text().splitlines()]
    assert prepare["splits"]["eval"] == len(eval_rows) == 12  # the validation file is the eval set
    assert {first_user(r["messages"]) for r in eval_rows} == set(answers)
    results = json.loads((run / "results.json").read_text())
    kinds = {m["name"]: m["kind"] for m in results["models"]}
    assert kinds["base"] == "base" and kinds["test-model"] == "reference"
    reference = next(m for m in results["models"] if m["kind"] == "reference")
    assert reference["task_accuracy"] == 1.0  # its own answers, calls included, scored as the references
    assert sum(m["selected"] for m in results["models"]) == 1
