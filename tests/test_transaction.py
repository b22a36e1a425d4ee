"""An install is a transaction: reloads wait for it, unloads stop it, the journal keeps it."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN, SERVICE_INSTALL
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.firmware_hub.const import CONF_CHECK_INTERVAL, DOMAIN

from .helpers import hikvision_entry, setup_entry
from .simulators.isapi import IsapiCameraSimulator

UPDATE = "update.camera_1_firmware"
STATUS = "sensor.camera_1_firmware_status"
DOWNLOAD = ("PUT", "/ISAPI/System/onlineUpgrade/downloadPackage")
FLASH = ("PUT", "/ISAPI/System/onlineUpgrade/upgradeWithoutDownload")
REBOOT = ("PUT", "/ISAPI/System/reboot")


async def _downloading(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> tuple[MockConfigEntry, asyncio.Task[Any]]:
    """Set the camera up and start an install that stays in its download."""
    camera.download_steps = 1_000_000
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    install = hass.async_create_task(
        hass.services.async_call(
            UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
        )
    )
    # Not `wait_until`: it lets Home Assistant settle, which waits for the install.
    async with asyncio.timeout(5):
        while camera.download_status != "downloading":
            await asyncio.sleep(0.01)
    return entry, install


def _sent(camera: IsapiCameraSimulator) -> tuple[int, int, int]:
    return camera.count(*DOWNLOAD), camera.count(*FLASH), camera.count(*REBOOT)


async def test_options_during_install_are_refused_and_kept(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Saving options mid-download would reload the entry: refused, input kept."""
    entry, install = await _downloading(hass, camera)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_CHECK_INTERVAL: 30}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "install_in_progress"}
    schema = result["data_schema"].schema
    suggested = {
        str(key): key.description.get("suggested_value")
        for key in schema
        if key.description
    }
    assert suggested[CONF_CHECK_INTERVAL] == 30
    assert entry.options == {}
    assert entry.state is ConfigEntryState.LOADED
    # A second install is refused while the first runs (the entity is in progress).
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
        )
    assert err.value.translation_key == "update_in_progress"

    camera.download_steps = 1
    await install
    await hass.async_block_till_done()
    assert _sent(camera) == (1, 1, 0) or _sent(camera) == (1, 1, 1)
    assert camera.firmware_version == "V5.7.20"

    # Once the install ended, the options are saved (and the entry reloads).
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_CHECK_INTERVAL: 30}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_CHECK_INTERVAL] == 30


@pytest.mark.parametrize("flow", ["reauth", "reconfigure"])
async def test_reauth_and_reconfigure_during_install_are_refused(
    hass: HomeAssistant, camera: IsapiCameraSimulator, flow: str
) -> None:
    """Reauth and reconfigure reload the entry too: refused until the install ended."""
    entry, install = await _downloading(hass, camera)
    if flow == "reauth":
        result = await entry.start_reauth_flow(hass)
        user_input: dict[str, Any] = {"username": "admin", "password": camera.password}
    else:
        result = await entry.start_reconfigure_flow(hass)
        user_input = {
            "host": camera.host,
            "port": camera.port,
            "ssl": False,
            "verify_ssl": False,
            "username": "admin",
            "password": "",
        }
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "install_in_progress"}
    assert entry.state is ConfigEntryState.LOADED
    camera.download_steps = 1
    await install
    assert _sent(camera)[:2] == (1, 1)


async def test_unload_during_install_sends_nothing_more(
    hass: HomeAssistant, camera: IsapiCameraSimulator, hass_storage: dict[str, Any]
) -> None:
    """Unloading (reload, Home Assistant stopping) cancels the install at once.

    Nothing more reaches the camera, and the journal keeps the marker so that the
    next setup follows the install instead of starting another one.
    """
    entry, install = await _downloading(hass, camera)
    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(asyncio.CancelledError):
        await install
    requests = camera.request_count
    camera.download_steps = 1
    for _ in range(5):
        await asyncio.sleep(0.02)
    await hass.async_block_till_done()
    assert camera.request_count == requests
    assert _sent(camera) == (1, 0, 0)
    marker = hass_storage[f"{DOMAIN}.installs"]["data"][entry.entry_id]
    assert marker["run"]["target_version"] == "V5.7.20 build 250110"
    assert marker["run"]["before_version"] == "V5.7.18 build 240826"
    assert marker["identity"]["unique_id"] == entry.unique_id


async def test_installed_version_follows_the_device(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    device_registry: dr.DeviceRegistry,
) -> None:
    """A firmware upgraded outside Home Assistant shows on the device at the next poll."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, entry.unique_id), entry.entry_id
    )
    assert device is not None
    assert device.sw_version == "V5.7.18 build 240826"
    # The camera reports hardware "0x0": a placeholder, kept out of the registry.
    assert device.hw_version is None
    # No install runs: the progress is unknown, not 0 %.
    assert hass.states.get("sensor.camera_1_firmware_progress").state == "unknown"
    camera.firmware_version = "V5.7.21"
    camera.firmware_build = "build 250301"
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    device = device_registry.async_get(device.id)
    assert device is not None
    assert device.sw_version == "V5.7.21 build 250301"


async def test_restart_and_check_refused_during_install(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Restart and Check for update wait for the install: refused, nothing sent."""
    _entry, install = await _downloading(hass, camera)
    for button in ("button.camera_1_restart", "button.camera_1_check_for_update"):
        with pytest.raises(HomeAssistantError) as err:
            await hass.services.async_call(
                "button", "press", {ATTR_ENTITY_ID: button}, blocking=True
            )
        assert err.value.translation_key == "install_in_progress"
    assert camera.count(*REBOOT) == 0
    assert camera.count("GET", "/ISAPI/System/onlineUpgrade/version") == 1
    camera.download_steps = 1
    await install


async def test_update_dialog_says_how_the_download_goes(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """While the camera downloads, the dialog shows its speed and the time left."""
    _entry, install = await _downloading(hass, camera)
    async with asyncio.timeout(5):
        while not hass.states.get(UPDATE).attributes.get("release_summary"):
            await asyncio.sleep(0.01)
    summary = hass.states.get(UPDATE).attributes["release_summary"]
    assert summary.startswith("The camera downloads at 4.2 MB/s")
    camera.download_steps = 1
    await install
    assert hass.states.get(UPDATE).attributes["release_summary"] is None


async def test_poll_waits_for_the_install(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A poll during an install does not talk to the device (it may be flashing)."""
    entry, install = await _downloading(hass, camera)
    coordinator = entry.runtime_data.coordinator
    reads = camera.count("GET", "/ISAPI/System/deviceInfo")
    await coordinator.async_refresh()
    assert camera.count("GET", "/ISAPI/System/deviceInfo") == reads
    assert hass.states.get(UPDATE).attributes["in_progress"] is True
    camera.download_steps = 1
    await install
