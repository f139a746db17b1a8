"""Runs the stages in order, skipping those whose manifest is current.

Each stage's inputs hash covers the config sections it reads, the files it reads and its upstream stage's inputs
hash, so changing `train.learning_rate` re-runs train, evaluate, select and export but not prepare.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tunestack.config import Config, config_to_yaml
from tunestack.models.load import load_for_stage, setup_torch
from tunestack.rundir import RunDir, content_hash, file_hash, open_run

log = logging.getLogger("tunestack")

STAGES = ("prepare", "train", "evaluate", "select", "export", "quantize", "holdout")
SECTIONS = {"prepare": ("model", "data", "train.general_mix", "evaluate.retention"),
            "train": ("model", "data", "train"), "evaluate": ("model", "evaluate", "judge"),
            "select": ("select", "judge"), "export": ("export", "evaluate"),
            "quantize": ("quantize", "evaluate", "select"), "holdout": ("model", "evaluate")}
UPSTREAM = {"prepare": None, "train": "prepare", "evaluate": "train", "select": "evaluate", "export": "select",
            "quantize": "export", "holdout": "select"}


def input_files(cfg: Config, stage: str) -> list[str]:
    """The files a stage reads besides its upstream's outputs; their hashes are part of its inputs hash."""
    d, ret = cfg.data, cfg.evaluate.retention
    probes = [ret.probes] if ret.probes != "builtin" else []
    schema = [cfg.evaluate.format.schema_path] if cfg.evaluate.format.type == "json_schema" else []
    files = {
        "prepare": [s.path for _, s in d.named_sources()] + [d.eval_path, d.holdout_path] + probes
        + ([cfg.train.general_mix.path] if cfg.train.general_mix.source == "file" else []),
        "evaluate": schema + probes,
        "quantize": schema + probes,
        "holdout": schema,
    }
    return [f for f in files.get(stage, []) if f]


def _section(cfg: Config, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def inputs_hash(cfg: Config, run: RunDir, stage: str) -> str:
    """The stage's config sections, the files it reads, its upstream's hash, and for a stage that loads the model
    the base model's weights (by content) and the library versions: a change to any re-runs it."""
    from tunestack import fingerprint

    upstream = UPSTREAM[stage]
    parts = {
        "stage": stage,
        "seed": cfg.run.seed,
        "sections": {name: _section(cfg, name).model_dump(mode="json") for name in SECTIONS[stage]},
        "files": {f: file_hash(Path(f)) for f in input_files(cfg, stage) if Path(f).exists()},
        "upstream": (run.manifest(upstream) or {}).get("inputs_hash") if upstream else None,
    }
    if stage == "prepare":
        from tunestack.data.canon import RULE

        parts["identity_rule"] = RULE  # rows prepared under another rule of what "the same row" is are prepared again
    if stage != "select":
        parts["model_weights"] = fingerprint.model_weights(cfg)
        parts["libraries"] = fingerprint.libraries()
    return content_hash(parts)


def execute(cfg: Config, run: RunDir, stage: str, resume: bool = False, nproc: int = 1, force: bool = False,
            why: str | None = None, resume_anyway: bool = False) -> dict:
    """Run one stage now, whatever its manifest says; train in `nproc` processes when above 1; `force` lets the
    holdout stage read the sealed holdout again (recorded with `why`); `resume_anyway` resumes training although
    the config or data changed since the checkpoint (recorded)."""
    if stage == "prepare":
        from tunestack.data.prepare import run_prepare

        return run_prepare(cfg, run, load_for_stage(cfg, stage)[1])
    if stage == "select":
        from tunestack.select.stage import run_select

        return run_select(cfg, run)
    if stage == "train" and nproc > 1:
        from tunestack.train.launch import launch

        return launch(str(run.root / "config.yaml"), [], nproc, run.root, resume, resume_anyway)
    setup_torch(cfg)
    if stage == "quantize":  # loads the export itself, once per candidate
        from tunestack.quantize import run_quantize

        return run_quantize(cfg, run, load_for_stage(cfg, "prepare")[1])
    if stage == "train":  # a run that cannot fit is refused before minutes go into loading weights
        from tunestack.train.preflight import load_checked
        from tunestack.train.stage import run_train

        model, tokenizer, memory = load_checked(cfg)
        return run_train(cfg, run, model, tokenizer, resume=resume, resume_anyway=resume_anyway, memory=memory)
    if stage == "evaluate":
        from tunestack.evaluate.core import local_backend
        from tunestack.evaluate.stage import run_evaluate

        if local_backend(cfg) == "vllm":  # the engine loads the weights; the base here only if an entry needs it
            return run_evaluate(cfg, run, None, load_for_stage(cfg, "prepare")[1])
        return run_evaluate(cfg, run, *load_for_stage(cfg, stage))
    if stage == "export":  # loads the base itself, only where the merge or its check needs it
        from tunestack.export.stage import run_export

        return run_export(cfg, run, None, load_for_stage(cfg, "prepare")[1])
    from tunestack.holdout.stage import run_holdout  # the last stage

    return run_holdout(cfg, run, *load_for_stage(cfg, stage), force=force, why=why)


def run_stages(cfg: Config, until: str = "export", force: tuple[str, ...] = (), resume: bool = False,
               nproc: int = 1, why: str | None = None, resume_anyway: bool = False) -> RunDir:
    """Run every stage up to `until`, skipping the current ones; then write the report if selection exists."""
    run = open_run(Path(cfg.run.runs_dir) / cfg.run.name, config_to_yaml(cfg))
    if STAGES.index(until) >= STAGES.index("train"):
        refuse_early(cfg, run, resume, nproc)
    for stage in STAGES[: STAGES.index(until) + 1]:
        if stage == "export" and not cfg.export.enabled:
            continue
        if stage == "quantize" and until != "quantize" and not (cfg.quantize.enabled and cfg.export.enabled):
            continue
        key = inputs_hash(cfg, run, stage)
        if stage not in force and run.is_current(stage, key):
            log.info("[%s] up to date, skipped (inputs unchanged)", stage)
            continue
        if stage == "holdout":  # refuse a second read before anything is loaded or the last results dropped
            from tunestack.data.holdout import ensure_unread
            from tunestack.data.ledger import ledger_path

            ensure_unread(run, ledger_path(cfg), force=stage in force, why=why)
        if stage == "train" and resume:
            refuse_early(cfg, run, resume, nproc, resume_anyway, prepared=True)
        log.info("[%s] running", stage)
        run.invalidate(stage)
        started = time.time()
        result = execute(cfg, run, stage, resume=resume and stage == "train", nproc=nproc, force=stage in force,
                         why=why, resume_anyway=resume_anyway)
        run.finish(stage, key, result, started)
        log.info("[%s] done in %.1fs", stage, time.time() - started)
    return run


def refuse_early(cfg: Config, run: RunDir, resume: bool, nproc: int, resume_anyway: bool = False,
                 prepared: bool = False) -> None:
    """What training would refuse, said before prepare runs (nothing to resume, a sharding strategy this machine
    cannot run) and, once prepare is current (`prepared`), before any weight is loaded: a resume over a changed
    config or data. Training checks the same again itself."""
    from tunestack.train.resume import check_resumable, fingerprint, resume_point

    start = resume_point(run.root / "train" / "checkpoints", resume)[0]
    if prepared:
        check_resumable(start, fingerprint(cfg, run), resume_anyway)
        return
    if nproc > 1:
        from tunestack.train.launch import check_strategy

        check_strategy(cfg.train.distributed.strategy)
