"""General-capability retention: did fine-tuning cost the model what it could already do?

Up to four suites, each a share of the base model's score, combined with `evaluate.retention.weights`:
- quartz (two-choice science questions shipped in OpenAI's `evals` package), scored by log-likelihood: the option
  whose text is likelier as the assistant's answer wins. It barely notices format bleed. A backend without
  log-likelihoods (a chat endpoint) skips it and records why; retention then rests on the probes.
- generative probes with reference answers: a probe passes when the answer contains a reference and is not written
  in the task's JSON format. This catches a model that answers "What is 2 + 3?" with `{"modality": ...`.
- instruction following (`tunestack.data.instructions`): a general prompt with one instruction that code checks (a
  word limit, a list of N items, all capitals, ...); an answer in the task's format fails it.
- lm-evaluation-harness tasks, where `evaluate.retention.lm_eval.tasks` names any (`tunestack.evaluate.harness`).
"""

from __future__ import annotations

from tunestack.data.suites import Choice
from tunestack.tables import SUITE_FIGURES

QUARTZ_SYSTEM = "Answer the question."


def quartz_messages(question: Choice) -> list[dict]:
    return [{"role": "system", "content": QUARTZ_SYSTEM}, {"role": "user", "content": question.question}]


def score_quartz(generator, questions: list[Choice]) -> dict:
    """Accuracy of the likelier option as the assistant's answer. A backend without log-likelihoods (a chat
    endpoint) skips the suite, and the reason is recorded: retention then rests on the probes alone."""
    if questions and generator.cannot_score:
        return {"n": 0, "accuracy": None, "skipped": generator.cannot_score}
    pairs = [(quartz_messages(q), option) for q in questions for option in q.options]
    owners = [(qi, k) for qi, q in enumerate(questions) for k in range(len(q.options))]
    scores = generator.loglikelihood(pairs, desc="quartz") if pairs else []
    best: dict[int, tuple[float, int]] = {}
    for (qi, k), score in zip(owners, scores):
        if qi not in best or score > best[qi][0]:
            best[qi] = (score, k)
    correct = [int(best.get(qi, (0, -1))[1] == q.answer) for qi, q in enumerate(questions)]
    return {"n": len(questions), "accuracy": sum(correct) / len(questions) if questions else 0.0, "correct": correct}


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


def score_instructions(generator, items: list[dict], max_new_tokens: int = 64) -> dict:
    from tunestack.data.instructions import kept
    from tunestack.evaluate.metrics import looks_like_task_format

    outputs = generator.generate([[{"role": "user", "content": i["prompt"]}] for i in items], max_new_tokens,
                                 desc="instructions") if items else []
    bleed = [looks_like_task_format(o.text) for o in outputs]
    passed = [kept(item, o.text, b) for item, o, b in zip(items, outputs, bleed)]
    by_kind: dict[str, list[int]] = {}
    for item, ok in zip(items, passed):
        by_kind.setdefault(item["kind"], []).append(int(ok))
    return {
        "n": len(items),
        "pass_rate": sum(passed) / len(items) if items else 0.0,
        "format_bleed_rate": sum(bleed) / len(items) if items else 0.0,
        "by_kind": {kind: sum(v) / len(v) for kind, v in by_kind.items()},
        "passed": [int(ok) for ok in passed],
        "answers": [{"id": i["id"], "kind": i["kind"], "answer": o.text, "passed": ok}
                    for i, o, ok in zip(items, outputs, passed)],
    }


SUITES = tuple(SUITE_FIGURES.values())
"""Each retention suite and the field that holds its score."""


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
            score, reference = scores[suite][field], base[suite][field]
            general[suite] = {"score": score, "base": reference, "share": relative(score, reference)}
            if weights.get(suite, 0) > 0:
                used[suite] = weights[suite]
    total = sum(used.values())
    combined = sum(general[k]["share"] * used[k] for k in used) / total if total else 1.0
    return {"general_retention": combined, "retention_by_suite": {k: v["share"] for k, v in general.items()},
            "general_by_suite": general}
