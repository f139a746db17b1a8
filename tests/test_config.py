"""Config: every shipped config validates; mistakes are all reported with paths, suggestions, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunestack.config import Config, load_config, parse_config, parse_overrides
from tunestack.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = "data: {path: rows.jsonl}\nevaluate: {format: {type: json}}\n"


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path):
    assert isinstance(load_config(path), Config)


def test_three_mistakes_are_all_reported_with_paths_and_a_suggestion():
    text = "run: {name: x}\ndata: {path: a.jsonl, eval_sise: 10}\ntrain: {learning_rate: -1, method: lorra}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, [])
    paths = [path for path, _ in info.value.problems]
    assert len(paths) == 3
    assert any(p.startswith("data.eval_sise") for p in paths)
    assert any(p.startswith("train.learning_rate") for p in paths)
    assert any(p.startswith("train.method") for p in paths)
    message = str(info.value)
    assert "Did you mean 'eval_size'?" in message and "(line 2)" in message
    assert "Did you mean 'lora'?" in message


def test_validate_cli_exits_nonzero_without_traceback(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {path: a.jsonl, eval_sise: 10}\ntrain: {learning_rate: -1, epoks: 2}\n"
                   "evaluate: {format: {type: json_schema}}\n")
    done = subprocess.run([sys.executable, "-m", "tunestack", "validate", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    for needle in ("data.eval_sise", "train.learning_rate", "train.epoks", "Did you mean 'epochs'?",
                   "evaluate.format"):
        assert needle in done.stderr


def test_missing_config_file_is_a_clean_error(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "tunestack", "validate", str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "cannot read config file" in done.stderr and "Traceback" not in done.stderr


def test_dotted_overrides_apply_and_are_validated():
    cfg = parse_config(MINIMAL, ["train.learning_rate=1e-4", "train.lora.r=4", "run.name=trial2"])
    assert cfg.train.learning_rate == 1e-4 and cfg.train.lora.r == 4 and cfg.run.name == "trial2"
    with pytest.raises(ConfigError, match="train.lora.rank"):
        parse_config(MINIMAL, ["train.lora.rank=4"])
    with pytest.raises(ConfigError, match="not of the form"):
        parse_overrides(["train.learning_rate"])


def test_cross_field_conflict_says_how_to_fix():
    with pytest.raises(ConfigError, match="set evaluate.format.schema_path"):
        parse_config("data: {path: a.jsonl}\nevaluate: {format: {type: json_schema}}\n", [])


def test_qlora_is_refused_with_a_sharding_strategy_and_why():
    """Issue 28 (d): QLoRA under FSDP2 or DeepSpeed is refused at validation, with the reason and what to do."""
    for strategy in ("fsdp", "deepspeed"):
        with pytest.raises(ConfigError, match="bnb_4bit_quant_storage.*Use strategy ddp"):
            parse_config(MINIMAL, ["train.method=qlora", f"train.distributed.strategy={strategy}"])
    parse_config(MINIMAL, ["train.method=qlora", "train.distributed.strategy=ddp"])
    parse_config(MINIMAL, ["train.method=lora", "train.distributed.strategy=fsdp"])


def test_schema_command_prints_json_schema():
    done = subprocess.run([sys.executable, "-m", "tunestack", "schema"], capture_output=True, text=True)
    schema = json.loads(done.stdout)
    assert set(schema["properties"]) == {"run", "model", "data", "assess", "train", "evaluate", "select", "export",
                                         "quantize", "serve", "judge", "cost", "synth", "review", "sweep"}


def test_every_command_has_help():
    from tunestack.cli_parser import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no public accessor
    for name in commands:
        done = subprocess.run([sys.executable, "-m", "tunestack", name, "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "usage:" in done.stdout, name
