"""Command `assess`: is fine-tuning worth it? The base model (or any model) on a sample of the task.

    tunestack assess CONFIG [--model PATH|URL|NAME]

Recipe: draw a stratified sample -> answer it greedily with the evaluate stage's prompts, template and decoding ->
score it with the evaluate stage's metrics (accuracy with a Wilson 95% interval) -> sort each failure into one primary
category -> answer up to `assess.consistency_examples` failures k more times with sampling, to see which failures
repeat -> the verdict, its reasons and a suggested training-set size -> `assess/outputs.jsonl`, `assess.json`,
`assess.md`, then the manifest last.

Without `--model` the config's base model runs locally (or on vLLM with `evaluate.backend: vllm`); `--model` takes a
model or checkpoint folder, an OpenAI-compatible endpoint URL, or with `evaluate.backend: openai` a model name at
`evaluate.endpoint`, exactly as `tunestack evaluate --model` does.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from tunestack.assess import report
from tunestack.assess.categories import Failure, categorise, is_correct
from tunestack.assess.sample import Sample, draw_sample
from tunestack.assess.spread import reward_spread
from tunestack.assess.verdict import Examined, consistency, decide, recurring_patterns, systematic_share, \
    training_set_size
from tunestack.config import Config
from tunestack.errors import StageError
from tunestack.evaluate import scoring
from tunestack.evaluate.backends import Generation, Generator, Sampling
from tunestack.evaluate.metrics import mean, wilson_interval
from tunestack.evaluate.registry import TaskScorer
from tunestack.rundir import RunDir, content_hash, git_revision, write_json, write_jsonl, write_text
from tunestack.tools import answer_text, message_text, scored_answer

log = logging.getLogger("tunestack")
DEFAULT_SIZE_B = 7.0


@dataclass
class Subject:
    """The model being assessed, as a generator, with what the report says about it."""

    generator: Generator
    name: str
    source: str
    kind: str
    """`base`, `folder`, `checkpoint` or `endpoint`."""
    size_b: float | None
    """Parameters in billions, counted for a local model; None for an endpoint."""


def run_assess(cfg: Config, run: RunDir, model: str | None = None) -> dict:
    """Assess `model` (default: the config's base model) and write `<run>/assess/`; returns the JSON body."""
    started = time.time()
    scorer = load_scorer(cfg)
    sample = draw_sample(cfg, run)
    prompts = [row.messages[:-1] for row in sample.rows]
    turns = [row.messages[-1] for row in sample.rows]
    references = [answer_text(turn) for turn in turns]
    folder = run.stage("assess")
    run.invalidate("assess")  # the manifest comes back last, once every file is rewritten
    with open_subject(cfg, model, folder / ".vllm") as subject:
        log.info("[assess] %s: %d examples, greedy", subject.name, len(prompts))
        greedy = as_scored(subject.generator.generate(prompts, cfg.evaluate.max_new_tokens, desc="assess"), turns)
        failures = [grade(cfg, scorer, g, ref) for g, ref in zip(greedy, references)]
        picked = pick_failures(failures, cfg.assess.consistency_examples, cfg.run.seed)
        samples = sample_failures(cfg, scorer, subject.generator, [prompts[i] for i in picked],
                                  [turns[i] for i in picked])
        spread = reward_spread(cfg, subject.generator, [row.messages for row in sample.rows], scorer.format_check) \
            if cfg.train.method == "grpo" else None
        usage = subject.generator.client.summary() if subject.kind == "endpoint" else None  # type: ignore[attr-defined]
    examined = [Examined(failures[i], [f.signature if f else None for _, f in row]) for i, row in zip(picked, samples)]
    body = build_body(cfg, subject, sample, scorer.score([g.text for g in greedy], references), greedy, failures,
                      examined)
    body.update(usage=usage, seconds=round(time.time() - started, 2), reward_spread=spread)
    classes = dict(zip(picked, body["consistency"].pop("classes")))  # per example: in outputs.jsonl
    write_jsonl(folder / "outputs.jsonl", output_records(sample, greedy, failures, dict(zip(picked, samples)), classes))
    write_json(folder / "assess.json", body)
    write_text(folder / "assess.md", report.markdown(body))
    key = content_hash({"assess": cfg.assess.model_dump(mode="json"), "evaluate": cfg.evaluate.model_dump(mode="json"),
                        "grpo": cfg.train.grpo.model_dump(mode="json") if spread else None,
                        "model": cfg.model.name, "subject": model, "rows": [r.messages for r in sample.rows]})
    run.finish("assess", key, {"files": ["assess.json", "assess.md", "outputs.jsonl"], "model": subject.name,
                               "verdict": body["verdict"], "accuracy": body["accuracy"]}, started)
    return body


def load_scorer(cfg: Config) -> TaskScorer:
    """The evaluate stage's metrics and format check; the headline must score answers as right or not."""
    scorer = scoring.load_scorer(cfg)
    if not scorer.metrics[0].higher_is_better:
        raise StageError(f"assess counts an answer right when the headline metric (evaluate.metrics[0], "
                         f"'{scorer.metrics[0].key}') scores it 1, so it must be higher-is-better: put a metric such "
                         "as exact_match first")
    return scorer


def grade(cfg: Config, scorer: TaskScorer, answer: Generation, reference: str) -> Failure | None:
    """None when the headline metric scores the answer right, else its failure."""
    if is_correct(scorer.metrics[0](answer.text, reference)):
        return None
    return categorise(answer.text, reference, answer.ended_with_eos, scorer.format_check(answer.text),
                      cfg.assess.refusal_phrases, cfg.assess.synonyms)


def pick_failures(failures: list[Failure | None], limit: int, seed: int) -> list[int]:
    """Up to `limit` failing examples, spread over the failures (seeded), in sample order."""
    failing = [i for i, f in enumerate(failures) if f is not None]
    return sorted(random.Random(seed).sample(failing, min(limit, len(failing))))


def as_scored(answers: list[Generation], turns: list[dict]) -> list[Generation]:
    """Each answer as it is scored against its reference turn (a call answer: the calls it makes, canonically)."""
    return [replace(g, text=scored_answer(g.text, turn)) for g, turn in zip(answers, turns)]


def sample_failures(cfg: Config, scorer: TaskScorer, generator: Generator, prompts: list, turns: list[dict],
                    ) -> list[list[tuple[str, Failure | None]]]:
    """Each prompt answered `assess.samples` times with sampling (one seed per round): per prompt, each sampled
    answer's text and failure against its reference turn."""
    a = cfg.assess
    references = [answer_text(turn) for turn in turns]
    rounds = []
    for j in range(a.samples if prompts else 0):
        sampling = Sampling(temperature=a.temperature, top_p=a.top_p, seed=cfg.run.seed + 1 + j)
        answers = as_scored(generator.generate(prompts, cfg.evaluate.max_new_tokens,
                                               desc=f"assess sample {j + 1}/{a.samples}", sampling=sampling), turns)
        rounds.append([(g.text, grade(cfg, scorer, g, ref)) for g, ref in zip(answers, references)])
    return [list(per_prompt) for per_prompt in zip(*rounds)] if rounds else []


def build_body(cfg: Config, subject: Subject, sample: Sample, scores: dict, greedy: list[Generation],
               failures: list[Failure | None], examined: list[Examined]) -> dict:
    """Everything `assess.json` holds, verdict included."""
    wrong = [f for f in failures if f is not None]
    correct = len(failures) - len(wrong)
    interval = list(wilson_interval(correct, len(failures)))
    accuracy = correct / len(failures)
    recurring = recurring_patterns(wrong, cfg.assess.min_pattern_share) if wrong else {}
    figures = consistency(examined, recurring, cfg.assess)
    verdict, reasons = decide(accuracy, interval, wrong, recurring, figures, cfg.assess)
    size_b = cfg.assess.model_size_b or subject.size_b
    share, _ = systematic_share(wrong, recurring, figures)
    return {
        "schema_version": 1, "run": cfg.run.name, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "git_revision": git_revision(), "seed": cfg.run.seed,
        "model": {"name": subject.name, "source": subject.source, "kind": subject.kind,
                  "backend": subject.generator.name, "size_b": size_b},
        "sample": {"n": len(sample.rows), "available": sample.available, "from": sample.origin,
                   "stratify_by": cfg.data.stratify_by, "strata": sample.strata},
        "decoding": {"greedy": True, "max_new_tokens": cfg.evaluate.max_new_tokens},
        "accuracy": accuracy, "accuracy_ci95": interval, "correct": correct,
        "metrics": {k: scores[k] for k in ("metrics", "metrics_ci95", "per_field_accuracy", "format_compliance")},
        "eos_rate": mean(g.ended_with_eos for g in greedy),
        "failures": failure_figures(wrong, recurring),
        "consistency": figures, "verdict": verdict, "reasons": reasons,
        "training_set": training_set_size(verdict, share, size_b or DEFAULT_SIZE_B, size_b is None),
        "settings": cfg.assess.model_dump(mode="json"),
    }


def failure_figures(wrong: list[Failure], recurring: dict[str, int]) -> dict:
    """Counts and shares by category, by label (each wrong field on its own), by pattern, and per field."""
    n = len(wrong)
    by_category = Counter(f.category for f in wrong)
    by_label = Counter(f.label for f in wrong)
    category_of = {f.label: f.category for f in wrong}
    fields: dict[str, Counter] = {}
    for f in wrong:
        for name, kind in f.fields.items():
            fields.setdefault(name, Counter())["content" if kind == "content" else "vocabulary"] += 1
    return {
        "n": n,
        "by_category": {c: {"count": k, "share": k / n} for c, k in by_category.most_common()},
        "by_label": {label: {"category": category_of[label], "count": k, "share": k / n}
                     for label, k in by_label.most_common()},
        "patterns": [{"pattern": p, "count": k, "share": k / n, "recurring": p in recurring}
                     for p, k in Counter(f.pattern for f in wrong).most_common(20)],
        "distinct_patterns": len({f.pattern for f in wrong}),
        "field_errors": {name: {"content": c["content"], "vocabulary": c["vocabulary"]}
                         for name, c in sorted(fields.items())},
    }


def output_records(sample: Sample, greedy: list[Generation], failures: list[Failure | None],
                   samples: dict[int, list], classes: dict[int, str]) -> list[dict]:
    """One line per example: the prompt, the reference, the greedy answer and its failure; for examined failures,
    each sample's failure and the class."""
    records = []
    for i, (row, answer, failure) in enumerate(zip(sample.rows, greedy, failures)):
        record = {"index": i, "file": row.file, "line": row.line, "prompt": message_text(row.messages[-2]),
                  "reference": answer_text(row.messages[-1]), "prediction": answer.text,
                  "ended_with_eos": answer.ended_with_eos, "correct": failure is None,
                  "failure": failure.label if failure else None, "pattern": failure.pattern if failure else None}
        if i in samples:
            record["samples"] = [{"answer": text, "failure": f.label if f else None} for text, f in samples[i]]
            record["class"] = classes[i]
        records.append(record)
    return records


@contextmanager
def open_subject(cfg: Config, model: str | None, workdir: Path):
    """The model to assess as a generator, closed (and any vLLM folder removed) afterwards."""
    subject = _endpoint_subject(cfg, model) if model else None
    if subject is None:
        subject = _local_subject(cfg, model, workdir)
    try:
        yield subject
    finally:
        subject.generator.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _endpoint_subject(cfg: Config, model: str) -> Subject | None:
    from tunestack.evaluate.standalone import Models, endpoint_generator, resolve_target

    target = resolve_target(cfg, model)
    if target.kind != "endpoint":
        return None
    generator, target = endpoint_generator(cfg, target, Models(cfg))
    return Subject(generator, target.name or model, model, "endpoint", None)


def _local_subject(cfg: Config, model: str | None, workdir: Path) -> Subject:
    """The base model, a model folder, or a checkpoint merged into the base, on the configured local backend."""

    import torch

    from tunestack.evaluate.core import folder_generator
    from tunestack.evaluate.standalone import model_name, resolve_target
    from tunestack.models import cpu_threads, load_base, load_model, resolve_model, stage_dtype
    from tunestack.models.merge import merge_into

    torch.set_num_threads(cpu_threads(cfg))
    target = resolve_target(cfg, model) if model else None
    dtype = stage_dtype(cfg, "evaluate")  # loaded once, in the evaluation dtype
    if target is not None and target.kind == "checkpoint":
        base, tokenizer = load_base(cfg.model, dtype=dtype)
        loaded, kind = merge_into(base, target.source), "checkpoint"
    else:
        loaded, tokenizer = load_model(resolve_model(model), dtype) if model else load_base(cfg.model, dtype=dtype)
        kind = "folder" if model else "base"
    size_b = sum(p.numel() for p in loaded.parameters()) / 1e9
    generator = folder_generator(cfg, loaded, tokenizer, workdir)
    name = target.name if target is not None and target.name else model_name(model or cfg.model.name)
    return Subject(generator, name, model or cfg.model.name, kind, size_b)
