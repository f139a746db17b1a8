"""Stage `holdout`: the chosen checkpoint's metrics on the sealed holdout, the figure to quote.

    tunestack holdout CONFIG [--force]

Runs after selection (and export, when it is on), with the evaluate stage's metrics, format check, backend,
precision and decoding, on the checkpoint `select` chose. The holdout is read once: a second read of the same
sealed rows, by this run or any other, is refused unless `--force --why REASON`, and every read, forced or not, is
recorded in the data ledger (`tunestack.data.holdout`, `data.ledger`). `tunestack run` stops before this stage, so iterating never touches the holdout.
Writes `holdout/holdout.json`, `holdout.md` and `outputs.jsonl`, then the manifest.
"""

from __future__ import annotations

import shutil

from tunestack.config import Config
from tunestack.data.holdout import holdout_reads, read_holdout
from tunestack.data.ledger import ledger_path
from tunestack.evaluate.metrics import mean
from tunestack.rundir import RunDir, write_json, write_jsonl, write_text
from tunestack.tools import scored_pairs


def chosen_checkpoint(run: RunDir) -> tuple[str, str | None]:
    """The selected model's name and checkpoint folder (None for the base model)."""
    chosen = run.require("select")["chosen"]
    paths = {c["name"]: c["path"] for c in run.require("train")["checkpoints"]}
    return chosen, paths.get(chosen)


def run_holdout(cfg: Config, run: RunDir, model, tokenizer, force: bool = False, why: str | None = None) -> dict:
    """Evaluate the chosen checkpoint on the sealed holdout, as the evaluate stage evaluated it: merged into
    `model` (the base in the evaluation dtype, restored after), or a QLoRA adapter on its NF4 base."""
    from tunestack.evaluate.scoring import load_scorer
    from tunestack.evaluate.core import entry_model, folder_generator

    scorer = load_scorer(cfg)  # a bad metric fails here, before the one read is spent
    chosen, checkpoint = chosen_checkpoint(run)
    out = run.stage("holdout")
    workdir = out / ".holdout.vllm"  # where the vLLM backend loads the merged model from
    # The model and backend are ready before the one read is spent: a failure to load costs no read.
    with entry_model(cfg, model, {"name": chosen, "path": checkpoint}) as subject:
        generator = folder_generator(cfg, subject, tokenizer, workdir)
        try:
            rows = read_holdout(run, ledger_path(cfg), f"holdout: final validation of {chosen}", force=force,
                                why=why)
            if not rows:
                return {"rows": 0, "model": chosen,
                        "note": "the holdout is empty (data.holdout_size: 0): nothing to validate"}
            outputs = generator.generate([r["messages"][:-1] for r in rows], cfg.evaluate.max_new_tokens,
                                         desc="holdout")
        finally:
            generator.close()
            shutil.rmtree(workdir, ignore_errors=True)
    predictions, references = scored_pairs([o.text for o in outputs], [r["messages"][-1] for r in rows])
    reads = len(holdout_reads(run, ledger_path(cfg)))
    body = {**scorer.score(predictions, references, [r["messages"] for r in rows]), "eos_rate": mean(o.ended_with_eos for o in outputs),
            "rows": len(rows), "model": chosen, "forced": reads > 1, "read_number": reads}
    write_jsonl(out / "outputs.jsonl", [{"line": r.get("line"), "prediction": o.text, "reference": ref}
                                        for r, o, ref in zip(rows, outputs, references)])
    write_json(out / "holdout.json", body)
    write_text(out / "holdout.md", holdout_markdown(body))
    return body


def holdout_markdown(body: dict) -> str:
    """The holdout report: each metric with its interval, format compliance, EOS, and how often it was read."""
    from tunestack.tables import metric_title, show

    reads = "once" if body["read_number"] == 1 else f"{body['read_number']} times"
    forced = " (this read was forced, and is logged)" if body["forced"] else ""
    lines = [f"# Final validation on the sealed holdout: {body['model']}", "",
             f"{body['rows']} rows, read {reads}{forced}. Metrics, format check, backend and decoding are the "
             "evaluate stage's.", "", "| metric | value | 95% CI |", "|---|---|---|"]
    for key, value in body["metrics"].items():
        interval = body["metrics_ci95"].get(key)
        ci = f"{interval[0]:.1%}-{interval[1]:.1%}" if interval else "-"
        lines.append(f"| {metric_title(key)} | {show(value)} | {ci} |")
    lines += [f"| format compliance | {body['format_compliance']:.1%} | - |", f"| EOS | {body['eos_rate']:.1%} | - |"]
    if body.get("per_field_accuracy"):
        lines += ["", "Per field: " + ", ".join(f"{k} {v:.1%}" for k, v in body["per_field_accuracy"].items()) + "."]
    return "\n".join(lines) + "\n"
