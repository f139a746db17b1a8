"""The answers' JSON Schema: inferred from the JSON objects the API's model answered with (types, keys, required keys,
closed vocabularies as `enum`), written beside the config as `evaluate.format`'s check, and the label key to
stratify the eval and holdout splits by. Pure: values in, a schema out.
"""

from __future__ import annotations

MAX_ENUM = 20
"""A string field gets an `enum` when it has at most this many distinct values..."""
ENUM_REPEATS = 3
"""...and each value is seen this many times on average: a closed vocabulary, not free text that happens to repeat."""


def infer_schema(values: list) -> dict:
    """A JSON Schema that every value in `values` satisfies: types, object keys (required when every object has
    them; no others allowed), array items, and an `enum` for strings from a closed vocabulary.

    >>> infer_schema([{"a": "x", "n": 1}, {"a": "x", "n": 2.5}, {"a": "y"}] * 3)["properties"]
    {'a': {'type': 'string', 'enum': ['x', 'y']}, 'n': {'type': 'number'}}
    """
    present = {_json_type(v) for v in values}
    if {"integer", "number"} <= present:
        present.discard("integer")  # JSON Schema's number includes the integers
    types = [t for t in ("object", "array", "string", "number", "integer", "boolean", "null") if t in present]
    schema: dict = {"type": types[0] if len(types) == 1 else types}
    objects = [v for v in values if isinstance(v, dict)]
    if objects:
        keys = list(dict.fromkeys(k for o in objects for k in o))  # first-seen order, as the answers write them
        schema["properties"] = {k: infer_schema([o[k] for o in objects if k in o]) for k in keys}
        required = [k for k in keys if all(k in o for o in objects)]
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False  # a key no answer has is a format error, as the API's callers see it
    items = [x for v in values if isinstance(v, list) for x in v]
    if items:
        schema["items"] = infer_schema(items)
    strings = [v for v in values if isinstance(v, str)]
    if strings and set(types) <= {"string", "null"} and closed_vocabulary(strings):
        schema["enum"] = sorted(set(strings)) + ([None] if "null" in types else [])
    return schema


def closed_vocabulary(strings: list[str]) -> bool:
    """Few distinct values, each seen several times: labels, not free text.

    >>> closed_vocabulary(["ct", "mri", "ct", "xr", "ct", "mri"] * 2), closed_vocabulary(["a b", "c d", "e f"])
    (True, False)
    """
    distinct = len(set(strings))
    return distinct <= MAX_ENUM and distinct * ENUM_REPEATS <= len(strings)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def schema_summary(schema: dict) -> str:
    """`5 keys, 4 required, 3 with a closed set of values` for the config's comment."""
    props = schema.get("properties", {})
    enums = sum("enum" in p for p in props.values())
    return (f"{len(props)} keys, {len(schema.get('required', []))} required, {enums} with a closed set of values")


def stratify_key(schema: dict | None) -> str | None:
    """A top-level key whose values are labels (2-10 of them), to split eval and holdout in proportion to."""
    for key, prop in (schema or {}).get("properties", {}).items():
        if 2 <= len(prop.get("enum") or []) <= 10 and key in schema.get("required", []):
            return key
    return None
