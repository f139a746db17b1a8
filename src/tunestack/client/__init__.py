"""One client for OpenAI-compatible endpoints, shared by the judge, endpoint evaluation, assess and serve's tests:
retries with backoff or the server's Retry-After, bounded concurrency, a response cache, token and cost accounting
(`endpoint`), and the token-id completions API (`completions`)."""

from tunestack.client.completions import CompletionsTransport, served_model
from tunestack.client.endpoint import (Completion, EndpointClient, EndpointSettings, OpenAITransport, Retryable,
                                       Transport, read_api_key)

__all__ = ["Completion", "CompletionsTransport", "EndpointClient", "EndpointSettings", "OpenAITransport",
           "Retryable", "Transport", "read_api_key", "served_model"]
