"""Firmware version strings: the one place versions are compared.

Vendors write the same firmware differently (`V5.7.18`, `V5.7.18 build 240826`,
`5.7.18_build240826`, `1.0.3`): versions compare by their numbers, and by their
build only when both carry one (`same_version`, `is_newer`). `sort_key` orders any
version strings (the bridges' offers), numbers numerically.
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import Final

_NUMBERS: Final = re.compile(r"(\d+(?:\.\d+)*)")
_DIGITS: Final = re.compile(r"(\d+)")
_BUILD: Final = re.compile(r"build\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ParsedVersion:
    """A version string reduced to what compares: numbers and build."""

    numbers: tuple[int, ...]
    build: str | None


def parse_version(value: str) -> ParsedVersion | None:
    """Parse `V5.7.18`, `V5.7.18 build 240826`, `5.7.18_build240826`, ..."""
    build_match = _BUILD.search(value)
    head = value[: build_match.start()] if build_match else value
    numbers = _NUMBERS.search(head)
    if numbers is None:
        return None
    return ParsedVersion(
        tuple(int(part) for part in numbers.group(1).split(".")),
        build_match.group(1) if build_match else None,
    )


def same_version(first: str, second: str) -> bool:
    """Return True when both strings name the same firmware.

    A build only decides when both strings carry one: deviceInfo's `V5.7.18` and an
    offer's `V5.7.18 build 240826` are the same firmware.
    """
    one, two = parse_version(first), parse_version(second)
    if one is None or two is None:
        return first.strip().lower() == second.strip().lower()
    if one.numbers != two.numbers:
        return False
    return one.build is None or two.build is None or one.build == two.build


def is_newer(offer: str, installed: str) -> bool:
    """Return True when `offer` is a newer firmware than `installed`."""
    new, old = parse_version(offer), parse_version(installed)
    if new is None or old is None:
        return not same_version(offer, installed)
    if new.numbers != old.numbers:
        return new.numbers > old.numbers
    return new.build is not None and old.build is not None and new.build > old.build


def sort_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Return a sort key comparing the numbers in a version numerically (1.10 > 1.9)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in _DIGITS.split(version)
        if part
    )
