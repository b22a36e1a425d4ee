"""Helpers shared by the tests: config entries for the simulators."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_SSL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    EVENT_STATE_CHANGED,
)
from homeassistant.core import Event, HomeAssistant, State, callback
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
    """Add `entry` to Home Assistant and set it up.

    Also waits for setup's look for an install already running on the device (an
    entry background task, which `async_block_till_done` does not wait for).
    """
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    runtime = getattr(entry, "runtime_data", None)
    if runtime is not None and runtime.coordinator.follow_task is not None:
        await runtime.coordinator.follow_task
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


class Recorder:
    """Every state the entities take (while it listens)."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.states: list[State] = []

        @callback
        def _record(event: Event[Any]) -> None:
            if (new := event.data["new_state"]) is not None:
                self.states.append(new)

        self.unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, _record)

    def clear(self) -> None:
        self.states.clear()

    def of(self, entity_id: str) -> list[State]:
        return [state for state in self.states if state.entity_id == entity_id]

    def values(self, entity_id: str) -> list[str]:
        """Return the entity's successive distinct states."""
        values: list[str] = []
        for state in self.of(entity_id):
            if not values or values[-1] != state.state:
                values.append(state.state)
        return values


async def unload_all(hass: HomeAssistant) -> None:
    """Stop every client (unload the loaded entries) before a simulator stops.

    A simulator closed while an entry's client is connected races its reconnects
    (asyncio's Server._attach, MQTT reconnect loops): clients stop first.
    """
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def allowed_firmware(hass: HomeAssistant, directory: Path, name: str) -> Path:
    """Write a firmware file (1 MiB) in `directory`, which Home Assistant allows."""
    hass.config.allowlist_external_dirs = {str(directory)}
    path = directory / name
    path.write_bytes(bytes(range(256)) * 4096)
    return path
