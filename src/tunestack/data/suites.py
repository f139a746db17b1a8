"""The general-capability suites as data: the generative probes, the self-replay prompt pool and the quartz
two-choice questions from OpenAI's `evals` package. Prepare decontaminates training against them, evaluate scores
them (`tunestack.evaluate.retention`), and the fingerprint of an evaluation hashes them.
"""

from __future__ import annotations

import importlib.util
import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tunestack.errors import MissingDependencyError


@dataclass(frozen=True)
class Choice:
    question: str
    options: list[str]
    answer: int
    task: str = "quartz"


def interleave(pools: list[list], n: int) -> list:
    """Up to `n` items taken from each pool in turn (the first of each, then the second, ...), so every pool has an
    equal share until a small one runs out; a smaller `n` gives a prefix of the same list.

    >>> interleave([[1, 2, 3], ["a"], [10, 20]], 5)
    [1, 'a', 10, 2, 20]
    """
    out: list = []
    depth = 0
    while len(out) < n and any(depth < len(p) for p in pools):
        out += [pool[depth] for pool in pools if depth < len(pool)][: n - len(out)]
        depth += 1
    return out


def load_probes(spec: str, limit: int | None = None) -> list[dict]:
    if spec == "builtin":
        text = resources.files("tunestack.resources").joinpath("probes.jsonl").read_text(encoding="utf-8")
    else:
        text = Path(spec).read_text(encoding="utf-8")
    probes = [json.loads(line) for line in text.splitlines() if line.strip()]
    return probes[:limit] if limit else probes


def load_replay_prompts() -> list[dict]:
    text = resources.files("tunestack.resources").joinpath("replay_prompts.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def registry_data() -> Path:
    """The data folder of the `evals` package's registry (found without importing the package)."""
    spec = importlib.util.find_spec("evals")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("evals", "train")
    path = Path(list(spec.submodule_search_locations)[0]) / "registry" / "data"
    if not (path / "quartz" / "samples.jsonl").exists():
        raise MissingDependencyError("evals (with its registry data)", "train")
    return path


def quartz_path() -> Path:
    return registry_data() / "quartz" / "samples.jsonl"


def parse_quartz(row: dict) -> Choice:
    """quartz rows hold 'question\\n\\n A: x\\n B: y' and the letter of the right option."""
    text = row["input"][-1]["content"]
    question, _, block = text.partition("\n\n")
    options = [line.strip()[2:].strip() for line in block.splitlines() if line.strip()[:2] in ("A:", "B:")]
    return Choice(question=question.strip(), options=options, answer="AB".index(row["ideal"].strip()))


def load_quartz(n: int, seed: int = 0) -> list[Choice]:
    if n == 0:
        return []
    with quartz_path().open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    random.Random(seed).shuffle(rows)
    return [parse_quartz(row) for row in rows[:n]]
