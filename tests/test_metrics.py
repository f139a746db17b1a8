"""Task metrics, format checks and the format-bleed rule."""

from tunestack.evaluate.metrics import exact_match, format_ok, probe_passed, task_metrics

SCHEMA = {"type": "object", "properties": {"a": {"enum": ["x", "y"]}}, "required": ["a"],
          "additionalProperties": False}


def test_exact_match_ignores_key_order_and_spacing_for_json():
    assert exact_match('{"b": 2,"a": 1}', '{"a": 1, "b": 2}')
    assert not exact_match('{"a": 1}', '{"a": 1, "b": 2}')


def test_task_metrics_per_field_and_format():
    preds = ['{"a": "x", "b": "1"}', '{"a": "y", "b": "2"}', "not json"]
    refs = ['{"a": "x", "b": "1"}', '{"a": "x", "b": "2"}', '{"a": "x", "b": "3"}']
    m = task_metrics(preds, refs, "json", None)
    assert m["task_accuracy"] == 1 / 3
    assert m["per_field_accuracy"] == {"a": 1 / 3, "b": 2 / 3}
    assert m["field_accuracy"] == 0.5
    assert m["format_compliance"] == 2 / 3


def test_json_schema_format():
    assert format_ok('{"a": "x"}', "json_schema", SCHEMA)
    assert not format_ok('{"a": "z"}', "json_schema", SCHEMA)
    assert not format_ok('{"a": "x", "extra": 1}', "json_schema", SCHEMA)


def test_general_answers_in_task_format_fail_even_if_they_contain_the_answer():
    assert probe_passed("2 + 3 = 5", ["5", "five"])
    assert not probe_passed('{"modifier": "add", "result": 5}', ["5"])
    assert not probe_passed('```json\n{"answer": "5"}\n```', ["5"])
