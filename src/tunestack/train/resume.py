"""Resuming a run: the complete checkpoints in a folder, the newest to resume from, and the fingerprint of what a
training trajectory depends on, compared before a resume. No torch or transformers: the pipeline asks whether there
is anything to resume before it runs prepare.
"""

from __future__ import annotations

from pathlib import Path

from tunestack.models import CHECKPOINT_META as META
from tunestack.rundir import read_json


def published(folder: Path) -> list[dict]:
    """Metadata of every complete checkpoint in `folder`, in step order."""
    if not folder.exists():
        return []
    metas = [read_json(p / META) for p in folder.glob("step-*") if (p / META).exists()]
    return sorted(metas, key=lambda m: m["step"])


def newest(folder: Path) -> Path | None:
    metas = published(folder)
    return Path(metas[-1]["path"]) if metas else None


NOT_TRAINING = ("train.memory_check", "train.evaluate_checkpoints", "train.report_to")
"""Settings that do not change what training computes: a resume may differ in these."""


def fingerprint(cfg, run) -> dict:
    """What a training trajectory depends on, flattened to dotted keys: the train and model sections, the seed,
    the sequence length and the prepared training rows (by content hash). A checkpoint records it; `--resume`
    compares it with the current one."""
    from tunestack.rundir import file_hash

    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        else:
            flat[prefix] = value

    walk("train", cfg.train.model_dump(mode="json"))
    walk("model", cfg.model.model_dump(mode="json"))
    flat["run.seed"] = cfg.run.seed
    flat["data.max_length"] = cfg.data.max_length
    flat["data (prepare/train.jsonl sha256)"] = file_hash(run.root / "prepare" / "train.jsonl")
    return {k: v for k, v in flat.items() if not k.startswith(NOT_TRAINING)}


def check_resumable(start: Path, current: dict, anyway: bool = False) -> list[str]:
    """The differences between the checkpoint's recorded fingerprint and `current`, as `key: then -> now`. Any
    difference refuses the resume (a GuardError listing them) unless `anyway`; then they are returned, for the
    manifest."""
    from tunestack.errors import GuardError

    recorded = read_json(start / META).get("fingerprint")
    if recorded is None:
        differences = ["the checkpoint records no fingerprint (written by an older tunestack): nothing to compare"]
    else:
        keys = sorted(set(recorded) | set(current))
        differences = [f"{k}: {recorded.get(k, '(unset)')!r} -> {current.get(k, '(unset)')!r}" for k in keys
                       if recorded.get(k) != current.get(k)]
    if differences and not anyway:
        shown = "\n  ".join(differences)
        raise GuardError(f"refusing to resume from {start}: the config or the data changed since it was written, "
                         f"and resuming would continue the old optimizer, schedule and data position over the new "
                         f"setup:\n  {shown}\nUndo the change, train afresh (`tunestack train CONFIG --force`), or "
                         "resume anyway with `--resume --force` (recorded in the train manifest)")
    return differences


def resume_point(folder: Path, resume: bool) -> tuple[Path | None, int]:
    """The checkpoint to resume from and its step: (None, 0) for a fresh run; an error if there is nothing."""
    from tunestack.errors import StageError

    if not resume:
        return None, 0
    start = newest(folder)
    if start is None:
        raise StageError(f"nothing to resume: {folder} has no complete checkpoint; run without --resume")
    return start, read_json(start / META)["step"]
