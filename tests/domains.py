"""Test fixtures for the data stage's duplicate and leak detectors: ten structurally different domains.

The detectors were once tuned on templated radiology reports only, and on other data they threw away rows that
were merely alike; later they folded every symbol away, so `ER+` equalled `ER-`. These generators build rows from
slot values and plant exact copies, cosmetic copies, inserted-word copies, eval leaks of each kind, one-slot variants
and one-symbol variants, and record the ground truth, so a test can measure recall and precision per planted kind.

The truth is by construction: a copy is made from its original by edits the rule calls cosmetic (or by inserting a
domain's frequent non-filler words), a variant by changing one slot value or one symbol and rendering the answer from
it. Every row is then checked against `domains_oracle`, the identity rule written again in pure standard library:
rows of different identities share no key and are not inserted-word copies of each other even if every letters-only
word could be dropped. Nothing here may share code (or bugs) with the detector under test.

The four domains of `domains_original` (contracts, classification, qa, chat) are the original ones; the six of
`domains_symbols` (labs, arithmetic, code, chemistry, json, chinese) carry symbols and a script without spaces.
"""

from __future__ import annotations

import copy
import difflib
import functools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import domains_original
import domains_symbols
from domains_oracle import (C, FILLER, W, Registry, candidate, clause_key, document_frequency, exact_key,
                            inserted_words, is_near, passage_clashes, passages, prompt_key, rare_passages, row_keys,
                            sequence_key, shared_passages, tokens, tokens_of)

__all__ = ["DISTINCT", "DOMAINS", "EVAL_COPIES", "FILLER", "ORIGINAL_DOMAINS", "Planted", "TRAIN_COPIES", "clause_key",
           "conflicting_copy", "distinct_rows", "exact_key", "identity", "is_near", "planted", "prompt_key",
           "sequence_key", "symbol_change", "tokens", "vocabulary"]
_FILLER = frozenset(FILLER)
TRAIN_COPIES = ("exact_dup", "near_dup", "inserted_dup")
EVAL_COPIES = ("eval_copy", "eval_near", "eval_inserted")
DISTINCT = ("distinct", "slot_variant", "symbol_variant")


@dataclass(frozen=True)
class Domain:
    """What a fixture domain is made of (domains_original and domains_symbols write these as dicts)."""

    pools: dict[str, Callable]
    """Slot name -> draw(rng)."""
    render: Callable[[dict], list[dict] | None]
    """Slots -> the row's turns (the answer computed from them), or None for a combination that makes no row."""
    vary: tuple[str, ...]
    """Slots a slot variant may change: values, not template choices, each appearing in the prompt."""
    symbols: dict[str, Callable] = field(default_factory=dict)
    """Slot -> mutate(value, rng): the value with one symbol changed (None where it has none to change)."""
    inserts: tuple[tuple[str, str], ...] = ()
    """(phrase, place) an inserted-word copy adds: place "start", "end" or a regex the phrase goes in front of."""


ALL = {name: Domain(**spec) for name, spec in (domains_original.SPECS | domains_symbols.SPECS).items()}
DOMAINS = tuple(ALL)
ORIGINAL_DOMAINS = tuple(domains_original.SPECS)


@functools.lru_cache(maxsize=None)
def vocabulary(domain: str) -> frozenset[str]:
    """The tokens a domain's inserted-word copies add: its phrases' non-filler words, each droppable by the rule."""
    out = set()
    for phrase, _ in ALL[domain].inserts:
        for token in tokens_of(phrase):
            if token[1] in (W, C) and token[0] in _FILLER:
                continue
            assert candidate(token), f"{domain}: {phrase!r} holds {token[0]!r}, not a droppable word"
            out.add(token[0])
    return frozenset(out)


def _registry(domain: str) -> Registry:
    return Registry(vocabulary(domain))


def _row(domain: str, slots: dict) -> dict | None:
    messages = ALL[domain].render(slots)
    return None if messages is None else {"messages": messages, "slots": slots}


def _rare_df(rows: int) -> int:
    # The detector's threshold, max(2, 0.1% of the corpus), for a corpus up to 1,000 rows larger than `rows` (the
    # copies planted later): the more rows count as rare, the stricter the check.
    return max(2, int(0.001 * (rows + 1000)))


def distinct_rows(domain: str, n: int, seed: int) -> list[dict]:
    """n rows no two of which share a key, are inserted-word copies of each other, or share a passage that is leak
    evidence (two rare tokens in 13). Each keeps its slot values under "slots" (for the variants)."""
    rng, rows, registry = random.Random(seed), [], _registry(domain)
    for draw in range(100 * n + 1000):
        if len(rows) == n:
            # A shared passage is a coincidence of values (115 mL x 0.68 mol/L and 34 mL x 2.3 mol/L both make
            # 0.0782 mol): rare, and only known once all rows are drawn. Drop the later row, draw on.
            clashes = passage_clashes(rows, _rare_df(n))
            if not clashes:
                return rows
            rows = [row for k, row in enumerate(rows) if k not in clashes]
        row = _row(domain, {k: pool(rng) for k, pool in ALL[domain].pools.items()})
        if row is not None and registry.conflict(row, draw) is None:
            registry.add(row, draw)  # a dropped row keeps its keys: no later row may take them
            rows.append(row)
    raise RuntimeError(f"{domain}: could not draw {n} distinct rows")


# --- edits, outside code: every one is cosmetic under the rule -----------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u9fff"
_FILLER_WORD = re.compile(r"(?:^| )(?:%s)(?= |$)" % "|".join(FILLER), re.IGNORECASE | re.MULTILINE)
_SENTENCE_GAP = re.compile(r"(?<=[.;!?])\s+|(?<=\u3002)(?=.)")  # the clause ends of the rule, within one line


def _prose_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line outside code fences."""
    spans, pos, inside = [], 0, False
    for line in text.split("\n"):
        if line.strip().startswith("```"):
            inside = not inside
        elif not inside:
            spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def _spots(text: str, pattern: str, flags: int = 0) -> list[re.Match]:
    spans = _prose_spans(text)
    return [m for m in re.finditer(pattern, text, flags) if any(s <= m.start() and m.end() <= e for s, e in spans)]


def _case_edit(text: str, rng) -> str:
    words = _spots(text, r"[A-Za-z]+")
    if not words:
        return text
    m = rng.choice(words)
    change = rng.choice((str.upper, str.lower, str.capitalize, str.swapcase))
    return text[:m.start()] + change(m.group()) + text[m.end():]


def _space_edit(text: str, rng) -> str:
    # Next to an existing space, at a line's ends, or between two characters of a script without spaces: no word or
    # number is split, no hyphen stops being between two letters.
    spots = [i for s, e in _prose_spans(text) for i in (s, e)]
    spots += [m.start() for m in _spots(text, " ")] + [m.start() for m in _spots(text, f"(?<=[{_CJK}，。])(?=[{_CJK}])")]
    i = rng.choice(spots)
    return text[:i] + rng.choice((" ", " ", "\u3000")) + text[i:]


def _json_space(text: str, rng) -> str:
    # An ASCII space after a separator: the only spacing JSON allows outside strings.
    i = rng.choice([m.end() for m in re.finditer(r"[:,] ", text)] or [len(text)])
    return text[:i] + " " + text[i:]


def _json_case(text: str, rng) -> str:
    # Case inside a string key or value ("Delaware", "shift_mm"): null, true and false stay JSON.
    words = [m for m in re.finditer(r'"[^"]*"', text) if re.search(r"[A-Za-z]", m.group())]
    if not words:
        return text
    m = rng.choice(words)
    change = rng.choice((str.upper, str.lower, str.swapcase))
    return text[:m.start()] + change(m.group()) + text[m.end():]


def _width_edit(text: str, rng) -> str:
    # Full-width letters, digits and commas, and the ideographic space, are their ASCII forms under the rule.
    spots = _spots(text, r"[0-9A-Za-z, ]")
    if not spots:
        return text
    i = rng.choice(spots).start()
    return text[:i] + ("\u3000" if text[i] == " " else chr(ord(text[i]) + 0xFEE0)) + text[i + 1:]


def _punct_edit(text: str, rng) -> str:
    # Drop a comma before a space or a full-width one, or put a comma, a colon or an em dash between two words:
    # sentence punctuation that ends no clause.
    spots = _spots(text, r",(?= )|，|(?<=[A-Za-z])(?= [A-Za-z])")
    if not spots:
        return text
    m = rng.choice(spots)
    if m.group() == "，":
        return text[:m.start()] + rng.choice(("", "、", ",")) + text[m.end():]
    return text[:m.start()] + ("" if m.group() else rng.choice((",", ":", " \u2014"))) + text[m.end():]


def _filler_add(text: str, rng) -> str:
    # A word start (a line start, after a space or after CJK punctuation) takes "filler " without touching its
    # neighbours.
    spots = [s for s, _ in _prose_spans(text)] + [m.end() for m in _spots(text, " |，|。")]
    i = rng.choice(spots)
    return text[:i] + rng.choice(FILLER) + " " + text[i:]


def _filler_del(text: str, rng) -> str:
    spots = [m.span() for m in _spots(text, _FILLER_WORD.pattern, re.IGNORECASE | re.MULTILINE)]
    i, j = rng.choice(spots or [(0, 0)])
    return text[:i] + text[j:]


def _sentence_lines(text: str) -> list[tuple[int, list[str]]]:
    """(line number, sentences) for each prose line of 2+ sentences that all end in terminal punctuation."""
    out, spans = [], set(_prose_spans(text))
    pos = 0
    for k, line in enumerate(text.split("\n")):
        parts = _SENTENCE_GAP.split(line.strip())
        if ((pos, pos + len(line)) in spans and len(parts) > 1 and all(p[-1] in ".;!?\u3002" for p in parts)
                and len({tuple(tokens(p)) for p in parts}) > 1):
            out.append((k, parts))
        pos += len(line) + 1
    return out


def _move(text: str, rng) -> str:
    # A whole sentence moves with its terminal punctuation, so every clause survives intact.
    lines, movable = text.split("\n"), _sentence_lines(text)
    if not movable:  # an earlier edit of the plan joined its sentences: cosmetic_copy draws another plan
        return text
    k, parts = rng.choice(movable)
    i = rng.randrange(len(parts))
    sentence = parts.pop(i)
    parts.insert(rng.choice([j for j in range(len(parts) + 1) if j != i]), sentence)
    cjk = any(p.endswith("\u3002") for p in parts)
    lines[k] = ("" if cjk else " ").join(parts)
    return "\n".join(lines)


# --- edits inside code: indentation relative to the block, inline spacing, the fence's language tag ----------------

def _blocks(text: str) -> list[tuple[int, int]]:
    """(first, last + 1) line numbers of the code inside each fenced block."""
    lines, out, start = text.split("\n"), [], None
    for k, line in enumerate(lines):
        if line.strip().startswith("```"):
            if start is None:
                start = k + 1
            else:
                out.append((start, k))
                start = None
    return out + ([(start, len(lines))] if start is not None else [])


def _reindent(text: str, rng) -> str:
    lines = text.split("\n")
    for a, b in rng.sample(_blocks(text), 1):
        pad = " " * rng.choice((2, 4))
        lines[a:b] = [pad + line if line.strip() else line for line in lines[a:b]]
    return "\n".join(lines)


def _code_space(text: str, rng) -> str:
    lines = text.split("\n")
    spots = [(k, m.start()) for a, b in _blocks(text) for k in range(a, b)
             for m in re.finditer(r"(?<=\S) ", lines[k])]
    k, i = rng.choice(spots)
    lines[k] = lines[k][:i] + " " + lines[k][i:]
    return "\n".join(lines)


def _fence_tag(text: str, rng) -> str:
    def retag(m: re.Match) -> str:
        return "```" + rng.choice(("", m.group(1)[:2], " " + m.group(1), m.group(1).title()))
    return re.sub(r"^```(\w*)$", retag, text, count=1, flags=re.MULTILINE)


_EDITS = {"case": _case_edit, "space": _space_edit, "width": _width_edit, "punct": _punct_edit,
          "filler_add": _filler_add, "filler_del": _filler_del, "move": _move, "reindent": _reindent,
          "code_space": _code_space, "fence_tag": _fence_tag, "json_space": _json_space, "json_case": _json_case}
_KEEP_ORDER = ("case", "space", "width", "punct", "filler_add", "filler_del", "json_space", "json_case")


def _edit_turns(messages: list[dict]) -> list[int]:
    # The user turns and the answer; the system prompt and earlier replies stay as they are.
    return [k for k, m in enumerate(messages) if m["role"] == "user" or k == len(messages) - 1]


def _exact_ops(text: str) -> tuple[str, ...]:
    if text.startswith("{"):
        return "json_case", "json_space"  # JSON answers stay valid JSON
    return ("case", "space", "width", "punct") + (("reindent", "code_space", "fence_tag") if "```" in text else ())


def _prose(text: str) -> bool:
    """Room for filler and punctuation edits: more than two words outside code, and not JSON."""
    return not text.startswith("{") and sum(k in (W, C) for _, k in tokens_of(text.split("```")[0])) > 2


def exact_copy(row: dict, rng) -> dict:
    """Half verbatim, half with one or two edits that keep every token: case, spacing, widths, punctuation, and in
    code the block's indentation as a whole, inline spacing and the fence's tag."""
    messages = copy.deepcopy(row["messages"])
    if rng.random() < 0.5:
        turns = _edit_turns(messages)
        for _ in range(rng.randint(1, 2)):
            k = rng.choice(turns)
            messages[k]["content"] = _EDITS[rng.choice(_exact_ops(messages[k]["content"]))](messages[k]["content"], rng)
    out = {"messages": messages}
    assert exact_key(out) == exact_key(row), (row["messages"], messages)
    return out


def _cosmetic_plan(messages: list[dict], rng) -> list[tuple[str, int]]:
    """1-3 (edit, turn): at least one filler edit or sentence move (else it would be exact)."""
    turns = _edit_turns(messages)
    texts = [m["content"] for m in messages]
    prose = [k for k in turns if _prose(texts[k])]
    movable = [k for k in prose if _sentence_lines(texts[k])]
    if movable and rng.random() < 0.5:
        plan = [("move", rng.choice(movable))]
    else:
        plan = [(rng.choice(("filler_add", "filler_del")), rng.choice(prose))]
    for _ in range(rng.randrange(3)):
        k = rng.choice(turns)
        ops = _exact_ops(texts[k]) + (("filler_add", "filler_del") if k in prose else ())
        plan.append((rng.choice(ops), k))
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


def _insert(text: str, phrase: str, place: str, rng) -> str | None:
    spans = [(s, e) for s, e in _prose_spans(text) if text[s:e].strip()]
    glue_after = "" if re.search(f"[{_CJK}，。]$", phrase) else " "
    glue_before = "" if re.match(f"[{_CJK}]", phrase) else " "
    if place == "start":
        s = spans[0][0] + len(text[spans[0][0]:]) - len(text[spans[0][0]:].lstrip(" "))
        return text[:s] + phrase + glue_after + text[s:]
    if place == "end":
        e = spans[-1][1]
        return text[:e] + glue_before + phrase + text[e:]
    spots = _spots(text, place, re.MULTILINE)
    if not spots:  # a question without the verb the phrase goes before: the phrase opens the turn
        return _insert(text, phrase, "start", rng)
    i = rng.choice(spots).start()
    return text[:i] + phrase + glue_after + text[i:]


def inserted_copy(row: dict, domain: str, phrase: tuple[str, str], rng) -> dict:
    """A copy with one of the domain's phrases inserted at a natural place in a user turn, sometimes with cosmetic
    edits that keep the token order: not a duplicate under FILLER, a near duplicate once its words are filler."""
    wider = _FILLER | vocabulary(domain)
    for _ in range(100):
        messages = copy.deepcopy(row["messages"])
        k = rng.choice([k for k, m in enumerate(messages) if m["role"] == "user"])
        text = _insert(messages[k]["content"], *phrase, rng)
        if text is None:
            continue
        messages[k]["content"] = text
        for _ in range(rng.randrange(3)):
            j = rng.choice(_edit_turns(messages))
            ops = [op for op in _exact_ops(messages[j]["content"]) if op in _KEEP_ORDER]
            ops += ["filler_add", "filler_del"] if _prose(messages[j]["content"]) else []
            messages[j]["content"] = _EDITS[rng.choice(ops)](messages[j]["content"], rng)
        out = {"messages": messages}
        words, back = inserted_words(out, row), inserted_words(row, out)
        if (words and back and set(words) | set(back) <= vocabulary(domain) and sequence_key(out) != sequence_key(row)
                and clause_key(out) != clause_key(row) and sequence_key(out, wider) == sequence_key(row, wider)):
            return out
    raise RuntimeError(f"{domain}: no inserted-word copy with {phrase[0]!r}")


def symbol_change(a: dict, b: dict) -> list[str] | None:
    """The prompt tokens two rows differ by when they are symbols, numbers or code (no word), and few; else None."""
    def flat(row):
        return [t for m in row["messages"][:-1] for t in ((m["role"], "role"),) + tokens_of(m["content"])]
    ta, tb = flat(a), flat(b)
    ops = difflib.SequenceMatcher(None, [t for t, _ in ta], [t for t, _ in tb], autojunk=False)
    changed = [t for tag, i1, i2, j1, j2 in ops.get_opcodes() if tag != "equal" for t in ta[i1:i2] + tb[j1:j2]]
    ok = changed and len(changed) <= 6 and not any(candidate(t) or t[1] == "role" for t in changed)
    return [t for t, _ in changed] if ok else None


def slot_variant(row: dict, domain: str, rng) -> dict:
    """A distinct row: one slot value changed (or a negation toggled), the answer rendered from it."""
    for _ in range(500):
        name = rng.choice(ALL[domain].vary)
        slots = dict(row["slots"], **{name: ALL[domain].pools[name](rng)})
        slots.pop("label", None)
        variant = _row(domain, slots)
        if variant is not None and row_keys(variant).isdisjoint(row_keys(row)):
            return variant
    raise RuntimeError(f"{domain}: no slot variant found")


def symbol_variant(row: dict, domain: str, rng) -> dict | None:
    """A distinct row: one symbol of the prompt changed (a sign, an operator, a decimal point, a comparison, a charge,
    one line's indentation, an identifier's case), the answer rendered from it. None for a row with none to change."""
    names = [name for name in ALL[domain].symbols if name in row["slots"]]
    for _ in range(20 if names else 0):
        name = rng.choice(names)
        value = ALL[domain].symbols[name](row["slots"][name], rng)
        if value is None or value == row["slots"][name]:
            continue
        variant = _row(domain, dict(row["slots"], **{name: value}))
        if variant is not None and symbol_change(variant, row):
            return variant
    return None


def conflicting_copy(row: dict, domain: str, rng) -> dict:
    """The same prompt with a different answer (one answer field or attribute changed, or another label)."""
    for _ in range(500):
        slots = dict(row["slots"])
        if domain == "classification":
            slots["label"] = rng.choice(domains_original.LABELS)
        else:
            name = rng.choice(list(ALL[domain].pools))
            slots[name] = ALL[domain].pools[name](rng)
        other = _row(domain, slots)
        if other is not None and sequence_key(other)[-1] != sequence_key(row)[-1]:
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
    if kind in TRAIN_COPIES:
        return "train", target
    return ("eval", target) if kind in EVAL_COPIES else ("train", i)


def _check(p: Planted, domain: str) -> None:
    """The truth agrees with the oracle: rows of different identities never conflict, copies are of their kind, the
    inserted words are frequent enough to be droppable, a symbol variant changed symbols only."""
    registry = _registry(domain)
    rows = [(("eval", j), r) for j, r in enumerate(p.eval)] + [(identity(p.truth, i), r) for i, r in enumerate(p.train)]
    for who, row in rows:
        problem = registry.conflict(row, who)
        assert problem is None, f"{domain}: {who} {problem}"
        registry.add(row, who)
    corpus = len(p.train) + len(p.eval)
    df = document_frequency(p.train)
    rare = {w: df[w] for w in vocabulary(domain) if df[w] < max(5, 0.01 * corpus)}
    assert not rare, f"{domain}: inserted words held by too few rows: {rare}"

    def droppable(token) -> bool:
        return candidate(token) and df[token[0]] >= max(3, 0.002 * corpus)

    wider = _FILLER | vocabulary(domain)
    for i, (kind, target) in p.truth.items():
        row = p.train[i]
        original = p.eval[target] if kind in EVAL_COPIES else p.train[target] if target >= 0 else None
        if kind in TRAIN_COPIES + ("slot_variant", "symbol_variant"):
            assert target < i, (domain, i, kind, target)
        if kind in ("exact_dup", "eval_copy"):
            assert exact_key(row) == exact_key(original), (domain, i, kind)
        elif kind in ("near_dup", "eval_near"):
            assert is_near(row, original), (domain, i, kind)
        elif kind in ("inserted_dup", "eval_inserted"):
            assert inserted_words(row, original, droppable), (domain, i, kind)
            assert inserted_words(original, row, droppable), (domain, i, kind)
            assert sequence_key(row, wider) == sequence_key(original, wider), (domain, i, kind)
        elif kind == "symbol_variant":
            assert symbol_change(row, original), (domain, i, kind)
    shared = shared_passages([r for i, r in enumerate(p.train) if p.truth[i][0] in DISTINCT], p.eval)
    assert not shared, f"{domain}: distinct rows share a passage with eval rows: {shared}"


def _plant(domain: str, registry: Registry, who, make, tries: int = 50) -> dict:
    """A copy or variant that conflicts with no row of another identity (a few draws at most)."""
    for _ in range(tries):
        row = make()
        if row is not None and registry.conflict(row, who) is None:
            registry.add(row, who)
            return row
    raise RuntimeError(f"{domain}: nothing plantable for {who}")


def _copies(domain: str, train: list[dict], evals: list[dict], registry: Registry, rng) -> list[tuple]:
    """(kind, original, row): 100 exact, 100 cosmetic and 100 inserted-word copies of distinct training rows, and up
    to 100 of each kind of an eval row. The inserted phrases take turns, so each is held by a share of the rows."""
    m = min(len(evals), 100)
    phrases = [ALL[domain].inserts[k % len(ALL[domain].inserts)] for k in range(100 + m)]
    rng.shuffle(phrases)
    picks = rng.sample(range(len(train)), 300)
    plan = [("exact_dup", t, "train", exact_copy) for t in picks[:100]]
    plan += [("near_dup", t, "train", cosmetic_copy) for t in picks[100:200]]
    plan += [("inserted_dup", t, "train", None) for t in picks[200:]]
    plan += [(kind, j, "eval", make) for kind, make in (("eval_copy", exact_copy), ("eval_near", cosmetic_copy),
                                                        ("eval_inserted", None))
             for j in rng.sample(range(len(evals)), m)]
    out = []
    for kind, target, side, make in plan:
        original = (train if side == "train" else evals)[target]
        phrase = phrases.pop() if make is None else None
        row = _plant(domain, registry, (side, target), lambda: inserted_copy(original, domain, phrase, rng)
                     if make is None else make(original, rng))
        out.append((kind, target, row))
    return out


def _variants(domain: str, train: list[dict], evals: list[dict], registry: Registry, rng) -> list[tuple]:
    """(kind, original, row): 100 slot variants and 100 symbol variants of distinct training rows, none sharing leak
    evidence with an eval row."""
    rows = evals + train
    evidence = set().union(*rare_passages(rows, _rare_df(len(rows)))[:len(evals)])

    def clean(row: dict | None) -> dict | None:
        return row if row is not None and evidence.isdisjoint(passages(row)) else None

    out = []
    for kind, make in (("slot_variant", slot_variant), ("symbol_variant", symbol_variant)):
        made = 0
        for t in rng.sample(range(len(train)), len(train)):
            try:
                row = _plant(domain, registry, (kind, made), lambda: clean(make(train[t], domain, rng)), tries=5)
            except RuntimeError:  # this row has no variant distinct from every other row: take another
                continue
            out.append((kind, t, row))
            made += 1
            if made == 100:
                break
        assert made == 100, f"{domain}: only {made} {kind}s"
    return out


def planted(domain: str, n_eval: int, seed: int = 0) -> Planted:
    """Eval rows and a distinct train pool, then copies of each kind, eval leaks of each kind, slot variants and
    symbol variants appended in a shuffled order."""
    rng = random.Random(f"planted/{domain}/{seed}")  # a str seed is hashed with sha512: stable across processes
    n_pool = max(300, 2 * n_eval)
    rows = distinct_rows(domain, n_eval + n_pool, seed)
    evals, train = rows[:n_eval], rows[n_eval:]
    registry = _registry(domain)
    for j, row in enumerate(evals):
        registry.add(row, ("eval", j))
    for t, row in enumerate(train):
        registry.add(row, ("train", t))
    extra = _copies(domain, train, evals, registry, rng) + _variants(domain, train, evals, registry, rng)
    rng.shuffle(extra)  # every original sits in the pool, so every copy still comes after it
    truth = {i: ("distinct", -1) for i in range(n_pool)}
    for kind, target, row in extra:
        truth[len(train)] = (kind, target)
        train.append(row)
    result = Planted(train, evals, truth)
    _check(result, domain)
    return result
