"""Stage `serve`: the chosen model behind an OpenAI-compatible server, parity-checked before it takes traffic."""

from tunestack.serve.stage import prepare_server, run_serve

__all__ = ["prepare_server", "run_serve"]
