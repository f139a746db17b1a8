"""One rendering of a conversation to token ids, used by training, evaluation and export alike.

Training sees `prompt + completion`, evaluation generates from `prompt`, and the exported folder carries the same
tokenizer and chat template, so all three produce identical ids for the same conversation (a test checks this).
The completion always ends with the EOS token the model stops on, and that EOS is a training target.
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


def _ids(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=False
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
