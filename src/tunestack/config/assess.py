"""Config of `tunestack assess`: the sample, repeat sampling, and the verdict thresholds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunestack.config.base import Section


REFUSAL_PHRASES = ["I can't", "I cannot", "I'm sorry", "I am sorry", "I'm unable", "I am unable", "I won't",
                   "I will not", "As an AI", "not able to help", "can't help with", "cannot help with", "cannot assist",
                   "can't assist"]


class AssessSection(Section):
    data: Literal["prepared", "sources"] = "prepared"
    """Where the sample is drawn from. `prepared`: the prepared eval and train splits (prepare runs first when it has
    not; the sealed holdout is never read). `sources`: the rows of `data.sources` as read, validated and filtered by
    the quality policy, less the rows prepare would seal as holdout and their copies (nothing is written)."""
    examples: int = Field(200, ge=1)
    """Size of the sample, stratified by `data.stratify_by` when it is set; each example is answered greedily, with
    the evaluate stage's prompts, template, decoding and `max_new_tokens`."""
    samples: int = Field(5, ge=2, le=50)
    """Sampled answers per examined failure (k), to see whether it repeats."""
    consistency_examples: int = Field(40, ge=0)
    """At most this many failing examples (spread over the failures, seeded) get the k samples; this bounds the cost
    at k x this many generations. 0 skips the consistency check: the verdict then rests on accuracy and on the repeats
    across examples alone."""
    temperature: float = Field(0.7, gt=0, le=2)
    """Sampling temperature of the k samples."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling of the k samples (1: off)."""
    consistent_share: float = Field(0.8, gt=0.5, le=1)
    """A failure repeats across samples when at least this share of its k samples fail the same way as the greedy
    answer: the same category, field and wrong value."""
    min_pattern_share: float = Field(0.1, gt=0, le=1)
    """A failure repeats across examples when its pattern (category and field, with the wrong value, or the kind of
    vocabulary slip) accounts for at least this share of the sample's failures, and for two examples or more."""
    dont_finetune_above: float = Field(0.85, gt=0, le=1)
    """Verdict `don't fine-tune` when accuracy (the headline metric) is above this: fine-tuning is unlikely to close
    the rest of the gap; work on the prompt first."""
    systematic_share: float = Field(0.6, gt=0, le=1)
    """Otherwise the verdict is `fine-tune` when at least this share of the examined failures is systematic (repeats
    across samples and across examples), else `capability gap`."""
    refusal_phrases: list[str] = REFUSAL_PHRASES
    """A wrong answer that holds no JSON object and contains one of these (case ignored) is a refusal."""
    synonyms: dict[str, list[str]] = {}
    """Values that mean the same, so that a slip of wording counts as a vocabulary error, not a wrong answer:
    `{canonical: [other forms]}`, e.g. `{ct: [CT scan, computed tomography]}`. Case, spacing, punctuation and word
    order ("lung, left" for "left lung") are recognised without this."""
    model_size_b: float | None = Field(None, gt=0, le=10_000)
    """Parameters of the assessed model in billions, for the suggested training-set size; default: counted for a
    local model, else 7 (an endpoint's size is unknown; the report says it was assumed)."""
