"""Before GRPO spends compute: the spread of the rewards among answers sampled from the model to be trained.

GRPO learns only from groups of answers to the same prompt whose rewards differ: a model that is always right, or
always wrong, on a prompt gives that group no signal. `assess` on a config with `train.method: grpo` samples
`train.grpo.group_size` answers to each of `train.grpo.spread_prompts` prompts of its sample, at
`train.grpo.temperature`, scores them with the config's rewards exactly as training will, and reports the mean
reward, the mean spread within a group and the share of groups without signal. Run it on the base model and on the
SFT checkpoint GRPO would start from (`--model`).
"""

from __future__ import annotations

import random

from tunestack.config import Config
from tunestack.evaluate.backends import Generator, Sampling
from tunestack.evaluate.registry import FormatCheck
from tunestack.evaluate.rewards import bind_rewards, judge_reward, score_all, spread, total


def reward_spread(cfg: Config, generator: Generator, conversations: list[list[dict]],
                  format_check: FormatCheck) -> dict:
    """The spread figures for `conversations` (each a training row's turns, the reference answer last)."""
    g = cfg.train.grpo
    picked = sorted(random.Random(cfg.run.seed).sample(range(len(conversations)),
                                                       min(g.spread_prompts, len(conversations))))
    rows = [{"messages": conversations[i]} for i in picked]
    rewards = bind_rewards(cfg, format_check, judge=judge_reward(cfg))
    prompts = [row["messages"][:-1] for row in rows]
    by_round = []
    for j in range(g.group_size):
        sampling = Sampling(temperature=g.temperature, seed=cfg.run.seed + 101 + j)
        answers = generator.generate(prompts, g.max_new_tokens or cfg.evaluate.max_new_tokens,
                                     desc=f"reward spread {j + 1}/{g.group_size}", sampling=sampling)
        scores = score_all(rewards, [a.text for a in answers], rows)
        by_round.append((scores, total(rewards, scores)))
    grouped = [by_round[j][1][k] for k in range(len(rows)) for j in range(g.group_size)]  # prompt by prompt
    means = {r.name: round(sum(s or 0.0 for scores, _ in by_round for s in scores[r.name])
                           / (len(rows) * g.group_size), 4) for r in rewards}
    found = spread(grouped, g.group_size)
    return {**found, "prompts": len(rows), "temperature": g.temperature, "per_reward": means,
            "rewards": [{"name": r.name, "weight": r.weight} for r in rewards],
            "advice": advice(found)}


def advice(found: dict) -> str:
    """What the spread says about GRPO's chances.

    >>> advice({"zero_spread_share": 0.9, "mean_reward": 0.1, "groups": 10})[:20]
    'Little to learn: 90%'
    """
    flat = found.get("zero_spread_share")
    if flat is None:
        return "no prompts were sampled"
    if flat >= 0.8:
        return (f"Little to learn: {flat:.0%} of the groups scored alike (all right or all wrong), so GRPO gets a "
                "signal from few prompts. Start from an SFT checkpoint (train.init_from), raise "
                "train.grpo.temperature or group_size, or add a reward with partial credit (field_accuracy)")
    return (f"{1 - flat:.0%} of the groups have answers that score differently: GRPO has a signal to learn from on "
            "those prompts")

