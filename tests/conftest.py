"""Shared fixtures: a tiny local model (2 layers, hidden 64, BPE tokenizer trained on the demo data) and a config
that runs every stage on it in seconds. Nothing is downloaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tunestack.demo.radiology import generate, write_demo_data

ROOT = Path(__file__).resolve().parents[1]
# Under pytest-xdist the workers share the cores: each computes with its share (`run.threads` unset follows
# OMP_NUM_THREADS, see `tunestack.models.cpu_threads`), and so do the commands a test starts. Oversubscribed, torch's
# threads wait on each other and a worker runs several times slower.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))
# Tests never reach a model hub: a Hugging Face id is looked up in the local cache only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    # The tests that read the session's one tiny pipeline run share a worker (pytest-xdist's loadgroup), so the run
    # is made once, not once per worker.
    for item in items:
        if {"tiny_run", "tiny_run_session"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("tiny-run"))
    if any("gpu" in item.keywords for item in items):
        import torch

        if not torch.cuda.is_available():
            no_gpu = pytest.mark.skip(reason="needs a CUDA GPU (marker gpu)")
            for item in items:
                if "gpu" in item.keywords:
                    item.add_marker(no_gpu)
    if os.environ.get("TUNESTACK_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set TUNESTACK_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from tunestack.data.suites import load_probes, load_replay_prompts
    from tunestack.models import build_tiny_model

    texts = [m["content"] for row in generate(300, seed=5) for m in row["messages"]]
    texts += [p["prompt"] for p in load_probes("builtin")] + [p["prompt"] for p in load_replay_prompts()]
    folder = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts)
    pretrain(folder, texts)
    return folder


@pytest.fixture(scope="session")
def wide_head_model(tmp_path_factory) -> Path:
    """The tiny model with a single 64-wide attention head (vLLM's CPU attention takes heads 32 wide and up)."""
    from tunestack.data.suites import load_probes
    from tunestack.models import build_tiny_model

    texts = [m["content"] for row in generate(300, seed=5) for m in row["messages"]]
    texts += [p["prompt"] for p in load_probes("builtin")]
    shape = {"num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 64}
    return build_tiny_model(tmp_path_factory.mktemp("wide") / "model", texts, shape=shape)


def pretrain(folder: Path, texts: list[str], steps: int = 150) -> None:
    """A few seconds of full-parameter language modelling on plain text, so the tiny base has useful embeddings
    the way a real base model does. No chat template and no EOS: stopping must be learned in fine-tuning."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    stream = torch.tensor([t for text in texts for t in tokenizer.encode(text + "\n", add_special_tokens=False)])
    width = 64
    blocks = stream[: len(stream) // width * width].view(-1, width)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same weights as with more, and no stalls when other processes hold the cores
    try:
        for _ in range(steps):
            batch = blocks[torch.randint(0, len(blocks), (16,), generator=generator)]
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(folder)


@pytest.fixture()
def tiny_config(tmp_path, tiny_model) -> Path:
    from tunestack.data.suites import load_replay_prompts

    data, schema = write_demo_data(tmp_path / "data", n=120, seed=1)
    general = tmp_path / "data" / "general.jsonl"  # a random tiny model never ends a self-replay answer with EOS
    general.write_text("".join(json.dumps({"messages": [{"role": "user", "content": p["prompt"]},
                                                        {"role": "assistant", "content": "I think so."}]}) + "\n"
                               for p in load_replay_prompts()[:30]))
    cfg = {
        # one thread: a model this small computes the same bytes with two, ten times slower on a busy machine
        "run": {"name": "tiny", "runs_dir": str(tmp_path / "runs"), "seed": 0, "threads": 1},
        "model": {"name": str(tiny_model)},
        "data": {"path": str(data), "eval_size": 16, "holdout_size": 8, "max_length": 256},
        "train": {"epochs": 2, "learning_rate": 3e-3, "micro_batch_size": 8, "num_checkpoints": 2,
                  "lora": {"r": 8, "alpha": 16}, "general_mix": {"share": 0.12, "source": "file", "path": str(general)}},
        "evaluate": {"batch_size": 16, "max_new_tokens": 48,
                     "format": {"type": "json_schema", "schema_path": str(schema)},
                     "retention": {"choices": 16, "quartz_examples": 12, "max_probes": 6, "instructions": 14,
                                   "instruction_max_new_tokens": 16}},
        # the tiny model writes what it writes: these tests are about the stages, the floors are tested in test_select
        "select": {"min_retention": 0.0, "min_format": 0.0, "max_format_drop": None},
    }
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class TinyRun:
    """One `tunestack run` of the `tiny_config` config, made once a session (see `tiny_run`): `folder` holds the
    config, its data and the run; `done` is what the command printed and returned."""

    def __init__(self, folder: Path, config: Path, done: subprocess.CompletedProcess):
        import yaml

        self.folder, self.config, self.done = folder, config, done
        self.run = Path(yaml.safe_load(config.read_text())["run"]["runs_dir"]) / "tiny"
        self._pristine = folder.with_name(f"{folder.name}-as-run")
        shutil.copytree(folder, self._pristine, symlinks=True)

    def fresh(self) -> "TinyRun":
        """Put the folder back as `tunestack run` left it (same paths, so every stage is still current), whatever
        an earlier user did to it."""
        import logging

        root, folder = logging.getLogger(), self.folder.resolve()
        # an in-process run's log file (`terminal.log_to`) stays open: it would go on writing to the removed file
        for handler in [h for h in root.handlers if Path(getattr(h, "baseFilename", "/")).is_relative_to(folder)]:
            root.removeHandler(handler)
            handler.close()
        shutil.rmtree(self.folder)
        shutil.copytree(self._pristine, self.folder, symlinks=True)
        return self


@pytest.fixture(scope="session")
def tiny_run_session(tmp_path_factory, tiny_model) -> TinyRun:
    """`tunestack run` on the tiny config, through the real entry point in a subprocess, once a session. Don't use
    it directly: `tiny_run` (or, for a module-scoped fixture, `tiny_run_session.fresh()`) gives it as it was left."""
    folder = tmp_path_factory.mktemp("tiny-run")
    config = tiny_config.__wrapped__(folder, tiny_model)  # the same config as the tiny_config fixture
    done = subprocess.run([sys.executable, "-m", "tunestack", "run", str(config)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return TinyRun(folder, config, done)


@pytest.fixture()
def tiny_run(tiny_run_session) -> TinyRun:
    """The session's one `tunestack run tiny.yaml` (`.config`, `.run`, `.done`), shared by the tests that need that
    exact run instead of each training its own: every test gets it as the command left it, and may change it."""
    return tiny_run_session.fresh()
