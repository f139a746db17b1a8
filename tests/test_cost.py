"""Cost and payback: each formula on hand-checkable inputs, rejections with their messages, provenance, sensitivity,
the shipped worked example, and `tunestack cost` on a run directory using what that run measured."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tunestack.config import CostSection, load_config, parse_config
from tunestack.cost.inputs import Manifests, gather, setting
from tunestack.cost.model import (BOUNDS, ApiInputs, CostInputs, EvaluationInputs, ServingInputs, TrainingInputs,
                                  config, default, derive, estimate, measured, replicas_for, sensitivity)
from tunestack.errors import ConfigError, StageError
from tunestack.rundir import RunDir, write_json

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = "data: {path: rows.jsonl}\nevaluate: {format: {type: json}}\n"


def hand_inputs(**changes) -> CostInputs:
    """Round numbers, every one set in the config, so each output can be checked by hand:
    training 3.6M tokens at 1,000 tokens/s = 1 GPU-hour x $4 = $4 a run, x 5 runs = $20; evaluation 25% = $5;
    other $75; investment $100. API: 100k requests x (900 x $10 + 100 x $20) / 1M = $1,100 a month.
    Serving: 1e8 tokens a month over 100 hours = 278 tokens/s; AWQ (1,000 tokens/s) needs 1 replica, 16-bit
    (200 tokens/s) 2; a replica costs 100 h x $1 = $100 a month."""
    inputs = CostInputs(
        training=TrainingInputs("a100", config("training.price_per_hour", 4.0), config("training.tokens", 3.6e6),
                                config("training.tokens_per_second", 1000.0), config("training.num_gpus", 1),
                                config("training.experiments", 5)),
        evaluation=EvaluationInputs(overhead=config("evaluation.overhead", 0.25)),
        serving=ServingInputs("a10g", config("serving.price_per_hour", 1.0), "awq",
                              config("serving.throughput_awq", 1000.0), config("serving.throughput_without_awq", 200.0),
                              config("serving.replicas", 1), config("serving.peak_to_average", 1.0),
                              config("serving.hours_per_month", 100.0)),
        api=ApiInputs("api", config("api.input_per_million", 10.0), config("api.output_per_million", 20.0),
                      config("api.monthly_requests", 1e5), config("api.input_tokens_per_request", 900.0),
                      config("api.output_tokens_per_request", 100.0)),
        other_one_time=config("other_one_time", 75.0), horizon_months=12)
    return replace(inputs, **changes)


def values(out: dict) -> dict:
    return {name: fig.value for name, fig in out.items()}


# ---------------------------------------------------------------------------------------------------------------
# The formulas


def test_training_and_evaluation_cost_by_hand():
    out = values(estimate(hand_inputs()))
    assert out["training_gpu_hours_per_run"] == pytest.approx(1.0)
    assert out["training_cost_per_run"] == pytest.approx(4.0)
    assert out["training_cost"] == pytest.approx(20.0)  # x 5 experiments
    assert out["evaluation_cost_per_run"] == pytest.approx(1.0)  # 25% of $4
    assert out["evaluation_cost"] == pytest.approx(5.0)
    assert out["investment"] == pytest.approx(100.0)


def test_gpus_per_run_multiply_gpu_hours():
    t = hand_inputs().training
    out = values(estimate(hand_inputs(training=replace(t, num_gpus=config("training.num_gpus", 4)))))
    assert out["training_gpu_hours_per_run"] == pytest.approx(4.0) and out["training_cost"] == pytest.approx(80.0)


def test_measured_evaluation_time_replaces_the_overhead_rule():
    e = EvaluationInputs(overhead=default("evaluation.overhead", 0.15), seconds=measured("evaluation.seconds", 1800))
    out = estimate(hand_inputs(evaluation=e))
    assert out["evaluation_cost_per_run"].value == pytest.approx(2.0)  # half an hour at $4/h
    assert out["evaluation_cost"].value == pytest.approx(10.0)
    assert "evaluation.overhead" not in out["investment"].defaults  # the rule was not used
    judged = replace(e, judge_cost=measured("evaluation.judge_cost", 0.5))
    assert estimate(hand_inputs(evaluation=judged))["evaluation_cost_per_run"].value == pytest.approx(2.5)


def test_serving_api_saving_and_payback_by_hand():
    out = values(estimate(hand_inputs()))
    assert out["api_monthly"] == pytest.approx(1100.0)
    assert out["serving_replicas_awq"] == 1 and out["serving_replicas_without_awq"] == 2
    assert out["serving_monthly_awq"] == pytest.approx(100.0)
    assert out["serving_monthly_without_awq"] == pytest.approx(200.0)
    assert out["serving_monthly"] == out["serving_monthly_awq"]  # quantization awq
    assert out["saving_monthly"] == pytest.approx(1000.0)
    assert out["payback_months"] == pytest.approx(0.1)
    s = hand_inputs().serving
    plain = values(estimate(hand_inputs(serving=replace(s, quantization="none"))))
    assert plain["serving_monthly"] == pytest.approx(200.0) and plain["payback_months"] == pytest.approx(100 / 900)


def test_replicas_follow_the_busiest_hour_and_never_go_below_the_minimum():
    tokens = 100 * 730 * 3600  # 100 tokens/s on average
    assert replicas_for(tokens, 250, 2.0, 730, 1) == 1
    assert replicas_for(tokens, 150, 2.0, 730, 1) == 2
    assert replicas_for(tokens, 250, 2.0, 730, 3) == 3


def test_break_even_volumes_by_hand():
    out = values(estimate(hand_inputs()))
    per_request = 1100 / 1e5
    assert out["break_even_requests"] == pytest.approx(100 / per_request)  # one $100 replica
    assert out["payback_volume_requests"] == pytest.approx((100 + 100 / 12) / per_request)
    # at the break-even volume the API costs exactly what serving does
    api = hand_inputs().api
    at = hand_inputs(api=replace(api, monthly_requests=config("api.monthly_requests", out["break_even_requests"])))
    assert estimate(at)["saving_monthly"].value == pytest.approx(0.0, abs=1e-6)


def test_no_saving_means_no_payback():
    api = hand_inputs().api
    cheap = replace(api, input_per_million=config("api.input_per_million", 0.01),
                    output_per_million=config("api.output_per_million", 0.01))
    out = estimate(hand_inputs(api=cheap))
    assert out["saving_monthly"].value < 0 and out["payback_months"].value is None
    assert out["break_even_requests"].value is None  # a full replica displaces less than it costs


def test_without_an_api_there_is_no_saving_but_the_costs_stand():
    out = estimate(hand_inputs(api=None))
    assert out["investment"].value == pytest.approx(100.0) and out["serving_monthly"].value == pytest.approx(100.0)
    assert "payback_months" not in out and sensitivity(hand_inputs(api=None)) is None


# ---------------------------------------------------------------------------------------------------------------
# Rejections


def test_zero_negative_and_absurd_inputs_are_all_rejected_naming_field_and_fix():
    t, s = hand_inputs().training, hand_inputs().serving
    bad = hand_inputs(
        training=replace(t, price_per_hour=config("training.price_per_hour", 1e9),
                         tokens_per_second=measured("training.tokens_per_second", 0, "train/manifest.json")),
        serving=replace(s, throughput_awq=config("serving.throughput_awq", -5.0)),
        evaluation=EvaluationInputs(overhead=config("evaluation.overhead", 1.5)))
    with pytest.raises(StageError) as info:
        estimate(bad)
    message = str(info.value)
    assert "training.price_per_hour = 1e+09 $ per GPU-hour" in message and "set cost.gpus.<gpu>" in message
    assert "training.tokens_per_second = 0 tokens/s (measured: train/manifest.json)" in message
    assert "to override the run's figure" in message
    assert "serving.throughput_awq = -5" in message and "set cost.serving.throughput_awq in that range" in message
    assert "evaluation.overhead = 1.5" in message and "at most 1" in message


def test_nan_and_unknown_quantization_are_rejected():
    s = hand_inputs().serving
    with pytest.raises(StageError, match="serving.quantization = 'gptq'"):
        estimate(hand_inputs(serving=replace(s, quantization="gptq")))
    with pytest.raises(StageError, match="api.monthly_requests = nan"):
        api = hand_inputs().api
        estimate(hand_inputs(api=replace(api, monthly_requests=config("api.monthly_requests", math.nan))))


@pytest.mark.parametrize("override, needle", [
    ("cost.serving.throughput_awq=0", "cost.serving.throughput_awq: Input should be greater than 0"),
    ("cost.evaluation.overhead=1.5", "cost.evaluation.overhead: Input should be less than or equal to 1"),
    ("cost.api.monthly_requests=-3", "cost.api.monthly_requests: Input should be greater than 0"),
    ("cost.training.experiments=0", "cost.training.experiments: Input should be greater than or equal to 1"),
    ("cost.serving.hours_per_month=1000", "cost.serving.hours_per_month: Input should be less than or equal to 744"),
    ("cost.gpus.a100=1e9", "cost.gpus.a100 = 1e+09 $/h is not a price per GPU-hour: set it above 0 and at most 1000"),
    ("cost.training.gpu=a1000", "cost.training.gpu 'a1000' has no price. Did you mean 'a100'?"),
    ("cost.training.experments=3", "Did you mean 'experiments'?"),
    ("cost.api.input_per_million=15", "set cost.api.output_per_million, cost.api.monthly_requests"),
])
def test_config_rejects_bad_cost_settings_with_path_and_fix(override: str, needle: str):
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL, [override])
    assert needle in str(info.value)


def test_config_bounds_match_the_model_bounds():
    """The config and the pure model reject the same values."""
    checked = 0
    nested = [f.annotation for f in CostSection.model_fields.values() if hasattr(f.annotation, "model_fields")]
    for model in [CostSection, *nested]:
        for name, field in model.model_fields.items():
            if name not in BOUNDS:
                continue
            low, inclusive, high, _ = BOUNDS[name]
            limits = {key: getattr(m, key) for m in field.metadata for key in ("gt", "ge", "le") if hasattr(m, key)}
            assert limits == {"ge" if inclusive else "gt": low, "le": high}, name
            checked += 1
    assert checked >= 15


def test_config_defaults_are_the_rules_of_thumb():
    from tunestack.config import prices

    cost = CostSection()
    assert cost.training.experiments == prices.EXPERIMENTS[0]
    assert cost.evaluation.overhead == prices.EVAL_OVERHEAD[0]
    assert cost.serving.peak_to_average == prices.PEAK_TO_AVERAGE
    assert cost.serving.hours_per_month == prices.HOURS_PER_MONTH
    assert cost.training.model_size_b == prices.REFERENCE_SIZE_B


def test_no_tokens_to_estimate_from_says_what_to_set():
    with pytest.raises(ConfigError, match="set cost.training.tokens, or cost.training.examples"):
        gather(parse_config(MINIMAL, []), Manifests())


# ---------------------------------------------------------------------------------------------------------------
# Provenance


def test_provenance_propagates_to_every_output():
    assert all(fig.source == "config" and not fig.defaults for fig in estimate(hand_inputs()).values())
    s = hand_inputs().serving
    out = estimate(hand_inputs(serving=replace(s, price_per_hour=default("serving.price_per_hour", 1.0, "table"))))
    assert out["serving_monthly"].source == "default"
    assert out["payback_months"].defaults == ("serving.price_per_hour",)
    assert out["training_cost"].source == "config"  # training does not rest on the serving price
    assert derive("x", 1, measured("a", 1), measured("b", 2)).source == "measured"


def test_a_key_counts_as_config_only_when_set():
    cfg = parse_config(MINIMAL, ["cost.training.experiments=6"])
    assert setting(cfg.cost.training, "experiments", "training.experiments").source == "config"
    assert setting(cfg.cost.evaluation, "overhead", "evaluation.overhead").source == "default"


def test_estimate_from_the_prepare_manifest_and_epochs():
    cfg = parse_config(MINIMAL, ["train.epochs=2", "train.general_mix.share=0.2"])
    prepare = {"splits": {"train": 400}, "lengths": {"splits": {"train": {"mean": 250.0}}}}
    inputs = gather(cfg, Manifests(prepare=prepare))
    assert inputs.training.tokens.value == pytest.approx(400 / 0.8 * 2 * 250)
    assert inputs.training.tokens.source == "config"  # examples and lengths measured, epochs and share set
    assert inputs.training.tokens_per_second.source == "default"
    assert inputs.training.price_per_hour.note.startswith("table: a100 $5.00/h (usual $4.00-6.00)")


# ---------------------------------------------------------------------------------------------------------------
# Sensitivity


def test_payback_rises_with_gpu_price_and_falls_with_volume():
    table = sensitivity(hand_inputs())["payback_months"]
    months = [[math.inf if m is None else m for m in row] for row in table]
    for row in months:
        assert row == sorted(row, reverse=True), row  # more volume: sooner
    for column in zip(*months):
        assert list(column) == sorted(column), column  # dearer GPUs: later
    assert months[2][2] == pytest.approx(0.1)  # the middle cell is the estimate itself
    assert months[-1][0] > months[0][-1]


# ---------------------------------------------------------------------------------------------------------------
# The worked example: $8,000/month on GPT-4o at $15/M input tokens, a $1,500-2,000 fine-tune, 7B AWQ on one A10G


def test_worked_example_pays_back_in_under_two_months():
    cfg = load_config(ROOT / "configs" / "cost_worked_example.yaml")
    inputs = gather(cfg, Manifests())
    out = estimate(inputs)
    assert inputs.api.input_per_million.value == 15 and inputs.serving.gpu == "a10g"
    assert inputs.serving.quantization == "awq" and cfg.cost.training.model_size_b == 7
    assert out["api_monthly"].value == pytest.approx(8000.0)
    assert 1500 <= out["investment"].value <= 2000
    assert out["serving_replicas"].value == 1
    assert out["payback_months"].value < 2
    assert out["payback_months"].source == "default"  # it rests on the GPU table and rules of thumb, and says so
    assert "training.price_per_hour" in out["payback_months"].defaults


# ---------------------------------------------------------------------------------------------------------------
# `tunestack cost` on a run directory


def fake_run(tmp_path: Path) -> Path:
    """A run directory as the stages leave it: manifests written through rundir, the train one with a measured
    throughput, on a CPU. Returns the config that names it."""
    run = RunDir(tmp_path / "runs" / "measured")
    write_json(run.stage("prepare") / "manifest.json", {"stage": "prepare", "splits": {"train": 450},
                                                        "lengths": {"splits": {"train": {"mean": 90.0}}}})
    write_json(run.stage("train") / "manifest.json", {
        "stage": "train", "inputs_hash": "t", "method": "lora", "precision": "bf16", "steps": 60, "processes": 1,
        "memory": {"device": "CPU RAM"}, "train_seconds": 300.0, "tokens_seen": 72_000, "tokens_per_second": 240.0})
    write_json(run.stage("evaluate") / "manifest.json", {"stage": "evaluate", "inputs_hash": "e", "seconds": 90.0})
    cfg = {"run": {"name": "measured", "runs_dir": str(tmp_path / "runs")}, "data": {"path": "rows.jsonl"},
           "evaluate": {"format": {"type": "json"}},
           "cost": {"gpus": {"cpu": 0.2}, "training": {"gpu": "cpu"},
                    "api": {"name": "gpt-4o", "input_per_million": 2.5, "output_per_million": 10,
                            "monthly_requests": 2_000_000, "input_tokens_per_request": 400,
                            "output_tokens_per_request": 60}}}
    path = tmp_path / "measured.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_cost_command_uses_the_runs_measured_throughput_and_marks_defaults(tmp_path: Path):
    config_path = fake_run(tmp_path)
    done = subprocess.run([sys.executable, "-m", "tunestack", "cost", str(config_path)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "runs" / "measured" / "cost"
    body = json.loads((folder / "cost.json").read_text())
    tps = body["inputs"]["training.tokens_per_second"]
    assert tps["source"] == "measured" and tps["value"] == 240.0 and "train/manifest.json" in tps["note"]
    tokens = body["inputs"]["training.tokens"]
    assert tokens["source"] == "measured" and tokens["value"] == 72_000
    assert body["inputs"]["evaluation.seconds"]["source"] == "measured"
    assert "evaluation.overhead" not in body["inputs"]  # measured, so the rule of thumb is not used
    hours = body["outputs"]["training_gpu_hours_per_run"]
    assert hours["value"] == pytest.approx(72_000 / 240 / 3600) and hours["source"] == "measured"
    per_run = body["outputs"]["training_cost_per_run"]
    assert per_run["value"] == pytest.approx(300 / 3600 * 0.2) and per_run["source"] == "config"  # cpu priced by you
    assert body["inputs"]["serving.throughput_awq"]["source"] == "default"
    assert body["outputs"]["serving_monthly"]["source"] == "default"
    assert "serving.throughput_awq" in body["outputs"]["payback_months"]["defaults"]
    assert 0 < body["outputs"]["payback_months"]["value"] < body["horizon_months"]
    assert body["measured_from"] == ["train/manifest.json", "evaluate/manifest.json", "prepare/manifest.json"]
    # the terminal and the markdown say which figures are defaults and what was measured
    assert "measured: evaluation.seconds, training.num_gpus, training.tokens, training.tokens_per_second" \
        in done.stdout
    assert any(line.startswith("payback") and line.rstrip().endswith("default") for line in done.stdout.splitlines())
    assert str(folder / "cost.md") in done.stdout
    text = (folder / "cost.md").read_text()
    assert "| `serving.throughput_awq` | 1,500 | **default** |" in text
    assert "| `training.tokens_per_second` | 240 | measured | train/manifest.json tokens_per_second |" in text
    assert (folder / "cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((folder / "manifest.json").read_text())["stage"] == "cost"
    assert not (tmp_path / "runs" / "measured" / "config.yaml").exists()  # the run's own config is left alone


def test_a_run_on_a_cpu_priced_as_a_gpu_gets_a_note(tmp_path: Path):
    cfg = load_config(fake_run(tmp_path), ["cost.training.gpu=a100"])
    from tunestack.cost.stage import run_cost

    body = run_cost(cfg, RunDir(Path(cfg.run.runs_dir) / cfg.run.name))
    assert any("trained on a CPU" in note and "cost.training.gpu=cpu" in note for note in body["notes"])
    assert body["inputs"]["training.price_per_hour"]["source"] == "default"


def test_config_replaces_a_measured_figure_and_says_so(tmp_path: Path):
    cfg = load_config(fake_run(tmp_path), ["cost.training.tokens_per_second=1000"])
    found = Manifests(train=RunDir(Path(cfg.run.runs_dir) / "measured").manifest("train"))
    inputs = gather(cfg, found)
    assert inputs.training.tokens_per_second.source == "config" and inputs.training.tokens.source == "measured"
    assert any("replaces the 240 tokens/s the run measured" in note for note in found.notes)


def test_cost_command_error_is_clean(tmp_path: Path):
    config_path = fake_run(tmp_path)
    done = subprocess.run([sys.executable, "-m", "tunestack", "cost", str(config_path), "cost.gpus.cpu=0"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cost.gpus.cpu = 0 $/h is not a price per GPU-hour" in done.stderr


def test_evaluation_time_is_read_where_it_was_spent():
    """With evaluation while training (the default) the evaluate stage only reuses results: its own seconds are a
    cache hit, and the time really spent is in the train manifest (every rank waits while rank 0 evaluates)."""
    from tunestack.cost.inputs import evaluation_seconds

    live = Manifests(train={"evaluate_seconds": 300.0, "processes": 1}, evaluate={"seconds": 0.7})
    assert evaluation_seconds(live) == (300.7, "train/manifest.json evaluate_seconds (while training) + "
                                               "evaluate/manifest.json seconds")
    two = Manifests(train={"evaluate_seconds": 300.0, "processes": 2}, evaluate={"seconds": 0.7})
    assert evaluation_seconds(two)[0] == 600.7 and "x 2 processes" in evaluation_seconds(two)[1]
    after = Manifests(train={"evaluate_seconds": 0.0, "processes": 1}, evaluate={"seconds": 250.0})
    assert evaluation_seconds(after) == (250.0, "evaluate/manifest.json seconds")
    assert evaluation_seconds(Manifests()) is None
    cfg = parse_config(MINIMAL + "cost: {training: {tokens: 36000000}}\n", [])
    assert gather(cfg, live).evaluation.seconds.value == 300.7


def test_throughput_is_the_whole_runs_and_the_table_scales_with_gpus():
    """`tokens_per_second` is the run's, all GPUs together: GPU-hours are wall hours x GPUs. The table's figure is
    per GPU, so a default for 4 GPUs is 4x it (and says so), and the GPU-hours stay those of one GPU's work."""
    one = gather(parse_config(MINIMAL + "cost: {training: {gpu: a100, tokens: 36000000}}\n", []), Manifests())
    four = gather(parse_config(MINIMAL + "cost: {training: {gpu: a100, tokens: 36000000, num_gpus: 4}}\n", []),
                  Manifests())
    assert four.training.tokens_per_second.value == pytest.approx(4 * one.training.tokens_per_second.value)
    assert "x 4 GPUs (linear scaling assumed)" in four.training.tokens_per_second.note
    hours = {n: estimate(i)["training_gpu_hours_per_run"].value for n, i in (("one", one), ("four", four))}
    assert hours["four"] == pytest.approx(hours["one"])  # the same work, in a quarter of the wall time
    measured_run = Manifests(train={"tokens_per_second": 1000.0, "tokens_seen": 3_600_000, "processes": 2})
    two = gather(parse_config(MINIMAL, []), measured_run)
    assert two.training.num_gpus.value == 2 and two.training.tokens_per_second.value == 1000.0
    assert estimate(two)["training_gpu_hours_per_run"].value == pytest.approx(3_600_000 / 1000 / 3600 * 2)


def test_cost_states_what_quantize_chose_and_warns_when_it_is_not_4_bit(tmp_path: Path):
    from tunestack.cost.stage import run_cost

    cfg = load_config(fake_run(tmp_path))
    run = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)
    body = run_cost(cfg, run)
    assert body["quantized"] is None and any("has not quantized its export" in n for n in body["notes"])

    sizes = {"disk_bytes": 213 * 2**20}
    write_json(run.stage("quantize") / "manifest.json", {
        "stage": "quantize", "inputs_hash": "q", "chosen": "gptq-w8a16-sym-ch",
        "reference": {"sizes": {"disk_bytes": 517 * 2**20}},
        "candidates": [{"name": "gptq-w4a16-sym-g64", "bits": 4, "method": "gptq", "sizes": {"disk_bytes": 1}},
                       {"name": "gptq-w8a16-sym-ch", "bits": 8, "method": "gptq", "sizes": sizes}]})
    body = run_cost(cfg, run)
    assert body["quantized"] == {"chosen": "gptq-w8a16-sym-ch", "bits": 8, "method": "gptq",
                                 "disk_bytes": 213 * 2**20, "export_disk_bytes": 517 * 2**20}
    assert any("chose gptq-w8a16-sym-ch: 213 MiB on disk against the export's 517 MiB" in n for n in body["notes"])
    warning = next(n for n in body["notes"] if n.startswith("WARNING: serving is priced for a 4-bit AWQ model"))
    assert "chose gptq-w8a16-sym-ch (8-bit)" in warning and "cost.serving.quantization=none" in warning
    assert not any(n.startswith("WARNING: serving") for n in run_cost(load_config(
        fake_run(tmp_path), ["cost.serving.quantization=none"]), run)["notes"])


def bench_measurement(weights: str, device: str, builtin_tps: float, vllm_tps: float | None) -> dict:
    """One bench/serve_load.py run, as its `main` records it (the per-server summaries that `summary` prints)."""
    def server(tps: float, errors: int = 0) -> dict:
        return {"requests": 128, "ok": 128 - errors, "errors": errors, "tokens_per_s": tps / 4,
                "total_tokens_per_s": tps}

    out = {"clients": 64, "requests": 2, "model": "measured-export", "weights": weights, "device": device,
           "builtin": server(builtin_tps), "pipeline": server(builtin_tps / 10)}
    if vllm_tps is not None:
        out["vllm"] = server(vllm_tps)
    return out


def test_serving_throughput_measured_by_the_load_bench_feeds_cost_on_the_same_hardware(tmp_path: Path):
    """bench/serve_load.py's serve/load.json (one measurement per weight width) becomes the serving throughput: the
    fastest server that answered every request, 16-bit as `without_awq` and 4-bit as `awq`; measured on other
    hardware than cost.serving.gpu it is not used, and the notes say why."""
    from tunestack.cost.stage import run_cost
    from tunestack.serve.load import record

    cfg = load_config(fake_run(tmp_path), ["cost.serving.gpu=cpu"])
    run = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)
    load = run.stage("serve") / "load.json"
    record(load, bench_measurement("16-bit", "cpu", builtin_tps=900.0, vllm_tps=1300.0))
    body = run_cost(cfg, run)
    plain, awq = body["inputs"]["serving.throughput_without_awq"], body["inputs"]["serving.throughput_awq"]
    assert plain["source"] == "measured" and plain["value"] == 1300.0 and "vllm server" in plain["note"]
    assert awq["value"] == pytest.approx(1300.0 * 1.4) and "measured 16-bit throughput" in awq["note"]
    assert awq["source"] == "default"  # measured x the rule of thumb for AWQ: as weak as its weakest part
    assert "serve/load.json" in body["measured_from"]

    failing = bench_measurement("4-bit", "cpu", builtin_tps=1100.0, vllm_tps=5000.0)
    failing["vllm"]["errors"], failing["vllm"]["ok"] = 3, 125  # a server that dropped requests is not a throughput
    record(load, failing)
    body = run_cost(cfg, run)
    assert body["inputs"]["serving.throughput_awq"]["value"] == 1100.0
    assert body["inputs"]["serving.throughput_awq"]["source"] == "measured"
    assert body["inputs"]["serving.throughput_without_awq"]["value"] == 1300.0  # the 16-bit run is kept

    on_gpu = load_config(fake_run(tmp_path), ["cost.serving.gpu=h200"])
    body = run_cost(on_gpu, run)
    assert body["inputs"]["serving.throughput_awq"]["source"] == "default"
    assert any("not on cost.serving.gpu (h200)" in note for note in body["notes"])
    record(load, bench_measurement("16-bit", "NVIDIA H200", builtin_tps=4000.0, vllm_tps=20000.0))
    body = run_cost(on_gpu, run)
    assert body["inputs"]["serving.throughput_without_awq"] == {**body["inputs"]["serving.throughput_without_awq"],
                                                                "source": "measured", "value": 20000.0}
    set_by_hand = load_config(fake_run(tmp_path), ["cost.serving.gpu=h200", "cost.serving.throughput_awq=9000"])
    assert run_cost(set_by_hand, run)["inputs"]["serving.throughput_awq"]["source"] == "config"
