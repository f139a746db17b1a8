"""The metric registry: task metrics by name, each saying whether higher is better, and the format check.

A metric in `evaluate.metrics` is named as
- a registered name: the built-ins `exact_match`, `field_accuracy`, `regex`, `contains`, `numeric`, `choice`, or any
  name a plugin registered with `@register_metric`;
- a Python path `package.module:function`, imported when a stage binds the metrics (never at config load);
- an entry point of the group `tunestack.metrics`, which a package declares in its pyproject.toml:
  `[project.entry-points."tunestack.metrics"] my_score = "mypkg.metrics:score"`.

A metric function scores one answer, `score(prediction, reference, **params) -> bool | float | dict`, where params
come from the config. Its direction (the selector needs it) comes from `@register_metric(higher_is_better=...)`, a
`higher_is_better` attribute on the function, or `higher_is_better` in the config; a metric without one is refused.
Format compliance is checked by JSON Schema, as any JSON object, by a regular expression or by a user function
(`FormatCheck`).

The built-ins register below exactly as a plugin would. Pure: no torch, no disk; importing a user's module when a
metric is bound is the only side effect.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from tunestack.config import EvaluateSection, FormatSection, MetricSpec
from tunestack.errors import ConfigError
from tunestack.evaluate import metrics as m
from tunestack.evaluate import tool_metrics

ENTRY_POINT_GROUP = "tunestack.metrics"
DEFAULT_METRICS = ("exact_match", "field_accuracy")


@dataclass(frozen=True)
class Metric:
    name: str
    score: Callable[..., Any]
    """`score(prediction, reference, **params)`: a bool or number for one answer, or a dict of them (parts)."""
    higher_is_better: bool | None
    """None: the metric does not say; the config must (`evaluate.metrics[].higher_is_better`)."""
    check: Callable[..., None] | None = None
    """Optional: `check(**params)` raises ValueError when the params are unusable (a regex that does not compile),
    so the problem shows before any answer is generated."""


_REGISTRY: dict[str, Metric] = {}


def register_metric(name: str | None = None, *, higher_is_better: bool, check: Callable[..., None] | None = None):
    """Decorator: register a metric function under `name` (default: the function's name) with its direction. The
    function is returned unchanged, so it can also be named by its module path."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        metric = Metric(name or fn.__name__, fn, higher_is_better, check)
        _REGISTRY[metric.name] = metric
        fn.tunestack_metric = metric  # type: ignore[attr-defined]
        return fn

    return decorate


def registered() -> dict[str, Metric]:
    return dict(_REGISTRY)


def _check_regex(pattern: str, ignore_case: bool = False) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression ({exc})") from None


def _check_tolerance(abs_tol: float = 0.0, rel_tol: float = 0.0) -> None:
    if abs_tol < 0 or rel_tol < 0:
        raise ValueError(f"tolerances must be >= 0, got abs_tol={abs_tol}, rel_tol={rel_tol}")


def _check_labels(labels: str = "ABCD") -> None:
    if not labels.isalpha() or not labels.isupper() or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct upper-case letters such as 'ABCD', got {labels!r}")


_BUILTINS = (("exact_match", m.exact_match, None), ("field_accuracy", m.field_accuracy, None),
             ("regex", m.regex_match, _check_regex), ("contains", m.contains, None),
             ("numeric", m.numeric, _check_tolerance), ("choice", m.choice, _check_labels))
BUILTINS = tuple(name for name, _, _ in _BUILTINS)
"""The built-in metrics: each scores an answer 0 or 1 (per field for `field_accuracy`), higher is better."""
for _name, _fn, _check in _BUILTINS:
    register_metric(_name, higher_is_better=True, check=_check)(_fn)
TOOL_METRICS = tuple(name for name, _ in tool_metrics.TOOL_METRICS)
"""The tool-call metrics (`tunestack.evaluate.tool_metrics`): each 0 or 1 (a share for `tool_argument_accuracy`)."""
for _name, _fn in tool_metrics.TOOL_METRICS:
    register_metric(_name, higher_is_better=True)(_fn)


def resolve_metric(name: str, where: str = "evaluate.metrics") -> Metric:
    """The metric a config names: a registered name, a `module:function` path, or an entry point.

    >>> resolve_metric("exact_match").higher_is_better
    True
    >>> resolve_metric("exact_macth")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tunestack.errors.ConfigError: Config is not well-formed, found the following errors:
      evaluate.metrics: unknown metric 'exact_macth'. Did you mean 'exact_match'? ...
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _as_metric(import_object(name, where), name, where)
    plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name in plugins:
        return _as_metric(import_object(plugins[name].value, f"{where} (entry point {name})"), name, where)
    known = sorted({*_REGISTRY, *plugins})
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError([(where, f"unknown metric '{name}'.{hint} Known: {', '.join(known)}; or name your own "
                               f"function as 'package.module:function', or as an entry point of the group "
                               f"'{ENTRY_POINT_GROUP}'")])


def _as_metric(obj: Any, name: str, where: str) -> Metric:
    declared = obj if isinstance(obj, Metric) else getattr(obj, "tunestack_metric", None)
    if isinstance(declared, Metric):
        return declared
    if not callable(obj):
        raise ConfigError([(where, f"'{name}' is a {type(obj).__name__}, not a metric function "
                                   "score(prediction, reference, **params)")])
    return Metric(name, obj, getattr(obj, "higher_is_better", None))


def import_object(path: str, where: str) -> Any:
    """The object at `package.module:attr`; a clear ConfigError when the module or the attribute is missing."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr or ":" in attr:
        raise ConfigError([(where, f"'{path}' is not of the form 'package.module:function'")])
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            message = (f"cannot import '{module_name}' (from '{path}'): there is no module named '{exc.name}'. "
                       "Check the spelling, and that its package is installed in this environment or on PYTHONPATH")
        else:
            message = (f"importing '{module_name}' (from '{path}') failed: it imports '{exc.name}', which is not "
                       "installed")
        raise ConfigError([(where, message)]) from None
    except ImportError as exc:
        raise ConfigError([(where, f"importing '{module_name}' (from '{path}') failed: {exc}")]) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError([(where, f"'{module_name}' has no attribute '{attr}'.{hint}")])
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class BoundMetric:
    """A metric with its config: the key it reports under, its direction and its params."""

    key: str
    metric: Metric
    higher_is_better: bool
    params: dict = field(default_factory=dict)

    def __call__(self, prediction: str, reference: str, tools: list[dict] | None = None) -> Any:
        """One answer's score; `tools` (the row's tool definitions) reach a metric that takes a `tools` argument."""
        if self.wants_tools:
            return self.metric.score(prediction, reference, **self.params, tools=tools)
        return self.metric.score(prediction, reference, **self.params)

    @property
    def wants_tools(self) -> bool:
        try:
            return "tools" in inspect.signature(self.metric.score).parameters and "tools" not in self.params
        except (TypeError, ValueError):
            return False

    def describe(self) -> dict:
        return {"key": self.key, "metric": self.metric.name, "higher_is_better": self.higher_is_better,
                "params": self.params}


def bind_metrics(specs: Sequence[str | MetricSpec]) -> list[BoundMetric]:
    """Resolve every metric a config lists; every problem (unknown name, bad module path, missing direction, bad
    params) is reported at once with its YAML path.

    >>> [(b.key, b.higher_is_better) for b in bind_metrics(["exact_match", "field_accuracy"])]
    [('exact_match', True), ('field_accuracy', True)]
    """
    bound, problems = [], []
    for i, spec in enumerate(specs):
        try:
            bound.append(_bind(MetricSpec(name=spec) if isinstance(spec, str) else spec, f"evaluate.metrics.{i}"))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return bound


def _bind(spec: MetricSpec, where: str) -> BoundMetric:
    metric = resolve_metric(spec.name, f"{where}.name")
    direction = metric.higher_is_better
    if direction is None:
        direction = spec.higher_is_better
    elif spec.higher_is_better is not None and spec.higher_is_better != direction:
        raise ConfigError([(f"{where}.higher_is_better", f"metric '{spec.name}' declares higher_is_better="
                                                          f"{direction}: remove the setting here")])
    if direction is None:
        raise ConfigError([(f"{where}.higher_is_better",
                            f"metric '{spec.name}' does not say whether higher is better, and selection needs to "
                            "know: set higher_is_better: true or false here, or declare it in code with "
                            "@tunestack.evaluate.registry.register_metric(higher_is_better=...)")])
    problem = param_problem(metric, spec.params)
    if problem:
        raise ConfigError([(f"{where}.params", problem)])
    return BoundMetric(spec.result_key, metric, direction, dict(spec.params))


def param_problem(metric: Metric, params: dict) -> str | None:
    """What is wrong with `params` for this metric's function, or None."""
    try:
        parameters = list(inspect.signature(metric.score).parameters.values())
    except (TypeError, ValueError):  # a callable without a signature: nothing to check
        return None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return f"metric '{metric.name}' must take (prediction, reference, **params)"
    named = [p for p in parameters[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    names = [p.name for p in named]
    if not any(p.kind == p.VAR_KEYWORD for p in parameters):
        for key in params:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                return f"metric '{metric.name}' has no parameter '{key}'.{hint} Its parameters: " \
                       f"{', '.join(names) or 'none'}"
    missing = [p.name for p in named if p.default is p.empty and p.name not in params]
    if missing:
        return f"metric '{metric.name}' needs params.{missing[0]}"
    if metric.check is not None:
        try:
            metric.check(**params)
        except (ValueError, TypeError) as exc:
            return f"metric '{metric.name}': {exc}"
    return None


@dataclass(frozen=True)
class FormatCheck:
    """Does one answer have the required format: valid against a JSON Schema (`json_schema`), any JSON object
    (`json`), the whole stripped answer matching `pattern` (`regex`), a user function saying so (`function`), or
    anything (`none`).

    >>> FormatCheck("regex", pattern=r"[A-D]")("B "), FormatCheck("regex", pattern=r"[A-D]")("B because")
    (True, False)
    """

    kind: str
    schema: dict | None = None
    pattern: str | None = None
    function: Callable[[str], Any] | None = None

    def __call__(self, answer: str) -> bool:
        if self.kind == "regex":
            return re.fullmatch(self.pattern or "", answer.strip()) is not None
        if self.kind == "function":
            return bool(self.function(answer))  # type: ignore[misc]
        return m.format_ok(answer, self.kind, self.schema)


def format_check(section: FormatSection, schema: dict | None = None) -> FormatCheck:
    """The check `evaluate.format` describes; `schema` is the JSON Schema file's content (read by the caller)."""
    function = None
    if section.type == "function":
        function = import_object(section.function or "", "evaluate.format.function")
        if not callable(function):
            raise ConfigError([("evaluate.format.function", f"'{section.function}' is a {type(function).__name__}, "
                                                            "not a function check(answer) -> bool")])
    return FormatCheck(section.type, schema, section.pattern, function)


@dataclass(frozen=True)
class TaskScorer:
    """Everything a task answer is scored with: the bound metrics (the first is the headline) and the format check."""

    metrics: list[BoundMetric]
    format_check: FormatCheck

    def score(self, predictions: list[str], references: list[str], turns: list[dict] | None = None) -> dict:
        """`turns`: each row's conversation (its tool definitions reach the metrics that take them, and a row whose
        reference calls tools has its format checked as calls)."""
        return m.score_answers(predictions, references, self.metrics, self.format_check, contexts(turns))

    def describe(self) -> list[dict]:
        return [b.describe() for b in self.metrics]


def task_scorer(section: EvaluateSection, schema: dict | None = None) -> TaskScorer:
    """The scorer an `evaluate` section describes; all metric problems and the format's are reported together."""
    problems, metrics, check = [], [], None
    try:
        metrics = bind_metrics(section.metrics)
    except ConfigError as exc:
        problems += exc.problems
    try:
        check = format_check(section.format, schema)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return TaskScorer(metrics, check)  # type: ignore[arg-type]


def task_metrics(predictions: list[str], references: list[str], kind: str, schema: dict | None) -> dict:
    """`score_answers` with the default metrics (exact match, then per-field accuracy) and a JSON format check."""
    return m.score_answers(predictions, references, bind_metrics(DEFAULT_METRICS), FormatCheck(kind, schema))


def contexts(conversations: list[list[dict]] | None) -> list[dict] | None:
    """What scoring needs of each row beyond its answer: its tool definitions, and whether its reference calls."""
    from tunestack.tools import tools_of

    if conversations is None:
        return None
    return [{"tools": tools_of(messages), "calls": bool(messages[-1].get("tool_calls"))} for messages in conversations]
