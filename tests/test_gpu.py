"""The GPU path where the CPU cannot stand in for it (issue 28): marker `gpu`, skipped without CUDA (`pytest -m gpu`
on a GPU machine). What the CPU can check of the same logic is tested beside it (the kernel and dtype choices, the
memory plan, the replay hand-off, export's peak on the CPU); these run the real thing on a GPU:

- a: full fine-tuning keeps fp32 master weights, and self-replay and evaluation generate with them under SDPA (never
  flash-attention, which refuses fp32);
- b: a run that fits is not refused after its weights load (the pre-flight runs once, before);
- h, j: greedy generation on a GPU goes through batched `generate` with SDPA, and its answers are compared with one
  prompt at a time (no batch-invariance is promised there: the share is measured and printed, not assumed);
- f: the export of a full fine-tune holds at most two models in GPU memory (`torch.cuda.max_memory_allocated`).

The two-GPU FSDP test is in tests/test_train_resume.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.gpu, pytest.mark.integration]


def test_full_fine_tuning_with_self_replay_trains_and_evaluates_under_sdpa(tiny_config: Path):
    from tunestack.cli import main
    from tunestack.rundir import read_json

    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["train"].update(method="full", learning_rate=1e-4, general_mix={"share": 0.12, "source": "self_replay"})
    tiny_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["evaluate", str(tiny_config)]) == 0
    root = Path(cfg["run"]["runs_dir"]) / "tiny"
    train = read_json(root / "train" / "manifest.json")
    assert train["method"] == "full" and train["checkpoints"]
    assert train["memory"] is not None  # the pre-flight ran, once, before the weights loaded, and let it through
    evaluate = read_json(root / "evaluate" / "manifest.json")
    assert len(evaluate["models"]) == 1 + len(train["checkpoints"])
    assert (root / "train" / "general.jsonl").read_text().strip()  # self-replay generated with fp32 weights


def test_greedy_generation_on_a_gpu_goes_through_generate_and_its_batch_agreement_is_measured(tiny_model: Path):
    import torch

    from tunestack.demo.radiology import generate
    from tunestack.evaluate.generate import LocalGenerator, loop_applies
    from tunestack.models import load_model

    model, tokenizer = load_model(tiny_model, "float32", chat_template="chatml")
    assert model.device.type == "cuda" and not loop_applies(model.device)
    prompts = [row["messages"][:-1] for row in generate(24, seed=4)]
    batched = LocalGenerator(model, tokenizer, batch_size=24).generate(prompts, 32)
    alone = LocalGenerator(model, tokenizer, batch_size=1).generate(prompts, 32)
    same = sum(a.token_ids == b.token_ids for a, b in zip(batched, alone))
    print(f"GPU fp32, SDPA: {same}/{len(prompts)} answers identical at batch 24 and batch 1 "
          f"({torch.cuda.get_device_name()})")
    assert same >= len(prompts) // 2  # near-ties may move; most answers must not


def test_the_export_of_a_full_fine_tune_holds_at_most_two_models_in_gpu_memory(tmp_path: Path):
    import test_export_memory

    measured, size = test_export_memory.export_full_fine_tune(tmp_path)
    print(f"GPU: the export held at most {measured['cuda_peak'] / size:.2f} x the model's fp32 size")
    assert measured["cuda_peak"] <= 2.1 * size
