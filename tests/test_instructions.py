"""The instruction-following suite: each kind's check against answers written by hand that keep or break it (the
truth is the hand-written answer's, not the checker's); the items cover the kinds evenly and are stable; and an
answer in the task's JSON format fails whatever the instruction."""

from __future__ import annotations

import pytest

from tunestack.data.instructions import KINDS, build_instructions, kept, most_items

# kind -> (params, answers that keep it, answers that break it), written by hand
CASES = {
    "at_most_words": ({"n": 6}, ["Vast, blue and restless.", "Salt water everywhere"],
                      ["The sea is vast, blue, deep and always restless.", ""]),
    "one_word": ({}, ["Vast.", "calm"], ["Very vast.", "The sea is big."]),
    "lowercase": ({}, ["the sea is wide and blue."], ["The sea is wide.", "123"]),
    "uppercase": ({}, ["THE SEA IS WIDE AND BLUE."], ["THE SEA is wide.", "..."]),
    "bullets": ({"n": 3}, ["- salty\n- deep\n- blue", "Facts:\n* salty\n* deep\n* blue"],
                ["- salty\n- deep", "1. salty\n2. deep\n3. blue", "salty, deep, blue"]),
    "numbered": ({"n": 3}, ["1. cup\n2. leaf\n3. pot", "1) cup\n2) leaf\n3) pot"],
                 ["1. cup\n2. leaf", "- cup\n- leaf\n- pot"]),
    "first_word": ({"word": "Indeed"}, ["Indeed, the moon is bright.", '"Indeed the moon glows."'],
                   ["The moon is bright. Indeed.", "Indeedly bright."]),
    "last_phrase": ({"phrase": "That is all."}, ["A garden grows. That is all.", '"Flowers bloom. That is all."'],
                    ["That is all. A garden grows.", "A garden grows. That is all"]),
    "quoted": ({}, ['"A museum keeps old things."', "“A museum keeps old things.”"],
               ["A museum keeps old things.", '"A museum" keeps old things.']),
    "keyword": ({"word": "small"}, ["Coffee comes in a small cup.", "SMALL cups of coffee."],
                ["Coffee is hot.", "Coffee is smaller than tea."]),
    "avoid_word": ({"word": "school"}, ["Children learn there.", "A schooner sails."],
                   ["A school teaches.", "Schools teach children.", ""]),
    "no_commas": ({}, ["A bicycle has two wheels. It is fun."], ["A bicycle, with two wheels, is fun.", "Fun."]),
    "repeat": ({"sentence": "Practice makes perfect."}, ["Practice makes perfect.", '"practice makes perfect"'],
               ["Practice makes it perfect.", "Practice makes perfect. This proverb means that doing something "
                                              "many times improves it."]),
    "comma_list": ({"n": 3}, ["sand, waves, shells", "sand, waves and shells"],
                   ["sand, waves", "sand\nwaves\nshells", "Here are some: sand, waves, shells, and many other "
                                                          "things you could imagine finding"]),
}


def test_every_kind_has_hand_written_cases():
    assert set(CASES) == {kind.name for kind in KINDS}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_check_keeps_and_breaks_what_a_reader_would(kind):
    params, good, bad = CASES[kind]
    item = {"kind": kind, "params": params}
    assert [kept(item, a) for a in good] == [True] * len(good)
    assert [kept(item, a) for a in bad] == [False] * len(bad)
    # the task's format fails whatever the instruction, even an answer that would otherwise keep it
    assert not kept(item, good[0], bleed=True)


def test_items_cover_the_kinds_evenly_are_distinct_and_stable():
    items = build_instructions(most_items(), seed=3)
    assert len(items) == 14 * 40 == 560
    assert len({i["prompt"] for i in items}) == 560
    counts = {}
    for i in build_instructions(112, seed=3):
        counts[i["kind"]] = counts.get(i["kind"], 0) + 1
    assert set(counts.values()) == {8}
    assert build_instructions(50, seed=3) == build_instructions(50, seed=3)
    assert build_instructions(50, seed=3) != build_instructions(50, seed=4)
    assert build_instructions(50, seed=3) == build_instructions(112, seed=3)[:50]
