"""`assess/assess.md` and the terminal summary, from the body of `assess/assess.json`. Pure."""

from __future__ import annotations


CLASSES = (("systematic", "systematic (repeats across samples and examples)"),
           ("isolated", "isolated (repeats across samples only)"), ("random", "random (changes between samples)"))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ci(interval: list[float]) -> str:
    return f"{interval[0]:.1%}-{interval[1]:.1%}"


def category_rows(body: dict) -> list[str]:
    """The failure table: each label, its category, count, share of the failures and of the sample."""
    lines = ["| failure | category | count | share of failures | share of sample |", "|---|---|---|---|---|"]
    for label, item in body["failures"]["by_label"].items():
        lines.append(f"| {label} | {item['category']} | {item['count']} | {_pct(item['share'])} | "
                     f"{_pct(item['count'] / body['sample']['n'])} |")
    return lines


def consistency_rows(figures: dict) -> list[str]:
    n = figures["examined"]
    if not n:
        return ["Not measured (assess.consistency_examples is 0, or there was no failure to examine)."]
    return [
        f"{n} failing examples, each answered {figures['samples']} more times at temperature "
        f"{figures['temperature']:g} (top_p {figures['top_p']:g}).", "",
        "| figure | value |", "|---|---|",
        f"| samples failing exactly as the greedy answer (mean) | {_pct(figures['mean_agreement'])} |",
        f"| failures repeated in enough samples (consistent) | {figures['consistent']} of {n} |",
        f"| examples right in at least one sample | {figures['sometimes_right']} of {n} |",
        f"| accuracy of the samples | {_pct(figures['sample_accuracy'])} |",
        *[f"| {name} | {figures[cls]} ({_pct(figures[cls + '_share'])}) |" for cls, name in CLASSES],
    ]


def field_rows(body: dict) -> list[str]:
    errors = body["failures"]["field_errors"]
    if not errors:
        return []
    per_field = body["metrics"].get("per_field_accuracy") or {}
    lines = ["", "## Fields", "",
             "Every wrong field of the answers that parse as JSON objects, whatever their primary category.", "",
             "| field | accuracy | wrong value | vocabulary slip |", "|---|---|---|---|"]
    for name, counts in errors.items():
        lines.append(f"| {name} | {_pct(per_field.get(name))} | {counts['content']} | {counts['vocabulary']} |")
    return lines


def markdown(body: dict) -> str:
    model, sample, fails = body["model"], body["sample"], body["failures"]
    strata = ", ".join(f"{k} {v}" for k, v in sample["strata"].items())
    size = body["training_set"]
    lines = [
        f"# Assessment of {model['name']}: {body['verdict']}", "",
        f"{sample['n']} examples drawn from {sample['available']} ({sample['from']})"
        + (f", stratified by `{sample['stratify_by']}`: {strata}" if strata else "")
        + f". Backend `{model['backend']}`, the evaluate stage's prompts and template, greedy, at most "
        f"{body['decoding']['max_new_tokens']} new tokens.",
        "", "## Verdict", "", f"**{body['verdict']}**", "", *[f"- {r}" for r in body["reasons"]], "",
        f"Suggested training set: about **{size['suggested']:,}** reviewed examples (range {size['range'][0]:,}-"
        f"{size['range'][1]:,}), {size['when']}. This is {size['note']}.", "",
        "## Accuracy", "",
        f"{body['accuracy']:.1%} (Wilson 95% CI {_ci(body['accuracy_ci95'])}), {body['correct']} of {sample['n']}; "
        f"format compliance {_pct(body['metrics'].get('format_compliance'))}; EOS {_pct(body['eos_rate'])}.", "",
        "## Failures", "", f"{fails['n']} failures, each counted once under its primary category.", "",
        *category_rows(body), *field_rows(body), "", "Recurring patterns (across examples):", "",
        *([f"- {p['pattern']}: {p['count']} ({_pct(p['share'])} of failures)" for p in fails["patterns"]
           if p["recurring"]] or ["- none"]),
        "", "## Consistency across samples", "", *consistency_rows(body["consistency"]),
        *spread_lines(body.get("reward_spread")),
    ]
    return "\n".join(lines) + "\n"


def spread_lines(found: dict | None) -> list[str]:
    """The reward spread GRPO would start from (`assess.spread`), when the config trains with GRPO."""
    if not found:
        return []
    rewards = ", ".join(f"{r['name']} x{r['weight']:g}" for r in found["rewards"])
    means = ", ".join(f"{name} {value:.3f}" for name, value in found["per_reward"].items())
    return ["", "## Reward spread (GRPO)", "",
            f"{found['prompts']} prompts, {found['group_size']} answers each at temperature {found['temperature']}, "
            f"rewards {rewards}: mean reward {found['mean_reward']:.3f} ({means}), mean spread within a group "
            f"{found['mean_group_std']:.3f}, **{found['zero_spread_share']:.0%} of the groups without signal** "
            "(every answer scored alike).", "", found["advice"] + "."]


def terminal_lines(body: dict) -> list[str]:
    sample, fails, figures = body["sample"], body["failures"], body["consistency"]
    top = ", ".join(f"{label} {item['count']}" for label, item in list(fails["by_label"].items())[:4])
    lines = [f"assess {body['model']['name']} ({body['model']['backend']}) on {sample['n']} examples",
             f"accuracy {body['accuracy']:.1%} (95% CI {_ci(body['accuracy_ci95'])}); {fails['n']} failures"
             + (f": {top}" if top else "")]
    if figures["examined"]:
        lines.append(f"consistency: {figures['examined']} failures x {figures['samples']} samples: systematic "
                     f"{_pct(figures['systematic_share'])}, isolated {_pct(figures['isolated_share'])}, random "
                     f"{_pct(figures['random_share'])}; samples fail as the greedy answer did "
                     f"{_pct(figures['mean_agreement'])}")
    size = body["training_set"]
    lines += [f"verdict: {body['verdict']}", *[f"  - {r}" for r in body["reasons"]],
              f"training set: about {size['suggested']:,} reviewed examples (range {size['range'][0]:,}-"
              f"{size['range'][1]:,} for {size['model_size_b']:.3g}B{' assumed' if size['size_assumed'] else ''}; "
              f"guidance), {size['when']}"]
    found = body.get("reward_spread")
    if found:
        lines.append(f"reward spread (GRPO): {found['prompts']} prompts x {found['group_size']} answers at temperature "
                     f"{found['temperature']}: mean reward {found['mean_reward']:.3f}, spread within a group "
                     f"{found['mean_group_std']:.3f}, {found['zero_spread_share']:.0%} of groups without signal")
    return lines
