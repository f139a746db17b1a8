"""Policy and consistency checks on validated rows: quality tiers, mixed system prompts, mixed answer formats.
Pure: no torch, no disk.
"""

from __future__ import annotations

import json
from collections import Counter

from tunestack.data.formats import Reject, Row
from tunestack.tools import tools_of


def apply_quality(rows: list[Row], min_rating: float, tier_caps: dict[str, int]) -> tuple[list[Row], list[Reject]]:
    """Keep production-log rows only when reviewed or rated >= min_rating; then cap rows per tier (read order).

    >>> rows = [Row([], "f", 1, {"source": "production"}), Row([], "f", 2, {"source": "production", "rating": 5.0}),
    ...         Row([], "f", 3, {"source": "synthetic"}), Row([], "f", 4, {"source": "synthetic"})]
    >>> kept, out = apply_quality(rows, 4, {"synthetic": 1})
    >>> [r.line for r in kept], [(r.line, r.kind) for r in out]
    ([2, 3], [(1, 'quality'), (4, 'tier_cap')])
    """
    kept, rejects = [], []
    taken: Counter = Counter()
    for row in rows:
        reason, kind = None, "quality"
        if row.tier == "production" and not row.meta.get("reviewed") and (row.meta.get("rating") or 0) < min_rating:
            reason = (f"production-log row neither reviewed nor rated >= {min_rating:g} "
                      f"(rating {row.meta.get('rating')}); review or rate it to keep it")
        elif row.tier in tier_caps and taken[row.tier] >= tier_caps[row.tier]:
            reason, kind = f"over the {row.tier} tier cap of {tier_caps[row.tier]} rows (data.quality.tier_caps)", \
                "tier_cap"
        if reason:
            rejects.append(Reject(row.file, row.line, reason, json.dumps(row.to_json(), ensure_ascii=False),
                                  kind, row.origin))
        else:
            taken[row.tier] += 1
            kept.append(row)
    return kept, rejects


def answer_format(text: str) -> str:
    """json, code or prose.

    >>> answer_format('{"a": 1}'), answer_format("```py\\nx = 1\\n```"), answer_format("It is 4.")
    ('json', 'code', 'prose')
    """
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(stripped)
            return "json"
        except json.JSONDecodeError:
            return "broken json"
    if stripped.startswith("```"):
        return "code"
    return "prose"


def consistency_findings(rows: list[Row], mixed_share: float) -> list[dict]:
    """More than one system prompt, or more than one answer format, across the task's rows (all sources together:
    they teach one task), each minority above mixed_share of the rows."""
    if not rows:
        return []
    systems = [r.messages[0]["content"] if r.messages[0]["role"] == "system" else "(no system prompt)" for r in rows]
    # a tool-using assistant answers with calls on some turns and text on others: that is one task, not a mix
    answers = [answer_format(r.messages[-1]["content"]) if not tools_of(r.messages) else "tool use" for r in rows]
    return [*_mixed("system prompts", systems, rows, mixed_share, show=lambda s: s[:80]),
            *_mixed("answer formats", answers, rows, mixed_share, show=str)]


def _mixed(what: str, values: list[str], rows: list[Row], mixed_share: float, show) -> list[dict]:
    counts = Counter(values)
    if len(counts) < 2:
        return []
    majority = counts.most_common(1)[0][0]
    minority = {v: n for v, n in counts.items() if v != majority and n / len(values) > mixed_share}
    if not minority:
        return []
    examples = [f"{r.file}:{r.line}" for r, v in zip(rows, values) if v in minority][:5]
    origins = ", ".join(sorted({r.origin for r, v in zip(rows, values) if v in minority}))
    variants = "; ".join(f"{show(v)!r}: {n}" for v, n in counts.most_common(6))
    return [{"check": what, "distinct": len(counts), "counts": {show(v): n for v, n in counts.items()},
             "message": f"{len(counts)} different {what} in the task data ({variants}); minority rows in {origins}, "
                        f"first: {', '.join(examples)}. One task should be taught one way: normalise them, or set "
                        "data.mixed_share if the mix is intended"}]
