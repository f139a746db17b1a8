"""Fingerprints: what a cached result depends on, so that a change anywhere re-runs it and nothing else does.

- `model_weights(cfg)`: the base model's weight, config and tokenizer files by content. Hashing gigabytes on every
  command would cost minutes, so each file's sha256 is cached under its path, size and modification time
  (`hashes.json` in the tunestack cache): a file rewritten in place, even to the same size, is hashed again.
- `libraries()`: the versions of the packages that compute results (torch, transformers, peft, trl, tunestack).
- `suites(cfg)`: the evaluation suites by content: the probe file, the JSON Schema, the quartz sample (its seed and
  the `evals` package version), the metrics and the format check.
"""

from __future__ import annotations

import functools
import json
import os
from importlib import metadata
from pathlib import Path

from tunestack.rundir import content_hash, file_hash

MODEL_FILES = (".safetensors", ".bin", ".json", ".model", ".txt", ".jinja", ".gguf")
LIBRARIES = ("torch", "transformers", "peft", "trl", "tunestack", "evals")


def _cache_file() -> Path:
    from tunestack.models import cache_dir

    return cache_dir() / "hashes.json"


def cached_file_hash(path: Path) -> str:
    """sha256 of a file, reused while its path, size and mtime are unchanged."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    store = _cache_file()
    try:
        known = json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
    except (OSError, json.JSONDecodeError):
        known = {}
    if key in known:
        return known[key]
    digest = file_hash(path)
    known = {k: v for k, v in known.items() if not k.startswith(f"{path}|")}
    known[key] = digest
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_name(f"{store.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known), encoding="utf-8")
        os.replace(tmp, store)
    except OSError:  # a read-only cache only costs the re-hash next time
        pass
    return digest


def folder_fingerprint(folder: Path) -> str:
    """Content hash of a model folder's weight, config and tokenizer files (names and contents)."""
    folder = Path(folder)
    if folder.is_file():
        return cached_file_hash(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in MODEL_FILES)
    return content_hash({str(p.relative_to(folder)): cached_file_hash(p) for p in files})


def model_weights(cfg) -> str:
    """The base model's fingerprint (`model.name` resolved to its local folder)."""
    from tunestack.models import resolve_model

    return folder_fingerprint(resolve_model(cfg.model.name, cfg.model.revision))


def package_version(name: str) -> str | None:
    """An installed package's version; None where it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def libraries() -> dict[str, str | None]:
    return {name: package_version(name) for name in LIBRARIES}


def lm_eval_suite(spec) -> dict | None:
    """What changes an lm-eval suite's results: its settings, lm-eval's version, and the files of a local task
    folder (a task named from the harness's own registry is pinned by the version)."""
    if not spec.tasks:
        return None
    folder = Path(spec.include_path) if spec.include_path else None
    files = ({str(p.relative_to(folder)): file_hash(p) for p in sorted(folder.rglob("*"))
              if p.is_file() and "__pycache__" not in p.parts} if folder and folder.is_dir() else None)
    return {**spec.model_dump(mode="json"), "version": package_version("lm_eval"), "files": files}


@functools.lru_cache(maxsize=8)
def choice_suite(n: int, seed: int) -> str | None:
    """The multiple-choice draw by content (the registry's rows and the generated skills alike)."""
    from dataclasses import asdict

    from tunestack.data.choices import stratified

    return content_hash([asdict(q) for q in stratified(n, seed)]) if n else None


def suites(cfg) -> dict:
    """The evaluation suites' contents, as they change results."""
    from tunestack.data.instructions import build_instructions
    from tunestack.data.suites import load_probes

    ev = cfg.evaluate
    fmt = ev.format
    schema = file_hash(Path(fmt.schema_path)) if fmt.type == "json_schema" and Path(fmt.schema_path).exists() else None
    return {"probes": content_hash(load_probes(ev.retention.probes, ev.retention.max_probes)), "schema": schema,
            "format": fmt.model_dump(mode="json"), "metrics": [m.model_dump(mode="json") for m in ev.metrics],
            "choices": choice_suite(ev.retention.choices, cfg.run.seed),
            "quartz": {"n": ev.retention.quartz_examples, "seed": cfg.run.seed, "evals": libraries()["evals"]},
            "instructions": content_hash(build_instructions(ev.retention.instructions, cfg.run.seed)),
            "lm_eval": lm_eval_suite(ev.retention.lm_eval),
            "generation": {"probes": ev.retention.probe_max_new_tokens,
                           "instructions": ev.retention.instruction_max_new_tokens}}
