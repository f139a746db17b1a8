"""One wrong answer, one primary failure category. Pure: no torch, no disk.

The categories, tried in this order (the first that applies is the failure's primary category):

- `refusal`: holds no JSON object, and contains a refusal phrase (`assess.refusal_phrases`);
- `format: wrapped`: for a JSON reference, the answer is not a JSON object but one sits inside prose or a code fence;
- `truncation`: no EOS within `max_new_tokens`, while on the way to the format: for a JSON reference, a JSON object
  begun and cut off (prose that also ran long is `format: not JSON`: the format is what failed first);
- `format`: for a JSON reference, no JSON object (`not JSON`); for another reference, the format check fails
  (`invalid`);
- `field`: a field's value is wrong in content (`field: finding`; several: `fields: finding, side`);
- `vocabulary`: every wrong field holds the right value written differently: case, spacing, punctuation, word
  order, a JSON type, or a synonym from `assess.synonyms`;
- `format` again: every field right, yet the format check fails (`schema`) or there are extra keys (`extra keys`).

Each failure carries a *signature*, what must repeat across samples for it to be the same failure (its label and the
wrong values), and a *pattern*, what must repeat across examples (its label with the wrong value of a content error,
or the kind of a vocabulary slip: "CT" for "ct" and "MRI" for "mri" are one pattern, `vocabulary: modality (case)`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from tunestack.evaluate.metrics import parse_json_object

CATEGORIES = ("format", "field", "vocabulary", "truncation", "refusal", "other")
MISSING = "(missing)"


@dataclass(frozen=True)
class Failure:
    category: str
    """One of CATEGORIES."""
    label: str
    """The category with its field or kind: `field: finding`, `vocabulary: modality`, `format: wrapped`."""
    pattern: str
    """What must recur across examples: `field: side = left`, `vocabulary: modality (case)`, `format: wrapped`."""
    wrong: dict = field(default_factory=dict)
    """Each wrong field of the primary category and the value the answer gave."""
    fields: dict = field(default_factory=dict)
    """Every wrong field of an answer that parses, whatever the primary category: `content` or the kind of slip."""

    @property
    def signature(self) -> str:
        """What must recur across samples of one example: the label and the wrong values."""
        return json.dumps([self.label, self.wrong], sort_keys=True, default=str)


def is_correct(score) -> bool:
    """Did the headline metric score this answer fully right (True, 1.0, or every part of a dict)?

    >>> is_correct(True), is_correct(0.5), is_correct({"a": True, "b": False})
    (True, False, False)
    """
    if isinstance(score, dict):
        return bool(score) and all(is_correct(v) for v in score.values())
    return float(score) >= 1.0


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.casefold())


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _synonym_key(text: str, synonyms: dict[str, list[str]]) -> str:
    key = "".join(_words(text))
    for canonical, forms in synonyms.items():
        if key in {"".join(_words(f)) for f in [canonical, *forms]}:
            return "".join(_words(canonical))
    return key


def slip_kind(predicted, reference, synonyms: dict[str, list[str]] | None = None) -> str | None:
    """How a wrong value is the right one written differently, or None when it is a different value.

    >>> pairs = [("CT", "ct"), ("left  lung", "left lung"), ("pleural-effusion", "pleural_effusion"),
    ...          ("lung, left", "left lung"), ("5", 5), ("MRI", "ct")]
    >>> [slip_kind(p, r) for p, r in pairs]
    ['case', 'spacing', 'punctuation', 'word order', 'type', None]
    >>> slip_kind("CT scan", "ct", {"ct": ["CT scan", "computed tomography"]})
    'synonym'
    """
    got, want = _text(predicted), _text(reference)
    if got == want:
        return "type"
    if " ".join(got.split()) == " ".join(want.split()):
        return "spacing"
    if " ".join(got.split()).casefold() == " ".join(want.split()).casefold():
        return "case"
    words_got, words_want = _words(got), _words(want)
    if not words_want:
        return None
    if "".join(words_got) == "".join(words_want):
        return "punctuation"
    if sorted(words_got) == sorted(words_want):
        return "word order"
    if synonyms and _synonym_key(got, synonyms) == _synonym_key(want, synonyms):
        return "synonym"
    return None


def embedded_object(text: str) -> dict | None:
    """A JSON object inside prose or a code fence: from the first `{` to the last `}`.

    >>> embedded_object('Here you go: {"a": 1} Hope it helps.'), embedded_object("no json") is None
    ({'a': 1}, True)
    """
    start, end = text.find("{"), text.rfind("}")
    return parse_json_object(text[start:end + 1]) if 0 <= start < end else None


def is_refusal(text: str, phrases: list[str]) -> bool:
    """A refusal phrase (case ignored, curly apostrophes too) in an answer that holds no JSON object (one wrapped in
    an apology is a format failure: the model did answer).

    >>> is_refusal("I’m sorry, I can't help with that.", ["I'm sorry"]), is_refusal('{"a": "I cannot"}', ["I cannot"])
    (True, False)
    """
    if parse_json_object(text) is not None or embedded_object(text) is not None:
        return False
    lowered = text.replace("\u2019", "'").casefold()
    return any(phrase.replace("\u2019", "'").casefold() in lowered for phrase in phrases)


def categorise(prediction: str, reference: str, ended_with_eos: bool, format_ok: bool,
               phrases: list[str], synonyms: dict[str, list[str]] | None = None) -> Failure:
    """The primary category of a wrong answer (the caller has already found it wrong).

    >>> ref = '{"modality": "ct", "side": "left"}'
    >>> categorise('{"modality": "CT", "side": "left"}', ref, True, False, []).pattern
    'vocabulary: modality (case)'
    >>> categorise('{"modality": "ct", "side": "right"}', ref, True, True, []).pattern
    'field: side = right'
    >>> categorise('Sure! {"modality": "ct", "side": "left"}', ref, True, False, []).label
    'format: wrapped'
    >>> categorise('{"modality": "ct", "si', ref, False, False, []).label
    'truncation'
    >>> categorise('The report describes a CT of the chest with a small', ref, False, False, []).label
    'format: not JSON'
    """
    if is_refusal(prediction, phrases):
        return Failure("refusal", "refusal", "refusal")
    want = parse_json_object(reference)
    if want is None:
        if not ended_with_eos:
            return Failure("truncation", "truncation", "truncation")
        return _plain(prediction, reference, format_ok, synonyms)
    got = parse_json_object(prediction)
    if got is None:
        if embedded_object(prediction) is not None:
            return Failure("format", "format: wrapped", "format: wrapped")
        if not ended_with_eos and "{" in prediction:
            return Failure("truncation", "truncation", "truncation")
        return Failure("format", "format: not JSON", "format: not JSON")
    return _fields(got, want, format_ok, synonyms)


def _plain(prediction: str, reference: str, format_ok: bool, synonyms) -> Failure:
    """A reference that is not a JSON object: the whole answer is one field, `answer`."""
    if not format_ok:
        return Failure("format", "format: invalid", "format: invalid")
    kind = slip_kind(prediction.strip(), reference.strip(), synonyms)
    if kind:
        return Failure("vocabulary", "vocabulary: answer", f"vocabulary: answer ({kind})", {"answer": prediction})
    shown = prediction.strip()[:80]
    return Failure("field", "field: answer", f"field: answer = {shown}", {"answer": shown})


def _fields(got: dict, want: dict, format_ok: bool, synonyms) -> Failure:
    content, slips = {}, {}
    for key, value in want.items():
        if key not in got:
            content[key] = MISSING
        elif got[key] != value:
            kind = slip_kind(got[key], value, synonyms)
            if kind:
                slips[key] = (got[key], kind)
            else:
                content[key] = got[key]
    fields = {**{k: "content" for k in content}, **{k: kind for k, (_, kind) in slips.items()}}
    if content:
        names = ", ".join(content)
        label = f"field: {names}" if len(content) == 1 else f"fields: {names}"
        shown = ", ".join(f"{k} = {_text(v)}" for k, v in content.items())
        return Failure("field", label, f"{label.split(':')[0]}: {shown}", content, fields)
    if slips:
        label = "vocabulary: " + ", ".join(slips)
        pattern = "vocabulary: " + ", ".join(f"{k} ({kind})" for k, (_, kind) in slips.items())
        return Failure("vocabulary", label, pattern, {k: v for k, (v, _) in slips.items()}, fields)
    if not format_ok:
        return Failure("format", "format: schema", "format: schema")
    extra = sorted(set(got) - set(want))
    if extra:
        return Failure("format", "format: extra keys", "format: extra keys", {k: got[k] for k in extra})
    return Failure("other", "other", "other")  # every field right, format fine: a metric of the user's disagrees
