"""General-capability retention: did fine-tuning cost the model what it could already do?

Two suites, combined into one share of the base model's score:
- quartz (two-choice science questions shipped in OpenAI's `evals` package), scored by log-likelihood: the option
  whose text is likelier as the assistant's answer wins. It barely notices format bleed. A backend without
  log-likelihoods (a chat endpoint) skips it and records why; retention then rests on the probes.
- generative probes with reference answers: a probe passes when the answer contains a reference and is not written
  in the task's JSON format. This catches a model that answers "What is 2 + 3?" with `{"modality": ...`.
"""

from __future__ import annotations

from tunestack.data.suites import Choice

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


def combine(scores: dict, base: dict, probe_weight: float) -> dict:
    """Retention as a share of the base model's score, per suite and combined; `general_by_suite` has each suite's
    absolute score beside the base model's and the share (a suite either model skipped is left out).

    >>> base = {"probes": {"n": 4, "pass_rate": 0.5}, "quartz": {"n": 10, "accuracy": 0.6}}
    >>> tuned = {"probes": {"n": 4, "pass_rate": 0.25}, "quartz": {"n": 10, "accuracy": 0.6}}
    >>> combine(tuned, base, 0.5)["general_retention"], combine(tuned, base, 0.5)["general_by_suite"]["probes"]
    (0.75, {'score': 0.25, 'base': 0.5, 'share': 0.5})
    """
    from tunestack.evaluate.metrics import relative

    general, weights = {}, {}
    for suite, field, weight in (("probes", "pass_rate", probe_weight), ("quartz", "accuracy", 1 - probe_weight)):
        if scores.get(suite, {}).get("n") and base.get(suite, {}).get("n"):
            score, reference = scores[suite][field], base[suite][field]
            general[suite] = {"score": score, "base": reference, "share": relative(score, reference)}
            weights[suite] = weight
    total = sum(weights.values())
    combined = sum(general[k]["share"] * weights[k] for k in general) / total if total else 1.0
    return {"general_retention": combined, "retention_by_suite": {k: v["share"] for k, v in general.items()},
            "general_by_suite": general}
