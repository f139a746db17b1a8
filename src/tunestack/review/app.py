"""The review web app: server-rendered pages over the store, a starlette ASGI app.

    GET  /                              both queues' progress, the reviewer's name, the export button
    POST /reviewer                      remember the reviewer's name (a cookie), then back to where they were going
    GET  /candidates                    the next pending candidate: Accept / Edit / Reject (keys a / e / r)
    POST /candidates/{id}/decide        accept or reject (`action`, optional `reason`)
    GET  /candidates/{id}/edit          the conversation in a form, every message editable
    POST /candidates/{id}/edit          validated as `prepare` validates a row; an invalid edit is shown back
    GET  /answers                       the next answer to rate: prompt, reference, answer, never the model
    POST /answers/{id}/rate             a rating 1-5 (keys 1-5)
    POST /export                        write reviewed.jsonl, rejected.jsonl, human_scores.jsonl (`export`)
    GET  /static/review.js, review.css  the page's own script (keyboard shortcuts only) and style

Every form works without JavaScript: POST, then a 303 redirect to the next page (so a reload never resubmits). Each
decision form carries the item's version and a fresh action id (see `store`); the page after a decision says what
was recorded, or who had decided the item first.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode

from tunestack.data.formats import normalize_row
from tunestack.data.openai_format import ROLES
from tunestack.review.export import export_reviews
from tunestack.review.store import Decision, Store

HERE = Path(__file__).parent
COOKIE = "tunestack_reviewer"
MAX_FORM_BYTES = 2_000_000
MAX_NAME = 80


@dataclass
class Review:
    """What the pages need: the store, where exports go, and the configured reviewer (None: ask in the browser)."""

    store: Store
    export_dir: Path
    reviewer: str | None = None
    run_name: str = ""


def pretty(text: object) -> str | None:
    """An answer that is JSON, indented, for the formatted view under the exact text; None for anything else.

    >>> pretty('{"a": 1}')
    '{\\n  "a": 1\\n}'
    >>> pretty("no") is None
    True
    """
    if isinstance(text, str) and text.strip()[:1] in ("{", "["):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except json.JSONDecodeError:
            pass
    return None


def templates():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["pretty"] = pretty
    return env


async def read_form(request) -> dict[str, str]:
    """An url-encoded form body as {name: last value} (without python-multipart, which the stack does not ship)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def reviewer_of(request) -> str | None:
    """The configured reviewer, else the name the browser's cookie remembers (None: not given yet)."""
    review: Review = request.app.state.review
    return review.reviewer or (unquote(request.cookies.get(COOKIE, "")).strip()[:MAX_NAME] or None)


def page(name: str, request, status: int = 200, **context):
    from starlette.responses import HTMLResponse

    review: Review = request.app.state.review
    html = request.app.state.env.get_template(name).render(reviewer=reviewer_of(request),
                                                           fixed=review.reviewer is not None,
                                                           run_name=review.run_name, **context)
    return HTMLResponse(html, status_code=status)


def redirect(url: str):
    from starlette.responses import RedirectResponse

    return RedirectResponse(url, status_code=303)


def ask_name(request):
    return redirect("/?" + urlencode({"next": request.url.path}))


def notice_of(request) -> dict | None:
    """The outcome of the last decision, named in the redirect, told from the store (never from the URL)."""
    query = request.query_params
    if query.get("outcome") not in ("saved", "duplicate", "conflict") or not query.get("item", "").isdigit():
        return None
    item = request.app.state.review.store.item(int(query["item"]))
    if item is None:
        return None
    decision = Decision(query["outcome"], item.id, item.status, item.decided_by)
    return {"kind": decision.outcome, "text": decision.message}


def after(queue: str, decision: Decision):
    return redirect(f"/{queue}?" + urlencode({"item": decision.item_id, "outcome": decision.outcome}))


async def index(request):
    from starlette.concurrency import run_in_threadpool

    review: Review = request.app.state.review
    exported = review.export_dir / "export.json"
    last_export = json.loads(exported.read_text()) if exported.exists() else None
    return page("index.html", request, progress=await run_in_threadpool(review.store.progress),
                next=request.query_params.get("next", ""), last_export=last_export,
                just_exported=request.query_params.get("exported") == "1")


async def set_reviewer(request):
    form = await read_form(request)
    name, target = form.get("name", "").strip()[:MAX_NAME], form.get("next", "")
    response = redirect(target if target in ("/candidates", "/answers") else "/")
    if name:
        response.set_cookie(COOKIE, quote(name), max_age=30 * 86400, httponly=True, samesite="lax")
    return response


def next_pending(queue: str, template: str):
    """The handler showing the page of a queue's next pending item (a fresh action id in its forms)."""
    async def show(request):
        from starlette.concurrency import run_in_threadpool

        if not reviewer_of(request):
            return ask_name(request)
        store: Store = request.app.state.review.store
        item = await run_in_threadpool(store.next_pending, queue)
        return page(template, request, item=item, notice=notice_of(request), action_id=uuid.uuid4().hex,
                    progress=store.progress()[queue])
    return show


async def decide(request):
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    reviewer = reviewer_of(request)
    if not reviewer:
        return ask_name(request)
    store: Store = request.app.state.review.store
    form, item_id = await read_form(request), request.path_params["id"]
    action = form.get("action")
    if action not in ("accept", "reject") or not form.get("version", "").isdigit() or not form.get("action_id"):
        return Response("a decision needs action (accept or reject), version and action_id", status_code=400)
    if store.item(item_id) is None:
        return Response(f"no item #{item_id}", status_code=404)
    decision = await run_in_threadpool(store.decide, item_id, int(form["version"]), action, reviewer,
                                       form["action_id"], reason=form.get("reason", "").strip() or None)
    return after("candidates", decision)


async def edit_form(request):
    from starlette.responses import Response

    if not reviewer_of(request):
        return ask_name(request)
    item = request.app.state.review.store.item(request.path_params["id"])
    if item is None or item.queue != "candidates":
        return Response("no such candidate", status_code=404)
    return page("edit.html", request, item=item, messages=item.payload["messages"], roles=ROLES, problem=None,
                action_id=uuid.uuid4().hex, version=item.version)


async def save_edit(request):
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    reviewer = reviewer_of(request)
    if not reviewer:
        return ask_name(request)
    store: Store = request.app.state.review.store
    form, item = await read_form(request), store.item(request.path_params["id"])
    if item is None or item.queue != "candidates":
        return Response("no such candidate", status_code=404)
    if not form.get("version", "").isdigit() or not form.get("action_id"):
        return Response("an edit needs version and action_id", status_code=400)
    messages = [{"role": form.get(f"role-{i}", ""), "content": form.get(f"content-{i}", "").replace("\r\n", "\n")}
                for i in range(int(form.get("count", "0") or 0)) if f"content-{i}" in form]
    try:  # the row as prepare would read it: the same validator, so an accepted edit is a row prepare keeps
        row = normalize_row({**item.payload, "messages": messages}, "chat")
    except ValueError as exc:
        return page("edit.html", request, status=422, item=item, messages=messages, roles=ROLES,
                    problem=str(exc), action_id=form["action_id"], version=form["version"])
    decision = await run_in_threadpool(store.decide, item.id, int(form["version"]), "edit", reviewer,
                                       form["action_id"], after=row)
    return after("candidates", decision)


async def rate(request):
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    reviewer = reviewer_of(request)
    if not reviewer:
        return ask_name(request)
    store: Store = request.app.state.review.store
    form, item_id = await read_form(request), request.path_params["id"]
    if form.get("rating") not in ("1", "2", "3", "4", "5") or not form.get("version", "").isdigit() \
            or not form.get("action_id"):
        return Response("a rating needs rating (1-5), version and action_id", status_code=400)
    if store.item(item_id) is None:
        return Response(f"no item #{item_id}", status_code=404)
    decision = await run_in_threadpool(store.decide, item_id, int(form["version"]), "rate", reviewer,
                                       form["action_id"], rating=int(form["rating"]))
    return after("answers", decision)


async def export(request):
    from starlette.concurrency import run_in_threadpool

    review: Review = request.app.state.review
    await run_in_threadpool(export_reviews, review.store, review.export_dir)
    return redirect("/?exported=1")


def build_app(review: Review):
    """The ASGI app over `review`; the handlers read it from `app.state.review`, the templates from
    `app.state.env`."""
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    routes = [
        Route("/", index), Route("/reviewer", set_reviewer, methods=["POST"]),
        Route("/candidates", next_pending("candidates", "candidate.html")),
        Route("/candidates/{id:int}/decide", decide, methods=["POST"]),
        Route("/candidates/{id:int}/edit", edit_form), Route("/candidates/{id:int}/edit", save_edit, methods=["POST"]),
        Route("/answers", next_pending("answers", "answer.html")),
        Route("/answers/{id:int}/rate", rate, methods=["POST"]),
        Route("/export", export, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.review, app.state.env = review, templates()
    return app
