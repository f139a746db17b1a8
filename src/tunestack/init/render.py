"""The commented YAML config init writes: a `Plan` (everything inferred) rendered section by section, with a comment
above each section saying what it is for and above each inferred value saying from what. Pure: a plan in, text out.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import textwrap
from collections import Counter
from dataclasses import dataclass, field

from tunestack.init.model import CPU_SIZE_B, ModelChoice
from tunestack.init.schema import schema_summary, stratify_key
from tunestack.init.summary import CHARS_PER_TOKEN, DataSummary, lengths, plural, propose_splits

@dataclass
class Plan:
    """Everything the config is written from."""

    name: str
    train: DataSummary
    validation: DataSummary | None
    data_path: str
    eval_path: str | None
    model: ModelChoice
    schema_path: str | None = None
    schema: dict | None = None
    reference: tuple[str, str] | None = None
    """(base_url, model) of the model being replaced."""
    created: str = field(default_factory=lambda: dt.date.today().isoformat())

    @property
    def answer(self) -> str:
        """`json` when every final answer is a JSON object, `tool_calls` when any is a call, else `text`."""
        kinds = self.train.answers + (self.validation.answers if self.validation else Counter())
        if set(kinds) == {"json"}:
            return "json"
        return "tool_calls" if kinds["tool_calls"] else "text"


def slug(text: str, fallback: str = "reference") -> str:
    """A name for the results table or the run: an API model id (`ft:gpt-4o-mini-2024-07-18:org::abc`) has colons.

    >>> slug("ft:gpt-4o-mini-2024-07-18:acme::AbC12"), slug("::")
    ('ft-gpt-4o-mini-2024-07-18-acme-AbC12', 'reference')
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")
    return name if name and name != "base" else fallback


def _y(value: object) -> str:
    """A YAML value: JSON is YAML, and quoting every string keeps `yes`, `1e-3` and `ft:...` what they are; a small
    mapping is written in flow style with bare keys.

    >>> _y({"r": 16, "alpha": 32}), _y("ft:x"), _y(True), _y(2e-05)
    ('{r: 16, alpha: 32}', '"ft:x"', 'true', '2.0e-05')
    """
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_y(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and "e" in repr(value) and "." not in repr(value).split("e")[0]:
        mantissa, exponent = repr(value).split("e")
        return f"{mantissa}.0e{exponent}"  # YAML 1.1 (PyYAML) reads 2e-05 as a string, 2.0e-05 as a number
    return json.dumps(value, ensure_ascii=False)


def _note(text: str, indent: int = 0) -> list[str]:
    """A comment, wrapped to the project's 120 columns."""
    pad = " " * indent + "# "
    return textwrap.wrap(text, 120, initial_indent=pad, subsequent_indent=pad, break_on_hyphens=False)


def render_config(plan: Plan) -> str:
    """The commented YAML config: a comment above each section says what it is for, and above each inferred value
    from what it was inferred."""
    t, v, m = plan.train, plan.validation, plan.model
    n_eval, n_holdout = propose_splits(t.rows, v is not None)
    max_length, max_new, row_tokens = lengths([t, v] if v else [t])
    kind = "preference pairs" if t.format == "preference" else "chat rows"
    out = _note(f"Written by `tunestack init` on {plan.created} from {plan.data_path}"
                + (f" and {plan.eval_path}" if plan.eval_path else "") + f": {t.rows} {kind}, {t.tool_rows} with "
                f"tools, {t.multi_turn_rows} multi-turn, {t.weight0_turns} weight-0 turns. Every value is a starting "
                "point inferred from the data and this machine; the comments say from what. Paths are relative to "
                "the folder tunestack runs in (the one init ran in). Next: `tunestack validate` this file, then "
                "`tunestack run` it (docs/moving-off-an-api.md).")
    out += ["run:", f"  name: {_y(plan.name)}", "  seed: 0"]
    out += _note(f"The base model to fine-tune: {m.reason}.")
    out += ["model:", f"  name: {_y(m.name)}"]
    out += _note("The data, read as it is: OpenAI's chat rows (tools, tool calls, weight) and preference rows. "
                 "Prepare validates every row (bad ones go to prepare/rejects.jsonl with file, line and reason), "
                 "removes duplicates, splits off eval and holdout, removes training rows that leak into them, and "
                 "writes the data report.")
    out += ["data:", f"  path: {_y(plan.data_path)}"]
    if plan.eval_path:
        out += _note(f"The API's validation file ({v.rows} rows) is the eval set, as it is.", 2)
        out.append(f"  eval_path: {_y(plan.eval_path)}")
    else:
        out += _note(f"10% of the {t.rows} rows, at least 20 (with 20 rows one answer is 5 points; a small file gives "
                     "at most a fifth) and at most 200 (+-7 points at 200; further rows do more good in training).", 2)
        out.append(f"  eval_size: {n_eval}")
    out += _note("Sealed, read once by `tunestack holdout`: 5% of the rows, at least 10 (a small file gives at most "
                 "a tenth), at most 100"
                 + (", split from the training rows." if plan.eval_path else "."), 2)
    out.append(f"  holdout_size: {n_holdout}")
    out += _note(f"The longest row is about {row_tokens} tokens at {CHARS_PER_TOKEN} characters a token; prepare "
                 "measures every row under the model's chat template and rejects longer ones.", 2)
    out.append(f"  max_length: {max_length}")
    key = stratify_key(plan.schema)
    if key:
        out += _note(f"Uncomment to split eval and holdout in proportion to the answers' {key} values:", 2)
        out.append(f"  # stratify_by: answer.{key}")
    out += _train_lines(plan)
    out += _evaluate_lines(plan, max_new)
    out += _note("Selection never looks at training loss: general retention and format compliance are hard floors, "
                 "then the weighted score, with ties within the bootstrap noise (docs/select.md).")
    out += ["select:", "  min_retention: 0.95"]
    out += _cost_lines(plan)
    return "\n".join(out) + "\n"


def _train_lines(plan: Plan) -> list[str]:
    m, t = plan.model, plan.train
    knobs = dict(m.train)
    out = _note("Fine-tuning through TRL; each checkpoint is evaluated as it is saved.")
    out.append("train:")
    if m.method == "dpo":
        out += _note("From the preference rows: DPO on a LoRA adapter, the reference being the model with the "
                     "adapter off. For SFT -> DPO, set init_from to an SFT run's checkpoint "
                     "(runs/NAME/train/checkpoints/step-NNNNNN).", 2)
        knobs["learning_rate"] = knobs["learning_rate"] / 10
    out.append(f"  method: {m.method}")
    if t.weight0_turns:
        out += _note(f"{plural(t.weight0_turns, 'assistant turn')} with weight 0: context, never a training target.",
                     2)
    batch = knobs.get("micro_batch_size", 1) * knobs.get("grad_accum", 1)
    steps = math.ceil((plan.train.rows - sum(propose_splits(plan.train.rows, plan.validation is not None))) * 2
                      / batch)
    checkpoints = checkpoint_count(steps)
    out += _note(f"About {steps} optimizer steps (2 epochs at {batch} rows a step); {checkpoints} checkpoints, each "
                 "evaluated: about one per 10 steps, 2 to 4.", 2)
    out += ["  epochs: 2", f"  num_checkpoints: {checkpoints}"]
    for name, value in knobs.items():
        if name == "learning_rate" and m.method == "dpo":
            out += _note("A tenth of the SFT preset's: DPO nudges a model that already answers.", 2)
        out.append(f"  {name}: {_y(value)}")
    return out


def checkpoint_count(steps: int) -> int:
    """Checkpoints for a run of `steps` optimizer steps: one per ten steps, at least 2 (a choice), at most 4 (each
    costs an evaluation; closer ones differ by noise).

    >>> [checkpoint_count(n) for n in (5, 30, 200)]
    [2, 3, 4]
    """
    return min(4, max(2, steps // 10))


def _evaluate_lines(plan: Plan, max_new: int) -> list[str]:
    t, v = plan.train, plan.validation
    answer_chars = max(s.longest_answer_chars for s in (t, v) if s)
    out = _note("Evaluation of the base model, every checkpoint and the reference on the eval split: the task "
                "metrics, format compliance and general-capability retention.")
    out.append("evaluate:")
    out += _note(f"The longest answer is {answer_chars} characters; this is 25% over it.", 2)
    out.append(f"  max_new_tokens: {max_new}")
    if plan.answer == "json":
        n = len(t.json_answers) + (len(v.json_answers) if v else 0)
        out += _note("The answers are JSON objects: compared as objects, and field by field.", 2)
        out.append("  metrics: [exact_match, field_accuracy]")
        out += _note(f"Inferred from the {n} answers: {schema_summary(plan.schema or {})}. Tighten it where your "
                     "contract says more.", 2)
        out.append(f"  format: {{type: json_schema, schema_path: {_y(plan.schema_path)}}}")
    elif plan.answer == "tool_calls":
        out += _note("Tool calls are compared by function name and arguments (call ids ignored). No JSON Schema: the "
                     "answers are tool calls (or text beside them), whose written form is the chat template's.", 2)
        out += ["  metrics: [exact_match]", "  format: {type: none}"]
    else:
        mixed = f" ({t.answers['json']} of {t.rows} are JSON objects, the rest text)" if t.answers["json"] else ""
        out += _note(f"The answers are free text{mixed}: no format to check, and exact match is a strict floor; "
                     "consider the LLM judge (docs/judge.md).", 2)
        out += ["  metrics: [exact_match, contains]", "  format: {type: none}"]
    if plan.reference:
        base_url, model = plan.reference
        out += _note("The model being replaced: evaluated once on the same eval split and suites (its answers "
                     "cached, so a rerun pays nothing), a row of the results table. Its key is read from the "
                     "environment variable named here.", 2)
        out += ["  references:", f"    - name: {_y(slug(model))}", f"      base_url: {_y(base_url)}",
                f"      model: {_y(model)}", "      api_key_env: OPENAI_API_KEY",
                "      # requests_per_minute: 60    # under the endpoint's rate limit (a capture cut off resumes)",
                "      # price_input_per_m: 0.0     # US$ per million tokens, for the evaluation's cost",
                "      # price_output_per_m: 0.0"]
    return out


def _cost_lines(plan: Plan) -> list[str]:
    m, t = plan.model, plan.train
    out = _note("`tunestack cost` prices training, evaluation and serving against the API, and warns when the chosen "
                "model reaches less than cost.min_accuracy_share (90%) of the reference's accuracy. Fill in cost.api "
                "(all five values, or none) from your invoice and traffic.")
    out.append("cost:")
    if m.gpu:
        out += _note("The GPU init found, priced from the default table (`tunestack cost --help`).", 2)
        out.append(f"  training: {_y({'gpu': m.gpu, 'model_size_b': m.size_b})}")
    elif m.size_b == CPU_SIZE_B:
        out += _note("This machine has no GPU: its time is priced as a CPU VM (an example price: set yours).", 2)
        out += ["  gpus: {cpu: 0.10}", f"  training: {_y({'gpu': 'cpu', 'model_size_b': m.size_b})}"]
    elif m.size_b:
        out += _note("Not a GPU of the default table: add its price per hour as cost.gpus.NAME and set "
                     "cost.training.gpu to NAME.", 2)
        out.append(f"  training: {_y({'model_size_b': m.size_b})}")
    out += ["  api:", f"    name: {_y(slug(plan.reference[1]) if plan.reference else 'api')}",
            "    # input_per_million: 0.0      # US$ per million input tokens of the API model",
            "    # output_per_million: 0.0",
            "    # monthly_requests: 0",
            f"    # input_tokens_per_request: {max(1, round(t.mean_prompt_chars / CHARS_PER_TOKEN))}   # estimated "
            "from the rows' mean prompt",
            f"    # output_tokens_per_request: {max(1, round(t.mean_answer_chars / CHARS_PER_TOKEN))}   # and mean "
            "answer"]
    return out
