"""The local backend: batched, left-padded generation and log-likelihood match one-at-a-time computation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunestack.chat import render_prompt
from tunestack.evaluate.generate import LocalGenerator
from tunestack.models import load_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def generator(tiny_model: Path) -> LocalGenerator:
    model, tokenizer = load_model(tiny_model)
    return LocalGenerator(model, tokenizer, batch_size=4)


def naive_score(model, context: list[int], continuation: list[int]) -> float:
    ids = torch.tensor([context + continuation])
    logprobs = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)[0]
    picked = [logprobs[len(context) - 1 + k, token].item() for k, token in enumerate(continuation)]
    return sum(picked) / len(picked)


def test_batched_loglikelihood_equals_unbatched(generator: LocalGenerator):
    tok = generator.tokenizer
    pairs = []
    for question, options in [("Which is hot?", ["fire", "ice cream"]), ("Pick a colour", ["a very long blue", "red"]),
                              ("Short?", ["yes"])]:
        context = render_prompt(tok, [{"role": "user", "content": question}])
        pairs += [(context, tok.encode(o, add_special_tokens=False)) for o in options]
    batched = generator.loglikelihood(pairs)
    with torch.inference_mode():
        expected = [naive_score(generator.model, c, k) for c, k in pairs]
    assert batched == pytest.approx(expected, abs=1e-4)


def test_batched_generation_equals_one_at_a_time(generator: LocalGenerator):
    tok = generator.tokenizer
    prompts = [render_prompt(tok, [{"role": "user", "content": text}]) for text in
               ["CT chest: sm L PTX.", "What is the capital of France? Please answer briefly.", "hi"]]
    together = generator.generate(prompts, max_new_tokens=12)
    alone = [LocalGenerator(generator.model, tok, batch_size=1).generate([p], max_new_tokens=12)[0] for p in prompts]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]


def test_the_lm_head_is_fed_contiguous_rows_and_the_hook_goes_after(generator: LocalGenerator):
    """transformers slices the last positions out of the hidden states; a strided bf16 slice through a frozen head
    makes CPU `F.linear` expand the weight across the batch (see `contiguous_head`)."""
    head = generator.model.get_output_embeddings()
    seen = []
    probe = head.register_forward_hook(lambda module, args, out: seen.append(args[0].is_contiguous()))
    try:
        prompts = [render_prompt(generator.tokenizer, [{"role": "user", "content": q}]) for q in ("Hi", "Which is hot?")]
        generator.generate(prompts, 4)
        context = render_prompt(generator.tokenizer, [{"role": "user", "content": "Pick one"}])
        generator.loglikelihood([(context, [5, 6, 7]), (context + [9, 9], [5])])
    finally:
        probe.remove()
    assert seen and all(seen)
    assert not head._forward_pre_hooks  # removed when generation ends
