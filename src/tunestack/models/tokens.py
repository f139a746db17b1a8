"""Special tokens: the token that ends an assistant turn, every id generation stops on, and a pad token distinct
from them.

A model family ends an assistant turn its own way (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, `</s>`, `<|end|>`)
and its `generation_config.json` often lists several stop ids (Llama-3.1: `<|end_of_text|>`, `<|eom_id|>`,
`<|eot_id|>`). tunestack does not keep a list of families: the end-of-turn token is read off the chat template itself,
by rendering a probe conversation and taking the special token that follows the answer. That token becomes the
tokenizer's EOS, so the label of every training example ends with it exactly once (`tunestack.chat`), and the
generation config keeps it first, followed by every other stop id the model came with, so generation stops at the
end of a turn whichever of them the model emits.
"""

from __future__ import annotations

from tunestack.errors import ModelError

_PROBE = "tunestack probe answer"


def as_ids(value) -> list[int]:
    """An `eos_token_id` setting (None, an int or a list) as a list."""
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def end_of_turn_id(tokenizer) -> int | None:
    """The special token the chat template writes right after an assistant answer, or None (no template, or none
    follows the answer)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Hello"},
                                              {"role": "assistant", "content": _PROBE}], tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render this has no end-of-turn token we can use
        return None
    rest = text[text.rfind(_PROBE) + len(_PROBE):].lstrip(" \n")
    specials = set(tokenizer.all_special_tokens) | {t.content for t in tokenizer.added_tokens_decoder.values()
                                                     if t.special}
    found = max((s for s in specials if s and rest.startswith(s)), key=len, default=None)
    return tokenizer.convert_tokens_to_ids(found) if found else None


def stop_ids(generation_config, tokenizer) -> list[int]:
    """Every id generation stops on: the tokenizer's EOS (the end-of-turn token once `fix_special_tokens` ran)
    first, then the generation config's others."""
    first = as_ids(tokenizer.eos_token_id)
    return first + [i for i in as_ids(getattr(generation_config, "eos_token_id", None)) if i not in first]


def fix_special_tokens(tokenizer, model) -> None:
    """`fix_stop_tokens` on the model's generation config, and the model's config told the same EOS and pad."""
    fix_stop_tokens(tokenizer, model.generation_config)
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id


def fix_stop_tokens(tokenizer, generation_config) -> None:
    """Make the end-of-turn token the tokenizer's EOS, keep every stop id in the generation config, and give the
    tokenizer a pad token distinct from the stop ids where the vocabulary has one. Idempotent.

    The GGUF tokenizer of SmolLM2 reports `<|im_start|>` as EOS while the model stops on `<|im_end|>`; training on
    the wrong EOS is how fine-tunes end up never stopping.
    """
    configured = as_ids(generation_config.eos_token_id) or as_ids(tokenizer.eos_token_id)
    eos = end_of_turn_id(tokenizer)
    if eos is None:
        eos = configured[0] if configured else None
    if eos is None:
        raise ModelError("the model defines no EOS token and its chat template ends no turn with a special token: "
                         "generation could never stop")
    stops = [eos] + [i for i in configured if i != eos]
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos)
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id in stops:
        vocab = tokenizer.get_vocab()
        candidates = ("<|endoftext|>", "<pad>", "<|pad|>", "<|finetune_right_pad_id|>", "<unk>")
        pad = next((t for t in candidates if t in vocab and vocab[t] not in stops), None)
        tokenizer.pad_token = pad or tokenizer.eos_token
    generation_config.eos_token_id = stops if len(stops) > 1 else eos
    generation_config.pad_token_id = tokenizer.pad_token_id
