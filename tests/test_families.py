"""The family matrix: a tiny model for each major chat family (real templates, special tokens and stop ids, from
tests/families.py), plus a family no list names and a base model with no template, through prepare -> train ->
evaluate -> export -> quantize. For each: the label ends with the end-of-turn token exactly once, training,
evaluation, the exported and the quantized folder render the same ids, their generation configs keep every stop id,
generation stops on any of them, and a template without a system role gets the system text merged into the first
user turn everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from families import FAMILIES, build_family_model

from tunestack.chat import IGNORE_INDEX, fit_roles, render_example, render_prompt
from tunestack.config import config_to_yaml, parse_config
from tunestack.demo.radiology import generate
from tunestack.evaluate.generate import LocalGenerator
from tunestack.models import load_base, load_model
from tunestack.models.tokens import as_ids, end_of_turn_id
from tunestack.pipeline import run_stages

pytestmark = pytest.mark.integration
NAMES = sorted(FAMILIES)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    from tunestack.data.suites import load_probes, load_replay_prompts

    texts = [m["content"] for row in generate(200, seed=5) for m in row["messages"]]
    return texts + [p["prompt"] for p in load_probes("builtin")] + [p["prompt"] for p in load_replay_prompts()]


def family_config(name: str, folder: Path, tmp: Path) -> tuple:
    data = tmp / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in generate(40, seed=2)))
    general = tmp / "general.jsonl"
    general.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Name a colour, {i}."},
                                                        {"role": "assistant", "content": "Blue."}]}) + "\n"
                               for i in range(12)))
    raw = {
        # one thread, as tiny_config: a model this small gains nothing from two, and loses much on a busy machine
        "run": {"name": name.replace(".", "-"), "runs_dir": str(tmp / "runs"), "seed": 0, "threads": 1},
        "model": {"name": str(folder), **({"chat_template": "plain"} if name == "base" else {})},
        "data": {"path": str(data), "eval_size": 6, "holdout_size": 3, "max_length": 768, "min_train_rows": 8},
        "train": {"max_steps": 2, "micro_batch_size": 4, "num_checkpoints": 1, "learning_rate": 1e-3,
                  "lora": {"r": 4, "alpha": 8}, "general_mix": {"share": 0.12, "source": "file", "path": str(general)}},
        # an untrained model never stops: answers and probe answers as short as the task's (nothing here reads them)
        "evaluate": {"batch_size": 8, "max_new_tokens": 6, "format": {"type": "json"},
                     "retention": {"quartz_examples": 4, "max_probes": 2, "probe_max_new_tokens": 6,
                                   "instructions": 14, "instruction_max_new_tokens": 6}},
        "select": {"min_retention": 0.0},
        "assess": {"examples": 6, "samples": 2},
    }
    return parse_config(yaml.safe_dump(raw), []), generate(40, seed=2)


def forced(model, token: int):
    """A copy of `model` whose every next token is `token`: a real model to prove generation stops on it."""
    import copy

    clone = copy.deepcopy(model)
    head = torch.nn.Linear(clone.config.hidden_size, clone.config.vocab_size, bias=True)
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.zero_()
        head.bias[token] = 10.0
    clone.lm_head = head
    return clone


@pytest.mark.parametrize("name", NAMES)
def test_family_through_prepare_train_evaluate_export(name, corpus, tmp_path: Path):
    family = FAMILIES[name]
    folder = build_family_model(name, tmp_path / "model", corpus)
    cfg, rows = family_config(name, folder, tmp_path)
    run = run_stages(cfg, until="export")
    for stage in ("prepare", "train", "evaluate", "select", "export"):
        assert run.manifest(stage) is not None, stage

    _, tokenizer = load_base(cfg.model, tokenizer_only=True)
    eot = end_of_turn_id(tokenizer)
    expected_eot = family.end_of_turn if family.chat_template else family.eos_token  # `plain` ends with EOS
    assert tokenizer.eos_token == expected_eot and eot == tokenizer.eos_token_id

    # The label ends with the end-of-turn token, exactly once.
    for row in rows[:5]:
        labels = [t for t in render_example(tokenizer, row["messages"]).labels if t != IGNORE_INDEX]
        assert labels[-1] == eot and labels.count(eot) == 1, (name, tokenizer.decode(labels))

    # The exported folder renders the same ids, and its generation config keeps every stop id.
    exported = Path(run.manifest("export")["path"])
    model, exported_tokenizer = load_model(exported)
    for row in rows[:5]:
        assert render_prompt(exported_tokenizer, row["messages"][:-1]) == render_prompt(tokenizer, row["messages"][:-1])
        assert render_example(exported_tokenizer, row["messages"]) == render_example(tokenizer, row["messages"])
    stops = {tokenizer.convert_tokens_to_ids(t) for t in family.stop_tokens}
    saved = set(as_ids(json.loads((exported / "generation_config.json").read_text())["eos_token_id"]))
    assert stops | {eot} <= saved, (name, stops, saved)

    # Quantized (W8A16 through llm-compressor, calibrated on rows rendered with this family's template), the folder
    # loads back, renders the same ids and keeps every stop id.
    quantized_cfg = parse_config(config_to_yaml(cfg), ['quantize.candidates=[{method: gptq, bits: 8}]',
                                                       "quantize.min_retention=0", "quantize.min_general_retention=0",
                                                       "quantize.calibration.rows=8"])
    run = run_stages(quantized_cfg, until="quantize")
    calibration = [json.loads(line) for line in (run.root / "quantize" / "calibration.jsonl").read_text().splitlines()]
    assert len(calibration) == 8 and all(r["tokens"] > 0 for r in calibration)
    quantized = Path(run.require("quantize")["path"])
    _, quantized_tokenizer = load_model(quantized)
    for row in rows[:3]:
        assert render_prompt(quantized_tokenizer, row["messages"][:-1]) == render_prompt(tokenizer, row["messages"][:-1])
    assert stops | {eot} <= set(as_ids(json.loads((quantized / "generation_config.json").read_text())["eos_token_id"]))

    # Generation stops on any of the stop ids, and the answer counts as ended.
    prompt = rows[0]["messages"][:-1]
    for stop in sorted(stops | {eot}):
        got = LocalGenerator(forced(model, stop), exported_tokenizer).generate([prompt], max_new_tokens=5)[0]
        assert got.ended_with_eos and got.token_ids == [stop], (name, stop, got)

    # Without a system role (or with one the template drops), the system text leads the first user turn.
    merged = fit_roles(tokenizer, rows[0]["messages"])
    if family.chat_template and (family.system_role == "raises" or not family.system_in_training_render):
        assert merged[0]["role"] == "user" and merged[0]["content"].startswith(rows[0]["messages"][0]["content"])
    else:
        assert merged == rows[0]["messages"]


@pytest.mark.parametrize("name", ["gemma2", "llama3"])
def test_assess_runs_and_a_system_turn_is_merged_where_the_template_has_no_system_role(name, corpus, tmp_path: Path):
    from tunestack.assess.stage import run_assess
    from tunestack.data.suites import load_quartz

    folder = build_family_model(name, tmp_path / "model", corpus)
    cfg, rows = family_config(name, folder, tmp_path)
    run = run_stages(cfg, until="prepare")
    body = run_assess(cfg, run)
    assert body["verdict"] and (run.root / "assess" / "assess.md").exists()
    _, tokenizer = load_base(cfg.model, tokenizer_only=True)
    question = load_quartz(1, 0)[0]
    system = {"role": "system", "content": "Answer with the letter of the right option."}
    ids = render_prompt(tokenizer, [system, {"role": "user", "content": question.question}])
    text = tokenizer.decode(ids)
    assert text.index(system["content"]) < text.index(question.question[:30])
    if name == "gemma2":  # no system turn: the system text and a blank line open the user turn
        assert f"<start_of_turn>user\n{system['content']}\n\n{question.question[:30]}" in text
