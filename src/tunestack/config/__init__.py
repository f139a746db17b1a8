"""The one YAML config that drives a run: a pydantic v2 model with one section per stage.

Pure: no torch, no disk access beyond reading the YAML text you hand it. Every problem in a config is reported at
once with its YAML path (and line, where known), and an unknown key gets the nearest valid one as a suggestion.
The sections live beside this file, one module per stage (`data.py`, `train.py`, `evaluate.py`, ...); the root
model, loading, overrides, error reporting and the generated reference are here.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError, model_validator

from tunestack.config.assess import REFUSAL_PHRASES, AssessSection
from tunestack.config.base import ModelSection, RunSection, Section
from tunestack.config.cost import (CostApiSection, CostEvaluationSection, CostSection, CostServingSection,
                                   CostTrainingSection)
from tunestack.config.data import TIER, DataSection, QualitySection, SourceSection
from tunestack.config.evaluate import (RESERVED_KEYS, EndpointSection, EvaluateSection, FormatSection, MetricSpec,
                                       RetentionSection)
from tunestack.config.export import ExportSection
from tunestack.config.judge import JudgeSection
from tunestack.config.quantize import CalibrationSpec, CandidateSpec, QuantizeSection
from tunestack.config.review import ReviewSection
from tunestack.config.select import SelectSection
from tunestack.config.serve import ServeSection
from tunestack.config.sweep import SweepSection, space_problems
from tunestack.config.synth import SynthSection
from tunestack.config.train import DistributedSection, DpoSection, GeneralMixSection, GrpoSection, LoraSection, \
    RewardSpec, TrainSection
from tunestack.errors import ConfigError

__all__ = [
    "Section",
    "RunSection",
    "ModelSection",
    "TIER",
    "SourceSection",
    "QualitySection",
    "DataSection",
    "GeneralMixSection",
    "LoraSection",
    "DpoSection",
    "GrpoSection",
    "RewardSpec",
    "DistributedSection",
    "TrainSection",
    "FormatSection",
    "RetentionSection",
    "EndpointSection",
    "RESERVED_KEYS",
    "MetricSpec",
    "EvaluateSection",
    "SelectSection",
    "ExportSection",
    "CandidateSpec",
    "CalibrationSpec",
    "QuantizeSection",
    "ServeSection",
    "SynthSection",
    "SweepSection",
    "ReviewSection",
    "JudgeSection",
    "CostTrainingSection",
    "CostEvaluationSection",
    "CostServingSection",
    "CostApiSection",
    "CostSection",
    "REFUSAL_PHRASES",
    "AssessSection",
    "Config",
    "load_config",
    "parse_config",
    "parse_overrides",
    "apply_overrides",
    "config_to_yaml",
    "json_schema",
    "reference_markdown",
    "write_reference",
    "describe_errors",
]


class Config(Section):
    """A tunestack run: one section per stage."""

    run: RunSection = RunSection()
    """Run name, seed, where artifacts go."""
    model: ModelSection = ModelSection()
    """The base model."""
    data: DataSection
    """Input data and splits (stage `prepare`)."""
    assess: AssessSection = AssessSection()
    """Whether fine-tuning is worth it: the base model (or any model) on a sample of the task, its failures sorted
    and checked for repeats, and a verdict (command `assess`)."""
    train: TrainSection = TrainSection()
    """Fine-tuning (stage `train`)."""
    evaluate: EvaluateSection = EvaluateSection()
    """Evaluation of the base model and every checkpoint (stage `evaluate`)."""
    select: SelectSection = SelectSection()
    """Checkpoint selection (stage `select`)."""
    export: ExportSection = ExportSection()
    """Merged model export (stage `export`)."""
    quantize: QuantizeSection = QuantizeSection()
    """Quantization of the export through llm-compressor, each candidate evaluated and gated (stage `quantize`)."""
    serve: ServeSection = ServeSection()
    """The chosen model behind an OpenAI-compatible server (command `serve`)."""
    judge: JudgeSection = JudgeSection()
    """LLM-as-judge on an OpenAI-compatible endpoint, and its calibration against human scores (`judge calibrate`)."""
    cost: CostSection = CostSection()
    """Cost of training, evaluation and serving against the API being replaced (command `cost`)."""
    synth: SynthSection = SynthSection()
    """Candidate training rows from a teacher model, validated, deduplicated and decontaminated (command `synth`)."""
    review: ReviewSection = ReviewSection()
    """The local review web app: candidates accepted, edited or rejected, model answers rated (command `review`)."""
    sweep: SweepSection = SweepSection()
    """Experiments over data composition and training settings on Optuna, decided on a dev split; the finalists
    alone meet the eval set and the winner alone the holdout (command `sweep`)."""

    @model_validator(mode="after")
    def _sweep_space_applies(self) -> Config:
        problems = space_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _rewards_can_score(self) -> Config:
        if self.train.method != "grpo":
            return self
        problems = []
        for i, spec in enumerate(self.train.grpo.rewards):
            if spec.metric == "format" and self.evaluate.format.type == "none":
                problems.append(f"train.grpo.rewards.{i}: reward 'format' with evaluate.format.type none scores every "
                                "answer 1 and teaches nothing: set evaluate.format, or drop this reward")
            if spec.metric == "judge" and not self.judge.model:
                problems.append(f"train.grpo.rewards.{i}: reward 'judge' needs a judge: set judge.model (and "
                                "judge.base_url) to the judge served at an OpenAI-compatible endpoint")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _weights_name_metrics(self) -> Config:
        if "weights" not in self.select.model_fields_set:
            return self
        known = ["task_accuracy", *(spec.result_key for spec in self.evaluate.metrics), "format_compliance",
                 "general_retention"]
        problems = []
        for key in self.select.weights:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                problems.append(f"select.weights.{key} is not a measured metric.{hint} Known: {', '.join(known)} "
                                "(the judge has select.judge_weight)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# ---------------------------------------------------------------------------------------------------------------
# Loading, overrides and error reporting


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """Parse `a.b.c=value` strings; values are read as YAML scalars/lists.

    >>> parse_overrides(["train.learning_rate=1e-4", "run.name=x"])
    [(['train', 'learning_rate'], 0.0001), (['run', 'name'], 'x')]
    """
    parsed, problems = [], []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(("", f"override '{item}' is not of the form section.key=value"))
            continue
        value = yaml.safe_load(raw) if raw.strip() else ""
        if isinstance(value, str) and _looks_like_float(value):
            value = float(value)  # YAML 1.1 reads '1e-4' as a string
        parsed.append((key.split("."), value))
    if problems:
        raise ConfigError(problems)
    return parsed


def _looks_like_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return any(c in text.lower() for c in ".e") and text.lower() not in {"nan", "inf", "-inf"}


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for path, value in parse_overrides(overrides):
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, override and validate a YAML config; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read config file: {exc.strerror}")], source=str(path)) from None
    return parse_config(text, overrides or [], source=str(path))


def parse_config(text: str, overrides: list[str], source: str = "<config>") -> Config:
    try:
        raw = yaml.safe_load(text) or {}
        lines = _line_index(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise ConfigError([(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")], source=source) from None
    if not isinstance(raw, dict):
        raise ConfigError([("", "the top level must be a mapping of sections (run, model, data, ...)")], source)
    raw = apply_overrides(raw, overrides)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, lines), source=source) from None


def describe_errors(exc: ValidationError, lines: dict[tuple, int] | None = None) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        path = ".".join(loc)
        line = (lines or {}).get(loc)
        where = f"{path} (line {line})" if line else path
        problems.append((where, _message(err, loc)))
    return problems


def _message(err: dict, loc: tuple[str, ...]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"unknown key '{loc[-1]}'.{hint} Valid keys here: {', '.join(valid)}"
    if kind == "missing":
        return "required, but not set"
    if kind in {"literal_error", "enum"}:
        allowed = err.get("ctx", {}).get("expected", "")
        close = difflib.get_close_matches(str(err.get("input")), _literal_options(allowed), n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"got {err.get('input')!r}, expected {allowed}.{hint}"
    message = err["msg"].removeprefix("Value error, ")
    if "input" in err and kind != "value_error" and not isinstance(err["input"], dict):
        message += f" (got {err['input']!r})"
    return message


def _literal_options(expected: str) -> list[str]:
    return [part.strip(" '\"") for part in expected.replace(" or ", ",").split(",") if part.strip()]


def _fields_at(loc: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _line_index(text: str) -> dict[tuple, int]:
    """Map each YAML key path to its 1-based line number."""
    index: dict[tuple, int] = {}

    def walk(node, prefix):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = (*prefix, str(key.value))
                index[path] = key.start_mark.line + 1
                walk(value, path)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index[(*prefix, str(i))] = item.start_mark.line + 1
                walk(item, (*prefix, str(i)))

    walk(yaml.compose(text), ())
    return index


def config_to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def json_schema() -> str:
    return json.dumps(Config.model_json_schema(), indent=2)


def reference_markdown() -> str:
    """The config reference (docs/config.md), generated from the schema (field, type, default, description)."""
    out = []

    def section(model: type[BaseModel], prefix: str):
        rows = []
        nested = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((f"{prefix}{name}", annotation, field.description))
                continue
            item = _list_item_model(annotation)
            if item is not None:  # a list of sections: documented once, as `name[]`
                nested.append((f"{prefix}{name}[]", item, field.description))
            default = "required" if field.is_required() else f"`{json.dumps(field.default)}`"
            kind = _type_name(annotation)
            doc = (field.description or "").replace("\n", " ")
            rows.append(f"| `{prefix}{name}` | {kind} | {default} | {doc} |")
        if rows:
            out.append(f"\n### `{prefix.rstrip('.') or 'root'}`\n")
            out.append("| key | type | default | meaning |\n|---|---|---|---|")
            out.extend(rows)
        for path, sub, _ in nested:
            section(sub, path + ".")

    section(Config, "")
    return "\n".join(out).lstrip() + "\n"


REFERENCE_START, REFERENCE_END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def write_reference(path: Path) -> None:
    """Replace the text between the reference markers in a markdown file with the current reference."""
    text = Path(path).read_text(encoding="utf-8")
    if REFERENCE_START not in text or REFERENCE_END not in text:
        raise ConfigError([("", f"{path} has no {REFERENCE_START} ... {REFERENCE_END} markers")])
    head, rest = text.split(REFERENCE_START, 1)
    _, tail = rest.split(REFERENCE_END, 1)
    Path(path).write_text(f"{head}{REFERENCE_START}\n{reference_markdown()}{REFERENCE_END}{tail}", encoding="utf-8")


def _list_item_model(annotation) -> type[BaseModel] | None:
    """The section a list field holds, also inside a union (`Literal["auto"] | list[CandidateSpec]`)."""
    args = getattr(annotation, "__args__", ())
    if getattr(annotation, "__origin__", None) is list and args and isinstance(args[0], type) \
            and issubclass(args[0], BaseModel):
        return args[0]
    for arg in args if getattr(annotation, "__origin__", None) is not list else ():
        found = _list_item_model(arg)
        if found is not None:
            return found
    return None


def _type_name(annotation) -> str:
    text = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
    text = re.sub(r"tunestack\.config\.(?:\w+\.)?", "", text).replace("datetime.date", "date (YYYY-MM-DD)")
    return text.replace("|", "\\|")
