"""`tunestack synth` against a real OpenAI-compatible server on 127.0.0.1 (tests/openai_server.py): every reply is
a candidate or a reject with its reason (invalid, cut at max_tokens, a duplicate of a seed or of another candidate, a
leak of an eval row), the counts reconcile, a re-run reads the cache, and the budget in requests and dollars stops
generation before it is passed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from openai_server import OpenAIServer


def teacher(eval_rows: list[dict], seeds: list[dict], planted: bool = True):
    """A scripted teacher: a fresh radiology row for most requests; request 1 prose without JSON, 2 a copy of a
    seed, 3 an eval row with its report reworded by nothing (a leak), 4 the same as request 0, 5 an answer too
    long for max_tokens, 6 a row in user/assistant keys inside a fenced block."""
    from tunestack.demo.radiology import generate

    def turns(row: dict) -> list[dict]:
        return [m for m in row["messages"] if m["role"] != "system"]

    def reply(body: dict) -> str:
        number = int(re.search(r"example number (\d+)", body["messages"][-1]["content"]).group(1))
        fresh = generate(1, seed=1000 + (0 if number == 4 and planted else number))[0]
        if not planted:
            return json.dumps({"messages": turns(fresh)})
        if number == 1:
            return "Sure! Here is a great example of a radiology report for you."
        if number == 2:
            return json.dumps({"messages": turns(seeds[0])})
        if number == 3:
            return json.dumps({"messages": turns(eval_rows[0])})
        if number == 5:
            return json.dumps({"messages": turns(fresh)}) + " and more" * 400
        if number == 6:
            user, answer = turns(fresh)
            return "```json\n" + json.dumps({"user": user["content"], "assistant": answer["content"]}) + "\n```"
        return json.dumps({"messages": turns(fresh)})

    return reply


def synth_config(tiny_config: Path, server: OpenAIServer, **synth) -> Path:
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["synth"] = {"base_url": server.base_url, "model": "teacher-model", "api_key_env": None, "count": 20,
                    "max_tokens": 400, "max_concurrency": 4, "seeds_per_request": 3,
                    "instruction": "Write a radiology report line and its extraction as one line of JSON.",
                    "price_input_per_m": 1.0, "price_output_per_m": 4.0, **synth}
    tiny_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return tiny_config


def prepared(tiny_config: Path, monkeypatch, tmp_path: Path):
    """The tiny run prepared (a private endpoint cache): the run, its eval rows and its task training rows."""
    from tunestack.config import load_config
    from tunestack.rundir import read_jsonl
    from tunestack.pipeline import run_stages

    monkeypatch.setenv("TUNESTACK_CACHE", str(tmp_path / "cache"))
    run = run_stages(load_config(tiny_config), until="prepare")
    eval_rows = read_jsonl(run.root / "prepare" / "eval.jsonl")
    seeds = [r for r in read_jsonl(run.root / "prepare" / "train.jsonl") if r.get("source") != "general"]
    return run, eval_rows, seeds


def test_synth_candidates_are_checked_by_prepares_code_and_the_counts_reconcile(tiny_config: Path, monkeypatch,
                                                                                 tmp_path: Path):
    from tunestack.cli import main
    from tunestack.data.formats import normalize_row
    from tunestack.rundir import read_jsonl
    from tunestack.rundir import read_json

    run, eval_rows, seeds = prepared(tiny_config, monkeypatch, tmp_path)
    with OpenAIServer(reply=teacher(eval_rows, seeds)) as server:
        config = synth_config(tiny_config, server)
        # 12 requests, 5 of them planted to fail: under 70% kept, the command stops and says why, files written
        assert main(["synth", str(config), "synth.count=12"]) == 2
        assert read_json(run.root / "synth" / "manifest.json")["counts"]["candidates"] == 7
        assert main(["synth", str(config)]) == 0  # 20: the first 12 from the cache, 8 sent
        assert len(server.chat_requests) == 20
        first = server.chat_requests[0]["messages"][-1]["content"]
        assert "Write a radiology report line" in first and first.count('\n{"messages"') == 3  # three seeds shown
        body = read_json(run.root / "synth" / "manifest.json")
        counts = body["counts"]
        assert counts == {"asked": 20, "answered": 20, "not_sent": 0, "invalid": 2, "duplicates": 2, "leaks": 1,
                          "candidates": 15}
        rejects = read_jsonl(run.root / "synth" / "rejects.jsonl")
        kinds = {r["request"]: r["kind"] for r in rejects}
        assert kinds == {1: "invalid", 2: "exact_duplicate", 3: "leak", 4: "exact_duplicate", 5: "invalid"}
        assert "seed" in next(r["reason"] for r in rejects if r["request"] == 2)
        assert "request 0" in next(r["reason"] for r in rejects if r["request"] == 4)
        assert "max_tokens" in next(r["reason"] for r in rejects if r["request"] == 5)
        candidates = read_jsonl(run.root / "synth" / "candidates.jsonl")
        assert len(candidates) == 15 and len({c["id"] for c in candidates}) == 15
        for c in candidates:
            assert c["source"] == "synthetic" and c["reviewed"] is False and c["teacher"] == "teacher-model"
            assert len(c["prompt_hash"]) == 64 and c["messages"][0]["role"] == "system"  # the seeds' system prompt
            normalize_row(dict(c))  # what prepare reads
        assert body["usage"]["cost_usd"] > 0 and body["usage"]["requests"] == 8
        assert body["usage"]["cache_hits"] == 12

        assert main(["synth", str(config)]) == 0  # a re-run reads every reply from the cache
        assert len(server.chat_requests) == 20
        again = read_json(run.root / "synth" / "manifest.json")
        assert again["usage"]["cache_hits"] == 20 and again["usage"]["requests"] == 0 and again["counts"] == counts


def test_the_budget_stops_generation_before_it_is_passed(tiny_config: Path, monkeypatch, tmp_path: Path):
    from tunestack.config import load_config
    from tunestack.synth import run_synth

    run, eval_rows, seeds = prepared(tiny_config, monkeypatch, tmp_path)
    with OpenAIServer(reply=teacher(eval_rows, seeds, planted=False)) as server:
        body = run_synth(load_config(synth_config(tiny_config, server, max_requests=6, cache=False)), run)
        assert len(server.chat_requests) == 4 and body["counts"]["not_sent"] == 16
        assert "synth.max_requests (6)" in body["budget_stop"]
        counts = body["counts"]
        assert counts["asked"] == sum(counts[k] for k in ("candidates", "invalid", "duplicates", "leaks", "not_sent"))

        limit = 0.004  # dollars: the first round costs about $0.0016 at these prices, its worst case more
        body = run_synth(load_config(synth_config(tiny_config, server, max_cost_usd=limit, cache=False)), run)
        assert body["usage"]["cost_usd"] <= limit and body["counts"]["not_sent"] > 0
        assert "synth.max_cost_usd" in body["budget_stop"]


def test_synth_without_a_teacher_or_a_prepared_run_says_what_to_set(tiny_config: Path):
    from tunestack.cli import main

    assert main(["synth", str(tiny_config)]) == 2  # no synth.model or instruction: a clean error, exit 2
    with OpenAIServer() as server:
        assert main(["synth", str(synth_config(tiny_config, server))]) == 2  # no prepare yet
    with pytest.raises(Exception, match="max_cost_usd needs"):
        from tunestack.config import load_config
        load_config(tiny_config, ["synth.max_cost_usd=1", "synth.price_input_per_m=null"])


def test_synthetic_rows_flow_through_review_into_prepare_and_the_counts_reconcile(tiny_config: Path, monkeypatch,
                                                                                   tmp_path: Path):
    """synth -> the review app (the real server, driven over HTTP as its forms post) accepts, edits and rejects ->
    `review --export` -> prepare reads the reviewed rows as a source: synthetic tier, every row accounted for."""
    import uuid

    import httpx

    from tunestack.cli import main
    from tunestack.config import load_config
    from tunestack.rundir import read_jsonl
    from tunestack.review.app import Review, build_app
    from tunestack.review.command import open_review
    from tunestack.rundir import read_json
    from tunestack.serve.server import BackgroundServer

    run, eval_rows, seeds = prepared(tiny_config, monkeypatch, tmp_path)
    with OpenAIServer(reply=teacher(eval_rows, seeds)) as server:
        config = synth_config(tiny_config, server)
        assert main(["synth", str(config)]) == 0
    candidates = read_jsonl(run.root / "synth" / "candidates.jsonl")
    assert len(candidates) == 15

    cfg = load_config(config, ["review.reviewer=ann", "review.answers_per_model=0"])
    opened = open_review(cfg)
    plan = ["accept", "accept", "accept", "edit", "edit", "reject", "reject"]
    with BackgroundServer(build_app(Review(opened.store, opened.folder, "ann", cfg.run.name))) as app, \
            httpx.Client(base_url=f"http://127.0.0.1:{app.port}", timeout=30) as http:
        for action in plan:
            item = opened.store.next_pending("candidates")
            form = {"version": str(item.version), "action_id": uuid.uuid4().hex}
            if action == "edit":
                messages = item.payload["messages"]
                form["count"] = str(len(messages))
                for i, m in enumerate(messages):
                    form[f"role-{i}"], form[f"content-{i}"] = m["role"], m["content"]
                form[f"content-{len(messages) - 1}"] = messages[-1]["content"].replace('"none"', '"left"', 1)
                reply = http.post(f"/candidates/{item.id}/edit", data=form)
            else:
                form.update(action=action, reason="not a real report" if action == "reject" else "")
                reply = http.post(f"/candidates/{item.id}/decide", data=form)
            assert reply.status_code in (200, 303), reply.text[:500]
    assert main(["review", str(config), "review.answers_per_model=0", "--export"]) == 0
    reviewed = read_jsonl(run.root / "review" / "reviewed.jsonl")
    assert len(reviewed) == 5 and all(r["reviewed"] is True and r["reviewer"] == "ann" for r in reviewed)
    assert len(read_jsonl(run.root / "review" / "rejected.jsonl")) == 2
    exported = read_json(run.root / "review" / "export.json")["candidates"]
    assert exported == {"imported": 15, "accepted": 3, "edited": 2, "rejected": 2, "pending": 8}

    raw = yaml.safe_load(config.read_text())
    raw["data"]["sources"] = [{"path": raw["data"].pop("path")},
                              {"path": str(run.root / "review" / "reviewed.jsonl"), "name": "synthetic-reviewed"}]
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["prepare", str(config), "--force"]) == 0
    manifest = read_json(run.root / "prepare" / "manifest.json")
    source = manifest["sources"]["synthetic-reviewed"]
    assert source["read"] == 5
    assert source["read"] == sum(source[k] for k in ("kept", "rejected", "exact_duplicates", "near_duplicates",
                                                     "conflicting_labels", "decontaminated"))
    assert manifest["tiers"]["synthetic"]["read"] == 5 and manifest["tiers"]["synthetic"]["kept"] == source["kept"]
    kept = [r for name in ("train.jsonl", "eval.jsonl", "holdout.jsonl")
            for r in read_jsonl(run.root / "prepare" / name) if r.get("source") == "synthetic"]
    assert len(kept) == source["kept"] and all(r.get("reviewed") is True for r in kept)


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now in a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


def test_answer_mode_sends_each_seed_prompt_with_its_tools_and_keeps_the_teachers_calls(tiny_config: Path,
                                                                                         monkeypatch, tmp_path: Path):
    """`synth.mode: answer`, an old model as the teacher: each seed's prompt goes to the endpoint as OpenAI takes it
    (its `tools` beside the messages), and a reply that calls tools becomes the row's answer in tunestack's form."""
    from tunestack.cli import main
    from tunestack.rundir import read_jsonl
    from tunestack.rundir import read_json

    run, _, _ = prepared(tiny_config, monkeypatch, tmp_path)
    cities = ["Oslo", "Lima", "Cairo", "Quito"]
    seeds = tmp_path / "tool_seeds.jsonl"
    seeds.write_text("".join(json.dumps({"messages": [
        {"role": "system", "content": "You check the weather with the tools.", "tools": TOOLS},
        {"role": "user", "content": f"Is it raining in {city} right now?"},
        {"role": "assistant", "content": f"I believe it is dry in {city}."}]}) + "\n" for city in cities))

    def teacher_calls(body: dict) -> dict | str:
        city = re.search(r"raining in (\w+)", body["messages"][-1]["content"]).group(1)
        if city == "Quito":
            return f"No rain in {city} today."
        call = {"name": "get_weather", "arguments": json.dumps({"city": city})}
        return {"content": f"Let me check {city}.",
                "tool_calls": [{"id": f"call_{city}", "type": "function", "function": call}]}

    with OpenAIServer(reply=teacher_calls, served_as="old-ft-2024") as server:
        config = synth_config(tiny_config, server, mode="answer", seeds_path=str(seeds), requests_per_minute=6000)
        assert main(["synth", str(config)]) == 0
    assert len(server.chat_requests) == 4 and server.tools == [TOOLS] * 4
    assert all(b["messages"][0] == {"role": "system", "content": "You check the weather with the tools."}
               and len(b["messages"]) == 2 for b in server.chat_requests)
    candidates = {c["messages"][1]["content"]: c for c in read_jsonl(run.root / "synth" / "candidates.jsonl")}
    assert len(candidates) == 4
    oslo = candidates["Is it raining in Oslo right now?"]["messages"]
    assert oslo[0]["tools"] == TOOLS and oslo[-1] == {
        "role": "assistant", "content": "Let me check Oslo.",
        "tool_calls": [{"id": "call_Oslo", "type": "function",
                        "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}
    assert candidates["Is it raining in Quito right now?"]["messages"][-1] == {"role": "assistant",
                                                                             "content": "No rain in Quito today."}
    body = read_json(run.root / "synth" / "manifest.json")
    assert body["counts"]["candidates"] == 4 and body["usage"]["models"] == {"old-ft-2024": 4}


def test_written_examples_show_and_keep_their_tools():
    from tunestack.synth.prompts import parse_reply, request

    seed = [{"role": "system", "content": "Use the tools.", "tools": TOOLS},
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}]
    shown = request("Write weather questions.", [seed], 0)[1]["content"]
    example = json.loads(shown.split("\n")[3])
    assert example["tools"] == TOOLS and [m["role"] for m in example["messages"]] == ["user", "assistant"]
    assert 'and their "tools"' in shown
    reply = json.dumps({"tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather in Lima?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'}}]}]})
    row = parse_reply(reply, "Use the tools.")
    assert row["messages"][0] == {"role": "system", "content": "Use the tools.", "tools": TOOLS}
    assert row["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"city": "Lima"}
