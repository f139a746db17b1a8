"""The four original fixture domains: contract extraction, ticket classification, questions about towns and
products, and a multi-turn support chat. Templated rows that are alike but distinct (one slot value apart) are what
the detectors once threw away.

Each domain is a spec that tests/domains.py turns into planted fixtures (see domains_symbols for the fields). Issue 26
added a symbol to each (a late-interest rate, a version number, a model number with a decimal point, a fee) for the
symbol variants, and a model digit to the product names (see `_PRODUCTS`). Pure standard library.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta

from domains_oracle import tokens
from domains_symbols import move_point, pick, span

# --- slot pools ----------------------------------------------------------------------------------------------------

def _date(rng: random.Random) -> date:
    return date(2019, 1, 1) + timedelta(days=rng.randrange(2555))


_COMPANIES = [f"{s} {t}" for s in "Acme Borealis Cobalt Dunmore Everline Fairgrove Granite Helix Ironbridge Juniper"
              .split() for t in ("Systems", "Logistics", "Health", "Partners")]
# Single-word product names built from syllables and a model digit: 6,720 of them. The digit makes the name a token
# no reading may drop, so two tickets about different products are never inserted-word copies of each other: with
# letters-only names, "Customer writes: the X password reset has worked." and "X syncs my files. Order question from
# a customer." are (difflib matches "customer" alone and the rest is inserted on one side, deleted on the other).
_PRODUCTS = [a + b + str(n) for n in range(2, 10)
             for a in ("Sync Photo Note Task Mail Cloud Pay Fit Home Chat Code Travel Sound Read Link Budget Pet Meal "
                       "Sky Form Data Green Quick Route Study Voice Clip Plant Bike Watt").split()
             for b in ("Box Vault Nest Pilot Drop Desk Trail Pulse Hub Leaf Crate Mate Wave Rack Shelf Bee Pal Map Cam "
                       "Forge Dock Ledger Ink Runner Buddy Cove Beacon Wise").split()]
_ITEMS = ("desk lamp", "coffee grinder", "rain jacket", "yoga mat", "phone case", "water bottle", "backpack",
          "wool scarf", "bluetooth speaker", "cutting board", "table fan", "travel mug")
_MONTHS = ("January February March April May June July August September October November December").split()
_TOWN_STARTS = "Ash Bel Cor Dun Elm Fen Gal Har Ivy Kel Lin Mor Nor Oak Pen Ros Sal Thorn Ul Wil".split()
_TOWN_ENDS = "bridge ford ham wick mere stead by ton field haven".split()
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


# --- the domains --------------------------------------------------------------------------------------------------

_CONTRACT_SYSTEM = (
    "You are a contract analysis assistant. Read the contract excerpt supplied by the user and extract these fields: "
    "the two parties, the effective date, the governing law, the initial term in months, the renewal type, the notice "
    "period in days, the payment terms and the monthly late interest in percent. Reply with one line of JSON using "
    "exactly these keys; use null for a field the excerpt does not state.")
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
                 f"Either party may terminate this Agreement on {s['notice']} days written notice.",
                 f"Late payments bear interest at {s['rate']}% per month."]
    if pay:
        sentences.append(f"Invoices are payable net {pay} days from the date of receipt.")
    if s["conf"]:
        sentences.append("Each party shall keep the other party's Confidential Information confidential.")
    months = n * 12 if unit == "years" else n
    fields = {"parties": [a, b], "effective": d.isoformat(), "law": s["law"], "term": months, "renewal": s["renewal"],
              "notice": s["notice"], "payment": f"net {pay}" if pay else None,
              "late_interest_pct": json.loads(s["rate"])}
    return [{"role": "system", "content": _CONTRACT_SYSTEM},
            {"role": "user", "content": "Extract the fields from this contract excerpt.\n" + " ".join(sentences)},
            {"role": "assistant", "content": json.dumps(fields)}]


LABELS = ("billing", "login", "sync", "shipping", "refund", "praise")
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
            "Hi, {i} since {d}.", "Since version {v}, {i}.", "{i} (app version {v}).", "On build {v}: {i}.",
            "{i} on version {v}.", "After updating to {v}, {i}.")


def _classification(s: dict) -> list[dict] | None:
    phrase, label, negated, negated_label = _ISSUES[s["issue"]]
    if s["neg"] and not negated:
        return None
    issue = (negated if s["neg"] else phrase).format(p=s["p"])
    text = _TICKETS[s["t"]].format(i=issue, d=s["d"], v=s["v"])
    if not 5 <= len(tokens(text)) <= 18:
        return None
    return [{"role": "system", "content": "Classify the support ticket as one of: " + ", ".join(LABELS) + "."},
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
    if not 60 <= len(tokens(answer)) <= 150:
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


SPECS = {
    "contracts": dict(
        pools={"a": pick(*_COMPANIES), "b": pick(*_COMPANIES), "date": _date,
               "law": pick("Delaware", "New York", "California", "Texas", "Illinois", "Florida"),
               "term": pick(*[(n, "months") for n in (6, 12, 18, 24, 36)], *[(n, "years") for n in (1, 2, 3, 5)]),
               "renewal": pick("automatic", "none", "optional"), "notice": pick(30, 60, 90),
               "pay": pick(30, 45, 60, None), "conf": pick(True, False),
               "rate": pick("0.5", "0.75", "1", "1.25", "1.5", "2", "2.5")},
        render=_contracts, vary=("a", "b", "date", "law", "term", "renewal", "notice"),
        symbols={"rate": move_point},
        inserts=(("hereby", r"(?<=\bshall )|\b(?=renews\b)"),
                 ("duly", r"(?<=\bis )(?=entered\b)|(?<=\bbe )(?=governed\b)"))),
    "classification": dict(
        pools={"p": pick(*_PRODUCTS), "issue": span(0, 11), "neg": pick(True, False), "t": span(0, len(_TICKETS)),
               "d": pick(*_DAYS), "v": lambda rng: f"{rng.randrange(1, 6)}.{rng.randrange(10)}"},
        render=_classification, vary=("p", "neg", "d", "v"), symbols={"v": move_point},
        inserts=(("Thank you!", "end"), ("Hey there,", "start"))),
    "qa": dict(
        pools={"kind": pick("town", "product"), "q": span(0, 3),
               "extras": lambda rng: tuple(sorted(rng.sample(range(3, 7), rng.randint(1, 4)))),
               "town": lambda rng: rng.choice(_TOWN_STARTS) + rng.choice(_TOWN_ENDS),
               "region": pick("Northmarch", "Lowvale", "Eastfen", "Highmoor", "Westreach", "Southdown"),
               "founded": span(1150, 1900), "river": pick("Arden", "Tamsin", "Orrin", "Vell", "Calder", "Mirrow"),
               "elev": span(20, 900), "pop": span(800, 45000), "month": pick(*_MONTHS), "rebuilt": span(1880, 1990),
               "industry": pick("farming", "tourism", "textiles", "fishing", "logistics", "software"),
               "trains": span(3, 40), "brand": pick("Aurora", "Kestrel", "Nimbus", "Quill", "Tern", "Vireo"),
               "model": lambda rng: rng.choice("ABCDKMRSTX") + f"{rng.randrange(1, 10)}.{rng.randrange(10)}",
               "category": pick("portable speaker", "fitness tracker", "electric kettle", "robot vacuum",
                                "ebook reader"),
               "year": span(2012, 2025), "price": span(20, 900), "warranty": span(1, 6), "hours": span(4, 60),
               "colour": pick("slate grey", "forest green", "white", "navy blue", "sand"), "grams": span(150, 3000),
               "prev": span(2, 10), "upd": span(1, 13)},
        render=_qa, vary=("town", "region", "brand", "model", "category"),
        symbols={"model": lambda v, rng: v[0] + (move_point(v[1:], rng) or v[1:])},
        inserts=(("Quick question:", "start"), ("briefly", r"(?i)\b(?=(?:tell|describe|give)\b)"))),
    "chat": dict(
        pools={"greet": pick(None, 0, 1, 2), "scen": span(0, 3),
               "order": lambda rng: f"SR-{rng.randrange(10000, 100000)}", "item": pick(*_ITEMS),
               "item2": pick(*_ITEMS), "date": _date, "ship": _date, "days": span(2, 10), "days2": span(3, 11),
               "fee": lambda rng: f"{rng.randrange(3, 300)}.{rng.randrange(100):02d}", "no": span(1, 400),
               "street": pick("Mill", "Church", "Station", "Park", "Victoria", "Harbour"),
               "city": pick("Leeds", "Bristol", "Dundee", "Cork", "Norwich", "Bath", "Exeter")},
        render=_chat, vary=("order", "item", "item2", "date", "ship", "days", "fee", "no", "city"),
        symbols={"fee": move_point}, inserts=(("Thank you!", "end"), ("Quick question:", "start"))),
}
