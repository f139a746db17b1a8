"""The base of every config section, and the sections that are not a stage: the run and the model."""

from __future__ import annotations


from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)


class RunSection(Section):
    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]+$")
    """Run name: every artifact goes to `<runs_dir>/<name>/`."""
    runs_dir: str = "runs"
    """Folder that holds run directories."""
    seed: int = 0
    """Seed for splits, data order, LoRA init and anything else random."""
    threads: int | None = Field(None, ge=1)
    """CPU threads for torch; default: every core."""


class ModelSection(Section):
    name: str = "smollm2-135m-instruct"
    """Built-in name (`smollm2-135m-instruct`), a local model folder, or a Hugging Face id already in the local cache
    (nothing is downloaded)."""
