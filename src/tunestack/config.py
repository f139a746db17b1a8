"""The one YAML config that drives a run: a pydantic v2 model with one section per stage.

Pure: no torch, no disk access beyond reading the YAML text you hand it. Every problem in a config is reported at
once with its YAML path (and line, where known), and an unknown key gets the nearest valid one as a suggestion.
"""

from __future__ import annotations

import difflib
import json
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
    liger: bool | Literal["auto"] = "auto"
    """Liger's fused Triton kernels for RMSNorm, SwiGLU and RoPE (GPU only; the `liger-kernel` package, extra
    `gpu`). `auto`: on when a CUDA GPU and the package are present. The loss is always TRL's chunked LM head (a fused
    Triton kernel on a GPU), which never builds the full logits."""
    compile: bool = False
    """torch.compile the model: faster steps on a GPU once a compile of a minute or more is paid; not for short runs
    or CPUs."""
    packing: bool | Literal["auto"] = "auto"
    """Pack short examples into rows of max_length, padding-free, kept apart by position ids (a test checks the
    loss equals unpacked training). `auto`: on with flash-attention 2, whose variable-length kernel attends within
    each example; off with eager/SDPA attention (CPU), where the packed batch needs a block mask over the whole
    batch that costs more than the padding it saves. The run reports its share of real tokens either way."""
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
    type: Literal["json_schema", "json", "regex", "function", "none"] = "json_schema"
    """How a task answer is checked for format: against a JSON Schema, as any JSON object, by a regular expression
    the whole stripped answer must match, by your own function, or not at all."""
    schema_path: str | None = None
    """The JSON Schema file, when type is json_schema."""
    pattern: str | None = None
    """The regular expression (Python syntax) the whole stripped answer must match, when type is regex."""
    function: str | None = None
    """`package.module:function` that takes the answer text and returns true when its format is right, when type
    is function."""

    @model_validator(mode="after")
    def _check_given(self) -> FormatSection:
        if self.type == "json_schema" and not self.schema_path:
            raise ValueError("type is 'json_schema' but schema_path is not set: set evaluate.format.schema_path")
        if self.type == "regex":
            if not self.pattern:
                raise ValueError("type is 'regex' but pattern is not set: set evaluate.format.pattern")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"evaluate.format.pattern {self.pattern!r} is not a valid regular expression "
                                 f"({exc})") from None
        if self.type == "function" and (not self.function or ":" not in self.function):
            raise ValueError("type is 'function' but function is not 'package.module:function': set "
                             "evaluate.format.function")
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


class EndpointSection(Section):
    base_url: str = "https://api.openai.com/v1"
    """OpenAI-compatible endpoint for `evaluate.backend: openai` (OpenAI, a vLLM or llama.cpp server, a proxy).
    `tunestack evaluate CONFIG --model URL` sets it from the command line."""
    model: str | None = None
    """The model's name at that endpoint; `--model NAME` sets it. Unset with a URL: the one model the server lists."""
    api: Literal["chat", "completions"] = "chat"
    """`chat`: the conversation's messages; the server applies its chat template (a served tunestack checkpoint
    carries ours). Chat gives no log-likelihoods, so quartz is skipped and retention rests on the probes.
    `completions`: the prompt rendered here with the run's tokenizer and chat template, sent as token ids (the
    local backend's ids); quartz is scored with `echo` and `logprobs`. Needs a server with the run's tokenizer
    (vLLM, llama.cpp)."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable that holds the API key (the key never goes in a file); null for a local server that
    needs none."""
    max_concurrency: int = Field(8, ge=1, le=256)
    """Requests in flight at once."""
    timeout_s: float = Field(120, gt=0)
    """Per-request timeout; a request that times out is retried."""
    max_retries: int = Field(5, ge=0, le=20)
    """Retries after HTTP 429 or 5xx, a connection error or a timeout: exponential backoff with jitter, or the
    wait the server's Retry-After asks for."""
    backoff_s: float = Field(1.0, ge=0)
    """The first retry waits about this long, each later one twice as long (at most 60 s)."""
    price_input_per_m: float | None = Field(None, ge=0)
    """US$ per million input tokens, for the cost in the results; unset: cost is not reported."""
    price_output_per_m: float | None = Field(None, ge=0)
    """US$ per million output tokens."""
    cache: bool = True
    """Cache answers on disk under a hash of (base_url, model, prompt, decoding), so a re-run pays for nothing.
    Turn it off when a different model is served under the same URL and name."""
    cache_dir: str | None = None
    """Answer cache folder; default: `endpoint/` in the tunestack cache (`$TUNESTACK_CACHE`, `~/.cache/tunestack`)."""

    @model_validator(mode="after")
    def _prices_paired(self) -> EndpointSection:
        if (self.price_input_per_m is None) != (self.price_output_per_m is None):
            raise ValueError("set both evaluate.endpoint.price_input_per_m and price_output_per_m, or neither")
        return self


RESERVED_KEYS = ("task_accuracy", "format_compliance", "general_retention", "judge_score")
"""Result names that are not task metrics' keys: the headline, the format check, retention and the judge."""


class MetricSpec(Section):
    name: str = Field(min_length=1)
    """A built-in (`exact_match`, `field_accuracy`, `regex`, `contains`, `numeric`, `choice`), a name a plugin
    registered or declared as an entry point of the group `tunestack.metrics`, or your own function as
    `package.module:function`."""
    key: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Name of the result in reports, results.json and `select.weights`; default: the metric's name (for a module
    path, the function's)."""
    higher_is_better: bool | None = None
    """Direction, for a function that does not declare one (selection needs it). A built-in's is fixed."""
    params: dict[str, Any] = {}
    """Keyword arguments of the metric: `regex` {pattern, ignore_case}, `contains` {ignore_case, separator},
    `numeric` {abs_tol, rel_tol}, `choice` {labels}; your function's own."""

    @property
    def result_key(self) -> str:
        return self.key or self.name.rpartition(":")[2].rpartition(".")[2]


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
    metrics: list[MetricSpec] = ["exact_match", "field_accuracy"]  # type: ignore[assignment]
    """Task metrics: names, or `{name, key, higher_is_better, params}`. The first is the headline `task_accuracy`
    (with a Wilson 95% interval when it scores each answer 0 or 1)."""
    format: FormatSection = FormatSection(type="json")
    """Format-compliance check for task answers."""
    retention: RetentionSection = RetentionSection()
    """General-capability retention suites."""
    backend: Literal["local", "vllm", "openai"] = "local"
    """How models are run; every backend gets the same prompts and greedy decoding. `local`: transformers, batched,
    sorted by length, KV cache. `vllm`: a vLLM engine (the `vllm` package, a GPU); each checkpoint is merged and
    loaded in turn. `openai`: `tunestack evaluate CONFIG --model NAME` evaluates model NAME at
    `evaluate.endpoint`; the run's own base model and checkpoints are folders, and are run locally."""
    endpoint: EndpointSection = EndpointSection()
    """The OpenAI-compatible endpoint (`backend: openai`, or `tunestack evaluate --model URL`)."""

    @field_validator("metrics", mode="before")
    @classmethod
    def _names_are_specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _metric_keys_unique(self) -> EvaluateSection:
        keys = [spec.result_key for spec in self.metrics]
        if not keys:
            raise ValueError("evaluate.metrics is empty: list at least one metric, e.g. [exact_match]")
        clashes = sorted({k for k in keys if keys.count(k) > 1 or k in RESERVED_KEYS})
        if clashes:
            raise ValueError(f"evaluate.metrics report more than once, or under a reserved name, as {clashes}: set "
                             f"a distinct `key` on each (reserved: {', '.join(RESERVED_KEYS)})")
        return self


class SelectSection(Section):
    weights: dict[str, float] = {
        "task_accuracy": 0.4,
        "field_accuracy": 0.2,
        "format_compliance": 0.2,
        "general_retention": 0.2,
    }
    """Weights of the combined score: `task_accuracy` (the first of `evaluate.metrics`), any metric's key,
    `format_compliance`, `general_retention`. A lower-is-better metric counts with a minus sign. Left at this
    default, the `field_accuracy` weight is dropped when that metric is not measured."""
    min_retention: float = Field(0.95, ge=0, le=1.5)
    """Hard constraint: general retention (share of the base model's score) at least this; below it a checkpoint
    is flagged as forgetting and cannot be chosen. (Format compliance must reach the base model's, always.)"""
    judge_weight: float = Field(0.2, ge=0)
    """Weight of the LLM judge's task score (its 1-5 rubric scaled to [0, 1]) in the combined score. It counts only
    when every evaluated model has a judge score and `tunestack judge calibrate` showed this judge clears
    `judge.agreement_threshold`; otherwise the selection records why it did not count."""

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


REFUSAL_PHRASES = ["I can't", "I cannot", "I'm sorry", "I am sorry", "I'm unable", "I am unable", "I won't",
                   "I will not", "As an AI", "not able to help", "can't help with", "cannot help with", "cannot assist",
                   "can't assist"]


class AssessSection(Section):
    data: Literal["prepared", "sources"] = "prepared"
    """Where the sample is drawn from. `prepared`: the prepared eval and train splits (prepare runs first when it has
    not; the sealed holdout is never read). `sources`: the rows of `data.sources` as read, validated and filtered by
    the quality policy, before duplicates are removed or splits made (no tokenizer needed, nothing prepared)."""
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


class Config(Section):
    """A tunestack run: one section per stage."""

    run: RunSection = RunSection()
    """Run name, seed, where artifacts go."""
    model: ModelSection = ModelSection()
    """The base model."""
    data: DataSection
    """Input data and splits (stage `prepare`)."""
    assess: AssessSection = AssessSection()
    """Whether fine-tuning is worth it: the base model (or any model) on a sample of the task, its failures sorted
    and checked for repeats, and a verdict (command `assess`)."""
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

    @model_validator(mode="after")
    def _weights_name_metrics(self) -> Config:
        if "weights" not in self.select.model_fields_set:
            return self
        known = ["task_accuracy", *(spec.result_key for spec in self.evaluate.metrics), "format_compliance",
                 "general_retention"]
        problems = []
        for key in self.select.weights:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                problems.append(f"select.weights.{key} is not a measured metric.{hint} Known: {', '.join(known)} "
                                "(the judge has select.judge_weight)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


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
