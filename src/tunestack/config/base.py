"""The base of every config section, and the sections that are not a stage: the run and the model."""

from __future__ import annotations

from typing import Literal

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
    """CPU threads for torch; default: `OMP_NUM_THREADS` where it is set, else every core."""


class ModelSection(Section):
    name: str = "smollm2-135m-instruct"
    """Built-in name (`smollm2-135m-instruct`), a local model folder, or a Hugging Face id (`org/name`). An id is
    fetched into the Hugging Face cache when online; with `HF_HUB_OFFLINE=1` only the cache is read."""
    revision: str | None = None
    """For a Hugging Face id: the branch, tag or commit to use (default: the main branch). Pin a commit so a rerun
    trains the same weights."""
    trust_remote_code: bool = False
    """Run Python code shipped with the model (custom architectures or tokenizers). Off by default because that code
    runs with your permissions: turn it on only for a model whose repository you trust."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """The dtype dense weights are loaded in, once, straight onto the device. `auto`: the precision the stage
    computes in (`train.precision` for LoRA and DPO, `evaluate.precision` for evaluate, holdout and the assess of
    a base model), fp32 for full fine-tuning (master weights) and export (an exact merge). QLoRA loads its own 4-bit
    base. Set `float16` for a GPU without bf16; a set value applies to every stage."""
    chat_template: str | None = None
    """A chat template to use instead of the tokenizer's: a Jinja file, or a built-in (`chatml`, `plain`). Needed
    for a base model that has none, and to replace a broken one; it is saved with every checkpoint and the export."""


VLLM_OWNED = ("--model", "--served-model-name", "--host", "--port", "--api-key")
"""vLLM options tunestack sets itself: it supervises the server at that address under that name."""


def vllm_args_not_owned(args: list[str], field: str, owners: str) -> list[str]:
    """`args` unless one of them is an option tunestack sets itself (`VLLM_OWNED`)."""
    owned = [a for a in args if a.split("=")[0] in VLLM_OWNED]
    if owned:
        raise ValueError(f"{', '.join(owned)} is set by tunestack ({owners}): remove it from {field}")
    return args
