"""The run directory: where stages leave their artifacts and manifests.

    runs/<name>/
      config.yaml            the resolved config
      <stage>/               one folder per stage; its manifest.json is written last, so its existence means
        manifest.json        the stage finished, and its `inputs_hash` says what it was computed from
      report.md, results.json

A stage is skipped when its manifest exists and its inputs hash (config sections it reads, upstream manifests,
input file contents) is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any


def file_hash(path: Path) -> str:
    """sha256 of a file, or of every file in a folder (names and contents, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def write_json(path: Path, obj: Any) -> None:
    """Write atomically: a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class RunDir:
    def __init__(self, root: Path):
        self.root = Path(root)

    def stage(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def manifest(self, name: str) -> dict | None:
        path = self.root / name / "manifest.json"
        return read_json(path) if path.exists() else None

    def require(self, name: str) -> dict:
        from tunestack.errors import StageError

        manifest = self.manifest(name)
        if manifest is None:
            raise StageError(f"stage '{name}' has not finished in {self.root}: run `tunestack {name}` first")
        return manifest

    def is_current(self, name: str, inputs_hash: str) -> bool:
        manifest = self.manifest(name)
        return manifest is not None and manifest.get("inputs_hash") == inputs_hash

    def invalidate(self, name: str) -> None:
        (self.root / name / "manifest.json").unlink(missing_ok=True)

    def finish(self, name: str, inputs_hash: str, result: dict, started: float) -> dict:
        manifest = {"stage": name, "inputs_hash": inputs_hash, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "seconds": round(time.time() - started, 2), **result}
        write_json(self.stage(name) / "manifest.json", manifest)
        return manifest
