"""`tunestack synth CONFIG`: candidate training rows from a teacher behind any OpenAI-compatible endpoint.

Recipe: seeds (`synth.seeds_path`, else the run's training split, else the first data source) -> `synth.count`
requests, each showing the teacher `synth.instruction` and `synth.seeds_per_request` seeds drawn afresh
(`synth.prompts`), sent through the shared client (retries, cache, token accounting) in rounds of
`synth.max_concurrency`, within the budget -> each reply parsed and validated by prepare's own row validation
(`tunestack.data.formats.normalize_row`) -> exact and near duplicates removed, among the candidates and against the
seeds, by prepare's deduplication (`tunestack.data.dedup`) -> candidates that leak an eval or holdout row removed by
prepare's decontamination (`tunestack.data.leaks`) -> written.

With `synth.mode: answer` the requests are the seeds' prompts themselves (each seed's conversation before its last
assistant turn, tools included) and each reply, text or tool calls, is that row's new answer: a model's answers
captured as training rows, checked the same way.

Written to `<run>/synth/`: `candidates.jsonl` (each row with `id`, `messages`, `source: synthetic`, `reviewed:
false`, `teacher`, `prompt_hash`), `rejects.jsonl` (every reply that is not a candidate, with its kind, reason and
evidence), `manifest.json` (counts, spend, why generation stopped). The counts reconcile: asked = candidates +
invalid + duplicates + leaks + not sent (budget). `tunestack review` takes the candidates from there.

The budget: at most `synth.max_requests` requests sent (cache hits are free; default `count` x 2, retries
included), and with `synth.max_cost_usd` a round is sent only when, at its worst (every reply `max_tokens` long),
it cannot take the spend past the limit.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tunestack.config import Config
from tunestack.errors import StageError
from tunestack.rundir import RunDir, content_hash, write_json

log = logging.getLogger("tunestack")

__all__ = ["run_synth"]


def teacher_settings(cfg: Config):
    from tunestack.client import EndpointSettings
    from tunestack.models import cache_dir

    s = cfg.synth
    needed = ("model", "instruction") if s.mode == "write" else ("model",)
    if any(not getattr(s, k) for k in needed):
        missing = [k for k in needed if not getattr(s, k)]
        raise StageError("synth needs " + " and ".join(f"synth.{k}" for k in missing) + ": the teacher's model name "
                         "at synth.base_url, and (in mode write) an instruction saying what examples to write")
    return EndpointSettings(base_url=s.base_url, model=s.model, api_key_env=s.api_key_env,
                            max_concurrency=s.max_concurrency, timeout_s=s.timeout_s, max_retries=s.max_retries,
                            price_input_per_m=s.price_input_per_m, price_output_per_m=s.price_output_per_m,
                            cache_dir=cache_dir() / "endpoint" if s.cache else None,
                            requests_per_minute=s.requests_per_minute)


def read_seeds(cfg: Config, run: RunDir) -> tuple[list[list[dict]], str]:
    """Seed conversations and where they came from."""
    from tunestack.rundir import read_jsonl
    from tunestack.data.readers import read_source

    if cfg.synth.seeds_path:
        rows, rejects = read_source(Path(cfg.synth.seeds_path))
        if rejects:
            first = rejects[0]
            raise StageError(f"synth.seeds_path: {first.file}:{first.line}: {first.reason} ({len(rejects)} bad seed "
                             "row(s)); fix or remove them: every seed is shown to the teacher as an example")
        seeds, where = [r.messages for r in rows], cfg.synth.seeds_path
    elif (run.root / "prepare" / "train.jsonl").exists():
        train = run.root / "prepare" / "train.jsonl"
        seeds = [r["messages"] for r in read_jsonl(train) if r.get("source") != "general"]
        where = str(train)
    else:
        name, source = cfg.data.named_sources()[0]
        seeds, where = [r.messages for r in read_source(Path(source.path))[0]], source.path
    if not seeds:
        raise StageError(f"synth: no seed examples in {where}: set synth.seeds_path to a JSONL of examples")
    return seeds, where


def protected_rows(run: RunDir) -> list[list[dict]]:
    """The eval and holdout rows candidates must not leak (prepare's own split files)."""
    from tunestack.rundir import read_jsonl

    folder = run.root / "prepare"
    if not (folder / "eval.jsonl").exists():
        raise StageError("synth decontaminates candidates against the eval and holdout splits, and this run has "
                         "none yet: run `tunestack prepare CONFIG` first")
    from tunestack.data.canon import identity_view

    return [identity_view(r["messages"], r) for name in ("eval.jsonl", "holdout.jsonl") if (folder / name).exists()
            for r in read_jsonl(folder / name)]


def screen(seeds: list[list[dict]], rows: list[dict], protected: list[list[dict]],
           view) -> tuple[list[dict], list[dict]]:
    """Candidates that are neither a duplicate of a seed or an earlier candidate nor a leak of a protected row, and a
    reject record for each that is; `view` is how the identity rule reads a row (`identity`)."""
    from tunestack.data.dedup import deduplicate
    from tunestack.data.leaks import decontaminate

    rejects = []
    kept, removed = deduplicate([*map(view, seeds), *(view(r["messages"]) for r in rows)])
    offset = len(seeds)
    for item in removed:
        if item["row"] < offset:
            continue  # two seeds alike: the seeds are the user's data, prepare reports those
        row = rows[item["row"] - offset]
        of = item["duplicate_of"]
        what = f"seed {of}" if of < offset else f"candidate from request {rows[of - offset]['request']}"
        rejects.append({"request": row["request"], "kind": f"{item['kind']}_duplicate", "reason": f"duplicates {what}",
                        "similarity": item["similarity"], "evidence": item["evidence"]})
    unique = [rows[i - offset] for i in kept if i >= offset]
    leaks = decontaminate([view(r["messages"]) for r in unique], protected)
    leaked = {hit["row"] for hit in leaks}
    for hit in leaks:
        rejects.append({"request": unique[hit["row"]]["request"], "kind": "leak",
                        "reason": f"{hit['kind']} match with an eval or holdout row", "similarity": hit["similarity"],
                        "evidence": hit["evidence"]})
    return [{k: v for k, v in r.items() if k != "request"} for i, r in enumerate(unique) if i not in leaked], rejects


def identity(cfg: Config):
    """How synth's duplicate and leak checks read a row: as code when every data source is `kind: code` (the
    candidates join such a project), else as it is (`tunestack.data.canon`)."""
    from tunestack.data.canon import as_code

    return as_code if cfg.data.all_code() else (lambda messages: messages)


class Budget:
    """Requests and dollars: whether the next round of requests may be sent."""

    def __init__(self, cfg: Config):
        s = cfg.synth
        self.max_requests = s.max_requests or 2 * s.count
        self.max_cost = s.max_cost_usd
        self.prices = (s.price_input_per_m, s.price_output_per_m)
        self.max_tokens = s.max_tokens
        self.stopped: str | None = None

    def allows(self, usage: dict, prompts: list[list[dict]]) -> bool:
        if usage["requests"] + len(prompts) > self.max_requests:
            self.stopped = (f"synth.max_requests ({self.max_requests}): {usage['requests']} sent, the next round "
                            f"would send {len(prompts)} more")
            return False
        if self.max_cost is not None:
            done = max(1, usage["completions"] - usage["cache_hits"])
            per_prompt = usage["prompt_tokens"] / done if usage["prompt_tokens"] else \
                max(sum(len(m.get("content") or "") for m in p) for p in prompts) / 2  # no tokenizer: 2 chars a token
            worst = len(prompts) * (per_prompt * self.prices[0] + self.max_tokens * self.prices[1]) / 1e6
            spent = usage["cost_usd"] or 0.0
            if spent + worst > self.max_cost:
                self.stopped = (f"synth.max_cost_usd (${self.max_cost:g}): ${spent:.4f} spent, the next round could "
                                f"cost up to ${worst:.4f}")
                return False
        return True


def run_synth(cfg: Config, run: RunDir) -> dict:
    from tunestack.client import EndpointClient
    from tunestack.data.formats import normalize_row
    from tunestack.rundir import write_jsonl
    from tunestack.synth.prompts import answer_prompt, parse_reply, request, sample_seeds, shared_system

    started = time.time()
    s = cfg.synth
    settings = teacher_settings(cfg)
    seeds, seeds_from = read_seeds(cfg, run)
    protected = protected_rows(run)
    system = shared_system(seeds)
    if s.mode == "answer":
        prompts = [answer_prompt(seed) for seed in seeds[:s.count]]
    else:
        prompts = [request(s.instruction, sample_seeds(seeds, s.seeds_per_request, cfg.run.seed, i), i)
                   for i in range(s.count)]
    params = {"temperature": s.temperature, "max_tokens": s.max_tokens, "seed": cfg.run.seed}
    client = EndpointClient(settings)
    budget = Budget(cfg)
    replies: list = []
    try:
        from tqdm.auto import tqdm

        with tqdm(total=len(prompts), desc="synth", unit="row", leave=False) as bar:
            for start in range(0, len(prompts), s.max_concurrency):
                chunk = prompts[start:start + s.max_concurrency]
                if not budget.allows(client.summary(), chunk):
                    break
                replies += client.complete_many(chunk, params)
                bar.update(len(chunk))
    finally:
        client.close()
    usage = client.summary()

    rejects, rows = [], []
    for number, (prompt, reply) in enumerate(zip(prompts, replies)):
        key = content_hash({"model": s.model, "messages": prompt, "params": params})
        try:
            raw = {"messages": [*prompt, reply.turn()]} if s.mode == "answer" else parse_reply(reply.text, system)
            row = normalize_row(raw)
        except ValueError as exc:
            rejects.append({"request": number, "kind": "invalid", "reason": str(exc), "text": reply.text[:2000]})
            continue
        if reply.finish_reason == "length":
            rejects.append({"request": number, "kind": "invalid", "text": reply.text[:2000],
                            "reason": f"the reply was cut at synth.max_tokens ({s.max_tokens})"})
            continue
        rows.append({"id": key[:16], "messages": row["messages"], "source": "synthetic", "reviewed": False,
                     "teacher": s.model, "prompt_hash": key, "request": number})

    candidates, screened = screen(seeds, rows, protected, identity(cfg))
    rejects += screened
    folder = run.stage("synth")
    write_jsonl(folder / "candidates.jsonl", candidates)
    write_jsonl(folder / "rejects.jsonl", sorted(rejects, key=lambda r: r["request"]))
    counts = {"asked": len(prompts), "answered": len(replies), "not_sent": len(prompts) - len(replies),
              "invalid": sum(r["kind"] == "invalid" for r in rejects),
              "duplicates": sum(r["kind"].endswith("_duplicate") for r in rejects),
              "leaks": sum(r["kind"] == "leak" for r in rejects), "candidates": len(candidates)}
    assert counts["asked"] == counts["candidates"] + counts["invalid"] + counts["duplicates"] + counts["leaks"] \
        + counts["not_sent"], counts
    body = {"teacher": {"base_url": s.base_url, "model": s.model}, "seeds": {"from": seeds_from, "n": len(seeds)},
            "counts": counts, "usage": usage, "budget_stop": budget.stopped,
            "seconds": round(time.time() - started, 1), "files": ["candidates.jsonl", "rejects.jsonl"]}
    write_json(folder / "manifest.json", body)
    if replies and len(candidates) < (1 - cfg.data.max_removed_share) * len(replies):
        raise StageError(f"synth: only {len(candidates)} of {len(replies)} replies became candidates ({counts}); "
                         f"the reasons are in {folder / 'rejects.jsonl'}. Fix the instruction or the teacher before "
                         "spending more (what was kept is written, and the replies are cached)")
    return body
