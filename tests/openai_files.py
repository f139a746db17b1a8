"""Fixture files in OpenAI's fine-tuning formats, with their truth known by construction.

The shapes follow OpenAI's documented fine-tuning input: supervised chat rows (`messages`, `tools` with optional
`strict`, `parallel_tool_calls`, assistant `tool_calls` with JSON-string `arguments` and `content: null`, `tool` turns
with `tool_call_id`, assistant `weight` 0 or 1, text content parts, the legacy `functions` / `function_call` /
`function` role) and preference (DPO) rows (`input`, `preferred_output`, `non_preferred_output`).

The domain is a small weather / units / calendar / order assistant whose answers follow from the prompt and the tool
results. Every assistant text carries a marker that appears once in its row (and once in its file):
`ANS-<row>-<n>` on training targets, `CTX-<row>-<n>` on weight-0 turns, `NOT-<row>-<n>` on non-preferred outputs,
`<row>` being the 0-based index in `FixtureSet.rows`. The first user turn of every row starts with a ticket number
(`[#1007]`) unique across all files, so no two rows, in one file or across files, share a prompt.

    from openai_files import write_sft, write_invalid
    train = write_sft(tmp_path)                    # tmp_path / "sft.jsonl", 60 rows, all valid
    bad = write_invalid(tmp_path)                  # bad.expected_rejects == {2: "undefined_tool", ...}

Standard library only. No pytest here: tests/test_openai_files.py checks the fixtures themselves.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

UNDEFINED_TOOL = "undefined_tool"
ARGUMENTS_NOT_JSON = "arguments_not_json"
ORPHAN_TOOL_RESULT = "orphan_tool_result"
BAD_WEIGHT = "bad_weight"
UNSUPPORTED_PART = "unsupported_part"
REJECT_CODES = (UNDEFINED_TOOL, ARGUMENTS_NOT_JSON, ORPHAN_TOOL_RESULT, BAD_WEIGHT, UNSUPPORTED_PART)
ARGUMENTS_SCHEMA = "arguments_schema"  # a warning: the row is accepted


@dataclass
class FixtureSet:
    path: Path
    rows: list[dict]  # the raw rows, in file order (line i + 1 holds rows[i])
    expected_rejects: dict[int, str] = field(default_factory=dict)  # 1-based line -> reject code
    expected_warnings: dict[int, str] = field(default_factory=dict)  # 1-based line -> warning code
    # per row: assistant turns that are training targets (weight 1 or none): the text, or for a call turn the name of
    # each function it calls, in order. For preference rows: the preferred output's text.
    learned: list[list[str]] = field(default_factory=list)
    context_only: list[list[str]] = field(default_factory=list)  # per row: texts of weight-0 (input) assistant turns
    tool_names: list[set[str]] = field(default_factory=list)  # per row: names defined by `tools` / `functions`
    defect_turns: dict[int, int] = field(default_factory=dict)  # 1-based line -> 1-based message index of the defect
    non_preferred: list[str] = field(default_factory=list)  # preference files: the non-preferred output's text


# --- tools ---------------------------------------------------------------------------------------------------------

def _object(properties: dict, required: list[str], closed: bool = True) -> dict:
    schema = {"type": "object", "properties": properties, "required": required}
    return schema | ({"additionalProperties": False} if closed else {})


STRING, UNITS = {"type": "string"}, ["celsius", "fahrenheit"]
MEASURES = {"type": "string", "enum": ["km", "mi", "kg", "lb", *UNITS]}
FUNCTIONS = {  # name -> (description, JSON Schema parameters)
    "get_weather": ("Current temperature in a city.",
                    _object({"city": STRING, "unit": {"type": "string", "enum": UNITS}}, ["city", "unit"])),
    "convert_units": ("Convert a quantity between units.", _object(
        {"value": {"type": "number"}, "from_unit": MEASURES, "to_unit": MEASURES}, ["value", "from_unit", "to_unit"])),
    "lookup_order": ("Look up an order by its id, like ORD-12345.", _object(
        {"order_id": STRING, "fields": {"type": "array", "items": {"type": "string",
                                                                    "enum": ["status", "items", "total", "eta"]}}},
        ["order_id"])),
    "create_event": ("Create a calendar event (date YYYY-MM-DD, time HH:MM).", _object(
        {"title": STRING, "when": _object({"date": STRING, "time": STRING}, ["date", "time"]),
         "attendees": {"type": "array", "items": _object({"name": STRING, "email": STRING}, ["name"], closed=False)}},
        ["title", "when"], closed=False)),
}
STRICT_OK = {"get_weather", "convert_units"}  # every property required, no extra properties: valid with strict
UNDEFINED_NAMES = ["get_forecast", "cancel_order", "send_email", "book_flight"]


def function(name: str) -> dict:
    """A function definition (a fresh copy), as legacy `functions` lists it and `tools` wraps it."""
    description, parameters = FUNCTIONS[name]
    return {"name": name, "description": description, "parameters": json.loads(json.dumps(parameters))}


def tools(names, strict: bool = False) -> list[dict]:
    """`tools` entries for `names`; with `strict`, `strict: true` on the functions whose schema allows it."""
    return [{"type": "function", "function": function(name) | ({"strict": True} if strict and name in STRICT_OK
                                                                 else {})} for name in names]


# --- domain --------------------------------------------------------------------------------------------------------

CITIES = ["Paris", "Reykjavík", "São Paulo", "Zürich", "Kraków", "Osaka", "Nairobi", "Montréal", "Oslo", "Lima",
          "Tromsø", "Québec"]
PEOPLE = [("Amélie Roux", "amelie@example.com"), ("Kenji Sato", "kenji@example.com"), ("Ola Nordmann", None),
          ("Zoë Park", "zoe@example.org")]
PRODUCTS = ["Assay kit ER+ PR- (HER2−)", "USB-C cable 2 m", "Tea set 急須", "Thermometer −40…+50 °C"]
BASE_TICKET = {"sft": 1000, "validation": 5000, "invalid": 7000, "preference": 3000}
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def call_id(key: str) -> str:
    """`call_` + 24 alphanumerics, a stable function of `key`."""
    digest = hashlib.sha256(key.encode()).digest()
    return "call_" + "".join(_ALNUM[b % 62] for b in digest[:24])


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def degrees(t: int, unicode_minus: bool) -> str:
    return f"−{-t}" if t < 0 and unicode_minus else str(t)


def parts(text: str) -> list[dict]:
    return [{"type": "text", "text": text}]


class Conversation:
    """Builds one SFT row and records, as it goes, which assistant turns are learned and which are context."""

    def __init__(self, tag: str, index: int, rng: random.Random, strict: bool):
        self.tag, self.index, self.rng, self.strict, self.ticket = tag, index, rng, strict, BASE_TICKET[tag] + index
        self.messages, self.row, self.names = [], {}, set()  # the row's turns, its other keys, its defined functions
        self.learned, self.context = [], []  # the truth, as FixtureSet.learned / context_only
        self.n = self.calls = 0  # markers and call ids made so far

    def coin(self) -> bool:
        return self.rng.random() < 0.5

    def marker(self, kind: str) -> str:
        self.n += 1
        return f"{kind}-{self.index}-{self.n}"

    def use_tools(self, *names: str, parallel: bool | None = None, legacy: bool = False) -> None:
        """`tools` (or with `legacy`, `functions`) defining `names`; `parallel_tool_calls` unless None."""
        if legacy:
            self.row["functions"] = [function(name) for name in names]
        else:
            self.row["tools"] = tools(names, self.strict)
        self.names = set(names)
        if parallel is not None:
            self.row["parallel_tool_calls"] = parallel

    def system(self, text: str, as_parts: bool = False) -> None:
        self.messages.append({"role": "system", "content": parts(text) if as_parts else text})

    def user(self, text: str, as_parts: bool = False) -> None:
        if not any(m["role"] == "user" for m in self.messages):
            text = f"[#{self.ticket}] {text}"
        self.messages.append({"role": "user", "content": parts(text) if as_parts else text})

    def _assistant(self, message: dict, weight: int | None) -> None:
        self.messages.append({"role": "assistant", **message} | ({} if weight is None else {"weight": weight}))

    def say(self, text: str, weight: int | None = None) -> None:
        text = f"{text} ({self.marker('CTX' if weight == 0 else 'ANS')})"
        self._assistant({"content": text}, weight)
        (self.context if weight == 0 else self.learned).append(text)

    def call(self, *calls: tuple[str, dict], weight: int | None = None) -> list[str]:
        """One assistant turn calling each (name, arguments); returns the call ids."""
        ids = [call_id(f"{self.tag}:{self.index}:{self.calls + k}") for k in range(1, len(calls) + 1)]
        self.calls += len(calls)
        self._assistant({"content": None, "tool_calls": [
            {"id": ident, "type": "function", "function": {"name": name, "arguments": dumps(arguments)}}
            for ident, (name, arguments) in zip(ids, calls)]}, weight)
        self.learned += [name for name, _ in calls]
        return ids

    def result(self, ident: str, name: str, payload: dict) -> None:
        message = {"role": "tool", "tool_call_id": ident, "content": dumps(payload)}
        self.messages.append(message | ({"name": name} if self.coin() else {}))  # `name` is optional

    def legacy_call(self, name: str, arguments: dict) -> None:
        self._assistant({"content": None, "function_call": {"name": name, "arguments": dumps(arguments)}}, None)
        self.learned.append(name)

    def legacy_result(self, name: str, payload: dict) -> None:
        self.messages.append({"role": "function", "name": name, "content": dumps(payload)})

    def done(self) -> dict:
        return {"messages": self.messages, **self.row}


def weather(c: Conversation, city: str, unit: str = "celsius", weight: int | None = None) -> int:
    """A get_weather call, its result and nothing else; returns the temperature the tool reported."""
    t = c.rng.randint(-15, 33) if unit == "celsius" else c.rng.randint(5, 91)
    (ident,) = c.call(("get_weather", {"city": city, "unit": unit}), weight=weight)
    c.result(ident, "get_weather", {"city": city, "temperature": t, "unit": unit})
    return t


SYSTEM = "You are Fjord, a concise assistant for weather, units, calendars and orders. Use the tools when needed."


def single_call(c: Conversation) -> None:
    c.use_tools("get_weather", "convert_units", parallel=c.rng.choice([None, False]))
    c.system(SYSTEM)
    city, unit = c.rng.choice(CITIES), c.rng.choice(UNITS)
    c.user(f"How warm is it in {city} right now? Answer in {unit}.")
    t = weather(c, city, unit)
    sign = "°C" if unit == "celsius" else "°F"
    c.say(f"It is {degrees(t, c.coin())} {sign} in {city} right now.")


def parallel_calls(c: Conversation) -> None:
    cities = c.rng.sample(CITIES, c.rng.choice([2, 3]))
    c.use_tools("get_weather", "lookup_order", parallel=True)
    c.system(SYSTEM)
    c.user(f"Compare the temperature in {', '.join(cities[:-1])} and {cities[-1]}, in celsius.")
    temps = [c.rng.randint(-15, 33) for _ in cities]
    ids = c.call(*[("get_weather", {"city": city, "unit": "celsius"}) for city in cities])
    for ident, city, t in zip(ids, cities, temps):
        c.result(ident, "get_weather", {"city": city, "temperature": t, "unit": "celsius"})
    warmest = cities[temps.index(max(temps))]
    listing = "; ".join(f"{city} {degrees(t, True)} °C" for city, t in zip(cities, temps))
    c.say(f"{listing}. Warmest: {warmest} (Δ = {max(temps) - min(temps)} K).")


def multi_turn_weight0(c: Conversation) -> None:
    c.use_tools("get_weather", "convert_units", parallel=False)
    c.system(SYSTEM)
    c.user("What is the formula from Celsius to Fahrenheit?")
    c.say("°F = °C × 9/5 + 32, so 0 °C = 32 °F.", weight=0)
    city = c.rng.choice(CITIES)
    c.user(f"Then what is it in {city} right now, in fahrenheit?")
    t = weather(c, city, "fahrenheit", weight=1)
    c.say(f"{city} is at {t} °F, about {round((t - 32) * 5 / 9)} °C.")


def final_call_event(c: Conversation) -> None:
    c.use_tools("create_event", "get_weather", "lookup_order")
    c.system(SYSTEM + " Dates are ISO 8601.", as_parts=True)
    day = c.rng.randint(1, 31)
    c.user(f"Is 2025-03-{day:02d} a weekday?")
    weekend = datetime.date(2025, 3, day).weekday() >= 5
    c.say("No, it falls on a weekend." if weekend else "Yes, it is a weekday.", weight=0)
    c.user("What time zone do you use for events?")
    c.say("Events use your calendar's time zone (UTC+01:00 by default).", weight=1)
    people = c.rng.sample(PEOPLE, 2)
    attendees = [{"name": n, **({"email": e} if e else {})} for n, e in people]
    hour = c.rng.randint(8, 17)
    c.user(f"Book 'Sync ±5 min' on 2025-03-{day:02d} at {hour}:30 with {people[0][0]} and {people[1][0]}.")
    c.call(("create_event", {"title": "Sync ±5 min", "when": {"date": f"2025-03-{day:02d}", "time": f"{hour:02d}:30"},
                             "attendees": attendees}))


def legacy(c: Conversation) -> None:
    c.use_tools("get_weather", "convert_units", legacy=True)
    if c.coin():
        c.system(SYSTEM)
    km = c.rng.randint(3, 250)
    c.user(f"How many miles is {km} km?")
    c.legacy_call("convert_units", {"value": km, "from_unit": "km", "to_unit": "mi"})
    mi = round(km / 1.609344, 2)
    c.legacy_result("convert_units", {"value": mi, "unit": "mi"})
    c.say(f"{km} km ≈ {mi} mi (km ÷ 1.609344).")


def plain(c: Conversation) -> None:
    c.system("日本語で簡潔に答えてください。", as_parts=c.coin())
    city = c.rng.choice(["東京", "大阪", "札幌", "那覇"])
    month = c.rng.randint(1, 12)
    c.user(f"{city}の{month}月の平均気温は何度ですか？", as_parts=True)
    c.say(f"{city}の{month}月の平均気温はおよそ{c.rng.randint(-4, 29)}度です。")


def order_multi(c: Conversation) -> None:
    c.use_tools("lookup_order", "get_weather", "convert_units", parallel=c.coin())
    c.system(SYSTEM)
    c.user("Hi! Can you track parcels for me?", as_parts=True)
    c.say("Yes: give me the order id (ORD- followed by 5 digits).", weight=0)
    order, product = f"ORD-{c.rng.randint(10000, 99999)}", c.rng.choice(PRODUCTS)
    c.user(f"It is {order}. Where is it?")
    (ident,) = c.call(("lookup_order", {"order_id": order, "fields": ["status", "items", "eta"]}), weight=1)
    city, eta = c.rng.choice(CITIES), f"2025-04-{c.rng.randint(1, 30):02d}"
    c.result(ident, "lookup_order", {"order_id": order, "status": "in transit", "items": [product], "eta": eta,
                                     "city": city})
    c.say(f"{order} ({product}) is in transit to {city}; expected {eta}.", weight=1)
    c.user(f"What's the weather in {city} now?")
    t = weather(c, city)
    c.say(f"{city}: {degrees(t, c.coin())} °C.")
    c.user("Thanks, that is all.")
    c.say("You're welcome — safe delivery!")


def tools_unused(c: Conversation) -> None:
    c.use_tools("get_weather", "convert_units")
    a, b = c.rng.randint(2, 40), c.rng.randint(2, 40)
    c.user(f"No tools needed: what is {a} × {b} − {b}?")
    c.say(f"{a} × {b} − {b} = {a * b - b}.")


SFT_KINDS = [single_call, parallel_calls, multi_turn_weight0, final_call_event, legacy, plain, order_multi,
             tools_unused]


def _save(path: Path, built: list[Conversation], rows: list[dict] | None = None, **truth) -> FixtureSet:
    fixture = FixtureSet(path, rows or [c.done() for c in built], learned=[c.learned for c in built],
                         context_only=[c.context for c in built], tool_names=[c.names for c in built], **truth)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in fixture.rows), encoding="utf-8")
    return fixture


def _chat_file(path: Path, tag: str, n: int, seed: int) -> FixtureSet:
    rng = random.Random(seed)
    built = [Conversation(tag, i, rng, strict=i % 3 == 0) for i in range(n)]
    for c in built:
        SFT_KINDS[c.index % len(SFT_KINDS)](c)
    return _save(path, built)


def write_sft(folder: Path, n: int = 60, seed: int = 0) -> FixtureSet:
    """`folder/sft.jsonl`: `n` valid supervised chat rows cycling through `SFT_KINDS`; none rejected, no warnings."""
    return _chat_file(Path(folder) / "sft.jsonl", "sft", n, seed)


def write_validation(folder: Path, n: int = 20, seed: int = 1) -> FixtureSet:
    """`folder/validation.jsonl`: like `write_sft`, with other tickets, call ids and slot values."""
    return _chat_file(Path(folder) / "validation.jsonl", "validation", n, seed)


# --- invalid rows --------------------------------------------------------------------------------------------------

def _nth(c: Conversation, test, nth: int) -> int:
    return [i for i, m in enumerate(c.messages) if test(m)][nth]


def _is_call(m: dict) -> bool:
    return m["role"] == "assistant" and ("tool_calls" in m or "function_call" in m)


def _functions_of(m: dict) -> list[dict]:
    return [call["function"] for call in m["tool_calls"]] if "tool_calls" in m else [m["function_call"]]


# Each mutation changes the row built in `c` at its nth call / tool / assistant / user turn, and returns the 0-based
# index of the message it changed or inserted.

def undefined_tool(c: Conversation, nth: int, which: int = 0) -> int:
    i = _nth(c, _is_call, nth)
    function = _functions_of(c.messages[i])[which]
    old, new = function["name"], UNDEFINED_NAMES[c.index % len(UNDEFINED_NAMES)]
    before = [f["name"] for m in c.messages[:i] if _is_call(m) for f in _functions_of(m)]
    before += [f["name"] for f in _functions_of(c.messages[i])[:which]]
    c.learned[[k for k, x in enumerate(c.learned) if x == old][before.count(old)]] = new
    function["name"] = new
    ids = {call["id"] for call in c.messages[i].get("tool_calls", [])}
    for m in c.messages[i + 1:]:  # keep the result's name consistent with the call: one defect per row
        if m.get("name") == old and (m.get("tool_call_id") in ids or m["role"] == "function"):
            m["name"] = new
    return i


def not_json(c: Conversation, nth: int, bad: str) -> int:
    i = _nth(c, _is_call, nth)
    _functions_of(c.messages[i])[0]["arguments"] = bad
    return i


def orphan(c: Conversation, nth: int, later: bool = False) -> int:
    """A tool turn inserted after the nth one, whose id matches no earlier call: a fresh id, or (`later`) the id of
    a call made further on."""
    i = _nth(c, lambda m: m["role"] == "tool", nth) + 1
    ident = call_id(f"orphan:{c.index}")
    if later:
        ident = next(m["tool_calls"][0]["id"] for m in c.messages[i:] if "tool_calls" in m)
    c.messages.insert(i, {"role": "tool", "tool_call_id": ident, "content": '{"status": "ok"}'})
    return i


def bad_weight(c: Conversation, nth: int, value) -> int:
    i = _nth(c, lambda m: m["role"] == "assistant", nth)
    c.messages[i]["weight"] = value
    return i


IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/chart.png"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=",
                                                "format": "wav"}}


def unsupported(c: Conversation, nth: int, part: dict) -> int:
    i = _nth(c, lambda m: m["role"] == "user", nth)
    content = c.messages[i]["content"]
    c.messages[i]["content"] = (content if isinstance(content, list) else parts(content)) + [part]
    return i


def off_schema(c: Conversation, nth: int, edit) -> int:
    """Valid JSON arguments that break the function's `parameters`: `edit(arguments)` changes them in place."""
    i = _nth(c, _is_call, nth)
    function = _functions_of(c.messages[i])[0]
    arguments = json.loads(function["arguments"])
    edit(arguments)
    function["arguments"] = dumps(arguments)
    return i


# (kind, code, mutation, its arguments after nth); code None: a valid row; ARGUMENTS_SCHEMA: valid, with a warning.
INVALID_PLAN = [
    (single_call, None, None, ()),
    (single_call, UNDEFINED_TOOL, undefined_tool, (0,)),
    (order_multi, UNDEFINED_TOOL, undefined_tool, (1,)),
    (legacy, UNDEFINED_TOOL, undefined_tool, (0,)),
    (parallel_calls, UNDEFINED_TOOL, undefined_tool, (0, 1)),
    (multi_turn_weight0, None, None, ()),
    (single_call, ARGUMENTS_NOT_JSON, not_json, (0, '{"city": "Paris"')),
    (order_multi, ARGUMENTS_NOT_JSON, not_json, (1, "city=Paris")),
    (legacy, ARGUMENTS_NOT_JSON, not_json, (0, "{'value': 5, 'from_unit': 'km'}")),
    (final_call_event, ARGUMENTS_NOT_JSON, not_json, (0, '{"title": "Sync", "when": {"date": "2025-03-01"}')),
    (plain, None, None, ()),
    (single_call, ORPHAN_TOOL_RESULT, orphan, (0,)),
    (order_multi, ORPHAN_TOOL_RESULT, orphan, (0, True)),
    (parallel_calls, ORPHAN_TOOL_RESULT, orphan, (1,)),
    (multi_turn_weight0, ORPHAN_TOOL_RESULT, orphan, (0,)),
    (order_multi, None, None, ()),
    (single_call, BAD_WEIGHT, bad_weight, (1, 0.5)),
    (order_multi, BAD_WEIGHT, bad_weight, (0, 2)),
    (multi_turn_weight0, BAD_WEIGHT, bad_weight, (0, "1")),
    (order_multi, BAD_WEIGHT, bad_weight, (4, True)),
    (tools_unused, None, None, ()),
    (single_call, UNSUPPORTED_PART, unsupported, (0, IMAGE)),
    (order_multi, UNSUPPORTED_PART, unsupported, (2, AUDIO)),
    (legacy, UNSUPPORTED_PART, unsupported, (0, IMAGE)),
    (order_multi, UNSUPPORTED_PART, unsupported, (3, IMAGE)),
    (final_call_event, None, None, ()),
    (single_call, ARGUMENTS_SCHEMA, off_schema, (0, lambda a: a.pop("unit"))),  # missing required
    (legacy, ARGUMENTS_SCHEMA, off_schema, (0, lambda a: a.update(value=str(a["value"])))),  # wrong type
    (multi_turn_weight0, ARGUMENTS_SCHEMA, off_schema, (0, lambda a: a.update(unit="kelvin"))),  # outside enum
    (order_multi, ARGUMENTS_SCHEMA, off_schema, (1, lambda a: a.update(country="NO"))),  # additionalProperties
    (final_call_event, ARGUMENTS_SCHEMA, off_schema, (0, lambda a: a["when"].pop("time"))),  # nested required
    (parallel_calls, None, None, ()),
]


def write_invalid(folder: Path) -> FixtureSet:
    """`folder/invalid.jsonl`: valid rows, rows with one defect each (`expected_rejects`, `defect_turns`) and valid
    rows whose arguments break their schema (`expected_warnings`, `arguments_schema`)."""
    rng, built, rejects, warnings, turns = random.Random(7), [], {}, {}, {}
    for line, (kind, code, mutate, args) in enumerate(INVALID_PLAN, 1):
        c = Conversation("invalid", line - 1, rng, strict=code is None and line % 2 == 1)
        kind(c)
        if mutate is not None:
            turns[line] = mutate(c, *args) + 1
        if code is not None:
            (warnings if code == ARGUMENTS_SCHEMA else rejects)[line] = code
        built.append(c)
    return _save(Path(folder) / "invalid.jsonl", built, expected_rejects=rejects, expected_warnings=warnings,
                 defect_turns=turns)


# --- preference (DPO) ----------------------------------------------------------------------------------------------

def write_preference(folder: Path, n: int = 30, seed: int = 2) -> FixtureSet:
    """`folder/preference.jsonl`: `n` valid DPO rows. `learned` holds the preferred text, `non_preferred` the other,
    `context_only` the texts of the input's assistant turns."""
    rng, built, rows = random.Random(seed), [], []
    for i in range(n):
        c = Conversation("preference", i, rng, strict=i % 2 == 0)
        city, t = rng.choice(CITIES), rng.randint(-15, 33)
        if i % 3 == 0:  # a tool call and its result in the input
            c.use_tools("get_weather", "convert_units", parallel=i % 2 == 0)
            c.system(SYSTEM)
            c.user(f"How cold is {city} today?")
            (ident,) = c.call(("get_weather", {"city": city, "unit": "celsius"}))
            c.result(ident, "get_weather", {"city": city, "temperature": t, "unit": "celsius"})
            good, bad = f"It is {degrees(t, True)} °C in {city} today.", f"It is {t + 7} degrees in {city}, probably."
        elif i % 3 == 1:  # multi-turn input
            c.system(SYSTEM)
            c.user(f"I fly to {city} tomorrow.")
            c.say("Have a good trip! Want the forecast?", weight=0)
            c.user("Yes, in one line please.")
            good = f"{city} tomorrow: {degrees(t, False)} °C, pack a jacket."
            bad = f"Weather in {city} tomorrow is a complex subject with many factors, such as pressure, humidity…"
        else:
            c.user(f"Write a 3-word headline: {city} hits {t} °C.")
            good, bad = f"{city} hits {t}°C", f"Unprecedented weather phenomenon observed in {city} today"
        good, bad = f"{good} ({c.marker('ANS')})", f"{bad} ({c.marker('NOT')})"
        c.learned = [good]  # the input's turns are all context in a preference row
        for m in c.messages:
            m.pop("weight", None)  # DPO input turns carry no weight
        rows.append({"input": c.done(), "preferred_output": [{"role": "assistant", "content": good}],
                     "non_preferred_output": [{"role": "assistant", "content": bad}]})
        built.append(c)
    return _save(Path(folder) / "preference.jsonl", built, rows, non_preferred=[r["non_preferred_output"][0]["content"]
                                                                             for r in rows])
