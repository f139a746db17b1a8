"""The self-replay pool is large enough for 50,000 task rows at the default share, drawn from a package, and
disjoint from the retention suites it must not teach."""

from __future__ import annotations

from pathlib import Path

from tunestack.config import load_config


def test_replay_pool_covers_50k_task_rows_and_never_holds_a_probe_or_quartz_question(tiny_config: Path):
    from tunestack.data.canon import normalize
    from tunestack.data.general import general_suite
    from tunestack.data.leaks import suite_rows
    from tunestack.data.prepare import Ledger, prepare_general
    from tunestack.data.general import replay_count

    cfg = load_config(tiny_config, ["train.general_mix.source=self_replay", "evaluate.retention.quartz_examples=50"])
    suite = suite_rows(general_suite(cfg))
    small = prepare_general(cfg, None, [], suite, Ledger(), n_task=400)["rows"]
    assert all(not p["id"].startswith("evals:") for p in small)  # a small run keeps the 120 built-in prompts

    planned = replay_count(50_000, cfg.train.general_mix.share)  # 6,819 general rows at 12%
    pool = prepare_general(cfg, None, [], suite, Ledger(), n_task=50_000)["rows"]
    assert len(pool) >= 1.25 * planned, (len(pool), planned)
    assert len({p["prompt"] for p in pool}) == len(pool)
    sources = {p["id"].split(":")[1].split("/")[0] for p in pool if p["id"].startswith("evals:")}
    assert len(sources) > 200  # hundreds of eval sets, none dominating
    assert "quartz" not in sources
    questions = {normalize(messages[-2]["content"] if len(messages) > 1 else messages[0]["content"])
                 for _, messages in suite}
    assert not questions & {normalize(p["prompt"]) for p in pool}
