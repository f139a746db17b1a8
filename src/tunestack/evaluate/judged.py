"""The LLM judge on the evaluate stage's answers (`judge.enabled`).

Every model's task answers, as the evaluate stage wrote them (`<model>.outputs.jsonl`), are scored 1-5 with the
`correctness` rubric against the reference. A model's `judge_score` is its mean score mapped onto 0-1 ((mean - 1) /
4), so it sits on the same scale as the other objectives; unreadable replies are counted, not scored. The response
cache keeps a re-run from paying twice; the client's token and cost accounting goes into the evaluate manifest as
`judge_usage`, which `tunestack cost` reads. Whether the score counts in selection is the select stage's decision
(`judge_counts`: only after a calibration that clears the threshold).
"""

from __future__ import annotations

import logging

from tunestack.config import Config
from tunestack.rundir import RunDir, read_jsonl
from tunestack.tools import message_text

log = logging.getLogger("tunestack")


def prompt_text(messages: list[dict]) -> str:
    """The conversation before the answer, as the judge reads it.

    >>> prompt_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}])
    'system: Be brief.\\nuser: 2+2?'
    """
    return "\n".join(f"{m['role']}: {message_text(m)}" for m in messages)  # a call as name(arguments)


def judge_models(cfg: Config, run: RunDir, eval_rows: list[dict], rows: list[dict], transport=None) -> dict | None:
    """Add `judge_score` and `judge_unreadable` to each model row; return the judge's usage (None when disabled)."""
    if not cfg.judge.enabled:
        return None
    from tunestack.judge.rubric import get_rubric
    from tunestack.judge.stage import EVALUATION_RUBRIC, JudgeItem, judge_client, score_items

    client = judge_client(cfg.judge, transport)
    rubric = get_rubric(EVALUATION_RUBRIC)
    prompts = [prompt_text(row["messages"][:-1]) for row in eval_rows]
    for row in rows:
        outputs = read_jsonl(run.root / "evaluate" / f"{row['name']}.outputs.jsonl")
        items = [JudgeItem(prompt=p, answer=o["prediction"], reference=o["reference"])
                 for p, o in zip(prompts, outputs)]
        scores = score_items(client, items, rubric, cfg.judge.max_tokens)
        read = [s.score for s in scores if s.ok]
        row["judge_score"] = round((sum(read) / len(read) - 1) / 4, 4) if read else None
        row["judge_unreadable"] = len(scores) - len(read)
        log.info("[evaluate] judge: %s scored %s (%d of %d replies readable)", row["name"],
                 "-" if row["judge_score"] is None else f"{row['judge_score']:.1%}", len(read), len(scores))
    return client.summary()
