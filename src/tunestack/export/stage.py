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
from contextlib import contextmanager, nullcontext
from pathlib import Path

from tunestack.chat import render_prompt
from tunestack.config import Config
from tunestack.errors import GuardError
from tunestack.models.merge import is_full, merged_in_place
from tunestack.rundir import RunDir, kill_point, read_jsonl, write_json

log = logging.getLogger("tunestack")
EXPORT_META = "tunestack-export.json"


def merge(model, tokenizer, checkpoint: str | None, target: Path, meta: dict | None = None,
          streamed: tuple[Path, str] | None = None) -> None:
    """Save base+adapter merged (or the base alone) to `target`, atomically: every file (weights, generation config,
    tokenizer, `meta` as tunestack-export.json) is written into a staging folder beside it, which is then renamed to
    `target`, so `target` is only ever absent or complete. A staging folder a killed export left is discarded.
    `model` is merged in place and its weights restored exactly afterwards (no second copy); with `streamed` (the
    base's folder and the export dtype) no model is loaded: the merge goes through the files shard by shard."""
    tmp, old = target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")
    kill_point(target.name, "before")
    shutil.rmtree(tmp, ignore_errors=True)
    if is_full(checkpoint):  # nothing to merge: its weights are the model's, copied shard by shard
        from transformers import GenerationConfig

        copy_weights(Path(checkpoint), tmp)
        generation = GenerationConfig.from_pretrained(checkpoint)  # the stop ids training published with it
    elif streamed is not None:
        from transformers import GenerationConfig

        from tunestack.models.merge import chain
        from tunestack.models.streamed import streamed_merge

        base, dtype = streamed
        streamed_merge(base, chain(checkpoint), tmp, dtype)
        generation = GenerationConfig.from_pretrained(base)
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


@contextmanager
def as_trained(model, checkpoint: str | None):
    """The chosen model as training left it, for the block: the adapter unmerged on the model it was trained on
    (with `train.init_from`, the earlier checkpoint merged into `model` in place, restored after: no copy), or a full
    fine-tuning checkpoint as saved (in fp32, like the export). Export is verified against this."""
    import torch
    from peft import PeftModel

    from tunestack.models import device
    from tunestack.models.merge import earlier, load_full

    if checkpoint is None:
        yield model
    elif is_full(checkpoint):
        yield load_full(checkpoint, torch.float32, device())
    else:
        with merged_in_place(model, earlier(checkpoint)) as trained_on:
            yield PeftModel.from_pretrained(trained_on, checkpoint)


def merge_mode(cfg: Config, checkpoint: str | None, base: Path) -> tuple[str, str | None]:
    """`loaded` or `streamed` for merging `checkpoint` into the base in `base`, and why it streams (None when asked
    to, or loaded). `export.merge: auto` streams when two models in the export dtype do not fit in free memory."""
    from tunestack.models.merge import chain
    from tunestack.models.streamed import base_shards, not_plain, weights_bytes

    if checkpoint is None or is_full(checkpoint) or cfg.export.merge == "loaded":
        return "loaded", None
    unfit = next(((c, why) for c in chain(checkpoint) if (why := not_plain(c))), None)
    if unfit is None and not base_shards(base):
        unfit = (str(base), "has no .safetensors weights to stream")
    if unfit is not None:
        if cfg.export.merge == "streamed":
            raise GuardError(f"export.merge: streamed, but {unfit[0]} {unfit[1]}: a streamed merge takes LoRA pairs "
                             "on linear layers from .safetensors files. Set export.merge=loaded")
        return "loaded", None
    if cfg.export.merge == "streamed":
        return "streamed", None
    need, free, where = 2 * weights_bytes(base, export_dtype(cfg)), *free_memory()
    if need <= 0.9 * free:
        return "loaded", None
    return "streamed", (f"two models in {export_dtype(cfg)} take {need / 2**30:.1f} GiB, more than 90% of the "
                        f"{free / 2**30:.1f} GiB free in {where}")


def export_dtype(cfg: Config) -> str:
    """fp32 unless `model.dtype` says otherwise: the merge is exact."""
    from tunestack.models import stage_dtype

    return stage_dtype(cfg, "export")


def free_memory() -> tuple[float, str]:
    """Free memory where export computes, and its name: this process's GPU, else the host's RAM."""
    import psutil
    import torch

    from tunestack.models import device

    if device().startswith("cuda"):
        return float(torch.cuda.mem_get_info(device())[0]), "GPU memory"
    return float(psutil.virtual_memory().available), "RAM"


def run_export(cfg: Config, run: RunDir, model, tokenizer) -> dict:
    """Export the chosen model. `model` is the base in the export dtype, or None: it is then loaded here only when
    the merge or the check needs it (a streamed merge and a full fine-tune's copy do not)."""
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import load_base, load_model, resolve_model

    chosen = run.require("select")["chosen"]
    checkpoint = {c["name"]: c["path"] for c in run.require("train")["checkpoints"]}.get(chosen)
    base = resolve_model(cfg.model.name, cfg.model.revision)
    mode, why = merge_mode(cfg, checkpoint, base)
    if why:
        log.warning("export: merging shard by shard from the files, no model loaded: %s", why)
    if model is None and mode == "loaded" and not is_full(checkpoint):
        model = load_base(cfg.model, dtype=export_dtype(cfg))[0]
    target = run.stage("export") / "model"
    merge(model, tokenizer, checkpoint, target, {"merged_from": chosen, "run": cfg.run.name, "merge": mode},
          streamed=(base, export_dtype(cfg)) if mode == "streamed" else None)
    checks = None
    size = cfg.evaluate.batch_size
    if cfg.export.verify and why:
        checks = {"skipped": f"the check runs the export beside the adapter on its base, and {why}: evaluate the "
                             "export where it fits (`tunestack evaluate CONFIG --model FOLDER`)"}
        log.warning("export: not verified: %s", checks["skipped"])
    elif cfg.export.verify:
        from tunestack.evaluate.core import adapter_on_nf4, on_nf4

        exported, exported_tokenizer = load_model(target)
        nf4 = on_nf4(cfg, {"path": checkpoint})
        if model is None and not nf4 and not is_full(checkpoint):
            model = load_base(cfg.model, dtype=export_dtype(cfg))[0]
        rows = read_jsonl(run.root / "prepare" / "eval.jsonl")[: cfg.evaluate.max_examples]
        with nullcontext(adapter_on_nf4(cfg, checkpoint)) if nf4 else as_trained(model, checkpoint) as reference:
            checks = compare(LocalGenerator(reference, tokenizer, size),
                             LocalGenerator(exported, exported_tokenizer, size), rows, cfg, measure=nf4)
    return {"chosen": chosen, "path": str(target), "merge": mode, "verification": checks}
