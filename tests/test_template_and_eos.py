"""The conversation is rendered to identical ids in training, evaluation and the exported folder, and the exported
model ends its answers with EOS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tiny_config as tiny_config_fixture
from tunestack.chat import IGNORE_INDEX, render_example, render_prompt
from tunestack.errors import GuardError
from tunestack.rundir import read_jsonl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory, tiny_model: Path) -> Path:
    """One run for the module (both tests only read it)."""
    tiny_config = tiny_config_fixture.__wrapped__(tmp_path_factory.mktemp("eos"), tiny_model)  # as tiny_config
    # Enough steps at a high rate for the tiny model to learn the answer shape and where to stop.
    overrides = ["train.epochs=12", "train.learning_rate=1e-2", "train.lora.r=16", "train.num_checkpoints=1",
                 "train.lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"]
    done = subprocess.run([sys.executable, "-m", "tunestack", "run", str(tiny_config), *overrides],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = yaml.safe_load(tiny_config.read_text())
    return Path(cfg["run"]["runs_dir"]) / "tiny"


def test_train_eval_and_export_render_identical_ids(exported_run: Path, tiny_model: Path):
    from transformers import AutoTokenizer

    from tunestack.models import load_model

    _, run_tokenizer = load_model(tiny_model)  # what prepare, train and evaluate use
    export_tokenizer = AutoTokenizer.from_pretrained(exported_run / "export" / "model")
    checkpoint = sorted((exported_run / "train" / "checkpoints").iterdir())[-1]
    checkpoint_tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    for row in read_jsonl(exported_run / "prepare" / "eval.jsonl")[:5]:
        messages = row["messages"]
        trained = render_example(run_tokenizer, messages)
        prompt = render_prompt(run_tokenizer, messages[:-1])
        assert trained.input_ids[: len(prompt)] == prompt
        assert render_prompt(export_tokenizer, messages[:-1]) == prompt
        assert render_prompt(checkpoint_tokenizer, messages[:-1]) == prompt
        assert render_example(export_tokenizer, messages) == trained
        # The exported folder's own template, used the way a server would use it:
        served = export_tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                                      return_dict=False)
        assert list(served) == prompt
        assert trained.labels[-1] == run_tokenizer.eos_token_id == export_tokenizer.eos_token_id
        assert trained.labels[len(prompt) - 1] == IGNORE_INDEX and trained.labels[len(prompt)] != IGNORE_INDEX


def test_exported_model_ends_answers_with_eos(exported_run: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = exported_run / "export" / "model"
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    eos = model.generation_config.eos_token_id
    assert eos == tokenizer.eos_token_id
    rows = read_jsonl(exported_run / "prepare" / "eval.jsonl")[:8]
    ended = 0
    for row in rows:
        ids = tokenizer.apply_chat_template(row["messages"][:-1], add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=64, do_sample=False)
        new = out[0, ids["input_ids"].shape[1]:].tolist()
        ended += eos in new
    assert ended == len(rows), f"only {ended}/{len(rows)} answers ended with EOS"
    manifest = json.loads((exported_run / "export" / "manifest.json").read_text())
    assert manifest["verification"]["eos_rate"] == 1.0


def test_a_template_that_renders_no_answer_fails_loudly(tiny_model: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = (  # drops assistant turns: every target would be masked
        "{% for m in messages %}{% if m['role'] != 'assistant' %}{{ m['content'] }}{% endif %}{% endfor %}"
    )
    with pytest.raises(GuardError):
        render_example(tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}])
