"""The legacy completions API (`POST /completions` with token-id prompts, as vLLM and llama.cpp serve it), and the
name of the one model an endpoint serves."""

from __future__ import annotations

from tunestack.client.endpoint import Completion, EndpointSettings, OpenAITransport
from tunestack.errors import EndpointError

__all__ = ["CompletionsTransport", "served_model"]


class CompletionsTransport:
    """`POST /completions` with a token-id prompt; the `Transport` the client uses for `api: completions`."""

    def __init__(self, settings: EndpointSettings):
        self.wire = OpenAITransport(settings)

    def close(self) -> None:
        self.wire.close()

    def send(self, model: str, prompt, params: dict) -> Completion:
        wire = self.wire
        response = wire.request(wire.client.completions.create, model=model, prompt=prompt, **params)
        if not response.choices:
            raise EndpointError(f"{wire.base_url} returned no choices for model {model!r}")
        choice, usage = response.choices[0], response.usage
        logprobs = choice.logprobs.token_logprobs if choice.logprobs is not None else None
        return Completion(text=choice.text or "", finish_reason=choice.finish_reason,
                          prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          completion_tokens=getattr(usage, "completion_tokens", 0) or 0, logprobs=logprobs,
                          model=getattr(response, "model", None) or None)


def served_model(settings: EndpointSettings) -> str:
    """The one model the endpoint lists (`GET /models`), for an endpoint given without a model name."""
    wire = OpenAITransport(settings)
    try:
        names = [m.id for m in wire.request(wire.client.models.list).data]
    except Exception as exc:  # noqa: BLE001 - Retryable or an odd reply: either way the name must be given
        raise EndpointError(f"{settings.base_url}: could not list its models ({exc}). Name the model with "
                            "evaluate.endpoint.model=NAME") from None
    finally:
        wire.close()
    if len(names) != 1:
        raise EndpointError(f"{settings.base_url} serves {len(names)} models ({', '.join(names) or 'none'}): name "
                            "the one to evaluate with evaluate.endpoint.model=NAME")
    return names[0]
