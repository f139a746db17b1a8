"""One rendering of a conversation to token ids, used by training, evaluation, export and serving alike.

Training sees `prompt + completion`, evaluation generates from `prompt`, and the exported folder carries the same
tokenizer and chat template, so all three produce identical ids for the same conversation (a test checks this).
The completion always ends with the EOS token the model stops on, and that EOS is a training target.

A template without a system role (Gemma-2 and older Mistral templates raise on one; Mistral-7B-Instruct-v0.3 drops it
from every conversation whose last turn is not the user's) gets the system text merged into the first user turn, by
one rule everywhere: the system text, a blank line, then the user's text. Every rendering
goes through `fit_roles`, so task rows, probes, quartz questions and replay prompts are merged alike.

Tools (`tunestack.tools` holds the conversation form) are rendered by the model's own template, `tools=`, where it
can (probed once per template: Llama-3.1, Qwen2.5/Qwen3, Mistral v0.3, Hermes-style), with each template's demands
met: one call per assistant turn (Llama-3.1's raises on more, so parallel calls become a sequence of call, result)
and 9-character alphanumeric call ids (Mistral's raises on others; ids are mapped the same way for a call and its
result). Any other template gets the one fallback of `tunestack.tools.fallback_messages`.

Training learns every assistant turn whose `weight` is not 0, each up to and including its end-of-turn token; weight-0
turns and everything else are context. Stock templates have no generation markers, so each turn's label span is found
by rendering the conversation up to that turn twice, as a generation prompt and with the turn: the difference is the
turn. Where the whole conversation renders those same ids at the same place, the turns share one sequence; where the
template rewrites history (Qwen3 drops earlier reasoning, Mistral moves the tool list to the last user turn), a turn
gets a sequence of its own, ending at it, exactly as the model sees it when it generates that turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunestack.errors import GuardError
from tunestack.tools import (fallback_messages, learned_turns, map_ids, one_call_per_turn, short_id, tools_of,
                             without_tools)

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


@dataclass(frozen=True)
class ToolSupport:
    """What a chat template does with tools, probed once per template text."""

    native: bool
    """It renders tool definitions, calls and results itself."""
    one_call: bool = False
    """It refuses more than one call in an assistant turn (Llama-3.1)."""
    short_ids: bool = False
    """It refuses call ids other than 9 alphanumeric characters (Mistral v0.3)."""


_TOOL_SUPPORT: dict[str, ToolSupport] = {}
_PROBE_FN, _PROBE_ARG, _PROBE_RESULT = "tunestack_probe_fn", "tunestack_probe_arg", "tunestack_probe_result"


def _probe_conversation(calls: int) -> list[dict]:
    tool = {"type": "function", "function": {"name": _PROBE_FN, "description": "a probe",
                                             "parameters": {"type": "object",
                                                            "properties": {"x": {"type": "string"}}}}}
    made = [{"id": f"call_probe_{i}", "type": "function",
             "function": {"name": _PROBE_FN, "arguments": {"x": f"{_PROBE_ARG}{i}"}}} for i in range(calls)]
    results = [{"role": "tool", "tool_call_id": c["id"], "name": _PROBE_FN, "content": f"{_PROBE_RESULT}{i}"}
               for i, c in enumerate(made)]
    return [{"role": "user", "content": "u", "tools": [tool]}, {"role": "assistant", "content": "", "tool_calls": made},
            *results, {"role": "assistant", "content": "done"}]


def tool_support(tokenizer) -> ToolSupport:
    """Whether the template renders tools natively, and with which demands (see `ToolSupport`)."""
    template = tokenizer.chat_template or ""
    if template not in _TOOL_SUPPORT:
        _TOOL_SUPPORT[template] = ToolSupport(native=False)
        for support in (ToolSupport(True), ToolSupport(True, short_ids=True), ToolSupport(True, one_call=True),
                        ToolSupport(True, one_call=True, short_ids=True)):
            conversation = _probe_conversation(2)
            try:
                messages, tools = _fit_tools(support, conversation)
                text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
            except Exception:  # noqa: BLE001 - jinja's TemplateError, or whatever the template's raise_exception raises
                continue
            if (text.count(_PROBE_FN) >= 3 and all(f"{_PROBE_ARG}{i}" in text and f"{_PROBE_RESULT}{i}" in text
                                                   for i in range(2))):
                _TOOL_SUPPORT[template] = support
            break
    return _TOOL_SUPPORT[template]


def _fit_tools(support: ToolSupport, messages: list[dict]) -> tuple[list[dict], list[dict] | None]:
    if not support.native:
        return fallback_messages(messages), None
    tools, messages = tools_of(messages), without_tools(messages)
    if support.one_call:
        messages = one_call_per_turn(messages)
    if support.short_ids:
        messages = map_ids(messages, short_id)
    return messages, tools


def uses_tools(messages: list[dict]) -> bool:
    return bool(tools_of(messages)) or any(m.get("tool_calls") or m["role"] == "tool" for m in messages)


def fit_conversation(tokenizer, messages: list[dict]) -> tuple[list[dict], list[dict] | None]:
    """The conversation as the template takes it, and the tools to pass it (None: none, or rendered as text)."""
    tools = None
    if uses_tools(messages):
        messages, tools = _fit_tools(tool_support(tokenizer), messages)
    return fit_roles(tokenizer, messages), tools


def _apply(tokenizer, messages: list[dict], tools: list[dict] | None, add_generation_prompt: bool) -> list[int]:
    kwargs = {"tools": tools} if tools else {}
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True,
                                        return_dict=False, **kwargs)
    return list(out)


def render_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of the conversation so far, ending where the assistant's answer begins."""
    fitted, tools = fit_conversation(tokenizer, messages)
    return _apply(tokenizer, fitted, tools, add_generation_prompt=True)


def render_text(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The conversation as the template writes it (for people and tests; training uses the ids)."""
    fitted, tools = fit_conversation(tokenizer, messages)
    kwargs = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(fitted, add_generation_prompt=add_generation_prompt, tokenize=False,
                                         **kwargs)


def _turn(tokenizer, fitted: list[dict], tools, k: int) -> tuple[list[int], list[int]]:
    """(prompt ids, the turn's ids up to and including EOS) of assistant turn `k` as the last turn."""
    prompt = _apply(tokenizer, fitted[:k], tools, add_generation_prompt=True)
    full = _apply(tokenizer, fitted[: k + 1], tools, add_generation_prompt=False)
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
    return prompt, completion


def render_training(tokenizer, messages: list[dict]) -> list[Rendered]:
    """The training sequences of one conversation: ids, and labels on every learned assistant turn (see the module
    docstring). The sequence holding the last learned turn comes last; usually it is the only one."""
    fitted, tools = fit_conversation(tokenizer, messages)
    learned = learned_turns(fitted)
    if not learned:
        raise GuardError("a training conversation needs an assistant turn to learn (one whose weight is not 0)")
    turns = {k: _turn(tokenizer, fitted, tools, k) for k in learned}
    prompt, completion = turns[learned[-1]]
    ids = prompt + completion
    labels = [IGNORE_INDEX] * len(prompt) + completion
    alone = []
    for k in learned[:-1]:
        before, own = turns[k]
        at = len(before)
        if ids[:at] == before and ids[at: at + len(own)] == own:
            labels[at: at + len(own)] = own
        else:  # the template rewrites this turn once the conversation goes on: it trains as its own sequence
            alone.append(Rendered(input_ids=before + own, labels=[IGNORE_INDEX] * len(before) + own))
    return [*alone, Rendered(input_ids=ids, labels=labels)]


def render_example(tokenizer, messages: list[dict]) -> Rendered:
    """The training sequence that holds the conversation's last learned assistant turn (`render_training`'s last)."""
    if not messages or messages[-1]["role"] != "assistant":
        raise GuardError("a training conversation must end with an assistant turn")
    return render_training(tokenizer, messages)[-1]

