"""Exact and near-duplicate detection, and decontamination against eval sets. Pure: numpy only, no disk.

An example is judged whole, prompt and answer together: two rows are near duplicates when the Jaccard similarity of
their word 3-gram shingles reaches the threshold AND their answers agree. Short answers (up to 30 words) must be equal
after normalisation; longer ones must themselves reach the threshold. That is what keeps template-heavy data apart:
rows that share most of their wording but teach a different answer (one code changed in a short JSON answer) are
different lessons, however alike they look.

Candidates come from MinHash signatures with LSH banding; the exact Jaccard of the shingle sets then decides. Rows
are processed in order and only kept rows enter the index, so the representative of a group is always its first
row (deterministic), and each row is compared with few others.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)
_PRIME = np.uint64((1 << 61) - 1)
_MAX = np.uint64((1 << 32) - 1)


def normalize(text: str) -> str:
    """Case, Unicode form, punctuation and spacing do not make rows different.

    >>> normalize("  CT  Chest: small L-PTX. ")
    'ct chest small l ptx'
    """
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).lower()))


SHORT_ANSWER_WORDS = 30


def example_pair(messages: list[dict]) -> tuple[str, str]:
    """The whole example as one text, and its answer (the last turn)."""
    return "\n".join(m["content"] for m in messages), messages[-1]["content"]


def answers_agree(a: str, b: str, threshold: float) -> bool:
    """Equality for short answers; shingle Jaccard >= threshold for long ones. Both already normalised."""
    if a == b:
        return True
    if max(a.count(" "), b.count(" ")) + 1 <= SHORT_ANSWER_WORDS:
        return False
    return jaccard(shingles(a), shingles(b)) >= threshold


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def shingles(text: str, k: int = 3) -> np.ndarray:
    """Hashes of the word k-grams of normalised text (the whole text when shorter than k words)."""
    words = normalize(text).split()
    grams = {" ".join(words[i:i + k]) for i in range(max(1, len(words) - k + 1))}
    return np.fromiter((stable_hash(g) for g in grams), dtype=np.uint64, count=len(grams))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter) if (a.size or b.size) else 1.0


class MinHasher:
    def __init__(self, num_perm: int = 128, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, int(_PRIME), num_perm, dtype=np.uint64)
        self.b = rng.integers(0, int(_PRIME), num_perm, dtype=np.uint64)

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        # Universal hashing (a*x + b mod p) per permutation; uint64 wrap-around is harmless for MinHash.
        values = (np.outer(hashes, self.a) + self.b) % _PRIME & _MAX
        return values.min(axis=0)


class Entry(NamedTuple):
    """A row prepared once for the index: exact key, shingles, normalised answer, LSH band keys."""

    key: str
    shingles: np.ndarray
    answer: str
    band_keys: list[int]


@dataclass
class DuplicateIndex:
    """Kept rows' shingles and LSH buckets; `find` returns the first kept row a new row duplicates."""

    threshold: float = 0.8
    num_perm: int = 100
    bands: int = 20
    seed: int = 0
    max_candidates: int = 32
    _hasher: MinHasher = field(init=False)
    _buckets: list[dict] = field(init=False)
    _shingles: list[np.ndarray] = field(init=False, default_factory=list)
    _answers: list[str] = field(init=False, default_factory=list)
    _exact: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self):
        if self.num_perm % self.bands:
            raise ValueError("num_perm must be a multiple of bands")
        self._hasher = MinHasher(self.num_perm, self.seed)
        self._buckets = [defaultdict(list) for _ in range(self.bands)]

    def _keys(self, sig: np.ndarray, answer: str) -> list[int]:
        # One int per band keeps a million-row index in memory. A short answer is part of the key: rows whose short
        # answers differ can never be duplicates, so template look-alikes never even become candidates.
        rows = self.num_perm // self.bands
        short = answer if answer.count(" ") + 1 <= SHORT_ANSWER_WORDS else ""
        return [hash((sig[i * rows:(i + 1) * rows].tobytes(), short)) for i in range(self.bands)]

    def entry(self, text: str, answer: str) -> Entry:
        """`text` is the whole example (prompt and answer), `answer` the part that is learned."""
        sh = shingles(text)
        norm_answer = normalize(answer)
        return Entry(hashlib.sha1(normalize(text).encode()).hexdigest(), sh, norm_answer,
                     self._keys(self._hasher.signature(sh), norm_answer))

    def find(self, entry: Entry) -> tuple[str, int, float] | None:
        """("exact" | "near", kept index, similarity) for a duplicate of a kept row, else None."""
        if entry.key in self._exact:
            return "exact", self._exact[entry.key], 1.0
        seen: set[int] = set()
        for band, bucket_key in zip(self._buckets, entry.band_keys):
            for idx in band.get(bucket_key, ())[-self.max_candidates:]:
                if idx in seen:
                    continue
                seen.add(idx)
                # The answer test is a string comparison for short answers: cheap, and it rejects most template
                # look-alikes before the Jaccard computation.
                if not answers_agree(entry.answer, self._answers[idx], self.threshold):
                    continue
                similarity = jaccard(entry.shingles, self._shingles[idx])
                if similarity >= self.threshold:
                    return "near", idx, similarity
        return None

    def add(self, entry: Entry) -> int:
        idx = len(self._shingles)
        self._shingles.append(entry.shingles)
        self._answers.append(entry.answer)
        self._exact.setdefault(entry.key, idx)
        for band, bucket_key in zip(self._buckets, entry.band_keys):
            band[bucket_key].append(idx)
        return idx


def deduplicate(examples: list[tuple[str, str]], threshold: float = 0.8) -> tuple[list[int], list[dict]]:
    """(whole text, answer) pairs -> indices to keep (first of each group) and one record per removed row."""
    index = DuplicateIndex(threshold=threshold)
    kept: list[int] = []
    removed = []
    for i, (text, answer) in enumerate(examples):
        entry = index.entry(text, answer)
        hit = index.find(entry)
        if hit:
            kind, kept_pos, similarity = hit
            removed.append({"row": i, "kind": kind, "duplicate_of": kept[kept_pos], "similarity": round(similarity, 3)})
        else:
            index.add(entry)
            kept.append(i)
    return kept, removed


def ngrams(text: str, n: int) -> set[int]:
    """Hashed word n-grams of each line (turn) separately: an n-gram never spans two turns."""
    grams = set()
    for line in text.split("\n"):
        words = normalize(line).split()
        grams.update(stable_hash(" ".join(words[i:i + n])) for i in range(len(words) - n + 1))
    return grams


def decontaminate(train: list[tuple[str, str]], protected: list[tuple[str, str]], n: int = 13, threshold: float = 0.8,
                  template_share: float = 0.1) -> list[dict]:
    """Training rows that overlap a protected (eval/holdout) row: exact, near-duplicate, or a shared n-gram.

    N-grams found in more than `template_share` of the protected rows (and at least 3 of them) are template text,
    not content, and do not count. Each record names the protected row it matched.
    """
    index = DuplicateIndex(threshold=threshold)
    owner: dict[int, int] = {}
    frequency: dict[int, int] = defaultdict(int)
    for j, (text, answer) in enumerate(protected):
        index.add(index.entry(text, answer))
        for gram in ngrams(text, n):
            owner.setdefault(gram, j)
            frequency[gram] += 1
    limit = max(3, template_share * len(protected))
    hits = []
    for i, (text, answer) in enumerate(train):
        found = index.find(index.entry(text, answer))
        if found:
            kind, j, similarity = found
            hits.append({"row": i, "kind": kind, "matched": j, "similarity": round(similarity, 3)})
            continue
        shared = next((owner[g] for g in ngrams(text, n) if g in owner and frequency[g] < limit), None)
        if shared is not None:
            hits.append({"row": i, "kind": f"{n}-gram", "matched": shared, "similarity": None})
    return hits
