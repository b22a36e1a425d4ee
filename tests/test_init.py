"""Setup, availability, reauth, buttons, periodic checks and diagnostics."""

from __future__ import annotations

from datetime import timedelta
import json
import logging

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.firmware_hub.const import DOMAIN

from .helpers import hikvision_entry, setup_entry
from .simulators.isapi import IsapiCameraSimulator

UPDATE = "update.camera_1_firmware"
CHECK = "button.camera_1_check_for_update"
RESTART = "button.camera_1_restart"


async def _press(hass: HomeAssistant, entity_id: str) -> None:
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: entity_id}, blocking=True
    )


async def _poll(hass: HomeAssistant) -> None:
    """Run what the coordinator's poll timer runs.

    (`async_fire_time_changed` would also fire the in-flight request's aiohttp
    timeout, which real loopback I/O cannot survive.)
    """
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()


async def test_setup_camera_offline(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """An unreachable camera makes the entry retry later."""
    await camera.go_offline()
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_setup_wrong_password(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A refused password at setup starts a reauth flow."""
    entry = hikvision_entry(camera)
    camera.password = "changed"
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_setup_other_device_at_address(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A different camera now answers at the stored address: setup error."""
    entry = hikvision_entry(camera)
    camera.serial_number = "DS-2CD2346G2-ISU/SL00000000AAWRJ99999999"
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.reason is not None


async def test_unavailable_and_back(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Entities go unavailable when the camera drops, logged once down, once back."""
    await setup_entry(hass, hikvision_entry(camera))
    await camera.go_offline()
    with caplog.at_level(logging.INFO):
        await _poll(hass)
        await _poll(hass)
        assert hass.states.get(UPDATE).state == STATE_UNAVAILABLE
        assert hass.states.get("sensor.camera_1_firmware_status").state == (
            STATE_UNAVAILABLE
        )
        await camera.go_online()
        await _poll(hass)
        await _poll(hass)
    assert hass.states.get(UPDATE).state == STATE_ON
    down = [r for r in caplog.records if "Error fetching" in r.getMessage()]
    back = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert len(down) == 1
    assert len(back) == 1


async def test_password_changed_on_camera(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The camera starts refusing the password: reauth, no retry loop."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    camera.password = "changed-on-the-camera"
    camera.reset_stats()
    await _poll(hass)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    # One request and its digest retry, not a loop that locks the user out.
    assert camera.unauthorized_count <= 2


async def test_steady_state_refresh_reuses_the_nonce(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A steady-state refresh is one request (deviceInfo) and no 401."""
    await setup_entry(hass, hikvision_entry(camera))
    await _poll(hass)
    camera.reset_stats()
    for _ in range(5):
        await _poll(hass)
    assert camera.unauthorized_count == 0
    assert camera.request_count == 5
    assert camera.count("GET", "/ISAPI/System/onlineUpgrade/version") == 0


async def test_periodic_check(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The camera's online check runs every check interval, not every poll."""
    camera.offer_version = None
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    assert hass.states.get(UPDATE).state == STATE_OFF
    camera.offer_version = "V5.7.21 build 250601"
    camera.reset_stats()
    await _poll(hass)
    assert camera.count("GET", "/ISAPI/System/onlineUpgrade/version") == 0
    coordinator = entry.runtime_data.coordinator
    assert coordinator.next_check - dt_util.utcnow() > timedelta(hours=5)
    coordinator.next_check = dt_util.utcnow()  # the check interval has elapsed
    await _poll(hass)
    assert camera.count("GET", "/ISAPI/System/onlineUpgrade/version") == 1
    assert (
        hass.states.get(UPDATE).attributes["latest_version"] == "V5.7.21 build 250601"
    )


async def test_check_button(hass: HomeAssistant, camera: IsapiCameraSimulator) -> None:
    """The check button asks the camera now and shows the result."""
    camera.offer_version = None
    await setup_entry(hass, hikvision_entry(camera))
    before = hass.states.get("sensor.camera_1_last_check").state
    camera.offer_version = "V5.7.21 build 250601"
    camera.server_connected = False
    await _press(hass, CHECK)
    assert hass.states.get("binary_sensor.camera_1_upgrade_server").state == STATE_OFF
    state = hass.states.get(UPDATE)
    assert state.state == STATE_ON
    assert state.attributes["latest_version"] == "V5.7.21 build 250601"
    assert hass.states.get("sensor.camera_1_last_check").state >= before
    assert hass.states.get("sensor.camera_1_firmware_status").state == "idle"


async def test_check_button_failures(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A failed check says why; the entities keep the last known offer."""
    await setup_entry(hass, hikvision_entry(camera))
    camera.version_check_fails = True
    with pytest.raises(HomeAssistantError) as err:
        await _press(hass, CHECK)
    assert err.value.translation_key == "check_failed"
    assert (
        hass.states.get(UPDATE).attributes["latest_version"] == "V5.7.20 build 250110"
    )
    await camera.go_offline()
    with pytest.raises(HomeAssistantError) as err:
        await _press(hass, CHECK)
    assert err.value.translation_key == "cannot_connect"
    assert hass.states.get("sensor.camera_1_firmware_status").state == "idle"


async def test_restart_button(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Restart reboots the camera; entities are unavailable until it answers."""
    camera.reboot_seconds = 0.2
    await setup_entry(hass, hikvision_entry(camera))
    await _press(hass, RESTART)
    assert camera.count("PUT", "/ISAPI/System/reboot") == 1
    assert hass.states.get(UPDATE).state == STATE_UNAVAILABLE
    await camera.wait_online()
    await _poll(hass)
    assert hass.states.get(UPDATE).state == STATE_ON


async def test_restart_unreachable(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Restarting a camera that does not answer gives a translated error."""
    await setup_entry(hass, hikvision_entry(camera))
    await camera.go_offline()
    with pytest.raises(HomeAssistantError) as err:
        await _press(hass, RESTART)
    assert err.value.translation_key == "cannot_connect"


async def test_unload_and_remove(
    hass: HomeAssistant, camera: IsapiCameraSimulator, issue_registry: ir.IssueRegistry
) -> None:
    """Unloading releases the entry; removing it forgets its repair issue."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"install_failed_{entry.entry_id}",
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="install_reboot_timeout",
    )
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    await hass.config_entries.async_remove(entry.entry_id)
    assert (
        issue_registry.async_get_issue(DOMAIN, f"install_failed_{entry.entry_id}")
        is None
    )


async def test_diagnostics_redacted(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    camera: IsapiCameraSimulator,
) -> None:
    """Diagnostics carry the documents but no password, serial number or MAC."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    dump = json.dumps(diagnostics)
    assert camera.password not in dump
    assert camera.serial_number not in dump
    assert camera.serial_number[-10:] not in dump
    assert camera.mac_address.lower() not in dump.lower()
    assert diagnostics["entry"]["data"]["password"] == "**REDACTED**"
    assert diagnostics["device"]["device_info"]["model"] == camera.model
    assert diagnostics["device"]["version"]["newVersion"] == "V5.7.20 build 250110"
    assert diagnostics["state"]["latest_version"] == "V5.7.20 build 250110"
