"""Self-replay: the base model's own greedy answers to general prompts, mixed into training against forgetting.

The prompt pool is disjoint from the retention probes, so replay never teaches the test. An answer that does not end
with EOS within the length limit is cut at its last sentence end (when that keeps at least half of it) rather than
dropped, and ends there with EOS: training on an answer cut mid-sentence would teach the model to stop
mid-sentence. Prompts are answered in rounds until the planned count is reached or the pool runs out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from tunestack.chat import render_prompt

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def at_sentence_end(text: str, keep: float = 0.5) -> str | None:
    """A cut-off answer up to its last sentence end, when that keeps at least `keep` of it; else None.

    >>> at_sentence_end("Paris is the capital. It lies on the Sei")
    'Paris is the capital.'
    >>> at_sentence_end("Paris. The city lies on the river Seine and has a long hist") is None
    True
    """
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    cut = text[:ends[-1]].strip() if ends else ""
    return cut if cut and len(cut) >= keep * len(text.strip()) else None


def self_replay(generator, prompts: list[dict], count: int, max_new_tokens: int) -> list[dict]:
    """Up to `count` chat rows: a general prompt and the base model's own answer (`truncated` when it was cut at a
    sentence end)."""
    rows, start = [], 0
    while len(rows) < count and start < len(prompts):
        chunk = prompts[start: start + math.ceil((count - len(rows)) * 1.1) + 2]  # a margin for dropped answers
        start += len(chunk)
        ids = [render_prompt(generator.tokenizer, [{"role": "user", "content": p["prompt"]}]) for p in chunk]
        for prompt, out in zip(chunk, generator.generate(ids, max_new_tokens, desc="self-replay")):
            text = out.text if out.ended_with_eos else at_sentence_end(out.text)
            if text:
                rows.append({"messages": [{"role": "user", "content": prompt["prompt"]},
                                          {"role": "assistant", "content": text}],
                             "origin": "self_replay", "id": prompt["id"], "truncated": not out.ended_with_eos})
    return rows[:count]


class ShardedGenerator:
    """A generator whose every `generate` call is split across the processes of a training run: each answers every
    `world`-th prompt, and the answers are gathered back into order on every process (`all_gather_object`). Every
    process then holds the same rows, and none waits at a barrier while another generates for all of them (on GPUs,
    long enough to reach NCCL's timeout)."""

    def __init__(self, generator, rank: int, world: int):
        self.generator, self.rank, self.world = generator, rank, world
        self.tokenizer = generator.tokenizer
        self.generated = 0
        """Prompts this process answered itself."""

    def generate(self, prompts: list, max_new_tokens: int, desc: str = "generate", sampling=None) -> list:
        import torch.distributed as dist

        mine = self.generator.generate(prompts[self.rank::self.world], max_new_tokens, desc=desc, sampling=sampling)
        self.generated += len(mine)
        parts: list = [None] * self.world
        dist.all_gather_object(parts, mine)
        answers: list = [None] * len(prompts)
        for rank, part in enumerate(parts):
            answers[rank::self.world] = part
        return answers


def from_rank_zero(path: Path, make_rows: Callable[[], list[dict]], rank: int, poll_s: float = 2.0) -> list[dict]:
    """Rows only rank 0 can make (under FSDP's efficient loading the other ranks hold placeholder weights until the
    model is sharded): rank 0 makes them and writes `path` (atomically); the others wait for the file and read it.
    The wait is on the file, not a collective, so however long rank 0 takes, no NCCL timeout is reached (torchrun
    stops every process if rank 0 fails)."""
    import time

    from tunestack.rundir import read_jsonl, write_jsonl

    if rank == 0:
        rows = make_rows()
        write_jsonl(path, rows)
        return rows
    while not path.exists():
        time.sleep(poll_s)
    return read_jsonl(path)


@contextmanager
def on_device_if_it_fits(model, share: float = 0.8):
    """A model whose weights sit on the CPU (rank 0 under FSDP's efficient loading) moved to this process's GPU for
    the block when they take under `share` of its free memory, and moved back after; else left where it is."""
    import torch

    from tunestack.models import device

    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    here = next(model.parameters()).device
    if not torch.cuda.is_available() or here.type != "cpu" or weights > share * torch.cuda.mem_get_info()[0]:
        yield model
        return
    model.to(device())
    try:
        yield model
    finally:
        model.to(here)
        torch.cuda.empty_cache()


def shortfall(got: int, planned: int, n_task: int, share: float, pool: int) -> str | None:
    """What to say when the general mix falls short of its plan, with the figures; None when it does not.

    >>> shortfall(40, 60, 440, 0.12, 50)
    'the general mix has 40 of the 60 planned rows: 8.3% of the training set instead of 12% (the pool had 50 prompts)'
    """
    if got >= planned:
        return None
    actual = got / (n_task + got) if n_task + got else 0.0
    return (f"the general mix has {got} of the {planned} planned rows: {actual:.1%} of the training set instead of "
            f"{share:.0%} (the pool had {pool} prompts)")
