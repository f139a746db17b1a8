"""Config of `tunestack review`: the local review web app (`review:`)."""

from __future__ import annotations

from pydantic import Field

from tunestack.config.base import Section


class ReviewSection(Section):
    host: str = "127.0.0.1"
    """Interface to bind: this machine only unless told otherwise."""
    port: int = Field(8400, ge=0, le=65535)
    """TCP port; 0 picks a free one (printed at start)."""
    database: str | None = None
    """The SQLite file holding the queues, every action and the ratings; unset: `<run>/review/review.sqlite`."""
    candidates_path: str | None = None
    """JSONL of candidate rows to review; unset: `<run>/synth/candidates.jsonl` (what `tunestack synth` wrote)."""
    answers_per_model: int = Field(20, ge=0, le=10_000)
    """Model answers to rate per evaluated model (eval prompts, drawn with the run's seed); 0: no answer queue."""
    reviewer: str | None = None
    """The reviewer's name recorded with each action; unset: asked for in the browser."""
