"""The multiple-choice retention suite: each registry set read as written, drawn stratified, scored with chance
adjusted per question, and a set the base model answers at chance left out. The truth of every check is written
here by hand (the rows, the planted answers), not computed by the code under test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunestack.data import choices
from tunestack.data.suites import Choice, registry_data


@pytest.mark.parametrize("task, row, question, options, answer", [
    ("socialiqa", {"input": [{"role": "user", "content": "Kai lent Sam a pen. What will Sam want to do next? "
                                                          "A: give it back; B: break it; C: eat lunch."}],
                   "ideal": "A"},
     "Kai lent Sam a pen. What will Sam want to do next?", ["give it back", "break it", "eat lunch"], 0),
    ("tomi", {"input": [{"role": "user", "content": "Ann entered the den. The ball is in the red_box. Ann moved the "
                                                     "ball to the blue_crate. Where is the ball?"}],
              "ideal": "blue_crate"},
     None, ["red box", "blue crate"], 1),
    ("medmcqa", {"input": [{"role": "system", "content": "You are a doctor."},
                           {"role": "user", "content": "Subject: Anatomy\n\nWhich bone is in the arm?\n\n"
                                                       "a) Femur\nb) Humerus\nc) Tibia\nd) Fibula"}],
                 "ideal": "b) Humerus"},
     "Subject: Anatomy\n\nWhich bone is in the arm?", ["Femur", "Humerus", "Tibia", "Fibula"], 1),
    ("born_first", {"input": [{"role": "system", "content": "You are a helpful assistant."},
                              {"role": "user", "content": "Was Ada Lovelace born before Alan Turing? Answer Y or N."}],
                    "ideal": "Y"},
     "Was Ada Lovelace born before Alan Turing?", ["Yes", "No"], 0),
    ("heavier", {"input": [{"role": "user", "content": "Is 1 pound of lead heavier than 3 pounds of wool? "
                                                       "Answer Yes or No"}], "ideal": "No"},
     "Is 1 pound of lead heavier than 3 pounds of wool?", ["Yes", "No"], 1),
    ("countries", {"input": [{"role": "system", "content": "Which is the largest? Just answer the name."},
                             {"role": "user", "content": "Chile, Peru, Brazil"}], "ideal": "Brazil"},
     "Which of these countries is the largest by area? Chile, Peru, Brazil", ["Chile", "Peru", "Brazil"], 2),
])
def test_each_set_is_read_as_its_rows_are_written(task, row, question, options, answer):
    got = choices.SETS[task][1](row)
    assert got.options == options and got.answer == answer
    if question is not None:
        assert got.question == question


def test_rows_a_reader_cannot_place_are_skipped_not_guessed():
    socialiqa, tomi = choices.SETS["socialiqa"][1], choices.SETS["tomi"][1]
    assert socialiqa({"input": [{"role": "user", "content": "No options here."}], "ideal": "A"}) is None
    # the answer is not one of the story's containers
    assert tomi({"input": [{"role": "user", "content": "The ball is in the box. Where is it?"}],
                 "ideal": "garden"}) is None


def test_every_set_reads_nearly_all_its_rows_and_each_answer_is_what_the_row_names():
    for task, (files, _) in choices.SETS.items():
        lines = sum(1 for name in files
                    for line in (registry_data() / name).read_text(encoding="utf-8").splitlines() if line.strip())
        read = choices.read_set(task)
        assert len(read) >= 0.9 * lines, (task, len(read), lines)  # a repeated row is read once
        assert all(q.task == task and 0 <= q.answer < len(q.options) for q in read)
    # letter-coded sets: the ideal letter's option text appears after that letter in the raw row
    raw = [json.loads(line) for line in (registry_data() / "theory_of_mind/socialiqa/test.jsonl")
           .read_text(encoding="utf-8").splitlines()[:50]]
    for row, q in zip(raw, choices.read_set("socialiqa")):
        assert f"{row['ideal']}: {q.options[q.answer]}" in row["input"][-1]["content"]


def test_the_draw_is_stratified_and_a_smaller_draw_is_its_prefix():
    draw = choices.stratified(22 * 14, seed=3)  # the smallest set (weekdays) holds 14
    counts = {t: sum(q.task == t for q in draw) for t in choices.tasks()}
    assert len(counts) == 22 and set(counts.values()) == {14}  # eight registry sets, fourteen skill kinds
    assert choices.stratified(80, seed=3) == draw[:80]
    assert choices.stratified(80, seed=4) != draw[:80]
    big = choices.stratified(3000, seed=0)  # small sets run out, the rest share what is left
    sizes = {t: sum(q.task == t for q in big) for t in choices.tasks()}
    assert sizes["born_first"] == len(choices.read_set("born_first")) and len(big) == 3000
    assert len({(q.task, q.question, tuple(q.options)) for q in big}) == 3000  # the registry's repeats are dropped


class PicksFirst:
    """A generator that always likes the first option best (planted)."""
    cannot_score = None

    def loglikelihood(self, pairs, desc=""):
        seen: dict[str, int] = {}
        out = []
        for messages, _ in pairs:
            key = messages[-1]["content"]
            out.append(-float(seen.get(key, 0)))
            seen[key] = seen.get(key, 0) + 1
        return out


def test_a_wrong_answer_costs_what_guessing_would_have_won():
    from tunestack.evaluate.retention import score_choices

    qs = [Choice("two right", ["a", "b"], 0, "x"), Choice("two wrong", ["a", "b"], 1, "x"),
          Choice("three wrong", ["a", "b", "c"], 2, "y"), Choice("four right", ["a", "b", "c", "d"], 0, "y")]
    got = score_choices(PicksFirst(), qs)
    assert got["scores"] == [1.0, -1.0, -0.5, 1.0]
    assert got["accuracy"] == 0.5 and got["adjusted"] == pytest.approx(0.125)
    assert got["by_task"]["y"] == {"n": 2, "accuracy": 0.5, "adjusted": 0.25}


def planted_row(tasks: list[str], right: list[bool], k: int = 2) -> dict:
    scores = [1.0 if ok else -1.0 / (k - 1) for ok in right]
    return {"choices": {"n": len(tasks), "adjusted": float(np.mean(scores)), "accuracy": float(np.mean(right)),
                        "tasks": tasks}, "per_example": {"choices": scores}}


def test_a_set_at_chance_is_left_out_and_a_model_reduced_to_guessing_keeps_nothing():
    from tunestack.evaluate.retention import combine
    from tunestack.verdict import retention_verdicts

    rng = np.random.default_rng(0)
    tasks = ["known"] * 400 + ["guessed"] * 400
    # the base model knows 80% of the first set (chance-adjusted 0.6) and guesses the second (planted at 50%)
    base_right = list(rng.random(400) < 0.8) + [bool(i % 2) for i in range(400)]
    base = planted_row(tasks, base_right)
    from tunestack.stats import informative
    assert informative(base).tolist() == [1.0] * 400 + [0.0] * 400

    # a fine-tune that now guesses on the set it knew: raw accuracy would keep 50/80 = 62%, the adjusted share is ~0
    guessing = planted_row(tasks, list(rng.random(400) < 0.5) + base_right[400:])
    got = combine(guessing, base, {"choices": 1.0})
    assert got["general_by_suite"]["choices"]["informative"] == ["known"]
    assert got["general_retention"] < 0.15
    found = retention_verdicts(guessing, base, {"choices": 1.0}, 0.95, 0.8)
    assert found["overall"]["outcome"] == found["suites"]["choices"]["outcome"] == "fail"

    # a fine-tune that keeps the known set and answers the guessed one differently: the guessing is not counted
    kept = planted_row(tasks, base_right[:400] + list(rng.random(400) < 0.5))
    assert combine(kept, base, {"choices": 1.0})["general_retention"] == pytest.approx(1.0)


def test_a_base_model_at_chance_everywhere_leaves_the_suite_out_of_retention():
    from tunestack.evaluate.retention import combine

    tasks = ["a"] * 200
    base = planted_row(tasks, [bool(i % 2) for i in range(200)])
    tuned = planted_row(tasks, [bool(i % 3) for i in range(200)])
    base["probes"] = tuned["probes"] = {"n": 4, "pass_rate": 0.5}
    got = combine(tuned, base, {"choices": 0.5, "probes": 0.5})
    assert "choices" not in got["general_by_suite"] and got["general_retention"] == 1.0
