"""Stage `quantize` on the tiny model: llm-compressor really runs (on the CPU, through the pin-memory workaround),
its compressed-tensors output loads back through transformers, the gate rejects a candidate planted to fail and
chooses the next one that passes, and no eval or holdout row is ever calibrated on."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tunestack.report import results_schema, write_report

pytestmark = pytest.mark.integration

PLANTED = {"method": "rtn", "bits": 2, "group_size": None, "symmetric": True}  # 2-bit, one scale per channel
PASSING = {"method": "gptq", "bits": 8, "group_size": None}  # W8A16 per channel: close to it


def configured(tiny_config: Path, **quantize) -> Path:
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["quantize"] = {"calibration": {"rows": 16, "max_length": 64}, **quantize}
    cfg["train"].update({"epochs": 10, "learning_rate": 1e-2, "num_checkpoints": 1})  # an export that writes JSON
    cfg["evaluate"]["retention"]["quartz_examples"] = 48  # enough questions for retention to see the damage
    tiny_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return tiny_config


def test_the_gate_rejects_a_planted_failure_and_chooses_the_next_candidate(tiny_config: Path):
    from tunestack.config import load_config
    from tunestack.data.prepare import read_jsonl
    from tunestack.models import load_model
    from tunestack.models.load import compressed
    from tunestack.pipeline import run_stages
    from tunestack.quantize.calibration import conversation_hash, prompt_hash

    path = configured(tiny_config, candidates=[PLANTED, {"method": "awq", "bits": 4, "group_size": 32}, PASSING],
                      min_retention=0.97, min_general_retention=0.9)
    cfg = load_config(path)
    run = run_stages(cfg, until="quantize")
    body = run.require("quantize")
    planted, chosen_row = body["candidates"][0], body["candidates"][-1]
    assert planted["name"] == "rtn-w2a16-sym-ch" and not planted["passes"] and planted["failures"]
    assert planted["agreement"] < chosen_row["agreement"]  # its answers moved away from the export's
    assert body["chosen"] == chosen_row["name"] != planted["name"] and chosen_row["passes"]
    assert all(not c["passes"] for c in body["candidates"][:-1])  # the first that passes is chosen, no later one
    reference = body["reference"]
    for row in body["candidates"]:  # each figure as a share of the export's, measured in this run
        assert row["kept"]["format_compliance"] == round(row["format_compliance"] / reference["format_compliance"], 4)
        assert row["sizes"]["weight_bytes"] < reference["sizes"]["weight_bytes"]
        assert row["sizes"]["tied_embedding"] and row["calibration_seconds"] >= 0
    assert chosen_row["method"] != "rtn" and chosen_row["calibration_rows"] == 16

    results = write_report(cfg, run)  # each candidate a row of the results, the chosen one marked
    jsonschema.validate(results, results_schema())
    rows = [m for m in results["models"] if m["kind"] == "quantized"]
    assert [m["name"] for m in rows] == [c["name"] for c in body["candidates"]]
    assert [m["chosen"] for m in rows] == [False] * (len(rows) - 1) + [True]
    assert not any(m["selected"] for m in rows) and results["quantize"]["chosen"] == body["chosen"]
    report = (run.root / "report.md").read_text()
    assert f"| {body['chosen']} | " in report and "**chosen**" in report and planted["failures"][0] in report

    chosen = Path(body["path"])
    assert compressed(chosen)
    config = json.loads((chosen / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    model, tokenizer = load_model(chosen)
    assert model.config.vocab_size and tokenizer.chat_template  # loads back decompressed, template and all
    assert all(c["path"] is None for c in body["candidates"][:-1])  # keep: chosen

    calibration = read_jsonl(run.root / "quantize" / "calibration.jsonl")
    assert len(calibration) == 16 and {r["source"] for r in calibration} <= {"train", "general"}
    sealed = {prompt_hash(r["messages"]) for name in ("eval", "holdout")
              for r in read_jsonl(run.root / "prepare" / f"{name}.jsonl")}
    assert sealed and not sealed & {r["prompt_hash"] for r in calibration}  # no eval or holdout prompt
    train = {conversation_hash(r["messages"]) for r in read_jsonl(run.root / "prepare" / "train.jsonl")}
    general = {conversation_hash(r["messages"]) for r in read_jsonl(run.root / "train" / "general.jsonl")}
    assert {r["hash"] for r in calibration} <= train | general
    assert body["device"] == "cpu" and "pin-memory" in body["path_ran"]


def test_group_sizes_are_checked_against_the_model_before_any_work(tiny_model: Path):
    from tunestack.config.quantize import CandidateSpec
    from tunestack.errors import StageError
    from tunestack.quantize.methods import default_ladder, validate
    from tunestack.quantize.stage import layer_map

    layers = layer_map(tiny_model, ["lm_head"], False)
    assert layers and "lm_head" not in layers and not any("embed" in n for n in layers)
    with pytest.raises(StageError) as refused:
        validate([CandidateSpec(method="awq", group_size=128)], layers)
    message = str(refused.value)
    assert "group_size 128 does not divide the input size 64" in message and "q_proj" in message
    assert "group sizes that fit this model: 64, 32" in message
    ladder = [c.name for c in default_ladder(layers)]
    assert ladder == ["awq-w4a16-asym-g64", "awq-w4a16-asym-g32", "gptq-w4a16-sym-g64", "gptq-w8a16-sym-ch"]


def test_awq_on_a_cpu_needs_the_pin_memory_workaround(tiny_model: Path):
    """llm-compressor's AWQ pins calibration activations, which needs an accelerator: without the workaround it
    stops on a CPU; with it, the same recipe quantizes."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunestack.config.quantize import CandidateSpec
    from tunestack.quantize.calibration import as_dataset
    from tunestack.quantize.methods import cpu_workaround, recipe

    if torch.accelerator.is_available():
        pytest.skip("an accelerator can pin memory")
    from llmcompressor import oneshot

    rows = [{"input_ids": list(range(5, 37))} for _ in range(4)]
    spec = CandidateSpec(method="awq", bits=4, group_size=32, n_grid=3)

    def quantize():
        model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        oneshot(model=model, recipe=recipe(spec, ["lm_head"]), dataset=as_dataset(rows), num_calibration_samples=4,
                max_seq_length=32, pipeline="sequential")
        return model

    with pytest.raises(RuntimeError, match="accelerator") as failed:
        quantize()
    assert any(frame.name == "pin_memory" for frame in failed.traceback)
    with cpu_workaround() as patched:
        assert patched
        model = quantize()
    assert model.model.layers[0].self_attn.q_proj.weight_scale.shape[-1] == 64 // 32


def test_a_calibration_row_with_an_eval_prompt_stops_the_stage(tiny_config: Path):
    """Prepare decontaminates the training split; should an eval prompt reach it anyway (here planted, with another
    answer), calibration refuses to use it rather than fit the quantizer to the eval set."""
    from tunestack.config import load_config
    from tunestack.data.prepare import read_jsonl, write_jsonl
    from tunestack.errors import GuardError
    from tunestack.models import load_base
    from tunestack.pipeline import run_stages
    from tunestack.quantize.calibration import calibration_rows

    cfg = load_config(configured(tiny_config, calibration={"rows": 10_000, "max_length": 64}))
    run = run_stages(cfg, until="prepare")
    tokenizer = load_base(cfg.model, tokenizer_only=True)[1]
    assert len(calibration_rows(cfg, run, tokenizer)) == len(read_jsonl(run.root / "prepare" / "train.jsonl"))
    train = read_jsonl(run.root / "prepare" / "train.jsonl")
    planted = read_jsonl(run.root / "prepare" / "eval.jsonl")[0]
    planted["messages"][-1]["content"] = "{}"
    write_jsonl(run.root / "prepare" / "train.jsonl", train + [planted])
    with pytest.raises(GuardError, match="1 calibration rows have an eval or holdout prompt"):
        calibration_rows(cfg, run, tokenizer)
