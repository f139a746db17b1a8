"""Several LoRA adapters served beside their base: `tunestack serve CONFIG --model A --model B` (or
`--model NAME=FOLDER`). One copy of the base is loaded and every adapter is attached to it unmerged (peft's
multi-adapter model); `/v1/models` lists the base under its own name and each adapter under its name, and a
request's `model` picks which one answers it. A batch holding requests for several adapters is decoded adapter by
adapter (`Batcher.use_adapter`).

An unmerged adapter computes `W x + B A x` where offline evaluation merges it into `W` first; the greedy answers
agree except where two tokens' scores are within rounding of each other (measured in tests/test_serve.py).
vLLM takes the same set as `--enable-lora --lora-modules NAME=FOLDER ...`.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

from tunestack.config import Config
from tunestack.errors import StageError

__all__ = ["load_adapters", "parse_adapters", "use_adapter"]


def parse_adapters(models: list[str]) -> dict[str, str]:
    """Served name -> adapter folder, from `--model` values (`FOLDER` or `NAME=FOLDER`); every one an adapter."""
    from tunestack.evaluate.standalone import model_name

    adapters: dict[str, str] = {}
    for value in models:
        name, _, folder = value.rpartition("=") if "=" in value else ("", "", value)
        path = Path(folder).expanduser()
        if not (path / "adapter_config.json").exists():
            raise StageError(f"--model {value}: serving several models at once takes LoRA adapters on the run's base "
                             f"(a folder with adapter_config.json, such as a checkpoint under train/checkpoints/); "
                             f"{folder} is not one. Serve a merged folder on its own with a single --model")
        name = name or model_name(folder)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/-]*", name):
            raise StageError(f"--model {value}: '{name}' is not a model name clients can send (letters, digits and "
                             "._:/- only)")
        if name in adapters:
            raise StageError(f"--model {value}: the name '{name}' is given twice; name them with NAME=FOLDER")
        adapters[name] = str(path)
    return adapters


def load_adapters(cfg: Config, adapters: dict[str, str]):
    """(the base with every adapter attached, tokenizer), in the evaluation dtype."""
    from peft import PeftModel

    from tunestack.models import load_base, stage_dtype

    base, tokenizer = load_base(cfg.model, dtype=stage_dtype(cfg, "evaluate"))
    (first, folder), *rest = adapters.items()
    model = PeftModel.from_pretrained(base, folder, adapter_name=first)
    for name, folder in rest:
        model.load_adapter(folder, adapter_name=name)
    return model.eval(), tokenizer


@contextmanager
def use_adapter(model, name: str | None):
    """The block runs with adapter `name` active, or with every adapter off for None (the base)."""
    if name is None:
        with model.disable_adapter():
            yield
    else:
        model.set_adapter(name)
        yield
