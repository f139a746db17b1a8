"""Command `judge calibrate`: ask the judge to score answers that humans scored, and measure how well they agree.

    tunestack judge calibrate CONFIG --human human.jsonl

reads the human scores (JSONL, one answer a line: `id`, `prompt`, `answer`, optional `reference`, `human_score`
1-5), asks the judge (`judge:` in the config) to score each answer with a rubric, and writes to `<run>/judge/`:
`calibration.json` (every score side by side, Spearman, Kendall tau-b, Pearson and quadratic-weighted kappa with
bootstrap 95% intervals, tokens, cost, cache hits, retries, whether the agreement clears the threshold),
`calibration.md`, and the manifest last. `judge_counts` is the rule the selection stage asks: does this judge count?

`score_items` is the judge itself, for any stage that wants answers scored (evaluate will call it).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tunestack.config import Config, JudgeSection
from tunestack.errors import DataError
from tunestack.judge.calibrate import agreement, agreement_ok
from tunestack.client.endpoint import EndpointClient, EndpointSettings, Transport
from tunestack.judge.report import calibration_markdown, verdict
from tunestack.judge.rubric import JudgeScore, Rubric, get_rubric, judge_messages, parse_score, rubric_version
from tunestack.rundir import RunDir, content_hash, file_hash, git_revision, read_json, write_json, write_text

log = logging.getLogger("tunestack")
MIN_SCORED = 3


@dataclass(frozen=True)
class JudgeItem:
    prompt: str
    answer: str
    reference: str | None = None


def endpoint_settings(judge: JudgeSection) -> EndpointSettings:
    from tunestack.models import cache_dir

    if not judge.model:
        from tunestack.errors import ConfigError

        raise ConfigError([("judge.model", "not set: name the judge model served at judge.base_url")])
    folder = Path(judge.cache_dir) if judge.cache_dir else cache_dir() / "judge"
    return EndpointSettings(
        base_url=judge.base_url, model=judge.model, api_key_env=judge.api_key_env,
        max_concurrency=judge.max_concurrency, timeout_s=judge.timeout_s, max_retries=judge.max_retries,
        backoff_s=judge.backoff_s, price_input_per_m=judge.price_input_per_m,
        price_output_per_m=judge.price_output_per_m, cache_dir=folder if judge.cache else None,
    )


def judge_client(judge: JudgeSection, transport: Transport | None = None) -> EndpointClient:
    return EndpointClient(endpoint_settings(judge), transport)


def score_items(client: EndpointClient, items: list[JudgeItem], rubric: Rubric, max_tokens: int) -> list[JudgeScore]:
    """The judge's score for each item, in order; an unreadable reply is a failed JudgeScore with its raw text."""
    batch = [judge_messages(rubric, item.prompt, item.answer, item.reference) for item in items]
    completions = client.complete_many(batch, {"temperature": 0.0, "max_tokens": max_tokens})
    return [parse_score(c.text) for c in completions]


def read_human_scores(path: Path) -> list[dict]:
    """Rows of the human-scores file; every bad row is reported at once as file:line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the human scores ({exc})") from None
    rows, problems, seen = [], [], {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row, problem = _human_row(line)
        if problem is None and row["id"] in seen:
            problem = f"id {row['id']!r} already used on line {seen[row['id']]}"
        if problem:
            problems.append(f"{path}:{number}: {problem}")
            continue
        seen[row["id"]] = number
        rows.append({**row, "line": number})
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise DataError(f"{len(problems)} bad row(s) in the human scores; each line must be a JSON object with id, "
                        f"prompt, answer, optional reference, and human_score from 1 to 5:\n  {shown}")
    if len(rows) < MIN_SCORED:
        raise DataError(f"{path}: {len(rows)} scored row(s); calibration needs at least {MIN_SCORED} (100 or more "
                        "for intervals narrow enough to decide on)")
    return rows


def _human_row(line: str) -> tuple[dict, str | None]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return {}, f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(obj, dict):
        return {}, f"expected a JSON object, got {type(obj).__name__}"
    missing = [key for key in ("id", "prompt", "answer", "human_score") if key not in obj]
    if missing:
        return {}, f"missing {', '.join(missing)}"
    for key in ("prompt", "answer"):
        if not isinstance(obj[key], str):
            return {}, f"{key} must be a string, got {type(obj[key]).__name__}"
    if obj.get("reference") is not None and not isinstance(obj["reference"], str):
        return {}, f"reference must be a string or absent, got {type(obj['reference']).__name__}"
    score = obj["human_score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 1 <= score <= 5:
        return {}, f"human_score must be a number from 1 to 5, got {score!r}"
    return {"id": str(obj["id"]), "prompt": obj["prompt"], "answer": obj["answer"],
            "reference": obj.get("reference"), "human_score": score}, None


def run_calibration(cfg: Config, run: RunDir, human_path: Path, rubric: str = "correctness",
                    client: EndpointClient | None = None) -> dict:
    """Score the human-scored answers with the judge, measure agreement, write calibration.json/.md, then the
    manifest. Returns the calibration."""
    started = time.time()
    judge, chosen = cfg.judge, get_rubric(rubric)
    rows = read_human_scores(human_path)
    client = client or judge_client(judge)
    log.info("[judge] scoring %d answers with %s at %s (%s rubric, %d at a time)", len(rows), judge.model,
             judge.base_url, chosen.name, judge.max_concurrency)
    items = [JudgeItem(r["prompt"], r["answer"], r["reference"]) for r in rows]
    scores = score_items(client, items, chosen, judge.max_tokens)
    calibration = build_calibration(cfg, rows, scores, chosen.name, client.summary())
    calibration["human_file"] = {"path": str(human_path), "sha256": file_hash(Path(human_path))}
    out = run.stage("judge")
    run.invalidate("judge")
    write_json(out / "calibration.json", calibration)
    write_text(out / "calibration.md", calibration_markdown(calibration))
    key = content_hash({"judge": judge.model_dump(mode="json"), "rubric": chosen.name, "seed": cfg.run.seed,
                        "human": calibration["human_file"]["sha256"]})
    run.finish("judge", key, {k: calibration[k] for k in ("judge", "rule", "agreement_ok", "n_scored")}, started)
    return calibration


def build_calibration(cfg: Config, rows: list[dict], scores: list[JudgeScore], rubric: str, usage: dict) -> dict:
    """The calibration record: scores side by side, agreement statistics and the verdict of the rule."""
    judge = cfg.judge
    items = [{"id": r["id"], "line": r["line"], "human": r["human_score"], "judge": s.score, "reason": s.reason,
              **({"error": s.error, "raw": s.raw} if not s.ok else {})} for r, s in zip(rows, scores)]
    scored = [item for item in items if item["judge"] is not None]
    report = None
    if len(scored) >= MIN_SCORED:
        report = agreement([i["human"] for i in scored], [i["judge"] for i in scored],
                           resamples=judge.bootstrap_resamples, seed=cfg.run.seed)
    rule = {"metric": judge.agreement_metric, "threshold": judge.agreement_threshold, "on": judge.agreement_on}
    ok = report is not None and agreement_ok(report, rule["metric"], rule["threshold"], rule["on"])
    return {
        "schema_version": 1, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "git_revision": git_revision(),
        "judge": {"base_url": judge.base_url, "model": judge.model, "rubric": rubric,
                  "rubric_version": rubric_version(get_rubric(rubric)), "max_tokens": judge.max_tokens},
        "config": judge.model_dump(mode="json"),
        "n_items": len(items), "n_scored": len(scored), "n_failed": len(items) - len(scored),
        "agreement": report, "rule": rule, "agreement_ok": ok, "usage": usage, "items": items,
    }


EVALUATION_RUBRIC = "correctness"
"""The rubric the evaluate stage scores answers with (`tunestack.evaluate.judged`)."""


def judge_counts(cfg: Config, run: RunDir) -> tuple[bool, str]:
    """Whether the configured judge may count in selection, and why: it needs a calibration of this very judge
    (endpoint and model), with the rubric and prompt version the evaluation scored with, whose agreement clears
    the configured rule."""
    manifest = run.manifest("judge")
    if manifest is None:
        return False, "the judge is not calibrated: run `tunestack judge calibrate CONFIG --human FILE`"
    calibrated = manifest["judge"]
    if (calibrated["base_url"], calibrated["model"]) != (cfg.judge.base_url, cfg.judge.model):
        return False, (f"the calibration is of {calibrated['model']} at {calibrated['base_url']}, not the configured "
                       f"{cfg.judge.model} at {cfg.judge.base_url}: calibrate this judge")
    used = get_rubric(EVALUATION_RUBRIC)
    if (calibrated.get("rubric"), calibrated.get("rubric_version")) != (used.name, rubric_version(used)):
        return False, (f"the calibration used the {calibrated.get('rubric')} rubric (prompt version "
                       f"{calibrated.get('rubric_version') or 'unrecorded'}), but evaluation scores with the "
                       f"{used.name} rubric (prompt version {rubric_version(used)}): calibrate with "
                       f"`--rubric {used.name}` on this version")
    calibration = read_json(run.root / "judge" / "calibration.json")
    if calibration["agreement"] is None:
        return False, f"too few answers were scored by the judge ({calibration['n_scored']}) to measure agreement"
    judge = cfg.judge
    ok = agreement_ok(calibration["agreement"], judge.agreement_metric, judge.agreement_threshold, judge.agreement_on)
    rule = {"metric": judge.agreement_metric, "threshold": judge.agreement_threshold, "on": judge.agreement_on}
    return ok, verdict({**calibration, "rule": rule, "agreement_ok": ok})
