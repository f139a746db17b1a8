"""One rendering of a conversation to token ids, used by training, evaluation and export alike.

Training sees `prompt + completion`, evaluation generates from `prompt`, and the exported folder carries the same
tokenizer and chat template, so all three produce identical ids for the same conversation (a test checks this).
The completion always ends with the EOS token the model stops on, and that EOS is a training target.

A template without a system role (Gemma-2 and older Mistral templates raise on one; Mistral-7B-Instruct-v0.3 drops it
from every conversation whose last turn is not the user's) gets the system text merged into the first user turn, by
one rule everywhere: the system text, a blank line, then the user's text. Every rendering
goes through `fit_roles`, so task rows, probes, quartz questions and replay prompts are merged alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunestack.errors import GuardError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Rendered:
    input_ids: list[int]
    labels: list[int]

    @property
    def n_targets(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


_TAKES_SYSTEM: dict[str, bool] = {}


def takes_system(tokenizer) -> bool:
    """Whether the chat template renders a system turn both in a training conversation and in a generation prompt
    (probed once per template text). Gemma-2 raises on one; Mistral-7B-Instruct-v0.3 writes the system text only
    when the user turn is the last message, so a training conversation would lose it."""
    template = tokenizer.chat_template or ""
    if template not in _TAKES_SYSTEM:
        system, user = {"role": "system", "content": "tunestack system probe"}, {"role": "user", "content": "u"}
        try:
            rendered = [tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
                        for messages, prompt in (([system, user], True),
                                                 ([system, user, {"role": "assistant", "content": "a"}], False))]
            _TAKES_SYSTEM[template] = all(system["content"] in text for text in rendered)
        except Exception:  # noqa: BLE001 - jinja's TemplateError, or whatever the template's raise_exception raises
            _TAKES_SYSTEM[template] = False
    return _TAKES_SYSTEM[template]


def fit_roles(tokenizer, messages: list[dict]) -> list[dict]:
    """The conversation as the template can take it: without a system role, the system text goes in front of the
    first user turn, separated by a blank line (or becomes a user turn of its own when no user turn follows)."""
    if not messages or messages[0]["role"] != "system" or takes_system(tokenizer):
        return messages
    return merge_system(messages)


def merge_system(messages: list[dict]) -> list[dict]:
    r"""
    >>> merge_system([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    [{'role': 'user', 'content': 'Be brief.\n\nHi'}]
    """
    system, rest = messages[0]["content"], messages[1:]
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]


def _ids(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        fit_roles(tokenizer, messages), add_generation_prompt=add_generation_prompt, tokenize=True,
        return_dict=False,
    )
    return list(out)


def render_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of the conversation so far, ending where the assistant's answer begins."""
    return _ids(tokenizer, messages, add_generation_prompt=True)


def render_example(tokenizer, messages: list[dict]) -> Rendered:
    """Ids and labels for training on the final assistant turn only, EOS included as a target."""
    if not messages or messages[-1]["role"] != "assistant":
        raise GuardError("a training conversation must end with an assistant turn")
    prompt = render_prompt(tokenizer, messages[:-1])
    full = _ids(tokenizer, messages, add_generation_prompt=False)
    if full[: len(prompt)] != prompt:
        raise GuardError(
            "the chat template renders the prompt differently with and without the answer, so training and "
            "generation would see different tokens. Use a template whose generation prompt is a prefix of the "
            "rendered conversation."
        )
    completion = full[len(prompt):]
    eos = tokenizer.eos_token_id
    # Cut after the first EOS (templates often add a newline after it), or add EOS if the template has none:
    # either way the model learns to stop exactly where generation stops.
    completion = completion[: completion.index(eos) + 1] if eos in completion else [*completion, eos]
    if len(completion) < 2:
        raise GuardError("the assistant answer renders to no tokens besides EOS: nothing to learn")
    return Rendered(input_ids=prompt + completion, labels=[IGNORE_INDEX] * len(prompt) + completion)
