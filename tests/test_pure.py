"""The pure core imports no torch, and the doctests of every module under src/tunestack hold.

The doctests are found, not listed: every module whose docstrings (module, classes, functions, methods) carry
examples is a case, counted from its source without importing it; a module without examples is not a case, so it
never passes for having nothing to run. Each case runs its module's doctests and checks that every example written
was run (one written where doctest does not look, say in a nested function's docstring, fails the case). A module
that cannot be imported for want of an optional package (torch without the `train` extra) is skipped, saying which.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PURE = ["tunestack.config", "tunestack.chat", "tunestack.data.formats", "tunestack.data.dedup", "tunestack.data.prepare",
        "tunestack.data.readers", "tunestack.data.checks", "tunestack.data.lengths", "tunestack.data.holdout",
        "tunestack.data.general", "tunestack.data.report",
        "tunestack.evaluate.metrics", "tunestack.evaluate.backends", "tunestack.evaluate.registry", "tunestack.select.choose",
        "tunestack.select.stage", "tunestack.holdout.stage", "tunestack.train.mapping",
        "tunestack.train.replay", "tunestack.demo.radiology", "tunestack.report", "tunestack.rundir",
        "tunestack.config.prices", "tunestack.cost.model", "tunestack.cost.inputs", "tunestack.cost.report",
        "tunestack.judge.rubric", "tunestack.judge.calibrate", "tunestack.judge.report",
        "tunestack.assess.categories", "tunestack.assess.verdict", "tunestack.assess.sample", "tunestack.assess.report",
        "tunestack.tools", "tunestack.data.openai_format", "tunestack.data.canon", "tunestack.init",
        "tunestack.init.summary", "tunestack.init.schema", "tunestack.init.model", "tunestack.init.render",
        "tunestack.tables", "tunestack.stats", "tunestack.schemas", "tunestack.data.splits", "tunestack.data.ngrams",
        "tunestack.data.suites", "tunestack.report.markdown", "tunestack.report.results"]


def test_pure_modules_do_not_import_torch():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PURE) +
            "bad = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


SRC = Path(__file__).resolve().parents[1] / "src" / "tunestack"


def written_examples(path: Path) -> int:
    """How many doctest examples a module's docstrings hold, read from its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    owners = [tree, *(n for n in ast.walk(tree) if isinstance(n, kinds))]
    parser = doctest.DocTestParser()
    return sum(len(parser.get_examples(ast.get_docstring(n, clean=False) or "")) for n in owners)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


WITH_EXAMPLES = {module_name(p): n for p in sorted(SRC.rglob("*.py")) if (n := written_examples(p))}


def test_doctests_are_found_in_every_package():
    """Discovery sees the whole tree: the modules the hand-kept list never ran are cases too."""
    assert len(WITH_EXAMPLES) >= 45 and sum(WITH_EXAMPLES.values()) >= 190, (len(WITH_EXAMPLES), WITH_EXAMPLES)
    assert {"tunestack.data.canon", "tunestack.train.memory", "tunestack.evaluate.retention",
            "tunestack.stats"} <= WITH_EXAMPLES.keys()
    assert "tunestack.data.readers" not in WITH_EXAMPLES  # no examples: not a case


@pytest.mark.parametrize("name", sorted(WITH_EXAMPLES))
def test_doctests(name):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "tunestack":
            raise
        pytest.skip(f"{name} needs {exc.name}, which is not installed")
    result = doctest.testmod(module)
    assert result.failed == 0
    assert result.attempted == WITH_EXAMPLES[name] > 0, "examples written where doctest does not run them"
