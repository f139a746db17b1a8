"""The one YAML config that drives a run: a pydantic v2 model with one section per stage.

Pure: no torch, no disk access beyond reading the YAML text you hand it. Every problem in a config is reported at
once with its YAML path (and line, where known), and an unknown key gets the nearest valid one as a suggestion.
"""

from __future__ import annotations

import difflib
import json
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tunestack.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)


class RunSection(Section):
    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]+$")
    """Run name: every artifact goes to `<runs_dir>/<name>/`."""
    runs_dir: str = "runs"
    """Folder that holds run directories."""
    seed: int = 0
    """Seed for splits, data order, LoRA init and anything else random."""
    threads: int | None = Field(None, ge=1)
    """CPU threads for torch; default: every core."""


class ModelSection(Section):
    name: str = "smollm2-135m-instruct"
    """Built-in name (`smollm2-135m-instruct`), a local model folder, or a Hugging Face id already in the local cache
    (nothing is downloaded)."""


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
    """Fail the stage when a source has a larger share of malformed rows (quality and length rejects not counted)."""
    strict: bool = False
    """Mixed system prompts or mixed answer formats (JSON beside prose) fail the stage instead of warning."""
    mixed_share: float = Field(0.0, ge=0, lt=0.5)
    """A minority system prompt or answer format below this share of rows is not reported (0: report any mix)."""
    quality: QualitySection = QualitySection()
    """Provenance and quality-tier policy."""
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1)
    """Jaccard similarity (word 3-grams of the whole example) at which two rows with agreeing answers are near
    duplicates; the first is kept. Short answers must be equal, so template rows teaching different answers stay."""
    decontamination_ngram: int = Field(13, ge=5)
    """A training row sharing a word n-gram of this length with an eval or holdout row is removed as a leak."""
    decontaminate_general: bool = True
    """Also remove training rows (and general-mix rows) that overlap the general-capability eval suites."""
    eval_max_age_days: int = Field(90, ge=1)
    """Warn that the eval set should be rotated once it is older than this."""
    eval_created: date | None = None
    """When the eval set was made; default: the eval file's date, or when this run first saw this eval set."""

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


class GeneralMixSection(Section):
    share: float = Field(0.12, ge=0, lt=0.5)
    """Share of general-capability examples in the training set, against catastrophic forgetting (10-15% advised)."""
    source: Literal["self_replay", "file"] = "self_replay"
    """`self_replay`: the base model's own greedy answers to built-in general prompts (disjoint from the retention
    probes); `file`: chat JSONL given in `path`."""
    path: str | None = None
    """Chat JSONL of general examples, when `source: file`."""
    max_new_tokens: int = Field(96, ge=8)
    """Longest self-replay answer; answers that do not end with EOS within it are discarded."""

    @model_validator(mode="after")
    def _path_matches_source(self) -> GeneralMixSection:
        if self.source == "file" and not self.path:
            raise ValueError("source is 'file' but no path is set: set train.general_mix.path, or use self_replay")
        return self


class LoraSection(Section):
    r: int = Field(16, ge=1)
    """LoRA rank."""
    alpha: float = Field(32, gt=0)
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the LoRA input."""
    target_modules: str | list[str] = "all-linear"
    """Modules to adapt: `all-linear` or a list of module names such as [q_proj, v_proj]."""


class DpoSection(Section):
    beta: float = Field(0.1, gt=0)
    """Strength of the pull towards the reference model (higher: stay closer to it)."""
    loss_type: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    """DPO loss: `sigmoid` (the original), `ipo` or `hinge`."""


class DistributedSection(Section):
    strategy: Literal["ddp", "fsdp", "deepspeed"] = "ddp"
    """How the processes of `tunestack train --nproc N` share the work: `ddp` (each holds the whole model), `fsdp`
    (weights, gradients and optimizer state sharded across processes; FSDP2, decoder-layer wrapping) or `deepspeed`
    (ZeRO, GPUs only; needs the deepspeed package). One process ignores it."""
    zero_stage: Literal[1, 2, 3] = 2
    """DeepSpeed ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also weights."""
    offload: bool = False
    """Keep optimizer state (and, with FSDP or ZeRO-3, parameters) in CPU memory: slower, fits larger models."""


class TrainSection(Section):
    method: Literal["lora", "qlora", "full", "dpo"] = "lora"
    """`lora`; `qlora` (4-bit NF4 base with double quantization, bitsandbytes, CPU too); `full` (every weight);
    `dpo` (preference pairs, on a LoRA adapter whose reference is the model with the adapter off)."""
    init_from: str | None = None
    """Start from this checkpoint folder (e.g. an SFT run's `train/checkpoints/step-000045`): it is merged into the
    base first. This is the SFT -> DPO workflow."""
    epochs: float = Field(2, gt=0)
    """Passes over the training set (ignored when max_steps is set)."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps."""
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    """Peak learning rate."""
    scheduler: Literal["cosine", "linear"] = "cosine"
    """Decay after warm-up."""
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    """Share of steps spent warming up."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    micro_batch_size: int = Field(8, ge=1)
    """Examples per forward pass."""
    grad_accum: int = Field(1, ge=1)
    """Micro-batches per optimizer step."""
    save_steps: int | None = Field(None, ge=1)
    """Save (and later evaluate) a checkpoint every this many steps; default: `num_checkpoints` evenly spaced."""
    save_every_epochs: float | None = Field(None, gt=0)
    """Save a checkpoint every this fraction of an epoch (e.g. 0.25), instead of save_steps."""
    num_checkpoints: int = Field(3, ge=1)
    """How many evenly spaced checkpoints to keep when save_steps is not set (the last step is always saved)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~30% slower (TRL turns it on by default)."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """`auto`: bf16 where the hardware supports it (CUDA with bf16, or a CPU with AMX/AVX512-BF16), else fp32."""
    attention: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
    """Attention kernel while training. `auto`: `eager` on a CPU (for short rows the plain matmul path is faster
    than PyTorch's CPU flash-attention backward, measured in bench/train_throughput.py), else `flash_attention_2`
    when the flash-attn package is installed, else `sdpa`."""
    packing: bool = False
    """Pack short examples into rows of max_length, padding-free, kept apart by position ids. Correct (a test
    compares losses), but on a CPU the flattened batch's block mask currently costs more than padding saves."""
    memory_check: bool = True
    """Estimate peak memory before loading weights and refuse a run that cannot fit, with advice."""
    evaluate_checkpoints: bool = True
    """Evaluate each checkpoint as soon as it is saved, so `evaluate/progress.md` grows while training runs; the
    evaluate stage then reuses these results. Needs room for one more copy of the model. One process only: with
    `--nproc` the evaluate stage does it after training."""
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = []
    """Extra metric loggers; metrics always go to `train/metrics.jsonl`."""
    lora: LoraSection = LoraSection()
    """LoRA adapter settings (lora, qlora and dpo)."""
    distributed: DistributedSection = DistributedSection()
    """Multi-process training (`--nproc`): DDP, FSDP or DeepSpeed ZeRO."""
    dpo: DpoSection = DpoSection()
    """DPO settings (method dpo)."""
    general_mix: GeneralMixSection = GeneralMixSection()
    """General-capability examples mixed into training."""

    @model_validator(mode="after")
    def _one_save_rule(self) -> TrainSection:
        if self.save_steps and self.save_every_epochs:
            raise ValueError("set train.save_steps or train.save_every_epochs, not both")
        return self


class FormatSection(Section):
    type: Literal["json_schema", "json", "none"] = "json_schema"
    """How a task answer is checked for format: against a JSON Schema, as any JSON object, or not at all."""
    schema_path: str | None = None
    """The JSON Schema file, when type is json_schema."""

    @model_validator(mode="after")
    def _schema_given(self) -> FormatSection:
        if self.type == "json_schema" and not self.schema_path:
            raise ValueError("type is 'json_schema' but schema_path is not set: set evaluate.format.schema_path")
        return self


class RetentionSection(Section):
    quartz_examples: int = Field(200, ge=0)
    """Two-choice science questions (quartz, shipped in the `evals` package) scored by log-likelihood; 0 skips."""
    probes: str = "builtin"
    """Generative general probes with reference answers: `builtin` or a JSONL path."""
    max_probes: int | None = Field(None, ge=1)
    """Use at most this many probes."""
    probe_max_new_tokens: int = Field(32, ge=1)
    """Greedy generation length for each probe answer (the reference usually comes early)."""
    probe_weight: float = Field(0.5, ge=0, le=1)
    """Weight of the generative probes in general retention; the rest goes to quartz."""


class EvaluateSection(Section):
    max_examples: int | None = Field(None, ge=1)
    """Evaluate on at most this many eval rows."""
    batch_size: int = Field(32, ge=1)
    """Prompts per generation batch."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """Evaluation dtype. `auto`: bf16 where the hardware supports it (about 2x faster generation on a CPU with AMX),
    else fp32. The base model and every checkpoint are evaluated in the same precision."""
    max_new_tokens: int = Field(96, ge=1)
    """Greedy generation length limit for task answers."""
    format: FormatSection = FormatSection(type="json")
    """Format-compliance check for task answers."""
    retention: RetentionSection = RetentionSection()
    """General-capability retention suites."""


METRICS = ("task_accuracy", "field_accuracy", "format_compliance", "general_retention")


class SelectSection(Section):
    weights: dict[Literal["task_accuracy", "field_accuracy", "format_compliance", "general_retention"], float] = {
        "task_accuracy": 0.4,
        "field_accuracy": 0.2,
        "format_compliance": 0.2,
        "general_retention": 0.2,
    }
    """Weights of the combined score (all metrics are higher-is-better, in [0, 1])."""
    min_retention: float = Field(0.95, ge=0, le=1.5)
    """Floor on general retention (share of the base model's); checkpoints below it cannot be chosen."""

    @model_validator(mode="after")
    def _weights_positive(self) -> SelectSection:
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("weights must be non-negative and not all zero")
        return self


class ExportSection(Section):
    enabled: bool = True
    """Merge the chosen checkpoint into a standalone model folder."""
    verify: bool = True
    """Check that the merged model's greedy outputs on the eval set equal the adapter's."""


class JudgeSection(Section):
    enabled: bool = False
    """Score answers with an LLM judge too (rubrics `correctness` and `quality`, 1-5). Its scores count in selection
    only once `tunestack judge calibrate` shows its agreement with human scores clears `agreement_threshold`."""
    base_url: str = "https://api.openai.com/v1"
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, a llama.cpp server, a proxy)."""
    model: str | None = None
    """The judge model's name at that endpoint."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable that holds the API key (the key itself never goes in a file); null for a local server
    that needs none."""
    max_concurrency: int = Field(8, ge=1, le=256)
    """Requests in flight at once."""
    timeout_s: float = Field(60, gt=0)
    """Per-request timeout; a request that times out is retried."""
    max_retries: int = Field(5, ge=0, le=20)
    """Retries of one request after HTTP 429 or 5xx, a connection error or a timeout: exponential backoff with jitter,
    or the wait the server's Retry-After asks for."""
    backoff_s: float = Field(1.0, ge=0)
    """The first retry waits about this long, each later one twice as long (at most 60 s)."""
    max_tokens: int = Field(256, ge=16)
    """Longest judge reply (it is asked for one line of JSON); decoding is greedy, temperature 0."""
    price_input_per_m: float | None = Field(None, ge=0)
    """US$ per million input tokens, for the cost report; unset: cost is not reported."""
    price_output_per_m: float | None = Field(None, ge=0)
    """US$ per million output tokens."""
    agreement_metric: Literal["spearman", "kendall", "pearson", "kappa"] = "spearman"
    """The judge-human agreement statistic that decides whether the judge counts (kappa: quadratic-weighted)."""
    agreement_threshold: float = Field(0.6, ge=-1, le=1)
    """The judge counts in selection only when its agreement reaches this."""
    agreement_on: Literal["lower_bound", "estimate"] = "lower_bound"
    """Compare the threshold with the lower bound of the agreement's bootstrap 95% interval (agreement shown, not
    just likely), or with the point estimate."""
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)
    """Bootstrap resamples for the 95% intervals (seeded with `run.seed`)."""
    cache: bool = True
    """Cache responses on disk, keyed by a content hash of (base_url, model, messages, decoding parameters), so no
    request is paid for twice."""
    cache_dir: str | None = None
    """Response cache folder; default: `judge/` in the tunestack cache (`$TUNESTACK_CACHE`, `~/.cache/tunestack`)."""

    @model_validator(mode="after")
    def _model_and_prices(self) -> JudgeSection:
        if self.enabled and not self.model:
            raise ValueError("enabled is true but model is not set: set judge.model to the judge's model name")
        if (self.price_input_per_m is None) != (self.price_output_per_m is None):
            raise ValueError("set both judge.price_input_per_m and judge.price_output_per_m, or neither")
        return self


class CostTrainingSection(Section):
    gpu: str = "a100"
    """GPU the fine-tune runs on: a name in the default table (a100, h100, h200, a10g, l4, t4) or in `cost.gpus`.
    A run's measured time is priced at this GPU's rate, so name the hardware the run used."""
    num_gpus: int = Field(1, ge=1, le=100_000)
    """GPUs per run; unset: the run's process count (`train --nproc`), else 1."""
    model_size_b: float = Field(7, gt=0, le=2000)
    """Parameters of the model in billions; the table's throughputs (for 7B) are scaled by it when nothing was
    measured."""
    tokens: int | None = Field(None, gt=0, le=10**13)
    """Tokens trained per run; default: the run's `tokens_seen`, else examples x tokens_per_example x
    `train.epochs` (or `train.max_steps` x batch), plus the general mix."""
    examples: int | None = Field(None, ge=1, le=10**10)
    """Task examples per epoch, for the estimate when no run exists; default: the prepare manifest's training rows."""
    tokens_per_example: float | None = Field(None, gt=0, le=10**7)
    """Mean tokens per example (prompt and answer), for the estimate; default: the prepare manifest's mean."""
    tokens_per_second: float | None = Field(None, gt=0, le=10**7)
    """Training throughput of a run (all its GPUs); default: the run's measured `tokens_per_second`, else the table's
    figure for the GPU scaled to model_size_b and `train.method`."""
    experiments: int = Field(8, ge=1, le=1000)
    """Runs it takes to get one fine-tune that works (usually 5-10): a successful fine-tune costs this many runs."""


class CostEvaluationSection(Section):
    overhead: float = Field(0.15, ge=0, le=1)
    """Evaluation compute as a share of training compute (usually 10-20%). Used when the run has no measured
    evaluation time, or when set here."""


class CostServingSection(Section):
    gpu: str = "a10g"
    """GPU one serving replica runs on: a name in the default table or in `cost.gpus`."""
    quantization: Literal["awq", "none"] = "awq"
    """`awq`: 4-bit AWQ weights; `none`: 16-bit weights, which need more hardware for the same traffic."""
    throughput_awq: float | None = Field(None, gt=0, le=10**8)
    """Tokens per second (prompt and generated) one replica sustains with AWQ; default: the table's figure for the
    GPU, scaled to `cost.training.model_size_b`."""
    throughput_without_awq: float | None = Field(None, gt=0, le=10**8)
    """The same without AWQ; default: throughput_awq / 1.4 (serving without AWQ costs 30-50% more)."""
    replicas: int = Field(1, ge=1, le=100_000)
    """Replicas always on, at least; more are costed when the busiest hour needs them."""
    peak_to_average: float = Field(2.0, ge=1, le=100)
    """Busiest-hour traffic over the monthly average, for sizing replicas."""
    hours_per_month: float = Field(730, gt=0, le=744)
    """Hours a replica runs each month (730: always on)."""


class CostApiSection(Section):
    name: str = "api"
    """The API model being replaced, for the report (e.g. `gpt-4o`)."""
    input_per_million: float | None = Field(None, gt=0, le=10_000)
    """US$ per million input tokens."""
    output_per_million: float | None = Field(None, gt=0, le=10_000)
    """US$ per million output tokens."""
    monthly_requests: float | None = Field(None, gt=0, le=10**13)
    """Requests sent to the API each month: the traffic the fine-tuned model would serve."""
    input_tokens_per_request: float | None = Field(None, gt=0, le=10**7)
    """Mean input (prompt) tokens per request."""
    output_tokens_per_request: float | None = Field(None, gt=0, le=10**7)
    """Mean output tokens per request."""

    @model_validator(mode="after")
    def _all_or_none(self) -> CostApiSection:
        keys = ("input_per_million", "output_per_million", "monthly_requests", "input_tokens_per_request",
                "output_tokens_per_request")
        missing = [k for k in keys if getattr(self, k) is None]
        if 0 < len(missing) < len(keys):
            raise ValueError("the API comparison needs prices and volume: set "
                             + ", ".join(f"cost.api.{k}" for k in missing) + " (or none of cost.api)")
        return self


class CostSection(Section):
    gpus: dict[str, float] = {}
    """US$ per GPU-hour by GPU name, replacing the default table's price or adding a GPU, e.g.
    `{a100: 3.2, rtx4090: 0.7}`."""
    other_one_time: float = Field(0, ge=0, le=10**9)
    """One-time costs of the fine-tune besides GPU time, US$: labelling, review, engineering."""
    horizon_months: int = Field(12, ge=1, le=120)
    """Months in the plot, and the window in which the payback volume repays the investment."""
    training: CostTrainingSection = CostTrainingSection()
    """Training runs and what they cost."""
    evaluation: CostEvaluationSection = CostEvaluationSection()
    """Evaluation cost, when the run did not measure it."""
    serving: CostServingSection = CostServingSection()
    """Serving the fine-tuned model."""
    api: CostApiSection = CostApiSection()
    """The API being replaced: prices and monthly volume."""

    @model_validator(mode="after")
    def _gpus_known_and_priced(self) -> CostSection:
        from tunestack.cost.prices import GPUS  # pure: the default table

        problems = [f"cost.gpus.{name} = {price:g} $/h is not a price per GPU-hour: set it above 0 and at most 1000"
                    for name, price in self.gpus.items() if not 0 < price <= 1000]
        known = sorted({*GPUS, *self.gpus})
        for where, name in (("cost.training.gpu", self.training.gpu), ("cost.serving.gpu", self.serving.gpu)):
            if name not in known:
                close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.5)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                problems.append(f"{where} '{name}' has no price.{hint} Known: {', '.join(known)}; or add its price "
                                f"under cost.gpus, e.g. cost.gpus.{name}=2.5")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Config(Section):
    """A tunestack run: one section per stage."""

    run: RunSection = RunSection()
    """Run name, seed, where artifacts go."""
    model: ModelSection = ModelSection()
    """The base model."""
    data: DataSection
    """Input data and splits (stage `prepare`)."""
    train: TrainSection = TrainSection()
    """Fine-tuning (stage `train`)."""
    evaluate: EvaluateSection = EvaluateSection()
    """Evaluation of the base model and every checkpoint (stage `evaluate`)."""
    select: SelectSection = SelectSection()
    """Checkpoint selection (stage `select`)."""
    export: ExportSection = ExportSection()
    """Merged model export (stage `export`)."""
    judge: JudgeSection = JudgeSection()
    """LLM-as-judge on an OpenAI-compatible endpoint, and its calibration against human scores (`judge calibrate`)."""
    cost: CostSection = CostSection()
    """Cost of training, evaluation and serving against the API being replaced (command `cost`)."""


# ---------------------------------------------------------------------------------------------------------------
# Loading, overrides and error reporting


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """Parse `a.b.c=value` strings; values are read as YAML scalars/lists.

    >>> parse_overrides(["train.learning_rate=1e-4", "run.name=x"])
    [(['train', 'learning_rate'], 0.0001), (['run', 'name'], 'x')]
    """
    parsed, problems = [], []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(("", f"override '{item}' is not of the form section.key=value"))
            continue
        value = yaml.safe_load(raw) if raw.strip() else ""
        if isinstance(value, str) and _looks_like_float(value):
            value = float(value)  # YAML 1.1 reads '1e-4' as a string
        parsed.append((key.split("."), value))
    if problems:
        raise ConfigError(problems)
    return parsed


def _looks_like_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return any(c in text.lower() for c in ".e") and text.lower() not in {"nan", "inf", "-inf"}


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for path, value in parse_overrides(overrides):
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, override and validate a YAML config; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read config file: {exc.strerror}")], source=str(path)) from None
    return parse_config(text, overrides or [], source=str(path))


def parse_config(text: str, overrides: list[str], source: str = "<config>") -> Config:
    try:
        raw = yaml.safe_load(text) or {}
        lines = _line_index(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise ConfigError([(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")], source=source) from None
    if not isinstance(raw, dict):
        raise ConfigError([("", "the top level must be a mapping of sections (run, model, data, ...)")], source)
    raw = apply_overrides(raw, overrides)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, lines), source=source) from None


def describe_errors(exc: ValidationError, lines: dict[tuple, int] | None = None) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        path = ".".join(loc)
        line = (lines or {}).get(loc)
        where = f"{path} (line {line})" if line else path
        problems.append((where, _message(err, loc)))
    return problems


def _message(err: dict, loc: tuple[str, ...]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"unknown key '{loc[-1]}'.{hint} Valid keys here: {', '.join(valid)}"
    if kind == "missing":
        return "required, but not set"
    if kind in {"literal_error", "enum"}:
        allowed = err.get("ctx", {}).get("expected", "")
        close = difflib.get_close_matches(str(err.get("input")), _literal_options(allowed), n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"got {err.get('input')!r}, expected {allowed}.{hint}"
    message = err["msg"].removeprefix("Value error, ")
    if "input" in err and kind != "value_error" and not isinstance(err["input"], dict):
        message += f" (got {err['input']!r})"
    return message


def _literal_options(expected: str) -> list[str]:
    return [part.strip(" '\"") for part in expected.replace(" or ", ",").split(",") if part.strip()]


def _fields_at(loc: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _line_index(text: str) -> dict[tuple, int]:
    """Map each YAML key path to its 1-based line number."""
    index: dict[tuple, int] = {}

    def walk(node, prefix):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = (*prefix, str(key.value))
                index[path] = key.start_mark.line + 1
                walk(value, path)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index[(*prefix, str(i))] = item.start_mark.line + 1
                walk(item, (*prefix, str(i)))

    walk(yaml.compose(text), ())
    return index


def config_to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def json_schema() -> str:
    return json.dumps(Config.model_json_schema(), indent=2)


def reference_markdown() -> str:
    """The config reference for the README, generated from the schema (field, type, default, description)."""
    out = []

    def section(model: type[BaseModel], prefix: str):
        rows = []
        nested = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((f"{prefix}{name}", annotation, field.description))
                continue
            item = _list_item_model(annotation)
            if item is not None:  # a list of sections: documented once, as `name[]`
                nested.append((f"{prefix}{name}[]", item, field.description))
            default = "required" if field.is_required() else f"`{json.dumps(field.default)}`"
            kind = _type_name(annotation)
            doc = (field.description or "").replace("\n", " ")
            rows.append(f"| `{prefix}{name}` | {kind} | {default} | {doc} |")
        if rows:
            out.append(f"\n### `{prefix.rstrip('.') or 'root'}`\n")
            out.append("| key | type | default | meaning |\n|---|---|---|---|")
            out.extend(rows)
        for path, sub, _ in nested:
            section(sub, path + ".")

    section(Config, "")
    return "\n".join(out).lstrip() + "\n"


REFERENCE_START, REFERENCE_END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def write_reference(path: Path) -> None:
    """Replace the text between the reference markers in a markdown file with the current reference."""
    text = Path(path).read_text(encoding="utf-8")
    if REFERENCE_START not in text or REFERENCE_END not in text:
        raise ConfigError([("", f"{path} has no {REFERENCE_START} ... {REFERENCE_END} markers")])
    head, rest = text.split(REFERENCE_START, 1)
    _, tail = rest.split(REFERENCE_END, 1)
    Path(path).write_text(f"{head}{REFERENCE_START}\n{reference_markdown()}{REFERENCE_END}{tail}", encoding="utf-8")


def _list_item_model(annotation) -> type[BaseModel] | None:
    args = getattr(annotation, "__args__", ())
    if getattr(annotation, "__origin__", None) is list and args and isinstance(args[0], type) \
            and issubclass(args[0], BaseModel):
        return args[0]
    return None


def _type_name(annotation) -> str:
    text = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
    text = text.replace("tunestack.config.", "").replace("datetime.date", "date (YYYY-MM-DD)")
    return text.replace("|", "\\|")
