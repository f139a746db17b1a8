"""A run as the report page reads it: the JSON files of its run directory (None where a stage did not run), the
training curve and the resolved config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tunestack.errors import StageError
from tunestack.rundir import read_json
from tunestack.tables import model_rows


FILES = {
    "results": "results.json", "data_report": "prepare/data_report.json", "select": "select/manifest.json",
    "evaluate": "evaluate/manifest.json", "train": "train/manifest.json", "quantize": "quantize/candidates.json",
    "served": "serve/served.json", "cost": "cost/cost.json", "assess": "assess/assess.json",
    "calibration": "judge/calibration.json", "holdout": "holdout/manifest.json", "export": "export/manifest.json",
    "sweep": "sweep/sweep.json",
}
"""What the page reads, each a JSON file of the run directory; a missing one leaves its section out."""


@dataclass
class Run:
    """Everything the page shows, as read from the run directory (None where a stage did not run)."""

    root: Path
    files: dict[str, dict | None]
    steps: list[dict] = field(default_factory=list)
    """The rows of train/metrics.jsonl."""
    config_text: str | None = None

    def __getitem__(self, key: str) -> dict | None:
        return self.files.get(key)

    @property
    def models(self) -> list[dict]:
        """The results' model rows (base, checkpoints, references, quantized, served), else the evaluate stage's."""
        if self["results"]:
            return self["results"].get("models") or []
        evaluated = self["evaluate"] or {}
        chosen = (self["select"] or {}).get("chosen")
        return model_rows((evaluated.get("models") or []) + (evaluated.get("references") or []), chosen)

    @property
    def chosen(self) -> str | None:
        return (self["select"] or {}).get("chosen")


def is_run_dir(root: Path) -> bool:
    """A run directory holds the resolved config.yaml or a stage manifest."""
    root = Path(root)
    return root.is_dir() and ((root / "config.yaml").is_file() or any(root.glob("*/manifest.json")))


def load_run(root: Path) -> Run:
    root = Path(root)
    if not is_run_dir(root):
        raise StageError(f"{root} is not a run directory (no config.yaml and no stage manifest in it): give a run "
                         f"folder such as runs/<run.name>, or a config, after `tunestack run CONFIG` has made it")
    files = {}
    for key, name in FILES.items():
        path = root / name
        try:
            files[key] = read_json(path) if path.is_file() else None
        except (OSError, json.JSONDecodeError):  # a half-copied run: leave that section out rather than fail
            files[key] = None
    steps = []
    metrics = root / "train" / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text(encoding="utf-8").splitlines():
            try:
                steps.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    config = root / "config.yaml"
    return Run(root, files, steps, config.read_text(encoding="utf-8") if config.is_file() else None)


def newest(root: Path) -> float:
    """When the run last changed: its newest manifest, results or config."""
    paths = [*root.glob("*/manifest.json"), root / "results.json", root / "config.yaml"]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=root.stat().st_mtime)
