"""The everyday-skill items: each kind's answer is right by construction (checked here against answers written by
hand), each becomes a multiple-choice question with wrong options of its kind, and a draw is stratified with
smaller draws as its prefixes."""

from __future__ import annotations

import re

from tunestack.data.skills import as_choices, build_skills, most_items


def test_items_carry_the_right_answer():
    items = {i["prompt"]: i["answers"] for i in build_skills(most_items(), seed=0)}
    assert items["What is 7 + 5?"] == ["12", "twelve"]
    assert items["What is 30 - 12?"] == ["18", "eighteen"]
    assert items["What is 6 times 7?"] == ["42"]
    assert items["What number comes right after 99?"] == ["100"]
    assert items["What is double 45?"] == ["90"]
    assert items["How many minutes are in 3 hours?"] == ["180"]
    assert items["How many days are in 2 weeks?"] == ["14", "fourteen"]
    assert items["What day of the week comes after Sunday?"] == ["Monday"]
    assert items["What month comes before January?"] == ["December"]
    assert items["Which letter comes after Q in the alphabet?"] == ["r"]
    assert items["What is the capital of Australia?"] == ["Canberra"]
    assert items['What is the plural of "mouse"?'] == ["mice"]
    assert items["How many legs does a spider have?"] == ["8", "eight"]


def test_no_item_holds_its_answer_in_its_question():
    for item in build_skills(most_items(), seed=0):
        assert not any(re.search(rf"\b{re.escape(a)}\b", item["prompt"], re.IGNORECASE) for a in item["answers"]), item


def test_as_a_choice_the_answer_is_among_distinct_options_of_its_kind():
    items = build_skills(most_items(), seed=0)
    questions = as_choices(items)
    for item, q in zip(items, questions):
        assert q.question == item["prompt"] and q.task == item["kind"] and len(q.options) == 4
        assert q.options[q.answer] == item["answers"][0] and len(set(q.options)) == 4
    sums = {q.question: q for q in questions}
    q = sums["What is 7 + 5?"]  # wrong options are near numbers: 2, 10, 11, 13, 14 or 22
    assert set(q.options) - {"12"} <= {"2", "10", "11", "13", "14", "22"}
    q = sums["What is the capital of Australia?"]  # wrong options are other capitals
    assert set(q.options) - {"Canberra"} <= {"Paris", "Berlin", "Rome", "Madrid", "Tokyo", "Beijing", "Moscow",
                                            "London", "Cairo", "Athens", "Lisbon", "Dublin", "Oslo", "Stockholm",
                                            "Helsinki", "Copenhagen", "Warsaw", "Vienna", "Budapest", "Nairobi",
                                            "Bangkok", "Seoul", "Buenos Aires", "Lima", "Havana", "Ottawa",
                                            "Mexico City", "New Delhi", "Amsterdam", "Brussels", "Ankara", "Tehran",
                                            "Jakarta", "Manila", "Hanoi", "Santiago", "Bogota", "Prague", "Kyiv"}


def test_a_draw_takes_the_kinds_in_turn_and_a_smaller_draw_is_its_prefix():
    draw = build_skills(140, seed=1)
    kinds = {i["kind"] for i in draw}
    assert len(kinds) == 14 and all(sum(i["kind"] == k for i in draw) == 10 for k in kinds)
    assert build_skills(30, seed=1) == draw[:30]
    assert build_skills(30, seed=2) != draw[:30]
    assert len({i["prompt"] for i in build_skills(most_items(), seed=0)}) == most_items()
