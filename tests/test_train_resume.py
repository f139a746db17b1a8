"""Checkpoints and resume: a run killed with SIGKILL (here: in the middle of saving a checkpoint) and resumed ends
with the same weights as an uninterrupted run; packed batches give the same loss as unpacked ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

KILLER = """
import os, signal, sys
from tunestack.train import checkpoints

original = checkpoints.CheckpointPublisher.on_save

def on_save(self, args, state, control, **kwargs):
    if state.global_step == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)  # the Trainer has written its files; ours are not published yet
    return original(self, args, state, control, **kwargs)

checkpoints.CheckpointPublisher.on_save = on_save
from tunestack.cli import main
sys.exit(main(sys.argv[1:]))
"""


def tunestack(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    code = ["-c", KILLER] if env else ["-m", "tunestack"]
    return subprocess.run([sys.executable, *code, *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})})


def adapter(run: Path, step: int) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "train" / "checkpoints" / f"step-{step:06d}" / "adapter_model.safetensors"))


def test_killed_run_resumes_to_the_same_weights(tiny_config: Path):
    import torch

    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["train"].update({"max_steps": 12, "save_steps": 4, "micro_batch_size": 4, "learning_rate": 1e-2})
    tiny_config.write_text(yaml.safe_dump(cfg))
    runs = Path(cfg["run"]["runs_dir"])

    killed = tunestack("train", str(tiny_config), env={"KILL_AT": "8"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    checkpoints = runs / "tiny" / "train" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-000004"]  # step 8 was never published
    resumed = tunestack("train", str(tiny_config), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = yaml.safe_load((runs / "tiny" / "train" / "manifest.json").read_text())
    assert manifest["resumed_from"] == "step-000004" and [c["step"] for c in manifest["checkpoints"]] == [4, 8, 12]
    assert not (checkpoints / "step-000004" / "optimizer.pt").exists()  # only the newest keeps optimizer state

    # the uninterrupted run evaluates no checkpoint while training, which changes nothing it trains (the setting is
    # not part of a checkpoint's trajectory): the resumed run, which evaluated its checkpoints, must still match it
    straight = tunestack("train", str(tiny_config), "run.name=straight", "train.evaluate_checkpoints=false")
    assert straight.returncode == 0, straight.stderr[-3000:]
    a, b = adapter(runs / "tiny", 12), adapter(runs / "straight", 12)
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(x, y) for x, y in zip(adapter(runs / "tiny", 4).values(), a.values()))


def test_resume_refuses_a_changed_config_or_data_and_lists_the_difference(tiny_config: Path):
    """A checkpoint records what its trajectory depends on; `--resume` after a change would continue the old
    optimizer, schedule and data position over the new setup, so it refuses unless `--resume --force`."""
    import json

    from tunestack.demo.radiology import generate

    cfg = yaml.safe_load(tiny_config.read_text())
    # checkpoints are not evaluated while training: what is compared on resume leaves that setting out
    cfg["train"].update({"max_steps": 8, "save_steps": 4, "micro_batch_size": 4, "evaluate_checkpoints": False})
    tiny_config.write_text(yaml.safe_dump(cfg))
    killed = tunestack("train", str(tiny_config), env={"KILL_AT": "8"})
    assert killed.returncode == -9, killed.stderr[-2000:]

    changed = tunestack("train", str(tiny_config), "--resume", "train.learning_rate=0.001")
    assert changed.returncode != 0 and "refusing to resume from" in changed.stderr
    assert "train.learning_rate: 0.003 -> 0.001" in changed.stderr and "--resume --force" in changed.stderr

    data = Path(cfg["data"]["path"])  # new rows: prepare re-runs, and the training rows are no longer the same
    with data.open("a") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in generate(30, seed=77))
    moved = tunestack("train", str(tiny_config), "--resume")
    assert moved.returncode != 0 and "data (prepare/train.jsonl sha256): '" in moved.stderr
    assert "train.learning_rate" not in moved.stderr  # only what changed is listed

    anyway = tunestack("train", str(tiny_config), "--resume", "--force")
    assert anyway.returncode == 0, anyway.stderr[-3000:]
    manifest = json.loads((Path(cfg["run"]["runs_dir"]) / "tiny" / "train" / "manifest.json").read_text())
    assert manifest["resumed_from"] == "step-000004"
    assert [d.split(":")[0] for d in manifest["resumed_despite"]] == ["data (prepare/train.jsonl sha256)"]


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_config: Path):
    done = tunestack("train", str(tiny_config), "run.name=fresh", "--resume")
    assert done.returncode == 2 and "nothing to resume" in done.stderr
    runs = Path(yaml.safe_load(tiny_config.read_text())["run"]["runs_dir"])
    assert not (runs / "fresh" / "prepare").exists()  # said before prepare ran


def test_packed_sequences_give_the_same_loss_as_separate_ones(tiny_model: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunestack.chat import render_example
    from tunestack.demo.radiology import generate
    from tunestack.train.packing import pack

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    rendered = [render_example(tokenizer, row["messages"]) for row in generate(3, seed=2)]
    rows = [{"input_ids": r.input_ids, "labels": r.labels} for r in rendered]
    packed, fill = pack(rows, max_length=512)
    assert len(packed) == 1 and 0 < fill < 1

    def summed_loss(input_ids, labels, position_ids=None) -> torch.Tensor:
        # use_cache=False, as TRL passes in training: with a cache, transformers does not look for packed rows
        logits = model(input_ids=torch.tensor([input_ids]), position_ids=position_ids, use_cache=False).logits[0, :-1]
        target = torch.tensor(labels[1:])
        return torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum")

    with torch.no_grad():
        separate = sum(summed_loss(r["input_ids"], r["labels"]) for r in rows)
        row = packed[0]
        positions = torch.tensor([[i for n in row["seq_lengths"] for i in range(n)]])
        together = summed_loss(row["input_ids"], row["labels"], positions)
        leaky = summed_loss(row["input_ids"], row["labels"])  # no position ids: the rows would see each other
    torch.testing.assert_close(together, separate, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(leaky, separate, rtol=1e-3)


def test_two_process_ddp_training_completes_on_cpu(tiny_config: Path):
    cfg = yaml.safe_load(tiny_config.read_text())
    done = subprocess.run([sys.executable, "-m", "tunestack", "train", str(tiny_config), "train.max_steps=4",
                           "train.num_checkpoints=2", "--nproc", "2"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = yaml.safe_load((Path(cfg["run"]["runs_dir"]) / "tiny" / "train" / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["steps"] == 4
    assert [c["step"] for c in manifest["checkpoints"]] == [2, 4]
    ckpt = Path(manifest["checkpoints"][-1]["path"])
    assert (ckpt / "rng_state_1.pth").exists()  # the second process's RNG state was saved before publishing
    lora_b = [t for name, t in adapter(ckpt.parents[2], 4).items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)



def test_sharded_strategies_are_refused_on_cpu_before_any_process_starts(tiny_config: Path):
    """accelerate shards models across accelerator devices only; on a CPU, fsdp must not quietly become DDP."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run([sys.executable, "-m", "tunestack", "train", str(tiny_config), "train.max_steps=2",
                           "train.distributed.strategy=fsdp", "--nproc", "2"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "strategy=fsdp needs GPUs" in done.stderr and "use strategy ddp" in done.stderr
    runs = Path(yaml.safe_load(tiny_config.read_text())["run"]["runs_dir"])
    assert not (runs / "tiny" / "prepare").exists()  # said before prepare ran


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.device_count() >= 2")
def test_two_process_fsdp_training_completes_on_gpus(tiny_config: Path):
    """FSDP2 through the Trainer over two GPUs; the published adapter is whole and trained. (CI has no GPU.)"""
    cfg = yaml.safe_load(tiny_config.read_text())
    done = subprocess.run([sys.executable, "-m", "tunestack", "train", str(tiny_config), "train.max_steps=4",
                           "train.num_checkpoints=1", "train.distributed.strategy=fsdp", "--nproc", "2"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = yaml.safe_load((Path(cfg["run"]["runs_dir"]) / "tiny" / "train" / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["distributed"] == "fsdp"
    ckpt = Path(manifest["checkpoints"][-1]["path"])
    lora_b = [t for name, t in adapter(ckpt.parents[2], 4).items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)


SHARDED_REPLAY = """
import json, sys
import torch.distributed as dist
from transformers import AutoModelForCausalLM
from tunestack.chat import render_prompt
from tunestack.evaluate.generate import LocalGenerator
from tunestack.models import load_tokenizer
from tunestack.train.replay import ShardedGenerator, self_replay

dist.init_process_group("gloo")
model_dir, prompts_path, out = sys.argv[1:4]
tokenizer = load_tokenizer(model_dir, "chatml")
model = AutoModelForCausalLM.from_pretrained(model_dir)
generator = ShardedGenerator(LocalGenerator(model, tokenizer, batch_size=4), dist.get_rank(), dist.get_world_size())
prompts = json.load(open(prompts_path))
ids = [render_prompt(tokenizer, [{"role": "user", "content": p["prompt"]}]) for p in prompts]
answers = [g.text for g in generator.generate(ids, 24)]
generated = generator.generated
rows = self_replay(generator, prompts, 9, 48)
json.dump({"answers": answers, "generated": generated, "rows": rows}, open(f"{out}.{dist.get_rank()}", "w"))
dist.destroy_process_group()
"""


def test_self_replay_is_split_across_processes_and_every_process_gets_the_same_rows(tiny_model: Path,
                                                                                   tmp_path: Path):
    """Issue 28 (i): rank 0 no longer answers every self-replay prompt while the other ranks wait at a barrier (on
    GPUs, long enough for NCCL's timeout). Two gloo processes each answer their share, and both hold the rows one
    process alone would have made, in its order."""

    from transformers import AutoModelForCausalLM

    from tunestack.chat import render_prompt
    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import load_tokenizer
    from tunestack.train.replay import self_replay


    prompts, ranks = two_gloo_processes(SHARDED_REPLAY, tiny_model, tmp_path)
    tokenizer = load_tokenizer(tiny_model, "chatml")
    generator = LocalGenerator(AutoModelForCausalLM.from_pretrained(tiny_model), tokenizer, batch_size=4)
    ids = [render_prompt(tokenizer, [{"role": "user", "content": p["prompt"]}]) for p in prompts]
    answers = [g.text for g in generator.generate(ids, 24)]
    assert ranks[0]["answers"] == ranks[1]["answers"] == answers and len(set(answers)) > 1
    assert [r["generated"] for r in ranks] == [5, 5]  # each answered its half of the ten
    assert ranks[0]["rows"] == ranks[1]["rows"] == self_replay(generator, prompts, 9, 48)


FSDP_LOADED = """
import json, os, sys
import torch
import torch.distributed as dist
from tunestack.evaluate.generate import LocalGenerator
from tunestack.models import load_model
from tunestack.models.load import fsdp_loading
from tunestack.train.launch import loading_environment
from tunestack.train.replay import from_rank_zero, self_replay

dist.init_process_group("gloo")
os.environ.update(loading_environment("fsdp", dist.get_world_size()))  # as the training worker does
model_dir, prompts_path, out = sys.argv[1:4]
model, tokenizer = load_model(model_dir, chat_template="chatml")
prompts = json.load(open(prompts_path))
zeros = all(bool((p == 0).all()) for p in model.parameters())
rows = from_rank_zero(__import__("pathlib").Path(out + ".rows.jsonl"),
                      lambda: self_replay(LocalGenerator(model, tokenizer, batch_size=4), prompts, 9, 48),
                      dist.get_rank(), poll_s=0.2)
json.dump({"fsdp_loading": fsdp_loading(), "zeros": zeros, "device": str(next(model.parameters()).device),
           "rows": rows}, open(f"{out}.{dist.get_rank()}", "w"))
dist.destroy_process_group()
"""


def test_under_fsdp_rank_zero_alone_loads_the_weights_and_makes_the_replay_rows(tiny_model: Path, tmp_path: Path):
    """Issue 28 (c, build 3): under FSDP the weights load CPU-RAM-efficiently: rank 0 reads them onto the CPU, every
    other rank gets placeholders (zeros) that FSDP fills from rank 0 when it shards, so no device ever holds the whole
    model. Self-replay, which needs real weights before sharding, is then made by rank 0 alone and handed to the
    others through the file (no collective to time out): every rank gets the rows one process makes. Two gloo
    processes on the CPU (FSDP itself needs GPUs: tests/test_train_resume.py's GPU test)."""

    from tunestack.evaluate.generate import LocalGenerator
    from tunestack.models import load_model
    from tunestack.train.replay import self_replay

    prompts, ranks = two_gloo_processes(FSDP_LOADED, tiny_model, tmp_path)
    assert [r["fsdp_loading"] for r in ranks] == [True, True] and [r["device"] for r in ranks] == ["cpu", "cpu"]
    assert [r["zeros"] for r in ranks] == [False, True]  # rank 1 holds placeholders, not the model
    model, tokenizer = load_model(tiny_model, chat_template="chatml")
    alone = self_replay(LocalGenerator(model, tokenizer, batch_size=4), prompts, 9, 48)
    assert ranks[0]["rows"] == ranks[1]["rows"] == alone and len(alone) > 0


def two_gloo_processes(script: str, tiny_model: Path, tmp_path: Path) -> tuple[list[dict], list[dict]]:
    """`script` run by two gloo processes under torchrun with the tiny model, ten prompts and an output stem (each
    rank writes `out.<rank>` as JSON): (the prompts, what each rank wrote)."""
    import json
    import os

    from tunestack.demo.radiology import generate

    # what the tiny model was pretrained on, so that its answers differ from prompt to prompt
    prompts = [{"id": f"p{i}", "prompt": row["messages"][-2]["content"]} for i, row in enumerate(generate(10, seed=9))]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    (tmp_path / "script.py").write_text(script)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(tmp_path / "script.py"), str(tiny_model), str(tmp_path / "prompts.json"),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return prompts, [json.loads((tmp_path / f"out.{r}").read_text()) for r in (0, 1)]
