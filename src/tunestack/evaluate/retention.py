"""General-capability retention: did fine-tuning cost the model what it could already do?

Up to five suites, each a share of the base model's score, combined with `evaluate.retention.weights`:
- choices: multiple-choice questions from eight sets of OpenAI's `evals` registry and fourteen kinds of generated
  everyday skill (`tunestack.data.choices`), scored
  by log-likelihood (the option whose text is likelier as the assistant's answer is the model's answer) and adjusted
  for chance per question: right scores 1, wrong -1/(k-1) with k options, so guessing averages 0 and a model that
  has lost a set's knowledge scores 0 on it, not the 1/k an unadjusted accuracy keeps. A set the base model answers
  at chance holds nothing to lose and is left out (`tunestack.stats.informative`). It barely notices format bleed. A
  backend without log-likelihoods (a chat endpoint) skips it and records why.
- quartz alone (one of the choice sets, two options, not adjusted for chance), as runs before `choices` measured it.
- generative probes with reference answers: a probe passes when the answer contains a reference and is not written
  in the task's JSON format. This catches a model that answers "What is 2 + 3?" with `{"modality": ...`.
- instruction following (`tunestack.data.instructions`): a general prompt with one instruction that code checks (a
  word limit, a list of N items, all capitals, ...); an answer in the task's format fails it.
- lm-evaluation-harness tasks, where `evaluate.retention.lm_eval.tasks` names any (`tunestack.evaluate.harness`).
"""

from __future__ import annotations

from tunestack.data.suites import Choice
from tunestack.tables import SUITE_FIGURES

CHOICE_SYSTEM = "Answer the question."


def choice_messages(question: Choice) -> list[dict]:
    return [{"role": "system", "content": CHOICE_SYSTEM}, {"role": "user", "content": question.question}]


def score_quartz(generator, questions: list[Choice]) -> dict:
    """Accuracy of the likelier option as the assistant's answer. A backend without log-likelihoods (a chat
    endpoint) skips the suite, and the reason is recorded: retention then rests on the probes alone."""
    if questions and generator.cannot_score:
        return {"n": 0, "accuracy": None, "skipped": generator.cannot_score}
    correct = [int(k == q.answer) for k, q in zip(_picked(generator, questions, "quartz"), questions)]
    return {"n": len(questions), "accuracy": sum(correct) / len(questions) if questions else 0.0, "correct": correct}


def score_choices(generator, questions: list[Choice]) -> dict:
    """Each question's answer by log-likelihood, its accuracy and its chance-adjusted score (1 right, -1/(k-1)
    wrong), per set and in all; `tasks` names each question's set, in order, for the per-item pairing."""
    if questions and generator.cannot_score:
        return {"n": 0, "adjusted": None, "accuracy": None, "skipped": generator.cannot_score}
    picked = _picked(generator, questions, "choices")
    correct = [int(k == q.answer) for k, q in zip(picked, questions)]
    adjusted = [1.0 if ok else -1.0 / (len(q.options) - 1) for ok, q in zip(correct, questions)]
    by_task: dict[str, dict] = {}
    for q, ok, score in zip(questions, correct, adjusted):
        entry = by_task.setdefault(q.task, {"n": 0, "correct": 0, "adjusted": 0.0})
        entry["n"] += 1
        entry["correct"] += ok
        entry["adjusted"] += score
    n = len(questions)
    return {"n": n, "accuracy": sum(correct) / n if n else 0.0, "adjusted": sum(adjusted) / n if n else 0.0,
            "by_task": {t: {"n": e["n"], "accuracy": e["correct"] / e["n"], "adjusted": e["adjusted"] / e["n"]}
                        for t, e in by_task.items()},
            "tasks": [q.task for q in questions], "scores": adjusted}


def _picked(generator, questions: list[Choice], desc: str) -> list[int]:
    """The index of the likelier option of each question (mean log-probability per token as the answer)."""
    pairs = [(choice_messages(q), option) for q in questions for option in q.options]
    owners = [(qi, k) for qi, q in enumerate(questions) for k in range(len(q.options))]
    scores = generator.loglikelihood(pairs, desc=desc) if pairs else []
    best: dict[int, tuple[float, int]] = {}
    for (qi, k), score in zip(owners, scores):
        if qi not in best or score > best[qi][0]:
            best[qi] = (score, k)
    return [best.get(qi, (0, -1))[1] for qi in range(len(questions))]


def score_probes(generator, probes: list[dict], max_new_tokens: int = 48) -> dict:
    from tunestack.evaluate.metrics import looks_like_task_format, probe_passed

    prompts = [[{"role": "user", "content": p["prompt"]}] for p in probes]
    outputs = generator.generate(prompts, max_new_tokens, desc="probes")
    passed = [probe_passed(o.text, p["answers"]) for o, p in zip(outputs, probes)]
    bleed = [looks_like_task_format(o.text) for o in outputs]
    return {
        "n": len(probes),
        "pass_rate": sum(passed) / len(probes) if probes else 0.0,
        "format_bleed_rate": sum(bleed) / len(probes) if probes else 0.0,
        "passed": [int(ok) for ok in passed],
        "answers": [{"id": p["id"], "answer": o.text, "passed": ok} for p, o, ok in zip(probes, outputs, passed)],
    }


def by_kind(items: list[dict], passed: list[bool]) -> dict[str, float]:
    kinds: dict[str, list[int]] = {}
    for item, ok in zip(items, passed):
        kinds.setdefault(item["kind"], []).append(int(ok))
    return {kind: sum(v) / len(v) for kind, v in kinds.items()}


def score_instructions(generator, items: list[dict], max_new_tokens: int = 64) -> dict:
    from tunestack.data.instructions import kept
    from tunestack.evaluate.metrics import looks_like_task_format

    outputs = generator.generate([[{"role": "user", "content": i["prompt"]}] for i in items], max_new_tokens,
                                 desc="instructions") if items else []
    bleed = [looks_like_task_format(o.text) for o in outputs]
    passed = [kept(item, o.text, b) for item, o, b in zip(items, outputs, bleed)]
    return {
        "n": len(items),
        "pass_rate": sum(passed) / len(items) if items else 0.0,
        "format_bleed_rate": sum(bleed) / len(items) if items else 0.0,
        "by_kind": by_kind(items, passed),
        "passed": [int(ok) for ok in passed],
        "answers": [{"id": i["id"], "kind": i["kind"], "answer": o.text, "passed": ok}
                    for i, o, ok in zip(items, outputs, passed)],
    }


SUITES = tuple(SUITE_FIGURES.values())
"""Each retention suite and the field that holds its score."""


def suite_scores(scores: dict, base: dict, suite: str, field: str) -> tuple[float, float]:
    """A suite's score and the base model's: for the choice suite, the mean over the questions of the sets the base
    model answers above chance (`tunestack.stats.informative`; every question where no per-question scores were
    kept), else the suite's own figure."""
    from tunestack.stats import informative, suite_pair

    pair = suite_pair(scores, base, suite) if suite == "choices" else None
    if pair is None:
        return scores[suite][field], base[suite][field]
    counted = float(informative(base).sum())
    return (float(pair[0].sum() / counted), float(pair[1].sum() / counted)) if counted else (0.0, 0.0)


def informative_sets(base: dict) -> list[str]:
    """The choice sets that count in retention (the base model answers them above chance)."""
    from tunestack.stats import informative

    mask = informative(base)
    tasks = (base.get("choices") or {}).get("tasks") or []
    return sorted({t for t, m in zip(tasks, mask) if m} if mask is not None else set(tasks))


ANSWERED = ("probes", "instructions")
"""The suites whose scores carry each answer's text (kept in the outputs, not in a row of results)."""


def without_answers(row: dict) -> dict:
    """The row with the answer texts dropped from its suites' scores."""
    return {**row, **{suite: {k: v for k, v in row[suite].items() if k != "answers"}
                      for suite in ANSWERED if row.get(suite)}}


def combine(scores: dict, base: dict, weights: dict[str, float]) -> dict:
    """Retention as a share of the base model's score, per suite and combined; `general_by_suite` has each suite's
    absolute score beside the base model's and the share (a suite either model skipped is left out).

    >>> base = {"probes": {"n": 4, "pass_rate": 0.5}, "quartz": {"n": 10, "accuracy": 0.6}}
    >>> tuned = {"probes": {"n": 4, "pass_rate": 0.25}, "quartz": {"n": 10, "accuracy": 0.6}}
    >>> even = {"probes": 0.5, "quartz": 0.5, "instructions": 0.5}
    >>> combine(tuned, base, even)["general_retention"], combine(tuned, base, even)["general_by_suite"]["probes"]
    (0.75, {'score': 0.25, 'base': 0.5, 'share': 0.5})
    """
    from tunestack.evaluate.metrics import relative

    general, used = {}, {}
    for suite, field in SUITES:
        if (scores.get(suite) or {}).get("n") and (base.get(suite) or {}).get("n"):
            score, reference = suite_scores(scores, base, suite, field)
            if suite == "choices" and not reference:
                continue  # every set at chance for the base model: nothing to retain
            general[suite] = {"score": score, "base": reference, "share": relative(score, reference)}
            if weights.get(suite, 0) > 0:
                used[suite] = weights[suite]
    total = sum(used.values())
    if "choices" in general:
        general["choices"]["informative"] = informative_sets(base)
    combined = sum(general[k]["share"] * used[k] for k in used) / total if total else 1.0
    return {"general_retention": combined, "retention_by_suite": {k: v["share"] for k, v in general.items()},
            "general_by_suite": general}
