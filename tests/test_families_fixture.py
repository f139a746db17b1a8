"""The family fixtures in tests/families.py are what they claim: every real template renders with the installed
transformers, special tokens are single ids, the stop ids reach generation_config, and the recorded facts (system
handling, end-of-turn token, prefix properties) match what the templates actually do. Imports only transformers,
torch (through families.build_family_model) and tests/families.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from families import FAMILIES, MERGED, NATIVE, RAISES, Family, build_family_model

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello there, how are you today?",
    "I am fine, thank you for asking.",
    "Summarise the report in one sentence.",
    "The scan shows no acute findings and the lungs are clear.",
] * 20
USER = {"role": "user", "content": "Hello there"}
ASSISTANT = {"role": "assistant", "content": "I am fine"}
SYSTEM = {"role": "system", "content": "Answer briefly."}
USER2 = {"role": "user", "content": "And you?"}
CHAT_FAMILIES = [name for name, family in FAMILIES.items() if family.chat_template is not None]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: build_family_model(name, root / name, CORPUS) for name in FAMILIES}


@pytest.fixture(scope="module")
def tokenizers(built):
    from transformers import AutoTokenizer

    return {name: AutoTokenizer.from_pretrained(folder) for name, folder in built.items()}


def render(tokenizer, messages, **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_record_is_consistent(name):
    family: Family = FAMILIES[name]
    assert family.name == name and family.source
    assert family.system_role in (NATIVE, MERGED, RAISES)
    assert family.stop_tokens and family.eos_token
    named = [family.bos_token, family.eos_token, family.pad_token, family.unk_token, family.end_of_turn,
             *family.stop_tokens]
    assert set(t for t in named if t is not None) <= set(family.special_tokens)
    assert len(set(family.all_added)) == len(family.all_added)
    assert set(family.rstrip_tokens) <= set(family.all_added)
    assert (family.chat_template is None) == (family.end_of_turn is None)
    if family.chat_template is not None:
        for token in family.special_tokens:
            if token not in (family.pad_token, family.unk_token, family.bos_token, family.eos_token):
                # every marker listed is really used by the template (or is a stop id)
                assert token in family.chat_template or token in family.stop_tokens, token
    assert (family.system_role == RAISES) == (family.system_error is not None)


def test_the_novel_family_is_not_a_known_one():
    novel = FAMILIES["novel"]
    assert novel.end_of_turn == "<|turn_end|>" and len(novel.stop_tokens) == 2
    assert novel.end_of_turn != novel.eos_token
    others = [f for n, f in FAMILIES.items() if n != "novel"]
    assert all(novel.end_of_turn not in f.all_added for f in others)


@pytest.mark.parametrize("name", FAMILIES)
def test_special_tokens_are_single_ids(name, tokenizers):
    family, tokenizer = FAMILIES[name], tokenizers[name]
    ids = set()
    for token in family.all_added:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        assert len(encoded) == 1, (token, encoded)
        assert tokenizer.convert_ids_to_tokens(encoded[0]) == token
        ids.add(encoded[0])
        # inside running text too: the BPE does not split or merge it with its neighbours
        inside = tokenizer.encode(f"word{token}word", add_special_tokens=False)
        assert inside.count(encoded[0]) == 1, (token, inside)
    assert len(ids) == len(family.all_added)
    for token in family.added_tokens:  # added but not special: decoding keeps them (Qwen's <think>)
        kept = tokenizer.decode(tokenizer.encode(f"a{token}b", add_special_tokens=False), skip_special_tokens=True)
        assert token in kept
    for token in family.special_tokens:
        dropped = tokenizer.decode(tokenizer.encode(f"a{token}b", add_special_tokens=False), skip_special_tokens=True)
        assert token not in dropped
    for token in family.rstrip_tokens:  # the tokenizer swallows the whitespace after it
        assert tokenizer.encode(token + "\n", add_special_tokens=False) == tokenizer.encode(token, add_special_tokens=False)


@pytest.mark.parametrize("name", FAMILIES)
def test_bos_eos_pad_and_stop_ids(name, built, tokenizers):
    from transformers import GenerationConfig

    family, tokenizer = FAMILIES[name], tokenizers[name]
    assert tokenizer.bos_token == family.bos_token
    assert tokenizer.eos_token == family.eos_token
    assert tokenizer.pad_token == family.pad_token
    assert tokenizer.unk_token == family.unk_token
    stop_ids = [tokenizer.convert_tokens_to_ids(token) for token in family.stop_tokens]
    eos = GenerationConfig.from_pretrained(built[name]).eos_token_id
    assert eos == (stop_ids[0] if len(stop_ids) == 1 else stop_ids)
    first = tokenizer("Hello there").input_ids[0]
    assert (first == tokenizer.bos_token_id) == family.adds_bos


@pytest.mark.parametrize("name", CHAT_FAMILIES)
def test_real_template_renders_and_ends_the_turn(name, tokenizers):
    family, tokenizer = FAMILIES[name], tokenizers[name]
    full = render(tokenizer, [USER, ASSISTANT])
    assert USER["content"] in full
    end = full.index(ASSISTANT["content"]) + len(ASSISTANT["content"])
    assert full[end:].startswith(family.end_of_turn), full
    prompt = render(tokenizer, [USER], add_generation_prompt=True)
    assert full.startswith(prompt) == family.prompt_is_prefix, (prompt, full)
    assert ASSISTANT["content"] not in prompt
    history = render(tokenizer, [USER, ASSISTANT, USER2])
    assert history.startswith(full) == family.history_is_prefix, (full, history)


@pytest.mark.parametrize("name", CHAT_FAMILIES)
def test_system_turn(name, tokenizers):
    family, tokenizer = FAMILIES[name], tokenizers[name]
    if family.system_role == RAISES:
        with pytest.raises(Exception) as raised:
            render(tokenizer, [SYSTEM, USER, ASSISTANT])
        assert type(raised.value).__name__ == family.system_error
        return
    full = render(tokenizer, [SYSTEM, USER, ASSISTANT])
    prompt = render(tokenizer, [SYSTEM, USER], add_generation_prompt=True)
    assert SYSTEM["content"] in prompt
    assert (SYSTEM["content"] in full) == family.system_in_training_render, full
    assert full.startswith(prompt) == family.system_prompt_is_prefix, (prompt, full)
    if family.system_role == MERGED:  # no turn of its own: the text sits inside the user turn
        user_start = prompt.index(USER["content"])
        assert SYSTEM["content"] in prompt[:user_start]
        assert "system" not in prompt.lower()
    else:
        assert prompt.index(SYSTEM["content"]) < prompt.index(USER["content"])


@pytest.mark.parametrize("name", CHAT_FAMILIES)
def test_role_alternation(name, tokenizers):
    family, tokenizer = FAMILIES[name], tokenizers[name]
    if family.alternation_enforced:
        with pytest.raises(Exception):
            render(tokenizer, [USER, USER2])
    else:
        render(tokenizer, [USER, USER2])


def test_base_has_no_template(tokenizers):
    family = FAMILIES["base"]
    assert tokenizers["base"].chat_template is None
    with pytest.raises(Exception) as raised:
        render(tokenizers["base"], [USER])
    assert type(raised.value).__name__ == family.system_error


@pytest.mark.parametrize("name", [n for n in CHAT_FAMILIES if FAMILIES[n].adds_bos])
def test_rendered_bos_doubles_when_encoded_with_special_tokens(name, tokenizers):
    # the trap these families carry: the template writes bos_token and the tokenizer adds another one
    tokenizer = tokenizers[name]
    text = render(tokenizer, [USER, ASSISTANT])
    assert text.startswith(tokenizer.bos_token)
    ids = tokenizer(text).input_ids
    assert ids[:2] == [tokenizer.bos_token_id] * 2
    assert tokenizer(text, add_special_tokens=False).input_ids[:2] != [tokenizer.bos_token_id] * 2


def test_qwen3_think_blocks(tokenizers):
    tokenizer = tokenizers["qwen3"]
    empty = "<think>\n\n</think>\n\n"
    # the final assistant turn gets an empty think block, earlier ones lose theirs
    assert render(tokenizer, [USER, ASSISTANT]).endswith(f"<|im_start|>assistant\n{empty}I am fine<|im_end|>\n")
    thought = {"role": "assistant", "content": "<think>\nweigh it\n</think>\n\nI am fine"}
    later = render(tokenizer, [USER, thought, USER2, ASSISTANT])
    assert "weigh it" not in later and later.count("<think>") == 1
    # enable_thinking=False closes the think block in the generation prompt; the default leaves it to the model
    assert render(tokenizer, [USER], add_generation_prompt=True).endswith("<|im_start|>assistant\n")
    closed = render(tokenizer, [USER], add_generation_prompt=True, enable_thinking=False)
    assert closed.endswith(f"<|im_start|>assistant\n{empty}")


def test_model_runs_and_stops_on_a_stop_id(built, tokenizers):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(built["novel"])
    tokenizer = tokenizers["novel"]
    ids = tokenizer.apply_chat_template([USER], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] <= ids["input_ids"].shape[1] + 4
