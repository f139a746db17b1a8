"""Generation backends behind one small interface, so the base model, every checkpoint, a vLLM engine and any
OpenAI-compatible endpoint are scored on the same prompts, with the same chat template and the same greedy decoding.

    generator.generate(prompts, max_new_tokens)   -> [Generation]   greedy answers, in prompt order
    generator.generate(prompts, n, sampling=Sampling(temperature=0.7, seed=1))   sampled ones (`tunestack assess`)
    generator.loglikelihood([(prompt, answer)])   -> [float]        mean log-probability per answer token
    generator.cannot_score                        None, or why this backend has no log-likelihoods
    generator.close()                             frees what the backend holds (an engine, connections)

A prompt is a conversation (chat messages) that ends where the assistant's answer begins, or the token ids
`tunestack.chat.render_prompt` made of one. Each backend renders conversations itself:

- `local` (`generate.LocalGenerator`): transformers, batched, sorted by length, KV cache, ids from `render_prompt`.
- `vllm` (`vllm_backend.VLLMGenerator`): the same ids handed to a vLLM engine as token prompts.
- `openai` (`endpoint.EndpointGenerator`): chat completions get the messages and the server applies the chat
  template it serves the model with; completions get the ids from `render_prompt`, so the template is ours.

Pure: no torch, no disk, no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from tunestack.chat import render_prompt

Messages = list[dict]
Prompt = Messages | list[int]
"""A conversation ending where the assistant's answer begins, or its token ids as `render_prompt` renders it."""

BACKENDS = ("local", "vllm", "openai")


@dataclass(frozen=True)
class Sampling:
    """Sampled instead of greedy decoding. Only `tunestack assess` asks for it (to see whether a failure repeats);
    every backend decodes greedily when `generate` gets none, so evaluation figures never depend on it."""

    temperature: float
    top_p: float = 1.0
    seed: int = 0
    """The same prompts, settings and seed give the same samples (locally: with the same batch size too)."""


@dataclass(frozen=True)
class Generation:
    text: str
    token_ids: list[int]
    """The answer's token ids up to and including EOS; empty when the backend does not return ids (an endpoint)."""
    ended_with_eos: bool


_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)


def stopped(tokenizer, new_ids: list[int], stops: list[int], ended: bool | None = None) -> Generation:
    """An answer cut after the first stop id it holds (any of the model's), decoded without it. `ended` overrides
    whether it ended (a backend that drops the stop id from its output says so otherwise)."""
    at = next((k for k, t in enumerate(new_ids) if t in stops), None)
    if at is not None:
        new_ids = new_ids[: at + 1]
    elif ended:
        new_ids = [*new_ids, stops[0]]
    text = tokenizer.decode([t for t in new_ids if t not in stops], skip_special_tokens=True)
    return Generation(text=answer_text(text), token_ids=new_ids, ended_with_eos=at is not None or bool(ended))


def answer_text(text: str) -> str:
    r"""The answer without a reasoning block in front (Qwen3 writes `<think>...</think>`, empty when thinking is off,
    before every answer): what is scored is the answer.

    >>> answer_text("<think>\n\n</think>\n\n{\"a\": 1}")
    '{"a": 1}'
    """
    return _THINK.sub("", text, count=1).strip()


class Generator(Protocol):
    """What the evaluate stage needs from a way of running a model."""

    name: str
    """The backend: `local`, `vllm` or `openai`."""
    cannot_score: str | None
    """None when `loglikelihood` works; else why it cannot (suites that need it are skipped with this reason)."""

    def generate(self, prompts: list[Prompt], max_new_tokens: int, desc: str = "generate",
                 sampling: Sampling | None = None) -> list[Generation]: ...

    def loglikelihood(self, pairs: list[tuple[Prompt, str | list[int]]], desc: str = "score") -> list[float]: ...

    def close(self) -> None: ...


def is_ids(prompt: Prompt) -> bool:
    """Is this prompt already token ids (not messages)?

    >>> is_ids([1, 2, 3]), is_ids([{"role": "user", "content": "hi"}])
    (True, False)
    """
    return bool(prompt) and isinstance(prompt[0], int)


def prompt_ids(tokenizer, prompt: Prompt) -> list[int]:
    """Token ids of a prompt: rendered with the model's chat template by `render_prompt`, or as given."""
    return list(prompt) if is_ids(prompt) else render_prompt(tokenizer, prompt)  # type: ignore[arg-type]


def answer_ids(tokenizer, answer: str | list[int]) -> list[int]:
    """Token ids of an answer to score. No special tokens: the answer follows the generation prompt directly, as a
    generated one would."""
    return tokenizer.encode(answer, add_special_tokens=False) if isinstance(answer, str) else list(answer)


def mean_answer_logprob(logprobs: list[float | None], n_prompt: int, n_answer: int) -> float | None:
    """Mean log-probability of the answer's tokens from per-token log-probabilities of `prompt + answer` (the first
    token has none); None when the answer's are missing.

    >>> mean_answer_logprob([None, -1.0, -0.5, -1.5], n_prompt=2, n_answer=2)
    -1.0
    >>> mean_answer_logprob([None, -1.0], n_prompt=2, n_answer=2) is None
    True
    """
    picked = logprobs[n_prompt: n_prompt + n_answer]
    if len(picked) != n_answer or n_answer == 0 or any(p is None for p in picked):
        return None
    return sum(picked) / n_answer  # type: ignore[arg-type]
