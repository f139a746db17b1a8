"""Config of the `train` stage: method, knobs, checkpoints, kernels, processes, the general mix."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tunestack.config.base import Section


class GeneralMixSection(Section):
    share: float = Field(0.12, ge=0, lt=0.5)
    """Share of general-capability examples in the training set, against catastrophic forgetting (10-15% advised)."""
    source: Literal["self_replay", "file"] = "self_replay"
    """`self_replay`: the base model's own greedy answers to general prompts (120 built in, then as many as the
    training set needs from the `evals` package's registry; decontaminated against every eval item and probe);
    `file`: chat JSONL given in `path`."""
    path: str | None = None
    """Chat JSONL of general examples, when `source: file`."""
    max_new_tokens: int = Field(96, ge=8)
    """Longest self-replay answer; one that does not end with EOS within it is cut at its last sentence end (when
    that keeps at least half of it), else discarded."""
    shortfall: Literal["warn", "fail"] = "warn"
    """When fewer general rows than planned are available (a small file or pool, answers discarded): warn with the
    figures, or stop training before it starts."""

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


class RewardSpec(Section):
    metric: str = Field(min_length=1)
    """What scores each sampled answer: a task metric by name (`exact_match`, `field_accuracy`, `regex`, `contains`,
    `numeric`, `choice`, the tool-call metrics, a plugin's), `format` (the evaluate stage's format check: 1 or 0),
    `judge` (the LLM judge of the `judge` section, its 1-5 score mapped to 0-1; its cost is stated before training),
    or your own function `package.module:function` with a metric's signature `score(prediction, reference,
    **params) -> float` (run with `train.grpo.reward_timeout`). A metric with parts (per-field accuracy) gives the
    share of parts right."""
    weight: float = Field(1.0, gt=0)
    """The reward is the weighted sum of these."""
    params: dict[str, Any] = {}
    """Keyword arguments of the metric (as in `evaluate.metrics`); for `judge`: `rubric` (correctness)."""


class GrpoSection(Section):
    rewards: list[RewardSpec] = []
    """The rewards, summed with their weights. Default: the headline task metric (`evaluate.metrics[0]`, weight 1)
    and, when a format is checked, `format` (weight 0.5)."""
    openai_grader: str | None = None
    """A migrating user's OpenAI reinforcement fine-tuning grader (the JSON object given as `grader` to the job, in a
    file): `string_check`, `text_similarity` (fuzzy_match), `python`, `score_model` and `multi` (a weighted sum)
    become rewards here, added to `rewards` (docs/train.md#grpo says how each maps)."""
    group_size: int = Field(4, ge=2)
    """Answers sampled per prompt (TRL's num_generations); each answer's advantage is its reward against its
    group's. `train.micro_batch_size` x `train.grad_accum` answers make one step: a multiple of this."""
    kl: float = Field(0.04, ge=0)
    """KL coefficient (TRL's beta) towards the reference, the model GRPO starts from: the anchor against drifting
    and forgetting. 0 loads no reference model and anchors nothing (TRL's default); select's retention floor still
    guards the result."""
    temperature: float = Field(1.0, gt=0, le=2)
    """Sampling temperature of the answers trained on."""
    max_new_tokens: int | None = Field(None, ge=1)
    """Longest sampled answer; default `evaluate.max_new_tokens`. An answer cut here gets its rewards as it is."""
    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = "dapo"
    """TRL's loss aggregation: `dapo` (token-level over the batch, TRL's default), `grpo` (per sequence, then per
    batch: favours short answers), `dr_grpo` (no length normalisation), `bnpo`."""
    weights: Literal["lora", "full"] = "lora"
    """Train a LoRA adapter (`train.lora`; the reference is the model with the adapter off, no extra memory) or
    every weight (the reference is a frozen copy)."""
    reward_timeout: float = Field(10.0, gt=0)
    """Seconds one call of a user reward function may take on one answer; an answer that runs out scores 0 and is
    counted in the train manifest. Built-in metrics are not timed."""
    vllm: Literal["auto", "on", "off"] = "auto"
    """Sample the answers with vLLM (colocated on the GPU) instead of transformers' `generate`. `auto`: on with a
    CUDA GPU and the vllm package; `on` without them is an error."""
    spread_prompts: int = Field(32, ge=1)
    """`tunestack assess` on a GRPO config: prompts of its sample each answered `group_size` times at `temperature`
    to measure the spread of the rewards (a model always right or always wrong has nothing to learn)."""


class DistributedSection(Section):
    strategy: Literal["ddp", "fsdp", "deepspeed"] = "ddp"
    """How the processes of `tunestack train --nproc N` share the work: `ddp` (each holds the whole model), `fsdp`
    (weights, gradients and optimizer state sharded across processes; FSDP2, decoder-layer wrapping) or `deepspeed`
    (ZeRO, GPUs only; needs the deepspeed package). One process ignores it. QLoRA takes `ddp` only."""
    zero_stage: Literal[1, 2, 3] = 2
    """DeepSpeed ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also weights."""
    offload: bool = False
    """Keep optimizer state (and, with FSDP or ZeRO-3, parameters) in CPU memory: slower, fits larger models."""


class TrainSection(Section):
    method: Literal["lora", "qlora", "full", "dpo", "grpo"] = "lora"
    """`lora`; `qlora` (4-bit NF4 base with double quantization, bitsandbytes, CPU too); `full` (every weight);
    `dpo` (preference pairs, on a LoRA adapter whose reference is the model with the adapter off); `grpo`
    (reinforcement fine-tuning: answers sampled per prompt, rewarded by the task's own metrics; `train.grpo`)."""
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
    """General-capability examples mixed into training (SFT methods; GRPO's anchor is `train.grpo.kl`)."""
    grpo: GrpoSection = GrpoSection()
    """GRPO settings (method grpo): rewards, group size, KL, sampling."""

    @property
    def every_weight(self) -> bool:
        """Whether every weight trains (full fine-tuning, or GRPO with `grpo.weights: full`) rather than an adapter."""
        return self.method == "full" or (self.method == "grpo" and self.grpo.weights == "full")

    @model_validator(mode="after")
    def _one_save_rule(self) -> TrainSection:
        if self.save_steps and self.save_every_epochs:
            raise ValueError("set train.save_steps or train.save_every_epochs, not both")
        return self

    @model_validator(mode="after")
    def _whole_groups(self) -> TrainSection:
        answers = self.micro_batch_size * self.grad_accum
        if self.method == "grpo" and answers % self.grpo.group_size:
            raise ValueError(f"method grpo samples train.grpo.group_size ({self.grpo.group_size}) answers per prompt, "
                             f"and a step takes train.micro_batch_size x train.grad_accum = {answers} answers, which "
                             f"is not a whole number of groups: make micro_batch_size x grad_accum a multiple of "
                             f"{self.grpo.group_size}, or change group_size")
        return self

    @model_validator(mode="after")
    def _no_sharded_qlora(self) -> TrainSection:
        if self.method == "qlora" and self.distributed.strategy != "ddp":
            raise ValueError(
                f"method qlora with distributed.strategy {self.distributed.strategy} is refused: sharding a 4-bit "
                "bitsandbytes model needs bnb_4bit_quant_storage, and even with it FSDP2 can turn the 4-bit weights "
                "into plain ones and lose their quantization state without an error (loss 0 or NaN gradients, as "
                "accelerate and axolotl users report); nothing here proves it right. Use strategy ddp (each GPU holds "
                "the 4-bit base, which is what QLoRA makes small), or method lora with fsdp")
        return self
