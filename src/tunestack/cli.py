"""The `tunestack` command: one subcommand per stage, plus run, demo, validate and schema. The parser is built in
`tunestack.cli_parser`; this module dispatches the parsed command to its handler.

User errors (a bad config, bad data, a failed guard) print a clean message and exit 2; a traceback means a bug.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tunestack.cli_parser import build_parser
from tunestack.errors import GuardError, TunestackError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse cannot take positional overrides after an option (`CONFIG --human FILE a.b=1`)
        if not hasattr(args, "overrides") or any(item.startswith("-") or "=" not in item for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides += extra
    from tunestack.terminal import setup_console

    _quiet_libraries()
    setup_console(quiet=args.quiet, log_json=args.log_json)
    try:
        return _dispatch(args)
    except TunestackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _quiet_libraries() -> None:
    import os
    import warnings

    # HF_HUB_OFFLINE is the user's: a Hugging Face id in model.name is fetched when it is unset (see models.resolve)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' bar per load and save: not a long step
    warnings.filterwarnings("ignore", message=".*clean_up_tokenization_spaces.*")
    # Libraries' own notices about their internals: compressed-tensors warns of a target "not matched" when an
    # earlier target of the same scheme took the module; torch.fx that is_fx_tracing will change meaning.
    for name in ("transformers", "peft", "trl", "datasets", "httpx", "httpx2", "openai", "bitsandbytes",
                 "compressed_tensors", "torch.fx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _dispatch(args) -> int:
    from tunestack import config as config_mod

    if args.command == "schema":
        print(config_mod.json_schema())
        return 0
    if args.command == "config-reference":
        if args.write:
            config_mod.write_reference(args.write)
        else:
            print(config_mod.reference_markdown(), end="")
        return 0
    if args.command == "validate":
        cfg = config_mod.load_config(args.config, args.overrides)
        from tunestack.evaluate.registry import task_scorer

        task_scorer(cfg.evaluate)  # imports any metric or format function named by module path: a bad one fails here
        print(f"{args.config}: valid (run '{cfg.run.name}', model '{cfg.model.name}')")
        return 0
    if getattr(args, "handler", None) is not None:
        return args.handler(args)
    if args.command == "judge":
        return _judge(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "init":
        return _init(args)
    cfg = config_mod.load_config(args.config, args.overrides)
    if args.command == "cost":
        return _cost(cfg)
    if args.command == "assess":
        return _assess(cfg, args.model)
    if args.command == "serve":
        if args.recipe:
            return _serve_print(cfg, args.model, args.host, args.port)
        return _serve_evaluate(cfg, args.model) if args.evaluate else _serve(cfg, args.model, args.host, args.port)
    if args.command == "run":
        return _run(cfg, "quantize" if cfg.quantize.enabled and cfg.export.enabled else "export", tuple(args.force))
    if args.command == "evaluate" and args.model:
        return _evaluate_model(cfg, args.model, args.name)
    resume, nproc = getattr(args, "resume", False), getattr(args, "nproc", 1)
    if nproc < 1:
        raise TunestackError("--nproc must be at least 1")
    return _run(cfg, args.command, (args.command,) if args.force or resume else (), resume=resume, nproc=nproc,
                why=getattr(args, "why", None), resume_anyway=resume and args.force)


def _run(cfg, until: str, force: tuple[str, ...], resume: bool = False, nproc: int = 1, why: str | None = None,
         resume_anyway: bool = False) -> int:
    from tunestack.pipeline import run_stages
    from tunestack.report.results import write_report
    from tunestack.report.markdown import holdout_line, reference_lines
    from tunestack.tables import table_lines

    run = run_stages(cfg, until=until, force=force, resume=resume, nproc=nproc, why=why, resume_anyway=resume_anyway)
    if run.manifest("select"):
        results = write_report(cfg, run)
        print("\n".join(table_lines(results["models"], markdown=False)))
        print(f"\nselected: {results['selection']['chosen']}: {results['selection']['reason']}")
        for line in reference_lines(results.get("references") or []):
            print(line.replace("**", ""))
        if until == "holdout" and (results.get("holdout") or {}).get("metrics"):
            print(f"\n{holdout_line(results['holdout'])}  ({run.root / 'holdout' / 'holdout.md'})")
        print(f"report: {html_report(run)}   ({run.root / 'report.md'}; results: {run.root / 'results.json'})")
    return 0


def html_report(run) -> Path:
    """The run's report.html, written again from what the run folder holds now."""
    from tunestack.report.html import write_html

    return write_html(run.root)


def _evaluate_model(cfg, model: str, name: str | None) -> int:
    from tunestack.evaluate.standalone import run_standalone
    from tunestack.pipeline import run_stages
    from tunestack.tables import model_rows, table_lines
    from tunestack.rundir import RunDir

    run = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)  # not open_run: the run's config.yaml stays as trained
    if run.manifest("prepare") is None:  # the eval split is needed; a fresh run gets one
        run = run_stages(cfg, until="prepare")
    result = run_standalone(cfg, run, model, name)
    print("\n".join(table_lines(model_rows([result["base"], result["result"]], chosen=None), markdown=False)))
    skipped = result["result"].get("quartz", {}).get("skipped")
    if skipped:
        print(f"\nquartz skipped for {result['name']}: {skipped}")
    usage = result["result"].get("usage")
    if usage:
        cost = f", ${usage['cost_usd']:.4f}" if usage["cost_usd"] is not None else ""
        print(f"endpoint: {usage['requests']} requests ({usage['retries']} retried, {usage['cache_hits']} answers "
              f"from the cache), {usage['prompt_tokens']} prompt and {usage['completion_tokens']} completion "
              f"tokens{cost}")
    print(f"results: {run.root / 'evaluate' / 'standalone' / (result['name'] + '.json')}")
    return 0


def _serve(cfg, model: str | None, host: str | None, port: int | None) -> int:
    from tunestack.rundir import RunDir
    from tunestack.serve.stage import run_serve

    run_serve(cfg, RunDir(Path(cfg.run.runs_dir) / cfg.run.name), model, host, port)
    return 0


def _serve_print(cfg, model: str | None, host: str | None, port: int | None) -> int:
    from tunestack.rundir import RunDir
    from tunestack.serve.stage import deploy_recipe

    script, compose = deploy_recipe(cfg, RunDir(Path(cfg.run.runs_dir) / cfg.run.name), model, host, port)
    print(f"# {script}\n{script.read_text()}\n# {compose}\n{compose.read_text()}", end="")
    return 0


def _serve_evaluate(cfg, model: str | None) -> int:
    from tunestack.report.results import write_report
    from tunestack.rundir import RunDir
    from tunestack.serve.evaluate import evaluate_served

    run = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)
    body = evaluate_served(cfg, run, model)
    for key, c in body["comparison"].items():
        if c["served"] is None or c["offline"] is None:
            continue
        drop = c["drop_ci95"]
        interval = f", offline minus served 95% CI {drop[0]:+.1%} to {drop[1]:+.1%}" if drop else ""
        print(f"{key.replace('_', ' ')}: served {c['served']:.1%}, offline {c['offline']:.1%}{interval}")
    print(f"identical answers: {body['identical']}/{body['compared']} ({body['dtype']} on both sides)")
    if body["quartz_skipped"]:
        print(f"quartz skipped through the endpoint: {body['quartz_skipped']}")
    if run.manifest("select"):
        write_report(cfg, run)
    print(f"results: {run.root / 'serve' / 'served.json'}")
    return 0


def _judge(args) -> int:
    from tunestack import config as config_mod
    from tunestack.judge.report import summary_lines
    from tunestack.judge.stage import run_calibration
    from tunestack.rundir import RunDir

    cfg = config_mod.load_config(args.config, args.overrides)
    run = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)  # not open_run: the run's config.yaml stays as trained
    calibration = run_calibration(cfg, run, args.human, args.rubric)
    print("\n".join(summary_lines(calibration)))
    print(f"report: {run.root / 'judge' / 'calibration.md'}   data: {run.root / 'judge' / 'calibration.json'}")
    return 0


def _assess(cfg, model: str | None) -> int:
    from tunestack.assess.report import terminal_lines
    from tunestack.assess.stage import run_assess
    from tunestack.pipeline import run_stages
    from tunestack.rundir import RunDir

    run = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)  # not open_run: the run's config.yaml stays as trained
    if cfg.assess.data == "prepared" and run.manifest("prepare") is None:  # the sample comes from the prepared rows
        run = run_stages(cfg, until="prepare")
    body = run_assess(cfg, run, model)
    print("\n".join(terminal_lines(body)))
    folder = run.root / "assess"
    print(f"report: {folder / 'assess.md'}   data: {folder / 'assess.json'}   answers: {folder / 'outputs.jsonl'}")
    return 0


def _cost(cfg) -> int:
    from tunestack.cost.report import terminal_lines
    from tunestack.cost.stage import run_cost
    from tunestack.rundir import RunDir

    run = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)  # not open_run: the run's config.yaml stays as trained
    body = run_cost(cfg, run)
    print("\n".join(terminal_lines(body)))
    folder = run.root / "cost"
    print(f"report: {folder / 'cost.md'}   data: {folder / 'cost.json'}   plot: {folder / 'cost.png'}")
    if run.manifest("select"):
        print(f"run report: {html_report(run)}")
    return 0


def _init(args) -> int:
    from tunestack.init import InitOptions, run_init

    _, lines = run_init(InitOptions(args.train, args.validation, args.reference, args.reference_model, args.model,
                                    args.output, args.name, args.force))
    print("\n".join(lines))
    return 0


def _demo(args) -> int:
    from tunestack import config as config_mod
    from tunestack.errors import ConfigError

    from tunestack.demo import demo_config

    path = args.config or demo_config(args.task)
    if not path.exists():
        raise ConfigError([("", f"{path} not found: pass --config PATH (or leave it out for the packaged "
                                f"{args.task} config)")])
    cfg = config_mod.load_config(path, args.overrides)
    folder = Path(cfg.data.named_sources()[0][1].path).parent
    if args.task == "tools":
        from tunestack.demo.tool_calling import write_demo_data

        written = [write_demo_data(folder, n=args.rows or 400, seed=0)]
    else:
        from tunestack.demo.radiology import write_demo_data

        written = list(write_demo_data(folder, n=args.rows or 640, seed=0))
    logging.getLogger("tunestack").info("[demo] wrote %s", " and ".join(map(str, written)))
    if args.task == "grpo":
        return _demo_grpo(path, args.overrides)
    if args.task == "sweep":
        from tunestack.sweep.stage import run_sweep

        print("\n".join(run_sweep(cfg, path, args.overrides)["lines"]))
        return 0
    try:
        code = _run(cfg, "holdout", ())
    except GuardError as exc:  # this run's holdout was read before: the rest of the demo stands, the rule holds
        logging.getLogger("tunestack").warning("[holdout] not read again: %s", exc)
        code = _run(cfg, "export", ())
    return code or _cost(cfg)


def _demo_grpo(path: Path, overrides: list[str]) -> int:
    """The GRPO demo: from the checkpoint the quickstart's select chose (the quickstart runs first when it has not),
    the reward spread of the base model and of that checkpoint (`assess`), GRPO through export, then the exported
    model evaluated through its endpoint (`serve --evaluate`). Its holdout is the quickstart's, read there once."""
    import shutil

    from tunestack import config as config_mod
    from tunestack.demo import demo_config
    from tunestack.rundir import RunDir, read_json
    from tunestack.stats import paired_difference

    log = logging.getLogger("tunestack")
    quick = config_mod.load_config(demo_config("extraction"))
    first = RunDir(Path(quick.run.runs_dir) / quick.run.name)
    if not first.manifest("select"):
        log.info("[demo] GRPO starts from the quickstart's selected checkpoint: running the quickstart first")
        _run(quick, "select", ())
    start = first.root / "train" / "checkpoints" / first.require("select")["chosen"]
    cfg = config_mod.load_config(path, [*overrides, f"train.init_from={start}"])
    log.info("[demo] GRPO from %s", start)
    run = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)
    spreads = {}
    for name, model in (("base-model", None), ("start-model", str(start))):  # the reward spread GRPO starts from
        _assess(cfg, model)
        shutil.copy(run.root / "assess" / "assess.json", run.root / "assess" / f"{name}.json")
        spreads[name] = read_json(run.root / "assess" / "assess.json")["reward_spread"]
    code = _run(cfg, "export", ())
    chosen = run.require("select")["chosen"]
    if chosen != "base":  # the same prompts and seeds again, sampled from the chosen checkpoint
        _assess(cfg, str(run.root / "train" / "checkpoints" / chosen))
        spreads[chosen] = read_json(run.root / "assess" / "assess.json")["reward_spread"]
    start_means = spreads["start-model"]["group_means"]
    for name, found in spreads.items():
        versus = paired_difference(found["group_means"], start_means, 2000, cfg.run.seed) \
            if name not in ("base-model", "start-model") else None
        print(f"reward on {found['prompts']} prompts x {found['group_size']} sampled answers, {name}: mean "
              f"{found['mean_reward']:.3f}, {found['zero_spread_share']:.0%} of groups without signal"
              + (f"; minus the start's, 95% paired interval over the prompts {versus[0]:+.3f} to {versus[1]:+.3f}"
                 if versus else ""))
    return code or _serve_evaluate(cfg, None)


if __name__ == "__main__":
    raise SystemExit(main())
