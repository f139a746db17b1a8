"""Example data and the configs of the demos. Nothing in the pipeline knows about them: they only write files.

- `radiology`: report -> one line of JSON (the quickstart, `quickstart.yaml`; `configs/quickstart.yaml` in the
  repository links to it);
- `tool_calling`: a desk assistant calling four functions, in OpenAI's fine-tuning format (`tools.yaml`;
  `configs/tools.yaml`);
- `sweep`: the radiology data again, as a sweep of six trials (`sweep.yaml`; `configs/sweep.yaml`);
- `grpo`: the radiology data again, GRPO from the quickstart's selected checkpoint (`grpo.yaml`; `configs/grpo.yaml`).

The configs' paths are relative to the folder `tunestack demo` runs in (data/demo/ or data/demo-tools/, runs/)."""

from pathlib import Path


def demo_config(task: str) -> Path:
    """The packaged config of a demo task: `extraction` (the quickstart), `tools`, `sweep` or `grpo`."""
    from importlib.resources import files

    name = {"tools": "tools.yaml", "sweep": "sweep.yaml", "grpo": "grpo.yaml"}.get(task, "quickstart.yaml")
    return Path(str(files("tunestack.demo") / name))
