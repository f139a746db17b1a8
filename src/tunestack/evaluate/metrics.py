"""Task and format metrics on generated text. Pure: no torch, no disk.

Each task metric scores one answer against its reference: `metric(prediction, reference, **params)` returns a bool,
a number, or a dict of them for a metric with parts (per-field accuracy). `tunestack.evaluate.registry` registers
them by name, each with its direction; `score_answers` averages them over an eval set. The built-ins here are all
higher-is-better and lie in [0, 1].
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache

from tunestack.errors import StageError
from tunestack.schemas import validator


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


def field_accuracy(prediction: str, reference: str) -> dict[str, bool]:
    """Per-field scores of a JSON answer; a reference that is not a JSON object is one field, `answer`, scored by
    exact match.

    >>> field_accuracy('{"a": 1, "b": 3}', '{"a": 1, "b": 2}'), field_accuracy("Paris", "Paris")
    ({'a': True, 'b': False}, {'answer': True})
    """
    return field_scores(prediction, reference) or {"answer": exact_match(prediction, reference)}


def contains(prediction: str, reference: str, ignore_case: bool = True, separator: str | None = None) -> bool:
    """The reference appears in the answer; with `separator`, the reference lists accepted answers and any counts.

    >>> contains("The capital is Paris.", "paris"), contains("It is 5.", "five|5", separator="|")
    (True, True)
    """
    accepted = [part.strip() for part in reference.split(separator)] if separator else [reference.strip()]
    text = prediction.casefold() if ignore_case else prediction
    return any(part and (part.casefold() if ignore_case else part) in text for part in accepted)


@lru_cache(maxsize=64)
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


def regex_match(prediction: str, reference: str, pattern: str, ignore_case: bool = False) -> bool:
    """The text `pattern` extracts from the answer (its first group, else the whole match; the first match counts)
    equals the reference, both stripped.

    >>> regex_match("Reasoning... Answer: 42", "42", pattern=r"Answer:\\s*(\\S+)")
    True
    >>> regex_match("no answer here", "42", pattern=r"Answer:\\s*(\\S+)")
    False
    """
    found = _compiled(pattern, ignore_case).search(prediction)
    if found is None:
        return False
    got = (found.group(1) if found.re.groups else found.group(0)) or ""
    if ignore_case:
        return got.strip().casefold() == reference.strip().casefold()
    return got.strip() == reference.strip()


_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def parse_number(text: str) -> float | None:
    """The last number in the text (thousands separators allowed), or None.

    >>> parse_number("so the total is 1,250.5 dollars"), parse_number("none") is None
    (1250.5, True)
    """
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].rstrip(",").replace(",", ""))
    except ValueError:
        return None


def numeric(prediction: str, reference: str, abs_tol: float = 0.0, rel_tol: float = 0.0) -> bool:
    """The answer's last number is within `abs_tol`, or `rel_tol` times the reference, of the reference's number.

    >>> numeric("about 3.14", "3.14159", abs_tol=0.01), numeric("3", "3.5")
    (True, False)
    """
    got, want = parse_number(prediction), parse_number(reference)
    if got is None or want is None:
        return False
    return abs(got - want) <= max(abs_tol, rel_tol * abs(want))


def choice_label(text: str, labels: str = "ABCD") -> str | None:
    """The option label an answer picks: `B`, `(B)`, `B) ...`, `B. ...`, or `Answer: B` / `the answer is B`. Only
    upper-case labels count, and a bare label must stand alone, so "A cat" picks nothing.

    >>> [choice_label(t) for t in ["B", "(C) because", "D. Paris", "The answer is A.", "A cat"]]
    ['B', 'C', 'D', 'A', None]
    """
    options = re.escape(labels)
    text = text.strip()
    found = re.match(rf"\(([{options}])\)|([{options}])(?=$|[.):,\n])", text)
    if found is None:
        found = re.search(rf"(?i:answer)(?:\s+is)?\s*[:\-]?\s*\(?([{options}])\b", text)
    if found is None:
        return None
    return next(group for group in found.groups() if group)


def choice(prediction: str, reference: str, labels: str = "ABCD") -> bool:
    """Choice accuracy: the answer picks the reference's option label.

    >>> choice("(B) because it floats", "B"), choice("A", "B")
    (True, False)
    """
    picked = choice_label(prediction, labels)
    return picked is not None and picked == choice_label(reference, labels)


def format_ok(prediction: str, kind: str, schema: dict | None = None) -> bool:
    """Does the answer have the required format: a JSON object (valid against `schema`), or anything for 'none'."""
    if kind == "none":
        return True
    obj = parse_json_object(prediction)
    if obj is None:
        return False
    if kind == "json_schema":
        return validator(schema).is_valid(obj)  # compiled once per schema, not once per answer
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


def aggregate(name: str, scores: list) -> tuple[float, list[float] | None, dict[str, float]]:
    """One metric over an eval set: its mean, a Wilson 95% interval when every score is 0/1, and the mean of each
    part for a metric with parts (whose value is then the mean of its parts, so each field weighs the same).

    >>> value, interval, _ = aggregate("m", [True, False, True, True])
    >>> value, [round(x, 3) for x in interval]
    (0.75, [0.301, 0.954])
    >>> aggregate("fields", [{"a": True, "b": False}, {"a": True, "b": True}])
    (0.75, None, {'a': 1.0, 'b': 0.5})
    """
    if scores and all(isinstance(s, dict) for s in scores):
        parts: dict[str, list[float]] = {}
        for row in scores:
            for part, value in row.items():
                parts.setdefault(part, []).append(_number(name, value))
        means = {part: mean(values) for part, values in parts.items()}
        return mean(means.values()), None, means
    values = [_number(name, s) for s in scores]
    binary = all(v in (0.0, 1.0) for v in values)
    interval = list(wilson_interval(int(sum(values)), len(values))) if binary else None
    return mean(values), interval, {}


def _number(name: str, value) -> float:
    if isinstance(value, (bool, int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    raise StageError(f"metric '{name}' returned {value!r} ({type(value).__name__}); a metric returns a number or a "
                     "bool for each answer, or a dict of them for a metric with parts (never NaN): fix the metric")


def score_answers(predictions: list[str], references: list[str], metrics: list, format_check,
                  contexts: list[dict] | None = None) -> dict:
    """Every task metric over the eval set (`metrics`), the first also as `task_accuracy`, the headline, and format
    compliance (`format_check(answer) -> bool`); `per_example` keeps each answer's scores, which selection
    resamples for its noise intervals. A metric is named by `.key` and called as
    `metric(prediction, reference, tools)`, as `tunestack.evaluate.registry.bind_metrics` makes them. `contexts`
    (one per row: `tools`, and whether the reference `calls`): a row whose reference calls tools has its format
    checked as calls (`format_verdict`) rather than by `format_check`."""
    contexts = contexts or [{} for _ in predictions]
    values, intervals, parts, each = {}, {}, {}, {}
    for metric in metrics:
        scores = [metric(p, r, c.get("tools")) for p, r, c in zip(predictions, references, contexts)]
        value, interval, part = aggregate(metric.key, scores)
        each[metric.key] = [s if isinstance(s, dict) else float(s) for s in scores]
        values[metric.key] = value
        if interval is not None:
            intervals[metric.key] = interval
        if part:
            parts[metric.key] = part
    first = metrics[0].key
    formats = [format_verdict(p, bool(c.get("calls")), format_check) for p, c in zip(predictions, contexts)]
    return {
        "n": len(predictions),
        "metrics": values,
        "metrics_ci95": intervals,
        "metric_parts": parts,
        "task_accuracy": values[first],
        "task_accuracy_ci95": intervals.get(first),
        "field_accuracy": values.get("field_accuracy"),
        "per_field_accuracy": parts.get("field_accuracy", {}),
        "format_compliance": mean(formats),
        "per_example": {"metrics": {**each, "task_accuracy": each[first]}, "format": [int(f) for f in formats]},
    }


def format_verdict(prediction: str, calls: bool, format_check) -> bool:
    """One scored answer's format: where the reference calls tools, that it parses as calls; else the check."""
    from tunestack.evaluate.tool_metrics import call_shape_ok

    return call_shape_ok(prediction) if calls else bool(format_check(prediction))


def relative(score: float, base: float) -> float:
    """Share of the base model's score; 1.0 when the base scores 0 (nothing to lose)."""
    return score / base if base > 0 else 1.0
