"""The `openai` generation backend: any OpenAI-compatible endpoint (OpenAI, vLLM's server, llama.cpp, a proxy).

Requests go through `tunestack.client.EndpointClient`, so they get its retries (429, 5xx, timeouts, with
backoff or the server's Retry-After), bounded concurrency, response cache and token accounting. Decoding is greedy
as everywhere else: `temperature: 0` and `max_tokens` = the stage's `max_new_tokens`. Only when `generate` is given a
`Sampling` (`tunestack assess`) are `temperature`, `top_p` and `seed` sent instead; the seed is part of the request,
so each sample is its own cache entry and a re-run gets the same samples.

How the endpoint gets the same prompt (`evaluate.endpoint.api`):

- `chat` (default; the only API that OpenAI's current models offer): the conversation's messages, exactly as the
  local backend's, and the server applies the chat template it serves the model with. For a model served from a
  tunestack checkpoint or export (vLLM, llama.cpp) that is the template the folder carries, i.e. ours; a hosted
  model uses its own, which is what you compare against. Chat completions give log-probabilities of generated
  tokens only, so log-likelihood suites (quartz) are skipped with that reason.
- `completions`: the token ids `tunestack.chat.render_prompt` makes with the run's tokenizer, so the template is
  ours by construction and the ids are the local backend's. The server must serve a model with the run's
  tokenizer and accept token-id prompts (vLLM, llama.cpp do). Log-likelihoods come from `echo` with `logprobs`.

A conversation with tools (`tunestack.tools`: the definitions on its first message) is sent with them, and a
reply that calls tools is scored as its canonical text (`tools.answer_text`: each call, name and canonical
arguments), the form the eval row's own answer is compared in.

An answer ended with EOS when `finish_reason` is `stop` (no stop strings are sent, so only EOS stops it); the
endpoint returns text, not ids, so `Generation.token_ids` is empty.
"""

from __future__ import annotations

from tunestack.errors import EndpointError, StageError
from tunestack.evaluate.backends import (Generation, Prompt, Sampling, answer_ids, is_ids, mean_answer_logprob,
                                         prompt_ids)
from tunestack.client import EndpointClient

CHAT_CANNOT_SCORE = ("chat completions return log-probabilities of generated tokens only, not of a given answer: "
                     "set evaluate.endpoint.api=completions on a server that serves the run's tokenizer and supports "
                     "`echo` with `logprobs` (vLLM, llama.cpp)")


class EndpointGenerator:
    """Greedy generation (and, with the completions API, log-likelihoods) on an OpenAI-compatible endpoint."""

    name = "openai"

    def __init__(self, client: EndpointClient, api: str = "chat", tokenizer=None, scorer=None):
        """`scorer`: a completions-API generator that scores log-likelihoods for a chat one."""
        if api == "completions" and tokenizer is None:
            raise StageError("the completions API sends token ids rendered with the run's tokenizer: pass one")
        self.client, self.api, self.tokenizer, self.scorer = client, api, tokenizer, scorer
        self.cannot_score = CHAT_CANNOT_SCORE if api == "chat" and scorer is None else None

    def close(self) -> None:
        self.client.close()
        if self.scorer is not None:
            self.scorer.close()

    def generate(self, prompts: list[Prompt], max_new_tokens: int, desc: str = "generate",
                 sampling: Sampling | None = None) -> list[Generation]:
        params = {"temperature": 0.0, "max_tokens": max_new_tokens}
        if sampling is not None:
            params = {"temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed,
                      "max_tokens": max_new_tokens}
        completions = self.client.complete_many([self._request(p) for p in prompts], params)
        return [Generation(text=c.text.strip(), token_ids=[], ended_with_eos=c.finish_reason == "stop")
                for c in completions]

    def _request(self, prompt: Prompt):
        if self.api == "completions":
            return prompt_ids(self.tokenizer, prompt)
        if is_ids(prompt):
            raise StageError("a chat endpoint takes conversations, not token ids: set evaluate.endpoint.api="
                             "completions to send rendered prompts")
        return list(prompt)

    def loglikelihood(self, pairs: list[tuple[Prompt, str | list[int]]], desc: str = "score") -> list[float]:
        """Mean log-probability of each answer's tokens: `prompt + answer` sent with `echo`, one token generated
        (some servers refuse zero), and the answer's slice of the returned prompt log-probabilities taken."""
        if self.cannot_score:
            raise StageError(self.cannot_score)
        if self.scorer is not None:
            return self.scorer.loglikelihood(pairs, desc)
        rendered = [(prompt_ids(self.tokenizer, c), answer_ids(self.tokenizer, a)) for c, a in pairs]
        params = {"temperature": 0.0, "max_tokens": 1, "echo": True, "logprobs": 1}
        completions = self.client.complete_many([c + a for c, a in rendered], params)
        scores = []
        for (context, answer), completion in zip(rendered, completions):
            score = mean_answer_logprob(completion.logprobs or [], len(context), len(answer))
            if score is None:
                raise EndpointError(f"{self.client.settings.base_url} returned no log-probabilities for the prompt "
                                    "tokens: it does not support `echo` with `logprobs` on completions. Use "
                                    "evaluate.endpoint.api=chat (quartz is then skipped)")
            scores.append(score)
        return scores
