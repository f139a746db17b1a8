"""Tiny local models for tests: a 2-layer Llama with a byte-level BPE tokenizer trained on a given corpus."""

from __future__ import annotations

from pathlib import Path

from tunestack.models.templates import CHATML


def build_tiny_model(target: Path, corpus: list[str], *, vocab_size: int = 512, seed: int = 0,
                     shape: dict | None = None) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on `corpus` and a ChatML template, for tests.
    `shape` overrides LlamaConfig fields (hidden_size, num_hidden_layers, ..., a vocab_size above the tokenizer's)
    for a larger model with random weights: the memory test and `bench/gpu_check.sh` use one."""
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
    for key, value in (shape or {}).items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 0
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
