"""The `local` generation backend: transformers, batched, sorted by length, KV cache on.

The same prompts (token ids from `tunestack.chat.render_prompt`) and the same greedy decoding are used for the base
model, every checkpoint and the exported model, so their outputs are comparable token for token. The interface it
implements is `tunestack.evaluate.backends.Generator`. Sampled decoding (`Sampling`, for `tunestack assess`) draws from
a torch RNG seeded with the sampling seed and forked, so it neither depends on nor disturbs the global RNG.

Greedy decoding runs its own loop over the model's forward: the argmax of the same float32 logits, after the same
logits processors, as transformers' greedy `generate` (whose answers it gives, one prompt at a time in fp32), doing
what `generate` does not:

- A row that has emitted a stop id leaves the batch and the KV cache (`Cache.batch_select_indices`), and columns
  only padding fills any more are cut from the cache's left, so no decode step is spent on a finished answer (with
  `generate` a finished row is computed to the end of its batch: 34-37% of the demo's decode slots).
- The first tokens all of a batch's prompts share (a task's system prompt and the template around it: 31 of the
  demo's 52) are computed once and their keys and values copied into every row's cache; the batch computes the rest.
- A prompt's answer does not depend on which prompts share its batch (bench/batch_invariance.py measures it). In
  bf16 on a CPU two things made it depend, found by comparing a row alone with the same row in a batch: the width of
  the padded window its attention reduces over (AVX512-BF16/AMX dot products sum keys in pairs, so an odd left
  padding regroups every pair: eager attention is bit-identical to no padding at even paddings only, SDPA's flash
  kernel at multiples of 16: `kernels.ALIGNMENT`), and a one-row matmul, which takes another kernel than a many-row
  one (a bf16 `F.linear` with K = 1536 differed in 28 of 230k outputs). So attention runs as `grouped_eager`, which lets a
  row padded by an odd number of columns attend from its second column on (every row's keys start at an even
  offset; the cache is only cut from the left by even numbers of columns), and in 16 bits a batch down to one row
  runs it twice. A prefill in chunks (the shared prefix, then the rest; or rows in turn) is bit-identical to a whole
  one. With these, bf16 answers on the demo were the same at batch sizes 1, 8 and 48 and on 1 or 2 threads. In fp32
  eager attention is bit-identical at any padding and a lone row runs once (fp32 matmuls differ in the last bits
  with the row count anyway, and the one-row kernel is the fastest); no fp32 answer moved either.
- Attention runs eager on a CPU (`attention="auto"`) for the duration of the call, the model's own kernel put back
  after: there it generated faster than SDPA. It runs as `grouped_eager`, which is also transformers' eager
  attention without `repeat_kv`'s copy of the keys and values for every query head (those copies were a quarter of a
  decode step at batch 48), where the model's eager attention is the plain one (Llama's code); otherwise as the
  model's eager, with prompts batched by length parity instead. A prefill is split into rows in turn so eager's
  attention scores stay under `kvcache.SCORES_BUDGET`.

The loop is the CPU path, and it rests on transformers' private steps (`_prepare_generation_config`,
`_get_logits_processor`, the KV-cache layers): it runs only with the transformers it was written and tested against
(`LOOP_TRANSFORMERS`). On a GPU (cuBLAS promises no batch invariance anyway), under another transformers, and for
sampled decoding, an encoder-decoder, or a generation config asking for what the loop does not reproduce (another
decoding mode, a minimum length, guidance), decoding goes through transformers' `generate`, with the same prompts,
stop ids and attention kernel (`kernels.evaluation_kernel`).

This module keeps the decode loop and scoring (`LocalGenerator`); the attention kernels (the switch, `grouped_eager`,
the alignments) are in `tunestack.evaluate.kernels`, the KV-cache surgery (the prefill with its shared prefix and
row blocks, cutting the cache's left columns) in `tunestack.evaluate.kvcache`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from tunestack.evaluate.backends import Generation, Prompt, Sampling, answer_ids, prompt_ids, stopped
from tunestack.evaluate.kernels import GROUPED, alignment, attention_kernel, evaluation_kernel
from tunestack.evaluate.kvcache import prefill, trim_left
from tunestack.models.tokens import stop_ids

__all__ = ["Generation", "LocalGenerator", "left_padded"]

LOOP_TRANSFORMERS = "5.17."
"""The transformers release line the hand-written greedy loop was written and tested against."""


def loop_applies(device) -> bool:
    """Does the hand-written greedy loop run here: on a CPU, with the transformers it was written against?"""
    import transformers

    return device.type == "cpu" and transformers.__version__.startswith(LOOP_TRANSFORMERS)

class LocalGenerator:
    """Greedy (or, when asked, seeded sampled) generation from a loaded transformers model (optionally a peft
    wrapper).

    `attention`: the attention kernel greedy generation runs with, the model's own restored after: `auto` (eager on
    a CPU, the model's own elsewhere), a transformers name (`eager`, `sdpa`, ...), or None for the model's own.
    `eager` runs as `grouped_eager` (the same operations without copying keys and values per query head) where the
    model's eager attention is transformers' plain one."""

    name = "local"
    cannot_score = None

    def __init__(self, model, tokenizer, batch_size: int = 16, attention: str | None = "auto"):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.attention = attention
        # Every id the model stops on (a family can have several), the end-of-turn token first.
        self.stops = stop_ids(model.generation_config, tokenizer)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stops[0]
        self.forward = plain_forward(model)

    def close(self) -> None:
        pass  # the caller owns the model

    @torch.inference_mode()
    def generate(self, prompts: list[Prompt], max_new_tokens: int, desc: str = "generate",
                 sampling: Sampling | None = None, on_token=None) -> list[Generation]:
        """Each prompt's answer. `on_token(i, token_id)`, when given, is called with each new token of prompt `i`
        as greedy decoding emits it (the built-in server streams with it); sampled decoding calls it once its batch
        is done."""
        prompts = [prompt_ids(self.tokenizer, p) for p in prompts]
        self.model.eval()
        device = next(self.model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=sampling is not None), \
                contiguous_head(self.model):
            if sampling is not None:
                torch.manual_seed(sampling.seed)
                return self._generate(prompts, max_new_tokens, desc, sampling, device, on_token)
            config = greedy_config(self.model, self.stops, self.pad, max_new_tokens, device) \
                if loop_applies(device) else None
            with attention_kernel(self.model, self._kernel(device)) as used:
                if config is None:
                    return self._generate(prompts, max_new_tokens, desc, None, device, on_token)
                return self._greedy(prompts, max_new_tokens, desc, config, used, device, on_token)

    def _kernel(self, device) -> str | None:
        """The attention kernel to run with: `attention`, `auto` meaning `evaluation_kernel` for the device."""
        if self.attention == "auto":
            return evaluation_kernel(device.type)
        return self.attention

    def _generate(self, prompts: list[list[int]], max_new_tokens: int, desc: str, sampling: Sampling | None,
                  device, on_token=None) -> list[Generation]:
        """transformers' `generate`, for sampling and for what `_greedy` does not reproduce."""
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in tqdm(batches, desc=desc, unit="batch", leave=False):
            width = max(len(prompts[i]) for i in batch)
            ids, mask = left_padded([prompts[i] for i in batch], width, self.pad)
            out = self.model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                eos_token_id=self.stops, pad_token_id=self.pad, use_cache=True,  # also on a model being trained
                **_decoding(sampling),
            )
            for row, i in enumerate(batch):
                results[i] = self._decode(out[row, width:].tolist())
                for token in results[i].token_ids if on_token else ():
                    on_token(i, token)
        return results  # type: ignore[return-value]

    def _greedy(self, prompts: list[list[int]], max_new_tokens: int, desc: str, config, kernel: str,
                device, on_token=None) -> list[Generation]:
        """Batches of prompts, longest first (on a CPU, of the same length modulo the kernel's alignment unless
        the kernel aligns rows itself), each decoded by `_greedy_batch`."""
        align = alignment(kernel, self.model.dtype) if device.type == "cpu" else 1
        group = 1 if kernel == GROUPED else align  # `grouped_eager` aligns odd paddings itself
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]) % group, -len(prompts[i])))
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < self.batch_size and \
                    len(prompts[batches[-1][0]]) % group == len(prompts[i]) % group:
                batches[-1].append(i)
            else:
                batches.append([i])
        for batch in batches:  # even paddings first, as `grouped_eager` takes them
            width = len(prompts[batch[0]])
            batch.sort(key=lambda i: ((width - len(prompts[i])) % 2, -len(prompts[i])))
        results: list[Generation | None] = [None] * len(prompts)
        for batch in tqdm(batches, desc=desc, unit="batch", leave=False):
            emit = (lambda r, token, batch=batch: on_token(batch[r], token)) if on_token else None
            answers = self._greedy_batch([prompts[i] for i in batch], max_new_tokens, config, kernel, align, device,
                                         emit)
            for i, new_ids in zip(batch, answers):
                results[i] = self._decode(new_ids)
        return results  # type: ignore[return-value]

    def _greedy_batch(self, prompts: list[list[int]], max_new_tokens: int, config, kernel: str, align: int,
                      device, emit=None) -> list[list[int]]:
        """Each prompt's new token ids, up to and including its first stop id. Rows (indices into `prompts`) leave
        the batch when they stop; in 16 bits a batch is never one row (a lone row runs twice)."""
        width = max(len(p) for p in prompts)
        live = list(range(len(prompts)))
        least = 1 if self.model.dtype == torch.float32 else 2  # fp32: the one-row kernel is the fastest, and no worse
        ids, mask = left_padded([prompts[r] for r in (live if len(live) >= least else live * 2)], width, self.pad)
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        processors = self.model._get_logits_processor(generation_config=config, input_ids_seq_length=width,
                                                      encoder_input_ids=ids, device=device, model_kwargs={})
        sequences = ids if processors else None  # what the processors see, as in `generate`: padding included
        shared = os.path.commonprefix(prompts)[: min(len(p) for p in prompts) - 1] if len(prompts) > 1 else []
        cache, logits = prefill(self.forward, self.model.config, ids, mask, positions, kernel, shared)
        last = positions[:, -1]
        answers: list[list[int]] = [[] for _ in prompts]
        for step in range(max_new_tokens):
            scores = logits.float()  # as `generate`; a bf16 argmax is also 5x slower than the copy and its argmax
            tokens = (processors(sequences, scores) if processors else scores).argmax(-1)
            emitted = tokens.tolist()
            running = []
            for k, r in enumerate(live):
                answers[r].append(emitted[k])
                if emit is not None:
                    emit(r, emitted[k])
                if emitted[k] not in self.stops:
                    running.append(k)
            if not running or step == max_new_tokens - 1:
                break
            if len(running) < len(live):
                index = torch.tensor(running if len(running) >= least else running * 2, device=device)
                cache.batch_select_indices(index)
                mask, last, tokens = mask[index], last[index], tokens[index]
                sequences = None if sequences is None else sequences[index]
                live = [live[k] for k in running]
                mask = trim_left(cache, mask, align)
            if sequences is not None:
                sequences = torch.cat([sequences, tokens[:, None]], dim=-1)
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            last = last + 1
            logits = self.forward(input_ids=tokens[:, None], attention_mask=mask, position_ids=last[:, None],
                                  past_key_values=cache, use_cache=True).logits[:, -1]
        return answers

    def _decode(self, new_ids: list[int]) -> Generation:
        return stopped(self.tokenizer, new_ids, self.stops)

    @torch.inference_mode()
    def loglikelihood(self, pairs: list[tuple[Prompt, str | list[int]]], desc: str = "score") -> list[float]:
        """Mean log-probability per token of each continuation given its context.

        Sequences are left-padded so every continuation ends at the last column; the LM head then runs on the last
        few columns only (`logits_to_keep`) instead of over the whole context and the full vocabulary. Attention
        runs with the kernel greedy generation uses, so a score does not depend on the kernel the model was loaded
        (or trained) with, nor, on a CPU, on the batch: a lone 16-bit row is run twice, as in generation.
        """
        pairs = [(prompt_ids(self.tokenizer, c), answer_ids(self.tokenizer, a)) for c, a in pairs]
        self.model.eval()
        device = next(self.model.parameters()).device
        order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        scores: list[float] = [0.0] * len(pairs)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        with attention_kernel(self.model, self._kernel(device)), contiguous_head(self.model):
            for batch in tqdm(batches, desc=desc, unit="batch", leave=False):
                self._score_batch(pairs, batch, scores, device)
        return scores

    def _score_batch(self, pairs: list[tuple[list[int], list[int]]], batch: list[int], scores: list[float],
                     device) -> None:
        keep = max(len(pairs[i][1]) for i in batch) + 1
        logprobs = self._logprobs([pairs[i][0] + pairs[i][1] for i in batch], keep, device)
        for row, i in enumerate(batch):  # column j predicts token width - keep + j + 1
            continuation = torch.tensor(pairs[i][1], device=device)
            n = len(continuation)
            picked = logprobs[row, keep - 1 - n: keep - 1].gather(-1, continuation[:, None])
            scores[i] = picked.mean().item()

    def _logprobs(self, seqs: list[list[int]], keep: int, device) -> torch.Tensor:
        """Log-softmax of the last `keep` columns of the left-padded sequences, one row per sequence."""
        rows = len(seqs)
        if rows == 1 and self.model.dtype != torch.float32 and device.type == "cpu":
            seqs = seqs * 2  # see `_greedy_batch`: no one-row 16-bit forward
        ids, mask = left_padded(seqs, max(len(s) for s in seqs), self.pad)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.forward(input_ids=ids.to(device), attention_mask=mask.to(device),
                              position_ids=positions.to(device), logits_to_keep=keep).logits.float()
        return torch.log_softmax(logits[:rows], dim=-1)

    @torch.inference_mode()
    def token_logprobs(self, seqs: list[list[int]], top: int = 0,
                       max_cells: int = 4096) -> list[tuple[list[float | None], list[dict[int, float] | None]]]:
        """Each token's log-probability given the tokens before it (None for the first), and with `top` the `top`
        likeliest ids at each position: what `/v1/completions` returns for `echo` with `logprobs`. The same forward
        pass as `loglikelihood`, with the LM head over every column; sequences go `max_cells` tokens at a time."""
        self.model.eval()
        device = next(self.model.parameters()).device
        out: list = [None] * len(seqs)
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        batches, batch = [], []
        for i in order:
            if batch and (len(batch) + 1) * len(seqs[batch[0]]) > max_cells:
                batches.append(batch)
                batch = []
            batch.append(i)
        batches += [batch] if batch else []
        with attention_kernel(self.model, self._kernel(device)), contiguous_head(self.model):
            for batch in batches:
                width = len(seqs[batch[0]])
                logprobs = self._logprobs([seqs[i] for i in batch], width, device)
                for row, i in enumerate(batch):
                    seq, offset = seqs[i], width - len(seqs[i])
                    table = logprobs[row, offset: width - 1]  # row t predicts token t + 1
                    picked = table.gather(-1, torch.tensor(seq[1:], device=device)[:, None])[:, 0].tolist()
                    tops: list[dict[int, float] | None] = [None]
                    if top:
                        values, ids = table.topk(top, dim=-1)
                        tops += [dict(zip(r_ids, r_values)) for r_ids, r_values in zip(ids.tolist(),
                                                                                     values.tolist())]
                    out[i] = ([None] + picked, tops if top else [None] * len(seq))
        return out


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


def plain_forward(model):
    """What greedy decoding calls for a forward pass: the transformers model inside a peft wrapper (as peft's own
    `generate` does), and its forward as written, not the one `accelerate` swaps in while training (which runs under
    bf16 autocast: a checkpoint evaluated while training would otherwise be computed in another precision than
    when it is loaded from disk)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    original = vars(inner).get("_original_forward")
    if original is None or "forward" not in vars(inner):
        return inner
    return lambda **kwargs: original(**kwargs)


def _decoding(sampling: Sampling | None) -> dict:
    """`generate` arguments: greedy, or sampling at the given temperature and nucleus (top-k off, so the model's own
    generation config cannot narrow it)."""
    if sampling is None:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}


def greedy_config(model, stops: list[int], pad: int, max_new_tokens: int, device):
    """The generation config transformers' greedy `generate` would decode with here (the model's own, our stop ids,
    pad and length, sampling off), its special tokens prepared; None where `LocalGenerator._greedy` does not
    reproduce that decoding: another mode, a minimum length, an encoder-decoder, a transformers without these
    (private) steps."""
    from transformers.generation.configuration_utils import GenerationMode

    if getattr(model.config, "is_encoder_decoder", False):
        return None
    try:
        config, _ = model._prepare_generation_config(
            None, max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=pad, use_cache=True,
            **_decoding(None))
        if config.get_generation_mode() != GenerationMode.GREEDY_SEARCH or config.min_new_tokens or \
                config.min_length or config.guidance_scale not in (None, 1):
            return None
        model._prepare_special_tokens(config, True, device=device)
        model._get_logits_processor(generation_config=config, input_ids_seq_length=1, device=device,
                                    model_kwargs={})
    except (AttributeError, TypeError, ValueError):
        return None
    return config


def left_padded(prompts: list[list[int]], width: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of the prompts, left-padded to `width`: every answer starts at the same
    column."""
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    return ids, mask
