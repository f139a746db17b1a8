"""Test fixtures for the data stage's duplicate and leak detectors: four structurally different domains.

The detectors were once tuned on templated radiology reports only, and on other data they threw away rows that
were merely alike. These generators build rows from slot values, plant exact copies, cosmetic copies, eval leaks and
one-slot variants, and record the ground truth, so a test can measure recall and precision per planted kind.

The definitions (exact duplicate, cosmetic near duplicate, prompt, leak) are implemented here once more, by brute
force, in `exact_key`, `sequence_key`, `clause_key` and `prompt_key`; every row the fixture calls distinct is checked
against them. Pure standard library: nothing here may share code (or bugs) with the detector under test.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

DOMAINS = ("contracts", "classification", "qa", "chat")
FILLER = ("a", "an", "the", "please", "kindly", "also", "basically", "actually", "simply", "um", "uh", "ok", "okay",
          "hi", "hello", "hey", "thanks")
_FILLER = frozenset(FILLER)
_ALNUM = re.compile(r"[^\W_]+")
_CLAUSE = re.compile(r"[.;!?]+(?=\s|$)|\n")
_SENTENCE_GAP = re.compile(r"(?<=[.;!?])\s+")  # the same boundaries as _CLAUSE, within one line
_FILLER_WORD = re.compile(r"(?:^| )(?:%s)(?= |$)" % "|".join(FILLER), re.IGNORECASE)


# --- reference keys, written from the definitions ------------------------------------------------------------------

def normalise(text: str) -> list[str]:
    # [^\W_] is exactly str.isalnum: every other character separates words.
    return _ALNUM.findall(unicodedata.normalize("NFKC", text).lower())


@functools.lru_cache(maxsize=1 << 16)  # system prompts and boilerplate sentences recur in most rows
def _content(text: str) -> tuple[str, ...]:
    return tuple(w for w in normalise(text) if w not in _FILLER)


def _clauses(text: str) -> tuple[tuple[str, ...], ...]:
    # A multiset, so sorted; clauses with no content words (a trailing split, "Thanks!") carry nothing to compare.
    return tuple(sorted(c for c in map(_content, _CLAUSE.split(text)) if c))


def exact_key(row: dict) -> tuple:
    return tuple((m["role"], tuple(normalise(m["content"]))) for m in row["messages"])


def sequence_key(row: dict) -> tuple:
    return tuple((m["role"], _content(m["content"])) for m in row["messages"])


def clause_key(row: dict) -> tuple:
    return tuple((m["role"], _clauses(m["content"])) for m in row["messages"])


def prompt_key(row: dict) -> tuple:
    return sequence_key(row)[:-1]


def is_near(a: dict, b: dict) -> bool:
    """Cosmetic near duplicate: not exact, but the same content words in order, or the same clauses per turn."""
    return exact_key(a) != exact_key(b) and (sequence_key(a) == sequence_key(b) or clause_key(a) == clause_key(b))


def row_keys(row: dict) -> set[tuple]:
    # Two rows sharing any of these are not distinct. The clause form of the prompt is stricter than the
    # definition needs, so that a distinct row is not even a near-conflict of another.
    return {("sequence", sequence_key(row)), ("clause", clause_key(row)), ("prompt", prompt_key(row)),
            ("prompt-clause", clause_key(row)[:-1])}


# --- slot pools ----------------------------------------------------------------------------------------------------

def _date(rng: random.Random) -> date:
    return date(2019, 1, 1) + timedelta(days=rng.randrange(2555))


def _pick(*values):
    return lambda rng: rng.choice(values)


def _span(lo: int, hi: int):
    return lambda rng: rng.randrange(lo, hi)


_COMPANIES = [f"{s} {t}" for s in "Acme Borealis Cobalt Dunmore Everline Fairgrove Granite Helix Ironbridge Juniper"
              .split() for t in ("Systems", "Logistics", "Health", "Partners")]
_PRODUCTS = ("SyncBox PhotoVault NoteNest TaskPilot MailDrop CloudDesk PayTrail FitPulse HomeHub ChatLeaf CodeCrate "
             "TravelMate SoundWave ReadRack LinkShelf BudgetBee PetPal MealMap SkyCam FormForge DataDock GreenLedger "
             "QuickInk RouteRunner StudyBuddy VoiceVault ClipCove PlantPal BikeBeacon WattWise").split()
_ITEMS = ("desk lamp", "coffee grinder", "rain jacket", "yoga mat", "phone case", "water bottle", "backpack",
          "wool scarf", "bluetooth speaker", "cutting board", "table fan", "travel mug")
_MONTHS = ("January February March April May June July August September October November December").split()
_TOWN_STARTS = "Ash Bel Cor Dun Elm Fen Gal Har Ivy Kel Lin Mor Nor Oak Pen Ros Sal Thorn Ul Wil".split()
_TOWN_ENDS = "bridge ford ham wick mere stead by ton field haven".split()
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

_POOLS = {
    "contracts": {"a": _pick(*_COMPANIES), "b": _pick(*_COMPANIES), "date": _date,
                  "law": _pick("Delaware", "New York", "California", "Texas", "Illinois", "Florida"),
                  "term": _pick(*[(n, "months") for n in (6, 12, 18, 24, 36)], *[(n, "years") for n in (1, 2, 3, 5)]),
                  "renewal": _pick("automatic", "none", "optional"), "notice": _pick(30, 60, 90),
                  "pay": _pick(30, 45, 60, None), "conf": _pick(True, False)},
    "classification": {"p": _pick(*_PRODUCTS), "issue": _span(0, 11), "neg": _pick(True, False),
                       "t": _span(0, 9), "d": _pick(*_DAYS),
                       "v": lambda rng: f"{rng.randrange(1, 6)}.{rng.randrange(10)}"},
    "qa": {"kind": _pick("town", "product"), "q": _span(0, 3),
           "extras": lambda rng: tuple(sorted(rng.sample(range(3, 7), rng.randint(1, 4)))),
           "town": lambda rng: rng.choice(_TOWN_STARTS) + rng.choice(_TOWN_ENDS),
           "region": _pick("Northmarch", "Lowvale", "Eastfen", "Highmoor", "Westreach", "Southdown"),
           "founded": _span(1150, 1900), "river": _pick("Arden", "Tamsin", "Orrin", "Vell", "Calder", "Mirrow"),
           "elev": _span(20, 900), "pop": _span(800, 45000), "month": _pick(*_MONTHS), "rebuilt": _span(1880, 1990),
           "industry": _pick("farming", "tourism", "textiles", "fishing", "logistics", "software"),
           "trains": _span(3, 40), "brand": _pick("Aurora", "Kestrel", "Nimbus", "Quill", "Tern", "Vireo"),
           "model": lambda rng: rng.choice("ABCDKMRSTX") + str(10 * rng.randrange(10, 100)),
           "category": _pick("portable speaker", "fitness tracker", "electric kettle", "robot vacuum", "ebook reader"),
           "year": _span(2012, 2025), "price": _span(20, 900), "warranty": _span(1, 6), "hours": _span(4, 60),
           "colour": _pick("slate grey", "forest green", "white", "navy blue", "sand"), "grams": _span(150, 3000),
           "prev": _span(2, 10), "upd": _span(1, 13)},
    "chat": {"greet": _pick(None, 0, 1, 2), "scen": _span(0, 3),
             "order": lambda rng: f"SR-{rng.randrange(10000, 100000)}", "item": _pick(*_ITEMS),
             "item2": _pick(*_ITEMS), "date": _date, "ship": _date, "days": _span(2, 10), "days2": _span(3, 11),
             "fee": lambda rng: f"{rng.randrange(3, 300)}.{rng.randrange(100):02d}", "no": _span(1, 400),
             "street": _pick("Mill", "Church", "Station", "Park", "Victoria", "Harbour"),
             "city": _pick("Leeds", "Bristol", "Dundee", "Cork", "Norwich", "Bath", "Exeter")},
}
# Slots a slot variant may change: values, not template choices. Each must appear in the prompt, or the variant
# would have the same prompt and be a conflicting label instead.
_VARY = {"contracts": ("a", "b", "date", "law", "term", "renewal", "notice"),
         "classification": ("p", "neg", "d", "v"),
         "qa": ("town", "region", "brand", "model", "category"),
         "chat": ("order", "item", "item2", "date", "ship", "days", "fee", "no", "city")}


# --- domains -------------------------------------------------------------------------------------------------------

_CONTRACT_SYSTEM = (
    "You are a contract analysis assistant. Read the contract excerpt supplied by the user and extract these fields: "
    "the two parties, the effective date, the governing law, the initial term in months, the renewal type, the notice "
    "period in days and the payment terms. Reply with one line of JSON using exactly these keys; use null for a field "
    "the excerpt does not state.")
_RENEWAL = {"automatic": "This Agreement renews automatically for successive one-year periods unless either party "
                         "gives notice of non-renewal.",
            "none": "This Agreement shall not renew unless the parties agree otherwise in writing.",
            "optional": "The Customer may renew this Agreement once for an equal term by written notice."}


def _contracts(s: dict) -> list[dict] | None:
    a, b, d, (n, unit), pay = s["a"], s["b"], s["date"], s["term"], s["pay"]
    if a == b:
        return None
    sentences = [f"This Services Agreement is entered into on {d:%B} {d.day}, {d.year} by {a} and {b}.",
                 f"This Agreement shall be governed by the laws of the State of {s['law']}.",
                 f"The initial term of this Agreement is {n} {unit if n > 1 else unit[:-1]}.", _RENEWAL[s["renewal"]],
                 f"Either party may terminate this Agreement on {s['notice']} days written notice."]
    if pay:
        sentences.append(f"Invoices are payable net {pay} days from the date of receipt.")
    if s["conf"]:
        sentences.append("Each party shall keep the other party's Confidential Information confidential.")
    months = n * 12 if unit == "years" else n
    fields = {"parties": [a, b], "effective": d.isoformat(), "law": s["law"], "term": months, "renewal": s["renewal"],
              "notice": s["notice"], "payment": f"net {pay}" if pay else None}
    return [{"role": "system", "content": _CONTRACT_SYSTEM},
            {"role": "user", "content": "Extract the fields from this contract excerpt.\n" + " ".join(sentences)},
            {"role": "assistant", "content": json.dumps(fields)}]


_LABELS = ("billing", "login", "sync", "shipping", "refund", "praise")
# (phrase, label, negated phrase, its label): negation flips the label except where the topic alone decides it.
_ISSUES = (("{p} syncs my files", "praise", "{p} does not sync my files", "sync"),
           ("the {p} sync finished overnight", "praise", "the {p} sync never finished overnight", "sync"),
           ("I can log in to {p}", "praise", "I can't log in to {p}", "login"),
           ("the {p} password reset has worked", "praise", "the {p} password reset has not worked", "login"),
           ("my {p} order has arrived", "praise", "my {p} order has not arrived", "shipping"),
           ("the {p} parcel was delivered to my door", "praise", "the {p} parcel was never delivered to my door",
            "shipping"),
           ("the {p} invoice is correct", "praise", "the {p} invoice is not correct", "billing"),
           ("I was charged twice for {p}", "billing", "I was not charged twice for {p}", "billing"),
           ("I was refunded for {p}", "praise", "I was never refunded for {p}", "refund"),
           ("{p} keeps logging me out", "login", None, None),
           ("please refund my {p} subscription", "refund", None, None))
_TICKETS = ("{i}.", "Ticket: {i}.", "{i}, can you help?", "Since {d}, {i}.", "{i} after the {v} update.",
            "Urgent: {i}. What should I do?", "Customer writes: {i}.", "{i}. Order question from a customer.",
            "Hi, {i} since {d}.")


def _classification(s: dict) -> list[dict] | None:
    phrase, label, negated, negated_label = _ISSUES[s["issue"]]
    if s["neg"] and not negated:
        return None
    issue = (negated if s["neg"] else phrase).format(p=s["p"])
    text = _TICKETS[s["t"]].format(i=issue, d=s["d"], v=s["v"])
    if not 5 <= len(normalise(text)) <= 15:
        return None
    return [{"role": "system", "content": "Classify the support ticket as one of: " + ", ".join(_LABELS) + "."},
            {"role": "user", "content": text[0].upper() + text[1:]},
            {"role": "assistant", "content": s.get("label") or (negated_label if s["neg"] else label)}]


# One template a line: three questions, then the answer's sentences (the first three always, then 1-4 of the rest).
_QA = {"town": """
What can you tell me about the town of {name} in the {region} region?
Give me an overview of {name}, a town in the {region} region, including its history and economy.
Where exactly is {name} in the {region} region, and what is it known for?
{name} is a small town in the {region} region, founded in {founded} by settlers who came to work the farmland.
It lies on the banks of the {river} River at an elevation of about {elev} metres above sea level.
The town has a population of roughly {pop} people, and most of its working residents are employed in {industry}.
Every {month}, {name} hosts a week-long festival that draws visitors from across the {region} region.
The old market square, rebuilt in {rebuilt} after a fire, is the usual starting point for visitors.
Trains to the regional capital leave {trains} times a day from the small station on the north side of town.
Local guides recommend visiting in late spring, when the weather is mild and the paths along the river are open.""",
       "product": """
What should I know about the {name} {category}?
Describe the {name} {category} and its main specifications.
Is the {name} {category} a good choice, and what are its key features?
The {name} is a {category} made by {brand} and first released in {month} {year}.
It sells for about {price} dollars, comes in {colour}, and is covered by a {warranty} year warranty.
On a full charge it runs for roughly {hours} hours, and the whole unit weighs {grams} grams.
Reviewers praise its build quality, although some owners find the companion app slow to connect.
The {name} replaced an older model that had been on sale for {prev} years.
Spare parts and accessories are sold through the official store and most large electronics retailers.
Support is available by phone and email, and firmware updates are released about every {upd} months."""}


def _qa(s: dict) -> list[dict] | None:
    templates = _QA[s["kind"]].strip().split("\n")
    questions, sentences = templates[:3], templates[3:]
    values = dict(s, name=s["town"] if s["kind"] == "town" else f"{s['brand']} {s['model']}")
    answer = " ".join(sentences[k].format(**values) for k in (0, 1, 2, *s["extras"]))
    if not 60 <= len(normalise(answer)) <= 150:
        return None
    return [{"role": "user", "content": questions[s["q"]].format(**values)},
            {"role": "assistant", "content": answer}]


_CHAT_SYSTEM = "You are a friendly support agent for ShopRight, an online store. Be concise and confirm order details."
_GREETINGS = ("Hello, I need some help with an order.", "Hi there, I have a problem with one of my orders.",
              "Good morning, could you help me with a delivery?")
# Three scenarios of two exchanges, one turn a line (user, assistant, user, assistant).
_SCENARIOS = """
My order {order} for a {item} still has not arrived. It was due on {date}.
I am sorry for the delay. Order {order} left our warehouse on {ship}, and the courier expects it within {days} days.
Can you refund the shipping fee of ${fee} for the trouble?
Of course. I have refunded ${fee} to your original payment method, and it should appear within {days2} business days.

I received the wrong item in order {order}. I ordered a {item} but got a {item2}.
I apologise for the mix-up. A return label for the {item2} is on its way, and a replacement {item} ships on {ship}.
Will I be charged the ${fee} again for the replacement?
No, you will not be charged again. The replacement is covered by order {order}, so your payment of ${fee} stands.

I need to change the delivery address for order {order}, which I placed on {date}.
I can help with that. Order {order} for the {item} has not shipped yet. What is the new address?
Please send it to {no} {street} Street, {city}.
Done. Order {order} will now be delivered to {no} {street} Street, {city}, and should arrive within {days} days.
""".strip().split("\n\n")


def _chat(s: dict) -> list[dict] | None:
    if s["item"] == s["item2"]:
        return None
    values = dict(s, date=f"{s['date']:%B} {s['date'].day}", ship=f"{s['ship']:%B} {s['ship'].day}")
    texts = [t.format(**values) for t in _SCENARIOS[s["scen"]].split("\n")]
    if s["greet"] is not None:
        texts = [_GREETINGS[s["greet"]], "Hi, how can I help you today?"] + texts
    return [{"role": "system", "content": _CHAT_SYSTEM}] + [
        {"role": ("user", "assistant")[k % 2], "content": t} for k, t in enumerate(texts)]


_RENDER = {"contracts": _contracts, "classification": _classification, "qa": _qa, "chat": _chat}


def _row(domain: str, slots: dict) -> dict | None:
    messages = _RENDER[domain](slots)
    return None if messages is None else {"messages": messages, "slots": slots}


def distinct_rows(domain: str, n: int, seed: int) -> list[dict]:
    """n rows no two of which share a reference key. Each keeps its slot values under "slots" (for the variants)."""
    rng, rows, seen = random.Random(seed), [], set()
    for _ in range(100 * n + 1000):
        if len(rows) == n:
            return rows
        row = _row(domain, {k: draw(rng) for k, draw in _POOLS[domain].items()})
        if row is not None and seen.isdisjoint(keys := row_keys(row)):
            seen |= keys
            rows.append(row)
    raise RuntimeError(f"{domain}: could not draw {n} distinct rows")


# --- copies and variants -------------------------------------------------------------------------------------------

def _case_edit(text: str, rng) -> str:
    # Case is folded by normalise, so the words stay the same.
    words = list(re.finditer(r"[A-Za-z]+", text))
    if not words:
        return text
    m = rng.choice(words)
    change = rng.choice((str.upper, str.lower, str.capitalize, str.swapcase))
    return text[:m.start()] + change(m.group()) + text[m.end():]


def _space_edit(text: str, rng) -> str:
    # A space goes next to an existing one or at an end: no word is split or joined, no line merged.
    i = rng.choice([0, len(text)] + [m.start() for m in re.finditer(" ", text)])
    return text[:i] + " " + text[i:]


def _punct_edit(text: str, rng) -> str:
    # Drop a comma before a space, or put a separator between two words: none of these ends a clause.
    spots = [m.span() for m in re.finditer(r",(?= )|(?<=[A-Za-z])(?= [A-Za-z])", text)]
    if not spots:
        return text
    i, j = rng.choice(spots)
    return text[:i] + ("" if j > i else rng.choice((",", " -", ":"))) + text[j:]


def _filler_add(text: str, rng) -> str:
    # A word start (text start or after a space) takes "filler " without touching its neighbours.
    i = rng.choice([0] + [m.end() for m in re.finditer(" ", text)])
    return text[:i] + rng.choice(FILLER) + " " + text[i:]


def _filler_del(text: str, rng) -> str:
    i, j = rng.choice([m.span() for m in _FILLER_WORD.finditer(text)] or [(0, 0)])
    return text[:i] + text[j:]


def _sentence_lines(text: str) -> list[tuple[int, list[str]]]:
    """(line number, sentences) for each line of 2+ sentences that all end in terminal punctuation."""
    out = []
    for k, line in enumerate(text.split("\n")):
        parts = _SENTENCE_GAP.split(line.strip())
        if len(parts) > 1 and all(p[-1] in ".;!?" for p in parts) and len(set(map(_content, parts))) > 1:
            out.append((k, parts))
    return out


def _move(text: str, rng) -> str:
    # A whole sentence moves with its terminal punctuation, so every clause survives intact.
    lines = text.split("\n")
    k, parts = rng.choice(_sentence_lines(text))
    i = rng.randrange(len(parts))
    sentence = parts.pop(i)
    parts.insert(rng.choice([j for j in range(len(parts) + 1) if j != i]), sentence)
    lines[k] = " ".join(parts)
    return "\n".join(lines)


_EDITS = {"case": _case_edit, "space": _space_edit, "punct": _punct_edit, "filler_add": _filler_add,
          "filler_del": _filler_del, "move": _move}


def _edit_turns(messages: list[dict]) -> list[int]:
    # The user turns and the answer; the system prompt and earlier replies stay as they are.
    return [k for k, m in enumerate(messages) if m["role"] == "user" or k == len(messages) - 1]


def exact_copy(row: dict, rng) -> dict:
    """Half verbatim, half with one or two case or spacing changes on the user turns or the answer."""
    messages = copy.deepcopy(row["messages"])
    if rng.random() < 0.5:
        turns = _edit_turns(messages)
        for _ in range(rng.randint(1, 2)):
            k = rng.choice(turns)
            messages[k]["content"] = _EDITS[rng.choice(("case", "space"))](messages[k]["content"], rng)
    out = {"messages": messages}
    assert exact_key(out) == exact_key(row)
    return out


def _cosmetic_plan(messages: list[dict], rng) -> list[tuple[str, int]]:
    """1-3 (edit, turn): at least one filler edit or sentence move (else it would be exact), and a move never
    with a punctuation change (else neither the word sequence nor the clauses would match)."""
    turns = _edit_turns(messages)
    # JSON answers and one-word labels only take case and spacing edits: the others would make them invalid.
    texts = [m["content"] for m in messages]
    prose = [k for k in turns if not texts[k].startswith("{") and len(_content(texts[k])) > 2]
    movable = [k for k in prose if _sentence_lines(texts[k])]
    if movable and rng.random() < 0.5:
        plan = [("move", rng.choice(movable))]
    else:
        plan = [(rng.choice(("filler_add", "filler_del")), rng.choice(prose))]
    others = ("case", "space", "filler_add", "filler_del") + (() if plan[0][0] == "move" else ("punct",))
    for _ in range(rng.randrange(3)):
        op = rng.choice(others)
        plan.append((op, rng.choice(turns if op in ("case", "space") else prose)))
    rng.shuffle(plan)
    return plan


def cosmetic_copy(row: dict, rng) -> dict:
    """A near duplicate that is not exact: 1-3 cosmetic edits on the user turns and/or the answer."""
    for _ in range(100):
        messages = copy.deepcopy(row["messages"])
        for op, k in _cosmetic_plan(messages, rng):
            messages[k]["content"] = _EDITS[op](messages[k]["content"], rng)
        out = {"messages": messages}
        if is_near(out, row):
            return out
    raise RuntimeError(f"no cosmetic copy of {row['messages'][-1]['content'][:60]!r}")


def slot_variant(row: dict, domain: str, rng) -> dict:
    """A distinct row: one slot value changed (or a negation toggled), the answer rendered from it."""
    for _ in range(500):
        name = rng.choice(_VARY[domain])
        slots = dict(row["slots"], **{name: _POOLS[domain][name](rng)})
        slots.pop("label", None)
        variant = _row(domain, slots)
        if variant is not None and row_keys(variant).isdisjoint(row_keys(row)):
            return variant
    raise RuntimeError(f"{domain}: no slot variant found")


def conflicting_copy(row: dict, domain: str, rng) -> dict:
    """The same prompt with a different answer (one answer field or attribute changed, or another label)."""
    for _ in range(500):
        slots = dict(row["slots"])
        if domain == "classification":
            slots["label"] = rng.choice(_LABELS)
        else:
            name = rng.choice(list(_POOLS[domain]))
            slots[name] = _POOLS[domain][name](rng)
        other = _row(domain, slots)
        if other is not None and _content(other["messages"][-1]["content"]) != _content(row["messages"][-1]["content"]):
            return {"messages": copy.deepcopy(row["messages"][:-1]) + [other["messages"][-1]]}
    raise RuntimeError(f"{domain}: no conflicting answer found")


# --- the planted fixture -------------------------------------------------------------------------------------------

@dataclass
class Planted:
    train: list[dict]
    eval: list[dict]
    truth: dict[int, tuple[str, int]]


def identity(truth: dict[int, tuple[str, int]], i: int) -> tuple[str, int]:
    """The row a train row is a copy of: ("train", j) or ("eval", j); a distinct row is its own."""
    kind, target = truth[i]
    if kind in ("exact_dup", "near_dup"):
        return "train", target
    return ("eval", target) if kind in ("eval_copy", "eval_near") else ("train", i)


def _check(p: Planted) -> None:
    """The truth labels agree with the reference keys: each key belongs to one group, copies are of their kind."""
    owner: dict[tuple, tuple[str, int]] = {}
    rows = [(("eval", j), r) for j, r in enumerate(p.eval)] + [(identity(p.truth, i), r) for i, r in enumerate(p.train)]
    for who, row in rows:
        for key in row_keys(row):
            assert owner.setdefault(key, who) == who, f"{who} collides with {owner[key]} on its {key[0]} key"
    for i, (kind, target) in p.truth.items():
        if kind in ("exact_dup", "near_dup", "slot_variant"):
            assert target < i, (i, kind, target)
        original = p.eval[target] if kind.startswith("eval") else p.train[target] if target >= 0 else None
        if kind in ("exact_dup", "eval_copy"):
            assert exact_key(p.train[i]) == exact_key(original), (i, kind)
        if kind in ("near_dup", "eval_near"):
            assert is_near(p.train[i], original), (i, kind)


def planted(domain: str, n_eval: int, seed: int = 0) -> Planted:
    """Eval rows and a distinct train pool, then copies, eval leaks and slot variants appended in a shuffled order."""
    rng = random.Random(f"planted/{domain}/{seed}")  # a str seed is hashed with sha512: stable across processes
    n_pool = max(300, 2 * n_eval)
    rows = distinct_rows(domain, n_eval + n_pool, seed)
    evals, train = rows[:n_eval], rows[n_eval:]
    picks, m = rng.sample(range(n_pool), 200), min(n_eval, 100)
    extra = [("exact_dup", t, exact_copy(train[t], rng)) for t in picks[:100]]
    extra += [("near_dup", t, cosmetic_copy(train[t], rng)) for t in picks[100:]]
    extra += [("eval_copy", j, exact_copy(evals[j], rng)) for j in rng.sample(range(n_eval), m)]
    extra += [("eval_near", j, cosmetic_copy(evals[j], rng)) for j in rng.sample(range(n_eval), m)]
    taken = set().union(*(row_keys(r) for r in rows + [r for _, _, r in extra]))
    for t in rng.sample(range(n_pool), 100):
        for _ in range(50):
            variant = slot_variant(train[t], domain, rng)
            if taken.isdisjoint(keys := row_keys(variant)):
                break
        else:
            raise RuntimeError(f"{domain}: no slot variant of train row {t} is distinct from every row")
        taken |= keys
        extra.append(("slot_variant", t, variant))
    rng.shuffle(extra)  # every original sits in the pool, so every copy still comes after it
    truth = {i: ("distinct", -1) for i in range(n_pool)}
    for kind, target, row in extra:
        truth[len(train)] = (kind, target)
        train.append(row)
    result = Planted(train, evals, truth)
    _check(result)
    return result
