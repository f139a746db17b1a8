"""Dynamic batching for the built-in server: requests that arrive while a batch decodes wait, and the next batch
takes up to `max_batch_size` of them, the first waiting at most `batch_wait_s` for company.

One worker thread owns the model. Greedy requests of a batch are decoded together by the evaluate stage's own
`LocalGenerator`, whose greedy answers do not depend on which prompts share the batch (bench/batch_invariance.py),
so a served answer is the one offline evaluation gives for the same prompt. A batch decodes to its largest
`max_tokens`; each answer is cut to its own (a greedy answer's first k tokens are the answer to `max_tokens: k`).
Sampled requests (temperature above 0) are decoded one at a time with their own seed. A request for
log-probabilities (`Job.logprobs`) gets them from one scoring pass over its prompt and answer, in the same batch.

With LoRA adapters served beside their base (`serve.adapters`), each job names its adapter; a batch's jobs are
decoded adapter by adapter, each group under `use_adapter(name)`.

The queue is bounded: `submit` raises `QueueFull` with a Retry-After estimate (the recent seconds per batch, times
the batches ahead) instead of letting requests pile up without limit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from tunestack.evaluate.backends import Generation, Sampling, stopped
from tunestack.terminal import quiet_bars

log = logging.getLogger("tunestack")

__all__ = ["Batcher", "Job", "QueueFull", "ShuttingDown"]


class QueueFull(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    pass


@dataclass
class Job:
    prompt_ids: list[int]
    max_tokens: int
    sampling: Sampling | None = None
    on_token: Callable[[int], None] | None = None
    """Called in the worker thread with each new token id (streaming); never with more than `max_tokens`."""
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    """Set when the client went away before its batch started: the job is skipped."""
    adapter: str | None = None
    """The LoRA adapter to answer with (None: the model as loaded)."""
    logprobs: int | None = None
    """When set, `scores` gets each token's log-probability (prompt and answer) and this many alternatives."""
    scores: tuple | None = None


class Batcher:
    def __init__(self, generator, max_batch_size: int = 16, batch_wait_s: float = 0.005, max_queue: int = 256,
                 on_batch: Callable[[int, float], None] | None = None,
                 use_adapter: Callable[[str | None], AbstractContextManager] | None = None):
        self.generator = generator
        self.use_adapter = use_adapter or (lambda name: nullcontext())
        self.max_batch_size, self.batch_wait_s = max_batch_size, batch_wait_s
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.on_batch = on_batch
        """Called after each batch with its size and seconds (metrics)."""
        self.seconds_per_batch = 1.0
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tunestack-batcher", daemon=True)

    def start(self) -> Batcher:
        self.thread.start()
        return self

    def depth(self) -> int:
        return self.queue.qsize()

    def submit(self, job: Job) -> Future:
        if self.closing.is_set():
            raise ShuttingDown("the server is shutting down")
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            ahead = self.queue.qsize() / self.max_batch_size + 1
            raise QueueFull(max(1, round(ahead * self.seconds_per_batch))) from None
        return job.future

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish what is queued, take nothing new, and end the worker."""
        self.closing.set()
        self.queue.put(None)  # wakes the worker (blocks only while the queue is full: then it drains first)
        self.thread.join(timeout)

    def _take(self) -> list[Job] | None:
        first = self.queue.get()
        if first is None:
            return None
        jobs = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(jobs) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                job = self.queue.get(timeout=remaining) if remaining > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self.queue.put(None)  # the stop marker: after this batch
                break
            jobs.append(job)
        return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            jobs = [j for j in jobs if not j.cancelled and j.future.set_running_or_notify_cancel()]
            if not jobs:
                continue
            started = time.monotonic()
            try:
                for adapter in dict.fromkeys(j.adapter for j in jobs):
                    with self.use_adapter(adapter):
                        self._answer([j for j in jobs if j.adapter == adapter])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure, the server lives
                log.exception("[serve] a batch of %d failed", len(jobs))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
            seconds = time.monotonic() - started
            self.seconds_per_batch = 0.8 * self.seconds_per_batch + 0.2 * seconds
            if self.on_batch is not None:
                self.on_batch(len(jobs), seconds)

    def _answer(self, jobs: list[Job]) -> None:
        greedy = [j for j in jobs if j.sampling is None]
        answers = dict(zip(map(id, greedy), self._decode(greedy, None))) if greedy else {}
        for job in jobs:
            if job.sampling is not None:
                answers[id(job)] = self._decode([job], job.sampling)[0]
        scored = [j for j in jobs if j.logprobs is not None]
        if scored:
            tables = self.generator.token_logprobs([j.prompt_ids + answers[id(j)].token_ids for j in scored],
                                                   top=max(j.logprobs for j in scored))
            for job, (picked, tops) in zip(scored, tables):
                job.scores = (picked, [t if t is None else dict(list(t.items())[: job.logprobs]) for t in tops])
        for job in jobs:
            job.future.set_result(answers[id(job)])

    def _decode(self, jobs: list[Job], sampling: Sampling | None) -> list[Generation]:
        counts = [0] * len(jobs)

        def emit(i: int, token: int) -> None:
            job = jobs[i]
            if job.on_token is not None and counts[i] < job.max_tokens:
                counts[i] += 1
                job.on_token(token)

        generator = self.generator
        with quiet_bars():  # a server's terminal shows requests, not a bar per batch
            out = generator.generate([j.prompt_ids for j in jobs], max(j.max_tokens for j in jobs), desc="serve",
                                     sampling=sampling, on_token=emit)
        return [cut(generator, generation, job.max_tokens) for job, generation in zip(jobs, out)]


def cut(generator, generation: Generation, max_tokens: int) -> Generation:
    """The answer to `max_tokens`: the first `max_tokens` tokens of the batch's answer, decoded again if cut."""
    if len(generation.token_ids) <= max_tokens:
        return generation
    return stopped(generator.tokenizer, generation.token_ids[:max_tokens], generator.stops)
