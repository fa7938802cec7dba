"""The docs hold to the CLI: every subcommand has a section headed ## `curate NAME` (### for a
subcommand's own subcommands) on one page of docs/, every long option of it appears in that section,
every relative link of README.md, docs/ and bench/README.md resolves (#anchors to a heading), and the
README stays a front door of at most 300 lines whose test command is the one .ci/run runs."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
LINKING = [README, ROOT / "bench" / "README.md", *sorted(DOCS.glob("*.md"))]

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


def commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand under `parser`, depth first, as ("curate model smollm2", its parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield " ".join(("curate", *prefix, name)), sub
                yield from commands(sub, (*prefix, name))


def long_options(parser: argparse.ArgumentParser) -> list[str]:
    """The parser's own long flags (--max-steps, --no-gradient-checkpointing), --help aside."""
    return [
        flag
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help"
    ]


def prose(path: Path) -> list[str]:
    """The page's lines, those inside fenced code blocks blanked (a `# comment` there is no heading)."""
    lines, fence = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        # a backtick fence's info string holds no backtick (```` ```py ```` in prose opens none)
        marker = re.match(r" {0,3}(```+(?=[^`]*$)|~~~+)", line)
        if fence is None and marker:
            fence = marker.group(1)
            lines.append("")
        elif fence is not None:
            if re.fullmatch(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*", line):
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a page, repeats numbered as GitHub numbers them (-1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose(path):
        if heading := HEADING.match(line):
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def sections() -> dict[str, list[tuple[Path, str]]]:
    """Per `curate ...` heading of docs/: the pages that hold it and the section's text (up to the
    next heading of its level or above)."""
    found: dict[str, list[tuple[Path, str]]] = {}
    for page in sorted(DOCS.glob("*.md")):
        lines = prose(page)
        for i, line in enumerate(lines):
            heading = HEADING.match(line)
            name = heading and re.fullmatch(r"`(curate(?: [\w.-]+)+)`", heading.group(2))
            if not name:
                continue
            level, end = len(heading.group(1)), len(lines)
            for j in range(i + 1, len(lines)):
                other = HEADING.match(lines[j])
                if other and len(other.group(1)) <= level:
                    end = j
                    break
            found.setdefault(name.group(1), []).append((page, "\n".join(lines[i:end])))
    return found


COMMANDS = dict(commands(build_parser()))
SECTIONS = sections()


def test_the_cli_has_subcommands_to_document() -> None:
    assert {"curate ingest", "curate score", "curate model smollm2"} <= COMMANDS.keys()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_one_section_in_docs(command: str) -> None:
    pages = [page.name for page, _ in SECTIONS.get(command, [])]
    assert len(pages) == 1, f"{command}: expected one docs/ section headed `{command}`, found {pages or 'none'}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_appears_in_its_commands_section(command: str) -> None:
    text = "\n".join(section for _, section in SECTIONS.get(command, []))
    missing = [
        flag
        for flag in long_options(COMMANDS[command])
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)
    ]
    assert not missing, f"{command}: options not documented in its section: {missing}"


def test_no_section_documents_a_command_that_does_not_exist() -> None:
    assert not sorted(SECTIONS.keys() - COMMANDS.keys())


@pytest.mark.parametrize("page", LINKING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for number, line in enumerate(prose(page), 1):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # https:, mailto: ...
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"line {number}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"line {number}: {target} (no heading #{anchor})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def test_the_index_lists_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = {target.partition("#")[0] for target in LINK.findall(index)}
    unlisted = [page.name for page in DOCS.glob("*.md") if page.name not in linked | {"index.md"}]
    assert not sorted(unlisted)


def test_the_readme_is_a_front_door() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 300


def test_the_readme_gives_the_test_command_ci_runs() -> None:
    command = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert command in README.read_text(encoding="utf-8").splitlines()
