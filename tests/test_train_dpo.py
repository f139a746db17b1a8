"""DPO raises preference accuracy on held-out pairs: after training, the model gives the chosen answer a higher
log-likelihood than the rejected one more often than before. The preference is one of style: a short sentence
(chosen) over the JSON the tiny base model was pre-trained on (rejected), so the base starts out preferring the
rejected answers."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tunestack.demo.radiology import generate


def pairs(n: int, seed: int) -> list[dict]:
    """Chosen: a sentence naming the finding; rejected: the JSON answer."""
    out = []
    for row in generate(n, seed=seed):
        system, user, answer = row["messages"]
        finding = json.loads(answer["content"])["finding"].replace("_", " ")
        out.append({"prompt": [system, user], "chosen": f"The finding is {finding}.", "rejected": answer["content"]})
    return out


def preference_accuracy(model, tokenizer, held_out: list[dict]) -> float:
    import torch

    from tunestack.chat import render_prompt

    def answer_logp(prompt: list[int], answer: str) -> float:
        full = tokenizer.apply_chat_template([*p["prompt"], {"role": "assistant", "content": answer}],
                                             tokenize=True, return_dict=False)
        ids = torch.tensor([list(full)])
        with torch.no_grad():
            logp = model(input_ids=ids, use_cache=False).logits[0, :-1].log_softmax(-1)
        targets = ids[0, 1:]
        return logp[len(prompt) - 1:].gather(1, targets[len(prompt) - 1:, None]).sum().item()

    wins = 0
    for p in held_out:
        prompt = render_prompt(tokenizer, p["prompt"])
        wins += answer_logp(prompt, p["chosen"]) > answer_logp(prompt, p["rejected"])
    return wins / len(held_out)


def test_dpo_raises_preference_accuracy_on_held_out_pairs(tmp_path: Path, tiny_config: Path, tiny_model: Path):
    from tunestack.config import load_config
    from tunestack.models import load_model, merged_copy
    from tunestack.pipeline import run_stages

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs(150, seed=21)))
    held_out = pairs(40, seed=99)
    cfg = load_config(tiny_config, [f"data.path={data}", "data.eval_size=10", "data.holdout_size=5",
                                    "train.method=dpo", "train.max_steps=30", "train.learning_rate=5e-3",
                                    "train.micro_batch_size=8", "train.num_checkpoints=1", "train.dpo.beta=0.1",
                                    "run.name=dpo"])
    run = run_stages(cfg, until="train")
    manifest = run.require("train")
    assert manifest["method"] == "dpo" and manifest["rows"]["pairs"] > 100
    model, tokenizer = load_model(tiny_model)
    before = preference_accuracy(model.eval(), tokenizer, held_out)
    after = preference_accuracy(merged_copy(model, manifest["checkpoints"][-1]["path"]).eval(), tokenizer, held_out)
    print(f"preference accuracy on held-out pairs: {before:.2f} before, {after:.2f} after")
    assert after > before + 0.2 and after >= 0.8, (before, after)
    assert yaml.safe_load((run.root / "train" / "metrics.jsonl").read_text().splitlines()[-1])["loss"] < 0.69


def test_dpo_starts_from_an_sft_checkpoint(tmp_path: Path, tiny_config: Path):
    """The SFT -> DPO workflow: the SFT adapter is merged into the base, and DPO trains a new adapter on top."""
    from tunestack.config import load_config
    from tunestack.pipeline import run_stages

    sft = run_stages(load_config(tiny_config, ["run.name=sft", "train.max_steps=4", "train.num_checkpoints=1"]),
                     until="train")
    checkpoint = sft.require("train")["checkpoints"][-1]["path"]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs(60, seed=3)))
    dpo = run_stages(load_config(tiny_config, [f"data.path={data}", "data.eval_size=5", "data.holdout_size=2",
                                               "train.method=dpo", f"train.init_from={checkpoint}", "run.name=dpo",
                                               "train.max_steps=4", "train.num_checkpoints=1"]), until="train")
    manifest = dpo.require("train")
    assert manifest["method"] == "dpo" and manifest["steps"] == 4
    assert (Path(manifest["checkpoints"][-1]["path"]) / "adapter_model.safetensors").exists()
    # Evaluation and export see the model as trained: base + SFT delta + DPO delta (LoRA deltas add up).
    import copy

    import torch
    from peft import PeftModel

    from tunestack.models import load_model, merged_copy

    dpo_checkpoint = manifest["checkpoints"][-1]["path"]
    assert manifest["checkpoints"][-1]["init_from"] == checkpoint
    base, _ = load_model(Path(yaml.safe_load(tiny_config.read_text())["model"]["name"]))
    both = dict(merged_copy(base, dpo_checkpoint).named_parameters())
    sft_only = dict(merged_copy(base, checkpoint).named_parameters())
    dpo_only = dict(PeftModel.from_pretrained(copy.deepcopy(base), dpo_checkpoint).merge_and_unload().named_parameters())
    name = next(n for n, p in base.named_parameters() if "q_proj" in n)
    original = dict(base.named_parameters())[name]
    assert not torch.equal(sft_only[name], original) and not torch.equal(dpo_only[name], original)
    torch.testing.assert_close(both[name], sft_only[name] + dpo_only[name] - original, rtol=1e-4, atol=1e-5)

    # The export of the DPO checkpoint merges the chain (SFT, then DPO), and checks it against the DPO adapter on
    # the SFT-merged base, which is merged in place (no copy); streamed from the files, the same bytes.
    import safetensors.torch

    from tunestack.pipeline import execute
    from tunestack.rundir import write_json

    cfg = load_config(tiny_config, [f"data.path={data}", "data.eval_size=5", "data.holdout_size=2",
                                    "train.method=dpo", f"train.init_from={checkpoint}", "run.name=dpo"])
    write_json(dpo.stage("select") / "manifest.json", {"chosen": manifest["checkpoints"][-1]["name"]})
    loaded = execute(cfg, dpo, "export")
    assert loaded["merge"] == "loaded" and loaded["verification"]["identical"] == loaded["verification"]["compared"]
    weights = safetensors.torch.load_file(dpo.root / "export" / "model" / "model.safetensors")
    streamed = execute(load_config(tiny_config, [f"data.path={data}", "data.eval_size=5", "data.holdout_size=2",
                                                 "train.method=dpo", f"train.init_from={checkpoint}", "run.name=dpo",
                                                 "export.merge=streamed"]), dpo, "export")
    assert streamed["merge"] == "streamed" and streamed["verification"]["identical"] == 5
    again = safetensors.torch.load_file(dpo.root / "export" / "model" / "model.safetensors")
    assert set(again) == set(weights) and all(torch.equal(again[k], weights[k]) for k in weights)
