"""Self-replay: the base model's own greedy answers to general prompts, mixed into training against forgetting.

The prompt pool is disjoint from the retention probes, so replay never teaches the test. Answers that do not end
with EOS within the length limit are dropped: training on a cut-off answer would teach the model to stop mid-sentence.
"""

from __future__ import annotations

import math

from tunestack.chat import render_prompt


def replay_count(n_task: int, share: float) -> int:
    """General rows needed so they make up `share` of the mixed set.

    >>> replay_count(440, 0.12)
    60
    """
    return math.ceil(n_task * share / (1 - share)) if share > 0 else 0


def self_replay(generator, prompts: list[dict], count: int, max_new_tokens: int) -> list[dict]:
    """Up to `count` chat rows: a general prompt and the base model's own answer."""
    if count == 0:
        return []
    pool = prompts[: min(len(prompts), math.ceil(count * 1.1) + 2)]  # a small margin for answers without EOS
    ids = [render_prompt(generator.tokenizer, [{"role": "user", "content": p["prompt"]}]) for p in pool]
    outputs = generator.generate(ids, max_new_tokens, desc="self-replay")
    rows = []
    for prompt, out in zip(pool, outputs):
        if out.ended_with_eos and out.text:
            rows.append({"messages": [{"role": "user", "content": prompt["prompt"]},
                                      {"role": "assistant", "content": out.text}],
                         "origin": "self_replay", "id": prompt["id"]})
    return rows[:count]
