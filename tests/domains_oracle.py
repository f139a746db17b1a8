"""The row identity rule of issue 26, written a second time from its text: the oracle the domain fixtures check.

The detector once folded every character that is not a letter or digit to a space, so `ER+ PR-` equalled
`ER- PR+` and `-3` equalled `3`, and the fixtures computed their truth with the same fold. This module is the rule
implemented again, in pure standard library and on purpose differently (regular expressions over character classes
built from `unicodedata`, `difflib` for alignments), so a bug in the detector is not copied into its truth. Nothing
here may import tunestack.

A turn is a list of clauses, each a tuple of tokens, each token a (text, kind) pair:

- `W` a word or number of a script written with spaces (lower-cased in prose, as written in code),
- `C` one character of a script written without spaces (Han, kana, Thai, ...) with its combining marks,
- `S` a symbol in prose (`+ - < % ( ² ...`): content, unlike the cosmetic punctuation that is dropped,
- `K` a symbol in code (every non-space character is one, quotes and `.` included), `I` a code line's indentation
  relative to its block, `F` a fence line.

The keys (exact, sequence, clauses, prompt) and the inserted-word relation are functions of these tokens. The
relation here is threshold-free (`candidate`: every letters-only word that is not a negation may be dropped) and
checked both ways round, so it relates more rows than the detector's, which drops only frequent words: rows this
oracle calls unrelated are unrelated for the detector too. Leak evidence (`shared_passages`) is a 13-token passage
within a line holding two rare tokens, taken with filler and without.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections import Counter

FILLER = ("a", "an", "the", "please", "kindly", "also", "basically", "actually", "simply", "um", "uh", "ok", "okay",
          "hi", "hello", "hey", "thanks")
_FILLER = frozenset(FILLER)
# The smallest set of negations the rule names: the fewer words protected, the more pairs the threshold-free relation
# relates, so a fixture that is distinct under this set is distinct under any larger one.
NEGATIONS = frozenset(("no", "not", "never", "t"))
W, C, S, K, I, F = "W", "C", "S", "K", "I", "F"

_FOLD_TAGS = ("<wide>", "<narrow>", "<compat>", "<noBreak>", "<font>", "<small>", "<vertical>", "<initial>",
              "<medial>", "<final>", "<isolated>")
_DASHES = "\u2010\u2011\u2012\u2013\u2212"
# Scripts written without spaces: Han (radicals, unified, extensions, compatibility), kana, Thai, Lao, Khmer, Myanmar,
# and the iteration and closing marks 々 〆 〇.
_NOSPACE = ((0x2E80, 0x2FDF), (0x3005, 0x3007), (0x3040, 0x30FF), (0x31F0, 0x31FF), (0x3400, 0x4DBF),
            (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF), (0x0E00, 0x0EFF), (0x1780, 0x17FF),
            (0x19E0, 0x19FF), (0x1000, 0x109F), (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F))
_COSMETIC = frozenset(".,;:!?\u2026\u3002\u3001\uff0c\uff1b\uff1a\uff01\uff1f\uff0e\u2014\u2015"
                      "\"'\u2018\u2019\u201c\u201d\u00ab\u00bb\u201e\u300c\u300d\u300e\u300f`")
_CLAUSE_END = re.compile(r"[.;!?]+(?=\s|$)|[\u3002\uff01\uff1f\uff1b]")


def _ranges(points: list[int]) -> str:
    """A regex character class body for sorted code points, as ranges."""
    out, start = [], None
    for k, p in enumerate(points):
        if start is None:
            start = p
        if k + 1 == len(points) or points[k + 1] != p + 1:
            out.append(re.escape(chr(start)) + ("-" + re.escape(chr(p)) if p > start else ""))
            start = None
    return "".join(out)


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[dict[int, str], re.Pattern]:
    """The folding table of step 1 and the token pattern, built once from the Unicode database (about a second)."""
    fold, word, base, mark = {}, [], [], []
    nospace = [False] * 0x323B0
    for lo, hi in _NOSPACE:
        for p in range(lo, hi + 1):
            nospace[p] = True
    for p in range(0x323B0):
        c = chr(p)
        tag = unicodedata.decomposition(c).split(" ")[0]
        if tag in _FOLD_TAGS:
            fold[p] = unicodedata.normalize("NFKC", c)
        cat = unicodedata.category(c)
        if cat[0] == "M":
            mark.append(p)
        if nospace[p]:
            if cat[0] in "LN":
                base.append(p)
        elif cat[0] in "LM" or cat == "Nd" or c == "_":
            word.append(p)
    for d in _DASHES:
        fold[ord(d)] = "-"
    fold = {p: "".join(fold.get(ord(x), x) for x in v) for p, v in fold.items()}  # a fold that yields a dash
    word_class, base_class, mark_class = _ranges(word), _ranges(base), _ranges(mark)
    pattern = re.compile(f"(?P<w>[{word_class}]+(?:(?<=\\d)[.,:](?=\\d)[{word_class}]+)*)"
                         f"|(?P<c>[{base_class}][{mark_class}]*)|(?P<s>\\S)")
    return fold, pattern


def fold(text: str) -> str:
    """Step 1: NFC, then the compatibility forms that are only a different width or shape (full-width, ligatures,
    no-break spaces, half-width kana) as their NFKC form, and the dashes as `-`. Superscripts, subscripts, fractions
    and circled forms keep their meaning and stay."""
    table, _ = _tables()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).translate(table))


def _prose(text: str) -> tuple[tuple[str, str], ...]:
    _, pattern = _tables()
    out = []
    for m in pattern.finditer(text):
        kind, value = m.lastgroup, m.group()
        if kind == "w":
            out.append((value.lower(), W))
        elif kind == "c":
            out.append((value, C))
        elif value in _COSMETIC:
            continue
        elif value == "-" and text[m.start() - 1:m.start()].isalpha() and text[m.end():m.end() + 1].isalpha():
            continue  # X-ray is X ray; -3, HER2-, a - b keep their sign
        else:
            out.append((value, S))
    return tuple(out)


def _code(lines: list[str]) -> tuple[tuple[str, str], ...]:
    """Code lines: case kept, every non-space character a token, each line led by its relative indentation."""
    _, pattern = _tables()
    depth = [len(line) - len(line.lstrip(" \t")) for line in lines]
    least = min((d for d, line in zip(depth, lines) if line.strip()), default=0)
    out = []
    for d, line in zip(depth, lines):
        if line.strip():
            out.append((f"\x00indent {d - least}", I))
            out.extend((m.group(), K) for m in pattern.finditer(line))
    return tuple(out)


def _fence(line: str) -> bool:
    return line.strip().startswith("```")


@functools.lru_cache(maxsize=1 << 17)  # system prompts and templates recur in most rows
def clauses_of(text: str, code: bool = False) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A turn's clauses in order; concatenated, they are the turn's tokens. A code block (fences included) is one
    clause; prose splits at sentence ends and line breaks."""
    lines = fold(text).split("\n")
    if code:
        return (_code(lines),)
    out, i = [], 0
    while i < len(lines):
        if _fence(lines[i]):
            j = next((k for k in range(i + 1, len(lines)) if _fence(lines[k])), len(lines))
            close = ((("```", F),) if j < len(lines) else ())
            out.append((("```", F),) + _code(lines[i + 1:j]) + close)
            i = j + 1
            continue
        out.extend(_prose(part) for part in _CLAUSE_END.split(lines[i]))
        i += 1
    return tuple(out)


@functools.lru_cache(maxsize=1 << 17)
def tokens_of(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(t for clause in clauses_of(text) for t in clause)


def tokens(text: str) -> list[str]:
    """
    >>> tokens("ER+ PR-, HER2 1+; Ki-67 <10%. X-ray: 1/2 vs 1.2")
    ['er', '+', 'pr', '-', 'her2', '1', '+', 'ki', '-', '67', '<', '10', '%', 'x', 'ray', '1', '/', '2', 'vs', '1.2']
    """
    return [t for t, _ in tokens_of(text)]


def _kept(toks, filler: frozenset) -> tuple[str, ...]:
    return tuple(t for t, k in toks if not (k in (W, C) and t in filler))


@functools.lru_cache(maxsize=1 << 18)
def _turn(text: str, filler: frozenset) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """A turn's tokens once filler is dropped, and its clauses so, sorted (empty ones left out)."""
    clauses = clauses_of(text)
    return (_kept((t for c in clauses for t in c), filler),
            tuple(sorted(c for c in (_kept(c, filler) for c in clauses) if c)))


def _messages(row) -> list[dict]:
    return row["messages"] if isinstance(row, dict) else row


def exact_key(row) -> tuple:
    return tuple((m["role"], tuple(t for t, _ in tokens_of(m["content"]))) for m in _messages(row))


def sequence_key(row, filler: frozenset = _FILLER) -> tuple:
    return tuple((m["role"], _turn(m["content"], filler)[0]) for m in _messages(row))


def clause_key(row, filler: frozenset = _FILLER) -> tuple:
    # A multiset, so sorted; a clause with nothing left (a trailing split, "Thanks!") carries nothing to compare.
    return tuple((m["role"], _turn(m["content"], filler)[1]) for m in _messages(row))


def prompt_key(row, filler: frozenset = _FILLER) -> tuple:
    return sequence_key(row, filler)[:-1]


def is_near(a, b, filler: frozenset = _FILLER) -> bool:
    """Cosmetic near duplicate: not exact, but the same tokens in order once filler is dropped, or the same clauses."""
    return exact_key(a) != exact_key(b) and (sequence_key(a, filler) == sequence_key(b, filler)
                                             or clause_key(a, filler) == clause_key(b, filler))


@functools.lru_cache(maxsize=64)
def _wider(extra: frozenset) -> frozenset:
    return _FILLER | extra  # one object per setting, so the per-turn cache hits


def row_keys(row, extra: frozenset = frozenset()) -> set[tuple]:
    """Two rows sharing any of these are not distinct. The clause form of the prompt is stricter than the definition
    needs, so a distinct row is not even a near-conflict of another; the keys under `extra` filler too (the words a
    suggested setting would add), so applying that setting cannot merge two distinct rows."""
    out = set()
    for tag, filler in (("", _FILLER), ("+", _wider(extra))):
        clauses = clause_key(row, filler)
        out |= {("sequence" + tag, sequence_key(row, filler)), ("clause" + tag, clauses),
                ("prompt" + tag, prompt_key(row, filler)), ("prompt-clause" + tag, clauses[:-1])}
    return out


# --- inserted words ------------------------------------------------------------------------------------------------

def candidate(token: tuple[str, str]) -> bool:
    """A token a threshold-free reading may drop: a prose word of letters only, not a negation (a character of a
    script without spaces counts as a word)."""
    text, kind = token
    return kind in (W, C) and text.isalpha() and text not in NEGATIONS


def _content(message: dict, filler: frozenset) -> tuple[tuple[str, str], ...]:
    return tuple(t for t in tokens_of(message["content"]) if not (t[1] in (W, C) and t[0] in filler))


def inserted_words(a, b, droppable=candidate, filler: frozenset = _FILLER) -> list[str] | None:
    """The tokens `a` and `b` differ by when, turn by turn, they differ only by inserted or deleted droppable tokens
    (difflib's opcodes are all equal, insert or delete); None when they do not. [] for rows with equal sequences."""
    a, b = _messages(a), _messages(b)
    if [m["role"] for m in a] != [m["role"] for m in b]:
        return None
    out = []
    for x, y in zip(a, b):
        tx, ty = _content(x, filler), _content(y, filler)
        if tx == ty:
            continue
        ops = difflib.SequenceMatcher(None, [t for t, _ in tx], [t for t, _ in ty], autojunk=False).get_opcodes()
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal":
                continue
            changed = tx[i1:i2] + ty[j1:j2]
            if tag == "replace" or not all(map(droppable, changed)):
                return None
            out.extend(t for t, _ in changed)
    return out


def skeleton(row) -> tuple:
    """What no droppable token can change: two rows the threshold-free relation relates have the same skeleton."""
    return tuple((m["role"], _skeleton(m["content"])) for m in _messages(row))


@functools.lru_cache(maxsize=1 << 17)
def _skeleton(text: str) -> tuple[str, ...]:
    return tuple(t for t, k in tokens_of(text) if not (k in (W, C) and t in _FILLER) and not candidate((t, k)))


def document_frequency(rows) -> Counter:
    """How many rows hold each token (after filler)."""
    df = Counter()
    for row in rows:
        df.update({t for m in _messages(row) for t, _ in _content(m, _FILLER)})
    return df


def related(a, b) -> bool:
    """The threshold-free relation either way round: difflib's alignment depends on the order of its arguments (a
    word one row opens with and the other ends with can be the only match, every other word inserted on one side and
    deleted on the other), and a detector may call it either way."""
    return inserted_words(a, b) is not None or inserted_words(b, a) is not None


class Registry:
    """Rows by identity: a row conflicts with one of another identity when they share a key or are `related`. Keys
    are a dictionary look-up; the relation is checked within skeleton blocks only (related rows share a skeleton)."""

    def __init__(self, extra: frozenset = frozenset()):
        self.extra = extra
        self.owner: dict[tuple, object] = {}
        self.blocks: dict[tuple, list[tuple[object, dict]]] = {}

    def conflict(self, row, who) -> str | None:
        for key in row_keys(row, self.extra):
            if self.owner.get(key, who) != who:
                return f"shares its {key[0]} key with {self.owner[key]}"
        for other_who, other in self.blocks.get(skeleton(row), ()):
            if other_who != who and related(row, other):
                return f"is an inserted-word copy of {other_who}"
        return None

    def add(self, row, who) -> None:
        for key in row_keys(row, self.extra):
            self.owner.setdefault(key, who)
        self.blocks.setdefault(skeleton(row), []).append((who, row))


# --- n-gram evidence -----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1 << 17)
def _lines_of(text: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A turn's tokens line by line: prose lines as prose, the lines of a fenced block as code."""
    lines, out, i = fold(text).split("\n"), [], 0
    while i < len(lines):
        if not _fence(lines[i]):
            out.append(_prose(lines[i]))
            i += 1
            continue
        j = next((k for k in range(i + 1, len(lines)) if _fence(lines[k])), len(lines))
        out.append((("```", F),))
        code = _code(lines[i + 1:j])
        starts = [k for k, (_, kind) in enumerate(code) if kind == I] + [len(code)]
        out.extend(code[a:b] for a, b in zip(starts, starts[1:]))
        out.extend([(("```", F),)] if j < len(lines) else [])
        i = j + 1
    return tuple(out)


def line_tokens(row, filler: frozenset) -> list[tuple[str, ...]]:
    return [tuple(t for t, k in line if not (k in (W, C) and t in filler))
            for m in _messages(row) for line in _lines_of(m["content"])]


def passages(row, n: int = 13) -> set[tuple[str, ...]]:
    """The row's n-token passages, never across lines, with filler and without (what any reading of "tokens" would
    take)."""
    return {line[k:k + n] for filler in (frozenset(), _FILLER) for line in line_tokens(row, filler)
            for k in range(len(line) - n + 1)}


def rare_passages(rows, rare_df: int, n: int = 13) -> list[set[tuple[str, ...]]]:
    """Per row, its passages that hold two rare tokens (held by at most `rare_df` of `rows`): leak evidence."""
    grams = [passages(r, n) for r in rows]
    df = Counter()
    for g in grams:
        df.update({t for gram in g for t in gram})
    return [{gram for gram in g if sum(df[t] <= rare_df for t in gram) >= 2} for g in grams]


def shared_passages(train, protected, n: int = 13) -> dict[int, int]:
    """Train rows that share a passage holding two rare tokens with a protected row: {train index: protected index}.
    Rare: held by at most max(2, 0.1% of train + protected) rows."""
    rows = list(train) + list(protected)
    evidence = {}
    for j, grams in enumerate(rare_passages(rows, max(2, int(0.001 * len(rows))), n)[len(train):]):
        for gram in grams:
            evidence.setdefault(gram, j)
    out = {}
    for i, row in enumerate(train):
        hit = next((evidence[g] for g in passages(row, n) if g in evidence), None)
        if hit is not None:
            out[i] = hit
    return out


def passage_clashes(rows, rare_df: int, n: int = 13) -> set[int]:
    """Rows that share a passage holding two rare tokens with an earlier row (115 mL x 0.68 mol/L and 34 mL x 2.3
    mol/L both make 0.0782 mol, and the rest of the answer is template)."""
    owner, out = {}, set()
    for i, grams in enumerate(rare_passages(rows, rare_df, n)):
        for gram in grams:
            if owner.setdefault(gram, i) != i:
                out.add(i)
    return out
