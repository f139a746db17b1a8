"""The `tunestack review` command: import the queues, then serve the review app, or `--export` the results.

    tunestack review CONFIG [KEY=VALUE ...] [--host H] [--port P] [--export]

Imports are idempotent, so every start picks up new candidates and nothing else. Imports only light modules at the
top: the CLI imports this one to build its parser.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunestack.review.store import Store

log = logging.getLogger("tunestack")
HELP = ("Review in the browser: accept, edit or reject the candidate rows synth wrote, and rate the evaluated "
        "models' answers 1-5 blind to the model. Serves a local web app on review.host:review.port (127.0.0.1); "
        "every action is recorded in <run>/review/review.sqlite. --export writes review/reviewed.jsonl (rows "
        "prepare reads), rejected.jsonl and human_scores.jsonl (for `judge calibrate --human`).")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("review", help="Review candidate rows and rate model answers in a local web app.",
                       description=HELP)
    p.add_argument("config", type=Path, help="the run's YAML config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides of config keys, e.g. review.port=8401 review.reviewer=alice")
    p.add_argument("--host", help="interface to bind (default: review.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: review.port, 8400; 0 picks a free one)")
    p.add_argument("--export", action="store_true",
                   help="instead of serving: write the export files from the database and print the counts")
    p.set_defaults(handler=handle)
    return p


@dataclass
class Opened:
    store: Store
    folder: Path
    added: dict[str, int]


def open_review(cfg) -> Opened:
    """The store of the run's review, with both queues imported (idempotently)."""
    from tunestack.review.queues import answer_entries, candidate_entries, candidates_path
    from tunestack.review.store import Store
    from tunestack.rundir import RunDir

    run = RunDir(Path(cfg.run.runs_dir) / cfg.run.name)
    folder = run.root / "review"
    store = Store(Path(cfg.review.database) if cfg.review.database else folder / "review.sqlite")
    added = {"candidates": 0, "answers": 0}
    path = candidates_path(cfg.review.candidates_path, run.root)
    if path.exists():
        added["candidates"] = store.add_items("candidates", candidate_entries(path))
    elif cfg.review.candidates_path:
        from tunestack.errors import DataError

        raise DataError(f"review.candidates_path: {path} does not exist")
    added["answers"] = store.add_items("answers", answer_entries(run.root, cfg.review.answers_per_model,
                                                                 cfg.run.seed))
    return Opened(store, folder, added)


def handle(args) -> int:
    from tunestack.config import load_config
    from tunestack.review.export import count_lines, export_reviews

    cfg = load_config(args.config, args.overrides)
    opened = open_review(cfg)
    progress = opened.store.progress()
    log.info("[review] %s: %d candidates (%d new), %d answers (%d new)", opened.store.path,
             progress["candidates"]["total"], opened.added["candidates"], progress["answers"]["total"],
             opened.added["answers"])
    if args.export:
        counts = export_reviews(opened.store, opened.folder)
        print("\n".join(count_lines(counts)))
        print(f"written: {opened.folder / 'reviewed.jsonl'}, {opened.folder / 'rejected.jsonl'}, "
              f"{opened.folder / 'human_scores.jsonl'}")
        return 0
    if not progress["candidates"]["total"] and not progress["answers"]["total"]:
        from tunestack.errors import StageError

        raise StageError("nothing to review: no candidates (run `tunestack synth` or set review.candidates_path) "
                         "and no evaluated answers (run `tunestack evaluate`, and keep review.answers_per_model > 0)")
    return serve(cfg, opened, args.host, args.port)


def serve(cfg, opened: Opened, host: str | None, port: int | None) -> int:
    from tunestack.review.app import Review, build_app
    from tunestack.serve.server import bind, serve_forever

    app = build_app(Review(opened.store, opened.folder, cfg.review.reviewer, cfg.run.name))
    sock = bind(host or cfg.review.host, cfg.review.port if port is None else port)
    bound_host, bound_port = sock.getsockname()[:2]
    print(f"review app: http://{bound_host}:{bound_port}/  (Ctrl-C to stop; `tunestack review CONFIG --export` "
          "or the Export button writes the files)", flush=True)
    serve_forever(app, sock, graceful_s=5.0)
    return 0
