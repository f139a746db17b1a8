"""Method `dpo`: direct preference optimisation on a LoRA adapter, with TRL's DPOTrainer.

The reference model is the policy with its adapter switched off, so it costs no memory. Start from an SFT
checkpoint with `train.init_from` (merged into the base first): that is the SFT -> DPO workflow. Pairs come from
`prepare` (rows with a `rejected` answer); checkpoints are published like SFT's, and `--resume` works the same way.
"""

from __future__ import annotations

import json

import torch

from tunestack.config import Config
from tunestack.errors import StageError
from tunestack.rundir import RunDir, read_jsonl
from tunestack.terminal import use_compact_progress
from tunestack.train.mapping import save_points, total_steps


def pair_rows(rows: list[dict]) -> list[dict]:
    """Preference rows in TRL's conversational form: the prompt turns, then the chosen and the rejected answer.

    >>> pair_rows([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    ...             "rejected": "b"}])[0]["rejected"]
    [{'role': 'assistant', 'content': 'b'}]
    """
    return [{"prompt": r["messages"][:-1], "chosen": r["messages"][-1:],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]}
            for r in rows if isinstance(r.get("rejected"), str)]


def trl_pairs(tokenizer, pairs: list[dict]) -> list[dict]:
    """The pairs as TRL renders them itself: the prompt fitted to the template (system merged, tools as the template
    takes them, `tunestack.chat.fit_conversation`) and the tools, where the template renders them, in TRL's `tools`
    column as JSON. `guard_pairs` then checks TRL's ids against ours."""
    from tunestack.chat import fit_conversation

    out = []
    for pair in pairs:
        prompt, tools = fit_conversation(tokenizer, pair["prompt"])
        out.append({**pair, "prompt": prompt, **({"tools": json.dumps(tools)} if tools else {})})
    if any("tools" in p for p in out):
        out = [{"tools": None, **p} for p in out]  # one column for all rows
    calls = [i for i, p in enumerate(out) if any(m.get("tool_calls") for m in p["prompt"])]
    if calls and not _takes_empty_calls(tokenizer):
        raise StageError(f"{len(calls)} preference prompts hold tool calls (first: pair {calls[0]}). TRL stores the "
                         "prompts as one table, which gives every assistant turn a `tool_calls` key, empty where it "
                         "made no call, and this model's chat template (Llama-3.1's does this) treats any turn with "
                         "that key as a call. Train these pairs on a template that checks the calls themselves "
                         "(Qwen, Mistral), or keep the rows whose prompts make no calls")
    return out


def _takes_empty_calls(tokenizer) -> bool:
    """Whether the template renders an assistant turn with `tool_calls: None` as one without the key."""
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "r"}]
    try:
        empty = tokenizer.apply_chat_template([*turns[:1], {**turns[1], "tool_calls": None}, turns[2]], tokenize=False)
    except Exception:  # noqa: BLE001 - whatever the template raises
        return False
    return empty == tokenizer.apply_chat_template(turns, tokenize=False)


def guard_pairs(dataset, pairs: list[dict], tokenizer) -> None:
    """What DPO trains on is what is served: every prompt TRL tokenized must be one of our rendered generation
    prompts, and both answers must contain EOS (the chosen one teaches stopping). TRL may drop rows that are too
    long, so rows are matched by content, not position."""
    from tunestack.chat import render_prompt
    from tunestack.errors import GuardError

    from tunestack.tools import with_tools

    served = {tuple(render_prompt(tokenizer, with_tools(pair["prompt"], json.loads(pair.get("tools") or "null"))))
              for pair in pairs}
    eos = tokenizer.eos_token_id
    for index, row in enumerate(dataset):
        if tuple(row["prompt_ids"]) not in served:
            raise GuardError(f"preference pair {index}: TRL tokenized the prompt differently from the generation "
                             "prompt used in evaluation and serving; the chat template must render the prompt the "
                             "same way with and without the answer")
        for side in ("chosen", "rejected"):
            if eos not in row[f"{side}_ids"]:
                raise GuardError(f"preference pair {index}: the {side} answer has no EOS ({tokenizer.eos_token!r}) "
                                 "after tokenization, so DPO would teach a model that never stops")


def run_dpo(cfg: Config, run: RunDir, model, tokenizer, resume: bool, generation_config,
            resume_anyway: bool = False) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from tunestack.models import resolve_model, use_bf16
    from tunestack.train.live import live_evaluation, timed_train
    from tunestack.train.checkpoints import CheckpointPublisher, prepare_outputs, run_facts
    from tunestack.train.resume import check_resumable, fingerprint, resume_point
    from tunestack.train.methods import trainable_model
    from tunestack.train.preflight import measured_memory

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise StageError("method dpo runs in one process for now: drop --nproc")
    out = run.stage("train")
    t = cfg.train
    pairs = trl_pairs(tokenizer, pair_rows(read_jsonl(run.root / "prepare" / "train.jsonl")))
    if not pairs:
        raise StageError("train.method is dpo but the training data has no preference pairs: give rows with "
                         "prompt/chosen/rejected (see docs/prepare.md)")
    start, start_step = resume_point(out / "checkpoints", resume)
    trajectory = fingerprint(cfg, run)
    resumed_despite = check_resumable(start, trajectory, resume_anyway) if start else []
    prepare_outputs(out, start, start_step)
    bf16 = use_bf16(t.precision)
    steps = total_steps(t, len(pairs))
    per_epoch = total_steps(t.model_copy(update={"epochs": 1, "max_steps": None}), len(pairs))
    live = live_evaluation(cfg, run, tokenizer, 1)
    if live:
        live.evaluate_base(model)  # before the init_from merge touches the weights
    publisher = CheckpointPublisher(out / "checkpoints", save_points(t, steps, per_epoch), out / "metrics.jsonl",
                                    generation_config, start_step, init_from=t.init_from, on_publish=live,
                                    fingerprint=trajectory)
    args = DPOConfig(output_dir=str(out / "trainer"), per_device_train_batch_size=t.micro_batch_size,
                     gradient_accumulation_steps=t.grad_accum, learning_rate=t.learning_rate,
                     lr_scheduler_type=t.scheduler, warmup_steps=round(t.warmup_ratio * steps),
                     weight_decay=t.weight_decay, max_steps=steps, seed=cfg.run.seed, data_seed=cfg.run.seed,
                     bf16=bf16, use_cpu=not torch.cuda.is_available(), beta=t.dpo.beta, loss_type=[t.dpo.loss_type],
                     max_length=cfg.data.max_length, logging_steps=1, save_strategy="no", report_to=list(t.report_to),
                     gradient_checkpointing=t.gradient_checkpointing, dataloader_num_workers=0)
    subject = trainable_model(cfg, resolve_model(cfg.model.name, cfg.model.revision), model, bf16)
    if live:
        live.model = subject
    trainer = DPOTrainer(model=subject, ref_model=None, args=args, train_dataset=Dataset.from_list(pairs),
                         processing_class=tokenizer, callbacks=[publisher])
    use_compact_progress(trainer, desc="train dpo")
    guard_pairs(trainer.train_dataset, pairs, tokenizer)
    result, seconds, _ = timed_train(trainer, live, start)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    subject.unload()
    return {
        "method": "dpo",
        "rows": {"pairs": len(pairs)},
        "steps": steps,
        **run_facts(start, resumed_despite, bf16, seconds, live),
        "memory_measured": measured_memory(cfg, resolve_model(cfg.model.name, cfg.model.revision), bf16, min(
            cfg.data.max_length, max(len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"]))
                                     for r in trainer.train_dataset))),
        "first_loss": logs[0]["loss"] if logs else None,
        "final_loss": logs[-1]["loss"] if logs else None,
        "train_loss": result.training_loss,
        "reward_accuracy": logs[-1].get("rewards/accuracies") if logs else None,
        "checkpoints": publisher.published,
    }
