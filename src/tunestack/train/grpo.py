"""Method `grpo`: reinforcement fine-tuning with verifiable rewards, on TRL's GRPOTrainer.

Each step samples `train.grpo.group_size` answers to each of a few training prompts, scores every answer with the
task's own metrics (`tunestack.evaluate.rewards`), and moves the policy towards the answers that beat their group's
mean, held to the model it started from by a KL term (`train.grpo.kl`). Start from an SFT checkpoint with
`train.init_from` (merged into the base first, so the reference is the SFT model and not the base); a LoRA adapter
is trained on top, or every weight with `grpo.weights: full`.

What TRL trains on is what is served: the prompts are our rendered generation prompts, checked to tokenize to the
same ids TRL will use, and every sampled answer's loss mask is checked to end at its first stop token (or at
`max_new_tokens`). Checkpoints are published, evaluated while training and selected like SFT's; the rewards, the
answers' lengths and the share of groups without signal go to `train/metrics.jsonl` every step.
"""

from __future__ import annotations

import logging
import math

import torch

from tunestack.config import Config
from tunestack.errors import GuardError, MissingDependencyError, StageError
from tunestack.rundir import RunDir, read_jsonl
from tunestack.terminal import use_compact_progress
from tunestack.evaluate.rewards import Reward, Timeouts, bind_rewards, judge_estimate

log = logging.getLogger("tunestack")


def trl_prompts(tokenizer, conversations: list[list[dict]]) -> list:
    """Each row's generation prompt in the form TRL tokenizes back into exactly our rendered ids: the conversation
    as the template takes it (TRL renders it with the same call), or, where the template needs each row's tools
    (TRL passes one list of tools for all rows), the rendered text for TRL's tokenizer call. GuardError where
    neither gives the ids evaluation and serving generate from."""
    from tunestack.chat import fit_conversation, render_prompt

    expected = [render_prompt(tokenizer, messages) for messages in conversations]
    fitted = [fit_conversation(tokenizer, messages) for messages in conversations]
    if not any(tools for _, tools in fitted):
        prompts = [messages for messages, _ in fitted]
        rendered = [list(tokenizer.apply_chat_template(conversation=[p], add_generation_prompt=True, tokenize=True,
                                                       return_dict=True)["input_ids"][0]) for p in prompts]
    else:
        prompts = [text_of(tokenizer, ids) for ids in expected]
        rendered = [list(tokenizer(text=p)["input_ids"]) for p in prompts]
    _same_ids(rendered, expected)
    return prompts


def prompt_text(tokenizer, messages: list[dict]) -> str:
    """A row's generation prompt as text (a leading BOS that the tokenizer adds by itself left out of it)."""
    from tunestack.chat import render_prompt

    return text_of(tokenizer, render_prompt(tokenizer, messages))


def text_of(tokenizer, ids: list[int]) -> str:
    """Rendered prompt ids as the text the tokenizer reads back into them (its own leading BOS left out)."""
    added = tokenizer("")["input_ids"]
    if added and ids[: len(added)] == added:
        ids = ids[len(added):]
    return tokenizer.decode(ids, skip_special_tokens=False)


def _same_ids(rendered: list[list[int]], expected: list[list[int]]) -> None:
    for k, (ids, wanted) in enumerate(zip(rendered, expected)):
        if ids != wanted:
            raise GuardError(f"training row {k}: TRL would tokenize the GRPO prompt to other ids than the generation "
                             "prompt evaluation and serving use (the tokenizer adds or merges tokens around the "
                             "rendered text for this chat template), so the answers it samples would answer another "
                             "prompt. Train these rows with an SFT method, or give the model a chat template whose "
                             "rendered prompt its tokenizer reads back unchanged")


class MaskCheck:
    """What TRL trains on, checked on every answer the reward functions see: the answer's ids under the loss mask
    must end at the first stop token, or run to `max_new_tokens` with none (nothing after the end is trained)."""

    def __init__(self, stops: list[int], max_new_tokens: int):
        self.stops, self.max_new_tokens = set(stops), max_new_tokens
        self.answers = self.ended = self.cut = 0

    def __call__(self, completion_ids: list[list[int]]) -> None:
        for ids in completion_ids:
            inside = [k for k, t in enumerate(ids[:-1]) if t in self.stops]
            if inside:
                raise GuardError(f"a sampled answer's loss mask runs past its stop token (at {inside[0]} of "
                                 f"{len(ids)} tokens): GRPO would train on tokens after the answer ended")
            ended = bool(ids) and ids[-1] in self.stops
            if not ended and len(ids) != self.max_new_tokens:
                raise GuardError(f"a sampled answer of {len(ids)} tokens neither ends with a stop token nor fills "
                                 f"max_new_tokens ({self.max_new_tokens}): its loss mask is cut short")
            self.answers += 1
            self.ended += ended
            self.cut += not ended

    def describe(self) -> dict:
        return {"answers": self.answers, "ended_with_stop": self.ended, "cut_at_max_new_tokens": self.cut}


class TrlReward:
    """One of our rewards as TRL calls a reward function: each answer decoded from the ids TRL trains on, cut at
    its stop token as evaluation cuts it, then scored against its row. The first reward also checks the mask."""

    def __init__(self, reward: Reward, rows: list[dict], tokenizer, stops: list[int], mask: MaskCheck | None):
        self.reward, self.rows, self.tokenizer, self.stops, self.mask = reward, rows, tokenizer, stops, mask
        self.__name__ = reward.name  # TRL names the logged reward after it

    def __call__(self, prompts, completions, completion_ids, index, **kwargs) -> list[float | None]:
        from tunestack.evaluate.backends import stopped

        if self.mask is not None:
            self.mask(completion_ids)
        answers = [stopped(self.tokenizer, list(ids), self.stops).text for ids in completion_ids]
        return self.reward.score(answers, [self.rows[i] for i in index])


def grpo_steps(cfg: Config, prompts: int) -> tuple[int, int]:
    """(optimizer steps, prompts per step): a step samples micro_batch_size x grad_accum answers, group_size each.

    >>> from tunestack.config import Config
    >>> grpo_steps(Config.model_validate({"data": {"path": "d.jsonl"}, "train": {"method": "grpo", "epochs": 1}}), 40)
    (20, 2)
    """
    t = cfg.train
    per_step = t.micro_batch_size * t.grad_accum // t.grpo.group_size
    return (t.max_steps or max(1, math.ceil(t.epochs * prompts / per_step))), per_step


def use_vllm(setting: str) -> bool:
    """`train.grpo.vllm` resolved: `auto` is on with a CUDA GPU and the vllm package; `on` without them is an error."""
    import importlib.util

    available = torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None
    if setting == "on" and not available:
        raise MissingDependencyError("vllm (and a CUDA GPU) for train.grpo.vllm: on", "vllm")
    return available if setting == "auto" else setting == "on"


def grpo_args(cfg: Config, out, steps: int, bf16: bool, weights: list[float]):
    """TRL's GRPOConfig from ours; `weights`: each reward's."""
    from trl import GRPOConfig

    t, g = cfg.train, cfg.train.grpo
    vllm = use_vllm(g.vllm)
    return GRPOConfig(
        output_dir=str(out / "trainer"), per_device_train_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.grad_accum, num_generations=g.group_size,
        max_completion_length=g.max_new_tokens or cfg.evaluate.max_new_tokens, temperature=g.temperature,
        beta=g.kl, loss_type=g.loss_type, learning_rate=t.learning_rate, lr_scheduler_type=t.scheduler,
        warmup_steps=round(t.warmup_ratio * steps), weight_decay=t.weight_decay, max_steps=steps, seed=cfg.run.seed,
        data_seed=cfg.run.seed, bf16=bf16, use_cpu=not torch.cuda.is_available(), logging_steps=1,
        save_strategy="no", report_to=list(t.report_to), gradient_checkpointing=t.gradient_checkpointing,
        dataloader_num_workers=0, reward_weights=weights, use_vllm=vllm, **({"vllm_mode": "colocate"} if vllm else {}))


def rewards_of(cfg: Config) -> tuple[list[Reward], Timeouts, object]:
    """The config's rewards bound (the judge's endpoint opened when one is a judge), with their time-out counter."""
    from tunestack.evaluate.rewards import judge_reward
    from tunestack.evaluate.scoring import load_scorer

    judge = judge_reward(cfg)
    timeouts = Timeouts(cfg.train.grpo.reward_timeout)
    return bind_rewards(cfg, load_scorer(cfg).format_check, timeouts, judge), timeouts, judge


def run_grpo(cfg: Config, run: RunDir, model, tokenizer, resume: bool, generation_config,
             resume_anyway: bool = False) -> dict:
    from datasets import Dataset
    from trl import GRPOTrainer

    from tunestack.models import use_bf16
    from tunestack.train.checkpoints import CheckpointPublisher, prepare_outputs, run_facts
    from tunestack.train.live import live_evaluation, timed_train
    from tunestack.train.mapping import save_points
    from tunestack.train.resume import check_resumable, fingerprint, resume_point

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise StageError("method grpo runs in one process for now: drop --nproc")
    out = run.stage("train")
    t, g = cfg.train, cfg.train.grpo
    rows = read_jsonl(run.root / "prepare" / "train.jsonl")
    if not rows:
        raise StageError("train.method is grpo but the training split is empty")
    rewards, timeouts, judge = rewards_of(cfg)
    start, start_step = resume_point(out / "checkpoints", resume)
    trajectory = fingerprint(cfg, run)
    resumed_despite = check_resumable(start, trajectory, resume_anyway) if start else []
    prepare_outputs(out, start, start_step)
    bf16 = use_bf16(t.precision)
    steps, per_step = grpo_steps(cfg, len(rows))
    max_new = g.max_new_tokens or cfg.evaluate.max_new_tokens
    judged = _judge_cost(cfg, judge, steps * per_step * g.group_size, tokenizer, rows)
    live = live_evaluation(cfg, run, tokenizer, 1)
    if live:
        live.evaluate_base(model)  # before the init_from merge touches the weights
    publisher = CheckpointPublisher(out / "checkpoints", save_points(t, steps, math.ceil(len(rows) / per_step)),
                                    out / "metrics.jsonl", generation_config, start_step, init_from=t.init_from,
                                    on_publish=live, fingerprint=trajectory)
    subject, stops = policy(cfg, model, bf16, out, generation_config)
    if live:
        live.model = subject
    mask = MaskCheck(stops, max_new)
    prompts = trl_prompts(tokenizer, [r["messages"][:-1] for r in rows])
    dataset = Dataset.from_list([{"prompt": p, "index": i} for i, p in enumerate(prompts)])
    funcs = [TrlReward(r, rows, tokenizer, stops, mask if k == 0 else None) for k, r in enumerate(rewards)]
    args = grpo_args(cfg, out, steps, bf16, [r.weight for r in rewards])
    trainer = GRPOTrainer(model=subject, reward_funcs=funcs, args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[publisher])
    use_compact_progress(trainer, desc="train grpo")
    result, seconds, _ = timed_train(trainer, live, start)
    if hasattr(subject, "unload"):
        subject.unload()
    return {
        "method": "grpo",
        "rows": {"prompts": len(rows)},
        "steps": steps,
        **run_facts(start, resumed_despite, bf16, seconds, live),
        "grpo": {"rewards": [{"name": r.name, "weight": r.weight, "timed": r.timed} for r in rewards],
                 "group_size": g.group_size, "prompts_per_step": per_step, "kl": g.kl, "temperature": g.temperature,
                 "max_new_tokens": max_new, "loss_type": g.loss_type, "weights": g.weights,
                 "reference": reference_kind(cfg),
                 "generation": "vllm" if trainer.args.use_vllm else "transformers",
                 "loss_mask": mask.describe(), "reward_timeouts": dict(timeouts.counts), "judge": judged,
                 **trend(trainer.state.log_history)},
        "first_loss": publisher.losses[0] if publisher.losses else None,
        "final_loss": publisher.losses[-1] if publisher.losses else None,
        "train_loss": result.training_loss,
        "checkpoints": publisher.published,
    }


def policy(cfg: Config, model, bf16: bool, out, generation_config) -> tuple:
    """(the model GRPO trains, the stop ids): `init_from` merged in, an adapter on it (or every weight), the
    reference in place, and every stop id of the model's generation config as TRL's stop and mask ends."""
    from tunestack.models import resolve_model
    from tunestack.train.methods import trainable_model

    subject = trainable_model(cfg, resolve_model(cfg.model.name, cfg.model.revision), model, bf16)
    reference_at_start(cfg, subject, out)
    eos = generation_config.eos_token_id
    stops = list(eos) if isinstance(eos, list) else [eos]
    subject.generation_config.eos_token_id = stops
    return subject, stops


def trend(log_history: list[dict]) -> dict:
    """How the run went, from TRL's step logs: the mean reward, answer length and share of groups without signal
    (all answers scored alike) over the first and the last quarter of the steps, and over the whole run.

    >>> found = trend([{"reward": r, "completions/mean_length": 10, "frac_reward_zero_std": 0.5} for r in (1, 1, 2, 2)])
    >>> found["reward"], found["steps_per_quarter"]
    ({'first_quarter': 1.0, 'last_quarter': 2.0, 'all': 1.5}, 1)
    """
    logs = [entry for entry in log_history if "reward" in entry]
    k = max(1, len(logs) // 4)
    out: dict = {}
    for name, key in (("reward", "reward"), ("answer_length", "completions/mean_length"),
                      ("zero_spread_share", "frac_reward_zero_std")):
        values = [float(entry[key]) for entry in logs if key in entry]
        out[name] = {"first_quarter": _mean(values[:k]), "last_quarter": _mean(values[-k:]), "all": _mean(values)}
    return {**out, "steps_per_quarter": k}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def reference_kind(cfg: Config) -> str:
    """What the KL term holds the policy to, for the manifest."""
    if cfg.train.grpo.kl == 0:
        return "none (train.grpo.kl is 0: no reference model, no anchor)"
    return "a frozen copy of the starting model" if cfg.train.every_weight else "the starting model (adapter off)"


def reference_at_start(cfg: Config, subject, out) -> None:
    """With every weight training and a KL term, TRL loads its frozen reference from the policy's folder: after an
    `init_from` merge that folder holds the base, not the model GRPO starts from, so the start is saved and named."""
    if not (cfg.train.every_weight and cfg.train.grpo.kl > 0 and cfg.train.init_from):
        return
    folder = out / "reference"
    subject.save_pretrained(folder)
    subject.config._name_or_path = str(folder)


def _judge_cost(cfg: Config, judge, answers: int, tokenizer, rows: list[dict]) -> dict | None:
    """A judge reward's cost, stated before the run starts (and kept in the manifest)."""
    if judge is None:
        return None
    from tunestack.judge.rubric import judge_messages

    sample = rows[: min(len(rows), 20)]
    sizes = [len(tokenizer.apply_chat_template(judge_messages(judge.rubric, r["messages"][-2].get("content") or "",
                                                              r["messages"][-1].get("content") or "",
                                                              r["messages"][-1].get("content") or ""),
                                               tokenize=True, return_dict=False)) for r in sample]
    estimate = judge_estimate(cfg, answers, round(sum(sizes) / len(sizes)), cfg.train.grpo.max_new_tokens or
                              cfg.evaluate.max_new_tokens)
    price = f"about ${estimate['usd']:.2f}" if estimate["usd"] is not None else \
        "not priced (set judge.price_input_per_m and judge.price_output_per_m)"
    log.warning("[train] the judge reward will score %d answers with %s: about %.1fM input tokens, %s",
                answers, cfg.judge.model, estimate["input_tokens"] / 1e6, price)
    return estimate
