"""The `tunestack` command's parser (`build_parser`), built per command group: config checks, run and the stages,
demo, judge, cost, the commands that live in their own package (`COMMAND_MODULES`), assess, serve and init. Light
imports only: every `tunestack` invocation builds it. `tunestack.cli` dispatches what it parses.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from tunestack import __version__

STAGE_HELP = {
    "prepare": "Validate, deduplicate, split and decontaminate the data: every dropped row is listed with its reason "
               "and evidence (rejects, duplicates, decontaminated .jsonl) and the data report shows why; stops "
               "instead when a source would lose over data.max_removed_share of its rows or too few rows are left "
               "to train on.",
    "train": "Fine-tune (train.method: lora, qlora, full, dpo, or grpo: answers sampled per prompt and rewarded "
             "by the task's own metrics, train.grpo) through TRL; publishes checkpoints/step-NNNNNN and evaluates "
             "each as it is saved. --resume continues a killed run; --nproc N trains in N processes (not dpo or "
             "grpo). Runs prepare first if needed.",
    "evaluate": "Evaluate the base model and every checkpoint: the task metrics, format compliance, general "
                "retention, and the LLM judge when enabled (--model evaluates any folder or endpoint alone). Runs the "
                "earlier stages first if needed.",
    "select": "Choose a checkpoint on the weighted score with floors, and say why the others lost.",
    "export": "Merge the chosen checkpoint into a standalone model folder and verify its outputs are unchanged.",
    "quantize": "Quantize the export with llm-compressor (AWQ, GPTQ, round-to-nearest; W4A16, W8A16), calibrated on "
                "training rows only; evaluate each candidate on the eval split and the retention suites and keep the "
                "first that holds quantize.min_retention of the export's task accuracy and format compliance and "
                "the general-retention floor (quantize/candidates.json). Runs after export in `run` when "
                "quantize.enabled.",
    "holdout": "Final validation: the chosen checkpoint's metrics on the sealed holdout (holdout/holdout.md). The "
               "holdout is read once; a second read is refused unless --force, and every read is logged.",
}
OVERRIDES_HELP = "dotted overrides of config keys, e.g. train.learning_rate=1e-4 run.name=trial2"
COMMAND_MODULES = ("tunestack.synth.command", "tunestack.review.command", "tunestack.report.command",
                   "tunestack.sweep.command")
"""Commands that live in their own package: each module has `add_parser(subparsers)`, which sets the parser's
`handler` default to a function of the parsed arguments returning the exit code. Imported to build the parser, so
they import nothing heavy at module level."""


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="the run's YAML config")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)


def build_parser() -> argparse.ArgumentParser:
    """The `tunestack` parser: global options, then each command group's subcommands."""
    parser = argparse.ArgumentParser(
        prog="tunestack",
        description="Evaluation-first LLM fine-tuning. Stages: prepare -> train -> evaluate -> select -> export. "
                    "Each stage skips itself when its inputs are unchanged since its last run.",
    )
    parser.add_argument("--version", action="version", version=f"tunestack {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only warnings, errors and the final table: no progress bars, no stage lines")
    parser.add_argument("--log-json", action="store_true",
                        help="log lines as JSON objects (time, level, logger, message), no progress bars: for "
                             "scripts and log collectors. run.log in the run folder keeps the full detail either way")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_config_parsers(sub)
    _add_run_parser(sub)
    for stage, text in STAGE_HELP.items():
        _add_stage_parser(sub, stage, text)
    _add_demo_parser(sub)
    _add_judge_parser(sub)
    _add_cost_parser(sub)
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    _add_assess_parser(sub)
    _add_serve_parser(sub)
    _add_init_parser(sub)
    return parser


def _add_config_parsers(sub) -> None:
    """`validate`, `schema` and `config-reference`."""
    p = sub.add_parser("validate", help="Check a config; report every problem at once with its YAML path.",
                       description="Check a config and report every problem with its YAML path and line, "
                                   "suggesting the nearest valid key for unknown ones. Exit 0 when valid, 2 otherwise.")
    _add_config_args(p)

    sub.add_parser("schema", help="Print the config's JSON Schema.", description="Print the config's JSON Schema.")
    p = sub.add_parser("config-reference", help="Print the config reference (markdown) generated from the schema.",
                       description="Print the config reference as markdown tables, generated from the schema.")
    p.add_argument("--write", type=Path, metavar="README",
                   help="replace the text between the config-reference markers of this file instead of printing")


def _add_run_parser(sub) -> None:
    p = sub.add_parser("run", help="Run every stage in order (skipping those already up to date).",
                       description="Run prepare, train, evaluate, select and export in order, then print the "
                                   "results table and write report.md and results.json in the run directory.")
    _add_config_args(p)
    p.add_argument("--force", action="append", default=[], choices=["prepare", "train", "evaluate", "select",
                                                                      "export", "quantize"],
                   help="re-run this stage anyway")


def _add_stage_parser(sub, stage: str, text: str) -> None:
    """One stage's command, with the options that stage takes (`--resume`, `--nproc`, `--why`, `--model`)."""
    p = sub.add_parser(stage, help=text, description=text)
    _add_config_args(p)
    force_help = ("read the sealed holdout again although it (the same rows, in any run) was read before "
                  "(refused otherwise); needs --why, and the read is recorded as forced in the data ledger")\
        if stage == "holdout" else "re-run this stage even if it is up to date"
    if stage == "train":
        force_help += ("; with --resume: resume although the config or data changed since the checkpoint "
                       "(refused otherwise; recorded in the train manifest)")
    p.add_argument("--force", action="store_true", help=force_help)
    if stage in ("holdout", "train"):
        p.add_argument("--why", metavar="REASON", help="why the refused action is forced: recorded with it")
    if stage == "train":
        p.add_argument("--resume", action="store_true",
                       help="continue from the newest complete checkpoint (optimizer, scheduler, RNG and "
                            "data order included) after a crash or a kill; refused when the config or the data "
                            "changed since that checkpoint, with the differences listed")
        p.add_argument("--nproc", type=int, default=1, metavar="N",
                       help="train in N processes through torchrun (DDP; gloo on CPU, NCCL on GPUs)")
    if stage == "evaluate":
        p.add_argument("--model", metavar="PATH|URL|NAME",
                       help="evaluate this model alone on the run's eval split and suites instead: a model or "
                            "checkpoint folder, an OpenAI-compatible endpoint URL (http://host:port/v1; the key "
                            "from the variable named by evaluate.endpoint.api_key_env), or with "
                            "evaluate.backend=openai a model name at evaluate.endpoint.base_url. Writes "
                            "evaluate/standalone/<name>.json; the stage's own results are left alone")
        p.add_argument("--name", help="name of --model's results (default: from the folder or the endpoint)")


def _add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="Generate a demo's data and run its packaged config (radiology extraction, or "
                                    "--task tools: tool calling).",
                       description="Write a demo's seeded data in the current folder and run the whole pipeline on "
                                   "the built-in SmolLM2-135M-Instruct model, offline. The default task, "
                                   "`extraction`, writes radiology reports paired with one line of JSON to data/demo/ "
                                   "and runs into runs/quickstart/; `--task tools` writes a tool-calling file in "
                                   "OpenAI's fine-tuning format (four functions, calls, text answers and function "
                                   "results) to data/demo-tools/ and runs into runs/tools/, scored with the "
                                   "tool-call metrics; `--task sweep` runs the radiology data as a sweep of six "
                                   "trials (runs/quickstart-sweep/); `--task grpo` trains the quickstart's selected "
                                   "checkpoint with GRPO on the task's own metrics (runs/quickstart-grpo/; the "
                                   "quickstart first when it has not run). The configs ship inside the package "
                                   "(tunestack/demo/"
                                   "quickstart.yaml and tools.yaml; configs/ in the repository), so they work from "
                                   "any folder of any venv tunestack is installed in.")
    p.add_argument("--task", choices=("extraction", "tools", "sweep", "grpo"), default="extraction",
                   help="which demo: radiology extraction (default), tool calling, a sweep of six trials over the "
                        "radiology data (runs/quickstart-sweep/), or GRPO from the quickstart's selected checkpoint "
                        "rewarded by the task's metrics (runs/quickstart-grpo/; runs the quickstart first if needed)")
    p.add_argument("--config", type=Path, default=None,
                   help="the config to run (default: the task's packaged config)")
    p.add_argument("--rows", type=int, default=None,
                   help="demo rows to generate (default: 640 for extraction, 400 for tools)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)


def _add_init_parser(sub) -> None:
    text = ("Write a first config from the files a fine-tuning API trained on (OpenAI's chat format with tools, "
            "tool calls, weight and legacy functions, or its preference format; any format prepare reads). Reads "
            "TRAIN_FILE (and --validation) with prepare's own reader and says what it found: the format, rows, "
            "tool rows, multi-turn rows, weight-0 turns and the rows prepare would reject, with file:line. Then "
            "writes a commented YAML config that `tunestack validate` accepts: the validation file as the eval set "
            "(data.eval_path), else eval and holdout sizes from the row count; train.method dpo for preference "
            "rows; when every final answer is a JSON object, a JSON Schema inferred from them (types, keys present "
            "in every answer required, enums for fields with few values), written beside the config as "
            "<output>.schema.json and checked by evaluate.format; a base model that fits this machine (without "
            "CUDA the built-in CPU model; with CUDA a size by free GPU memory; --model overrides); and the model "
            "being replaced as evaluate.references (--reference-model, at --reference). Every inferred value "
            "carries a comment saying from what. See docs/moving-off-an-api.md.")
    p = sub.add_parser("init", help="Write a commented config from an API's fine-tuning files (OpenAI's formats).",
                       description=textwrap.fill(text, 100), formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  tunestack init train.jsonl --validation valid.jsonl "
                              "--reference-model ft:gpt-4o-mini-2024-07-18:acme::AbC12 --output support.yaml\n"
                              "  tunestack validate support.yaml && tunestack run support.yaml")
    p.add_argument("train", type=Path, metavar="TRAIN_FILE",
                   help="the training file (JSONL; CSV, Parquet or a datasets folder also read)")
    p.add_argument("--validation", type=Path, metavar="VALIDATION_FILE",
                   help="the API's validation file: used as the eval set as it is (data.eval_path)")
    p.add_argument("--reference", metavar="URL",
                   help="OpenAI-compatible endpoint of the model being replaced (default with --reference-model: "
                        "https://api.openai.com/v1)")
    p.add_argument("--reference-model", metavar="NAME",
                   help="the model being replaced, by its name at that endpoint (e.g. your ft:... model): "
                        "evaluated once on the same eval set, a row of the results table")
    p.add_argument("--model", metavar="NAME_OR_PATH",
                   help="the base model to fine-tune (a local folder, a Hugging Face id or a built-in name) "
                        "instead of the one picked for this machine")
    p.add_argument("--output", type=Path, default=Path("tunestack.yaml"), metavar="CONFIG",
                   help="the config to write (default: %(default)s); the schema goes beside it")
    p.add_argument("--name", metavar="RUN_NAME", help="run.name (default: from TRAIN_FILE's name)")
    p.add_argument("--force", action="store_true", help="overwrite the config and schema if they exist")


def _add_serve_parser(sub) -> None:
    text = ("Serve the run's chosen model (the quantized one when quantize chose one, else the export, or --model) "
            "behind an OpenAI-compatible server on serve.host (127.0.0.1): /v1/chat/completions and /v1/completions "
            "(streaming too), /v1/models, /health, /metrics. The built-in server batches concurrent requests on "
            "transformers and answers greedy requests as offline evaluation does; a full queue gets 429 with "
            "Retry-After. Before it takes traffic it checks that its tokenizer renders the eval prompts to the ids "
            "training used and that it stops on the ids training taught; a mismatch refuses to start. Set "
            "serve.api_key_env to require an API key. Ctrl-C finishes the requests in flight, then stops.")
    p = sub.add_parser("serve", help="Serve the chosen model behind an OpenAI-compatible server.",
                       description=textwrap.fill(text, 100), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_args(p)
    p.add_argument("--model", action="append", metavar="[NAME=]FOLDER",
                   help="serve this model folder or checkpoint instead of the run's chosen model; given more than "
                        "once (or as NAME=FOLDER), LoRA adapters served beside the run's base, one per request by "
                        "model name")
    p.add_argument("--host", help="interface to bind (default: serve.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: serve.port, 8000; 0 picks a free one)")
    p.add_argument("--print", dest="recipe", action="store_true",
                   help="instead of serving: print and write the deploy recipe (the vLLM command line and a compose "
                        "file, in serve/deploy/)")
    p.add_argument("--evaluate", action="store_true",
                   help="instead of serving until stopped: start the server on a free port, run the eval suite "
                        "through it, compare with offline evaluation of the same weights, write serve/served.json "
                        "and the results' served row")


def _add_assess_parser(sub) -> None:
    text = ("Is fine-tuning worth it? Runs the base model (or --model) on a stratified sample of the task (assess."
            "examples, 200) with the evaluate stage's prompts, template and greedy decoding; reports accuracy with a "
            "Wilson 95% interval; sorts every failure into one category (format, a wrong field, vocabulary, "
            "truncation, refusal); answers up to assess.consistency_examples failures assess.samples more times with "
            "sampling to see which failures repeat; gives a verdict with its reasons (don't fine-tune, fine-tune, "
            "capability gap; thresholds under assess:) and a suggested training-set size. With train.method grpo it "
            "also samples train.grpo.group_size answers to train.grpo.spread_prompts prompts and reports the spread "
            "of their rewards (the share of groups whose answers all score alike has nothing to teach GRPO). Writes "
            "assess/assess.json, assess.md and outputs.jsonl in the run directory.")
    p = sub.add_parser("assess", help="Verdict on the base model: don't fine-tune, fine-tune, or capability gap.",
                       description=text)
    _add_config_args(p)
    p.add_argument("--model", metavar="PATH|URL|NAME",
                   help="assess this model instead of the config's base model: a model or checkpoint folder, an "
                        "OpenAI-compatible endpoint URL (http://host:port/v1), or with evaluate.backend=openai a "
                        "model name at evaluate.endpoint.base_url")


def _add_judge_parser(sub) -> None:
    judge = sub.add_parser("judge", help="LLM-as-judge on an OpenAI-compatible endpoint (`judge:` in the config).",
                           description="LLM-as-judge on an OpenAI-compatible endpoint, configured in the `judge:` "
                                       "section. Its scores count in selection only once `judge calibrate` shows "
                                       "that it agrees with human scores.")
    commands = judge.add_subparsers(dest="judge_command", required=True, metavar="COMMAND")
    text = ("Score human-scored answers with the judge and report Spearman, Kendall tau-b, Pearson and "
            "quadratic-weighted kappa with bootstrap 95% intervals, tokens, cost, cache hits and retries, and whether "
            "the agreement clears judge.agreement_threshold. Writes judge/calibration.json and calibration.md in "
            "the run directory. The API key is read from the environment variable named by judge.api_key_env.")
    p = commands.add_parser("calibrate", help="Measure the judge's agreement with human scores.", description=text)
    _add_config_args(p)
    p.add_argument("--human", type=Path, required=True, metavar="FILE",
                   help="JSONL of human-scored answers, one a line: id, prompt, answer, optional reference, "
                        "human_score (1-5)")
    p.add_argument("--rubric", choices=["correctness", "quality"], default="correctness",
                   help="what the judge scores: task correctness (against the reference, when given) or general "
                        "quality (default: %(default)s)")


def _add_cost_parser(sub) -> None:

    from tunestack.config.prices import GPUS

    table = "\n".join(f"  {g.name:<5} {f'${g.price_per_hour:.2f}/h':>7} (usual ${g.price_range[0]:.2f}-"
                      f"{g.price_range[1]:.2f}); trains {g.train_tokens_per_second:,.0f} tokens/s, serves "
                      f"{g.serve_tokens_per_second:,.0f} tokens/s (7B)" for g in GPUS.values())
    text = ("Cost and payback of fine-tuning against the API it replaces: training per run and per successful "
            "fine-tune (x cost.training.experiments), evaluation, monthly serving with and without AWQ, the monthly "
            "saving, payback, break-even volume, and payback against GPU price and volume. Reads what the run "
            "measured (tokens trained, tokens/s, evaluation time) when it exists, else estimates from "
            "cost.training or the prepare manifest; loads no model. Every figure that rests on a default (the GPU "
            "table, a rule of thumb) is marked 'default'. Writes cost/cost.json, cost.md and cost.png in the run "
            "directory. Configure it under `cost:`; example: configs/cost_worked_example.yaml.")
    p = sub.add_parser("cost", help="Training, evaluation and serving cost against the API; payback and break-even.",
                       description=textwrap.fill(text, 100), formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="default GPU table (replace a price or add a GPU with cost.gpus.NAME=...):\n" + table)
    _add_config_args(p)
