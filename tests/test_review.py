"""`tunestack review`: the store's decide-once rule, the queues, the pages in a real headless browser against the
app served on 127.0.0.1, the export, and the ratings made in the browser feeding `judge calibrate` end to end.

No model is needed: each test builds a small run folder (candidates from synth, an eval split, two models' outputs)
in the shapes of runs/quickstart."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import types
from pathlib import Path

import httpx
import pytest
import yaml
from browser import chrome, needs_browser, screenshot

from openai_server import OpenAIServer
from tunestack.config import load_config
from tunestack.data.formats import normalize_row
from tunestack.review.app import COOKIE, Review, build_app
from tunestack.review.command import open_review
from tunestack.review.export import export_reviews
from tunestack.serve.server import BackgroundServer

SYSTEM = "Extract the radiology report as one line of JSON with the keys modality, region, finding."
REPORTS = [("CT chest: small nodule, right.", "ct", "chest", "nodule"),
           ("X-ray L-spine. Impression: fracture.", "xray", "spine", "fracture"),
           ("MR brain - no acute finding.", "mri", "head", "normal"),
           ("US abdomen: mild effusion.", "ultrasound", "abdomen", "effusion"),
           ("CT head, comparison none: hemorrhage.", "ct", "head", "hemorrhage"),
           ("X-ray chest: pneumonia, left.", "xray", "chest", "pneumonia"),
           ("MR knee: meniscal tear.", "mri", "knee", "tear"),
           ("US neck: thyroid nodule.", "ultrasound", "neck", "nodule")]
MODELS = ("base", "step-000010")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def answer_json(modality: str, region: str, finding: str) -> str:
    return json.dumps({"modality": modality, "region": region, "finding": finding})


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_run(tmp_path: Path, answers_per_model: int = 4) -> Path:
    """A config and the files the review app reads: 8 candidates, an eval split of 6 rows, two models' outputs."""
    run = tmp_path / "runs" / "rev"
    write_jsonl(run / "synth" / "candidates.jsonl", [
        {"id": f"c{i:02d}{'ab' * 6}", "messages": [
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": text},
            {"role": "assistant", "content": answer_json(m, r, f)}],
         "source": "synthetic", "reviewed": False, "teacher": "teacher-model", "prompt_hash": f"{i:064x}"}
        for i, (text, m, r, f) in enumerate(REPORTS)])
    evals = [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text},
                           {"role": "assistant", "content": answer_json(m, r, f)}],
              "source": "human", "reviewed": True, "origin": "radiology.jsonl", "file": "data/radiology.jsonl",
              "line": 100 + 7 * i} for i, (text, m, r, f) in enumerate(REPORTS[:6])]
    write_jsonl(run / "prepare" / "eval.jsonl", evals)
    for k, model in enumerate(MODELS):
        write_jsonl(run / "evaluate" / f"{model}.outputs.jsonl", [
            {"line": row["line"], "prediction": answer_json("ct" if k else "unknown", "chest", f"guess {k}-{i}"),
             "reference": row["messages"][-1]["content"], "token_ids": [1, 2, 3]} for i, row in enumerate(evals)])
    config = tmp_path / "review.yaml"
    config.write_text(yaml.safe_dump({
        "run": {"name": "rev", "runs_dir": str(tmp_path / "runs"), "seed": 3},
        "data": {"path": str(tmp_path / "unused.jsonl")},
        "review": {"answers_per_model": answers_per_model, "port": 0},
        "judge": {"api_key_env": None, "cache": False, "model": "judge-model"},
    }))
    return config


@pytest.fixture
def review_app(tmp_path):
    """The review app served for real on 127.0.0.1 (a free port), with its store and run folder."""
    config = make_run(tmp_path)
    cfg = load_config(config)
    opened = open_review(cfg)
    with BackgroundServer(build_app(Review(opened.store, opened.folder, None, cfg.run.name))) as server:
        yield types.SimpleNamespace(url=f"http://127.0.0.1:{server.port}", store=opened.store, folder=opened.folder,
                                    config=config, cfg=cfg)


@pytest.fixture
def cli_main():
    from tunestack.cli import main

    return main


def rows(store, sql: str, *args) -> list[sqlite3.Row]:
    db = sqlite3.connect(store.path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------------
# Store and queues, without a browser


def test_imports_are_idempotent_and_the_answer_queue_is_blind_and_shuffled(tmp_path):
    cfg = load_config(make_run(tmp_path))
    first = open_review(cfg)
    assert first.added == {"candidates": 8, "answers": 8}
    again = open_review(cfg)
    assert again.added == {"candidates": 0, "answers": 0}
    assert rows(again.store, "PRAGMA journal_mode")[0][0] == "wal"
    answers = again.store.items("answers")
    by_model = {m: sorted(i.payload["line"] for i in answers if i.payload["model"] == m) for m in MODELS}
    assert by_model["base"] == by_model["step-000010"] and len(by_model["base"]) == 4  # the same prompts
    order = [i.payload["model"] for i in answers]
    assert order != sorted(order) and order != sorted(order, reverse=True)  # interleaved, not model by model
    assert {i.key for i in answers} == {f"{m}:{line}" for m in MODELS for line in by_model["base"]}


def test_a_decision_is_recorded_once_and_a_second_reviewer_is_told_who_was_first(tmp_path):
    store = open_review(load_config(make_run(tmp_path))).store
    item = store.next_pending("candidates")
    assert store.decide(item.id, item.version, "accept", "ann", "act-1").outcome == "saved"
    assert store.decide(item.id, item.version, "accept", "ann", "act-1").outcome == "duplicate"
    late = store.decide(item.id, item.version, "reject", "ben", "act-2", reason="late")
    assert late.outcome == "conflict" and late.by == "ann" and "already accepted by ann" in late.message
    assert [(a["action_id"], a["reviewer"]) for a in store.actions()] == [("act-1", "ann")]
    assert store.next_pending("candidates").id != item.id


def test_the_same_action_posted_at_once_from_many_threads_counts_once(review_app):
    """Eight threads resubmit one form (one action id); then eight reviewers each decide the same item with
    their own action ids: one wins, seven are told it was already decided, nothing is lost or doubled."""
    store, url = review_app.store, review_app.url
    first, second = store.items("candidates")[:2]
    outcomes: list[str] = []
    lock = threading.Lock()

    def post(reviewer: str, item, action_id: str, action: str) -> None:
        with httpx.Client(base_url=url, cookies={COOKIE: reviewer}) as client:
            response = client.post(f"/candidates/{item.id}/decide",
                                   data={"action": action, "version": item.version, "action_id": action_id})
        assert response.status_code == 303
        with lock:
            outcomes.append(re.search(r"outcome=(\w+)", response.headers["location"]).group(1))

    threads = [threading.Thread(target=post, args=("dana", first, "same-form", "accept")) for _ in range(8)]
    threads += [threading.Thread(target=post, args=(f"rev{k}", second, f"own-{k}", "reject")) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == sorted(["saved"] * 2 + ["duplicate"] * 7 + ["conflict"] * 7)
    actions = store.actions()
    assert [a["item_id"] for a in actions].count(first.id) == 1 and [a["item_id"] for a in actions].count(
        second.id) == 1 and len(actions) == 2
    winner = next(a for a in actions if a["item_id"] == second.id)
    assert store.item(second.id).decided_by == winner["reviewer"] and store.item(second.id).status == "rejected"
    with httpx.Client(base_url=url, cookies={COOKIE: "someone"}) as client:  # the loser's page says who won
        page = client.get("/candidates", params={"item": second.id, "outcome": "conflict"}).text
    assert f"already rejected by {winner['reviewer']}" in page


def test_forms_work_without_javascript_and_a_configured_reviewer_is_never_asked(tmp_path):
    """Plain POSTs and redirects, as a browser without scripts sends them; review.reviewer fixes the name."""
    cfg = load_config(make_run(tmp_path), ["review.reviewer=zed"])
    opened = open_review(cfg)
    with BackgroundServer(build_app(Review(opened.store, opened.folder, cfg.review.reviewer))) as server, \
            httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        page = client.get("/candidates")
        assert page.status_code == 200 and "Who is reviewing?" not in page.text and ">zed<" in page.text
        item = opened.store.next_pending("candidates")
        form = {"version": item.version, "action_id": re.search(r'name="action_id" value="(\w+)"', page.text)[1]}
        bad = client.post(f"/candidates/{item.id}/edit", data={**form, "count": 2, "role-0": "user",
                                                               "content-0": "hi", "role-1": "user",
                                                               "content-1": "again"})
        assert bad.status_code == 422 and "the last turn must be the assistant answer" in bad.text
        done = client.post(f"/candidates/{item.id}/decide", data={**form, "action": "accept"})
        assert done.status_code == 303 and "outcome=saved" in done.headers["location"]
        assert "Item #%d accepted." % item.id in client.get(done.headers["location"]).text
        assert client.post("/answers/9999/rate", data={**form, "rating": 3}).status_code == 404
        assert client.post(f"/candidates/{item.id}/decide", data={"action": "maybe"}).status_code == 400
        assert client.get("/static/review.js").status_code == 200
    assert [(a["reviewer"], a["action"]) for a in opened.store.actions()] == [("zed", "accept")]


# ---------------------------------------------------------------------------------------------------------------
# The pages in a real browser


def by_id(driver, name: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, name)


def wait_for(driver, name: str):
    """The element with this id, once the page that has it is there."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 20).until(lambda d: d.find_elements("id", name) and d.find_elements("id", name)[0])


def current_item(driver) -> int:
    return int(by_id(driver, "item").get_attribute("data-item"))


def wait_notice(driver, item_id: int) -> str:
    """After a decision: the next page's notice about `item_id`."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def notice(d):  # the old page may still be there, or go while it is read
        found = d.find_elements("id", "notice")
        return found and re.search(rf"#{item_id}\b", found[0].text) and found[0].text

    return WebDriverWait(driver, 20, ignored_exceptions=(StaleElementReferenceException,)).until(notice)


def press(driver, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.TAG_NAME, "body").send_keys(key)


def sign_in(driver, url: str, name: str, then: str) -> None:
    driver.get(url + then)  # no name yet: the index asks for it, then goes on to `then`
    wait_for(driver, "name").send_keys(name)
    assert "Who is reviewing?" in driver.page_source
    by_id(driver, "start").click()
    assert wait_for(driver, "reviewer").text == name and driver.current_url.endswith(then)


def edit_answer(driver, text: str) -> None:
    box = by_id(driver, "content-2")
    box.clear()
    box.send_keys(text)
    by_id(driver, "save").click()


@needs_browser
def test_candidates_are_accepted_edited_and_rejected_by_click_and_by_key(review_app):
    url, store = review_app.url, review_app.store
    done: dict[int, str] = {}
    with chrome() as driver:
        sign_in(driver, url, "alice", "/candidates")
        screenshot(driver, "review-candidates")
        item = current_item(driver)
        by_id(driver, "accept").click()
        assert "accepted" in wait_notice(driver, item)
        done[item] = "accepted"

        item = current_item(driver)
        press(driver, "a")
        assert "accepted" in wait_notice(driver, item)
        done[item] = "accepted"

        item = current_item(driver)
        by_id(driver, "edit").click()
        wait_for(driver, "save")  # the edit form has loaded
        assert "Edit candidate" in driver.page_source
        screenshot(driver, "review-edit")
        edit_answer(driver, " ")  # an empty answer: refused as prepare would refuse the row
        problem = wait_for(driver, "problem").text
        assert "turn 2 (assistant) is empty" in problem and "Not saved" in problem
        assert store.item(item).status == "pending" and not store.actions()[2:]
        screenshot(driver, "review-edit-invalid")
        edited = answer_json("ct", "chest", "nodule_edited")
        edit_answer(driver, edited)
        assert "edited" in wait_notice(driver, item)
        done[item] = "edited"

        item = current_item(driver)
        press(driver, "e")
        box = wait_for(driver, "content-1")  # the prompt is editable too
        box.send_keys(" (edited prompt)")
        edit_answer(driver, answer_json("xray", "spine", "fracture_edited"))
        assert "edited" in wait_notice(driver, item)
        done[item] = "edited"

        item = current_item(driver)
        by_id(driver, "reason").send_keys("wrong region")
        by_id(driver, "reject").click()
        assert "rejected" in wait_notice(driver, item)
        done[item] = "rejected"

        item = current_item(driver)
        press(driver, "r")
        assert "rejected" in wait_notice(driver, item)
        done[item] = "rejected"

        driver.get(url)
        by_id(driver, "export-button").click()
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 20).until(lambda d: "exported=1" in d.current_url)
        result = wait_for(driver, "export-result").text
        assert "2 accepted + 2 edited + 2 rejected + 2 pending = 8 candidates" in result
        screenshot(driver, "review-index")

    statuses = {i.id: i.status for i in store.items("candidates")}
    assert {k: statuses[k] for k in done} == done and list(statuses.values()).count("pending") == 2
    actions = rows(store, "SELECT * FROM actions ORDER BY seq")
    assert [a["item_id"] for a in actions] == list(done) and len({a["action_id"] for a in actions}) == 6
    assert all(a["reviewer"] == "alice" and TIME.match(a["at"]) for a in actions)
    assert [a["action"] for a in actions] == ["accept", "accept", "edit", "edit", "reject", "reject"]
    first_edit = actions[2]
    assert json.loads(first_edit["before"])["messages"][-1]["content"] != edited
    assert json.loads(first_edit["after"])["messages"][-1]["content"] == edited
    assert [a["reason"] for a in actions[4:]] == ["wrong region", None]

    reviewed = read_jsonl(review_app.folder / "reviewed.jsonl")
    assert len(reviewed) == 4
    for row in reviewed:  # rows prepare keeps: its own validator, and the provenance its tiers read
        normalized = normalize_row(row, "chat")
        assert normalized["reviewed"] is True and normalized["source"] == "synthetic"
        assert row["reviewer"] == "alice" and TIME.match(row["reviewed_at"])
        assert row["teacher"] == "teacher-model" and len(row["prompt_hash"]) == 64 and row["id"].startswith("c")
    assert edited in [row["messages"][-1]["content"] for row in reviewed]
    assert any(row["messages"][1]["content"].endswith("(edited prompt)") for row in reviewed)
    rejected = read_jsonl(review_app.folder / "rejected.jsonl")
    assert [(r["reason"], r["reviewer"]) for r in rejected] == [("wrong region", "alice"), (None, "alice")]
    counts = json.loads((review_app.folder / "export.json").read_text())["candidates"]
    assert counts["accepted"] + counts["edited"] + counts["rejected"] + counts["pending"] == counts["imported"] == 8


@needs_browser
def test_answers_rated_blind_in_the_browser_feed_judge_calibrate(review_app, cli_main, capsys):
    url, store = review_app.url, review_app.store
    given: dict[int, int] = {}
    with chrome() as driver:
        sign_in(driver, url, "erin", "/answers")
        screenshot(driver, "review-answers")
        for n in range(8):
            item = current_item(driver)
            source = driver.page_source
            assert not re.search(r"\bbase\b|step-\d+", source)  # blind: the model's name is never on the page
            assert by_id(driver, "answer").text and by_id(driver, "reference").text
            rating = n % 5 + 1
            if n % 2:
                press(driver, str(rating))
            else:
                by_id(driver, f"rate-{rating}").click()
            assert "rated" in wait_notice(driver, item)
            given[item] = rating
        assert by_id(driver, "done").text.startswith("All answers are rated.")

    actions = rows(store, "SELECT * FROM actions ORDER BY seq")
    assert [(a["item_id"], a["rating"], a["action"], a["reviewer"]) for a in actions] == [
        (i, r, "rate", "erin") for i, r in given.items()]
    assert all(i.status == "rated" for i in store.items("answers"))

    assert cli_main(["review", str(review_app.config), "--export"]) == 0
    printed = capsys.readouterr().out
    assert "0 accepted + 0 edited + 0 rejected + 8 pending = 8 imported" in printed
    assert "8 rated + 0 pending = 8 imported" in printed
    human_file = review_app.folder / "human_scores.jsonl"
    scores = read_jsonl(human_file)
    assert {s["id"]: s["human_score"] for s in scores} == {store.item(i).key: r for i, r in given.items()}
    assert {s["model"] for s in scores} == set(MODELS) and all(s["reviewer"] == "erin" for s in scores)
    assert all(s["prompt"].startswith("System: ") and s["reference"] for s in scores)

    planted = {s["answer"]: s["human_score"] for s in scores}  # the judge agrees with erin

    def judge(body):
        answer = re.search(r"<answer>\n(.*)\n</answer>", body["messages"][-1]["content"], re.S).group(1)
        return json.dumps({"score": planted[answer], "reason": "planted"})

    with OpenAIServer(reply=judge) as server:
        code = cli_main(["judge", "calibrate", str(review_app.config), "--human", str(human_file),
                         f"judge.base_url={server.base_url}"])
    assert code == 0
    calibration = json.loads((review_app.folder.parent / "judge" / "calibration.json").read_text())
    assert calibration["n_items"] == 8 and calibration["n_scored"] == 8
    assert {i["id"]: (i["human"], i["judge"]) for i in calibration["items"]} == {
        s["id"]: (s["human_score"], s["human_score"]) for s in scores}


@needs_browser
def test_two_browsers_on_one_queue_decide_every_item_exactly_once(review_app):
    url, store = review_app.url, review_app.store
    with chrome(height=900) as one, chrome(height=900) as two:
        sign_in(one, url, "bob", "/candidates")
        sign_in(two, url, "carol", "/candidates")
        item = current_item(one)
        assert current_item(two) == item  # both look at the same item
        by_id(one, "accept").click()
        assert "accepted" in wait_notice(one, item)
        press(two, "r")  # carol's page is stale: her reject is refused, she is told by whom, and moves on
        assert "already accepted by bob" in wait_notice(two, item)
        assert current_item(two) != item

        notices: dict[str, list[str]] = {"bob": [], "carol": []}

        def review(driver, name: str, key: str) -> None:
            for _ in range(20):
                if driver.find_elements("id", "done"):
                    return
                current = current_item(driver)
                press(driver, key)
                notices[name].append(wait_notice(driver, current))

        threads = [threading.Thread(target=review, args=(one, "bob", "a")),
                   threading.Thread(target=review, args=(two, "carol", "r"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert one.find_elements("id", "done") and two.find_elements("id", "done")

    items = store.items("candidates")
    actions = rows(store, "SELECT * FROM actions ORDER BY seq")
    assert len(actions) == len(items) == 8 and all(i.status != "pending" for i in items)
    assert sorted(a["item_id"] for a in actions) == sorted(i.id for i in items)  # each once: none lost, none doubled
    for i in items:
        action = next(a for a in actions if a["item_id"] == i.id)
        assert action["reviewer"] == i.decided_by and i.status == {"accept": "accepted", "reject": "rejected"}[
            action["action"]]
    saved = sum("already" not in text for texts in notices.values() for text in texts)
    assert saved == 7  # the first item was decided before the threads started
    counts = export_reviews(store, review_app.folder)["candidates"]
    assert counts["accepted"] + counts["rejected"] == 8 and counts["pending"] == counts["edited"] == 0
