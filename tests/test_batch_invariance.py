"""The local backend's greedy loop: a prompt's answer does not depend on which prompts share its batch, and equals
transformers' greedy `generate` on that prompt alone (fp32), stop ids, dropped rows, processors and all."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tunestack.evaluate.kernels as kernels
import tunestack.evaluate.kvcache as kvcache
from tunestack.chat import render_prompt
from tunestack.evaluate.generate import LocalGenerator
from tunestack.models import load_model, use_bf16

pytestmark = pytest.mark.integration

TEXTS = ["hi", "CT chest: sm L PTX.", "What is the capital of France? Please answer briefly.",
         "MRI brain, no acute findings, small old lacunar infarct in the left basal ganglia.", "ok?",
         "US abdomen: gallstones, no cholecystitis.", "Name three colours.", "X-ray R wrist: distal radius fx.",
         "Is water wet", "CT head: no bleed. Mild atrophy. Old right frontal infarct, unchanged since last year."]


@pytest.fixture(scope="module")
def fp32(tiny_model: Path):
    return load_model(tiny_model)


def prompts_for(tokenizer) -> list[list[int]]:
    prompts = [render_prompt(tokenizer, [{"role": "user", "content": t}]) for t in TEXTS]
    assert len({len(p) for p in prompts}) > 5 and len({len(p) % 2 for p in prompts}) == 2  # mixed, both parities
    return prompts


def alone_with_generate(model, tokenizer, prompts: list[list[int]], stops: list[int], n: int) -> list[list[int]]:
    """transformers' greedy `generate` on each prompt alone (the model's own attention), cut after the first stop."""
    answers = []
    with torch.inference_mode():
        for prompt in prompts:
            out = model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt),
                                 dtype=torch.long), max_new_tokens=n, eos_token_id=stops,
                                 pad_token_id=tokenizer.pad_token_id, do_sample=False, temperature=None, top_p=None,
                                 top_k=None)[0, len(prompt):].tolist()
            at = next((k for k, t in enumerate(out) if t in stops), None)
            answers.append(out if at is None else out[: at + 1])
    return answers


def answers_at(model, tokenizer, prompts, batch_size: int, n: int = 16, stops: list[int] | None = None):
    generator = LocalGenerator(model, tokenizer, batch_size)
    if stops is not None:
        generator.stops = stops
    return generator.generate(prompts, n)


def early_stops(model, tokenizer, prompts) -> list[int]:
    """The model's EOS (the tiny model never writes it) and two ids it writes in some answers and not in others:
    with them as stop ids, rows leave the batch at different steps and at least one runs to the limit."""
    free = [g.token_ids for g in answers_at(model, tokenizer, prompts, 8)]
    picked: list[int] = []
    for token in (t for ids in free for t in ids[1:]):
        if token not in picked and any(set(picked + [token]).isdisjoint(ids) for ids in free):
            picked.append(token)
        if len(picked) == 2:
            break
    assert len(picked) == 2
    return [tokenizer.eos_token_id, *picked]


def test_answers_do_not_depend_on_the_batch_and_equal_generate_alone(fp32):
    model, tokenizer = fp32
    prompts = prompts_for(tokenizer)
    stops = early_stops(model, tokenizer, prompts)
    runs = {size: answers_at(model, tokenizer, prompts, size, stops=stops) for size in (1, 3, 8)}
    ids = {size: [g.token_ids for g in out] for size, out in runs.items()}
    assert ids[1] == ids[3] == ids[8]
    assert ids[1] == alone_with_generate(model, tokenizer, prompts, stops, 16)
    ended = [g.ended_with_eos for g in runs[8]]
    assert any(ended) and not all(ended)  # rows left the batch at different steps, others ran to the limit
    assert all(g.ended_with_eos == (g.token_ids[-1] in stops) for g in runs[8])
    assert model.config._attn_implementation == "sdpa"  # the model's own kernel is back


@pytest.mark.skipif(not use_bf16("auto") or torch.cuda.is_available(), reason="needs a CPU with native bf16")
def test_bf16_answers_do_not_depend_on_the_batch(tiny_model: Path):
    model, tokenizer = load_model(tiny_model, "bfloat16")
    prompts = prompts_for(tokenizer)
    runs = [[g.token_ids for g in answers_at(model, tokenizer, prompts, size, n=24)] for size in (1, 3, 8)]
    assert runs[0] == runs[1] == runs[2]


def test_16_bit_forwards_are_never_one_row_and_attend_at_even_offsets(tiny_model: Path, monkeypatch):
    """The two rules that made bf16 answers batch-invariant on SmolLM2 (the tiny model is too small to show the
    drift they prevent): no forward of a single row (a one-row bf16 matmul takes another CPU kernel), and every
    row's keys reach the attention matmuls at an even offset (eager attention's alignment), also while rows of odd
    and even paddings share a batch and leave it."""
    model, tokenizer = load_model(tiny_model, "bfloat16")
    prompts = prompts_for(tokenizer)
    forwards, offsets = [], []
    attend = kernels._attend

    def seen(module, query, key, value, attention_mask, *args):
        if attention_mask is not None:
            offsets.append((attention_mask[:, 0, -1] == 0).int().argmax(-1))
        return attend(module, query, key, value, attention_mask, *args)

    monkeypatch.setattr(kernels, "_attend", seen)
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: forwards.append(
        (kwargs["input_ids"].shape, kwargs.get("attention_mask"))), with_kwargs=True)
    try:
        answers_at(model, tokenizer, prompts, 4, stops=early_stops(model, tokenizer, prompts))
    finally:
        hook.remove()
    assert len(forwards) > 10 and offsets
    for (rows, columns), mask in forwards:
        assert rows * columns >= 2
        if mask is not None:
            assert (mask[:, 1:] >= mask[:, :-1]).all() and mask[:, -1].all()  # left padding only
    assert any(((m.shape[1] - m.sum(-1)) % 2 == 1).any() for _, m in forwards if m is not None)  # odd paddings
    assert all((o % kernels.ALIGNMENT[kernels.GROUPED] == 0).all() for o in offsets)


def test_shared_prefix_and_split_prefill_change_no_answer(fp32, monkeypatch):
    model, tokenizer = fp32
    system = {"role": "system", "content": "Answer in one line of JSON with the keys modality and region."}
    prompts = [render_prompt(tokenizer, [system, {"role": "user", "content": t}]) for t in TEXTS]
    plain = [g.token_ids for g in answers_at(model, tokenizer, prompts, 8)]
    monkeypatch.setattr(kvcache, "MIN_SHARED", 10**6)  # no shared prefix
    monkeypatch.setattr(kvcache, "SCORES_BUDGET", 1)  # one row per prefill part
    assert [g.token_ids for g in answers_at(model, tokenizer, prompts, 8)] == plain
    assert plain == alone_with_generate(model, tokenizer, prompts, [tokenizer.eos_token_id], 16)


def test_the_generation_configs_processors_apply_as_in_generate(fp32):
    model, tokenizer = fp32
    prompts = prompts_for(tokenizer)
    config = model.generation_config
    saved = config.repetition_penalty, config.no_repeat_ngram_size
    config.repetition_penalty, config.no_repeat_ngram_size = 1.5, 2
    try:
        together = [g.token_ids for g in answers_at(model, tokenizer, prompts, 4)]
        assert together == alone_with_generate(model, tokenizer, prompts, [tokenizer.eos_token_id], 16)
    finally:
        config.repetition_penalty, config.no_repeat_ngram_size = saved
    assert together != [g.token_ids for g in answers_at(model, tokenizer, prompts, 4)]


def test_a_model_prepared_for_mixed_precision_training_answers_as_loaded_from_disk(tiny_model: Path):
    """While training, accelerate replaces the model's forward with one under bf16 autocast; a checkpoint evaluated
    then (evaluation while training) must be computed as the evaluate stage computes it from the saved weights."""
    from accelerate import Accelerator
    from peft import LoraConfig, get_peft_model

    if not use_bf16("auto"):
        pytest.skip("needs a CPU with native bf16 (autocast is what this test takes away)")
    model, tokenizer = load_model(tiny_model)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    prompts = prompts_for(tokenizer)
    pairs = [(p, "yes") for p in prompts[:3]]
    plain = [g.token_ids for g in answers_at(peft, tokenizer, prompts, 4)]
    plain_scores = LocalGenerator(peft, tokenizer, 4).loglikelihood(pairs)
    with torch.inference_mode():
        ids = torch.tensor([prompts[0]])
        before = peft(input_ids=ids).logits
        prepared = Accelerator(cpu=True, mixed_precision="bf16").prepare_model(peft)
        assert "_original_forward" in vars(prepared)  # the forward really is wrapped, and computes otherwise
        assert not torch.equal(prepared(input_ids=ids).logits.float(), before)
    assert [g.token_ids for g in answers_at(prepared, tokenizer, prompts, 4)] == plain
    assert LocalGenerator(prepared, tokenizer, 4).loglikelihood(pairs) == plain_scores


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_scores_do_not_depend_on_the_batch_or_the_kernel_the_model_was_loaded_with(tiny_model: Path, dtype: str):
    """Quartz's log-likelihoods: the same whatever the batch, and whether the model came with SDPA (loaded from
    disk) or eager attention (as training sets it on a CPU), so a checkpoint scored while training scores as when
    the evaluate stage loads it."""
    if dtype == "bfloat16" and (not use_bf16("auto") or torch.cuda.is_available()):
        pytest.skip("needs a CPU with native bf16")
    model, tokenizer = load_model(tiny_model, dtype)
    prompts = prompts_for(tokenizer)
    pairs = [(p, answer) for p in prompts for answer in (" yes", " no, not at all")]
    scores = {size: LocalGenerator(model, tokenizer, size).loglikelihood(pairs) for size in (1, 3, 8)}
    assert scores[1] == scores[3] == scores[8]
    own = model.config._attn_implementation
    model.set_attn_implementation("eager" if own != "eager" else "sdpa")
    try:
        assert LocalGenerator(model, tokenizer, 8).loglikelihood(pairs) == scores[8]
    finally:
        model.set_attn_implementation(own)


def test_under_another_transformers_the_loop_gives_way_to_generate_and_the_paths_agree(fp32, monkeypatch, capsys):
    """Issue 28 (j): the hand-written loop runs only with the transformers it was written against; under another
    release (and on a GPU) greedy decoding goes through `generate`, batched, with the same prompts, stops and
    kernel. The agreement of the two paths is measured here, on the tiny model in fp32, not assumed."""
    import tunestack.evaluate.generate as generate

    model, tokenizer = fp32
    assert generate.loop_applies(torch.device("cpu")) and not generate.loop_applies(torch.device("cuda"))
    prompts = prompts_for(tokenizer)
    stops = early_stops(model, tokenizer, prompts)
    loop = answers_at(model, tokenizer, prompts, 8, stops=stops)
    used = []
    monkeypatch.setattr(LocalGenerator, "_greedy", lambda self, *a, **k: used.append("loop") or [])
    monkeypatch.setattr(generate, "LOOP_TRANSFORMERS", "0.0.")  # a release the loop was not written against
    fallback = answers_at(model, tokenizer, prompts, 8, stops=stops)
    assert not used and len(fallback) == len(loop)
    same = sum(a.token_ids == b.token_ids for a, b in zip(loop, fallback))
    with capsys.disabled():
        print(f"\nhand-written loop vs batched generate, tiny model in fp32: {same}/{len(loop)} answers identical")
    assert same == len(loop)
    assert model.config._attn_implementation == "sdpa"  # the model's own kernel is back
