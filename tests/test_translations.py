"""The German and Simplified Chinese translations are complete and keep en.json's placeholders."""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Any

import pytest

TRANSLATIONS = (
    Path(__file__).parent.parent / "custom_components" / "firmware_hub" / "translations"
)
LANGUAGES = ("de", "zh-Hans")
# {name}, {count, plural, ...}; '{x}' is literal text in ICU MessageFormat.
PLACEHOLDER = re.compile(r"(?<!')\{\s*(\w+)\s*[},]")


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _load(language: str) -> dict[str, Any]:
    text = (TRANSLATIONS / f"{language}.json").read_text(encoding="utf-8")
    return _flatten(json.loads(text))


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


@pytest.mark.parametrize("language", LANGUAGES)
def test_same_keys_as_english(language: str) -> None:
    """Every key of en.json is translated, and no key en.json lacks is left over."""
    english, translated = _load("en"), _load(language)

    assert sorted(set(english) - set(translated)) == [], "missing keys"
    assert sorted(set(translated) - set(english)) == [], "keys not in en.json"


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_kept(language: str) -> None:
    """Each string has exactly the {placeholders} of its English string."""
    english, translated = _load("en"), _load(language)

    differing = {
        key: (sorted(_placeholders(value)), sorted(_placeholders(english[key])))
        for key, value in translated.items()
        if key in english and _placeholders(value) != _placeholders(english[key])
    }

    assert differing == {}
    # The comparison above did see placeholders (en.json uses {name}, {error}, ...).
    assert any(_placeholders(value) for value in translated.values())


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
def test_every_string_non_empty(language: str) -> None:
    """Every value is a string with text (Home Assistant would show nothing)."""
    translated = _load(language)

    not_text = [key for key, value in translated.items() if not isinstance(value, str)]
    empty = [key for key, value in translated.items() if not str(value).strip()]

    assert not_text == []
    assert empty == []
    assert translated
