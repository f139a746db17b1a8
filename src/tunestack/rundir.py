"""The run directory: where stages leave their artifacts and manifests.

    runs/<name>/
      config.yaml            the resolved config
      <stage>/               one folder per stage; its manifest.json is written last, so its existence means
        manifest.json        the stage finished, and its `inputs_hash` says what it was computed from
      report.md, results.json

A stage is skipped when its manifest exists and its inputs hash (config sections it reads, upstream manifests,
input file contents) is unchanged.

Every file is written atomically (`atomic_open`, `write_text`, `write_json`; folders are staged and renamed), so a
killed stage leaves no manifest and no truncated file: its re-run starts over (`RunDir.invalidate` also removes the
temporary files a kill left) and ends with the artifacts an uninterrupted run writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TextIO


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


KILL_AT = "TUNESTACK_TEST_KILL_AT"
"""Test hook (tests/test_interrupted.py): `<name>:<when>[:<n>]` SIGKILLs this process at the n-th (default first)
write of a file or folder called <name>, `before` it starts, `midway` (the unpublished temporary file left half
written) or `after` it is published. Unset, it costs one environment lookup per write and counts nothing."""
_writes: dict[str, int] = {}


def kill_point(name: str, when: str, tmp: Path | None = None) -> None:
    """Where `KILL_AT` may kill this process; `before` counts the writes of `name`. At `midway`, `tmp` (the
    temporary file, fully written) is cut to half its bytes first: what a kill during the write leaves on disk."""
    spec = os.environ.get(KILL_AT)
    if not spec:
        return
    if when == "before":
        _writes[name] = _writes.get(name, 0) + 1
    target, _, rest = spec.partition(":")
    at, _, nth = rest.partition(":")
    if target != name or at != when or _writes.get(name, 0) != int(nth or 1):
        return
    if tmp is not None and tmp.is_file():
        os.truncate(tmp, tmp.stat().st_size // 2)
    os.kill(os.getpid(), signal.SIGKILL)


def temporary(path: Path) -> Path:
    """A temporary name beside `path`, unique to this writer, matched by `TEMPORARY`."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


TEMPORARY = ".*.tmp"
"""The glob of `temporary` names: what a killed writer leaves behind, never a finished file."""


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[TextIO]:
    """Open `path` for writing so that it appears only complete: the writes go to a temporary file in the same
    folder, renamed over `path` when the block ends without an error (deleted when it raises). A process killed
    meanwhile leaves `path` as it was (absent, or the previous complete version) and a `TEMPORARY` file. (No fsync:
    this guards against a killed process, not a power cut.)"""
    path = Path(path)
    kill_point(path.name, "before")
    tmp = temporary(path)
    try:
        with open(tmp, mode.replace("w", "x"), **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
        kill_point(path.name, "midway", tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    kill_point(path.name, "after")


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (`atomic_open`)."""
    with atomic_open(path) as fh:
        fh.write(text)


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure atomically, as a PNG."""
    tmp = temporary(path)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write atomically: a reader never sees a half-written file."""
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: Path, items) -> None:
    """One JSON object a line, written atomically (streamed to a temporary file, then renamed): a killed run leaves
    the previous complete file or none, never a truncated one."""
    with atomic_open(path) as fh:
        for item in items:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


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
        """The stage is about to run again: its manifest goes first, then what a killed earlier attempt left."""
        (self.root / name / "manifest.json").unlink(missing_ok=True)
        folder = self.root / name
        if folder.is_dir():
            for stale in folder.rglob(TEMPORARY):
                if stale.is_file():
                    stale.unlink(missing_ok=True)

    def finish(self, name: str, inputs_hash: str, result: dict, started: float) -> dict:
        manifest = {"stage": name, "inputs_hash": inputs_hash, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "seconds": round(time.time() - started, 2), **result}
        write_json(self.stage(name) / "manifest.json", manifest)
        return manifest


def open_run(root: Path, config_text: str) -> RunDir:
    """The run directory at `root`, made if new, with the resolved config written to `config.yaml` and this
    process's whole log (every training step, the libraries' warnings) appended to `run.log`."""
    from tunestack.terminal import log_to

    run = RunDir(root)
    run.root.mkdir(parents=True, exist_ok=True)
    write_text(run.root / "config.yaml", config_text)
    log_to(run.root / "run.log")
    return run
