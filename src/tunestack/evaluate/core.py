"""The evaluation core every stage that measures a model builds on: the suites (eval split, format check, retention
suites), one model's evaluation through a generator, the cache of results keyed by what they depend on, and how a
checkpoint's weights are put in place (merged LoRA, full weights, an adapter on an NF4 base).

The evaluate stage (`tunestack.evaluate.stage`) runs it over the base model and every checkpoint; train's live
evaluation, the standalone `tunestack evaluate --model`, the reference models, holdout, quantize, serve and export
use the same functions, so every figure is measured the same way.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import torch

from tunestack.config import Config
from tunestack.evaluate.backends import Generator
from tunestack.evaluate.metrics import mean
from tunestack.evaluate.scoring import load_scorer
from tunestack.evaluate.kernels import evaluation_kernel
from tunestack.models.load import device, stage_dtype
from tunestack.rundir import RunDir, content_hash, file_hash, read_json, read_jsonl, write_json, write_jsonl
from tunestack.tools import scored_pairs


class Suites:
    """What every model is evaluated on: the eval split, its format check, and the retention suites."""

    def __init__(self, cfg: Config, run: RunDir):
        from tunestack.data.choices import stratified
        from tunestack.data.instructions import build_instructions
        from tunestack.data.suites import load_probes, load_quartz

        rows = read_jsonl(run.root / "prepare" / "eval.jsonl")
        self.rows = rows[: cfg.evaluate.max_examples] if cfg.evaluate.max_examples else rows
        self.scorer = load_scorer(cfg)
        ret = cfg.evaluate.retention
        self.probes = load_probes(ret.probes, ret.max_probes)
        self.choices = stratified(ret.choices, cfg.run.seed)
        self.quartz = load_quartz(ret.quartz_examples, cfg.run.seed)
        self.instructions = build_instructions(ret.instructions, cfg.run.seed)
        self.cfg = cfg

    def conversations(self) -> list[list[dict]]:
        """Each eval row's conversation up to the answer: the prompts every backend gets."""
        return [row["messages"][:-1] for row in self.rows]


def evaluate_generator(generator: Generator, suites: Suites, name: str) -> tuple[dict, list[dict]]:
    """Raw scores of one model (retention not yet relative) and its per-example outputs."""
    from tunestack.evaluate.harness import score_lm_eval
    from tunestack.evaluate.retention import score_choices, score_instructions, score_probes, score_quartz

    outputs = generator.generate(suites.conversations(), suites.cfg.evaluate.max_new_tokens, desc=f"eval {name}")
    predictions, references = scored_pairs([o.text for o in outputs], [row["messages"][-1] for row in suites.rows])
    metrics = suites.scorer.score(predictions, references, [row["messages"] for row in suites.rows])
    metrics["eos_rate"] = mean(o.ended_with_eos for o in outputs)
    metrics["probes"] = score_probes(generator, suites.probes, suites.cfg.evaluate.retention.probe_max_new_tokens)
    metrics["choices"] = score_choices(generator, suites.choices)
    metrics["quartz"] = score_quartz(generator, suites.quartz)
    ret = suites.cfg.evaluate.retention
    metrics["instructions"] = score_instructions(generator, suites.instructions, ret.instruction_max_new_tokens)
    metrics["lm_eval"] = score_lm_eval(generator, ret.lm_eval, suites.cfg.run.seed)
    metrics["per_example"] = {**metrics["per_example"], "probes": metrics["probes"].pop("passed"),
                              "choices": metrics["choices"].pop("scores", []),
                              "quartz": metrics["quartz"].pop("correct", []),
                              "instructions": metrics["instructions"].pop("passed"),
                              "lm_eval": metrics["lm_eval"].pop("correct", [])}
    records = [{"line": row.get("line"), "prediction": o.text, "reference": ref, "token_ids": o.token_ids}
               for row, o, ref in zip(suites.rows, outputs, references)]
    return metrics, records


BASE_ENTRY = {"name": "base", "kind": "base", "step": 0, "path": None, "train_loss": None}
"""The base model as an evaluated entry; checkpoints come from `checkpoint_entry`."""


def checkpoint_entry(meta: dict) -> dict:
    """A published checkpoint (its metadata, as in the train manifest) as an evaluated entry."""
    entry = {"name": meta["name"], "kind": "checkpoint", "step": meta["step"], "path": meta["path"],
             "train_loss": meta.get("train_loss")}
    return entry | ({"cost": meta["cost"]} if "cost" in meta else {})  # a sweep's finalist: its training cost


def model_entries(run: RunDir) -> list[dict]:
    """The base model, then each checkpoint the train stage published, in step order."""
    return [dict(BASE_ENTRY)] + [checkpoint_entry(c) for c in run.require("train")["checkpoints"]]


def start_entry(cfg: Config) -> dict | None:
    """The model training started from (`train.init_from`: an SFT checkpoint under DPO or GRPO) as an evaluated
    entry, or None: not a candidate for selection, the figure the chosen checkpoint is compared with."""
    if not cfg.train.init_from:
        return None
    return {"name": "start", "kind": "start", "step": 0, "path": str(cfg.train.init_from), "train_loss": None}


def weights_hash(path: str | None) -> str | None:
    """sha256 over a checkpoint's weight files and adapter config (not its optimizer state, which is dropped from
    older checkpoints later)."""
    if path is None:
        return None
    folder = Path(path)
    files = sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" or p.name in ("adapter_config.json",
                                                                                          "config.json"))
    return content_hash({p.name: file_hash(p) for p in files})


def local_backend(cfg: Config) -> str:
    """The backend for model folders: `vllm` when configured, else `local` (an endpoint cannot run a folder)."""
    return "vllm" if cfg.evaluate.backend == "vllm" else "local"


def model_key(cfg: Config, run: RunDir, entry: dict) -> str:
    """What one model's evaluation depends on (`tunestack.fingerprint`): the base model's config and weights, the
    checkpoint's weights, the evaluate section (not the endpoint settings, which do not touch a local model), the
    eval split, the suites' contents (probes, schema, quartz sample by seed), the dtype and the library versions.
    Any change re-evaluates; nothing else does."""
    from tunestack import fingerprint

    evaluate = cfg.evaluate.model_dump(mode="json", exclude={"backend", "endpoint", "vllm_args"})
    if local_backend(cfg) != "local":
        evaluate["backend"] = local_backend(cfg)
    return content_hash({"model": cfg.model.model_dump(mode="json"), "base_weights": fingerprint.model_weights(cfg),
                         "evaluate": evaluate, "eval": file_hash(run.root / "prepare" / "eval.jsonl"),
                         "suites": fingerprint.suites(cfg), "libraries": fingerprint.libraries(),
                         "name": entry["name"], "weights": weights_hash(entry["path"]), "on_nf4": on_nf4(cfg, entry),
                         "init_from": cfg.train.init_from, "dtype": stage_dtype(cfg, "evaluate"),
                         "attention": evaluation_kernel(device().split(":")[0])})


def cached_metrics(cfg: Config, run: RunDir, entry: dict, key: str | None = None,
                   folder: Path | None = None) -> dict | None:
    """A model's stored raw metrics when they were computed from exactly the current inputs (`key`, computed here
    when not given), in `folder` (default: the evaluate stage's)."""
    return stored_result((folder or run.stage("evaluate")) / f"{entry['name']}.json", key or model_key(cfg, run, entry))


def stored_result(path: Path, key: str) -> dict | None:
    """The metrics stored at `path` (without their key) when they were stored under `key`, else None."""
    if not path.exists():
        return None
    stored = read_json(path)
    if stored.get("key") != key:
        return None
    return {k: v for k, v in stored.items() if k != "key"}


def folder_generator(cfg: Config, model, tokenizer, workdir: Path, backend: str | None = None) -> Generator:
    """A generator for a loaded model on `backend` (default: the configured local backend), in the dtype the model
    was loaded in (the evaluation precision: see `tunestack.models.stage_dtype`). vLLM loads from disk, so the model
    is saved to `workdir` first (with its tokenizer, chat template and EOS) and a one-model engine started on it."""
    from tunestack.evaluate.generate import LocalGenerator

    if (backend or local_backend(cfg)) == "vllm":
        from tunestack.evaluate.vllm_backend import FolderGenerator, VllmEngine

        model.save_pretrained(workdir)
        tokenizer.save_pretrained(workdir)
        return FolderGenerator(VllmEngine(cfg, workdir, workdir.with_name(workdir.name + ".log")), tokenizer)
    return LocalGenerator(model, tokenizer, cfg.evaluate.batch_size)


def quantized(model) -> bool:
    return getattr(getattr(model, "config", None), "quantization_config", None) is not None


def on_nf4(cfg: Config, entry: dict) -> bool:
    """A QLoRA adapter is evaluated on the 4-bit base it was trained against, unmerged: merging it into 16-bit
    weights changes its answers (export measures by how much)."""
    path = entry.get("path")
    return cfg.train.method == "qlora" and bool(path) and (Path(path) / "adapter_config.json").exists()


@contextmanager
def entry_model(cfg: Config, base, entry: dict):
    """The model an entry is evaluated as, for the duration of the block: a QLoRA adapter on its NF4 base
    (`on_nf4`), else `base` (loaded in the evaluation dtype) with the checkpoint merged into its own weights, which
    are restored exactly afterwards (no copy of the model)."""
    from tunestack.models.merge import merged_in_place

    if not needs_base(cfg, entry):  # its own weights: a QLoRA adapter on NF4, or a full fine-tuning checkpoint
        model = adapter_on_nf4(cfg, entry["path"]) if on_nf4(cfg, entry) else full_checkpoint(cfg, entry["path"])
        try:
            yield model
        finally:
            del model
        return
    with merged_in_place(base, entry["path"]) as model:
        yield model


def needs_base(cfg: Config, entry: dict) -> bool:
    """Whether evaluating the entry needs the dense base: the base itself and LoRA checkpoints (merged into it)."""
    path = entry.get("path")
    return not path or ((Path(path) / "adapter_config.json").exists() and not on_nf4(cfg, entry))


def full_checkpoint(cfg: Config, path: str):
    """A full fine-tuning checkpoint, loaded once in the evaluation dtype onto this process's device."""
    from tunestack.models.merge import load_full

    return load_full(path, getattr(torch, stage_dtype(cfg, "evaluate")), device(), cfg.model.trust_remote_code)


def adapter_on_nf4(cfg: Config, checkpoint: str):
    """A QLoRA checkpoint on the 4-bit base exactly as training prepared it (norms and head in fp32)."""
    from peft import PeftModel

    from tunestack.models import resolve_model, use_bf16
    from tunestack.models.nf4 import load_4bit

    base = load_4bit(resolve_model(cfg.model.name, cfg.model.revision), cfg.train.init_from,
                     use_bf16(cfg.evaluate.precision), cfg.model.trust_remote_code,
                     scratch=Path(cfg.run.runs_dir) / cfg.run.name / "evaluate")
    return PeftModel.from_pretrained(base, checkpoint).eval()


def evaluate_model(cfg: Config, suites: Suites, model, tokenizer, name: str, workdir: Path,
                   backend: str | None = None) -> tuple[dict, list]:
    """Raw metrics and outputs of one loaded model on `backend` (default: the configured local backend)."""
    generator = folder_generator(cfg, model, tokenizer, workdir, backend)
    try:
        return evaluate_generator(generator, suites, name)
    finally:
        generator.close()
        shutil.rmtree(workdir, ignore_errors=True)


def evaluate_entry(cfg: Config, run: RunDir, suites: Suites, base, tokenizer, entry: dict,
                   models=None, backend: str | None = None, key: str | None = None,
                   folder: Path | None = None) -> tuple[dict, bool]:
    """Raw metrics of one model, and whether they were reused: results whose key is unchanged are (checkpoints
    evaluated while training are not evaluated again). The model is `entry_model` of `base`, or what `models(entry)`
    (a context manager) gives: evaluation while training passes the training model itself. `key`: the entry's
    `model_key` where the caller has it (it hashes the checkpoint's weights). `folder`: where the results are kept
    (default: the evaluate stage's folder)."""
    key = key or model_key(cfg, run, entry)
    folder = folder or run.stage("evaluate")
    reused = cached_metrics(cfg, run, entry, key, folder)
    if reused is not None:
        return reused, True
    with (models(entry) if models else entry_model(cfg, base, entry)) as subject:
        metrics, records = evaluate_model(cfg, suites, subject, tokenizer, entry["name"],
                                          folder / f".{entry['name']}.vllm", backend)
    store_entry(run, entry, metrics, records, key, folder)
    return metrics, False


def store_entry(run: RunDir, entry: dict, metrics: dict, records: list[dict], key: str,
                folder: Path | None = None) -> None:
    """One model's answers, then its metrics under the key they were computed for (written last: they mark it done)."""
    out = folder or run.stage("evaluate")
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / f"{entry['name']}.outputs.jsonl", records)
    write_json(out / f"{entry['name']}.json", {**metrics, "key": key})


def relative_rows(rows: list[dict], weights: dict[str, float]) -> list[dict]:
    """Each row with retention relative to the first (the base model)."""
    from tunestack.evaluate.retention import combine, without_answers

    return [without_answers({**row, **combine(row, rows[0], weights)}) for row in rows]
