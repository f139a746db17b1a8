"""Task and format metrics on generated text. Pure: no torch, no disk.

Every metric here is higher-is-better and lies in [0, 1].
"""

from __future__ import annotations

import json
import math

import jsonschema


def parse_json_object(text: str) -> dict | None:
    """The answer as a JSON object, or None.

    >>> parse_json_object(' {"a": 1} ')
    {'a': 1}
    >>> parse_json_object('The answer is 5') is None
    True
    """
    try:
        value = json.loads(text.strip())
    except (json.JSONDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def exact_match(prediction: str, reference: str) -> bool:
    """Equal as JSON objects when both parse (key order and spacing do not matter), else as stripped text."""
    pred, ref = parse_json_object(prediction), parse_json_object(reference)
    if ref is not None:
        return pred == ref
    return prediction.strip() == reference.strip()


def field_scores(prediction: str, reference: str) -> dict[str, bool]:
    """For a JSON reference: which of its fields the prediction got right (all wrong if it does not parse).

    >>> field_scores('{"a": 1, "b": 3}', '{"a": 1, "b": 2}')
    {'a': True, 'b': False}
    """
    ref = parse_json_object(reference)
    if ref is None:
        return {}
    pred = parse_json_object(prediction) or {}
    return {key: key in pred and pred[key] == value for key, value in ref.items()}


def format_ok(prediction: str, kind: str, schema: dict | None = None) -> bool:
    """Does the answer have the required format: a JSON object (valid against `schema`), or anything for 'none'."""
    if kind == "none":
        return True
    obj = parse_json_object(prediction)
    if obj is None:
        return False
    if kind == "json_schema":
        return jsonschema.Draft202012Validator(schema).is_valid(obj)
    return True


def looks_like_task_format(answer: str) -> bool:
    """Format bleed: a general question answered as a JSON object (or a fenced JSON block)."""
    text = answer.strip().removeprefix("```json").removeprefix("```").strip()
    return text.startswith("{") or parse_json_object(text) is not None


def probe_passed(answer: str, accepted: list[str]) -> bool:
    """A general probe passes when the answer contains an accepted string and is not in the task's JSON format.

    >>> probe_passed("The capital of France is Paris.", ["Paris"])
    True
    >>> probe_passed('{"finding": "Paris"}', ["Paris"])
    False
    """
    if looks_like_task_format(answer):
        return False
    lowered = answer.lower()
    return any(option.lower() in lowered for option in accepted)


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    >>> tuple(round(x, 3) for x in wilson_interval(50, 100))
    (0.404, 0.596)
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def task_metrics(predictions: list[str], references: list[str], kind: str, schema: dict | None) -> dict:
    """Exact-match accuracy, mean per-field accuracy, accuracy of each field, and format compliance."""
    exact = [exact_match(p, r) for p, r in zip(predictions, references)]
    fields = [field_scores(p, r) for p, r in zip(predictions, references)]
    per_field: dict[str, list[bool]] = {}
    for scores in fields:
        for key, ok in scores.items():
            per_field.setdefault(key, []).append(ok)
    field_accuracy = {key: mean(oks) for key, oks in per_field.items()}
    low, high = wilson_interval(sum(exact), len(exact))
    return {
        "n": len(exact),
        "task_accuracy": mean(exact),
        "task_accuracy_ci95": [low, high],
        "field_accuracy": mean(field_accuracy.values()) if field_accuracy else mean(exact),
        "per_field_accuracy": field_accuracy,
        "format_compliance": mean(format_ok(p, kind, schema) for p in predictions),
    }


def relative(score: float, base: float) -> float:
    """Share of the base model's score; 1.0 when the base scores 0 (nothing to lose)."""
    return score / base if base > 0 else 1.0
