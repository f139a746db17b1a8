"""GGUF conversion: a GGUF file de-quantised once into a safetensors folder `from_pretrained` can load."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from tunestack.errors import ModelError
from tunestack.models.tokens import fix_special_tokens


def convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise a GGUF file into a safetensors folder (written to a temp folder, then renamed)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise ModelError("loading a GGUF model needs the package 'gguf': pip install gguf")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = gguf.stem
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=False)
    model.tie_weights()
    model.generation_config = quantized.generation_config
    fix_special_tokens(tokenizer, model)
    tokenizer.clean_up_tokenization_spaces = False  # destructive for BPE: it would alter decoded answers
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "tunestack-model.json").write_text(json.dumps({"source": str(gguf), "format": "gguf-dequantized"}))
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(target)
