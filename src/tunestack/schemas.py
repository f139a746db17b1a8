"""JSON-schema validators, compiled once per schema. Pure: jsonschema and the standard library, no disk.

Every answer of an eval set is checked against the same schema, and every tool call against its function's
`parameters`: building a `Draft202012Validator` for each costs more than the check itself. `validator(schema)` keeps
one per distinct schema, keyed by the schema's JSON text. The key keeps the schema's own key order, because the
order of a schema's keywords is the order its errors are reported in; equal schemas written in another order get a
validator of their own. A schema that is not JSON (it cannot be keyed) gets a fresh validator each time.

>>> validator({"type": "object", "required": ["a"]}).is_valid({"a": 1})
True
>>> validator({"type": "object", "required": ["a"]}) is validator({"type": "object", "required": ["a"]})
True
"""

from __future__ import annotations

import json
from functools import lru_cache

import jsonschema


def validator(schema) -> jsonschema.Draft202012Validator:
    """The compiled validator of a JSON schema (a dict, or a boolean schema), built once per distinct schema."""
    try:
        key = json.dumps(schema, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return jsonschema.Draft202012Validator(schema)
    return _compiled(key)


@lru_cache(maxsize=256)
def _compiled(key: str) -> jsonschema.Draft202012Validator:
    # built from a copy of the schema, so that a caller changing its dict afterwards changes no cached validator
    return jsonschema.Draft202012Validator(json.loads(key))
