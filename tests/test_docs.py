"""The documentation: README.md and docs/*.md link only to files and headings that exist, every page is reachable
from the README, the README stays short, no placeholder is left, the config reference matches the schema, and every
command is in the README's commands table."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
MAX_README_LINES = 300
PLACEHOLDERS = re.compile(r"BENCH_FIGURES|\bTODO\b|\bTBD\b|\bXXX\b|\bFIXME\b|\bLorem ipsum\b", re.IGNORECASE)

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a link or heading inside a fence is not one)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def links(path: Path) -> list[str]:
    """Every link and image target of a markdown file, outside code."""
    found = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = REFERENCE_DEF.match(line)
        if match:
            found.append(match.group(1))
            continue
        found.extend(LINK.findall(INLINE_CODE.sub("", line)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def local_links() -> list[tuple[Path, str]]:
    return [(page, target) for page in PAGES for target in links(page) if not EXTERNAL.match(target)]


@pytest.mark.parametrize(("page", "target"), local_links(), ids=lambda v: rel(v) if isinstance(v, Path) else v)
def test_relative_link_resolves(page: Path, target: str):
    path_part, _, anchor = target.partition("#")
    destination = (page.parent / unquote(path_part)).resolve() if path_part else page
    assert destination.exists(), f"{rel(page)} links to {target}: {path_part} does not exist"
    if anchor:
        assert destination.suffix == ".md", f"{rel(page)} links to an anchor in a file that is not markdown: {target}"
        assert unquote(anchor).lower() in anchors(destination), \
            f"{rel(page)} links to {target}: no heading of {rel(destination)} has the anchor #{anchor}"


def test_every_docs_page_is_reachable_from_the_readme():
    reached, queue = {README.resolve()}, [README.resolve()]
    while queue:
        page = queue.pop()
        for target in links(page):
            path_part = target.partition("#")[0]
            if EXTERNAL.match(target) or not path_part.endswith(".md"):
                continue
            destination = (page.parent / unquote(path_part)).resolve()
            if destination.exists() and destination not in reached:
                reached.add(destination)
                queue.append(destination)
    orphans = [rel(page) for page in DOCS.rglob("*.md") if page.resolve() not in reached]
    assert not orphans, f"pages linked from neither README.md nor a page reachable from it: {orphans}"


def test_readme_is_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines < MAX_README_LINES, f"README.md has {lines} lines; move detail into docs/ (limit {MAX_README_LINES})"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_no_placeholder_text(page: Path):
    hits = [f"{rel(page)}:{number}: {line.strip()}"
            for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
            if PLACEHOLDERS.search(line)]
    assert not hits, "placeholder text left:\n" + "\n".join(hits)


def test_config_reference_is_generated_from_the_schema():
    from tunestack.config import REFERENCE_END, REFERENCE_START, reference_markdown

    text = (DOCS / "config.md").read_text(encoding="utf-8")
    assert text.count(REFERENCE_START) == 1 and text.count(REFERENCE_END) == 1
    generated = text.split(REFERENCE_START, 1)[1].split(REFERENCE_END, 1)[0]
    assert generated == f"\n{reference_markdown()}", \
        "docs/config.md is stale: run `make docs` (tunestack config-reference --write docs/config.md)"


def test_every_command_is_in_the_readme_commands_table():
    from tunestack.cli_parser import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no public accessor
    rows = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `tunestack ")]
    listed = {re.match(r"\| `tunestack ([\w-]+)", row).group(1) for row in rows}
    assert not set(commands) - listed, f"commands missing from the README's table: {sorted(set(commands) - listed)}"
    assert not listed - set(commands), f"the README lists commands that do not exist: {sorted(listed - set(commands))}"
