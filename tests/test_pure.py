"""The pure core imports no torch, and its doctests hold."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

PURE = ["tunestack.config", "tunestack.chat", "tunestack.data.formats", "tunestack.data.dedup", "tunestack.data.prepare",
        "tunestack.data.readers", "tunestack.data.checks", "tunestack.data.lengths", "tunestack.data.holdout",
        "tunestack.data.general", "tunestack.data.report",
        "tunestack.evaluate.metrics", "tunestack.evaluate.backends", "tunestack.evaluate.registry", "tunestack.select.choose",
        "tunestack.select.stage", "tunestack.holdout.stage", "tunestack.train.mapping",
        "tunestack.train.replay", "tunestack.demo.radiology", "tunestack.report", "tunestack.rundir",
        "tunestack.cost.prices", "tunestack.cost.model", "tunestack.cost.inputs", "tunestack.cost.report",
        "tunestack.judge.rubric", "tunestack.judge.calibrate", "tunestack.judge.report",
        "tunestack.assess.categories", "tunestack.assess.verdict", "tunestack.assess.sample", "tunestack.assess.report",
        "tunestack.tools", "tunestack.data.openai_format", "tunestack.data.canon", "tunestack.init",
        "tunestack.init.summary", "tunestack.init.schema", "tunestack.init.model", "tunestack.init.render"]


def test_pure_modules_do_not_import_torch():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PURE) +
            "bad = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", PURE)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
