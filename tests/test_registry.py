"""The metric registry: each built-in metric and its direction, user metrics by module path and entry point, format
checks by JSON Schema, regex and function, and the errors a bad metric config gets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tunestack.config import FormatSection, MetricSpec, parse_config
from tunestack.errors import ConfigError, StageError
from tunestack.evaluate.metrics import score_answers
from tunestack.evaluate.registry import (BUILTINS, FormatCheck, bind_metrics, format_check, resolve_metric,
                                         task_metrics, task_scorer)

BASE = "data: {path: rows.jsonl}\n"

USER_METRICS = '''
from tunestack.evaluate.registry import register_metric


@register_metric(higher_is_better=False)
def extra_words(prediction, reference):
    """Words beyond the reference's: lower is better."""
    return max(0, len(prediction.split()) - len(reference.split()))


def undeclared(prediction, reference):
    return prediction == reference


def starts_with(prediction, reference, prefix="A"):
    return prediction.startswith(prefix)
starts_with.higher_is_better = True


def is_upper(answer):
    return answer.isupper()


def broken(prediction, reference):
    return None
'''


@pytest.fixture()
def user_module(tmp_path, monkeypatch) -> str:
    (tmp_path / "my_metrics.py").write_text(USER_METRICS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_metrics", None)
    return "my_metrics"


def score(name: str, prediction: str, reference: str, **params):
    (bound,) = bind_metrics([MetricSpec(name=name, params=params)])
    return bound(prediction, reference)


def test_every_builtin_is_registered_higher_is_better():
    assert BUILTINS == ("exact_match", "field_accuracy", "regex", "contains", "numeric", "choice")
    assert all(resolve_metric(name).higher_is_better is True for name in BUILTINS)


def test_exact_match_and_field_accuracy():
    assert score("exact_match", '{"b": 2, "a": 1}', '{"a": 1, "b": 2}') is True
    assert score("exact_match", "Paris ", "Paris") is True and score("exact_match", "paris", "Paris") is False
    assert score("field_accuracy", '{"a": 1, "b": 3}', '{"a": 1, "b": 2}') == {"a": True, "b": False}
    assert score("field_accuracy", "not json", '{"a": 1}') == {"a": False}


def test_regex_contains_numeric_choice():
    assert score("regex", "Thinking... Answer: 42", "42", pattern=r"Answer:\s*(\S+)") is True
    assert score("regex", "Answer: 41", "42", pattern=r"Answer:\s*(\S+)") is False
    assert score("regex", "ANSWER: yes", "YES", pattern=r"answer:\s*(\w+)", ignore_case=True) is True
    assert score("contains", "The capital of France is Paris.", "paris") is True
    assert score("contains", "The capital of France is Paris.", "paris", ignore_case=False) is False
    assert score("contains", "It is five.", "5|five", separator="|") is True
    assert score("numeric", "so the total is 1,250.5", "1250.5") is True
    assert score("numeric", "about 3.14", "3.14159", abs_tol=0.01) is True
    assert score("numeric", "about 3.14", "3.14159") is False
    assert score("numeric", "102", "100", rel_tol=0.05) is True and score("numeric", "no number", "1") is False
    assert score("choice", "(B) because it floats", "B") is True
    assert score("choice", "The answer is C.", "C") is True
    assert score("choice", "A cat sat", "A") is False
    assert score("choice", "E", "E", labels="ABCDE") is True and score("choice", "E", "E") is False


def test_score_answers_headline_intervals_and_parts():
    metrics = bind_metrics(["contains", "exact_match", "field_accuracy"])
    preds = ['{"a": "x", "b": "1"}', '{"a": "y", "b": "2"}', "not json"]
    refs = ['{"a": "x", "b": "1"}', '{"a": "x", "b": "2"}', '{"a": "x", "b": "3"}']
    out = score_answers(preds, refs, metrics, FormatCheck("json"))
    assert list(out["metrics"]) == ["contains", "exact_match", "field_accuracy"]
    assert out["task_accuracy"] == out["metrics"]["contains"] == 1 / 3  # the first metric is the headline
    assert out["metrics"]["exact_match"] == 1 / 3 and out["format_compliance"] == 2 / 3
    assert out["metric_parts"]["field_accuracy"] == {"a": 1 / 3, "b": 2 / 3} and out["field_accuracy"] == 0.5
    assert set(out["metrics_ci95"]) == {"contains", "exact_match"}  # 0/1 per answer: Wilson; parts: none
    low, high = out["task_accuracy_ci95"]
    assert 0 < low < 1 / 3 < high < 1


def test_default_metrics_keep_the_old_figures():
    """`task_metrics` (the defaults: exact match, then per-field accuracy) gives what it gave before the registry."""
    preds = ['{"a": "x", "b": "1"}', '{"a": "y", "b": "2"}', "not json"]
    refs = ['{"a": "x", "b": "1"}', '{"a": "x", "b": "2"}', '{"a": "x", "b": "3"}']
    m = task_metrics(preds, refs, "json", None)
    assert m["task_accuracy"] == 1 / 3 and m["field_accuracy"] == 0.5
    assert m["per_field_accuracy"] == {"a": 1 / 3, "b": 2 / 3} and m["format_compliance"] == 2 / 3
    assert parse_config(BASE, []).evaluate.metrics == [MetricSpec(name="exact_match"),
                                                        MetricSpec(name="field_accuracy")]


def test_user_metric_by_module_path_with_its_direction(user_module):
    (bound,) = bind_metrics([f"{user_module}:extra_words"])
    assert bound.key == "extra_words" and bound.higher_is_better is False
    assert bound("one two three", "one") == 2
    out = score_answers(["a b c", "a"], ["a", "a"], [bound], FormatCheck("none"))
    assert out["task_accuracy"] == 1.0 and out["task_accuracy_ci95"] is None  # not 0/1: no Wilson interval
    (attr,) = bind_metrics([MetricSpec(name=f"{user_module}:starts_with", key="starts_b", params={"prefix": "B"})])
    assert attr.key == "starts_b" and attr.higher_is_better is True and attr("Bob", "") is True


def test_a_metric_must_say_which_direction_is_better(user_module):
    with pytest.raises(ConfigError, match=r"evaluate.metrics.0.higher_is_better.*does not say whether higher"):
        bind_metrics([f"{user_module}:undeclared"])
    (bound,) = bind_metrics([MetricSpec(name=f"{user_module}:undeclared", higher_is_better=True)])
    assert bound.higher_is_better is True
    with pytest.raises(ConfigError, match="declares higher_is_better=True: remove the setting"):
        bind_metrics([MetricSpec(name="exact_match", higher_is_better=False)])


def test_a_bad_module_path_is_a_clear_error(user_module):
    with pytest.raises(ConfigError) as info:
        bind_metrics(["no_such_package.metrics:score", f"{user_module}:extra_wrds", "exact_macth", "nocolon:"])
    message = str(info.value)
    assert "evaluate.metrics.0.name: cannot import 'no_such_package.metrics'" in message
    assert "no module named 'no_such_package'" in message and "installed" in message
    assert f"evaluate.metrics.1.name: '{user_module}' has no attribute 'extra_wrds'. Did you mean 'extra_words'?" \
        in message
    assert "evaluate.metrics.2.name: unknown metric 'exact_macth'. Did you mean 'exact_match'?" in message
    assert "evaluate.metrics.3.name: 'nocolon:' is not of the form 'package.module:function'" in message


def test_params_are_checked_before_anything_is_generated():
    with pytest.raises(ConfigError) as info:
        bind_metrics([MetricSpec(name="regex"), MetricSpec(name="regex", params={"pattern": "("}),
                      MetricSpec(name="numeric", params={"abs_tol": 0.1, "rel_tl": 0.1}),
                      MetricSpec(name="choice", params={"labels": "abca"})])
    message = str(info.value)
    assert "evaluate.metrics.0.params: metric 'regex' needs params.pattern" in message
    assert "evaluate.metrics.1.params: metric 'regex': pattern '(' is not a valid regular expression" in message
    assert "has no parameter 'rel_tl'. Did you mean 'rel_tol'?" in message
    assert "labels must be distinct upper-case letters" in message


def test_user_metric_by_entry_point(tmp_path, monkeypatch, user_module):
    info = tmp_path / "plug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[tunestack.metrics]\nverbosity = {user_module}:extra_words\n")
    (bound,) = bind_metrics(["verbosity"])
    assert bound.key == "verbosity" and bound.higher_is_better is False and bound("a b", "a") == 1


def test_format_checks_by_schema_regex_and_function(user_module):
    schema = {"type": "object", "properties": {"a": {"enum": ["x"]}}, "required": ["a"]}
    assert format_check(FormatSection(type="json_schema", schema_path="s.json"), schema)('{"a": "x"}')
    assert not format_check(FormatSection(type="json_schema", schema_path="s.json"), schema)('{"a": "y"}')
    regex = format_check(FormatSection(type="regex", pattern=r"[A-D]"))
    assert regex(" C ") and not regex("C, because")
    function = format_check(FormatSection(type="function", function=f"{user_module}:is_upper"))
    assert function("OK") and not function("ok")
    assert format_check(FormatSection(type="none"))("anything")
    with pytest.raises(ConfigError, match="evaluate.format.function: 'my_metrics' has no attribute 'is_uper'"):
        format_check(FormatSection(type="function", function=f"{user_module}:is_uper"))


def test_metric_config_problems_are_reported_with_paths():
    cfg = parse_config(BASE + "evaluate: {metrics: [contains, {name: 'pkg.mod:score', higher_is_better: false}]}\n",
                       [])
    assert [s.result_key for s in cfg.evaluate.metrics] == ["contains", "score"]
    for text, needle in [("evaluate: {metrics: [contains, contains]}", "set a distinct `key`"),
                         ("evaluate: {metrics: [{name: exact_match, key: format_compliance}]}", "reserved"),
                         ("evaluate: {metrics: []}", "evaluate.metrics is empty"),
                         ("select: {weights: {exact_macth: 1}}", "Did you mean 'exact_match'?"),
                         ("evaluate: {format: {type: regex}}", "set evaluate.format.pattern"),
                         ("evaluate: {format: {type: regex, pattern: '('}}", "not a valid regular expression"),
                         ("evaluate: {format: {type: function, function: nope}}", "set evaluate.format.function")]:
        with pytest.raises(ConfigError, match=needle):
            parse_config(BASE + text + "\n", [])
    weights = parse_config(BASE + "evaluate: {metrics: [contains]}\nselect: {weights: {contains: 1}}\n", [])
    assert weights.select.weights == {"contains": 1.0}


def test_a_metric_returning_nonsense_fails_clearly(user_module):
    broken = MetricSpec(name=f"{user_module}:broken", higher_is_better=True)
    with pytest.raises(StageError, match=r"metric 'broken' returned None"):
        task_scorer(parse_config(BASE, []).evaluate.model_copy(update={"metrics": [broken]})).score(["a"], ["a"])


def test_validate_reports_a_bad_metric_module_without_traceback(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text(BASE + "evaluate: {metrics: ['no_such_package.metrics:score']}\n")
    done = subprocess.run([sys.executable, "-m", "tunestack", "validate", str(config)], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "evaluate.metrics.0.name: cannot import 'no_such_package.metrics'" in done.stderr
