"""The `local` generation backend: transformers, batched, sorted by length, KV cache on.

The same prompts (token ids from `tunestack.chat.render_prompt`) and the same greedy decoding are used for the base
model, every checkpoint and the exported model, so their outputs are comparable token for token. The interface it
implements is `tunestack.evaluate.backends.Generator`. Sampled decoding (`Sampling`, for `tunestack assess`) draws from
a torch RNG seeded with the sampling seed and forked, so it neither depends on nor disturbs the global RNG.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from tunestack.evaluate.backends import Generation, Prompt, Sampling, answer_ids, prompt_ids, stopped
from tunestack.models.tokens import stop_ids

__all__ = ["Generation", "LocalGenerator"]


class LocalGenerator:
    """Greedy (or, when asked, seeded sampled) generation from a loaded transformers model (optionally a peft
    wrapper)."""

    name = "local"
    cannot_score = None

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        # Every id the model stops on (a family can have several), the end-of-turn token first.
        self.stops = stop_ids(model.generation_config, tokenizer)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stops[0]

    def close(self) -> None:
        pass  # the caller owns the model

    @torch.inference_mode()
    def generate(self, prompts: list[Prompt], max_new_tokens: int, desc: str = "generate",
                 sampling: Sampling | None = None) -> list[Generation]:
        prompts = [prompt_ids(self.tokenizer, p) for p in prompts]
        self.model.eval()
        device = next(self.model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=sampling is not None), \
                contiguous_head(self.model):
            if sampling is not None:
                torch.manual_seed(sampling.seed)
            return self._generate(prompts, max_new_tokens, desc, sampling, device)

    def _generate(self, prompts: list[list[int]], max_new_tokens: int, desc: str, sampling: Sampling | None,
                  device) -> list[Generation]:
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in tqdm(batches, desc=desc, unit="batch", leave=False):
            width = max(len(prompts[i]) for i in batch)
            ids = torch.full((len(batch), width), self.pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # left padding: every answer starts at the same column
                ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
                mask[row, width - len(prompts[i]):] = 1
            out = self.model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                eos_token_id=self.stops, pad_token_id=self.pad, use_cache=True,  # also on a model being trained
                **_decoding(sampling),
            )
            for row, i in enumerate(batch):
                results[i] = self._decode(out[row, width:].tolist())
        return results  # type: ignore[return-value]

    def _decode(self, new_ids: list[int]) -> Generation:
        return stopped(self.tokenizer, new_ids, self.stops)

    @torch.inference_mode()
    def loglikelihood(self, pairs: list[tuple[Prompt, str | list[int]]], desc: str = "score") -> list[float]:
        """Mean log-probability per token of each continuation given its context.

        Sequences are left-padded so every continuation ends at the last column; the LM head then runs on the last
        few columns only (`logits_to_keep`) instead of over the whole context and the full vocabulary.
        """
        pairs = [(prompt_ids(self.tokenizer, c), answer_ids(self.tokenizer, a)) for c, a in pairs]
        self.model.eval()
        device = next(self.model.parameters()).device
        order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        scores: list[float] = [0.0] * len(pairs)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in tqdm(batches, desc=desc, unit="batch", leave=False):
            seqs = [pairs[i][0] + pairs[i][1] for i in batch]
            width = max(len(s) for s in seqs)
            keep = max(len(pairs[i][1]) for i in batch) + 1
            ids = torch.full((len(batch), width), self.pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, seq in enumerate(seqs):
                ids[row, width - len(seq):] = torch.tensor(seq)
                mask[row, width - len(seq):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with contiguous_head(self.model):
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                    position_ids=positions.to(device), logits_to_keep=keep).logits.float()
            logprobs = torch.log_softmax(logits, dim=-1)  # column j predicts token width - keep + j + 1
            for row, i in enumerate(batch):
                continuation = torch.tensor(pairs[i][1], device=device)
                n = len(continuation)
                picked = logprobs[row, keep - 1 - n: keep - 1].gather(-1, continuation[:, None])
                scores[i] = picked.mean().item()
        return scores


@contextmanager
def contiguous_head(model):
    """The LM head fed a contiguous input for the duration of the block. transformers slices the last positions
    (`logits_to_keep`) out of the hidden states; on a CPU, `F.linear` of such a strided bf16 slice with a frozen
    weight expands the weight across the batch: measured here, +1.69 GB for a batch of 32 through SmolLM2's
    49k x 576 head, which every frozen model meets (a LoRA base, a merged checkpoint) at every prefill. The copy
    made instead is one row per sequence."""
    head = model.get_output_embeddings()
    hook = head.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]))
    try:
        yield
    finally:
        hook.remove()


def _decoding(sampling: Sampling | None) -> dict:
    """`generate` arguments: greedy, or sampling at the given temperature and nucleus (top-k off, so the model's own
    generation config cannot narrow it)."""
    if sampling is None:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
