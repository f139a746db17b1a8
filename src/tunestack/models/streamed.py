"""A LoRA adapter merged into its base from the files, shard by shard: no model is loaded, and only one of the base's
weight shards (with the adapter) is in memory at a time, so a base larger than this machine's memory can be merged.

For each tensor of each base shard: if the adapter has a LoRA pair for that weight, `W + scale * (B @ A)` (transposed
for `fan_in_fan_out` layers), computed in fp32, the checkpoints of a `train.init_from` chain in order; every tensor
is written in the export dtype, into a shard of the same name, and the shard index is carried over. In fp32 this is
the same arithmetic as peft's `merge_and_unload` on a loaded model, and gives the same bytes (tests/test_export_memory.py
compares them with peft's own merge).

What it does not cover is said by `not_plain`: an adapter that is more than LoRA pairs on linear layers (DoRA, LoRA
biases, whole modules or embedding rows trained, LoRA on the embeddings, inits that change the base) is merged on a
loaded model instead.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

EMBEDDINGS = ("embed_tokens", "lm_head", "wte", "embed_in", "embed_out", "word_embeddings")
"""Module names of input and output embeddings in the major families."""
PLAIN_INITS = ("gaussian", "eva", "orthogonal", "mica", "lora_ga")
"""Named `init_lora_weights` whose saved adapter is a plain LoRA (others, such as PiSSA or LoftQ, change the base)."""


def adapter_config(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "adapter_config.json").read_text())


def not_plain(folder: str | Path, base_vocab: int | None = None) -> str | None:
    """Why the adapter in `folder` is more than LoRA pairs on the base's linear layers (a phrase), or None.
    `base_vocab`: the base model's vocabulary size, to see a tokenizer that outgrew its embeddings."""
    folder = Path(folder)
    if not (folder / "adapter_config.json").exists():
        return "holds full weights, not a LoRA adapter"
    config = adapter_config(folder)
    saved = [m for m in config.get("modules_to_save") or [] if m not in ("classifier", "score")]
    if saved:
        return f"trains whole modules beside the LoRA ({', '.join(saved)}: modules_to_save)"
    if config.get("trainable_token_indices"):
        return "trains embedding rows (trainable_token_indices)"
    if config.get("use_dora"):
        return "is a DoRA adapter"
    if config.get("lora_bias"):
        return "trains LoRA biases (lora_bias)"
    init = config.get("init_lora_weights")
    if isinstance(init, str) and init.lower() not in PLAIN_INITS:
        return f"was initialised with {init}, which changes the base weights"
    if config.get("layer_replication"):
        return "replicates layers (layer_replication)"
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else targets
    embedded = sorted({t for t in targets if t.rpartition(".")[2] in EMBEDDINGS})
    if embedded:
        return f"puts LoRA on the embeddings ({', '.join(embedded)})"
    weights = folder / "adapter_model.safetensors"
    if weights.exists():
        from safetensors import safe_open

        with safe_open(str(weights), "np") as handle:
            dense = [k for k in handle.keys() if "lora_" not in k and k.split(".")[-2] in EMBEDDINGS]
        if dense:
            return f"carries its own embedding weights ({dense[0]}: resized or trained embeddings)"
    if base_vocab is not None and (folder / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        size = len(AutoTokenizer.from_pretrained(folder))
        if size > base_vocab:
            return f"comes with a tokenizer of {size} tokens, more than the base model's {base_vocab} embeddings"
    return None


def base_shards(base: Path) -> list[Path]:
    """The base's safetensors weight files, in order; empty when it has none (older `.bin` weights)."""
    index = base / "model.safetensors.index.json"
    if index.exists():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [base / n for n in names]
    single = base / "model.safetensors"
    return [single] if single.exists() else []


def weights_bytes(base: Path, dtype: str) -> int:
    """What the base's weights take in `dtype`, from the safetensors headers (nothing loaded)."""
    import torch
    from safetensors import safe_open

    width = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    total = 0
    for shard in base_shards(base):
        with safe_open(str(shard), "pt") as handle:
            for key in handle.keys():
                shape = handle.get_slice(key).get_shape()
                count = 1
                for n in shape:
                    count *= n
                total += count * width
    return total


def _pattern(patterns: dict, module: str, default):
    """peft's per-module override (`rank_pattern`, `alpha_pattern`): the first key the module's name ends with."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def lora_deltas(folder: Path) -> dict[str, object]:
    """Each base weight's LoRA delta, `scale * (B @ A)` in fp32 (transposed for `fan_in_fan_out`), keyed by the
    weight's name in the base's files."""
    import torch
    from safetensors.torch import load_file

    config = adapter_config(folder)
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    deltas = {}
    for key, a in tensors.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        b = tensors[key.replace(".lora_A.", ".lora_B.")]
        rank = a.shape[0]
        alpha = _pattern(config.get("alpha_pattern"), module, config.get("lora_alpha", 8))
        scale = alpha / (rank ** 0.5 if config.get("use_rslora") else rank)
        delta = (b.to(torch.float32) @ a.to(torch.float32)) * scale
        deltas[f"{module}.weight"] = delta.T if config.get("fan_in_fan_out") else delta
    return deltas


def streamed_merge(base: Path, chain: list[str | Path], target: Path, dtype: str) -> dict:
    """Merge the LoRA checkpoints of `chain` (earliest first) into the base's files, writing `target` (config and
    weight shards; the caller adds tokenizer and generation config). Returns what was merged."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    shards = base_shards(base)
    if not shards:
        raise ValueError(f"{base} has no .safetensors weights to stream")
    deltas = [lora_deltas(Path(c)) for c in chain]
    wanted = {name for d in deltas for name in d}
    target.mkdir(parents=True, exist_ok=True)
    out_dtype = getattr(torch, dtype)
    merged, total = 0, 0
    for shard in shards:
        tensors = {}
        with safe_open(str(shard), "pt") as handle:
            metadata = handle.metadata() or {}
            for key in handle.keys():
                tensor = handle.get_tensor(key)
                if key in wanted:
                    tensor = tensor.to(torch.float32)
                    for delta in deltas:
                        if key in delta:
                            tensor = tensor + delta[key]
                    merged += 1
                tensors[key] = tensor.to(out_dtype).contiguous()
                total += tensors[key].numel() * tensors[key].element_size()
        save_file(tensors, str(target / shard.name), metadata={**metadata, "format": "pt"})
        del tensors
    missing = wanted - {k for s in shards for k in _keys(s)}
    if missing:
        raise ValueError(f"the adapter changes weights the base does not have: {sorted(missing)[:3]}")
    index = base / "model.safetensors.index.json"
    if index.exists():
        content = json.loads(index.read_text())
        content.setdefault("metadata", {})["total_size"] = total
        (target / index.name).write_text(json.dumps(content, indent=2))
    config = json.loads((base / "config.json").read_text())
    config["dtype"] = dtype
    config.pop("torch_dtype", None)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    for extra in ("chat_template.jinja",):
        if (base / extra).exists() and not (target / extra).exists():
            shutil.copyfile(base / extra, target / extra)
    return {"weights_merged": merged, "shards": len(shards)}


def _keys(shard: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(shard), "pt") as handle:
        return list(handle.keys())
