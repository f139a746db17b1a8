"""An OpenAI tool-calling fine-tuning file, as the API takes it, through prepare -> train -> evaluate on tiny models of
two families whose templates render tools (Llama-3.1, Qwen2.5) and one whose template does not (SmolLM2: the
fallback). The truth comes from tests/openai_files.py: which assistant texts are learned (ANS markers) and which are
weight-0 context (CTX markers), which functions each row calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from families import build_family_model
from openai_files import write_preference, write_sft

from tunestack.chat import IGNORE_INDEX, render_training
from tunestack.config import config_to_yaml, parse_config
from tunestack.models import load_base
from tunestack.pipeline import run_stages
from tunestack.rundir import read_jsonl
from tunestack.tools import answer_text
from tunestack.vllm import find_vllm

pytestmark = pytest.mark.integration


def tool_config(name: str, folder: Path, data: Path, tmp: Path):
    general = tmp / "general.jsonl"
    general.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Name a colour, {i}."},
                                                        {"role": "assistant", "content": "Blue."}]}) + "\n"
                               for i in range(12)))
    raw = {
        # one thread, as tiny_config: a model this small gains nothing from two, and loses much on a busy machine
        "run": {"name": f"tools-{name.replace('.', '-')}", "runs_dir": str(tmp / "runs"), "seed": 0, "threads": 1},
        "model": {"name": str(folder)},
        "data": {"path": str(data), "eval_size": 6, "holdout_size": 3, "max_length": 3072, "min_train_rows": 8},
        "train": {"max_steps": 2, "micro_batch_size": 4, "num_checkpoints": 1, "learning_rate": 1e-3,
                  "lora": {"r": 4, "alpha": 8}, "general_mix": {"share": 0.12, "source": "file", "path": str(general)}},
        "evaluate": {"batch_size": 8, "max_new_tokens": 8, "format": {"type": "none"},
                     "retention": {"quartz_examples": 2, "max_probes": 1}},
        "select": {"min_retention": 0.0},
        "assess": {"examples": 6, "samples": 2},
    }
    return parse_config(yaml.safe_dump(raw), [])


@pytest.mark.parametrize("name", ["llama3", pytest.param("qwen2.5", marks=pytest.mark.xdist_group("vllm")), "smollm2"])
def test_tool_calling_file_through_prepare_train_evaluate(name, tmp_path: Path):
    fixture = write_sft(tmp_path / "data", n=48)
    corpus = [json.dumps(row) for row in fixture.rows]
    wide = {"num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 64, "max_position_embeddings": 4096}
    folder = build_family_model(name, tmp_path / "model", corpus, vocab_size=2000,  # vLLM's CPU attention: 32 wide+
                                shape=wide if name == "qwen2.5" else None)
    cfg = tool_config(name, folder, fixture.path, tmp_path)
    run = run_stages(cfg, until="evaluate")
    counts = run.manifest("prepare")["sources"][fixture.path.name]
    assert counts["read"] == counts["kept"] == len(fixture.rows)  # accepted whole: nothing rejected or removed

    # Training rows keep their tools, calls and weights; each learned turn is in the labels, weight-0 turns never.
    _, tokenizer = load_base(cfg.model, tokenizer_only=True)
    train = [r for r in read_jsonl(run.root / "prepare" / "train.jsonl") if r.get("origin") != "general mix"]
    assert train and any(r["messages"][0].get("tools") for r in train)
    checked_context = 0
    for row in train:
        index = row["line"] - 1
        labels = [t for r in render_training(tokenizer, row["messages"]) for t, label in zip(r.input_ids, r.labels)
                  if label != IGNORE_INDEX]
        learned = tokenizer.decode(labels)
        for text in fixture.learned[index]:
            marker = text.split("(")[-1].rstrip(")") if "(ANS-" in text else text  # a call: its function name
            assert marker in learned, (name, index, marker)
        for text in fixture.context_only[index]:
            marker = text.split("(")[-1].rstrip(")")
            assert marker.startswith("CTX-") and marker not in learned, (name, index, marker)
            checked_context += 1
    assert checked_context > 0

    # Every checkpoint is evaluated on the eval split; a call answer's reference is the call, canonically.
    evaluated = run.manifest("evaluate")
    assert [m["name"] for m in evaluated["models"]][-1].startswith("step-")
    eval_rows = read_jsonl(run.root / "prepare" / "eval.jsonl")
    outputs = read_jsonl(run.root / "evaluate" / "base.outputs.jsonl")
    assert [o["reference"] for o in outputs] == [answer_text(r["messages"][-1]) for r in eval_rows]
    assert any(r["messages"][-1].get("tool_calls") for r in eval_rows + train)

    if name in ("qwen2.5", "smollm2"):  # served with the tools, through the built-in server: the answers offline's
        from tunestack.serve.evaluate import evaluate_served

        checkpoint = run.manifest("train")["checkpoints"][-1]["path"]
        exact = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"precision": "fp32"}),
                                       "serve": cfg.serve.model_copy(update={"backend": "builtin"})})
        served = evaluate_served(exact, run, model=checkpoint)
        assert served["compared"] == len(eval_rows) and served["identical"] == served["compared"], served["differing"]
        assert not any(c["beyond_noise"] for c in served["comparison"].values())
        assert any(r["messages"][0].get("tools") for r in eval_rows)  # the eval rows carried tools to the server
        if name == "qwen2.5" and find_vllm() is not None:
            served_through_vllm(exact, run, len(eval_rows))

    if name == "qwen2.5":  # assess grades call answers the same way
        from tunestack.assess.stage import run_assess

        body = run_assess(cfg, run)
        assert body["verdict"]
        records = read_jsonl(run.root / "assess" / "outputs.jsonl")
        finals = {r["line"]: r["messages"][-1] for r in train + eval_rows}
        for record in records:  # the reference of a call answer is the call, as evaluate scores it
            if record["line"] in finals:
                assert record["reference"] == answer_text(finals[record["line"]])


def served_through_vllm(cfg, run, n: int) -> None:
    """The run's export served by vLLM with Qwen2.5's tool parser (`hermes`), the eval rows' tools in the parity
    check and in every request, evaluated through the endpoint with the paired intervals. vLLM's CPU kernels are not
    the offline loop's, so identity is reported, not required; a drop beyond noise fails."""
    from tunestack.serve.evaluate import evaluate_served
    from tunestack.rundir import read_json

    run_stages(cfg, until="export")
    through = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={
        "backend": "vllm", "vllm_args": ["-O0"], "max_prompt_tokens": 3072, "max_tokens": 16})})
    served = evaluate_served(through, run)
    assert served["backend"] == "vllm" and served["kind"] == "export" and served["compared"] == n
    by_likelihood = {"quartz_accuracy", "choice_score"}  # a chat endpoint gives no log-likelihoods: skipped
    assert all(c["drop_ci95"] is not None for k, c in served["comparison"].items() if k not in by_likelihood)
    assert not any(c["beyond_noise"] for c in served["comparison"].values())
    assert "--tool-call-parser hermes" in " ".join(read_json(run.root / "serve" / "served.json")["vllm_options"])
    print(f"vLLM, tool rows: {served['identical']}/{served['compared']} answers identical to offline in fp32")


@pytest.mark.parametrize("name", ["qwen2.5", "llama3"])
def test_openai_preference_file_trains_dpo(name, tmp_path: Path):
    """OpenAI's preference format (some inputs with tools and calls, some multi-turn) read whole and trained with DPO:
    TRL's prompt ids, tools included, are the ones evaluation renders (`guard_pairs` refuses otherwise). Llama-3.1's
    template takes any turn with a `tool_calls` key for a call, and TRL's table gives every turn one: refused, saying
    why, before training."""
    from tunestack.errors import StageError

    fixture = write_preference(tmp_path / "data", n=24)
    folder = build_family_model(name, tmp_path / "model", [json.dumps(r) for r in fixture.rows], vocab_size=2000)
    cfg = tool_config(name, folder, fixture.path, tmp_path)
    cfg = parse_config(config_to_yaml(cfg), ["train.method=dpo", "data.eval_size=4", "data.holdout_size=2"])
    prompts_call = any(m.get("tool_calls") for r in fixture.rows for m in r["input"]["messages"])
    if name == "llama3" and prompts_call:
        with pytest.raises(StageError, match="tool_calls"):
            run_stages(cfg, until="train")
        return
    run = run_stages(cfg, until="train")
    counts = run.manifest("prepare")["sources"][fixture.path.name]
    assert counts["read"] == counts["kept"] == len(fixture.rows)
    manifest = run.require("train")
    assert manifest["method"] == "dpo" and manifest["rows"]["pairs"] == 18
    assert any(r["messages"][0].get("tools") for r in read_jsonl(run.root / "prepare" / "train.jsonl"))
