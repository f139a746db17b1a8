"""Word hashing and n-grams over canonical tokens (`tunestack.data.canon`): stable 64-bit word hashes, the hashed
k-grams of token segments that leak search looks up, and the 3-gram Jaccard similarity that reports show (never used
to decide). Pure: numpy only, no disk. Hashes are stable across processes (blake2b; no builtin `hash`).
"""

from __future__ import annotations

import hashlib
from itertools import chain

import numpy as np

from tunestack.data.canon import example_text, tokens


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: every input bit affects every output bit. uint64 arithmetic wraps, as intended.
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def word_hashes(flat: list[str]) -> np.ndarray:
    """A stable 64-bit hash per word (each distinct word hashed once)."""
    table = {word: stable_hash(word) for word in set(flat)}
    return np.fromiter(map(table.__getitem__, flat), dtype=np.uint64, count=len(flat))


def grams(segments: list[list[str]], k: int,
          whole_if_short: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of the word k-grams of each segment, the segment each belongs to, each one's first word's position in
    the flattened words, and those words' hashes (in order).

    A segment shorter than k words gives one gram of all its words when `whole_if_short`, else none.
    """
    lengths = np.fromiter(map(len, segments), dtype=np.int64, count=len(segments))
    flat = list(chain.from_iterable(segments))
    hashed = word_hashes(flat)
    padded = np.append(hashed, np.uint64(0))  # the zero past the end stands for "no word here"
    counts = np.maximum(lengths - k + 1, 1 if whole_if_short else 0)
    owner = np.repeat(np.arange(len(segments)), counts)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(owner.size) - (np.cumsum(counts) - counts)[owner] + starts[owner]
    end = (starts + lengths)[owner]
    h = np.full(owner.size, k, dtype=np.uint64)
    for j in range(k):
        h = _mix(h ^ padded[np.where(position + j < end, position + j, len(flat))])
    return h, owner, position, hashed


def shingles(text: str, k: int = 3) -> np.ndarray:
    """Sorted unique hashes of the token k-grams of a text (the whole text when shorter than k tokens)."""
    return np.unique(grams([tokens(text)], k, whole_if_short=True)[0])


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter) if (a.size or b.size) else 1.0


def similarity(a: list[dict], b: list[dict]) -> float:
    """Jaccard similarity of two rows' token 3-grams: how alike they look, for reports (never to decide)."""
    return round(jaccard(shingles(example_text(a)), shingles(example_text(b))), 3)
