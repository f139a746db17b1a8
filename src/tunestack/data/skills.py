"""Everyday skills with one right answer, generated with the answer known by construction: sums, differences and
products, the number after, double a number, units of time, the day or month after or before, the letter after,
capitals, opposites, plurals, colours, legs. Each kind is a set of the multiple-choice retention suite
(`tunestack.data.choices`): `as_choices` gives every item three wrong options of its kind. An item's answer is never
one of the numbers or words in its question.
"""

from __future__ import annotations

import random

from tunestack.data.suites import interleave

WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen twenty").split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = ("January February March April May June July August September October November "
          "December").split()
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "China": "Beijing", "Russia": "Moscow", "the United Kingdom": "London", "Egypt": "Cairo", "Greece": "Athens",
    "Portugal": "Lisbon", "Ireland": "Dublin", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Poland": "Warsaw", "Austria": "Vienna", "Hungary": "Budapest", "Kenya": "Nairobi",
    "Thailand": "Bangkok", "South Korea": "Seoul", "Argentina": "Buenos Aires", "Peru": "Lima", "Cuba": "Havana",
    "Canada": "Ottawa", "Australia": "Canberra", "Mexico": "Mexico City", "India": "New Delhi",
    "the Netherlands": "Amsterdam", "Belgium": "Brussels", "Turkey": "Ankara", "Iran": "Tehran",
    "Indonesia": "Jakarta", "the Philippines": "Manila", "Vietnam": "Hanoi", "Chile": "Santiago",
    "Colombia": "Bogota", "Czechia": "Prague", "Ukraine": "Kyiv",
}
OPPOSITES = {
    "hot": ["cold"], "big": ["small", "little"], "up": ["down"], "fast": ["slow"], "happy": ["sad", "unhappy"],
    "light": ["dark", "heavy"], "open": ["closed", "shut"], "full": ["empty"], "old": ["new", "young"],
    "tall": ["short"], "wet": ["dry"], "early": ["late"], "hard": ["soft", "easy"], "high": ["low"],
    "good": ["bad", "evil"], "long": ["short"], "rich": ["poor"], "strong": ["weak"], "thick": ["thin"],
    "win": ["lose"], "left": ["right"], "day": ["night"], "love": ["hate"], "push": ["pull"], "buy": ["sell"],
    "inside": ["outside"], "above": ["below", "beneath", "under"], "begin": ["end", "finish"],
    "true": ["false"], "alive": ["dead"], "clean": ["dirty"], "loud": ["quiet", "soft"], "north": ["south"],
    "east": ["west"], "first": ["last"], "heavy": ["light"], "cheap": ["expensive"], "near": ["far"],
    "question": ["answer"], "friend": ["enemy", "foe"],
}
PLURALS = {
    "mouse": "mice", "child": "children", "foot": "feet", "tooth": "teeth", "man": "men", "woman": "women",
    "goose": "geese", "person": "people", "ox": "oxen", "leaf": "leaves", "knife": "knives", "wolf": "wolves",
    "box": "boxes", "bus": "buses", "city": "cities", "baby": "babies", "story": "stories", "church": "churches",
    "dish": "dishes", "potato": "potatoes", "tomato": "tomatoes", "hero": "heroes", "life": "lives",
    "wife": "wives", "half": "halves", "cactus": "cacti", "calf": "calves", "mouse trap": "mouse traps",
    "cat": "cats", "dog": "dogs", "book": "books", "apple": "apples", "house": "houses", "glass": "glasses",
    "watch": "watches", "party": "parties", "shelf": "shelves", "key": "keys", "toy": "toys",
}
COLOURS = {
    "a banana": ["yellow"], "the sky on a clear day": ["blue"], "grass": ["green"], "snow": ["white"],
    "coal": ["black"], "a ripe tomato": ["red"], "a pumpkin": ["orange"], "a lemon": ["yellow"],
    "a fire truck": ["red"], "milk": ["white"], "a crow": ["black"], "a polar bear": ["white"],
    "a carrot": ["orange"], "a lime": ["green"], "blood": ["red"], "chocolate": ["brown"],
    "a strawberry": ["red"], "the sun": ["yellow", "white"], "a frog": ["green"], "an eggplant": ["purple"],
}
LEGS = {"a spider": 8, "a dog": 4, "a bird": 2, "an insect": 6, "a cow": 4, "a person": 2, "a cat": 4,
        "a horse": 4, "an ant": 6, "a chicken": 2, "a beetle": 6, "a duck": 2, "a sheep": 4, "a fly": 6,
        "a crab": 10, "a goat": 4}
UNITS = [("minutes", "hours", 60, range(2, 25)), ("hours", "days", 24, range(2, 15)),
         ("days", "weeks", 7, range(2, 21)), ("months", "years", 12, range(2, 11)),
         ("seconds", "minutes", 60, range(2, 11))]


def number(n: int) -> list[str]:
    """The accepted forms of a number: its digits, and its word up to twenty."""
    return [str(n)] + ([WORDS[n]] if 0 <= n <= 20 else [])


def _items() -> dict[str, list[tuple[str, list[str]]]]:
    """Every item of every kind as (prompt, accepted answers), in a fixed order."""
    kinds: dict[str, list[tuple[str, list[str]]]] = {}
    kinds["add"] = [(f"What is {a} + {b}?", number(a + b)) for a in range(2, 31) for b in range(2, 31)]
    kinds["subtract"] = [(f"What is {a} - {b}?", number(a - b)) for a in range(5, 41) for b in range(2, a - 1)
                         if a - b != b]
    kinds["multiply"] = [(f"What is {a} times {b}?", number(a * b)) for a in range(2, 10) for b in range(2, 10)]
    kinds["after"] = [(f"What number comes right after {n}?", number(n + 1)) for n in range(2, 300)]
    kinds["double"] = [(f"What is double {n}?", number(2 * n)) for n in range(3, 120)]
    kinds["units"] = [(f"How many {small} are in {k} {big}?", number(k * per))
                      for small, big, per, ks in UNITS for k in ks]
    kinds["weekday"] = [(f"What day of the week comes after {d}?", [DAYS[(i + 1) % 7]]) for i, d in enumerate(DAYS)]
    kinds["weekday"] += [(f"What day of the week comes before {d}?", [DAYS[i - 1]]) for i, d in enumerate(DAYS)]
    kinds["month"] = [(f"What month comes after {m}?", [MONTHS[(i + 1) % 12]]) for i, m in enumerate(MONTHS)]
    kinds["month"] += [(f"What month comes before {m}?", [MONTHS[i - 1]]) for i, m in enumerate(MONTHS)]
    letters = "abcdefghijklmnopqrstuvwxyz"
    kinds["letter"] = [(f"Which letter comes after {c.upper()} in the alphabet?", [letters[i + 1]])
                       for i, c in enumerate(letters[:-1]) if letters[i + 1] != "i"]  # "I" is a word
    kinds["capital"] = [(f"What is the capital of {country}?", [city]) for country, city in CAPITALS.items()]
    kinds["opposite"] = [(f"What is the opposite of \"{word}\"?", answers) for word, answers in OPPOSITES.items()]
    kinds["plural"] = [(f"What is the plural of \"{word}\"?", [plural]) for word, plural in PLURALS.items()]
    kinds["colour"] = [(f"What colour is {thing}?", answers) for thing, answers in COLOURS.items()]
    kinds["legs"] = [(f"How many legs does {animal} have?", number(n)) for animal, n in LEGS.items()]
    return kinds


def build_skills(n: int, seed: int = 0) -> list[dict]:
    """`n` items (at most `most_items()`), the kinds in turn, each kind's items in an order fixed by `seed`; a
    prefix of a draw is the smaller draw."""
    pools = []
    for kind, items in _items().items():
        order = list(range(len(items)))
        random.Random(f"{seed}:{kind}").shuffle(order)
        pools.append([{"id": f"{kind}-{i}", "kind": kind, "prompt": items[i][0], "answers": items[i][1]}
                      for i in order])
    return list(interleave(pools, n))


def kinds() -> tuple[str, ...]:
    return tuple(_items())


def most_items() -> int:
    return sum(len(items) for items in _items().values())


NUMERIC = {"add", "subtract", "multiply", "after", "double", "units", "legs"}


def as_choices(items: list[dict], seed: int = 0, k: int = 4):
    """Each item as a multiple-choice question of `k` options: its answer and `k - 1` wrong ones of the same kind
    (for a number, nearby numbers: off by one, two or ten; otherwise other items' answers of the kind), in an order
    fixed by `seed`. Scored by log-likelihood, the same knowledge flips far less between two close models than a
    greedy answer does."""
    from tunestack.data.suites import Choice

    by_kind: dict[str, list[str]] = {}
    for kind, pool in _items().items():
        by_kind[kind] = sorted({answers[0] for _, answers in pool})
    out = []
    for item in items:
        rng = random.Random(f"{seed}:{item['id']}")
        right = item["answers"][0]
        if item["kind"] in NUMERIC:
            value = int(right)
            near = [value + d for d in (-10, -2, -1, 1, 2, 10) if value + d > 0]
            wrong = [str(v) for v in rng.sample(near, k - 1)]
        else:
            others = [a for a in by_kind[item["kind"]] if a.lower() not in {x.lower() for x in item["answers"]}]
            wrong = rng.sample(others, k - 1)
        options = wrong + [right]
        rng.shuffle(options)
        out.append(Choice(item["prompt"], options, options.index(right), item["kind"]))
    return out
