"""From sorted failures and their samples to a verdict: don't fine-tune, fine-tune, or capability gap. Pure.

A failure is **systematic** when it repeats
- across samples: at least `assess.consistent_share` of its k sampled answers fail the same way as the greedy one
  (same label, same wrong values), and
- across examples: its pattern accounts for at least `assess.min_pattern_share` of the sample's failures, in two
  examples or more.

It is **random** when its samples do not repeat it, and **isolated** when they do but nothing else in the sample fails
that way (a one-off gap in what the model knows). The rule, with the thresholds of `assess:`:

1. accuracy above `dont_finetune_above` (85%): **don't fine-tune**; the rest of the gap is for the prompt;
2. otherwise, systematic failures at least `systematic_share` (60%) of those examined: **fine-tune**;
3. otherwise: **capability gap**; more data will not fix failures that come and go or spread over the content.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from tunestack.assess.categories import Failure
from tunestack.config import AssessSection

DONT, FINETUNE, GAP = "don't fine-tune", "fine-tune", "capability gap"
GUIDANCE = (500, 2000)
"""Reviewed examples for a 7B model that fails systematically: the usual range."""


@dataclass(frozen=True)
class Examined:
    """One failing example, answered again k times with sampling."""

    failure: Failure
    """The greedy answer's failure."""
    samples: list[str | None]
    """Each sampled answer's failure signature; None for a right answer."""

    @property
    def agreement(self) -> float:
        """Share of the samples that fail exactly as the greedy answer did."""
        return sum(s == self.failure.signature for s in self.samples) / len(self.samples)


def recurring_patterns(failures: list[Failure], min_share: float) -> dict[str, int]:
    """Patterns that repeat across examples, with their counts: at least `min_share` of the failures, and two.

    >>> fails = [Failure("field", "field: a", "field: a = x")] * 3 + [Failure("field", "field: b", "field: b = y")]
    >>> recurring_patterns(fails, 0.3)
    {'field: a = x': 3}
    """
    counts = Counter(f.pattern for f in failures)
    return {p: n for p, n in counts.most_common() if n >= 2 and n / len(failures) >= min_share}


def classify(examined: Examined, recurring: dict[str, int], consistent_share: float) -> str:
    """`systematic`, `isolated` or `random` (see the module docstring).

    >>> f = Failure("vocabulary", "vocabulary: m", "vocabulary: m (case)", {"m": "CT"})
    >>> classify(Examined(f, [f.signature] * 5), {f.pattern: 9}, 0.8), classify(Examined(f, [f.signature] * 5), {}, 0.8)
    ('systematic', 'isolated')
    >>> classify(Examined(f, [f.signature, None, None, "other", None]), {f.pattern: 9}, 0.8)
    'random'
    """
    if examined.agreement < consistent_share:
        return "random"
    return "systematic" if examined.failure.pattern in recurring else "isolated"


def consistency(examined: list[Examined], recurring: dict[str, int], settings: AssessSection) -> dict:
    """The consistency figures over the examined failures."""
    classes = [classify(e, recurring, settings.consistent_share) for e in examined]
    n = len(examined)
    samples = [s for e in examined for s in e.samples]

    def share(count: int, total: int = n) -> float | None:
        return count / total if total else None

    return {
        "examined": n, "samples": settings.samples, "temperature": settings.temperature, "top_p": settings.top_p,
        "mean_agreement": share(sum(e.agreement for e in examined)) if n else None,
        "consistent": sum(e.agreement >= settings.consistent_share for e in examined),
        "sample_accuracy": share(sum(s is None for s in samples), len(samples)),
        "sometimes_right": sum(any(s is None for s in e.samples) for e in examined),
        **{cls: classes.count(cls) for cls in ("systematic", "isolated", "random")},
        **{f"{cls}_share": share(classes.count(cls)) for cls in ("systematic", "isolated", "random")},
        "classes": classes,
    }


def systematic_share(failures: list[Failure], recurring: dict[str, int], figures: dict) -> tuple[float, str]:
    """The share of failures that is systematic, and what it rests on: the samples when there are any, else the
    repeats across examples alone (the consistency check was off)."""
    if figures["examined"]:
        return figures["systematic_share"], "samples"
    return sum(f.pattern in recurring for f in failures) / len(failures) if failures else 0.0, "examples"


def decide(accuracy: float, interval: list[float], failures: list[Failure], recurring: dict[str, int],
           figures: dict, settings: AssessSection) -> tuple[str, list[str]]:
    """The verdict and its reasons."""
    ci = f"95% CI {interval[0]:.1%}-{interval[1]:.1%}"
    share, basis = systematic_share(failures, recurring, figures)
    top = _top_patterns(failures, recurring)
    if accuracy > settings.dont_finetune_above:
        reasons = [f"accuracy {accuracy:.1%} ({ci}) is above {settings.dont_finetune_above:.0%} "
                   "(assess.dont_finetune_above): fine-tuning is unlikely to close the remaining gap. Work on the "
                   "prompt first: clearer instructions, examples of the failing cases, constrained decoding for the "
                   "format."]
        if interval[0] <= settings.dont_finetune_above:
            reasons.append(f"the interval reaches below {settings.dont_finetune_above:.0%}: a larger sample "
                           "(assess.examples) would make this firmer.")
        if failures:
            reasons.append(f"the {len(failures)} failures: {top}.")
        return DONT, reasons
    reasons = [f"accuracy {accuracy:.1%} ({ci}) is at or below {settings.dont_finetune_above:.0%} "
               "(assess.dont_finetune_above): there is a gap worth closing."]
    measured = _measured(figures, share, basis)
    if share >= settings.systematic_share:
        reasons += [f"{measured}, at least {settings.systematic_share:.0%} (assess.systematic_share): the failures "
                    f"repeat. Recurring: {top}.",
                    "a format, a vocabulary or a field's convention that the model gets wrong the same way every "
                    "time is what fine-tuning on reviewed examples teaches."]
        return FINETUNE, reasons
    reasons += [f"{measured}, below {settings.systematic_share:.0%} (assess.systematic_share)."]
    if basis == "samples" and figures["examined"]:
        reasons.append(f"{figures['random_share']:.0%} of the examined failures change between samples (random) and "
                       f"{figures['isolated_share']:.0%} repeat only on their own example (isolated); the failures "
                       f"spread over {len({f.pattern for f in failures})} patterns: {top}.")
    reasons.append("more data of the same kind will not fix this: try a bigger or stronger model, give the model what "
                   "it lacks (retrieval, tools), or split the task into easier steps.")
    return GAP, reasons


def _measured(figures: dict, share: float, basis: str) -> str:
    if basis == "samples":
        return (f"{share:.0%} of the {figures['examined']} failures examined with {figures['samples']} samples each "
                "are systematic (the same failure in the samples and in other examples)")
    return (f"{share:.0%} of the failures recur across examples (consistency across samples was not measured: "
            "assess.consistency_examples is 0)")


def _top_patterns(failures: list[Failure], recurring: dict[str, int], n: int = 3) -> str:
    counts = Counter(f.pattern for f in failures).most_common()
    ranked = [(p, c) for p, c in counts if p in recurring] or counts
    return "; ".join(f"{p} in {c} of {len(failures)}" for p, c in ranked[:n]) or "none"


def training_set_size(verdict: str, share: float, size_b: float, size_assumed: bool) -> dict:
    """Suggested reviewed examples: guidance, not a measurement.

    The usual range for a 7B model is 500-2,000. It is scaled by sqrt(7 / size in billions), clamped to 0.5-2x
    (a smaller model needs more examples to learn a convention reliably), and the suggestion sits in that range by
    the share of failures that is not systematic: all systematic, the low end; none, the high end.

    >>> training_set_size(FINETUNE, 1.0, 7, False)["suggested"], training_set_size(FINETUNE, 0.5, 7, False)["range"]
    (500, [500, 2000])
    >>> training_set_size(FINETUNE, 1.0, 0.135, False)["range"]
    [1000, 4000]
    """
    scale = min(2.0, max(0.5, math.sqrt(7 / size_b)))
    low, high = (_round50(x * scale) for x in GUIDANCE)
    suggested = _round50(low + (high - low) * (1 - share))
    when = {DONT: "only if prompt work fails to close the gap", FINETUNE: "to fix the systematic failures",
            GAP: "more data is unlikely to help; this is what a fine-tune would need if you try anyway"}[verdict]
    size = f"{size_b:.3g}B parameters" + (" (assumed: set assess.model_size_b)" if size_assumed else "")
    return {"suggested": suggested, "range": [low, high], "model_size_b": size_b, "size_assumed": size_assumed,
            "when": when,
            "note": f"guidance, not a measurement: 500-2,000 reviewed examples for a 7B model, scaled x{scale:.2f} "
                    f"for {size}, placed in the range by the share of failures that is not systematic"}


def _round50(x: float) -> int:
    return int(round(x / 50) * 50)
