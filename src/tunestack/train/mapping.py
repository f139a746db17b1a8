"""Our config mapped onto peft's and TRL's config objects. Small pure functions, each unit-tested."""

from __future__ import annotations

import math

from tunestack.config import DistributedSection, TrainSection


def lora_kwargs(train: TrainSection) -> dict:
    """Arguments for `peft.LoraConfig`."""
    return {
        "r": train.lora.r,
        "lora_alpha": train.lora.alpha,
        "lora_dropout": train.lora.dropout,
        "target_modules": train.lora.target_modules,
        "task_type": "CAUSAL_LM",
        "bias": "none",
    }


def total_steps(train: TrainSection, n_rows: int, world_size: int = 1) -> int:
    """Optimizer steps the run will take.

    >>> from tunestack.config import DistributedSection, TrainSection
    >>> total_steps(TrainSection(epochs=2, micro_batch_size=8, grad_accum=2), 100)
    14
    """
    if train.max_steps:
        return train.max_steps
    per_epoch = math.ceil(math.ceil(n_rows / (train.micro_batch_size * world_size)) / train.grad_accum)
    return max(1, math.ceil(per_epoch * train.epochs))


def save_points(train: TrainSection, steps: int, steps_per_epoch: int | None = None) -> list[int]:
    """Steps at which a checkpoint is published; the last step always is.

    >>> from tunestack.config import DistributedSection, TrainSection
    >>> save_points(TrainSection(num_checkpoints=3), 100)
    [34, 67, 100]
    >>> save_points(TrainSection(save_steps=40), 100)
    [40, 80, 100]
    >>> save_points(TrainSection(save_every_epochs=0.5), 100, steps_per_epoch=50)
    [25, 50, 75, 100]
    """
    if train.save_every_epochs:
        every = max(1, round(train.save_every_epochs * (steps_per_epoch or steps)))
        points = list(range(every, steps + 1, every))
    elif train.save_steps:
        points = list(range(train.save_steps, steps + 1, train.save_steps))
    else:
        points = [math.ceil(steps * (i + 1) / train.num_checkpoints) for i in range(train.num_checkpoints)]
    return sorted(set(p for p in points if 0 < p <= steps) | {steps})


def sft_kwargs(train: TrainSection, *, output_dir: str, seed: int, bf16: bool, use_cpu: bool, max_length: int,
               steps: int, packed: bool = False, liger: bool = False) -> dict:
    """Arguments for `trl.SFTConfig`. Rows arrive tokenized (and packed, when `packed`: padding-free batches, kept
    apart by position ids). The Trainer saves only when our callback asks, so its own save strategy is off."""
    return {
        "output_dir": output_dir,
        "per_device_train_batch_size": train.micro_batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "learning_rate": train.learning_rate,
        "lr_scheduler_type": train.scheduler,
        "warmup_steps": math.ceil(train.warmup_ratio * steps),
        "weight_decay": train.weight_decay,
        "max_steps": steps,
        "seed": seed,
        "data_seed": seed,
        "bf16": bf16,
        "use_cpu": use_cpu,
        "max_length": None if packed else max_length,  # packed rows are already at most max_length
        "padding_free": packed,
        "logging_steps": 1,
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": list(train.report_to),
        "packing": False,
        "dataloader_num_workers": 0,
        "disable_tqdm": False,
        "remove_unused_columns": False,
        "include_num_input_tokens_seen": "non_padding",
        "gradient_checkpointing": train.gradient_checkpointing,
        "use_liger_kernel": liger,
        "torch_compile": train.compile,
    }


def distributed_kwargs(section: DistributedSection, world_size: int, layer_class: str | None) -> dict:
    """Trainer arguments for a multi-process run: nothing extra for DDP (or one process), the FSDP2 settings
    (`layer_class` is the decoder block to wrap), or an inline DeepSpeed ZeRO config.

    >>> from tunestack.config import DistributedSection
    >>> distributed_kwargs(DistributedSection(strategy="fsdp"), 2, "LlamaDecoderLayer")["fsdp"]
    'full_shard auto_wrap'
    >>> distributed_kwargs(DistributedSection(strategy="fsdp"), 1, "LlamaDecoderLayer")
    {}
    """
    if world_size == 1 or section.strategy == "ddp":
        return {"ddp_find_unused_parameters": False} if world_size > 1 else {}
    if section.strategy == "fsdp":
        # the model was loaded under models.load.FSDP_LOADING (rank 0 the weights, the others placeholders):
        # sharding must broadcast rank 0's (accelerate's sync_module_states)
        config = {"version": 2, "reshard_after_forward": True, "cpu_ram_efficient_loading": True,
                  "sync_module_states": True, "state_dict_type": "FULL_STATE_DICT"}
        if layer_class:
            config["transformer_layer_cls_to_wrap"] = [layer_class]
        return {"fsdp": "full_shard auto_wrap" + (" offload" if section.offload else ""), "fsdp_config": config}
    zero: dict = {"stage": section.zero_stage, "overlap_comm": True, "contiguous_gradients": True}
    if section.zero_stage == 3:  # a checkpoint holds real weights, not ZeRO-3's placeholders, for evaluation
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if section.offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if section.zero_stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {"deepspeed": {"zero_optimization": zero, "bf16": {"enabled": "auto"}, "gradient_clipping": "auto",
                          "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
                          "train_batch_size": "auto"}}
