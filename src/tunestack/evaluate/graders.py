"""OpenAI reinforcement fine-tuning graders read as GRPO rewards, for users moving a job off the API.

`train.grpo.openai_grader` names a JSON file holding the `grader` object of an OpenAI reinforcement fine-tuning job.
What maps:

- `string_check` (`eq`, `ne`, `like`, `ilike`) -> `string_check` below, 1 or 0;
- `text_similarity` with `fuzzy_match` -> `fuzzy_match` below (a similarity ratio in 0-1); the other similarity
  metrics (BLEU, ROUGE, cosine, ...) are refused with the reason;
- `python` -> its `grade(sample, item)` run here, under `train.grpo.reward_timeout`;
- `score_model` -> the judge reward (`judge` section), asked with the grader's own messages, its reply's number
  read within the grader's `range` and mapped to 0-1;
- `multi` -> its graders, weighted by `calculate_output` when that is a weighted sum of them (a formula that is not
  is refused).

Templates: the graded answer is `{{sample.output_text}}` (or `{{sample.output_json}}`), the reference any
`{{item.<field>}}`: here it is the row's reference answer (its last assistant turn), given under that field name (a
Python grader's `item` holds it as `reference_answer`, or the grader object's `reference_field`). Pure: reads nothing
but the grader file; the functions below score one answer each, like any metric.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from functools import lru_cache
from pathlib import Path

from tunestack.config import RewardSpec
from tunestack.errors import ConfigError

WHERE = "train.grpo.openai_grader"
_ITEM = re.compile(r"^\s*\{\{\s*item\.([A-Za-z_][\w.]*)\s*\}\}\s*$")
_SAMPLE = re.compile(r"^\s*\{\{\s*sample\.output_(text|json)\s*\}\}\s*$")
SIMILARITY = ("cosine", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")


def grader_specs(path: str | Path) -> list[RewardSpec]:
    """The rewards an OpenAI grader file describes; every problem reported at once, with the grader's path."""
    try:
        grader = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([(WHERE, f"cannot read {path}: {exc.strerror}")]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError([(WHERE, f"{path}, line {exc.lineno}: not JSON ({exc.msg})")]) from None
    grader = grader.get("grader", grader) if isinstance(grader, dict) else grader  # the job's method, or the grader
    grader = grader.get("reinforcement", {}).get("grader", grader) if isinstance(grader, dict) else grader
    problems: list[tuple[str, str]] = []
    specs = _specs(grader, 1.0, "grader", problems)
    if problems:
        raise ConfigError(problems)
    return specs


def _specs(grader, weight: float, where: str, problems: list) -> list[RewardSpec]:
    if not isinstance(grader, dict) or "type" not in grader:
        problems.append((f"{WHERE} ({where})", "expected a grader object with a `type`"))
        return []
    kind = grader["type"]
    if kind == "multi":
        return _multi(grader, weight, where, problems)
    handler = {"string_check": _string_check, "text_similarity": _similarity, "python": _python,
               "score_model": _score_model}.get(kind)
    if handler is None:
        what = "label_model graders (labels from a model) have no reward here: use score_model with a numeric " \
               "range, or a python grader" if kind == "label_model" else f"unknown grader type '{kind}'"
        problems.append((f"{WHERE} ({where})", what))
        return []
    try:
        return [handler(grader, weight)]
    except ValueError as exc:
        problems.append((f"{WHERE} ({where}: {grader.get('name') or kind})", str(exc)))
        return []


def _reference_field(template: str) -> str:
    found = _ITEM.match(template or "")
    if not found:
        raise ValueError(f"reference {template!r} is not one item field ({{{{item.<field>}}}}); here the reference "
                         "is the row's answer, named by such a field")
    return found.group(1)


def _graded(template: str) -> None:
    if not _SAMPLE.match(template or ""):
        raise ValueError(f"input {template!r} is not the sampled answer ({{{{sample.output_text}}}}); a grader of "
                         "another text has no counterpart here")


def _string_check(grader: dict, weight: float) -> RewardSpec:
    _graded(grader.get("input", ""))
    _reference_field(grader.get("reference", ""))
    operation = grader.get("operation")
    if operation not in ("eq", "ne", "like", "ilike"):
        raise ValueError(f"operation {operation!r}: expected eq, ne, like or ilike")
    return RewardSpec(metric="tunestack.evaluate.graders:string_check", weight=weight, params={"operation": operation})


def _similarity(grader: dict, weight: float) -> RewardSpec:
    _graded(grader.get("input", ""))
    _reference_field(grader.get("reference", ""))
    metric = grader.get("evaluation_metric")
    if metric != "fuzzy_match":
        raise ValueError(f"evaluation_metric {metric!r} has no counterpart here (only fuzzy_match maps); score the "
                         "answers with a task metric (train.grpo.rewards) or a python grader instead")
    return RewardSpec(metric="tunestack.evaluate.graders:fuzzy_match", weight=weight)


def _python(grader: dict, weight: float) -> RewardSpec:
    source = grader.get("source")
    if not isinstance(source, str) or "def grade" not in source:
        raise ValueError("a python grader needs `source` defining grade(sample, item)")
    try:
        compile(source, "<openai python grader>", "exec")
    except SyntaxError as exc:
        raise ValueError(f"its source does not compile: line {exc.lineno}: {exc.msg}") from None
    field = grader.get("reference_field", "reference_answer")
    return RewardSpec(metric="tunestack.evaluate.graders:python_grader", weight=weight,
                      params={"source": source, "field": field})


def _score_model(grader: dict, weight: float) -> RewardSpec:
    messages = grader.get("input")
    if not isinstance(messages, list) or not messages:
        raise ValueError("a score_model grader needs `input`, a list of messages")
    low, high = grader.get("range") or [0, 1]
    if not high > low:
        raise ValueError(f"range {[low, high]} is empty")
    texts = [m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
             for m in messages]
    return RewardSpec(metric="judge", weight=weight,
                      params={"messages": [{"role": m.get("role", "user"), "content": t}
                                           for m, t in zip(messages, texts)], "range": [low, high]})


def _multi(grader: dict, weight: float, where: str, problems: list) -> list[RewardSpec]:
    graders = grader.get("graders") or {}
    if not isinstance(graders, dict) or not graders:
        problems.append((f"{WHERE} ({where})", "a multi grader needs `graders`, a mapping of names to graders"))
        return []
    try:
        coefficients = linear_weights(grader.get("calculate_output", ""), list(graders))
    except ValueError as exc:
        problems.append((f"{WHERE} ({where}.calculate_output)", str(exc)))
        return []
    out = []
    for name, inner in graders.items():
        if coefficients[name] > 0:
            out += _specs(inner, weight * coefficients[name], f"{where}.graders.{name}", problems)
    return out


def linear_weights(formula: str, names: list[str]) -> dict[str, float]:
    """Each grader's weight in `calculate_output`, when it is a weighted sum of them (with a constant scale).

    >>> linear_weights("0.7 * exact + 0.3 * fuzzy", ["exact", "fuzzy"])
    {'exact': 0.7, 'fuzzy': 0.3}
    >>> linear_weights("(a + b) / 2", ["a", "b"])
    {'a': 0.5, 'b': 0.5}
    >>> linear_weights("a * b", ["a", "b"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'a * b' is not a weighted sum of the graders (a, b) with weights >= 0: ...
    """
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError:
        tree = None
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Load, ast.Add, ast.Sub, ast.Mult,
               ast.Div, ast.USub, ast.UAdd)
    bad = ValueError(f"{formula!r} is not a weighted sum of the graders ({', '.join(names)}) with weights >= 0: give "
                     f"calculate_output as one, e.g. {' + '.join(f'{1 / len(names):g} * {n}' for n in names)}")
    if tree is None or not all(isinstance(node, allowed) for node in ast.walk(tree)):
        raise bad
    code = compile(tree, "<calculate_output>", "eval")

    def value(point: dict[str, float]) -> float:
        try:
            return float(eval(code, {"__builtins__": {}}, point))  # noqa: S307 - arithmetic only, checked above
        except (NameError, ZeroDivisionError, TypeError):
            raise bad from None

    zero = value({n: 0.0 for n in names})
    weights = {n: value({m: float(m == n) for m in names}) - zero for n in names}
    probe = {n: 0.37 + 0.11 * k for k, n in enumerate(names)}
    if zero != 0 or any(w < 0 for w in weights.values()) or \
            abs(value(probe) - sum(weights[n] * probe[n] for n in names)) > 1e-9:
        raise bad
    return {n: round(w, 6) for n, w in weights.items()}


def string_check(prediction: str, reference: str, operation: str = "eq") -> bool:
    """OpenAI's string check: `eq`/`ne` compare the strings as they are, `like` is "contains", `ilike` the same
    ignoring case.

    >>> string_check("Paris", "Paris"), string_check("It is Paris.", "paris", "ilike"), string_check("a", "b", "ne")
    (True, True, True)
    """
    if operation == "eq":
        return prediction == reference
    if operation == "ne":
        return prediction != reference
    if operation == "like":
        return reference in prediction
    return reference.casefold() in prediction.casefold()


def fuzzy_match(prediction: str, reference: str) -> float:
    """How alike the two texts are, 0-1 (difflib's ratio of matching characters).

    >>> fuzzy_match("colour", "color") > 0.9, fuzzy_match("abc", "xyz")
    (True, 0.0)
    """
    return difflib.SequenceMatcher(None, prediction, reference).ratio()


@lru_cache(maxsize=8)
def _grade_function(source: str):
    namespace: dict = {}
    exec(compile(source, "<openai python grader>", "exec"), namespace)  # noqa: S102 - the user's own grader
    grade = namespace.get("grade")
    if not callable(grade):
        raise ConfigError([(WHERE, "the python grader's source defines no function grade(sample, item)")])
    return grade


def python_grader(prediction: str, reference: str, source: str, field: str = "reference_answer") -> float:
    """An OpenAI python grader's `grade(sample, item)` on one answer: `sample.output_text` the answer (and
    `output_json` when it parses), `item[field]` the reference answer.

    >>> source = "def grade(sample, item):\\n    return float(sample['output_text'] == item['answer'])"
    >>> python_grader("42", "42", source, field="answer")
    1.0
    """
    try:
        parsed = json.loads(prediction)
    except (json.JSONDecodeError, ValueError):
        parsed = None
    return float(_grade_function(source)({"output_text": prediction, "output_json": parsed},
                                         {field: reference}))


for _fn in (string_check, fuzzy_match):
    _fn.higher_is_better = True  # type: ignore[attr-defined]
    _fn.tunestack_builtin_reward = True  # type: ignore[attr-defined] - ours: not timed
python_grader.higher_is_better = True  # type: ignore[attr-defined] - the user's code: timed
