"""The documentation is part of the interface: a short front page, links that resolve, no
citations of files outside the repository, and contract pages that name what the code has.

Each contract check reads its list from where the code defines it (the pydantic record, the
argument parser, the event constants and routes, the settings), so a field, command, option,
event type or setting added without its documentation fails here.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.cli import build_parser
from optimizer.schemas import events
from optimizer.schemas.records import REQUEST_COLUMNS, STORED_NOT_NULL
from optimizer.settings import ENV_PREFIX, Settings
from optimizer.webhook.routes import ROUTES

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FRONT_PAGE_MAX_LINES = 150

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
# Places that exist only on some machine: home folders and the like. Spelled as alternatives
# so that this file does not match itself.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home|Users)/")
# Design notes and contracts kept beside a checkout rather than in it.
OUTSIDE_NOTES = re.compile(r"shared[/\\]contracts|(?:PREFECT|PERFORMANCE)-NOTES\.md|(?:ARCHITECTURE|CONVENTIONS)\.md")
# A cited path to a Markdown file, with at least one folder in it (a docs page, say).
CITED_MARKDOWN = re.compile(r"(?<![\w./-])((?:\.\.?/)*[\w-]+(?:/[\w.-]+)*/[\w.-]+\.md)\b")

KIND_IN_DOCS = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool",
                "timestamp": "timestamp"}


def prose(markdown: str) -> str:
    """The text outside fenced code blocks (examples there are output, not links)."""
    return FENCE.sub("", markdown)


def doc_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def slug(heading: str) -> str:
    """The anchor a Markdown renderer such as GitHub's gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, text in HEADING.findall(prose(page.read_text(encoding="utf-8"))):
        base = slug(text)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def section(markdown: str, heading: str) -> str:
    """The text under `heading` (a whole heading line) up to the next heading of its level or above."""
    match = re.search(rf"^{re.escape(heading)}\s*$", markdown, re.MULTILINE)
    assert match, f"no heading {heading!r}"
    level = len(heading) - len(heading.lstrip("#"))
    following = re.compile(rf"^#{{1,{level}}}\s", re.MULTILINE).search(markdown, match.end())
    return markdown[match.end(): following.start() if following else len(markdown)]


def mentions(text: str, token: str) -> bool:
    """`token` appears on its own, not as part of a longer name (`--dask` in `--dask-workers`)."""
    return re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text) is not None


def tracked_text_files() -> Iterator[tuple[Path, str]]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in sorted({n for n in listed.decode().split("\0") if n}):
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the working tree
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            yield path, data.decode("utf-8")
        except UnicodeDecodeError:
            continue


def test_readme_front_page_is_short_and_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < FRONT_PAGE_MAX_LINES, "the details belong in docs/"
    first_block = FENCE.search(text)
    assert first_block is not None
    assert "\n## " not in text[: first_block.start()], "the commands come before any section"
    commands = [line.split("#")[0].strip() for line in first_block.group(0).splitlines()[1:-1] if line.strip()]
    assert commands == ["make demo", "make test"]


def test_readme_shows_the_report_the_approval_form_and_the_architecture() -> None:
    images = [target for target in LINK.findall(prose(README.read_text(encoding="utf-8")))
              if target.startswith("docs/images/")]
    assert "docs/images/report.png" in images
    assert "docs/images/approval-form.png" in images
    assert any(Path(image).stem == "architecture" for image in images)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target.split("#")[0]).resolve() for target in LINK.findall(prose(README.read_text(encoding="utf-8")))}
    orphans = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not orphans, f"docs pages nobody links to from README.md: {orphans}"


def test_every_relative_link_resolves_inside_the_repository() -> None:
    broken = []
    for page in doc_pages():
        for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            where, _, anchor = target.partition("#")
            resolved = (page.parent / where).resolve() if where else page.resolve()
            if not resolved.is_relative_to(ROOT):
                broken.append(f"{page.name}: {target} leaves the repository")
            elif not resolved.exists():
                broken.append(f"{page.name}: {target} does not exist")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page.name}: {target} names no heading of {resolved.name}")
    assert not broken, "\n".join(broken)


def test_no_tracked_file_cites_a_path_outside_the_repository() -> None:
    found = []
    for path, text in tracked_text_files():
        name = path.relative_to(ROOT)
        for pattern in (MACHINE_PATH, OUTSIDE_NOTES):
            found += [f"{name}: {match.group(0)}" for match in pattern.finditer(text)]
        for match in CITED_MARKDOWN.finditer(text):
            cited = match.group(1)
            places = [(ROOT / cited).resolve(), (path.parent / cited).resolve()]
            if not any(place.is_file() and place.is_relative_to(ROOT) for place in places):
                found.append(f"{name}: {cited} is not a file in the repository")
    assert not found, "\n".join(found)


def test_request_record_doc_lists_every_column_with_its_type_and_null_rule() -> None:
    columns = section((DOCS / "request-record.md").read_text(encoding="utf-8"), "## Columns")
    rows = {}
    for line in columns.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 3:
            rows[cells[0].strip("`")] = (cells[1], cells[2])
    assert list(rows) == [c.name for c in REQUEST_COLUMNS], "one row per RequestRecord field, in order"
    for column in REQUEST_COLUMNS:
        kind, nullable = rows[column.name]
        assert kind.startswith(KIND_IN_DOCS[column.kind]), f"{column.name} is {column.kind}, documented as {kind}"
        assert nullable.startswith("no") == (column.name in STORED_NOT_NULL), f"{column.name}: null? says {nullable}"


def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield " ".join(path), parser
    for action in subcommands:
        for name, child in action.choices.items():
            yield from leaf_commands(child, (*path, name))


def test_cli_doc_covers_every_command_and_option() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    missing = [option for action in parser._actions for option in action.option_strings
               if option not in ("-h", "--help") and not mentions(text, option)]
    commands = list(leaf_commands(parser))
    assert len(commands) >= 10
    for command, sub in commands:
        heading = f"## `auto-optimizer {command}`"
        if not re.search(rf"^{re.escape(heading)}\s*$", text, re.MULTILINE):
            missing.append(heading)
            continue
        body = section(text, heading)
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            names = action.option_strings or [action.metavar or action.dest.upper()]
            missing += [f"{command} {name}" for name in names if not mentions(body, str(name))]
    assert not missing, f"docs/cli.md does not document: {missing}"


def test_events_doc_names_every_event_type_the_code_emits_and_accepts() -> None:
    text = (DOCS / "events.md").read_text(encoding="utf-8")
    emitted = {value for name, value in vars(events).items()
               if name.isupper() and isinstance(value, str) and value.startswith("io.")}
    sources = {events.SOURCE, events.EXPERIMENTS_SOURCE}
    assert emitted and ROUTES
    incoming = section(text, "## In: the webhook receiver")
    outgoing = section(text, "## Out: what the optimizer emits")
    missing = [f"in: {t}" for t in ROUTES if f"`{t}`" not in incoming]
    missing += [f"out: {t}" for t in sorted(emitted | sources) if f"`{t}`" not in outgoing]
    assert not missing, f"docs/events.md does not name: {missing}"


def test_configuration_doc_names_every_setting() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields
               if not mentions(text, f"{ENV_PREFIX}{name.upper()}")]
    assert not missing, f"docs/configuration.md does not document: {missing}"
