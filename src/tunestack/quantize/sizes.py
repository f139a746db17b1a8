"""Honest sizes of a model folder: bytes on disk, and bytes of parameters by kind, the tied embedding once."""

from __future__ import annotations

import json
import struct
from pathlib import Path

__all__ = ["folder_sizes"]

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "F8_E4M3": 1, "F8_E5M2": 1}


def tensors(folder: Path) -> dict[str, int]:
    """Name -> bytes of every tensor in the folder's safetensors files (read from their headers only)."""
    out = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= dim
            out[name] = count * DTYPE_BYTES[info["dtype"]]
    return out


def folder_sizes(folder: Path) -> dict:
    """`disk_bytes` (every file), `weight_bytes` (the tensors), the embedding's share, and whether the output head
    is the embedding (tied: stored and counted once) or a tensor of its own."""
    folder = Path(folder)
    found = tensors(folder)
    config = json.loads((folder / "config.json").read_text())
    text = config.get("text_config") or config
    tied = bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
    embedding = sum(b for n, b in found.items() if "embed_tokens" in n)
    head = sum(b for n, b in found.items() if n.split(".")[-2:-1] == ["lm_head"] or n.startswith("lm_head."))
    return {"disk_bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
            "weight_bytes": sum(found.values()), "embedding_bytes": embedding,
            "head_bytes": 0 if tied else head, "tied_embedding": tied}
