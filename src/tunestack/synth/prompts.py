"""What the teacher is asked, and how its reply becomes a row.

Each request shows the teacher the config's instruction and a fresh sample of seed examples (one JSON object a
line, in the seeds' own roles), and asks for exactly one new example as one JSON object `{"messages": [...]}`. The
request names its own number, so every request is distinct (and its own cache entry) even when two draw the same
seeds. A reply is read leniently: a fenced code block or prose around the object is tolerated, and an object
with `user`/`assistant` (or `prompt`/`completion`, `instruction`/`output`) keys is turned into messages. The
seeds' system prompt, when they share one, is put in front of a reply that has none, so the candidate has the
task's template. Seeds with tools are shown with their `tools` beside their messages; a reply's `tools` go back on
its first message and its calls, arguments as JSON strings or objects, are read into tunestack's form
(`tunestack.tools`).

In mode `answer` there is no writing: the teacher is sent each seed's prompt (`answer_prompt`) as it stands, tools
included, and its reply is the row's new answer.
"""

from __future__ import annotations

import json
import random
import re

from tunestack.tools import TOOLS_KEY, from_openai_calls, tools_of, without_tools

SYSTEM = ("You write training examples for fine-tuning a smaller model. You follow the instruction exactly, vary "
          "the inputs realistically, never copy an example, and reply with one JSON object and nothing else.")


def request(instruction: str, seeds: list[list[dict]], number: int) -> list[dict]:
    shown = "\n".join(json.dumps(_shown(s), ensure_ascii=False) for s in seeds)
    roles = " then ".join(dict.fromkeys(m["role"] for m in seeds[0] if m["role"] != "system")) if seeds else \
        "user then assistant"
    tools = ' and their "tools"' if any(tools_of(s) for s in seeds) else ""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{instruction.strip()}\n\nExamples, one per line:\n{shown}\n\nWrite new "
                                        f"example number {number}: one JSON object {{\"messages\": [...]}} with "
                                        f"turns {roles}{tools}, as the examples have them. Reply with the JSON "
                                        "object only."}]


def _shown(seed: list[dict]) -> dict:
    """A seed as the teacher sees it: its turns but the system prompt, and its tools beside them."""
    tools = tools_of(seed)
    shown = {"messages": [m for m in without_tools(seed) if m["role"] != "system"]}
    return {**shown, "tools": tools} if tools else shown


def answer_prompt(seed: list[dict]) -> list[dict]:
    """A seed's conversation before its last assistant turn: what the teacher answers in mode `answer`.

    >>> answer_prompt([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}])
    [{'role': 'user', 'content': '2+2?'}]
    """
    last = max(i for i, m in enumerate(seed) if m["role"] == "assistant")
    return seed[:last]


def sample_seeds(seeds: list[list[dict]], k: int, seed: int, number: int) -> list[list[dict]]:
    rng = random.Random(f"{seed}:{number}")
    return rng.sample(seeds, min(k, len(seeds)))


def shared_system(seeds: list[list[dict]]) -> str | None:
    """The system prompt every seed has, or None."""
    systems = {s[0]["content"] if s and s[0]["role"] == "system" else None for s in seeds}
    return systems.pop() if len(systems) == 1 else None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_reply(text: str, system: str | None) -> dict:
    """The reply as a raw row (`{"messages": [...]}`) for prepare's validation; ValueError with the reason."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    obj = None
    for chunk in candidates:
        start = chunk.find("{")
        if start < 0:
            continue
        try:
            obj, _ = json.JSONDecoder().raw_decode(chunk[start:])
            break
        except json.JSONDecodeError:
            continue
    if not isinstance(obj, dict):
        raise ValueError(f"the reply holds no JSON object: {text[:120]!r}")
    if "messages" not in obj:
        pairs = (("user", "assistant"), ("prompt", "completion"), ("input", "output"))
        for question, answer in pairs:
            if isinstance(obj.get(question), str) and isinstance(obj.get(answer), str):
                obj = {"messages": [{"role": "user", "content": obj[question]},
                                    {"role": "assistant", "content": obj[answer]}]}
                break
        else:
            raise ValueError(f"the reply's object has no 'messages' (keys: {', '.join(sorted(obj)) or 'none'})")
    messages = obj["messages"]
    if isinstance(messages, list) and system and not (messages and isinstance(messages[0], dict)
                                                      and messages[0].get("role") == "system"):
        messages = [{"role": "system", "content": system}, *messages]
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        messages = [{**m, "content": m.get("content") or "", "tool_calls": from_openai_calls(m["tool_calls"])}
                    if isinstance(m.get("tool_calls"), list) else m for m in messages]
        if messages and isinstance(obj.get(TOOLS_KEY), list) and obj[TOOLS_KEY]:
            messages = [{**messages[0], TOOLS_KEY: obj[TOOLS_KEY]}, *messages[1:]]
    return {"messages": messages}
