"""Exact and near-duplicate detection, and decontamination against eval sets. Pure: numpy only, no disk.

An example is judged whole, prompt and answer together: two rows are near duplicates when the Jaccard similarity of
their word 3-gram shingles reaches the threshold AND their answers agree. Short answers (up to 30 words) must be equal
after normalisation; longer ones must themselves reach the threshold. That is what keeps template-heavy data apart:
rows that share most of their wording but teach a different answer (one code changed in a short JSON answer) are
different lessons, however alike they look.

Candidates come from MinHash signatures (100 minima) with LSH banding (20 bands of 5); the exact Jaccard of the
shingle sets then decides. Rows are processed in order and only kept rows enter the index, so the representative of
a group is always its first row (deterministic).

Work per row is capped, so time grows at most linearly with the rows. Template data crowds buckets (kept rows with
the same short answer and boilerplate share many), so each band's bucket heads a chain, as in an LSH forest: a full
bucket (`bucket_size` rows) takes no more, and later rows go to a sub-bucket keyed by the next band too, and so on
for `depth` levels. A lookup reads every level of its chain, so an early first occurrence is not pushed out of reach
by the look-alikes that follow it (only the last level, rarely full, is read newest first), while rows that share
only boilerplate part at the first level where they differ. The rows met are ranked by how many of the minima they
share with the new row (an estimate of their Jaccard similarity, finer than counting shared bands); only the top
`max_candidates`, and none estimated far below the threshold, get the exact check.

Hashes are stable across processes (blake2b per distinct word, then numpy integer mixing; no builtin `hash`), and
shingles, signatures and band keys are computed for a batch of rows at once.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from itertools import chain
from typing import NamedTuple

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)
# For ASCII text, one byte translation does what NFKC, lower() and the \w+ split do: letters to lower case, digits
# and "_" kept, everything else a space (newlines too, once split on, for the per-line n-grams).
_ASCII_FOLD = bytes(c + 32 if 65 <= c <= 90 else c if chr(c).isalnum() or c in b"_\n" else 32 for c in range(256))
SHORT_ANSWER_WORDS = 30
_BATCH = 2048


def normalize(text: str) -> str:
    """Case, Unicode form, punctuation and spacing do not make rows different.

    >>> normalize("  CT  Chest: small L-PTX. ")
    'ct chest small l ptx'
    """
    return " ".join(_words(text))


def _words(text: str) -> list[str]:
    if text.isascii():
        return text.encode().translate(_ASCII_FOLD).decode().split()
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def _line_words(text: str) -> list[list[str]]:
    # Joined, the lines' words are the text's words: a newline is not a word character, and NFKC leaves it alone.
    if text.isascii():
        return [line.split() for line in text.encode().translate(_ASCII_FOLD).decode().split("\n")]
    return [_words(line) for line in text.split("\n")]


def example_pair(messages: list[dict]) -> tuple[str, str]:
    """The whole example as one text, and its answer (the last turn)."""
    return "\n".join(m["content"] for m in messages), messages[-1]["content"]


def _is_short(answer: str) -> bool:
    return answer.count(" ") + 1 <= SHORT_ANSWER_WORDS


def answers_agree(a: str, b: str, threshold: float) -> bool:
    """Equality for short answers; shingle Jaccard >= threshold for long ones. Both already normalised."""
    if a == b:
        return True
    if _is_short(a) and _is_short(b):
        return False
    return jaccard(shingles(a), shingles(b)) >= threshold


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: every input bit affects every output bit. uint64 arithmetic wraps, as intended.
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _grams(segments: list[list[str]], k: int, whole_if_short: bool) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the word k-grams of each segment, and the segment each belongs to (in order).

    A segment shorter than k words gives one gram of all its words when `whole_if_short`, else none.
    """
    lengths = np.fromiter(map(len, segments), dtype=np.int64, count=len(segments))
    flat = list(chain.from_iterable(segments))
    words = np.zeros(len(flat) + 1, dtype=np.uint64)  # the zero past the end stands for "no word here"
    table = {word: stable_hash(word) for word in set(flat)}  # each distinct word hashed once
    words[:-1] = np.fromiter(map(table.__getitem__, flat), dtype=np.uint64, count=len(flat))
    counts = np.maximum(lengths - k + 1, 1 if whole_if_short else 0)
    owner = np.repeat(np.arange(len(segments)), counts)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(owner.size) - (np.cumsum(counts) - counts)[owner] + starts[owner]
    end = (starts + lengths)[owner]
    h = np.full(owner.size, k, dtype=np.uint64)
    for j in range(k):
        h = _mix(h ^ words[np.where(position + j < end, position + j, len(flat))])
    return h, owner


def _shingle_sets(texts: list[list[str]], k: int = 3) -> list[np.ndarray]:
    """Sorted unique shingle hashes of each text, given as its normalised words."""
    h, owner = _grams(texts, k, whole_if_short=True)
    order = np.lexsort((h, owner))
    h, owner = h[order], owner[order]
    keep = np.ones(h.size, dtype=bool)
    keep[1:] = (h[1:] != h[:-1]) | (owner[1:] != owner[:-1])
    h, ends = h[keep], np.cumsum(np.bincount(owner[keep], minlength=len(texts))).tolist()
    return [h[start:end] for start, end in zip([0, *ends], ends)]


def shingles(text: str, k: int = 3) -> np.ndarray:
    """Sorted hashes of the word k-grams of normalised text (the whole text when shorter than k words)."""
    return _shingle_sets([_words(text)], k)[0]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter) if (a.size or b.size) else 1.0


def _jaccards(a: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """jaccard(a, b) for each b in others, in one pass (all sorted, unique and non-empty)."""
    sizes = np.fromiter(map(len, others), dtype=np.int64, count=len(others))
    flat = np.concatenate(others)
    found = a[np.minimum(a.searchsorted(flat), a.size - 1)] == flat
    inter = np.add.reduceat(found, np.cumsum(sizes) - sizes, dtype=np.int64)
    return inter / (a.size + sizes - inter)


class MinHasher:
    def __init__(self, num_perm: int = 128, seed: int = 0):
        rng = np.random.default_rng(seed)
        top = np.iinfo(np.uint64).max
        self.a = rng.integers(0, top, num_perm, dtype=np.uint64, endpoint=True) | np.uint64(1)
        self.b = rng.integers(0, top, num_perm, dtype=np.uint64, endpoint=True)

    def signatures(self, sets: list[np.ndarray]) -> np.ndarray:
        """(num_perm, len(sets)) minima, one column per non-empty shingle set, computed together."""
        sizes = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
        # Template shingles repeat across rows: hash each distinct one once. Multiply-add-shift (a*x + b, wrapping
        # uint64, top 32 bits) is a universal hash family and needs no modulo. Permutations along the first axis
        # keep the gather and the per-row minimum on contiguous memory.
        unique, inverse = np.unique(np.concatenate(sets), return_inverse=True)
        values = ((np.multiply.outer(self.a, unique) + self.b[:, None]) >> np.uint64(32)).astype(np.uint32)
        return np.minimum.reduceat(np.take(values, inverse, axis=1), np.cumsum(sizes) - sizes, axis=1)

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        return self.signatures([hashes])[:, 0]


class Entry(NamedTuple):
    """A row prepared once for the index: exact key, shingles, normalised answer, MinHash signature, LSH keys.

    `band_keys` holds `depth` levels of one key per band: each band's own bucket, then its sub-buckets.
    """

    key: bytes
    shingles: np.ndarray
    answer: str
    signature: np.ndarray
    band_keys: list[int]


@dataclass
class DuplicateIndex:
    """Kept rows' shingles, signatures and LSH buckets; `find` returns the kept row a new row duplicates.

    A bucket holds at most `bucket_size` members; a full one hands later rows to its sub-bucket, `depth` levels
    in all (the last keeps growing, but only its latest `bucket_size` members are read). The rows met along the
    chains are ranked by how many of the `num_perm` minima they share with the new row (the fraction estimates the
    Jaccard similarity), and the top `max_candidates` are verified by exact Jaccard.
    """

    threshold: float = 0.8
    num_perm: int = 100
    bands: int = 20
    max_candidates: int = 8
    bucket_size: int = 32
    depth: int = 3
    seed: int = 0
    _hasher: MinHasher = field(init=False)
    _buckets: dict[int, int | list[int]] = field(init=False, default_factory=dict)  # a lone member is stored bare
    _shingles: list[np.ndarray] = field(init=False, default_factory=list)
    _answers: list[str] = field(init=False, default_factory=list)
    _signatures: np.ndarray = field(init=False)  # kept rows' minima, low 8 bits: enough to rank by, and compact
    _exact: dict[bytes, int] = field(init=False, default_factory=dict)

    def __post_init__(self):
        if self.num_perm % self.bands:
            raise ValueError("num_perm must be a multiple of bands")
        if self.bucket_size < 2:
            raise ValueError("bucket_size must be at least 2")
        self._hasher = MinHasher(self.num_perm, self.seed)
        self._signatures = np.zeros((1024, self.num_perm), dtype=np.uint8)
        # The share of equal minima estimates the Jaccard similarity with a standard deviation of at most
        # 0.5/sqrt(num_perm): a candidate four of those below the threshold is not worth an exact check.
        self._min_shared = int(np.ceil((self.threshold - 2 / np.sqrt(self.num_perm)) * self.num_perm))

    def _keys(self, signatures: np.ndarray, answers: list[str]) -> list[list[int]]:
        # A short answer is part of every key: rows whose short answers differ can never be duplicates, so template
        # look-alikes never even become candidates. Level d of band b's chain covers bands b .. b+d.
        values = signatures.reshape(self.bands, self.num_perm // self.bands, len(answers)).astype(np.uint64)
        bands = np.zeros(values[:, 0].shape, dtype=np.uint64)
        for j in range(values.shape[1]):
            bands = _mix(bands ^ values[:, j])
        seeds = np.array([stable_hash(a) if _is_short(a) else 0 for a in answers], dtype=np.uint64)
        keys = seeds[None, :] ^ (np.arange(self.bands, dtype=np.uint64)[:, None] << np.uint64(56))
        levels = []
        for d in range(self.depth):
            keys = _mix(keys ^ np.roll(bands, -d, axis=0))
            levels.append(keys)
        return np.stack(levels).transpose(2, 0, 1).reshape(len(answers), -1).tolist()

    def _entries(self, texts: list[list[str]], answers: list[str]) -> list[Entry]:
        """Entries for texts given as their normalised words, with normalised answers."""
        sets = _shingle_sets(texts)
        signatures = self._hasher.signatures(sets)
        keys = self._keys(signatures, answers)
        exact = (hashlib.blake2b(" ".join(words).encode(), digest_size=16).digest() for words in texts)
        return [Entry(*fields) for fields in zip(exact, sets, answers, signatures.T.astype(np.uint8), keys)]

    def entries(self, pairs: list[tuple[str, str]]) -> list[Entry]:
        """`entry` for many rows at once: much faster, as the hashing is done for all of them together."""
        return self._entries([_words(text) for text, _ in pairs], [normalize(a) for _, a in pairs])

    def entry(self, text: str, answer: str) -> Entry:
        """`text` is the whole example (prompt and answer), `answer` the part that is learned."""
        return self.entries([(text, answer)])[0]

    def _chains(self, entry: Entry):
        """Per band, the buckets along the entry's chain that exist, as (level, key, members)."""
        get, keys = self._buckets.get, entry.band_keys
        for band, members in enumerate(map(get, keys[:self.bands])):  # most chains end at their first level
            level = 0
            while True:
                yield level, keys[level * self.bands + band], members
                if members is None or type(members) is int or len(members) < self.bucket_size:
                    break
                level += 1
                if level == self.depth:
                    break
                members = get(keys[level * self.bands + band])

    def _candidates(self, entry: Entry) -> list[int]:
        """Kept rows met along the entry's chains: the `max_candidates` sharing the most minima, in row order."""
        found = []
        get, keys, bands, size = self._buckets.get, entry.band_keys, self.bands, self.bucket_size
        for band, members in enumerate(map(get, keys[:bands])):  # the walk of `_chains`, inlined: the hot loop
            level = 1
            while members is not None:
                if type(members) is int:
                    found.append(members)
                    break
                found += members[-size:]
                if len(members) < size or level == self.depth:
                    break
                members = get(keys[level * bands + band])
                level += 1
        if not found:
            return []
        rows = np.fromiter(set(found), dtype=np.int64)
        shared = np.add.reduce(self._signatures.take(rows, axis=0) == entry.signature, axis=1, dtype=np.int32)
        ranked = np.lexsort((rows, -shared))[:self.max_candidates]  # ties go to the earlier row: deterministic
        return sorted(rows[ranked[shared[ranked] >= self._min_shared]].tolist())

    def find(self, entry: Entry) -> tuple[str, int, float] | None:
        """("exact" | "near", kept index, similarity) for a duplicate of a kept row, else None.

        Of the verified candidates that reach the threshold, the most similar (then the earliest) is returned.
        """
        if entry.key in self._exact:
            return "exact", self._exact[entry.key], 1.0
        # The answer test is a string comparison for short answers (equal ones share keys, but keys can collide).
        candidates = [idx for idx in self._candidates(entry)
                      if answers_agree(entry.answer, self._answers[idx], self.threshold)]
        if not candidates:
            return None
        similarity = _jaccards(entry.shingles, [self._shingles[idx] for idx in candidates])
        best = int(similarity.argmax())
        return ("near", candidates[best], float(similarity[best])) if similarity[best] >= self.threshold else None

    def add(self, entry: Entry) -> int:
        idx = len(self._shingles)
        self._shingles.append(entry.shingles)
        self._answers.append(entry.answer)
        if idx == len(self._signatures):
            self._signatures = np.concatenate([self._signatures, np.zeros_like(self._signatures)])
        self._signatures[idx] = entry.signature
        self._exact.setdefault(entry.key, idx)
        for level, key, members in self._chains(entry):
            if members is None:
                self._buckets[key] = idx
            elif type(members) is int:
                self._buckets[key] = [members, idx]
            elif len(members) < self.bucket_size or level == self.depth - 1:
                members.append(idx)
        return idx


def _batches(rows: list, size: int = _BATCH):
    for start in range(0, len(rows), size):
        yield start, rows[start:start + size]


def deduplicate(examples: list[tuple[str, str]], threshold: float = 0.8) -> tuple[list[int], list[dict]]:
    """(whole text, answer) pairs -> indices to keep (first of each group) and one record per removed row."""
    index = DuplicateIndex(threshold=threshold)
    kept: list[int] = []
    removed = []
    for start, batch in _batches(examples):
        for i, entry in enumerate(index.entries(batch), start):
            hit = index.find(entry)
            if hit:
                kind, kept_pos, similarity = hit
                removed.append({"row": i, "kind": kind, "duplicate_of": kept[kept_pos],
                                "similarity": round(similarity, 3)})
            else:
                index.add(entry)
                kept.append(i)
    return kept, removed


def _line_grams(lines: list[list[list[str]]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashed word n-grams of each line of each text (as `_line_words` gives them), and the text of each."""
    h, line = _grams(list(chain.from_iterable(lines)), n, whole_if_short=False)
    text_of_line = np.repeat(np.arange(len(lines)), np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)))
    return h, text_of_line[line]


def ngrams(text: str, n: int) -> set[int]:
    """Hashed word n-grams of each line (turn) separately: an n-gram never spans two turns."""
    return set(_line_grams([_line_words(text)], n)[0].tolist())


def decontaminate(train: list[tuple[str, str]], protected: list[tuple[str, str]], n: int = 13, threshold: float = 0.8,
                  template_share: float = 0.1) -> list[dict]:
    """Training rows that overlap a protected (eval/holdout) row: exact, near-duplicate, or a shared n-gram.

    N-grams found in more than `template_share` of the protected rows (and at least 3 of them) are template text,
    not content, and do not count. Each record names the protected row it matched (for n-grams, the first
    protected row holding one of the shared n-grams).
    """
    index = DuplicateIndex(threshold=threshold)
    for _, batch in _batches(protected):
        for entry in index.entries(batch):
            index.add(entry)
    lines = [_line_words(text) for text, _ in protected]
    content, owners = _content_grams(*_line_grams(lines, n), limit=max(3, template_share * len(protected)))
    hits = []
    for start, batch in _batches(train):
        lines = [_line_words(text) for text, _ in batch]
        shared = _first_owner(*_line_grams(lines, n), content, owners, len(batch))
        entries = index._entries([list(chain.from_iterable(w)) for w in lines], [normalize(a) for _, a in batch])
        for i, (entry, owner) in enumerate(zip(entries, shared.tolist()), start):
            found = index.find(entry)
            if found:
                kind, j, similarity = found
                hits.append({"row": i, "kind": kind, "matched": j, "similarity": round(similarity, 3)})
            elif owner >= 0:
                hits.append({"row": i, "kind": f"{n}-gram", "matched": owner, "similarity": None})
    return hits


def _content_grams(grams: np.ndarray, row: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted n-grams held by fewer than `limit` protected rows, and for each the first row holding it."""
    order = np.lexsort((row, grams))
    grams, row = grams[order], row[order]
    new = np.ones(grams.size, dtype=bool)
    new[1:] = (grams[1:] != grams[:-1]) | (row[1:] != row[:-1])
    grams, row = grams[new], row[new]  # one (gram, row) pair per row holding the gram
    unique, first, holders = np.unique(grams, return_index=True, return_counts=True)
    content = holders < limit
    return unique[content], row[first][content]


def _first_owner(grams: np.ndarray, text: np.ndarray, content: np.ndarray, owners: np.ndarray,
                 count: int) -> np.ndarray:
    """For each of `count` texts, the lowest protected row among those owning its content n-grams, or -1."""
    result = np.full(count, np.iinfo(np.int64).max)
    if content.size and grams.size:
        pos = np.minimum(content.searchsorted(grams), content.size - 1)
        hit = content[pos] == grams
        np.minimum.at(result, text[hit], owners[pos[hit]])
    result[result == np.iinfo(np.int64).max] = -1
    return result
