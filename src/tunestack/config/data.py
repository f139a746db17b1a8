"""Config of the `prepare` stage: sources, quality tiers, splits, lengths, decontamination."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from tunestack.config.base import Section


TIER = Literal["synthetic", "human", "production", "unspecified"]


class SourceSection(Section):
    path: str
    """A JSONL, CSV/TSV or Parquet file, or a folder written by `datasets`' `save_to_disk`."""
    name: str | None = None
    """Name in reports and the manifest; default: the file name."""
    format: Literal["auto", "chat", "alpaca", "prompt_completion", "preference"] = "auto"
    """Row shape: chat (`messages`), alpaca (`instruction`/`input`/`output`), `prompt`/`completion`, or preference
    pairs (`prompt`/`chosen`/`rejected`). `auto` detects it per row; a declared format rejects rows of another."""
    columns: dict[str, str] = {}
    """Column mapping, our name: yours, e.g. `{prompt: question, completion: answer, rating: score}`. Our names:
    messages, system, prompt, completion, instruction, input, output, chosen, rejected, source, reviewed, rating,
    tags, and any field named in `stratify_by`."""
    weight: float = Field(1.0, gt=0, le=100)
    """How much this source counts in training: its training rows are repeated (weight > 1) or subsampled
    (weight < 1), deterministically. Eval and holdout are drawn before weighting."""
    provenance: Literal["synthetic", "human", "production"] | None = None
    """Provenance (`source` tier) of rows that do not state their own."""
    split: str = "train"
    """The split to read from a `datasets` folder holding several."""
    kind: Literal["text", "code"] = "text"
    """`code`: every turn is code to the identity rule (case, quotes, punctuation and each line's indentation count,
    as they do inside ``` fences in any source). Use it for code without fences, above all whitespace-sensitive code.
    When every source is code, given eval and holdout files and synth's candidates are read as code too."""
    max_removed_share: float | None = Field(None, ge=0, le=1)
    """This source's own `data.max_removed_share` (e.g. production logs that are mostly unrated by design)."""


class QualitySection(Section):
    production_min_rating: float = 4
    """Production-log rows (`source: production`) are kept only when `reviewed` is true or their `rating` reaches
    this; the rest go to rejects with kind `quality`."""
    tier_caps: dict[TIER, int] = {}
    """Optional most rows kept per tier, e.g. `{synthetic: 2000}`; rows beyond a cap (in read order) go to rejects
    with kind `tier_cap`."""

    @model_validator(mode="after")
    def _caps_positive(self) -> QualitySection:
        if any(cap < 1 for cap in self.tier_caps.values()):
            raise ValueError("tier_caps must be positive counts")
        return self


class DataSection(Section):
    path: str | None = None
    """Shorthand for one source: `path: file.jsonl` is `sources: [{path: file.jsonl}]`."""
    sources: list[SourceSection] = []
    """Input sources, each with its own format, column mapping, weight and provenance."""
    eval_path: str | None = None
    """Use this file as the eval set instead of splitting one off (same formats as a source)."""
    holdout_path: str | None = None
    """Use this file as the sealed holdout instead of splitting one off."""
    eval_size: float = Field(100, gt=0)
    """Rows held out for evaluation: a count, or a fraction of the rows when below 1."""
    holdout_size: float = Field(50, ge=0)
    """Rows sealed for final validation: a count, or a fraction when below 1."""
    stratify_by: str | None = None
    """Split eval and holdout in proportion to this row field's values (e.g. `category`); `answer.<key>` reads a
    key of a JSON answer."""
    max_rows: int | None = Field(None, ge=1)
    """Read at most this many rows per source (for quick trials)."""
    max_length: int = Field(512, ge=16)
    """Longest conversation in tokens under the model's chat template."""
    too_long: Literal["reject", "truncate", "fail"] = "reject"
    """Rows over max_length: sent to rejects, truncated (earlier turns dropped, then the prompt shortened in the
    middle; the answer and its EOS are never cut), or the stage fails listing them."""
    max_reject_rate: float = Field(0.1, ge=0, le=1)
    """Fail the stage when a source has a larger share of malformed rows. This alone governs malformed rows:
    `max_removed_share` does not count them, and quality, length and tier-cap rejects are not counted here."""
    strict: bool = False
    """Mixed system prompts or mixed answer formats (JSON beside prose) fail the stage instead of warning."""
    mixed_share: float = Field(0.0, ge=0, lt=0.5)
    """A minority system prompt or answer format below this share of rows is not reported (0: report any mix)."""
    quality: QualitySection = QualitySection()
    """Provenance and quality-tier policy."""
    filler_words: list[str] = []
    """Words, beside the built-in filler (articles, greetings, politeness: see docs/prepare.md), whose presence or absence
    does not make two rows different. Near duplicates differ only in case, spacing, sentence punctuation, filler words
    or the order of their sentences. Prepare lists rows that differ only by other frequent words (`near_copies.jsonl`)
    and prints the setting that adds those words here."""
    conflicts: Literal["keep_first", "majority", "drop"] = "majority"
    """Rows with the same prompt and different answers: keep the first, keep the answer most rows give (duplicates
    counted; a tie goes to the answer seen first), or drop the whole group. Listed in `duplicates.jsonl`."""
    decontamination_ngram: int = Field(13, ge=5)
    """A training row sharing a distinctive word n-gram of this length (one holding a rare word) with an eval or
    holdout row is removed as a leak; so is one with the same prompt."""
    decontamination_rare_df: int | None = Field(None, ge=1)
    """A word is rare, and an n-gram holding it distinctive, when at most this many rows of the corpus (training,
    eval and holdout) hold it; default max(2, 0.1% of the rows)."""
    max_removed_share: float = Field(0.3, ge=0, le=1)
    """Fail the stage (after writing every file) when quality, length and tier-cap rejects, duplicates, conflicting
    labels and leaks together remove more than this share of a source's well-formed rows, with a summary of why.
    Malformed rows are not counted: `max_reject_rate` governs them. A source can set its own."""
    min_train_rows: int = Field(16, ge=1)
    """Stop prepare when fewer training rows are left than this, or than one optimizer step takes
    (`train.micro_batch_size` x `train.grad_accum`)."""
    decontaminate_general: bool = True
    """Also remove training rows (and general-mix rows) that overlap the general-capability eval suites."""
    eval_max_age_days: int = Field(90, ge=1)
    """Warn that the eval set should be rotated once it is older than this."""
    eval_created: date | None = None
    """When the eval set was made; default: the eval file's date, or when this run first saw this eval set."""
    ledger: str = "beside_data"
    """Where reads of the sealed holdout and selections against the eval set are recorded, by the content hash of
    the rows, for every run that uses them: `beside_data` (`tunestack-ledger.jsonl` in the folder of the first
    source), `cache` (the tunestack cache, `$TUNESTACK_CACHE` or `~/.cache/tunestack`, shared by every project on
    the machine), or a folder. A new run name does not unseal the holdout."""

    @model_validator(mode="after")
    def _one_way_to_name_sources(self) -> DataSection:
        if self.path and self.sources:
            raise ValueError("give data.path or data.sources, not both")
        if not self.path and not self.sources:
            raise ValueError("no input data: set data.path, or data.sources with at least one path")
        names = [name for name, _ in self.named_sources()]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}: set `name` on each source")
        return self

    def named_sources(self) -> list[tuple[str, SourceSection]]:
        """(name, source) for every input, `path` shorthand included."""
        sources = [SourceSection(path=self.path)] if self.path else self.sources
        return [(s.name or Path(s.path).name, s) for s in sources]

    def all_code(self) -> bool:
        """Every source is `kind: code`: then rows that come from no source (given eval and holdout files, synth's
        candidates) are read as code too, so that a copy of one is found whatever file it is in."""
        sources = [source for _, source in self.named_sources()]
        return bool(sources) and all(source.kind == "code" for source in sources)
