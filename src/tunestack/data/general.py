"""The general-capability side of prepare: the suites training must not leak into, and the general mix.

Training rows (task rows and general-mix rows alike) that overlap the general eval suites (the probes and every
quartz question) are removed like any eval leak, so retention is measured on questions the model never trained on.
The self-replay prompt pool is decontaminated the same way and written for the train stage, which generates the
base model's answers to it.
"""

from __future__ import annotations

import json
import logging
import math

from tunestack.config import Config

log = logging.getLogger("tunestack")
ADVISED_SHARE = (0.10, 0.15)


def replay_count(n_task: int, share: float) -> int:
    """General rows needed so they make up `share` of the mixed set.

    >>> replay_count(440, 0.12)
    60
    """
    return math.ceil(n_task * share / (1 - share)) if share > 0 else 0


def general_suite(cfg: Config) -> list[tuple[str, str, str]]:
    """(suite name, question, answer) for every general eval item: all probes, the instruction items (no answer:
    the check is code), the multiple-choice questions any look can draw (with their options) and all quartz
    questions."""
    from tunestack.data.instructions import build_instructions
    from tunestack.data.suites import load_probes, load_quartz, quartz_path

    ret = cfg.evaluate.retention
    items = [("probes", p["prompt"], (p.get("answers") or [""])[0]) for p in load_probes(ret.probes)]
    items += [("instructions", i["prompt"], "") for i in build_instructions(ret.instructions, cfg.run.seed)]
    if ret.choices:  # every question a look of select or the quantize gate can draw (`tunestack.evaluate.looks`)
        from tunestack.data.choices import stratified

        most = round(ret.choices * cfg.select.retention_growth ** (cfg.select.retention_looks - 1))
        items += [("choices", c.question + "\n" + "\n".join(c.options), c.options[c.answer])
                  for c in stratified(int(most), cfg.run.seed)]
    if ret.quartz_examples:
        with quartz_path().open(encoding="utf-8") as fh:
            total = sum(1 for line in fh if line.strip())
        items += [("quartz", c.question + "\n" + "\n".join(c.options), c.options[c.answer])
                  for c in load_quartz(total, cfg.run.seed)]
    return items


PER_EVAL = 24
"""Prompts taken from each eval set of the `evals` package, so that no one task dominates the pool."""


def replay_pool(needed: int, seed: int) -> list[dict]:
    """Prompts for self-replay, `needed` of them where the sources allow: the 120 built-in general prompts first,
    then, for a larger training set, prompts drawn from the `evals` package's registry (several hundred eval
    sets: reasoning, coding, translation, trivia, formats), at most `PER_EVAL` from each, in an order fixed by
    `seed`. The choice sets of the retention suite (`tunestack.data.choices`) are never drawn from; prepare decontaminates the pool against every eval
    item and probe."""
    from tunestack.data.suites import load_replay_prompts

    pool = load_replay_prompts()
    if needed <= len(pool):
        return pool
    seen = {p["prompt"] for p in pool}
    extra = [p for p in evals_prompts(seed) if p["prompt"] not in seen and not seen.add(p["prompt"])]
    return pool + extra[: needed - len(pool)]


def evals_prompts(seed: int) -> list[dict]:
    """Single-turn prompts (system and user text joined) from the `evals` registry, shuffled with `seed`."""
    import random

    from tunestack.data.choices import SETS
    from tunestack.data.suites import registry_data

    registry = registry_data()
    scored = {name for files, _ in SETS.values() for name in files}
    prompts = []
    for path in sorted(registry.rglob("*.jsonl")):
        if path.relative_to(registry).as_posix() in scored or path.parent.name == "quartz" or \
                path.stat().st_size > 64 << 20:
            continue
        taken = 0
        with path.open(encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh):
                if taken == PER_EVAL or number > 20 * PER_EVAL:
                    break
                prompt = _single_turn(line)
                if prompt:
                    prompts.append({"id": f"evals:{path.relative_to(registry)}:{number + 1}", "prompt": prompt})
                    taken += 1
    random.Random(seed).shuffle(prompts)
    return prompts


def _single_turn(line: str) -> str | None:
    """The prompt of a one-question eval row (`input`: optional system turns then one user turn), 20-1500
    characters; None for anything else (few-shot samples, multi-turn dialogues, unparsable lines)."""
    try:
        turns = json.loads(line).get("input")
    except (ValueError, AttributeError):
        return None
    if isinstance(turns, str):
        turns = [{"role": "user", "content": turns}]
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
        return None
    roles = [t.get("role") for t in turns]
    if roles[-1] != "user" or roles.count("user") != 1 or set(roles) - {"system", "user"}:
        return None
    text = "\n\n".join(str(t.get("content") or "").strip() for t in turns).strip()
    return text if 20 <= len(text) <= 1500 else None


def share_warning(share: float) -> str | None:
    """A warning when the general share is outside the advised 10-15%.

    >>> share_warning(0.12) is None, share_warning(0.05) is not None
    (True, True)
    """
    low, high = ADVISED_SHARE
    if share == 0:
        return ("train.general_mix.share is 0: nothing guards against catastrophic forgetting; 10-15% general "
                "examples is advised")
    if not low <= share <= high:
        return (f"train.general_mix.share is {share:.0%}, outside the advised {low:.0%}-{high:.0%}: less risks "
                "forgetting, more dilutes the task")
    return None
