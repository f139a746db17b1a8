"""The general-capability side of prepare: the suites training must not leak into, and the general mix.

Training rows (task rows and general-mix rows alike) that overlap the general eval suites (the probes and every
quartz question) are removed like any eval leak, so retention is measured on questions the model never trained on.
The self-replay prompt pool is decontaminated the same way and written for the train stage, which generates the
base model's answers to it.
"""

from __future__ import annotations

import logging

from tunestack.config import Config

log = logging.getLogger("tunestack")
ADVISED_SHARE = (0.10, 0.15)


def general_suite(cfg: Config) -> list[tuple[str, str, str]]:
    """(suite name, question, answer) for every general eval item: all probes and all quartz questions (with their
    options)."""
    from tunestack.evaluate.retention import load_probes, load_quartz, quartz_path

    ret = cfg.evaluate.retention
    items = [("probes", p["prompt"], (p.get("answers") or [""])[0]) for p in load_probes(ret.probes)]
    if ret.quartz_examples:
        with quartz_path().open(encoding="utf-8") as fh:
            total = sum(1 for line in fh if line.strip())
        items += [("quartz", c.question + "\n" + "\n".join(c.options), c.options[c.answer])
                  for c in load_quartz(total, cfg.run.seed)]
    return items


def replay_pool() -> list[dict]:
    from tunestack.evaluate.retention import load_replay_prompts

    return load_replay_prompts()


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
