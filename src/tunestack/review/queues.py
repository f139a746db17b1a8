"""What the two queues hold, read from the run directory. Pure but for reading files.

- `candidates`: the rows `tunestack synth` wrote (`review.candidates_path`, else `<run>/synth/candidates.jsonl`),
  keyed by their `id`.
- `answers`: for each evaluated model (`<run>/evaluate/<name>.outputs.jsonl`), its answers to the same
  `review.answers_per_model` eval prompts (drawn with `run.seed`), shuffled across models so the rater cannot tell
  which model wrote an answer. Keyed by `<model>:<line>`; the model's name is in the payload, for the export only.

An output record joins its prompt by position (evaluate writes one record per eval row, in order) and the `line`
both carry is checked, so a stale outputs file is refused rather than paired with the wrong prompts.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tunestack.errors import DataError
from tunestack.tools import message_text


def read_jsonl_objects(path: Path) -> list[dict]:
    """Every line of a JSONL file as an object; all bad lines are reported at once as file:line."""
    rows, problems = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            continue
        rows.append(obj)
    if problems:
        raise DataError(f"{len(problems)} bad line(s):\n  " + "\n  ".join(problems[:20]))
    return rows


def candidates_path(review_path: str | None, run_root: Path) -> Path:
    return Path(review_path) if review_path else Path(run_root) / "synth" / "candidates.jsonl"


def candidate_entries(path: Path) -> list[tuple[str, dict]]:
    """`(id, row)` for each candidate; a row without an id or messages is refused with its line."""
    entries, problems = [], []
    for number, row in enumerate(read_jsonl_objects(path), 1):
        if not isinstance(row.get("id"), str) or not row["id"] or not isinstance(row.get("messages"), list):
            problems.append(f"{path}: row {number}: a candidate needs a string 'id' and a 'messages' list "
                            "(the rows `tunestack synth` writes)")
            continue
        entries.append((row["id"], row))
    if problems:
        raise DataError("\n".join(problems[:20]))
    return entries


def prompt_text(messages: list[dict]) -> str:
    """The prompt of a conversation as one string, for the rater and the judge: a lone user turn as it is, more
    turns each headed by its role.

    >>> prompt_text([{"role": "user", "content": "Hi"}])
    'Hi'
    >>> prompt_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    'System: Be brief.\\n\\nUser: Hi'
    """
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {message_text(m)}" for m in messages)  # calls as name(args)


def model_outputs(run_root: Path) -> dict[str, Path]:
    """Each evaluated model's outputs file by model name (`base`, `step-NNNNNN`), sorted by name."""
    folder = Path(run_root) / "evaluate"
    return {p.name.removesuffix(".outputs.jsonl"): p for p in sorted(folder.glob("*.outputs.jsonl"))}


def answer_entries(run_root: Path, per_model: int, seed: int) -> list[tuple[str, dict]]:
    """`(model:line, {model, line, prompt, reference, answer})`: the same sampled prompts for every model (so the
    ratings compare models on equal terms), the whole list shuffled with the seed."""
    outputs = model_outputs(run_root)
    eval_path = Path(run_root) / "prepare" / "eval.jsonl"
    if per_model == 0 or not outputs or not eval_path.exists():
        return []
    prompts = read_jsonl_objects(eval_path)
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(len(prompts)), min(per_model, len(prompts))))
    entries = []
    for model, path in outputs.items():
        records = read_jsonl_objects(path)
        for index in picked:
            if index >= len(records) or records[index].get("line") != prompts[index].get("line"):
                raise DataError(f"{path}: record {index + 1} does not answer eval row {index + 1} of {eval_path} "
                                "(its line differs): the outputs are stale; run `tunestack evaluate` again")
            record, messages = records[index], prompts[index]["messages"]
            entries.append((f"{model}:{record['line']}", {
                "model": model, "line": record["line"], "prompt": prompt_text(messages[:-1]),
                "messages": messages[:-1], "reference": record.get("reference"), "answer": record["prediction"]}))
    rng.shuffle(entries)
    return entries
