"""Keys that notice change: a model's cached evaluation is keyed by everything that changes it (the seed that draws
the quartz sample, the probe file's and the schema's contents, the base model's weights, the decoding, the library
versions); an unchanged re-run reuses every result, and the judge gate matches the rubric and its prompt version."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from tunestack.config import parse_config
from tunestack.evaluate.core import BASE_ENTRY, model_key
from tunestack.pipeline import inputs_hash
from tunestack.rundir import RunDir


def setup(tmp_path: Path, tiny_model: Path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["a"]}))
    probes = tmp_path / "probes.jsonl"
    probes.write_text(json.dumps({"id": "p1", "prompt": "What is 2 + 3?", "answers": ["5"]}) + "\n")
    run = RunDir(tmp_path / "run")
    (run.stage("prepare") / "eval.jsonl").write_text('{"messages": []}\n')
    run.finish("train", "t", {"checkpoints": []}, time.time())

    def config(*overrides: str):
        text = (f"model: {{name: {model}}}\ndata: {{path: {tmp_path}/rows.jsonl}}\n"
                f"evaluate: {{format: {{type: json_schema, schema_path: {schema}}}, retention: {{probes: {probes}}}}}\n")
        return parse_config(text, list(overrides))
    return config, run, model, schema, probes


def test_every_input_of_an_evaluation_is_in_its_key(tmp_path: Path, tiny_model: Path, monkeypatch):
    config, run, model, schema, probes = setup(tmp_path, tiny_model)
    first = model_key(config(), run, BASE_ENTRY)
    assert model_key(config(), run, BASE_ENTRY) == first  # unchanged: the same key, the results are reused
    assert inputs_hash(config(), run, "evaluate") == inputs_hash(config(), run, "evaluate")

    from tunestack.evaluate import core

    changed = {"seed": model_key(config("run.seed=1"), run, BASE_ENTRY),
               "decoding": model_key(config("evaluate.max_new_tokens=7"), run, BASE_ENTRY),
               "template": model_key(config("model.chat_template=plain"), run, BASE_ENTRY)}
    probes.write_text(probes.read_text().replace('"5"', '"five"'))
    changed["probes"] = model_key(config(), run, BASE_ENTRY)
    schema.write_text(json.dumps({"type": "object", "required": ["b"]}))
    changed["schema"] = model_key(config(), run, BASE_ENTRY)
    # the attention kernel evaluation computes with (eager on a CPU, SDPA on a GPU: issue 28, h)
    with monkeypatch.context() as patched:
        patched.setattr(core, "evaluation_kernel", lambda device_type: "sdpa")
        changed["attention kernel"] = model_key(config(), run, BASE_ENTRY)
    assert model_key(config(), run, BASE_ENTRY) == changed["schema"]
    before_weights = inputs_hash(config(), run, "evaluate")

    from safetensors.torch import load_file, save_file

    weights = next(model.glob("*.safetensors"))
    tensors = load_file(str(weights))
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1e-3  # same names, same shapes, same file size: other weights
    save_file(tensors, str(weights), metadata={"format": "pt"})
    changed["base weights"] = model_key(config(), run, BASE_ENTRY)
    assert inputs_hash(config(), run, "evaluate") != before_weights  # the stage re-runs too

    keys = [first, *changed.values()]
    assert len(set(keys)) == len(keys), {k: v[:8] for k, v in changed.items()}


def test_library_versions_are_in_the_key(tmp_path: Path, tiny_model: Path, monkeypatch):
    from tunestack import fingerprint

    config, run, *_ = setup(tmp_path, tiny_model)
    first = model_key(config(), run, BASE_ENTRY)
    real = fingerprint.libraries()
    monkeypatch.setattr(fingerprint, "libraries", lambda: {**real, "transformers": "9.9.9"})
    assert model_key(config(), run, BASE_ENTRY) != first


def test_a_calibration_licenses_only_the_rubric_and_prompt_it_measured(tmp_path: Path):
    from tunestack.judge import stage as judge_stage
    from tunestack.judge.rubric import CORRECTNESS, QUALITY, rubric_version
    from tunestack.rundir import write_json

    cfg = parse_config(f"data: {{path: {tmp_path}/rows.jsonl}}\njudge: {{enabled: true, model: j}}\n", [])
    run = RunDir(tmp_path / "run")
    calibration = {"agreement": {"metrics": {"spearman": {"value": 0.9, "ci95": [0.8, 0.95]}}}, "n_scored": 40}
    write_json(run.stage("judge") / "calibration.json", calibration)

    def calibrated(rubric: str, version: str | None):
        judge = {"base_url": cfg.judge.base_url, "model": "j", "rubric": rubric, "rubric_version": version}
        run.finish("judge", "k", {"judge": judge}, time.time())
        return judge_stage.judge_counts(cfg, run)

    counted, why = calibrated("quality", rubric_version(QUALITY))
    assert not counted and "the calibration used the quality rubric" in why and "--rubric correctness" in why
    counted, why = calibrated("correctness", "0123456789abcdef")  # the prompt changed since the calibration
    assert not counted and f"prompt version {rubric_version(CORRECTNESS)}" in why
    assert rubric_version(CORRECTNESS) != rubric_version(QUALITY)
    counted, why = calibrated("correctness", rubric_version(CORRECTNESS))  # on to the agreement rule itself
    assert counted, why


def test_the_identity_rule_is_in_prepares_key(tmp_path: Path, tiny_model: Path, monkeypatch):
    """Rows prepared under another rule of what "the same row" is are prepared again."""
    from tunestack.data import canon

    config, run, *_ = setup(tmp_path, tiny_model)
    before = inputs_hash(config(), run, "prepare")
    assert inputs_hash(config(), run, "prepare") == before
    monkeypatch.setattr(canon, "RULE", "identity-1")
    assert inputs_hash(config(), run, "prepare") != before
