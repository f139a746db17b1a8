"""Stage `export`: the chosen adapter merged into the base weights, saved with tokenizer, chat template and
generation config (EOS), then checked: reloaded from disk, its greedy outputs on the eval set must equal the unmerged
adapter's, token for token, both in fp32. A QLoRA adapter was trained (and evaluated) on an NF4 base, and merging it
into 16-bit weights changes some answers: for it, the share of eval prompts answered alike is measured and reported
instead (with a warning below 100%). Final validation on the sealed holdout is the next stage, `tunestack holdout`
(read once).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from tunestack.chat import render_prompt
from tunestack.config import Config
from tunestack.errors import GuardError
from tunestack.models.merge import is_full, merged_in_place
from tunestack.rundir import RunDir, kill_point, read_jsonl, write_json

log = logging.getLogger("tunestack")
EXPORT_META = "tunestack-export.json"


def merge(model, tokenizer, checkpoint: str | None, target: Path, meta: dict | None = None) -> None:
    """Save base+adapter merged (or the base alone) to `target`, atomically: every file (weights, generation config,
    tokenizer, `meta` as tunestack-export.json) is written into a staging folder beside it, which is then renamed to
    `target`, so `target` is only ever absent or complete. A staging folder a killed export left is discarded.
    `model` is merged in place and its weights restored exactly afterwards (no second copy)."""
    tmp, old = target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")
    kill_point(target.name, "before")
    shutil.rmtree(tmp, ignore_errors=True)
    if is_full(checkpoint):  # nothing to merge: its weights are the model's, copied shard by shard
        from transformers import GenerationConfig

        copy_weights(Path(checkpoint), tmp)
        generation = GenerationConfig.from_pretrained(checkpoint)  # the stop ids training published with it
    else:
        with merged_in_place(model, checkpoint) as merged:
            merged.save_pretrained(tmp)
        generation = model.generation_config
    kill_point(target.name, "midway")  # the weights staged, the tokenizer not yet
    generation.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if meta is not None:
        write_json(tmp / EXPORT_META, meta)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():  # a folder cannot be renamed over a non-empty one: the previous export is moved aside
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
    kill_point(target.name, "after")


def copy_weights(checkpoint: Path, folder: Path) -> None:
    """A full fine-tuning checkpoint's model files (config, weight shards and their index) copied into `folder`,
    one file at a time: no model is loaded, so exporting holds no weights in memory at all."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ["config.json", "model.safetensors.index.json"]
    files = [checkpoint / n for n in names if (checkpoint / n).exists()] + sorted(checkpoint.glob("*.safetensors"))
    if not any(f.suffix == ".safetensors" for f in files):
        raise GuardError(f"{checkpoint} holds no .safetensors weights to export")
    for file in files:
        shutil.copyfile(file, folder / file.name)


def prompts_of(rows: list[dict], tokenizer) -> list[list[int]]:
    return [render_prompt(tokenizer, row["messages"][:-1]) for row in rows]


def compare(reference, exported, rows: list[dict], cfg: Config, measure: bool = False) -> dict:
    """Greedy outputs of two generators on the eval prompts; raises GuardError on any difference, unless `measure`
    (QLoRA), which reports the share answered alike."""
    prompts = prompts_of(rows, reference.tokenizer)
    if prompts_of(rows, exported.tokenizer) != prompts:
        raise GuardError("the exported tokenizer renders the eval prompts differently from the run's tokenizer")
    expected = reference.generate(prompts, cfg.evaluate.max_new_tokens, desc="adapter outputs")
    actual = exported.generate(prompts, cfg.evaluate.max_new_tokens, desc="exported outputs")
    mismatches = [i for i, (a, e) in enumerate(zip(actual, expected)) if a.token_ids != e.token_ids]
    eos_rate = sum(a.ended_with_eos for a in actual) / max(1, len(actual))
    if measure:
        same = len(prompts) - len(mismatches)
        if mismatches:
            log.warning("export: the merged 16-bit model answers %d of %d eval prompts like the QLoRA adapter on its "
                        "4-bit base (%.0f%%); evaluate the export itself before serving it", same, len(prompts),
                        100 * same / max(1, len(prompts)))
        return {"compared": len(prompts), "identical": same, "agreement": round(same / max(1, len(prompts)), 4),
                "reference": "QLoRA adapter on its NF4 base", "eos_rate": eos_rate, "precision": "float32"}
    if mismatches:
        first = mismatches[0]
        raise GuardError(
            f"the exported model answers {len(mismatches)} of {len(prompts)} eval prompts differently from the "
            f"adapter it was merged from (first: eval row {first}: {actual[first].text!r} vs "
            f"{expected[first].text!r}). The export would change the model's behaviour: do not serve it."
        )
    return {"compared": len(prompts), "identical": len(prompts), "eos_rate": eos_rate, "precision": "float32"}


def as_trained(model, checkpoint: str | None):
    """The chosen model as training left it: the adapter unmerged on the model it was trained on, or a full
    fine-tuning checkpoint as saved (in fp32, like the export). Export is verified against this."""
    import torch
    from peft import PeftModel

    from tunestack.models import device, trained_on
    from tunestack.models.merge import load_full

    if checkpoint is None:
        return model
    if is_full(checkpoint):
        return load_full(checkpoint, torch.float32, device())
    return PeftModel.from_pretrained(trained_on(model, checkpoint), checkpoint)


def run_export(cfg: Config, run: RunDir, model, tokenizer) -> dict:
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import load_model

    chosen = run.require("select")["chosen"]
    checkpoint = {c["name"]: c["path"] for c in run.require("train")["checkpoints"]}.get(chosen)
    if model is None and checkpoint is None:  # full fine-tuning, whose export loads no base, chose the base itself
        from tunestack.models import load_base

        model = load_base(cfg.model, dtype="float32")[0]
    target = run.stage("export") / "model"
    merge(model, tokenizer, checkpoint, target, {"merged_from": chosen, "run": cfg.run.name})
    checks = None
    size = cfg.evaluate.batch_size
    if cfg.export.verify:
        from tunestack.evaluate.core import adapter_on_nf4, on_nf4

        exported, exported_tokenizer = load_model(target)
        nf4 = on_nf4(cfg, {"path": checkpoint})
        reference = adapter_on_nf4(cfg, checkpoint) if nf4 else as_trained(model, checkpoint)
        rows = read_jsonl(run.root / "prepare" / "eval.jsonl")[: cfg.evaluate.max_examples]
        checks = compare(LocalGenerator(reference, tokenizer, size), LocalGenerator(exported, exported_tokenizer, size),
                         rows, cfg, measure=nf4)
    return {"chosen": chosen, "path": str(target), "verification": checks}
