"""Six fixture domains where symbols or scripts carry meaning (issue 26): lab and pathology results, arithmetic word
problems, code in two languages, chemical formulas with charges, JSON answers, and Chinese, a language written without
spaces.

Each domain is a spec that tests/domains.py turns into planted fixtures: slot pools, a renderer that computes the
answer from the slots (so the answer follows every symbol of the prompt by construction: the arithmetic is evaluated,
the Python is executed), the slots a slot variant may change, the slots a symbol variant may change and how (a sign
flipped, an operator swapped, a decimal point moved, a comparison reversed, a charge changed, one line re-indented),
and the non-filler words that inserted-word copies carry. Pure standard library.
"""

from __future__ import annotations

import io
import json
import math
import random
from contextlib import redirect_stdout
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction


def pick(*values):
    return lambda rng: rng.choice(values)


def span(lo: int, hi: int):
    return lambda rng: rng.randrange(lo, hi)


def move_point(text: str, rng: random.Random) -> str | None:
    """The same digits with the decimal point moved one place or removed: 1.25 -> 12.5 or 125. None without one."""
    sign, body = ("-", text[1:]) if text.startswith("-") else ("", text)
    if "." not in body:
        return None
    whole, frac = body.split(".")
    digits, at = whole + frac, len(whole)
    spots = [q for q in (at - 1, at + 1) if 1 <= q < len(digits)] + [None]
    q = rng.choice(spots)
    moved = (digits.lstrip("0") or "0") if q is None else (digits[:q].lstrip("0") or "0") + "." + digits[q:]
    out = sign + moved
    return out if Decimal(out) != Decimal(text) and Decimal(out) != 0 else None


def flip_sign(text: str, rng: random.Random | None = None) -> str | None:
    if Decimal(text) == 0:
        return None
    return text[1:] if text.startswith("-") else "-" + text


def sign_or_point(text: str, rng: random.Random) -> str | None:
    return (flip_sign if rng.random() < 0.5 else move_point)(text, rng)


def _decimal(lo: int, hi: int, places: int, signed: bool = False):
    """A decimal string with up to `places` decimals (trailing zeros dropped, so it is a valid JSON number)."""
    def draw(rng):
        value = Decimal(rng.randrange(lo, hi)) / (10 ** rng.randint(0, places))
        value = -value if signed and rng.random() < 0.5 else value
        return format(value.normalize(), "f") if value else "1"
    return draw


def _signed(value) -> str:
    text = format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)
    return "+" + text if value > 0 else text


# --- lab and pathology results -------------------------------------------------------------------------------------

_LAB_SYSTEM = ("You are a pathology assistant. Read the report and summarise the receptor status, the HER2 score, the "
               "Ki-67 index and any potassium or glucose value outside its reference range.")
_LAB_REQUESTS = ("Summarise the findings.", "What do these results mean?",
                 "Write a short summary for the clinic letter.")
_HER2 = {"0": "negative", "1+": "negative", "2+": "equivocal, reflex ISH advised", "3+": "positive"}


def _ki_status(cmp: str, ki: int) -> str:
    # Low below 14%, high above 20%: a bound only decides a grade its side of the range allows.
    if cmp == "<":
        return "low" if ki <= 14 else "low or intermediate" if ki <= 20 else "indeterminate"
    if cmp == ">":
        return "high" if ki >= 20 else "intermediate or high" if ki >= 14 else "indeterminate"
    return "low" if ki < 14 else "intermediate" if ki <= 20 else "high"


def _range_status(value: str, lo: str, hi: str) -> str:
    return "low" if Decimal(value) < Decimal(lo) else "high" if Decimal(value) > Decimal(hi) else "normal"


def _labs(s: dict) -> list[dict] | None:
    report = (f"Pathology report {s['acc']}, {s['site']} {s['specimen']}. {_LAB_REQUESTS[s['q']]}\n"
              f"ER{s['er']} PR{s['pr']}, HER2 {s['her2']}, Ki-67 {s['cmp']}{s['ki']}%.\n"
              f"Potassium {s['k']} mmol/L (ref 3.5-5.0). Glucose {s['glu']} mmol/L (ref 3.9-7.8).")
    receptor = "positive" if "+" in (s["er"], s["pr"]) else "negative"
    answer = (f"ER{s['er']} PR{s['pr']}: hormone receptor {receptor}. HER2 {s['her2']}: {_HER2[s['her2']]}. "
              f"Ki-67 {s['cmp']}{s['ki']}%: {_ki_status(s['cmp'], s['ki'])} proliferation. "
              f"Potassium {s['k']} mmol/L is {_range_status(s['k'], '3.5', '5.0')}, "
              f"glucose {s['glu']} mmol/L is {_range_status(s['glu'], '3.9', '7.8')}.")
    if receptor == "negative" and _HER2[s["her2"]] == "negative":
        answer += " Triple negative."
    return [{"role": "system", "content": _LAB_SYSTEM}, {"role": "user", "content": report},
            {"role": "assistant", "content": answer}]


LABS = dict(
    pools={"acc": lambda rng: f"S{rng.randrange(18, 26)}-{rng.randrange(10000, 100000)}",
           "site": pick("left breast", "right breast", "left axilla", "right axilla"),
           "specimen": pick("core biopsy", "excision", "lumpectomy"), "q": span(0, 3),
           "er": pick("+", "-"), "pr": pick("+", "-"), "her2": pick(*_HER2),
           "cmp": pick("<", ">", ""), "ki": pick(5, 10, 14, 20, 25, 30, 40, 60),
           "k": lambda rng: f"{rng.randrange(28, 66) / 10:.1f}",
           "glu": lambda rng: f"{rng.randrange(30, 160) / 10:.1f}"},
    render=_labs,
    vary=("acc", "site", "specimen", "her2", "ki", "k", "glu"),
    symbols={"er": lambda v, rng: "-" if v == "+" else "+", "pr": lambda v, rng: "-" if v == "+" else "+",
             "cmp": lambda v, rng: {"<": ">", ">": "<"}.get(v), "k": move_point, "glu": move_point},
    inserts=(("Note:", "start"), ("Kind regards.", "end")),
)


# --- arithmetic word problems --------------------------------------------------------------------------------------

_NAMES = "Maya Liam Noah Emma Omar Lena Ivan Zoe Ravi Sara Tomas Yuki Nia Arlo Mila Hugo Ines Kai Leah Bruno".split()
_TOWNS = [a + b for a in "Ash Bel Cor Dun Elm Fen Gal Har Kel Lin Mor Oak Pen Sal Wil".split()
          for b in "bridge ford ham wick mere stead ton field".split()]
_OPS = {"+": "+", "-": "-", "*": "×", "/": "÷"}


def _operand(rng) -> str:
    value = rng.choice((rng.randrange(1, 100), -rng.randrange(1, 20), rng.randrange(1, 100) / 10))
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _evaluate(values: list[str], ops: list[str]) -> Fraction:
    """Left to right, * and / before + and -."""
    terms, signs = [Fraction(values[0])], []
    for op, value in zip(ops, values[1:]):
        if op in "*/":
            terms[-1] = terms[-1] * Fraction(value) if op == "*" else terms[-1] / Fraction(value)
        else:
            signs.append(op)
            terms.append(Fraction(value))
    return terms[0] + sum(t if s == "+" else -t for s, t in zip(signs, terms[1:]))


def _number(x: Fraction) -> tuple[str, str]:
    """(relation, value): "=" and the exact decimal when it terminates, else "≈" and two decimals."""
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:
        return "≈", f"{float(x):.2f}"
    value = Decimal(x.numerator) / Decimal(x.denominator)
    return "=", format(value.normalize(), "f") if value else "0"


def _arithmetic(s: dict) -> list[dict] | None:
    if s["t"] == 0:
        values, ops = [s["a"], s["b"], s["c"]], [s["op1"], s["op2"]]
        shown = [f"({v})" if v.startswith("-") else v for v in values]
        symbols = [_OPS[o] if s["style"] else o for o in ops]
        expr = f"{shown[0]} {symbols[0]} {shown[1]} {symbols[1]} {shown[2]}"
        rel, value = _number(_evaluate(values, ops))
        user = f"{s['name']} types {expr} into a calculator. What does the display show?"
        answer = f"{expr} {rel} {value}, so the display shows {value}."
    elif s["t"] == 1:
        d1, d2 = int(s["d1"]), int(s["d2"])
        value = int(s["t0"]) + d1 + d2
        user = (f"At dawn the temperature in {s['town']} was {s['t0']} °C. By noon it had changed by {_signed(d1)} °C "
                f"and by dusk by a further {_signed(d2)} °C. What was the temperature at dusk?")
        answer = (f"{s['t0']} {'+' if d1 > 0 else '-'} {abs(d1)} {'+' if d2 > 0 else '-'} {abs(d2)} = {value}, "
                  f"so it was {value} °C at dusk.")
    else:
        op = "+" if s["fill"] else "-"
        total = _evaluate([s["vol"], s["rate"], str(s["hours"])], [op, "*"])
        if total < 0:
            return None
        flow = "flow in" if s["fill"] else "drain out"
        expr = f"{s['vol']} {op} {s['rate']} * {s['hours']}"
        rel, value = _number(total)
        user = (f"A tank holds {s['vol']} litres of water and {s['rate']} litres {flow} every hour. How many litres "
                f"does it hold after {s['hours']} hours? Compute {expr}.")
        answer = f"{expr} {rel} {value}, so the tank holds {value} litres."
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


ARITHMETIC = dict(
    pools={"t": span(0, 3), "name": pick(*_NAMES), "town": pick(*_TOWNS), "style": pick(0, 1),
           "a": _operand, "b": _operand, "c": _operand, "op1": pick(*_OPS), "op2": pick(*_OPS),
           "t0": lambda rng: str(rng.randrange(-15, 16)),
           "d1": lambda rng: str(rng.choice((-1, 1)) * rng.randrange(1, 13)),
           "d2": lambda rng: str(rng.choice((-1, 1)) * rng.randrange(1, 13)),
           "vol": lambda rng: str(rng.randrange(50, 900)), "rate": _decimal(5, 120, 1), "hours": span(2, 13),
           "fill": pick(True, False)},
    render=_arithmetic,
    vary=("name", "town", "a", "b", "c", "t0", "vol", "hours"),
    symbols={"op1": lambda v, rng: rng.choice([o for o in _OPS if o != v]),
             "op2": lambda v, rng: rng.choice([o for o in _OPS if o != v]),
             "a": flip_sign, "b": flip_sign, "c": move_point, "t0": flip_sign, "d1": flip_sign, "d2": flip_sign,
             "rate": move_point},
    inserts=(("Question:", "start"), ("Show your work.", "end")),
)


# --- code: Python (whitespace-sensitive) and JavaScript ------------------------------------------------------------

_PY = """LIMIT = {L}
def {fn}(values, limit):
    {acc} = {init}
    for v in values:
        if v {cmp} {ref}:
            {acc} {aop}= v
{b}{acc} {bop}= {k}
{r}return {acc}
print({fn}([{xs}], {lim}))"""
_JS = """const LIMIT = {L};
function {fn}(values, limit) {{
  let {acc} = {init};
  for (const v of values) {{
    if (v {cmp} {ref}) {{
      {acc} {aop}= v;
    }}
    {acc} {bop}= {k};
  }}
  return {acc};
}}
console.log({fn}([{xs}], {lim}));"""
_QUESTIONS = ("What does this {lang} program print?", "What is the output of the following {lang} code?",
              "Trace this {lang} snippet: what gets printed?")
_VERBS = "sum count tally score scan fold merge total".split()
_NOUNS = "above hits values items marks points steps limits".split()
_CMP = {">": "<", "<": ">", ">=": "<=", "<=": ">="}


def _run_python(source: str) -> str | None:
    """What the program prints (it is generated here, never read from outside); None when it does not compile."""
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            exec(compile(source, "<fixture>", "exec"), {})
    except SyntaxError:
        return None
    return out.getvalue().strip()


def _run_javascript(s: dict) -> str:
    """The JavaScript template's semantics, in Python: the add-on line runs in the loop, the return after it."""
    limit = s["L"] if s["ref"] == "LIMIT" else s["lim"]
    acc = s["init"]
    for v in s["xs"]:
        if eval(f"{v} {s['cmp']} {limit}"):  # noqa: S307 - two integers and a comparison built here
            acc = acc + v if s["aop"] == "+" else acc - v
        acc = acc + s["k"] if s["bop"] == "+" else acc - s["k"]
    return str(acc)


def _code(s: dict) -> list[dict] | None:
    python = s["lang"] == "Python"
    fn = f"{s['verb']}_{s['noun']}" if python else s["verb"] + s["noun"].capitalize()
    values = dict(s, fn=fn, xs=", ".join(map(str, s["xs"])), b=" " * s["b"], r=" " * s["r"])
    source = (_PY if python else _JS).format(**values)
    printed = _run_python(source) if python else _run_javascript(s)
    if printed is None:
        return None
    fence = "python" if python else "javascript"
    user = f"{_QUESTIONS[s['q']].format(lang=s['lang'])}\n```{fence}\n{source}\n```"
    return [{"role": "user", "content": user}, {"role": "assistant", "content": f"It prints {printed}."}]


def _flip_one(xs: tuple, rng) -> tuple:
    i = rng.randrange(len(xs))
    return xs[:i] + (-xs[i],) + xs[i + 1:]


CODE = dict(
    pools={"lang": pick("Python", "JavaScript"), "q": span(0, 3), "verb": pick(*_VERBS), "noun": pick(*_NOUNS),
           "acc": pick("total", "count", "acc", "result", "score", "tally"), "init": pick(0, 1, 10),
           "cmp": pick(*_CMP), "ref": pick("limit", "LIMIT"), "aop": pick("+", "-"), "bop": pick("+", "-"),
           "k": span(1, 6), "b": pick(4, 8, 12), "r": pick(4, 8), "L": span(0, 20), "lim": span(-5, 16),
           "xs": lambda rng: tuple(rng.choice((-1, 1)) * rng.randrange(1, 21) for _ in range(rng.randint(3, 6)))},
    render=_code,
    vary=("verb", "noun", "acc", "init", "k", "L", "lim", "xs"),
    symbols={"cmp": lambda v, rng: rng.choice((_CMP[v], v[0] if len(v) == 2 else v + "=")),
             "ref": lambda v, rng: "LIMIT" if v == "limit" else "limit",
             "aop": lambda v, rng: "-" if v == "+" else "+", "bop": lambda v, rng: "-" if v == "+" else "+",
             "xs": _flip_one, "lim": lambda v, rng: -v if v else None,
             "b": lambda v, rng: rng.choice([x for x in (4, 8, 12) if x != v]),
             "r": lambda v, rng: 12 - v},
    inserts=(("Quick question:", "start"), ("Thank you!", "end")),
)


# --- chemistry: formulas with charges ------------------------------------------------------------------------------

_CATIONS = (("Na", 1), ("K", 1), ("Ag", 1), ("NH4", 1), ("Cu", 1), ("Cu", 2), ("Fe", 2), ("Fe", 3), ("Mg", 2),
            ("Ca", 2), ("Zn", 2), ("Ba", 2), ("Pb", 2), ("Sn", 2), ("Sn", 4), ("Al", 3), ("Cr", 3), ("Co", 3))
_ANIONS = (("Cl", -1), ("Br", -1), ("OH", -1), ("NO3", -1), ("MnO4", -1), ("SO4", -2), ("CO3", -2), ("O", -2),
           ("S", -2), ("CrO4", -2), ("PO4", -3), ("N", -3))
_COUPLES = ((("Fe", 3), ("Fe", 2)), (("Cu", 2), ("Cu", 1)), (("Sn", 4), ("Sn", 2)), (("MnO4", -1), ("MnO4", -2)),
            (("Ag", 1), ("Ag", 0)), (("Cu", 2), ("Cu", 0)), (("Zn", 2), ("Zn", 0)), (("Cr", 3), ("Cr", 2)),
            (("Co", 3), ("Co", 2)), (("Ce", 4), ("Ce", 3)), (("Pb", 4), ("Pb", 2)), (("Cl", 0), ("Cl", -1)))
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SUP = str.maketrans("0123456789+-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻")


def _ion(species: tuple[str, int], style: int) -> str:
    """Fe3+, SO4 2-, Cl- (style 0) or Fe³⁺, SO₄²⁻, Cl⁻ (style 1); a neutral species is its symbol."""
    symbol, z = species
    charge = (str(abs(z)) if abs(z) > 1 else "") + ("+" if z > 0 else "-") if z else ""
    if style:
        return symbol.translate(_SUB) + charge.translate(_SUP)
    return symbol + (" " if charge and symbol[-1].isdigit() and abs(z) > 1 else "") + charge


def _salt(cation: tuple[str, int], anion: tuple[str, int], style: int) -> str:
    g = math.gcd(cation[1], -anion[1])
    parts = []
    for symbol, count in ((cation[0], -anion[1] // g), (anion[0], cation[1] // g)):
        group = sum(c.isupper() for c in symbol) > 1 or any(c.isdigit() for c in symbol)
        n = str(count).translate(_SUB) if style else str(count)
        sym = symbol.translate(_SUB) if style else symbol
        parts.append(sym if count == 1 else f"({sym}){n}" if group else f"{sym}{n}")
    return "".join(parts)


def _charge_change(species: tuple[str, int], rng) -> tuple[str, int]:
    symbol, z = species
    options = [x for x in ((1, 2, 3, 4) if z > 0 else (-1, -2, -3)) if x != z] if z else [1, -1]
    return symbol, rng.choice(options + [-z] if z else options)


def _chemistry(s: dict) -> list[dict] | None:
    st = s["style"]
    if s["t"] == 0:
        cat, an = s["cat"], s["an"]
        if cat[1] <= 0 or an[1] >= 0:
            return None
        q = Decimal(s["c1"]) * cat[1] + Decimal(s["c2"]) * an[1]
        user = (f"A solution is {s['c1']} mol/L in {_ion(cat, st)} and {s['c2']} mol/L in {_ion(an, st)}. Which "
                f"neutral salt can crystallise from it, and what is the net charge concentration?")
        answer = (f"The salt is {_salt(cat, an, st)}. Net charge: {s['c1']} × ({_signed(cat[1])}) + {s['c2']} × "
                  f"({an[1]}) = {_signed(q)} mol/L.")
    elif s["t"] == 1:
        (ox, red), k, electrons = s["couple"], s["k"], s["n"]
        coef = f"{k} " if k > 1 else ""
        left, right = k * ox[1] - electrons, k * red[1]
        user = (f"In a cell at {s['T']} °C, is the half-reaction {coef}{_ion(ox, st)} + "
                f"{electrons if electrons > 1 else ''}e- -> {coef}{_ion(red, st)} balanced for charge?")
        answer = (f"Yes. Both sides carry a net charge of {_signed(left)}." if left == right else
                  f"No. The left side carries {_signed(left)} and the right side {_signed(right)}.")
    else:
        ion = s["ion"]
        if not ion[1]:
            return None
        moles = (Decimal(s["vol"]) / 1000 * Decimal(s["conc"])).normalize()
        q = format((moles * ion[1]).normalize(), "f")
        user = (f"A {s['vol']} mL sample holds {s['conc']} mol/L of {_ion(ion, st)}. How many moles of charge does it "
                f"carry?")
        answer = (f"{s['vol']} mL × {s['conc']} mol/L = {format(moles, 'f')} mol of {_ion(ion, st)}, carrying "
                  f"{'+' if ion[1] > 0 else ''}{q} mol of charge.")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


CHEMISTRY = dict(
    pools={"t": span(0, 3), "style": pick(0, 0, 1), "cat": pick(*_CATIONS), "an": pick(*_ANIONS),
           "c1": _decimal(1, 400, 3), "c2": _decimal(1, 400, 3), "couple": pick(*_COUPLES), "k": span(1, 5),
           "n": pick(1, 2, 2, 3, 4, 4, 6, 8), "T": lambda rng: str(rng.randrange(-20, 96)),
           "ion": pick(*_CATIONS, *_ANIONS), "vol": lambda rng: str(rng.randrange(5, 500)),
           "conc": _decimal(1, 300, 3)},
    render=_chemistry,
    vary=("cat", "an", "c1", "c2", "couple", "k", "n", "T", "vol", "conc", "ion"),
    symbols={"cat": _charge_change, "an": _charge_change, "ion": _charge_change, "c1": move_point,
             "c2": move_point, "conc": move_point, "T": flip_sign,
             "couple": lambda v, rng: (_charge_change(v[0], rng), v[1])},
    inserts=(("Exam question:", "start"), ("Explain briefly.", "end")),
)


# --- JSON answers that differ in a sign or a decimal point ---------------------------------------------------------

_JSON_SYSTEM = "Extract the values from the message as one line of JSON. Keep every sign and decimal as written."
_RECORDS = (
    ("Setup check for patient {pid}. Couch shift {shift} mm, pitch {pitch} degrees, dose {dose} Gy per fraction.",
     (("patient", "pid"), ("shift_mm", "shift"), ("pitch_deg", "pitch"), ("dose_gy", "dose"))),
    ("Ledger entry {ref} booked on {date}. Amount {amt} EUR, fee {fee} EUR, exchange rate {rate}.",
     (("ref", "ref"), ("date", "date"), ("amount_eur", "amt"), ("fee_eur", "fee"), ("fx_rate", "rate"))),
    ("Calibration record for sensor {sid}. Offset {off} °C, gain {gain}, drift {drift} °C per day.",
     (("sensor", "sid"), ("offset_c", "off"), ("gain", "gain"), ("drift_c_per_day", "drift"))),
)
_TEXT_FIELDS = ("pid", "ref", "date", "sid")


def _json(s: dict) -> list[dict]:
    template, fields = _RECORDS[s["t"]]
    body = ", ".join(f'"{key}": ' + (json.dumps(s[slot]) if slot in _TEXT_FIELDS else s[slot]) for key, slot in fields)
    return [{"role": "system", "content": _JSON_SYSTEM}, {"role": "user", "content": template.format(**s)},
            {"role": "assistant", "content": "{" + body + "}"}]


JSON = dict(
    pools={"t": span(0, 3), "pid": lambda rng: f"P-{rng.randrange(1000, 10000)}",
           "shift": _decimal(1, 60, 1, signed=True), "pitch": _decimal(1, 400, 2, signed=True),
           "dose": _decimal(10, 300, 2), "ref": lambda rng: f"LE-{rng.randrange(10000, 100000)}",
           "date": lambda rng: f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
           "amt": _decimal(1, 900000, 2, signed=True), "fee": _decimal(1, 999, 2), "rate": _decimal(5000, 15000, 4),
           "sid": lambda rng: f"T{rng.randrange(100, 1000)}", "off": _decimal(1, 50, 1, signed=True),
           "gain": _decimal(90, 120, 2), "drift": _decimal(1, 90, 3, signed=True)},
    render=_json,
    vary=("pid", "ref", "date", "sid", "dose", "fee", "gain"),
    symbols={slot: sign_or_point for slot in ("shift", "pitch", "amt", "off", "drift")}
    | {slot: move_point for slot in ("dose", "fee", "rate", "gain")},
    inserts=(("Note:", "start"), ("Output JSON only.", "end")),
)


# --- Chinese: a language written without spaces --------------------------------------------------------------------

_ZH_SYSTEM = "你是一名网店客服助理。请根据订单信息简洁地回答顾客的问题。"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁宋唐韩冯邓曹彭曾萧田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔汤"
_GIVEN = "伟芳娜秀敏静丽强磊军洋勇艳杰涛明超霞平刚桂英华玉萍红娥玲芬燕彬鹏辉宇浩凯健俊帆帅旭宁欣颖琳晨阳雪梅兰竹松柏峰岚瑶璐"
_ITEMS = ("蓝牙耳机", "保温杯", "电饭煲", "双肩包", "台灯", "羽绒服", "跑步鞋", "机械键盘", "iPad保护壳", "Kindle阅读器",
          "USB充电器", "加湿器")
_CITIES = ("北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "西安", "南京", "重庆", "哈尔滨", "沈阳", "长春", "昆明", "拉萨",
           "乌鲁木齐")
_ZH_QUESTIONS = ("订单现在发货了吗？", "大概什么时候能送到{city}？", "可以申请退款吗？")


def _chinese(s: dict) -> list[dict] | None:
    if s["hi"] <= s["lo"]:
        return None
    v = dict(s, next_day=min(s["day"] + 1, 28))
    if s["t"] == 0:
        user = "{name}在{month}月{day}日下单购买了{count}件{item}，订单号{order}，实付{price}元。" + _ZH_QUESTIONS[s["q"]]
        answer = ("订单{order}已于{month}月{next_day}日发货。共{count}件{item}，实付{price}元。",
                  "订单{order}预计{days}天内送达{city}。共{count}件{item}，实付{price}元。",
                  "订单{order}可以退款。{price}元将在{days}个工作日内退回原支付账户。")[s["q"]]
    elif s["t"] == 1:
        user = "{name}计划{month}月{day}日去{city}出差，行程单号{order}。当天最低气温{lo}℃，最高气温{hi}℃。需要带厚外套吗？"
        answer = ("需要。{city}当天最低气温{lo}℃，低于零度，建议带厚外套和手套。" if s["lo"] < 0 else
                  "建议带一件外套。{city}当天最低气温{lo}℃，早晚较凉。" if s["lo"] < 10 else
                  "不用带厚外套。{city}当天气温在{lo}℃到{hi}℃之间，带件薄外套即可。")
    else:
        rate = Decimal(s["disc"]) / 10
        total = (Decimal(s["price"]) * rate * s["count"]).quantize(Decimal("0.01"), ROUND_HALF_UP)
        v.update(rate=format(rate.normalize(), "f"), total=total)
        user = "{item}原价{price}元，现在打{disc}折。{name}买了{count}件，订单号{order}。一共要付多少钱？"
        answer = "一共要付{total}元。计算方法：{price} × {rate} × {count} = {total}。"
    return [{"role": "system", "content": _ZH_SYSTEM}, {"role": "user", "content": user.format(**v)},
            {"role": "assistant", "content": answer.format(**v)}]


CHINESE = dict(
    pools={"t": span(0, 3), "q": span(0, 3),
           "name": lambda rng: rng.choice(_SURNAMES) + "".join(rng.sample(_GIVEN, 2)),
           "order": lambda rng: str(rng.randrange(100000, 1000000)), "item": pick(*_ITEMS), "count": span(1, 10),
           "price": lambda rng: f"{rng.randrange(10, 3000)}.{rng.randrange(100):02d}", "month": span(1, 13),
           "day": span(1, 29), "days": span(2, 10), "city": pick(*_CITIES), "lo": span(-25, 26), "hi": span(-15, 40),
           "disc": pick("9", "8.5", "8", "7.5", "7", "6.5", "5")},
    render=_chinese,
    vary=("name", "order", "item", "count", "month", "day", "city"),
    symbols={"price": move_point, "lo": lambda v, rng: -v if v else None},
    inserts=(("请问", r"(?<=。)(?=[^。\n]*？$)"), ("谢谢。", "end"), ("您好，", "start")),
)

SPECS = {"labs": LABS, "arithmetic": ARITHMETIC, "code": CODE, "chemistry": CHEMISTRY, "json": JSON,
         "chinese": CHINESE}
