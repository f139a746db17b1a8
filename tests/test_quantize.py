"""Stage `quantize` on the tiny model: llm-compressor really runs (on the CPU, through the pin-memory workaround),
its compressed-tensors output loads back through transformers, the gate rejects a candidate planted to fail and
chooses the next one that passes, and no eval or holdout row is ever calibrated on."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tunestack.report.results import results_schema, write_report

pytestmark = pytest.mark.integration

PLANTED = {"method": "rtn", "bits": 2, "group_size": None, "symmetric": True,  # 2-bit, one scale per channel,
           "observer": "minmax"}  # the plain range: no clipping search to rescue it
PASSING = {"method": "gptq", "bits": 8, "group_size": None}  # W8A16 per channel: close to it


def configured(tiny_config: Path, **quantize) -> Path:
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["quantize"] = {"calibration": {"rows": 16, "max_length": 64}, **quantize}
    cfg["train"].update({"epochs": 10, "learning_rate": 1e-2, "num_checkpoints": 1})  # an export that writes JSON
    cfg["evaluate"]["retention"]["quartz_examples"] = 48  # enough questions for retention to see the damage
    # a tiny model keeps instructions by chance (an empty answer avoids a word): retention here rests on the probes
    # and quartz, where the planted damage shows; the instruction suite's own test is tests/test_verdict.py
    cfg["evaluate"]["retention"]["instructions"] = 0
    cfg["evaluate"]["retention"]["choices"] = 0  # and answers 16 questions near chance
    # one look at retention: on every probe (a further look draws all 80) the planted export's own format bleed
    # shows against the base model, and every candidate inherits it; this test is about the gate's ladder
    cfg["select"] = {**cfg.get("select", {}), "retention_looks": 1}
    tiny_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return tiny_config


def test_the_gate_rejects_a_planted_failure_and_chooses_the_next_candidate(tiny_config: Path):
    from tunestack.config import load_config
    from tunestack.rundir import read_jsonl
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
    assert planted["name"] == "rtn-w2a16-sym-ch-minmax" and not planted["passes"] and planted["failures"]
    assert planted["agreement"] < chosen_row["agreement"]  # its answers moved away from the export's
    assert body["chosen"] == chosen_row["name"] != planted["name"] and chosen_row["passes"]
    assert all(not c["passes"] for c in body["candidates"][:-1])  # the first that passes is chosen, no later one
    reference = body["reference"]
    for row in body["candidates"]:  # each figure as a share of the export's, measured in this run
        assert row["kept"]["format_compliance"] == round(row["format_compliance"] / reference["format_compliance"], 4)
        assert row["sizes"]["weight_bytes"] < reference["sizes"]["weight_bytes"]
        assert row["sizes"]["tied_embedding"] and row["calibration_seconds"] >= 0
        low, high = row["general_retention_ci95"]  # paired bootstrap over the same probes and questions
        assert low <= row["general_retention"] <= high and high - low > 0
        lost_low, lost_high = row["general_retention_drop_ci95"]
        assert lost_low <= reference["general_retention"] - row["general_retention"] <= lost_high
    assert chosen_row["method"] != "rtn" and chosen_row["calibration_rows"] == 16

    results = write_report(cfg, run)  # each candidate a row of the results, the chosen one marked
    jsonschema.validate(results, results_schema())
    rows = [m for m in results["models"] if m["kind"] == "quantized"]
    assert [m["name"] for m in rows] == [c["name"] for c in body["candidates"]]
    assert [m["chosen"] for m in rows] == [False] * (len(rows) - 1) + [True]
    assert not any(m["selected"] for m in rows) and results["quantize"]["chosen"] == body["chosen"]
    report = (run.root / "report.md").read_text()
    assert f"| {body['chosen']} | " in report and "**chosen**" in report and planted["failures"][0] in report
    assert "Retention lost against the export, in points, 95% interval" in report

    chosen = Path(body["path"])
    assert compressed(chosen)
    config = json.loads((chosen / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    model, tokenizer = load_model(chosen)
    assert model.config.vocab_size and tokenizer.chat_template  # loads back decompressed, template and all
    assert all(c["path"] is None for c in body["candidates"][:-1])  # keep: chosen

    calibration = read_jsonl(run.root / "quantize" / "calibration.jsonl")
    assert len(calibration) == 16 and {r["source"] for r in calibration} <= {"train", "general"}
    sealed = {prompt_hash(r) for name in ("eval", "holdout")
              for r in read_jsonl(run.root / "prepare" / f"{name}.jsonl")}
    assert sealed and not sealed & {r["prompt_hash"] for r in calibration}  # no eval or holdout prompt
    train = {conversation_hash(r) for r in read_jsonl(run.root / "prepare" / "train.jsonl")}
    general = {conversation_hash(r) for r in read_jsonl(run.root / "train" / "general.jsonl")}
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
    assert ladder == ["gptq-w4a16-asym-g64", "gptq-w4a16-asym-g64-w8-downproj", "gptq-w8a16-sym-ch"]
    down = {name: size for name, size in layers.items() if name.endswith("down_proj")}
    assert down and set(down.values()) == {128}  # the tiny MLP is 128 wide: only down_proj takes g128
    with pytest.raises(StageError, match="group_size 128 does not divide"):
        validate([CandidateSpec(method="gptq", group_size=128)], layers)
    every_other = [n for n in layers if not n.endswith("down_proj")]
    validate([CandidateSpec(method="gptq", group_size=128, eight_bit=every_other)], layers)  # per channel: fits


def test_mixed_precision_puts_the_listed_layers_at_eight_bits(tiny_model: Path):
    """`eight_bit` layers get 8 bits per channel, symmetric; every other Linear layer the candidate's own bits,
    group size and zero points; the saved folder records both schemes, and a candidate already at 8 bits cannot
    list any."""
    import torch
    from llmcompressor import oneshot
    from pydantic import ValidationError
    from transformers import AutoModelForCausalLM

    from tunestack.config.quantize import CandidateSpec
    from tunestack.quantize.calibration import as_dataset
    from tunestack.quantize.methods import cpu_workaround, recipe

    spec = CandidateSpec(method="gptq", bits=4, group_size=32, eight_bit=["re:.*down_proj"])
    assert spec.name == "gptq-w4a16-asym-g32-w8-downproj" and not spec.sym
    with pytest.raises(ValidationError, match="8-bit already"):
        CandidateSpec(method="gptq", bits=8, eight_bit=["re:.*down_proj"])
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    rows = [{"input_ids": list(range(5, 37))} for _ in range(4)]
    with cpu_workaround():
        oneshot(model=model, recipe=recipe(spec, ["lm_head"]), dataset=as_dataset(rows), num_calibration_samples=4,
                max_seq_length=32, pipeline="sequential")
    mlp = model.model.layers[0].mlp
    down, up = mlp.down_proj.quantization_scheme.weights, mlp.up_proj.quantization_scheme.weights
    assert (down.num_bits, down.strategy, down.symmetric) == (8, "channel", True)
    assert (up.num_bits, up.group_size, up.symmetric, up.observer) == (4, 32, False, "mse")
    assert mlp.down_proj.weight_scale.shape[-1] == 1 and mlp.up_proj.weight_scale.shape[-1] == 64 // 32
    assert hasattr(mlp.up_proj, "weight_zero_point") and getattr(model.lm_head, "quantization_scheme", None) is None


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
    from tunestack.rundir import read_jsonl, write_jsonl
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
