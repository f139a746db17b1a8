"""The `vllm` generation backend: a vLLM engine over a model folder, used only where the `vllm` package is installed.

Prompts are the token ids `tunestack.chat.render_prompt` makes with the run's tokenizer, handed over as token prompts,
so vLLM never applies a template of its own; decoding is greedy (`temperature=0`) with the model's EOS, as in the
local backend (sampled, with vLLM's per-request seed, only when `generate` is given a `Sampling`). Log-likelihoods come from vLLM's prompt log-probabilities over `prompt + answer`.

A checkpoint is evaluated from a folder: the evaluate stage merges it into the base and saves it first (a LoRA
adapter served through vLLM's LoRA path would skip the save, but would not cover full fine-tuning checkpoints or
`train.init_from` chains).
"""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path

from tunestack.errors import MissingDependencyError
from tunestack.evaluate.backends import (Generation, Prompt, Sampling, answer_ids, answer_text, mean_answer_logprob,
                                         prompt_ids, stopped)


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise MissingDependencyError("vllm", "vllm")


class VLLMGenerator:
    """Greedy generation and log-likelihoods with a vLLM engine over `folder`."""

    name = "vllm"
    cannot_score = None

    def __init__(self, folder: Path, tokenizer, dtype: str = "bfloat16", seed: int = 0):
        require_vllm()
        from vllm import LLM

        from transformers import GenerationConfig

        from tunestack.models.tokens import stop_ids

        self.tokenizer = tokenizer
        self.stops = stop_ids(GenerationConfig.from_pretrained(folder), tokenizer)
        self.llm = LLM(model=str(folder), tokenizer=str(folder), dtype=dtype, seed=seed,
                       gpu_memory_utilization=_memory_share())

    def close(self) -> None:
        """Give the GPU memory back before the next model's engine starts."""
        del self.llm
        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except ImportError:
            pass

    def _run(self, ids: list[list[int]], params):
        from vllm.inputs import TokensPrompt

        return self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in ids], params, use_tqdm=False)

    def generate(self, prompts: list[Prompt], max_new_tokens: int, desc: str = "generate",
                 sampling: Sampling | None = None) -> list[Generation]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True,
                                stop_token_ids=self.stops)
        if sampling is not None:
            params = SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed,
                                    max_tokens=max_new_tokens, skip_special_tokens=True, stop_token_ids=self.stops)
        outputs = self._run([prompt_ids(self.tokenizer, p) for p in prompts], params)
        return [self._generation(out.outputs[0]) for out in outputs]

    def _generation(self, out) -> Generation:
        # finish_reason "stop": EOS (stop_reason None) or one of our stop ids (stop_reason that id); no stop strings
        # are set. vLLM may leave the id out of token_ids.
        ended = out.finish_reason == "stop"
        got = stopped(self.tokenizer, list(out.token_ids), self.stops, ended)
        return Generation(text=answer_text(out.text), token_ids=got.token_ids, ended_with_eos=got.ended_with_eos)

    def loglikelihood(self, pairs: list[tuple[Prompt, str | list[int]]], desc: str = "score") -> list[float]:
        from vllm import SamplingParams

        rendered = [(prompt_ids(self.tokenizer, c), answer_ids(self.tokenizer, a)) for c, a in pairs]
        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=1)
        outputs = self._run([c + a for c, a in rendered], params)
        scores = []
        for (context, answer), out in zip(rendered, outputs):
            sequence = context + answer
            logprobs = [None] + [step[token].logprob for step, token in
                                 zip(list(out.prompt_logprobs)[1:], sequence[1:])]
            score = mean_answer_logprob(logprobs, len(context), len(answer))
            scores.append(score if score is not None else float("-inf"))
        return scores


def _memory_share() -> float:
    """vLLM's `gpu_memory_utilization` counts the whole GPU; leave alone what this process already holds (the
    evaluate stage keeps the fp32 base model on the GPU to merge checkpoints into)."""
    import torch

    if not torch.cuda.is_available():
        return 0.9
    free, total = torch.cuda.mem_get_info()
    return max(0.05, 0.9 * free / total)
