"""A seeded generator of a small tool-calling task in OpenAI's fine-tuning format: a desk assistant with four
functions (weather, currency conversion, timers, restaurant search) that must call the right one with the right
arguments, answer in text when no offered function fits, and turn a function's result into a sentence.

Every argument is derivable from the request, through a closed set of surface forms: currency symbols and names
(`$`, `dollars`, `USD`), units (`°F`, `fahrenheit`), durations (`half an hour`, `90 min`), party sizes in digits or
words. A base model fails here systematically (it does not know the call format or the codes), which is what
fine-tuning fixes. Each row offers two of the four functions, always the one it needs when it needs one.

Rows, by construction (the shares are of `n`):

- about 70% call: the user asks for something an offered function does; the answer is that call;
- about 15% answer in text: small talk, or a request no offered function serves (the sentence says what it can do);
- about 15% are multi-turn: the call (a weight-0 turn: context, not a target), the function's result as a `tool`
  turn, and the answer, a sentence made from the result.

>>> rows = generate(40, seed=1)
>>> sorted({kind(r) for r in rows})
['call', 'result', 'text']
>>> call = next(r for r in rows if kind(r) == "call")["messages"][-1]["tool_calls"][0]["function"]
>>> sorted(json.loads(call["arguments"])) == sorted(FUNCTIONS[call["name"]]["parameters"]["required"])
True
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM_PROMPT = "You are a desk assistant: call a function when one fits, else answer briefly."

CURRENCIES = {"USD": ["$", "dollars", "USD"], "EUR": ["€", "euros", "EUR"], "GBP": ["£", "pounds", "GBP"],
              "JPY": ["¥", "yen", "JPY"], "CHF": ["Swiss francs", "CHF"]}
UNITS = {"celsius": ["°C", "celsius", "centigrade"], "fahrenheit": ["°F", "fahrenheit"]}
CUISINES = ["italian", "thai", "indian", "mexican", "japanese", "vegan"]
CITIES = ["Oslo", "Lima", "Quito", "Dakar", "Hanoi", "Perth", "Cairo", "Porto", "Denver", "Osaka", "Nairobi", "Bergen",
          "Tallinn", "Austin", "Lyon", "Krakow", "Seville", "Boston", "Sapporo", "Adelaide", "Accra", "Zurich",
          "Halifax", "Cusco", "Tbilisi", "Malmo", "Leeds", "Graz", "Valencia", "Chennai"]
NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 8: "eight"}
LABELS = ["tea", "laundry", "pasta", "call mum", "stretch", "meeting", "oven", "parking"]


def _function(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"name": name, "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required}}


FUNCTIONS = {
    "get_weather": _function("get_weather", "Weather in a city.",
                             {"city": {"type": "string"}, "unit": {"type": "string", "enum": list(UNITS)}},
                             ["city", "unit"]),
    "convert_currency": _function("convert_currency", "Convert money.",
                                  {"amount": {"type": "number"}, "from": {"type": "string", "enum": list(CURRENCIES)},
                                   "to": {"type": "string", "enum": list(CURRENCIES)}}, ["amount", "from", "to"]),
    "set_timer": _function("set_timer", "Start a timer.",
                           {"minutes": {"type": "integer"}, "label": {"type": "string"}}, ["minutes", "label"]),
    "find_restaurant": _function("find_restaurant", "Find a table.",
                                 {"city": {"type": "string"}, "cuisine": {"type": "string", "enum": CUISINES},
                                  "people": {"type": "integer"}}, ["city", "cuisine", "people"]),
}
WHAT = {"get_weather": "check the weather", "convert_currency": "convert currencies", "set_timer": "set timers",
        "find_restaurant": "find restaurants"}
SMALL_TALK = ["Thanks, that's all.", "Hello there!", "Who are you?", "Good morning.", "Tell me a joke.",
              "What's the capital of Peru?", "Can you write a poem?", "How are you today?"]


def _weather(rng: random.Random) -> tuple[str, dict]:
    city, unit = rng.choice(CITIES), rng.choice(list(UNITS))
    form = rng.choice(UNITS[unit])
    ask = rng.choice(["What's the weather in {city} in {form}?", "Weather for {city} please, {form}.",
                      "How warm is it in {city}? Give it in {form}.", "{city} weather ({form})"])
    return ask.format(city=city, form=form), {"city": city, "unit": unit}


def _currency(rng: random.Random) -> tuple[str, dict]:
    source, target = rng.sample(list(CURRENCIES), 2)
    amount = rng.choice([5, 12, 20, 45, 60, 99, 150, 250, 1200, 12.5, 7.25, 3000])
    a, b = rng.choice(CURRENCIES[source]), rng.choice(CURRENCIES[target])
    shown = f"{amount:g}"
    money = f"{a}{shown}" if a in ("$", "€", "£", "¥") else f"{shown} {a}"
    ask = rng.choice(["Convert {money} to {b}.", "How much is {money} in {b}?", "{money} in {b}, please.",
                      "I have {money}. What is that in {b}?"])
    return ask.format(money=money, b=b), {"amount": amount, "from": source, "to": target}


def _timer(rng: random.Random) -> tuple[str, dict]:
    minutes, label = rng.choice([5, 10, 15, 20, 25, 30, 45, 60, 90, 120]), rng.choice(LABELS)
    spoken = {30: "half an hour", 60: "an hour", 90: "an hour and a half", 120: "two hours"}
    duration = spoken[minutes] if minutes in spoken and rng.random() < 0.5 else rng.choice(
        [f"{minutes} minutes", f"{minutes} min"])
    ask = rng.choice(["Set a timer for {d} for {label}.", "Timer: {label}, {d}.", "Remind me about {label} in {d}.",
                      "Start a {d} timer called {label}."])
    return ask.format(d=duration, label=label), {"minutes": minutes, "label": label}


def _restaurant(rng: random.Random) -> tuple[str, dict]:
    city, cuisine, people = rng.choice(CITIES), rng.choice(CUISINES), rng.choice(list(NUMBER_WORDS))
    count = NUMBER_WORDS[people] if rng.random() < 0.5 else str(people)
    ask = rng.choice(["Find a {cuisine} place in {city} for {count}.", "Table for {count}, {cuisine}, in {city}.",
                      "We are {count} people in {city} and want {cuisine} food.",
                      "Book {cuisine} in {city}, {count} of us."])
    return ask.format(cuisine=cuisine, city=city, count=count), {"city": city, "cuisine": cuisine, "people": people}


REQUESTS = {"get_weather": _weather, "convert_currency": _currency, "set_timer": _timer,
            "find_restaurant": _restaurant}


def _result(name: str, arguments: dict, rng: random.Random) -> tuple[dict, str]:
    """A function's result and the sentence that reports it."""
    if name == "get_weather":
        degrees = rng.randint(-5, 35) if arguments["unit"] == "celsius" else rng.randint(25, 95)
        sky = rng.choice(["sunny", "cloudy", "raining", "windy"])
        symbol = "°C" if arguments["unit"] == "celsius" else "°F"
        return {"temperature": degrees, "sky": sky}, f"It is {degrees}{symbol} and {sky} in {arguments['city']}."
    if name == "convert_currency":
        value = round(arguments["amount"] * rng.uniform(0.5, 2.0), 2)
        return ({"result": value}, f"{arguments['amount']:g} {arguments['from']} is {value:g} {arguments['to']}.")
    if name == "set_timer":
        return {"ok": True}, f"Your {arguments['label']} timer is set for {arguments['minutes']} minutes."
    place = f"{rng.choice(['Casa', 'Blue', 'Little', 'Golden'])} {rng.choice(['Fork', 'Lotus', 'Garden', 'Table'])}"
    time = f"{rng.randint(17, 21)}:{rng.choice(['00', '30'])}"
    return ({"name": place, "time": time},
            f"{place} has a table for {arguments['people']} at {time}.")


def _tools(names: list[str]) -> list[dict]:
    return [{"type": "function", "function": FUNCTIONS[name]} for name in names]


def _call(name: str, arguments: dict, k: int) -> dict:
    return {"id": f"call_{k:05d}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


def one_row(rng: random.Random, k: int) -> dict:
    roll = rng.random()
    needed = rng.choice(list(FUNCTIONS))
    others = [name for name in FUNCTIONS if name != needed]
    system = {"role": "system", "content": SYSTEM_PROMPT}
    if roll < 0.15:  # answer in text: small talk, or the request's function is not offered
        offered = rng.sample(others, 2)
        if rng.random() < 0.5:
            ask = rng.choice(SMALL_TALK)
        else:
            ask = REQUESTS[needed](rng)[0]
        can = " and ".join(WHAT[name] for name in offered)
        reply = f"I can only {can} here."
        return {"messages": [system, {"role": "user", "content": ask}, {"role": "assistant", "content": reply}],
                "tools": _tools(sorted(offered))}
    offered = sorted([needed, rng.choice(others)])
    ask, arguments = REQUESTS[needed](rng)
    call = _call(needed, arguments, k)
    messages = [system, {"role": "user", "content": ask}]
    if roll < 0.30:  # multi-turn: the call is context, the answer reports the function's result
        result, sentence = _result(needed, arguments, rng)
        messages += [{"role": "assistant", "content": None, "tool_calls": [call], "weight": 0},
                     {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)},
                     {"role": "assistant", "content": sentence}]
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    return {"messages": messages, "tools": _tools(offered)}


def kind(row: dict) -> str:
    """`call`, `text` or `result`: what the row's last turn is (for tests and the docs)."""
    if row["messages"][-1].get("tool_calls"):
        return "call"
    return "result" if any(m["role"] == "tool" for m in row["messages"]) else "text"


def generate(n: int, seed: int = 0) -> list[dict]:
    """`n` rows with distinct requests, the same for the same seed."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        row = one_row(rng, len(rows))
        key = row["messages"][1]["content"]
        if key not in seen:  # distinct requests, so dedup, conflicts and decontamination have nothing to remove
            seen.add(key)
            rows.append(row)
    return rows


def write_demo_data(folder: Path, n: int = 400, seed: int = 0) -> Path:
    """The tools demo's one source, `tool_calling.jsonl`: `n` rows in OpenAI's chat fine-tuning format."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tool_calling.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for row in generate(n, seed):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
