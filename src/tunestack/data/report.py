"""The data report: `data_report.json`, `data_report.md` and `length_histogram.png` in `<run>/prepare/`."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from tunestack.rundir import save_figure, write_json, write_text

COUNTS = ("read", "kept", "rejected", "exact_duplicates", "near_duplicates", "conflicting_labels", "decontaminated")


def write_data_report(folder: Path, body: dict, lengths: dict[str, list[int]], max_length: int,
                      removed: list[dict]) -> None:
    body["removals"] = removal_summary(removed)
    write_json(folder / "data_report.json", body)
    plot_lengths(folder / "length_histogram.png", lengths, max_length)
    if removed:
        plot_similarity(folder / "removal_similarity.png", removed)
    write_text(folder / "data_report.md", markdown(body))


def removal_summary(removed: list[dict]) -> dict:
    """Per removal kind: how many, how alike the pairs look (word 3-gram Jaccard), and the most frequent evidence."""
    by_kind = defaultdict(list)
    for item in removed:
        by_kind[item["kind"]].append(item)
    summary = {}
    for kind, items in sorted(by_kind.items()):
        values = sorted(i["similarity"] for i in items if i.get("similarity") is not None)
        summary[kind] = {"count": len(items),
                         "similarity": {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}
                         if values else None,
                         "evidence": Counter(i.get("evidence", "") for i in items).most_common(5)}
    return summary


def markdown(body: dict) -> str:
    lines = ["# Data report", ""]
    if body["warnings"]:
        lines += ["## Warnings", "", *[f"- {w}" for w in body["warnings"]], ""]
    if body.get("row_warnings"):
        lines += ["Rows kept with a warning (each in warnings.jsonl): "
                  + ", ".join(f"{k} {v}" for k, v in body["row_warnings"].items()), ""]
    lines += ["## Counts", "", "read = kept + rejected + exact duplicates + near duplicates + conflicting labels + decontaminated", "",
              "| source | " + " | ".join(COUNTS) + " |", "|---" * (len(COUNTS) + 1) + "|"]
    for name, counts in [*body["sources"].items(), ("**total**", body["counts"])]:
        lines.append(f"| {name} | " + " | ".join(str(counts[c]) for c in COUNTS) + " |")
    lines += ["", "Rejected by kind: " + (", ".join(f"{k} {v}" for k, v in body["rejected_by_kind"].items())
                                          or "none") + " (see `rejects.jsonl`)"
              + ("; invalid by reason: " + ", ".join(f"{k} {v}" for k, v in body["invalid_by_reason"].items())
                 if body.get("invalid_by_reason") else "") + ".",
              f"Duplicates are listed in `duplicates.jsonl`, leaks with the row they matched in "
              f"`decontaminated.jsonl` ({_kinds(body['decontaminated_by'])}).", ""]
    lines += _near_copies(body)
    lines += _removals(body["removals"])
    splits = body["splits"]
    lines += ["## Splits", "", "| split | rows |", "|---|---|",
              *[f"| {k} | {v} |" for k, v in splits.items()], ""]
    if body.get("weighting"):
        lines += ["Training rows after source weights: " + ", ".join(
            f"{name} x{w['weight']:g} -> {w['rows']}" for name, w in body["weighting"].items()), ""]
    lines += [f"The holdout is sealed: sha256 `{body['holdout_sha256'][:16]}...`; only final validation reads it, "
              "and every read is logged in `holdout_reads.jsonl`.", "",
              f"Eval set age: {body['eval_age_days']} days (created {body['eval_created']}).", ""]
    lines += ["## Quality tiers", "", "| tier | read | kept |", "|---|---|---|",
              *[f"| {t} | {c['read']} | {c['kept']} |" for t, c in body["tiers"].items()], ""]
    lengths = body["lengths"]
    lines += ["## Token lengths", "", f"Under the model's chat template; max_length {lengths['max_length']}, "
              f"{lengths['over_max_length']} rows over it ({lengths['policy']}; {lengths['truncated']} truncated).",
              "", "| split | count | min | mean | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|---|---|"]
    for split, s in lengths["splits"].items():
        if s.get("count"):
            lines.append(f"| {split} | " + " | ".join(str(s[k]) for k in
                                                      ("count", "min", "mean", "p50", "p90", "p99", "max")) + " |")
    lines += ["", "![token lengths](length_histogram.png)", ""]
    mix = body["general_mix"]
    lines += ["## General-capability mix", "", f"Source: {mix['source']}, share {mix['share']:.0%} of the training "
              f"rows ({mix['planned']} general rows planned for {splits['train']} task rows). {mix['detail']}", ""]
    if body["findings"]:
        lines += ["## Consistency", "", *[f"- {f['message']}" for f in body["findings"]], ""]
    return "\n".join(lines)


def _removals(summary: dict) -> list[str]:
    if not summary:
        return []
    lines = ["## Why rows were removed", "", "Similarity is the word 3-gram Jaccard of the removed row and the row it "
             "matched, shown to make a false positive visible (it decides nothing); evidence is what the two have in "
             "common or what tells them apart.", "",
             "| kind | rows | similarity min / median / max | most frequent evidence |", "|---|---|---|---|"]
    for kind, s in summary.items():
        sim = s["similarity"]
        sims = f"{sim['min']:.2f} / {sim['median']:.2f} / {sim['max']:.2f}" if sim else "-"
        evidence = "; ".join(f"{n}x `{e[:80]}`" for e, n in s["evidence"])
        lines.append(f"| {kind} | {s['count']} | {sims} | {evidence} |")
    return lines + ["", "![similarity of removed rows](removal_similarity.png)", ""]


def _near_copies(body: dict) -> list[str]:
    near = body.get("near_copies") or {}
    lines = [f"Identity rule: `{body.get('identity_rule', '?')}` (docs/prepare.md, \"When are two rows the same\"). Near copies "
             "by inserted frequent words: "
             f"{near.get('eval_or_holdout_removed', 0)} of eval or holdout rows removed from training (kind "
             f"`inserted` in `decontaminated.jsonl`), {near.get('within_train_kept', 0)} within training kept and "
             "listed in `near_copies.jsonl`."]
    if near.get("setting"):
        lines.append(f"To remove those as near duplicates, if the words ({', '.join(near['words'][:8])}) carry no "
                     f"meaning: `{near['setting']}`.")
    return lines + [""]


def _kinds(by: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in by.items()) or "none"


def plot_lengths(path: Path, lengths: dict[str, list[int]], max_length: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    values = [v for part in lengths.values() for v in part]
    bins = max(10, min(60, len(set(values)))) if values else 10
    for split, part in lengths.items():
        if part:
            ax.hist(part, bins=bins, range=(0, max(max_length, max(values))), alpha=0.6, label=f"{split} ({len(part)})")
    ax.axvline(max_length, color="black", linestyle="--", linewidth=1, label=f"max_length {max_length}")
    ax.set_xlabel("tokens per example (chat template applied)")
    ax.set_ylabel("rows")
    ax.set_title("Token lengths")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_similarity(path: Path, removed: list[dict]) -> None:
    """One histogram per removal kind of the removed rows' similarity to what they matched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({i["kind"] for i in removed})
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 3), dpi=100, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        values = [i["similarity"] for i in removed if i["kind"] == kind and i.get("similarity") is not None]
        ax.hist(values, bins=20, range=(0, 1), color="tab:red", alpha=0.7)
        ax.set_title(f"{kind} ({sum(i['kind'] == kind for i in removed)})", fontsize=9)
        ax.set_xlabel("word 3-gram Jaccard")
    axes[0][0].set_ylabel("rows")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
