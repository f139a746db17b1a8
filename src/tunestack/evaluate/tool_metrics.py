"""Tool-call metrics: how well an answer calls functions, on the canonical text every answer is scored in.

A reference turn that calls tools is scored as its calls, one `name({canonical arguments})` a line
(`tunestack.tools.answer_text`, read back by `tools.canonical_calls`), and a generated answer as the calls it makes in whichever written form its template
used (`tunestack.tools.scored_answer`). On that text:

- `tool_name`: the same functions called, in order (none where the reference answers in text);
- `tool_arguments`: the same calls with the same canonical arguments, in order (exact match of the calls);
- `tool_argument_accuracy`: the share of the reference calls' arguments the answer gives the same value, call by
  call in order (a missing call scores its arguments wrong);
- `tool_schema_valid`: every call the answer makes names a function the row defines and passes its `parameters`
  JSON Schema (an answer that makes no call is valid only where the reference makes none);
- `tool_decision`: the answer calls where the reference calls and answers in text where it does.

Each scores every eval row, so the ones that answer in text count too: there, a `tool_*` score is 1 exactly when the
answer does not call. They are registered in `tunestack.evaluate.registry` like the other built-ins, all higher is
better, and reach select, the quantize gate and the report as any metric does. `call_shape_ok` is the format check
for rows whose reference calls: the answer's calls parse, each a name with an arguments object. Pure: no torch.
"""

from __future__ import annotations

from tunestack.tools import canonical_calls as parse_calls, extract_calls

def made_calls(answer: str) -> list[tuple[str, dict]] | None:
    """The calls a generated answer makes: canonical text, or any written form `tools.extract_calls` reads (an
    answer scored against a text reference keeps its own form); None when it makes none.

    >>> made_calls('{"name": "f", "parameters": {"a": 1}}'), made_calls("No call.")
    ([('f', {'a': 1})], None)
    """
    canonical = parse_calls(answer)
    if canonical is not None:
        return canonical
    written = extract_calls(answer)
    return [(c["name"], c["arguments"]) for c in written] if written else None


def tool_name(prediction: str, reference: str) -> bool:
    """The same function names in the same order (no call where the reference makes none).

    >>> tool_name('f({"a":2})', 'f({"a":1})'), tool_name('g({})', 'f({})'), tool_name("Paris", "Paris")
    (True, False, True)
    """
    pred, ref = made_calls(prediction), parse_calls(reference)
    if ref is None:
        return pred is None
    return pred is not None and [n for n, _ in pred] == [n for n, _ in ref]


def tool_arguments(prediction: str, reference: str) -> bool:
    """The same calls with the same arguments, in order (as JSON: key order and spacing do not matter).

    >>> tool_arguments('f({"b":2,"a":1})', 'f({"a":1,"b":2})'), tool_arguments('f({"a":1})', 'f({"a":"1"})')
    (True, False)
    """
    pred, ref = made_calls(prediction), parse_calls(reference)
    if ref is None:
        return pred is None
    return pred == ref


def tool_argument_accuracy(prediction: str, reference: str) -> float:
    """The share of the reference's arguments, over all its calls, that the answer's call in the same place (same
    function) gives the same value; 1 or 0 for a reference without calls (the answer makes none, or does).

    >>> tool_argument_accuracy('f({"a":1,"b":3})', 'f({"a":1,"b":2})')
    0.5
    >>> tool_argument_accuracy('f({"a":1})', 'f({"a":1})\\ng({"c":1})')
    0.5
    """
    pred, ref = made_calls(prediction), parse_calls(reference)
    if ref is None:
        return float(pred is None)
    pred = pred or []
    right = total = 0
    for k, (name, arguments) in enumerate(ref):
        given = pred[k][1] if k < len(pred) and pred[k][0] == name else {}
        if not arguments:  # a call without arguments counts as one argument: the call itself
            total += 1
            right += k < len(pred) and pred[k][0] == name
            continue
        total += len(arguments)
        right += sum(key in given and given[key] == value for key, value in arguments.items())
    return right / total


def tool_schema_valid(prediction: str, reference: str, tools: list[dict] | None = None) -> bool:
    """Every call the answer makes names one of the row's functions and its arguments pass that function's
    `parameters` schema; an answer without calls is valid where the reference makes none.

    >>> tools = [{"type": "function", "function": {"name": "f", "parameters": {
    ...     "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}]
    >>> [tool_schema_valid(p, 'f({"a":1})', tools) for p in ('f({"a":2})', 'f({"a":"2"})', 'f({})', 'g({"a":1})')]
    [True, False, False, False]
    """
    from tunestack.schemas import validator

    pred = made_calls(prediction)
    if pred is None:
        return parse_calls(reference) is None
    schemas = {t.get("function", t).get("name"): t.get("function", t).get("parameters") or {"type": "object"}
               for t in tools or []}
    for name, arguments in pred:
        if name not in schemas:
            return False
        if any(True for _ in validator(schemas[name]).iter_errors(arguments)):
            return False
    return True


def tool_decision(prediction: str, reference: str) -> bool:
    """The answer calls exactly where the reference calls.

    >>> tool_decision('f({})', 'g({"a":1})'), tool_decision("Paris", 'f({})'), tool_decision("Paris", "Rome")
    (True, False, True)
    """
    return (made_calls(prediction) is None) == (parse_calls(reference) is None)


def call_shape_ok(answer: str) -> bool:
    """The format of an answer where a call is expected: it parses as calls (canonical, or a written form the
    templates use), each a function name with an arguments object.

    >>> call_shape_ok('f({"a":1})'), call_shape_ok('<tool_call>{"name": "f", "arguments": {}}</tool_call>')
    (True, True)
    >>> call_shape_ok('{"name": "f", "arguments": "a=1"}'), call_shape_ok("I will call f.")
    (False, False)
    """
    return made_calls(answer) is not None


TOOL_METRICS = (("tool_name", tool_name), ("tool_arguments", tool_arguments),
                ("tool_argument_accuracy", tool_argument_accuracy), ("tool_schema_valid", tool_schema_valid),
                ("tool_decision", tool_decision))
