"""Pytest wiring for the benchmarks (``scripts/bench``; not part of ``tests/``).

The first import makes ``custom_components.firmware_hub`` resolve to this repository
before pytest-homeassistant-custom-component's own ``custom_components`` package can
shadow it, as in ``tests/conftest.py``.

Differences from the test suite, so that timings resemble a production instance:
the event loop runs without asyncio debug mode (the test plugin turns it on for
every test, which slows every callback), and logging stays at WARNING (what Home
Assistant logs by default) instead of the plugin's INFO to stderr.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
import logging

import pytest

from custom_components.firmware_hub.const import DOMAIN

from .report import ROWS, table

if DOMAIN != "firmware_hub":  # pragma: no cover - the wrong package was imported
    raise ImportError(
        f"custom_components.firmware_hub is not this repository's: {DOMAIN}"
    )


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load integrations from custom_components in every benchmark."""


@pytest.fixture(autouse=True)
async def enable_event_loop_debug() -> None:
    """Override the test plugin's fixture: benchmarks run without loop debug mode."""
    asyncio.get_running_loop().set_debug(False)


@pytest.fixture(autouse=True)
def quiet_logging() -> Generator[None]:
    """Log at WARNING, as Home Assistant does unless configured otherwise."""
    names = ("", "homeassistant", "custom_components", "aiohttp", "tests")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the table of every number the benchmarks recorded."""
    if not ROWS:
        return
    terminalreporter.write_sep("=", "benchmark summary")
    terminalreporter.write_line(table(ROWS))
