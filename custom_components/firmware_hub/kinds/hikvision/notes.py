"""A Hikvision change log as Markdown (no Home Assistant imports)."""

from __future__ import annotations

from typing import Final

#: Lines of a change log that are list items already.
_LIST_MARKERS: Final = ("- ", "* ", "+ ")


def markdown_notes(changelog: str | None) -> str | None:
    """Return a change log as Markdown that keeps its line breaks.

    Home Assistant renders release notes as Markdown, which joins single line
    breaks into one paragraph: a change log of several lines becomes a list.
    """
    if changelog is None:
        return None
    lines = [line.strip() for line in changelog.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else None
    return "\n".join(
        line if line.startswith(_LIST_MARKERS) else f"- {line}" for line in lines
    )
