"""Task metrics, format checks and the format-bleed rule."""

import json

from tunestack.evaluate.metrics import exact_match, format_ok, probe_passed
from tunestack.evaluate.registry import task_metrics

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


def _count_validators(monkeypatch) -> list:
    """Count the JSON-schema validators built from now on (with an empty cache)."""
    import jsonschema

    from tunestack import schemas

    built, real = [], jsonschema.Draft202012Validator

    def counting(schema, *args, **kwargs):
        built.append(schema)
        return real(schema, *args, **kwargs)

    schemas._compiled.cache_clear()
    monkeypatch.setattr(schemas.jsonschema, "Draft202012Validator", counting)
    return built


def test_the_json_schema_validator_is_built_once_for_every_answer(monkeypatch):
    built = _count_validators(monkeypatch)
    answers = ['{"a": "x"}', '{"a": "z"}', '{"a": "x", "extra": 1}', "{}"] * 25
    # each answer gets its own copy of the schema, as a caller holding an equal schema would
    verdicts = [format_ok(a, "json_schema", json.loads(json.dumps(SCHEMA))) for a in answers]
    assert verdicts == [True, False, False, False] * 25
    assert built == [SCHEMA]
    other = {"type": "object", "required": ["b"]}
    assert format_ok('{"b": 1}', "json_schema", other) and len(built) == 2  # another schema: another validator


def test_tool_arguments_are_checked_with_one_validator_per_function(monkeypatch):
    from tunestack.data.openai_format import schema_mismatches

    built = _count_validators(monkeypatch)
    function = {"name": "lookup", "parameters": {"type": "object", "properties": {"id": {"type": "integer"}},
                                                 "required": ["id"]}}
    found = [schema_mismatches(function, arguments, "line 1") for arguments in [{"id": 1}, {"id": "x"}, {}] * 20]
    assert found[:2] == [[], ["arguments_schema: arguments of 'lookup' do not match its parameters (line 1, at id): "
                              "'x' is not of type 'integer'"]]
    assert "'id' is a required property" in found[2][0]
    assert len(built) == 1


def test_a_cached_validator_is_not_changed_by_its_callers_schema():
    from tunestack.schemas import validator

    schema = {"type": "object", "required": ["a"]}
    first = validator(schema)
    schema["required"] = ["b"]  # the caller reuses its dict for another schema
    assert validator(schema) is not first and validator({"type": "object", "required": ["a"]}) is first
    assert first.is_valid({"a": 1}) and not first.is_valid({"b": 1})
