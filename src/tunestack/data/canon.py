"""What makes two rows "the same": the identity rule and the keys duplicates, conflicts and leaks are found by (the
word hashing and n-grams they are searched with are in `tunestack.data.ngrams`). Pure: no disk. Every user of row keys (dedup, conflicts, leaks, the general pool's
decontamination, quantize calibration, assess sampling, synth) calls this module; `RULE` names its version, and
prepare's fingerprint and data report carry it.

**Tokens.** A turn's text becomes tokens; two texts with the same tokens are the same text.

- Cosmetic, so left out: case of prose, Unicode form (full-width and half-width forms, ligatures, no-break spaces;
  superscripts, subscripts and fractions are kept: `x²` is not `x2`, `10⁻³` is not `10-3`), whitespace, sentence
  punctuation (`. , ; : ! ? …`, their CJK forms, em dashes), quotes, and a hyphen between two letters (`X-ray`).
- Content, so kept: words; numbers whole with a decimal point or separator inside (`1.2`, `1,000` and `10:30` are
  one token each: `1.2` is not `12` nor `1/2`); every other character as a token of its own: signs and operators
  (`+ - ± * × / ÷ % ^ = ≠ < > ≤ ≥ ~ & |`), a minus (`-3` is not `3`; `−` and `–` are written `-`), brackets,
  currency, degrees. In scripts written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Myanmar) each
  character with its marks is a token, so evidence forms there as it does between words.
- Code keeps more: inside ``` fences, or in every turn of a source with `kind: code`, case is kept (identifiers),
  every character that is not a space is a token (quotes and `.,;:` included), and each line's indentation relative
  to its block is a token (Python's meaning lives there); a whole block indented further is the same code.

**Levels.** A row is compared turn by turn (role and tokens), never as one blob:

- **exact**: every turn has the same tokens.
- **sequence**: every turn has the same tokens once filler words (`FILLER`: articles, greetings, politeness,
  discourse fillers; never in code) are left out.
- **clauses**: every turn has the same *multiset* of sentences (text up to `.`, `;`, `!`, `?` followed by a space,
  `。！？；`, or a line break; a code block is one sentence) as their non-filler tokens. A sentence moved elsewhere in
  its turn does not make a row new; words moved inside a sentence do ("A pays B" is not "B pays A").
- **inserted** (near copies the keys do not call copies, found by `inserted_words`): one row is the other with
  *droppable* words inserted, nothing replaced or taken away. A droppable word is prose, letters only, not a
  negation, and frequent: held by at least `MIN_DF` rows and `DF_SHARE` of the rows compared. Names, numbers,
  symbols and negations are slot values, never droppable; a frequent word put in place of another (`Texas` for
  `Delaware`, or `Hx: fever` added at the end where `Hx: fall` was taken from the start) is a changed slot value.

Any other difference makes a different row: a name, a number, a sign, an operator, a negation, a synonym. That is
deliberate. Similarity measures cannot tell a changed slot value (a different lesson) from a reworded one (the same
lesson), and template data is made of rows that differ in one slot value.

The prompt key is the sequence key of every turn but the last: the same prompt with another answer is a
conflicting label. `bare_prompt` leaves the system turn out, for items (the general suites) that have none.

Hashes are stable across processes (blake2b; no builtin `hash`).
"""

from __future__ import annotations

import difflib
import hashlib
from collections import Counter
import re
import unicodedata
from functools import lru_cache
from itertools import chain
from typing import NamedTuple

from tunestack.tools import TOOLS_KEY, message_text, tools_of

RULE = "identity-2"
"""The identity rule's version: `identity-1` folded every character that is not a letter or digit to a space."""

FILLER = frozenset(("a", "an", "the", "please", "kindly", "also", "basically", "actually", "simply", "um", "uh", "ok",
                    "okay", "hi", "hello", "hey", "thanks"))
"""Words whose presence changes no meaning. Negations (no, not, never, t of n't) are never filler."""

NEGATIONS = frozenset(("no", "not", "never", "nor", "none", "nothing", "nobody", "neither", "nowhere", "without",
                       "cannot", "t", "non", "nein", "nicht", "kein", "keine", "pas", "jamais", "sin", "nunca",
                       "nao", "não", "niet", "nie", "нет", "не", "안", "못"))
"""Words that are never droppable, however frequent. In scripts without spaces, `_NEGATION_MARKS` below."""
_NEGATION_MARKS = ("不", "没", "沒", "无", "無", "非", "未", "别", "別", "勿", "莫", "否", "ない", "ません", "ず", "ไม่", "มิ",
                   "ບໍ່", "មិន")

_NEVER_DROPPED = NEGATIONS | frozenset(_NEGATION_MARKS)
MIN_DF, DF_SHARE = 3, 0.002
"""A word is frequent enough to be droppable when at least this many rows, and this share of the rows, hold it."""
COMPARED = 8
"""Earlier rows sharing a skeleton that a row is checked against, at most: enough for near copies, bounded for
template data where thousands of rows can share one."""

_COSMETIC = frozenset(".,;:!?\"'`…。、，；：！？‘’‚‛“”„‟«»‹›「」『』—―¿¡")
_DASHES = {c: "-" for c in "‐‑‒–−"}
_FOLD_TAGS = ("<wide>", "<narrow>", "<compat>", "<noBreak>", "<font>", "<small>", "<vertical>", "<initial>",
              "<medial>", "<final>", "<isolated>")
# Scripts written without spaces: Thai, Lao, Myanmar, Khmer (their letters; their digits make numbers), the
# ideographic iteration marks, Hiragana, Katakana, CJK ideographs.
_NO_SPACE = ("\u0e01-\u0e4f\u0e80-\u0ecf\u0eda-\u0eff\u1000-\u103f\u104a-\u108f\u109a-\u109f\u1780-\u17df"
             "\u17ea-\u17ff\u3005-\u3007\u3040-\u30ff\u31f0-\u31ff"
             "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff")
# A number keeps a decimal point or a time's colon inside it, a thousands comma (before exactly three digits), and a
# leading decimal point (".5" is not "5"); a comma between other digits separates ("[1,2,3]" is "[1, 2, 3]").
_NUMBER = r"(?:[.:][0-9]+|,[0-9]{3}(?![0-9]))"
_ASCII_TOKEN = re.compile(rf"[A-Za-z0-9_]*[0-9]{_NUMBER}+|(?<![0-9])\.[0-9]+{_NUMBER}*|[A-Za-z0-9_]+|\S")
_ASCII_PROSE = re.compile(rf"[A-Za-z0-9_]*[0-9]{_NUMBER}+|(?<![0-9])\.[0-9]+{_NUMBER}*|[A-Za-z0-9_]+"
                          r"|[^\sA-Za-z0-9_.,;:!?\"'`]")
_ASCII_HYPHEN = re.compile(r"(?<=[A-Za-z])-(?=[A-Za-z])")
_HYPHEN = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")
# Within a line (a line break ends a sentence too), a sentence ends at . ; ! ? followed by whitespace or the end (so
# "3.5" and "e.g" stay whole), or at the CJK stops.
_CLAUSE_END = re.compile(r"[.;!?]+(?=\s|$)|[。！？；]+")
_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)


class _Fold(dict):
    """str.translate table: a character's cosmetic form, worked out once per character."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if unicodedata.category(char) == "Cf" or 0xFE00 <= code <= 0xFE0F:  # zero-width, soft hyphen, BOM, selectors
            self[code] = ""
            return ""
        tag = unicodedata.decomposition(char).split(" ")[0]
        folded = _DASHES.get(char) or (unicodedata.normalize("NFKC", char) if tag in _FOLD_TAGS else char)
        self[code] = folded
        return folded


_FOLD = _Fold()


@lru_cache(maxsize=1)
def _token_re() -> re.Pattern:
    """Tokens of text that is not ASCII: a character of a script without spaces with its marks, a number or word
    (letters, digits, _ and combining marks) of the other scripts, or any other character alone."""
    marks = "".join(chr(c) for c in range(0x300, 0x10000) if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me"))
    m = re.escape(marks)
    word = rf"(?:(?![{_NO_SPACE}])[\w{m}])"
    number = r"(?:[.:]\d+|,\d{3}(?!\d))"
    return re.compile(rf"(?![{m}\d])[{_NO_SPACE}][{m}]*|{word}*\d{number}+|(?<!\d)\.\d+{number}*|{word}+|\S")


def fold(text: str) -> str:
    """The Unicode form that does not count: NFC, compatibility forms that only change the look (full-width,
    ligatures, no-break spaces), dashes that are a minus, invisible format characters (zero-width spaces, soft
    hyphens, variation selectors); superscripts, subscripts and fractions stay.

    >>> fold("ＥＲ＋ x² 10⁻³ −3 ﬁne")
    'ER+ x² 10⁻³ -3 fine'
    """
    return text if text.isascii() else unicodedata.normalize("NFC", text).translate(_FOLD)


def _prose_text(text: str) -> tuple[str, bool]:
    """Prose ready to split and tokenise (folded, lower case, hyphens between letters spaced), and whether ASCII."""
    if text.isascii():
        return (_ASCII_HYPHEN.sub(" ", text.lower()) if "-" in text else text.lower()), True
    return _HYPHEN.sub(" ", fold(text).lower()), False


def _prose(text: str, ascii_: bool) -> list[str]:
    if ascii_:
        return _ASCII_PROSE.findall(text)
    return [t for t in _token_re().findall(text) if t not in _COSMETIC]


def _code_line(text: str) -> list[str]:
    return (_ASCII_TOKEN if text.isascii() else _token_re()).findall(fold(text))


def tokens(text: str, code: bool = False) -> list[str]:
    """A text's tokens, prose or (`code`) code.

    >>> tokens("ER+, PR-; HER2 (1+)."), tokens("Ki-67: <10%")
    (['er', '+', 'pr', '-', 'her2', '(', '1', '+', ')'], ['ki', '-', '67', '<', '10', '%'])
    >>> tokens("  CT  Chest: small L-PTX. ")
    ['ct', 'chest', 'small', 'l', 'ptx']
    >>> tokens("患者体温38.5度。"), tokens("Price: 1,000.50 (v1.2)")
    (['患', '者', '体', '温', '38.5', '度'], ['price', '1,000.50', '(', 'v1.2', ')'])
    """
    return list(chain.from_iterable(s for s, _ in sentences(text, code)))


def sentences(text: str, code: bool = False) -> list[tuple[list[str], bool]]:
    """The sentences of a text in order, each as (tokens, is code): prose split at sentence ends, a code block whole.
    Joined in turn, they are the text's tokens. Do not change what it returns: it is shared (`_parse`)."""
    return _parse(text, code)[0]


def line_words(text: str, code: bool = False) -> list[list[str]]:
    """Tokens of each line: n-grams are taken per line, so one never spans two lines or turns."""
    return _parse(text, code)[1]


@lru_cache(maxsize=1 << 15)
def _parse(text: str, code: bool) -> tuple[list[tuple[list[str], bool]], list[list[str]]]:
    """A text's sentences and lines, worked out once: a row's keys, skeleton, candidate words and n-grams all read
    them, and system prompts recur in every row."""
    sents, lines = [], []
    for is_code, chunk in _blocks(text, code):
        if is_code:
            block = _code_lines(chunk)
            sents.append((list(chain.from_iterable(block)), True))
            lines += block
            continue
        chunk, ascii_ = _prose_text(chunk)
        for line in chunk.split("\n"):
            parts = [_prose(part, ascii_) for part in _CLAUSE_END.split(line)]
            sents += [(part, False) for part in parts]
            lines.append(list(chain.from_iterable(parts)))
    return sents, lines


def _blocks(text: str, code: bool) -> list[tuple[bool, str]]:
    """The text as (is code, chunk) pieces: all of it code for a code source, else code between ``` fence lines."""
    if code:
        return [(True, text)]
    if "```" not in text or not _FENCE.search(text):
        return [(False, text)]
    blocks, inside, lines = [], False, []
    for line in text.split("\n"):
        if _is_fence(line):
            if inside:
                blocks.append((True, "\n".join(lines + [line])))
                lines = []
            else:
                if lines:
                    blocks.append((False, "\n".join(lines)))
                lines = [line]
            inside = not inside
        else:
            lines.append(line)
    if lines:
        blocks.append((inside, "\n".join(lines)))
    return blocks


def _is_fence(line: str) -> bool:
    """A line that opens or closes a code block: ``` and a language tag at most (```ls``` on one line is inline)."""
    stripped = line.strip()
    return stripped.startswith("```") and "`" not in stripped[3:]


def _code_lines(chunk: str) -> list[list[str]]:
    """Each non-empty line of a code block: its indentation beyond the block's least-indented line, then its tokens;
    a fence line is the token ``` whatever its language tag."""
    lines = [line.expandtabs(4) for line in chunk.split("\n") if line.strip()]
    body = [line for line in lines if not _is_fence(line)]
    base = min((len(line) - len(line.lstrip()) for line in body), default=0)
    out = []
    for line in lines:
        stripped = line.lstrip()
        if _is_fence(line):
            out.append(["```"])
        else:
            out.append([f"\u21e5{len(line) - len(stripped) - base}", *_code_line(stripped)])
    return out


def normalize(text: str, code: bool = False) -> str:
    """A text as the rule sees it, tokens joined by spaces.

    >>> normalize("  CT  Chest: small L-PTX. "), normalize("7 - 3?") == normalize("7 + 3?")
    ('ct chest small l ptx', False)
    """
    return " ".join(tokens(text, code))


def words(text: str, code: bool = False) -> list[str]:
    return tokens(text, code)


def content_words(text: str, filler: frozenset = FILLER, code: bool = False) -> list[str]:
    """
    >>> content_words("Please note: the lease is NOT renewed.")
    ['note', 'lease', 'is', 'not', 'renewed']
    """
    return [t for s, is_code in sentences(text, code) for t in s if is_code or t not in filler]


def clauses(text: str, filler: frozenset = FILLER, code: bool = False) -> list[str]:
    """The sentences of a turn as their content tokens, sorted: the same list for the same sentences in any order.

    >>> clauses("Term: 12 months. Hx: none.") == clauses("Hx: none.  Term: 12 months.")
    True
    """
    return sorted(p for p in (_kept(s, c, filler) for s, c in sentences(text, code)) if p)


def _kept(tokens_: list[str], is_code: bool, filler: frozenset) -> str:
    return " ".join(tokens_ if is_code else [t for t in tokens_ if t not in filler])


def digest(parts) -> bytes:
    return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=16).digest()


class RowKeys(NamedTuple):
    exact: bytes
    sequence: bytes
    clauses: bytes
    prompt: bytes
    bare_prompt: bytes
    """The prompt without its system turn."""
    has_system: bool


def row_keys(messages: list[dict], filler: frozenset = FILLER) -> RowKeys:
    """The keys of one row (a list of chat turns, the answer last)."""
    exact, sequence, ordered = [], [], []
    for m in messages:
        parts = turn_parts(m)  # one pass over the text serves all three keys
        kept = [_kept(s, c, filler) for s, c in parts]
        exact.append(m["role"] + ":" + " ".join(" ".join(s) for s, _ in parts if s))
        sequence.append(m["role"] + ":" + " ".join(p for p in kept if p))
        ordered.append(m["role"] + ":" + "\x1d".join(sorted(p for p in kept if p)))
    has_system = bool(messages) and messages[0]["role"] == "system"
    return RowKeys(digest(exact), digest(sequence), digest(ordered), digest(sequence[:-1]),
                   digest(sequence[1 if has_system else 0:-1]), has_system)


CODE_KEY = "_identity_code"
"""Set on a turn by `as_code`: the whole turn (its calls and tool results included) is code, fences or not."""


def as_code(messages: list[dict]) -> list[dict]:
    """A row of a `kind: code` source as the rule reads it: every turn all code.

    >>> row_keys(as_code([{"role": "user", "content": "X = 1"}])) == row_keys([{"role": "user", "content": "x = 1"}])
    False
    """
    return [dict(m, **{CODE_KEY: True}) for m in messages]


def turn_parts(message: dict) -> list[tuple[list[str], bool]]:
    """A turn's sentences as the rule reads them (`sentences` of its `turn_text`, all code for an `as_code` turn)."""
    return sentences(turn_text(message), CODE_KEY in message)


def turn_lines(message: dict) -> list[list[str]]:
    """A turn's lines of tokens as the rule reads them (for n-grams)."""
    return line_words(turn_text(message), CODE_KEY in message)


def identity_view(messages: list[dict], meta: dict) -> list[dict]:
    """The row as the rule reads it, given its fields (`identity: code` for rows of a `kind: code` source)."""
    return as_code(messages) if meta.get("identity") == "code" else messages


def turn_text(message: dict) -> str:
    """A turn as the data checks compare it: its text, a tool call as its function name plus canonical arguments, a
    tool result with its function's name, and the names of the tools a conversation offers on its first turn (the same
    question with other tools is another row).

    >>> turn_text({"role": "assistant", "content": "", "tool_calls": [
    ...     {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": {"b": 2, "a": 1}}}]})
    'lookup({"a":1,"b":2})'
    """
    if "tool_calls" not in message and TOOLS_KEY not in message and message.get("role") != "tool":
        return message.get("content") or ""  # a plain turn, the most common by far: its content
    text = message_text(message)
    offered = tools_of([message])
    return f"{text}\ntools: {' '.join(sorted(t['function']['name'] for t in offered))}" if offered else text


def example_text(messages: list[dict]) -> str:
    """The whole example as one text, a line per turn at least."""
    return "\n".join(turn_text(m) for m in messages)


# --- near copies by inserted words ---------------------------------------------------------------------------------

def _content(message: dict, filler: frozenset) -> list[tuple[str, bool]]:
    return [(t, c) for s, c in turn_parts(message) for t in s if c or t not in filler]


def candidate_words(messages: list[dict]) -> set[str]:
    """The words of a row that could be droppable (prose, letters only, not a negation), each once: what the
    document frequency behind `droppable` counts."""
    return token_sets(messages)[1]


def token_sets(messages: list[dict]) -> tuple[set[str], set[str]]:
    """A row's tokens, each once, and its candidate words (`candidate_words`): what document frequencies count."""
    held, words_ = set(), set()
    for m in messages:
        tokens_, candidates = _text_sets(turn_text(m), CODE_KEY in m)
        held |= tokens_
        words_ |= candidates
    return held, words_


@lru_cache(maxsize=1 << 15)
def _text_sets(text: str, code: bool) -> tuple[frozenset, frozenset]:
    """A text's tokens and candidate words, each once (system prompts recur in every row)."""
    if not code and text.isascii() and "```" not in text:  # ASCII prose: one pass, sentences do not matter to a set
        held = prose = frozenset(_ASCII_PROSE.findall(_prose_text(text)[0]))
    else:
        parts = sentences(text, code)
        held = frozenset(t for s, _ in parts for t in s)
        prose = frozenset(t for s, c in parts if not c for t in s)
    return held, frozenset(filter(str.isalpha, prose)) - _NEVER_DROPPED


def droppable(document_frequency: dict[str, int], rows: int) -> frozenset:
    """The candidate words frequent enough to be droppable among `rows` rows.

    >>> sorted(droppable({"hereby": 40, "delaware": 3, "acme": 1}, rows=2000))
    ['hereby']
    """
    need = max(MIN_DF, -(-DF_SHARE * rows // 1))
    return frozenset(w for w, n in document_frequency.items() if n >= need)


def skeleton(messages: list[dict], left_out: frozenset) -> bytes:
    """The sequence key with droppable words left out as well (`left_out`: the droppable and the filler words): rows
    that differ only by inserting droppable words share it (and so do rows that replace one such word by another,
    which `inserted_words` then tells apart)."""
    turns = []
    for m in messages:
        kept = []
        for s, c in turn_parts(m):
            kept += s if c else [t for t in s if t not in left_out]
        turns.append(m["role"] + ":" + " ".join(kept))
    return digest(turns)


def inserted_words(a: list[dict], b: list[dict], drop: frozenset, filler: frozenset = FILLER) -> list[str] | None:
    """The words that tell two rows apart when one is the other with droppable words inserted, in any of its turns;
    None when they differ otherwise (a word put in place of another, even far from it: `Hx: fall` dropped here and
    `Hx: fever` added there is a changed slot value) or not at all.

    >>> drop = frozenset({"hereby", "duly", "delaware", "texas"})
    >>> row = lambda text: [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    >>> inserted_words(row("The parties hereby agree."), row("The parties agree"), drop)
    ['hereby']
    >>> inserted_words(row("Governed by Delaware law."), row("Governed by Texas law."), drop) is None
    True
    """
    if [m["role"] for m in a] != [m["role"] for m in b]:
        return None
    differ: set[str] = set()
    ops: set[str] = set()
    for x, y in zip(a, b):
        tx, ty = _content(x, filler), _content(y, filler)
        if tx == ty:
            continue
        if not _contained(tx, ty) or _negated(tx) != _negated(ty):
            return None  # one side holds a token the other lacks, or a negation the other lacks
        matcher = difflib.SequenceMatcher(None, [t for t, _ in tx], [t for t, _ in ty], autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                continue
            run = tx[i1:i2] or ty[j1:j2]
            ops.add(op)
            if op == "replace" or len(ops) > 1 or any(c or t not in drop for t, c in run) or \
                    any(mark in "".join(t for t, _ in run) for mark in _NEGATION_MARKS):
                return None
            differ.update(t for t, _ in run)
    return sorted(differ) or None


def _contained(x: list, y: list) -> bool:
    """Whether one token list's multiset holds the other's: cheap, and needed for one to be the other plus words."""
    cx, cy = Counter(x), Counter(y)
    return not cx - cy or not cy - cx


def _negated(tokens_: list[tuple[str, bool]]) -> tuple[int, ...]:
    """How often each negation of a script without spaces occurs (an inserted `く`, `な` before a kept `い` makes
    `高くない` of `高い`: the run inserted holds no negation, the turn does)."""
    text = "".join(t for t, _ in tokens_)
    return tuple(text.count(mark) for mark in _NEGATION_MARKS)
