"""GRPO's rewards: the task's own metrics, scoring sampled answers the way the evaluate stage scores greedy ones.

`train.grpo.rewards` names each reward: a metric of the registry (`tunestack.evaluate.registry`), `format` (the
evaluate stage's format check), `judge` (the LLM judge, 1-5 mapped to 0-1) or a user function with a metric's
signature. An answer is scored exactly as evaluation scores it: against the row's reference turn, a tool call in
canonical form (`tunestack.tools.scored_answer`), the row's tool definitions passed to the metrics that take them.
A metric with parts (per-field accuracy) gives the share of parts right. A user function runs under a time limit
(`train.grpo.reward_timeout`): an answer that runs out scores 0 and is counted.

`spread` sums up rewards of groups of answers to the same prompt (the `assess` figure, and what GRPO learns from: a
group whose answers all score the same has no signal). Pure apart from the judge's requests: no torch, no disk.
"""

from __future__ import annotations

import logging
import re
import signal
import statistics
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from tunestack.config import Config, RewardSpec
from tunestack.errors import ConfigError, StageError
from tunestack.evaluate.metrics import format_verdict
from tunestack.evaluate.registry import BUILTINS, TOOL_METRICS, BoundMetric, FormatCheck, param_problem, \
    resolve_metric
from tunestack.tools import answer_text, scored_answer, tools_of

log = logging.getLogger("tunestack")


@dataclass
class Reward:
    """One reward: `score(answers, rows) -> [float | None]` (None: this reward could not score that answer)."""

    name: str
    weight: float
    score: Callable[[list[str], list[dict]], list[float | None]]
    timed: bool = False
    """A user's function, run under the time limit."""


@dataclass
class Timeouts:
    """Answers whose user reward ran out of time, per reward."""

    limit: float
    counts: dict[str, int] = field(default_factory=dict)


def default_specs(cfg: Config) -> list[RewardSpec]:
    """`train.grpo.rewards`, or when empty the headline metric (weight 1) and, with a format check, `format` (0.5)."""
    if cfg.train.grpo.rewards:
        return list(cfg.train.grpo.rewards)
    head = cfg.evaluate.metrics[0]
    specs = [RewardSpec(metric=head.name, params=dict(head.params))]
    if cfg.evaluate.format.type != "none":
        specs.append(RewardSpec(metric="format", weight=0.5))
    return specs


def reward_specs(cfg: Config) -> list[RewardSpec]:
    """The rewards of the config: with an OpenAI grader (`train.grpo.openai_grader`), those it describes after any
    set in `train.grpo.rewards`; without one, `default_specs`."""
    if not cfg.train.grpo.openai_grader:
        return default_specs(cfg)
    from tunestack.evaluate.graders import grader_specs

    return list(cfg.train.grpo.rewards) + grader_specs(cfg.train.grpo.openai_grader)


def bind_rewards(cfg: Config, format_check: FormatCheck, timeouts: Timeouts | None = None,
                 judge=None) -> list[Reward]:
    """Every reward of the config, each problem (unknown metric, bad params) reported at once with its YAML path.
    `judge`: a `JudgeReward` for a `judge` reward (the caller opens it: it talks to an endpoint)."""
    rewards, problems, names = [], [], set()
    timeouts = timeouts or Timeouts(cfg.train.grpo.reward_timeout)
    for i, spec in enumerate(reward_specs(cfg)):
        where = f"train.grpo.rewards.{i}"
        try:
            reward = _bind(spec, where, format_check, timeouts, judge)
        except ConfigError as exc:
            problems += exc.problems
            continue
        while reward.name in names:  # the same metric twice (other params): keep both, named apart
            reward.name += "_"
        names.add(reward.name)
        rewards.append(reward)
    if problems:
        raise ConfigError(problems)
    return rewards


def _bind(spec: RewardSpec, where: str, format_check: FormatCheck, timeouts: Timeouts, judge) -> Reward:
    if spec.metric == "format":
        return Reward("format", spec.weight, lambda answers, rows: [float(format_ok(a, r, format_check))
                                                                     for a, r in zip(answers, rows)])
    if spec.metric == "judge":
        if judge is None:
            raise ConfigError([(f"{where}.metric", "reward 'judge' needs the judge endpoint (judge section)")])
        return Reward("judge", spec.weight, judge.score)
    metric = resolve_metric(spec.metric, f"{where}.metric")
    if metric.higher_is_better is False:
        raise ConfigError([(f"{where}.metric", f"metric '{spec.metric}' is lower-is-better; a reward must grow with "
                                               "a better answer: wrap it in a function that returns 1 - score")])
    problem = param_problem(metric, spec.params)
    if problem:
        raise ConfigError([(f"{where}.params", problem)])
    bound = BoundMetric(spec.metric.rpartition(":")[2], metric, True, dict(spec.params))
    timed = spec.metric not in BUILTINS and spec.metric not in TOOL_METRICS and not getattr(
        metric.score, "tunestack_builtin_reward", False)

    def score(answers: list[str], rows: list[dict]) -> list[float | None]:
        out = []
        for answer, row in zip(answers, rows):
            prediction, reference, tools = scored(answer, row)
            if timed:
                out.append(_timed(lambda: bound(prediction, reference, tools), timeouts, bound.key))
            else:
                out.append(as_number(bound.key, bound(prediction, reference, tools)))
        return out

    return Reward(bound.key, spec.weight, score, timed)


def scored(answer: str, row: dict) -> tuple[str, str, list[dict] | None]:
    """(prediction, reference, tools) of an answer to a training row, as the evaluate stage compares them."""
    turn = row["messages"][-1]
    return scored_answer(answer, turn), answer_text(turn), tools_of(row["messages"])


def format_ok(answer: str, row: dict, check: FormatCheck) -> bool:
    """The evaluate stage's format check: calls where the reference calls tools, else the configured check."""
    turn = row["messages"][-1]
    return format_verdict(scored_answer(answer, turn), bool(turn.get("tool_calls")), check)


def as_number(name: str, value) -> float:
    """One answer's score as a reward: a bool or number as it is, a metric with parts as the share of parts right.

    >>> as_number("m", True), as_number("fields", {"a": True, "b": False, "c": True, "d": True})
    (1.0, 0.75)
    """
    if isinstance(value, dict):
        return sum(float(v) for v in value.values()) / len(value) if value else 0.0
    if isinstance(value, (bool, int, float)) and value == value:
        return float(value)
    raise StageError(f"reward '{name}' returned {value!r} ({type(value).__name__}); a reward is a number or a bool "
                     "for each answer (or a dict of them for a metric with parts), never NaN: fix the function")


class _OutOfTime(Exception):
    pass


def _timed(call: Callable[[], object], timeouts: Timeouts, name: str) -> float:
    """A user function's reward, or 0 when it runs past the limit (counted). On the main thread an interval timer
    interrupts it; elsewhere it runs on a worker thread that is abandoned when it runs out."""
    try:
        with _limit(timeouts.limit):
            return as_number(name, call())
    except _OutOfTime:
        timeouts.counts[name] = timeouts.counts.get(name, 0) + 1
        if timeouts.counts[name] == 1:
            log.warning("[train] reward '%s' ran past train.grpo.reward_timeout (%.0f s) on an answer: it scores 0; "
                        "the train manifest counts every such answer", name, timeouts.limit)
        return 0.0


@contextmanager
def _limit(seconds: float):
    if threading.current_thread() is not threading.main_thread():
        yield  # no signals off the main thread: the caller's timeout does not apply (documented)
        return

    def expire(signum, frame):
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def total(rewards: list[Reward], scores: dict[str, list[float | None]]) -> list[float]:
    """Each answer's reward: the weighted sum of the rewards that scored it (TRL's own sum, a None counts 0).

    >>> r = [Reward("a", 1.0, None), Reward("b", 0.5, None)]
    >>> total(r, {"a": [1.0, 0.0], "b": [1.0, None]})
    [1.5, 0.0]
    """
    n = len(next(iter(scores.values()))) if scores else 0
    return [sum(r.weight * (scores[r.name][k] or 0.0) for r in rewards) for k in range(n)]


def score_all(rewards: list[Reward], answers: list[str], rows: list[dict]) -> dict[str, list[float | None]]:
    """Every reward of every answer, by reward name."""
    return {r.name: r.score(answers, rows) for r in rewards}


def spread(totals: list[float], group_size: int) -> dict:
    """What GRPO can learn from groups of answers to the same prompt (`totals`, group after group): the mean
    reward, each group's mean, the mean standard deviation within a group, and the share of groups whose answers all
    score the same (no signal: their advantages are all zero).

    >>> spread([1, 1, 0, 1, 0, 0, 0, 0], 4)["zero_spread_share"]
    0.5
    """
    groups = [totals[k:k + group_size] for k in range(0, len(totals), group_size)]
    stds = [statistics.pstdev(g) for g in groups if g]
    flat = [g for g in groups if g and max(g) - min(g) < 1e-9]
    return {"groups": len(groups), "group_size": group_size,
            "mean_reward": round(statistics.fmean(totals), 4) if totals else None,
            "mean_group_std": round(statistics.fmean(stds), 4) if stds else None,
            "zero_spread_share": round(len(flat) / len(groups), 4) if groups else None,
            "group_means": [round(statistics.fmean(g), 4) for g in groups if g]}


@dataclass
class JudgeReward:
    """The LLM judge as a reward: each answer scored 1-5 with a rubric and mapped to 0-1, or, for an OpenAI
    `score_model` grader, asked with the grader's own `messages` (templates filled in) and its reply's first number
    read within `score_range`. An unreadable reply gives None, which TRL leaves out of that answer's reward."""

    client: object
    rubric: object
    max_tokens: int
    messages: list[dict] | None = None
    score_range: tuple[float, float] = (0.0, 1.0)
    calls: int = 0

    def score(self, answers: list[str], rows: list[dict]) -> list[float | None]:
        self.calls += len(answers)
        if self.messages is not None:
            return self._graded(answers, rows)
        from tunestack.judge.stage import JudgeItem, score_items

        items = [JudgeItem(prompt=row["messages"][-2].get("content") or "", answer=answer,
                           reference=answer_text(row["messages"][-1])) for answer, row in zip(answers, rows)]
        scores = score_items(self.client, items, self.rubric, self.max_tokens)  # type: ignore[arg-type]
        return [None if s.score is None else (s.score - 1) / 4 for s in scores]

    def _graded(self, answers: list[str], rows: list[dict]) -> list[float | None]:
        batch = [[{"role": m["role"], "content": fill(m["content"], answer, answer_text(row["messages"][-1]))}
                  for m in self.messages or []] for answer, row in zip(answers, rows)]
        replies = self.client.complete_many(batch, {"temperature": 0.0, "max_tokens": self.max_tokens})  # type: ignore
        return [in_range(r.text, self.score_range) for r in replies]


_TEMPLATE = re.compile(r"\{\{\s*(sample\.output_text|sample\.output_json|item\.[A-Za-z_][\w.]*)\s*\}\}")


def fill(template: str, answer: str, reference: str) -> str:
    """An OpenAI grader template with the answer (`sample.output_text`/`output_json`) and the reference (any
    `item.<field>`) filled in.

    >>> fill("Answer: {{sample.output_text}} Reference: {{ item.reference_answer }}", "4", "four")
    'Answer: 4 Reference: four'
    """
    return _TEMPLATE.sub(lambda m: answer if m.group(1).startswith("sample") else reference, template)


def in_range(reply: str, score_range: tuple[float, float]) -> float | None:
    """The reply's first number mapped from `score_range` to 0-1, or None when it has none in range.

    >>> in_range("Score: 7/10", (0, 10)), in_range("none", (0, 1)), in_range("12", (0, 10))
    (0.7, None, None)
    """
    found = re.search(r"-?\d+(?:\.\d+)?", reply or "")
    low, high = score_range
    if found is None or not low <= float(found.group()) <= high:
        return None
    return (float(found.group()) - low) / (high - low)


def judge_reward(cfg: Config) -> JudgeReward | None:
    """The judge as a reward when one of the config's rewards is `judge` (its endpoint client opened), else None."""
    params = next((s.params for s in reward_specs(cfg) if s.metric == "judge"), None)
    if params is None:
        return None
    from tunestack.judge.rubric import get_rubric
    from tunestack.judge.stage import judge_client

    return JudgeReward(judge_client(cfg.judge), get_rubric(params.get("rubric") or "correctness"),
                       cfg.judge.max_tokens, params.get("messages"), tuple(params.get("range") or (0.0, 1.0)))


def judge_estimate(cfg: Config, calls: int, prompt_tokens: int, answer_tokens: int) -> dict:
    """What a judge reward will cost before the run: `calls` answers judged, each about `prompt_tokens` in (rubric,
    prompt, reference and answer) and a short reply out, at the judge's prices (None when they are not set)."""
    j = cfg.judge
    tokens_in, tokens_out = calls * prompt_tokens, calls * min(j.max_tokens, 64)
    usd = None
    if j.price_input_per_m is not None and j.price_output_per_m is not None:
        usd = round((tokens_in * j.price_input_per_m + tokens_out * j.price_output_per_m) / 1e6, 4)
    return {"calls": calls, "input_tokens": tokens_in, "output_tokens": tokens_out, "usd": usd,
            "answer_tokens": answer_tokens, "model": j.model, "base_url": j.base_url}
