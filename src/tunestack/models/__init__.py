"""Models: resolving a name to a folder (`resolve`), GGUF conversion (`gguf`), special and stop tokens (`tokens`),
built-in chat templates (`templates`), loading (`load`), merging LoRA checkpoints (`merge`) and tiny test models
(`tiny`). The names below are the package's
interface; heavy imports (torch, transformers) wait inside the functions."""

from tunestack.models.load import (compute_dtype, cpu_threads, device, load_base, load_model, load_tokenizer,
                                   stage_dtype, use_bf16)
from tunestack.models.merge import CHECKPOINT_META, merged_copy, trained_on
from tunestack.models.resolve import BUILTIN, cache_dir, resolve_model
from tunestack.models.templates import CHATML
from tunestack.models.tiny import build_tiny_model
from tunestack.models.tokens import fix_special_tokens

__all__ = ["BUILTIN", "CHATML", "CHECKPOINT_META", "build_tiny_model", "cache_dir", "compute_dtype", "cpu_threads", "device", "fix_special_tokens",
           "load_base", "load_model", "load_tokenizer", "merged_copy", "resolve_model", "stage_dtype", "trained_on", "use_bf16"]
