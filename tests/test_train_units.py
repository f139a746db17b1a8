"""Training pieces: config mapping, label guards, and the TRL compact-loss shim computing the same loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunestack.chat import IGNORE_INDEX
from tunestack.config import TrainSection
from tunestack.errors import GuardError
from tunestack.train.mapping import lora_kwargs, save_points, sft_kwargs, total_steps


def test_lora_and_sft_mapping():
    train = TrainSection(learning_rate=5e-4, micro_batch_size=4, grad_accum=2, scheduler="linear",
                         lora={"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]})
    assert lora_kwargs(train)["r"] == 8 and lora_kwargs(train)["lora_alpha"] == 16
    kwargs = sft_kwargs(train, output_dir="x", seed=3, bf16=False, use_cpu=True, max_length=128, steps=40)
    assert kwargs["per_device_train_batch_size"] == 4 and kwargs["gradient_accumulation_steps"] == 2
    assert kwargs["lr_scheduler_type"] == "linear" and kwargs["warmup_steps"] == 2 and kwargs["max_steps"] == 40
    assert kwargs["gradient_checkpointing"] is False and kwargs["bf16"] is False and kwargs["use_cpu"] is True
    from trl import SFTConfig

    SFTConfig(**kwargs)  # TRL accepts every key


def test_steps_and_save_points():
    train = TrainSection(epochs=1, micro_batch_size=8, num_checkpoints=3)
    steps = total_steps(train, 739)
    assert steps == 93
    assert save_points(train, steps) == [31, 62, 93]


def test_guard_refuses_rows_with_every_label_masked():
    from tunestack.train.stage import guard_labels

    rows = [{"input_ids": [1, 2, 3], "labels": [IGNORE_INDEX, 5, 2]},
            {"input_ids": [1, 2, 3], "labels": [IGNORE_INDEX] * 3}]
    with pytest.raises(GuardError, match="every label masked"):
        guard_labels(rows, eos=2)
    with pytest.raises(GuardError, match="EOS"):
        guard_labels([{"input_ids": [1, 2], "labels": [IGNORE_INDEX, 7]}], eos=2)


def test_compact_loss_shim_gives_the_same_loss(tiny_model: Path, tmp_path: Path):
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from trl import SFTConfig, SFTTrainer

    from tunestack.chat import render_example
    from tunestack.demo.radiology import generate
    from tunestack.models import load_model
    from tunestack.train.trl_shim import disable_compact_loss, enable_compact_loss

    model, tokenizer = load_model(tiny_model)
    rows = [render_example(tokenizer, r["messages"]) for r in generate(8, seed=2)]
    data = Dataset.from_list([{"input_ids": r.input_ids, "labels": r.labels} for r in rows])
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], per_device_train_batch_size=8,
                     gradient_checkpointing=False, remove_unused_columns=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    batch = trainer.data_collator([data[i] for i in range(8)])
    try:
        disable_compact_loss()
        full = trainer.compute_loss(model, dict(batch)).item()
        enable_compact_loss()
        compact = trainer.compute_loss(model, dict(batch)).item()
    finally:
        disable_compact_loss()
    assert compact == pytest.approx(full, rel=1e-5)
    assert torch.isfinite(torch.tensor(compact))


def test_self_replay_keeps_only_answers_that_end_with_eos():
    from tunestack.evaluate.generate import Generation
    from tunestack.train.replay import self_replay
    from tunestack.data.general import replay_count

    class Tokenizer:
        def apply_chat_template(self, messages, add_generation_prompt, tokenize, return_dict):
            return [1, 2, 3]

    class Backend:  # the generation-backend interface: .tokenizer and .generate(prompts, max_new_tokens, desc)
        tokenizer = Tokenizer()

        def generate(self, prompts, max_new_tokens, desc=""):
            return [Generation(text=f"answer {i}", token_ids=[5, 2], ended_with_eos=i % 3 != 0)
                    for i in range(len(prompts))]

    prompts = [{"id": f"r{i}", "prompt": f"question {i}"} for i in range(20)]
    rows = self_replay(Backend(), prompts, count=6, max_new_tokens=8)
    assert len(rows) == 6 and all(r["origin"] == "self_replay" for r in rows)
    assert all(int(r["id"][1:]) % 3 != 0 for r in rows)  # cut-off answers are dropped
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "answer 1"}
    assert replay_count(88, 0.12) == 12 and replay_count(100, 0.0) == 0


def test_real_token_meter_counts_padding_and_padding_free_batches():
    import torch

    from tunestack.train.packing import RealTokenMeter

    padded = RealTokenMeter(lambda rows: {"input_ids": torch.zeros(2, 4, dtype=torch.long),
                                          "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])})
    padded([{}, {}])
    assert padded.share() == 0.75
    flat = RealTokenMeter(lambda rows: {"input_ids": torch.zeros(1, 9, dtype=torch.long),
                                        "position_ids": torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])})
    flat([{}])
    assert flat.share() == 1.0 and RealTokenMeter(None).share() is None


def test_dpo_guard_refuses_a_prompt_rendered_differently_or_an_answer_without_eos(tiny_model):
    import pytest
    from transformers import AutoTokenizer

    from tunestack.chat import render_prompt
    from tunestack.errors import GuardError
    from tunestack.train.dpo import guard_pairs

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    pair = {"prompt": [{"role": "user", "content": "Is it raining?"}]}
    prompt = render_prompt(tokenizer, pair["prompt"])
    eos = tokenizer.eos_token_id
    guard_pairs([{"prompt_ids": prompt, "chosen_ids": [5, eos], "rejected_ids": [6, eos]}], [pair], tokenizer)
    with pytest.raises(GuardError, match="prompt differently"):
        guard_pairs([{"prompt_ids": prompt[1:], "chosen_ids": [5, eos], "rejected_ids": [6, eos]}], [pair], tokenizer)
    with pytest.raises(GuardError, match="chosen answer has no EOS"):
        guard_pairs([{"prompt_ids": prompt, "chosen_ids": [5], "rejected_ids": [6, eos]}], [pair], tokenizer)


def test_replay_cuts_a_long_answer_at_a_sentence_end_and_a_short_mix_warns_or_fails(tiny_config, caplog):
    """The tiny model never ends a replay answer with EOS within the budget: each answer is cut at its last sentence
    end rather than dropped; when the mix still falls short of its plan, the run says so with the figures, or stops
    before training with `shortfall: fail`."""
    from tunestack.config import load_config
    from tunestack.errors import StageError
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.data.suites import load_replay_prompts
    from tunestack.models import load_base
    from tunestack.pipeline import run_stages
    from tunestack.train.replay import self_replay

    cfg = load_config(tiny_config, ["train.general_mix.source=self_replay", "train.general_mix.path=null"])
    model, tokenizer = load_base(cfg.model)
    rows = self_replay(LocalGenerator(model, tokenizer, 16), load_replay_prompts()[:24], 10, 48)
    assert rows and all(r["truncated"] for r in rows)
    assert all(r["messages"][-1]["content"][-1] in ".!?" or "\n" in r["messages"][-1]["content"] for r in rows)
    # 96 task rows at 40%: 64 general rows planned, from a pool of 120 prompts of which many answers are discarded
    short = ["train.general_mix.source=self_replay", "train.general_mix.path=null", "train.general_mix.share=0.45",
             "train.max_steps=1", "train.general_mix.max_new_tokens=8"]
    with pytest.raises(StageError, match=r"the general mix has \d+ of the \d+ planned rows: .* instead of 45%"):
        run_stages(load_config(tiny_config, [*short, "run.name=short-fail", "train.general_mix.shortfall=fail"]),
                   until="train")
    run = run_stages(load_config(tiny_config, [*short, "run.name=short-warn"]), until="train")
    assert run.require("train")["rows"]["general"] < run.require("train")["rows"]["general_requested"]
    assert "the general mix has" in caplog.text


# What each strategy's Trainer writes into a checkpoint (transformers 5.17 Trainer._save_optimizer_and_scheduler,
# accelerate 1.15 save_fsdp_model/save_fsdp_optimizer, DeepSpeed's save_checkpoint): resume-only state and weights.
LAYOUTS = {
    "ddp": (["optimizer.pt"], ["adapter_model.safetensors", "scheduler.pt", "rng_state_0.pth", "trainer_state.json"]),
    "fsdp full state dict": (["optimizer.bin", "pytorch_model_fsdp.bin"],
                             ["adapter_model.safetensors", "scheduler.pt", "rng_state_1.pth"]),
    "fsdp sharded": (["optimizer_0/__0_0.distcp", "optimizer_0/.metadata", "pytorch_model_fsdp_0/__1_0.distcp",
                      "optimizer_0_rank1.bin"], ["model.safetensors", "scheduler.pt"]),
    "deepspeed zero-3": (["global_step12/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt",
                          "global_step12/zero_pp_rank_0_mp_rank_00_model_states.pt", "latest", "zero_to_fp32.py"],
                         ["model.safetensors", "config.json", "trainer_state.json"]),
}


@pytest.mark.parametrize("strategy", sorted(LAYOUTS))
def test_an_older_checkpoint_loses_its_resume_state_under_every_strategy(tmp_path: Path, strategy: str):
    """Issue 28 (e): only the newest checkpoint is resumed from; an older one keeps the weights evaluation reads and
    loses the optimizer and sharded model state, whatever the strategy wrote (cleanup knew `optimizer.pt` only)."""
    from tunestack.train.checkpoints import drop_resume_state

    resume_only, kept = LAYOUTS[strategy]
    for name in resume_only + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    drop_resume_state(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted(kept)


def test_flash_attention_is_never_chosen_or_taken_for_fp32_compute():
    """Issue 28 (a): flash-attention computes in fp16/bf16 only. Training in fp32 with it explicitly is refused before
    loading; `auto` never picks it there; evaluation and self-replay compute with `evaluation_kernel` (SDPA on a
    GPU), not the training model's flash-attention, so fp32 master weights generate."""
    from tunestack.errors import StageError
    from tunestack.evaluate.kernels import evaluation_kernel
    from tunestack.train.methods import attention_kernel

    with pytest.raises(StageError, match="fp16/bf16 only.*train.attention sdpa"):
        attention_kernel("flash_attention_2", half=False)
    assert attention_kernel("flash_attention_2", half=True) == "flash_attention_2"
    assert attention_kernel("auto", half=False) in ("eager", "sdpa")
    assert {evaluation_kernel("cpu"), evaluation_kernel("cuda")} == {"eager", "sdpa"}
