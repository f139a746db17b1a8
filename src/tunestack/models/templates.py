"""Built-in chat templates, for `model.chat_template`: a base model has none, and a broken one can be replaced.

- `chatml`: `<|im_start|>role ... <|im_end|>` turns. Best when the tokenizer has those tokens as special tokens.
- `plain`: `### System/User/Assistant` headers and the tokenizer's own EOS after each answer, for a base model whose
  vocabulary has no chat tokens: EOS is then the end of every turn, which is what the base model already knows.
"""

from __future__ import annotations

from pathlib import Path

from tunestack.errors import ConfigError

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
PLAIN = (
    "{% for message in messages %}{{ '### ' + message['role'] | capitalize }}{{ ':\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\n\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
)
BUILTIN_TEMPLATES = {"chatml": CHATML, "plain": PLAIN}


def template_text(value: str) -> str:
    """A built-in template's name, or the path of a Jinja file, as the template text."""
    if value in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[value]
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.chat_template: {value!r} is neither a built-in template "
                          f"({', '.join(BUILTIN_TEMPLATES)}) nor a file")
    return path.read_text(encoding="utf-8")
