"""Hikvision installs never flash the wrong package or a busy or replaced camera.

Each test drives the integration through its public surface (entities, actions)
against the ISAPI simulator and asserts what the camera received.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN, SERVICE_INSTALL
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.firmware_hub.const import DOMAIN, EVENT_UPGRADE_FINISHED

from .helpers import hikvision_entry, setup_entry
from .simulators.isapi import IsapiCameraSimulator

UPDATE = "update.camera_1_firmware"
STATUS = "sensor.camera_1_firmware_status"
RESTART = "button.camera_1_restart"
DOWNLOAD = "/ISAPI/System/onlineUpgrade/downloadPackage"
FLASH = "/ISAPI/System/onlineUpgrade/upgradeWithoutDownload"
REBOOT = "/ISAPI/System/reboot"


async def _entry(hass: HomeAssistant, camera: IsapiCameraSimulator) -> MockConfigEntry:
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    return entry


async def _install(hass: HomeAssistant, **data: Any) -> None:
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE, **data}, blocking=True
    )


async def _restart(hass: HomeAssistant) -> None:
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: RESTART}, blocking=True
    )


def _changes(camera: IsapiCameraSimulator) -> dict[str, int]:
    """Count the device-changing requests the camera received."""
    return {path: camera.count("PUT", path) for path in (DOWNLOAD, FLASH, REBOOT)}


NOTHING_SENT = {DOWNLOAD: 0, FLASH: 0, REBOOT: 0}


async def test_stale_finished_package_is_never_flashed(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A package finished for an earlier offer (V5.7.19) is not flashed for V5.7.20."""
    camera.hold_package("V5.7.19 build 241001")
    await _entry(hass, camera)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "stale_package"
    assert _changes(camera) == NOTHING_SENT
    assert camera.running_version == "V5.7.18 build 240826"
    assert finished == []
    assert hass.states.get(STATUS).state == "idle"
    assert hass.states.get(UPDATE).attributes["in_progress"] is False


async def test_download_that_never_starts_is_not_flashed(
    hass: HomeAssistant, camera: IsapiCameraSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The camera accepts downloadPackage but never downloads: no flash, a failure."""
    entry = await _entry(hass, camera)
    backend = entry.runtime_data.coordinator.backend
    monkeypatch.setattr(
        backend, "_timing", replace(backend._timing, download_start_timeout=0.1)
    )
    camera.ignore_download_request = True
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "download_not_started"
    assert _changes(camera) == {DOWNLOAD: 1, FLASH: 0, REBOOT: 0}
    assert [event.data["error"] for event in finished] == ["download_not_started"]
    assert hass.states.get(STATUS).state == "failed"
    assert backend.state.install is None


async def test_install_refused_while_the_camera_flashes(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Set up while the camera flashes (a restart mid-install): Install sends nothing."""
    camera.upgrade_steps = 1_000_000
    camera.begin_upgrade()
    await _entry(hass, camera)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "device_busy"
    assert _changes(camera) == NOTHING_SENT
    assert camera.upgrade_status == "upgrading"


async def test_install_refused_while_the_camera_downloads(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A download started elsewhere (or before a reload) is not started twice."""
    camera.download_steps = 1_000_000
    camera.begin_download()
    await _entry(hass, camera)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "device_busy"
    assert _changes(camera) == NOTHING_SENT


@pytest.mark.parametrize("busy", ["downloading", "upgrading"])
async def test_restart_refused_while_the_camera_is_busy(
    hass: HomeAssistant, camera: IsapiCameraSimulator, busy: str
) -> None:
    """Restart is refused while the camera downloads or flashes: no PUT reboot."""
    camera.download_steps = camera.upgrade_steps = 1_000_000
    await _entry(hass, camera)
    if busy == "downloading":
        camera.begin_download()
    else:
        camera.begin_upgrade()
    with pytest.raises(HomeAssistantError) as err:
        await _restart(hass)
    assert err.value.translation_key == "device_busy"
    assert _changes(camera) == NOTHING_SENT
    assert camera.is_online


async def test_replaced_camera_is_not_taken_for_the_upgraded_one(
    hass: HomeAssistant, camera: IsapiCameraSimulator, issue_registry: ir.IssueRegistry
) -> None:
    """Another serial number after the reboot fails the install with a repair."""
    entry = await _entry(hass, camera)
    camera.serial_after_reboot = "DS-2CD2346G2-ISU20250101CCWRJ99999999"
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "serial_mismatch"
    # The device that answers runs the offered version: only the serial tells.
    assert camera.running_version == "V5.7.20 build 250110"
    assert _changes(camera) == {DOWNLOAD: 1, FLASH: 1, REBOOT: 1}
    assert [event.data["error"] for event in finished] == ["serial_mismatch"]
    issue = issue_registry.async_get_issue(DOMAIN, f"install_failed_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "install_serial_mismatch"
    assert hass.states.get(STATUS).state == "failed"


async def test_basic_challenge_over_http_never_gets_the_password(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """A camera asking for Basic over plain HTTP fails setup; no Basic header sent."""
    camera = IsapiCameraSimulator(auth_scheme="basic")
    await camera.start()
    try:
        entry = hikvision_entry(camera)
        await setup_entry(hass, entry)
        assert entry.state is ConfigEntryState.SETUP_ERROR
        assert camera.request_count >= 1
        assert {record.authorization for record in camera.requests} == {""}
    finally:
        await camera.stop()


async def test_install_journal_is_written_before_the_download(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The install is journalled before downloadPackage and cleared at the end."""
    entry = await _entry(hass, camera)
    backend = entry.runtime_data.coordinator.backend
    writes: list[tuple[str | None, int]] = []

    async def journal(run: Any) -> None:
        writes.append((run and run.target_version, camera.count("PUT", DOWNLOAD)))

    backend.journal = journal
    await _install(hass)
    assert writes == [("V5.7.20 build 250110", 0), (None, 1)]
    assert backend.state.install is None
    assert camera.running_version == "V5.7.20 build 250110"


async def test_install_refused_while_a_flash_waits_for_its_restart(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A camera that flashed and waits for its reboot gets no new download."""
    await _entry(hass, camera)
    camera.force_status(download="finish", upgrade="successful")
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "restart_pending"
    assert _changes(camera) == NOTHING_SENT


async def test_install_refused_when_the_status_cannot_be_read(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """An unreachable camera's status is unknown: nothing is sent, nothing failed."""
    await _entry(hass, camera)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await camera.go_offline()
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "cannot_connect"
    await camera.go_online()
    assert _changes(camera) == NOTHING_SENT
    assert finished == []
    assert hass.states.get(STATUS).state == "idle"


async def test_basic_challenge_mid_install_gets_no_password(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A Basic challenge during an install (a downgrade) stops it before flashing."""
    await _entry(hass, camera)
    camera.download_steps = 1_000_000
    task = hass.async_create_task(_install(hass))
    # (helpers.wait_until would also wait for the install to end.)
    async with asyncio.timeout(10):
        while camera.download_status != "downloading":
            await asyncio.sleep(0.01)
    camera.auth_scheme = "basic"
    with pytest.raises(HomeAssistantError) as err:
        await task
    assert err.value.translation_key == "insecure_auth"
    assert "basic" not in {record.authorization for record in camera.requests}
    assert _changes(camera) == {DOWNLOAD: 1, FLASH: 0, REBOOT: 0}
