"""Architectural fitness: the import graph of `src/tunestack`, built from the source, has no cycle and keeps the
floors written in docs/architecture.md; modules stay under 500 lines and functions under 80.

The truth here is the source text and the architecture page, read with `ast` and a regular expression; nothing in
tunestack is imported or called.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PAGE = ROOT / "docs" / "architecture.md"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's __init__) for every module under src/."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def imported(name: str, known: dict) -> str | None:
    """The module of ours that `name` (a module or a name inside one) resolves to, or None for another package's."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, at any depth (inside functions too)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, (path, package) in known.items():
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".") if package else name.split(".")[:-1]
                    here = here[: len(here) - (node.level - 1)]
                    base = ".".join(here + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]  # a name or a submodule
            for target in targets:
                if target.split(".")[0] != "tunestack":
                    continue
                module = imported(target, known)
                if module and module != name:
                    edges.add(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def floors() -> tuple[dict[str, int], set[tuple[str, str]]]:
    """From the architecture page's table: unit -> floor number, and the (from, to) pairs allowed on one floor."""
    floor_of: dict[str, int] = {}
    allowed: set[tuple[str, str]] = set()
    rows = re.findall(r"^\|\s*(\d+)\s*\|[^|]+\|([^|]+)\|([^|]*)\|\s*$", PAGE.read_text(encoding="utf-8"), re.M)
    assert rows, f"{PAGE} has no table of floors"
    for number, units, extra in rows:
        for unit in re.findall(r"`([\w.]+)`", units):
            assert unit not in floor_of, f"{unit} is on two floors of {PAGE.name}"
            floor_of[unit] = int(number)
        allowed |= set(re.findall(r"`([\w.]+)` -> `([\w.]+)`", extra))
    return floor_of, allowed


def unit(module: str) -> str:
    """The package or top-level module a module belongs to: `tunestack.evaluate.core` -> `evaluate`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # src/tunestack/pipeline.py imports each stage inside `execute` only
    assert "tunestack.select.stage" in graph["tunestack.pipeline"]
    assert "tunestack.evaluate.stage" in graph["tunestack.pipeline"]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (break each by moving the shared part down a floor): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_cycle_finder_on_a_known_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_every_unit_has_a_floor_and_every_floor_entry_exists():
    floor_of, _ = floors()
    units = {unit(m) for m in modules()}
    assert not units - set(floor_of), f"give these a floor in {PAGE.relative_to(ROOT)}: {sorted(units - set(floor_of))}"
    assert not set(floor_of) - units, f"{PAGE.relative_to(ROOT)} names what src/ lacks: {sorted(set(floor_of) - units)}"


def test_each_import_goes_down_a_floor_or_to_a_named_dependency():
    floor_of, allowed = floors()
    wrong = []
    for module, targets in import_graph().items():
        here = unit(module)
        for target in targets:
            there = unit(target)
            if here not in floor_of or there not in floor_of:
                continue  # test_every_unit_has_a_floor_and_every_floor_entry_exists names it
            if there == here or floor_of[there] < floor_of[here] or (here, there) in allowed:
                continue
            wrong.append(f"{module} (floor {floor_of[here]}) imports {target} (floor {floor_of[there]})")
    assert not wrong, "imports against the floors of docs/architecture.md:\n" + "\n".join(sorted(wrong))


def test_named_dependencies_are_used_and_on_one_floor():
    floor_of, allowed = floors()
    used = {(unit(m), unit(t)) for m, ts in import_graph().items() for t in ts}
    for here, there in allowed:
        assert floor_of[here] == floor_of[there], f"{here} -> {there}: a named dependency is for one floor"
        assert (here, there) in used, f"{here} -> {there} is named in the table but no longer imported: drop it"


def sizes() -> tuple[list[str], list[str]]:
    long_modules, long_functions = [], []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        if len(text.splitlines()) >= MAX_MODULE_LINES:
            long_modules.append(f"{where}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length >= MAX_FUNCTION_LINES:
                    long_functions.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    return long_modules, long_functions


def test_modules_under_500_lines():
    assert not sizes()[0], "split by concern: " + "; ".join(sizes()[0])


def test_functions_under_80_lines():
    assert not sizes()[1], "split into named steps: " + "; ".join(sizes()[1])


@pytest.mark.parametrize("text, expected", [("def f():\n" + "    x = 1\n" * 78 + "    return x\n", 80),
                                            ("def f():\n    return 1\n", 2)])
def test_function_length_counts_signature_to_last_line(text, expected):
    node = ast.parse(text).body[0]
    assert node.end_lineno - node.lineno + 1 == expected
