"""Helpers shared by the tests: config entries for the simulators."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_SSL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.firmware_hub.const import CONF_KIND, DOMAIN, Kind

from .simulators.isapi import IsapiCameraSimulator


def hikvision_input(camera: IsapiCameraSimulator, **overrides: Any) -> dict[str, Any]:
    """Return what a user types into the hikvision form for `camera`."""
    return {
        CONF_HOST: camera.host,
        CONF_PORT: camera.port,
        CONF_SSL: False,
        CONF_VERIFY_SSL: False,
        CONF_USERNAME: "admin",
        CONF_PASSWORD: camera.password,
        **overrides,
    }


def hikvision_entry(
    camera: IsapiCameraSimulator, *, options: dict[str, Any] | None = None
) -> MockConfigEntry:
    """Return a config entry for `camera` as the config flow creates it."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="CAMERA 1",
        unique_id=camera.serial_number,
        data={CONF_KIND: Kind.HIKVISION.value, **hikvision_input(camera)},
        options=options or {},
    )


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Add `entry` to Home Assistant and set it up."""
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def wait_until(
    hass: HomeAssistant,
    condition: Callable[[], bool],
    timeout: float = 10,  # noqa: ASYNC109
) -> None:
    """Wait (bounded) until `condition()` holds, then let Home Assistant settle."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
    await hass.async_block_till_done()
