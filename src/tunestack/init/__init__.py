"""`tunestack init`: a first config from the files a fine-tuning API trained on.

Reads the training file (and the validation file) with prepare's own reader, says what it found (format, rows, tool
rows, multi-turn rows, weight-0 turns, rejects), and writes a commented YAML config that `tunestack validate`
accepts: the validation file as the eval split (`data.eval_path`), else eval and holdout sizes from the row count;
the answers' format check (a JSON Schema inferred from JSON answers, written beside the config); a base model that
fits the machine; the old model as a reference. The inferences are pure functions of rows and numbers; reading the
files, probing the GPU and writing are at the edges (`run_init`, `gpu_memory`).

The package: `summary` (what the files hold, and the sizes from it), `schema` (the answers' JSON Schema), `model`
(the base model for this machine) and `render` (the commented YAML); this module reads, infers and writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tunestack.config.data import DataSection
from tunestack.data.formats import Reject, Row
from tunestack.errors import DataError, TunestackError
from tunestack.init.model import ModelChoice, gpu_memory, pick_model
from tunestack.init.render import Plan, render_config, slug
from tunestack.init.schema import infer_schema, schema_summary
from tunestack.init.summary import ANSWER_WORDS, DataSummary, plural, propose_splits, summarize

__all__ = ["DataSummary", "InitOptions", "ModelChoice", "Plan", "gpu_memory", "infer_schema", "pick_model", "plural",
           "propose_splits", "render_config", "report_lines", "run_init", "summarize"]

OPENAI_URL = "https://api.openai.com/v1"


@dataclass
class InitOptions:
    train: Path
    validation: Path | None = None
    reference: str | None = None
    reference_model: str | None = None
    model: str | None = None
    output: Path = Path("tunestack.yaml")
    name: str | None = None
    force: bool = False


def run_init(opts: InitOptions) -> tuple[Plan, list[str]]:
    """Read, infer, write the config (and the schema beside it); returns the plan and the lines to print."""
    from tunestack.config import parse_config
    from tunestack.data.readers import read_source

    if opts.reference and not opts.reference_model:
        raise TunestackError("--reference needs --reference-model: the model's name at that endpoint (your "
                             "fine-tuned model's id, e.g. ft:gpt-4o-mini-2024-07-18:org::abc123)")
    train = summarize(str(opts.train), *_read(read_source, opts.train))
    validation = None
    if opts.validation:
        validation = summarize(str(opts.validation), *_read(read_source, opts.validation))
        if validation.format != train.format:
            raise DataError(f"{opts.validation}: {validation.format} rows, but {opts.train} holds {train.format} "
                            "rows: the validation file must be in the training file's format")
    schema_file = opts.output.with_name(f"{opts.output.stem}.schema.json")
    targets = [opts.output, schema_file]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not opts.force:
        raise TunestackError(f"{', '.join(existing)} already exists: pass --force to overwrite, or --output "
                             "another file")
    model = _config_path(Path(opts.model)) if opts.model and Path(opts.model).expanduser().is_dir() else opts.model
    choice = pick_model(None if model else gpu_memory(), train.format == "preference", model)
    plan = Plan(opts.name or slug(opts.train.stem, "run").lower(), train, validation,
                _config_path(opts.train), _config_path(opts.validation) if opts.validation else None, choice,
                reference=(opts.reference or OPENAI_URL, opts.reference_model) if opts.reference_model else None)
    if plan.answer == "json":
        plan.schema = infer_schema(train.json_answers + (validation.json_answers if validation else []))
        plan.schema_path = _config_path(schema_file)
    text = render_config(plan)
    parse_config(text, [], source=str(opts.output))  # what `tunestack validate` checks (a bad --name, say)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    if plan.schema:
        schema_file.write_text(json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema",
                                           **plan.schema}, indent=2) + "\n", encoding="utf-8")
    opts.output.write_text(text, encoding="utf-8")
    return plan, report_lines(plan, opts.output)


def _read(read_source, path: Path) -> tuple[list[Row], list[Reject]]:
    if not path.exists():
        raise DataError(f"{path} does not exist: give the training (or validation) file you fine-tuned on")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty: no rows to read")
    return read_source(path)


def _config_path(path: Path) -> str:
    """A path as the config should hold it: relative to the working folder when inside it (tunestack reads config
    paths from the folder it runs in), else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def report_lines(plan: Plan, output: Path) -> list[str]:
    """What init found and wrote, in a few lines."""
    out = plan.train.lines("train")
    if plan.validation:
        out += plan.validation.lines("validation")
        out.append("  -> the eval set (data.eval_path); the holdout is split from the training rows")
    data = DataSection.model_fields
    for summary in (plan.train, plan.validation):
        share = len(summary.rejects) / (summary.rows + len(summary.rejects)) if summary else 0
        if share > data["max_reject_rate"].default:
            out.append(f"warning: {share:.0%} of {summary.path}'s rows are rejected; prepare stops above "
                       f"{data['max_reject_rate'].default:.0%} (data.max_reject_rate): fix them, or raise it")
    left = plan.train.rows - sum(propose_splits(plan.train.rows, plan.validation is not None))
    if left < data["min_train_rows"].default:
        out.append(f"warning: {left} rows are left to train on after the eval and holdout splits; prepare stops "
                   f"below data.min_train_rows ({data['min_train_rows'].default})")
    if plan.answer == "json":
        out.append(f"answers: JSON objects -> JSON Schema {plan.schema_path} ({schema_summary(plan.schema or {})})")
    else:
        out.append(f"answers: {ANSWER_WORDS[plan.answer]} -> no JSON Schema (evaluate.format: none)")
    out.append(f"model: {plan.model.name} ({plan.model.method}): {plan.model.reason}")
    if plan.reference:
        out.append(f"reference: {plan.reference[1]} at {plan.reference[0]} (evaluate.references)")
    out.append(f"wrote {output}; next: tunestack validate {output} && tunestack run {output}")
    return out
