"""The documentation's links: every relative link points at a file that exists.

README.md and docs/*.md link to each other and to files of the repository; an anchor
(`#...`) must name a heading of the target page by GitHub's slug rules. External links
(with a scheme such as https: or mailto:) are not fetched.
"""

from __future__ import annotations

from pathlib import Path
import re
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Inline links and images: [text](target) or [text](target "title"); the text may hold
# one level of brackets (badges, code such as `a[0]`).
LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
# Reference definitions: [label]: target
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
FENCE = re.compile(
    r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?^ {0,3}\1[`~]*[ \t]*$", re.MULTILINE | re.DOTALL
)
INLINE_CODE = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose(text: str) -> str:
    """The text without fenced code blocks (links and headings there are not real)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation removed, spaces to '-'.

    Inline markup is dropped first (code spans keep their text; links keep theirs).
    """
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a page, numbered as GitHub numbers repeated ones."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for match in HEADING.finditer(_prose(path.read_text(encoding="utf-8"))):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[str]:
    """The link targets of a page, outside code blocks and code spans."""
    text = INLINE_CODE.sub("", _prose(path.read_text(encoding="utf-8")))
    return [*LINK.findall(text), *REFERENCE.findall(text)]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_pages_exist() -> None:
    """README.md stays the entry point and the docs pages it promises are there."""
    names = {page.name for page in PAGES}
    assert {
        "README.md",
        "hikvision.md",
        "onvif.md",
        "enos.md",
        "miling.md",
        "entities.md",
        "troubleshooting.md",
        "architecture.md",
        "development.md",
    } <= names


def broken_links(page: Path) -> list[str]:
    """The relative links of a page whose file or heading does not exist."""
    broken: list[str] = []
    for target in links(page):
        if SCHEME.match(target):
            continue  # external: not fetched
        file_part, _, anchor = target.partition("#")
        destination = (
            (page.parent / unquote(file_part)).resolve() if file_part else page
        )
        if not destination.exists():
            broken.append(f"{target}: no file {destination.name}")
        elif target.endswith("#"):
            broken.append(f"{target}: an empty anchor")
        elif anchor and (
            destination.suffix != ".md" or unquote(anchor) not in anchors(destination)
        ):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_relative_links_resolve(page: Path) -> None:
    """Each relative link names an existing file, and its anchor an existing heading."""
    broken = broken_links(page)
    assert not broken, "\n".join(broken)


def test_readme_links_every_docs_page() -> None:
    """A newcomer reaches every docs page from README.md."""
    readme = ROOT / "README.md"
    linked = {
        (readme.parent / target.partition("#")[0]).resolve()
        for target in links(readme)
        if not SCHEME.match(target) and target.partition("#")[0]
    }
    missing = [_id(page) for page in PAGES[1:] if page.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Registration (1010 → 1011)", "registration-1010--1011"),
        ("`firmware_hub.install_firmware_file`", "firmware_hubinstall_firmware_file"),
        ("Hand-off and result (EnOS)", "hand-off-and-result-enos"),
        (
            "`scripts/develop` — a Home Assistant with simulated devices",
            "scriptsdevelop--a-home-assistant-with-simulated-devices",
        ),
        (
            "Restarts, reconnects and revoked secrets",
            "restarts-reconnects-and-revoked-secrets",
        ),
    ],
)
def test_slug_follows_github(heading: str, expected: str) -> None:
    """The slug rules match the anchors GitHub generates for these headings."""
    assert slug(heading) == expected


def test_broken_links_are_found(tmp_path: Path) -> None:
    """The checker reports a missing file and a missing heading (it is not vacuous)."""
    (tmp_path / "other.md").write_text("# Other page\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## Two words\n\n[ok](#two-words) [bad](#nope) [gone](missing.md)\n"
        "[there](other.md#other-page) [not there](other.md#title) [empty](other.md#)\n"
        "[web](https://example.invalid/x) `[code](#code-span)`\n"
        "```\n[in code](#ignored)\n```\n",
        encoding="utf-8",
    )
    assert anchors(page) == {"title", "two-words"}
    assert broken_links(page) == [
        "#nope: no heading #nope in page.md",
        "missing.md: no file missing.md",
        "other.md#title: no heading #title in other.md",
        "other.md#: an empty anchor",
    ]
