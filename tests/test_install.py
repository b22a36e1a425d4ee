"""Installing firmware on a simulated Hikvision camera, end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN, SERVICE_INSTALL
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.firmware_hub.const import DOMAIN, EVENT_UPGRADE_FINISHED
from custom_components.firmware_hub.kinds.hikvision.errors import (
    DOWNLOAD_FAILURE_KEYS,
    UPGRADE_FAILURE_KEYS,
    download_failure,
    upgrade_failure,
)

from .helpers import Recorder, hikvision_entry, setup_entry
from .simulators.isapi import Failure, IsapiCameraSimulator

EN_JSON = (
    Path(__file__).parent.parent
    / "custom_components"
    / "firmware_hub"
    / "translations"
    / "en.json"
)
UPDATE = "update.camera_1_firmware"
STATUS = "sensor.camera_1_firmware_status"
PROGRESS = "sensor.camera_1_firmware_progress"


async def _install(hass: HomeAssistant, **data: Any) -> None:
    await hass.services.async_call(
        UPDATE_DOMAIN,
        SERVICE_INSTALL,
        {ATTR_ENTITY_ID: UPDATE, **data},
        blocking=True,
    )


def _assert_never_flashed_early(camera: IsapiCameraSimulator) -> None:
    """UpgradeWithoutDownload never came before the download finished."""
    assert not camera.upgrade_before_download_finished
    names = [name for _time, name in camera.events]
    if "upgrade_started" in names:
        assert "download_finished" in names
        assert names.index("download_finished") < names.index("upgrade_started")


async def _entry(hass: HomeAssistant, camera: IsapiCameraSimulator) -> MockConfigEntry:
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    return entry


async def test_install_end_to_end(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    recorder: Recorder,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Download → flash → reboot → verify, with progress all the way."""
    entry = await _entry(hass, camera)
    recorder.clear()
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await _install(hass)
    await hass.async_block_till_done()

    _assert_never_flashed_early(camera)
    assert camera.firmware_version == "V5.7.20"
    names = [name for _time, name in camera.events]
    assert names.index("upgrade_finished") < names.index("reboot_started")
    assert names[-1] == "reboot_finished"

    state = hass.states.get(UPDATE)
    assert state.state == STATE_OFF
    assert state.attributes["installed_version"] == "V5.7.20 build 250110"
    assert state.attributes["in_progress"] is False
    assert state.attributes["update_percentage"] is None

    running = [s for s in recorder.of(UPDATE) if s.attributes["in_progress"]]
    progress = [s.attributes["update_percentage"] for s in running]
    assert progress == sorted(progress)
    assert len(set(progress)) >= 6
    assert progress[0] == 0
    assert progress[-1] >= 90
    assert recorder.values(STATUS) == [
        "downloading",
        "installing",
        "rebooting",
        "verifying",
        "idle",
    ]
    progress_values = recorder.values(PROGRESS)
    assert max(int(v) for v in progress_values if v != "unknown") >= 90
    # Unknown again once the install ended.
    assert progress_values[-1] == "unknown"

    assert len(finished) == 1
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, camera.serial_number), entry.entry_id
    )
    assert device is not None
    assert device.sw_version == "V5.7.20 build 250110"
    assert finished[0].data == {
        "device_id": device.id,
        "entry_id": entry.entry_id,
        "kind": "hikvision",
        "version": "V5.7.20 build 250110",
        "success": True,
        "error": None,
        "message": None,
    }


async def test_install_nvr_rebooting_by_itself(
    hass: HomeAssistant, socket_enabled: None, recorder: Recorder
) -> None:
    """An NVR (isapi.org namespace) with rebootAfterUpgrade auto drops mid-status."""
    nvr = IsapiCameraSimulator(device="DS-7608NXI-I2", reboot_after_upgrade="auto")
    await nvr.start()
    try:
        entry = hikvision_entry(nvr)
        await setup_entry(hass, entry)
        update = f"update.{entry.title.lower().replace(' ', '_')}_firmware"
        finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
        await hass.services.async_call(
            UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: update}, blocking=True
        )
        _assert_never_flashed_early(nvr)
        assert nvr.count("PUT", "/ISAPI/System/reboot") == 0
        assert nvr.firmware_version == "V5.7.20"
        assert hass.states.get(update).attributes["installed_version"] == (
            "V5.7.20 build 250110"
        )
        assert finished[0].data["success"] is True
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await nvr.stop()


async def test_install_ptz_specific_version(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """A PTZ dome; asking for the offered version by name works."""
    ptz = IsapiCameraSimulator(
        device="DS-2SE4C425MWG-E-26", offer_version="V5.8.3 build 250301"
    )
    await ptz.start()
    try:
        entry = hikvision_entry(ptz)
        await setup_entry(hass, entry)
        coordinator = entry.runtime_data.coordinator
        with pytest.raises(HomeAssistantError) as err:
            await coordinator.async_install("V9.9.9")
        assert err.value.translation_key == "version_not_offered"
        await coordinator.async_install("V5.8.3 build 250301")
        assert ptz.firmware_version == "V5.8.3"
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await ptz.stop()


def _english(key: str) -> str:
    """Return en.json's message of exception `key`."""
    translations = json.loads(EN_JSON.read_text(encoding="utf-8"))
    return str(translations["exceptions"][key]["message"])


def _assert_understood(err: HomeAssistantError, key: str, code: str) -> None:
    """The toast is the key's own sentence, without the camera's raw code."""
    assert err.translation_key == key
    assert str(err) == _english(key).removesuffix(".")  # as Home Assistant shows it
    assert code not in str(err)
    # The code is kept for diagnostics and automations.
    assert err.translation_placeholders["code"] == code


DOWNLOAD_KEYS = {
    Failure.DOWNLOAD_FAILED: "camera_download_failed",
    Failure.INCORRECT_PACKAGE: "camera_package_incorrect",
    Failure.HD_OPERATION_FAILED: "camera_storage_failed",
}
FLASH_KEYS = {
    Failure.WRITE_FLASH_ERROR: "camera_flash_write_error",
    Failure.PACKAGE_TYPE_MISMATCH: "camera_package_type_mismatch",
    Failure.PACKAGE_VERSION_MISMATCH: "camera_package_version_mismatch",
    Failure.LANGUAGE_MISMATCH: "camera_language_mismatch",
    Failure.NET_UNREACHABLE: "camera_network_unreachable",
    Failure.UNKNOWN_ERROR: "camera_upgrade_unknown_error",
    Failure.ENGINE_VERSION_MISMATCH: "camera_engine_version_mismatch",
}


def test_each_failure_its_own_message() -> None:
    """No two failure states of the camera share a message, or a repair."""
    keys = [*DOWNLOAD_KEYS.values(), *FLASH_KEYS.values()]
    assert len(set(keys)) == len(keys)
    assert len({_english(key) for key in keys}) == len(keys)
    # Every state the kind knows (and the unknown ones) has its own repair text.
    issues = json.loads(EN_JSON.read_text(encoding="utf-8"))["issues"]
    tables = {**DOWNLOAD_FAILURE_KEYS, **UPGRADE_FAILURE_KEYS}
    assert {key for key, _repair in tables.values()} == set(keys)
    repairs = [repair for _key, repair in tables.values()]
    repairs += [download_failure("new").repair_key, upgrade_failure("new").repair_key]
    texts = [issues[str(repair)]["description"] for repair in repairs]
    assert len(set(texts)) == len(repairs)


@pytest.mark.parametrize("failure", list(DOWNLOAD_KEYS))
async def test_download_failure(
    hass: HomeAssistant, camera: IsapiCameraSimulator, failure: Failure
) -> None:
    """A failed download never leads to a flash; the failure is reported."""
    entry = await _entry(hass, camera)
    camera.failures.add(failure)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    key = DOWNLOAD_KEYS[failure]
    _assert_understood(err.value, key, failure.value)
    assert (
        camera.count("PUT", "/ISAPI/System/onlineUpgrade/upgradeWithoutDownload") == 0
    )
    _assert_never_flashed_early(camera)
    assert camera.firmware_version == "V5.7.18"
    assert hass.states.get(STATUS).state == "failed"
    assert hass.states.get(UPDATE).attributes["in_progress"] is False
    assert [e.data["success"] for e in finished] == [False]
    assert finished[0].data["error"] == key
    assert finished[0].data["entry_id"] == entry.entry_id
    _assert_reported(hass, entry, finished[0].data, key)


def _assert_reported(
    hass: HomeAssistant, entry: MockConfigEntry, event: dict[str, Any], key: str
) -> None:
    """The event carries the state's sentence; its own repair says what to do."""
    assert event["message"] == _english(key).removesuffix(".")
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"install_failed_{entry.entry_id}"
    )
    assert issue is not None
    assert issue.translation_key == f"install_{key}"
    assert issue.translation_placeholders["name"] == entry.title
    issues = json.loads(EN_JSON.read_text(encoding="utf-8"))["issues"]
    assert set(issues[f"install_{key}"]) == {"title", "description"}


@pytest.mark.parametrize("failure", list(FLASH_KEYS))
async def test_flash_failure(
    hass: HomeAssistant, camera: IsapiCameraSimulator, failure: Failure
) -> None:
    """The camera's flash fails: no reboot, translated error, failure event."""
    entry = await _entry(hass, camera)
    camera.failures.add(failure)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    _assert_understood(err.value, FLASH_KEYS[failure], failure.value)
    _assert_never_flashed_early(camera)
    assert camera.count("PUT", "/ISAPI/System/reboot") == 0
    assert finished[0].data["success"] is False
    assert finished[0].data["error"] == FLASH_KEYS[failure]
    assert hass.states.get(UPDATE).state == "on"
    _assert_reported(hass, entry, finished[0].data, FLASH_KEYS[failure])


async def test_camera_lost_mid_upgrade_and_back(
    hass: HomeAssistant, camera: IsapiCameraSimulator, recorder: Recorder
) -> None:
    """Refused connections while flashing are waited out; the install completes."""
    await _entry(hass, camera)
    camera.failures.add(Failure.LOST_DURING_UPGRADE)
    await _install(hass)
    _assert_never_flashed_early(camera)
    names = [name for _time, name in camera.events]
    assert "went_offline" in names
    assert "came_online" in names
    assert camera.firmware_version == "V5.7.20"
    assert hass.states.get(UPDATE).attributes["installed_version"] == (
        "V5.7.20 build 250110"
    )
    # The entities stayed available while the camera was away.
    assert "unavailable" not in recorder.values(UPDATE)


async def test_wrong_version_after_reboot(
    hass: HomeAssistant, camera: IsapiCameraSimulator, issue_registry: ir.IssueRegistry
) -> None:
    """The camera comes back on the old firmware: failure and a repair issue."""
    entry = await _entry(hass, camera)
    camera.failures.add(Failure.WRONG_VERSION_AFTER_REBOOT)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "verification_failed"
    assert finished[0].data["error"] == "verification_failed"
    issue = issue_registry.async_get_issue(DOMAIN, f"install_failed_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "install_verification_failed"

    # Once an install succeeds, the issue goes away.
    camera.failures.clear()
    await entry.runtime_data.coordinator.async_install(None)
    assert (
        issue_registry.async_get_issue(DOMAIN, f"install_failed_{entry.entry_id}")
        is None
    )


async def test_camera_never_comes_back(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    issue_registry: ir.IssueRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A camera that does not come back in time gives reboot_timeout and a repair."""
    entry = await _entry(hass, camera)
    camera.reboot_seconds = 30
    backend = entry.runtime_data.coordinator.backend
    monkeypatch.setattr(
        backend,
        "_timing",
        type(backend._timing)(poll_interval=0.01, reboot_timeout=0.3),
    )
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "reboot_timeout"
    issue = issue_registry.async_get_issue(DOMAIN, f"install_failed_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "install_reboot_timeout"
    await hass.config_entries.async_unload(entry.entry_id)
    await camera.stop()  # cut the 30 s reboot short


async def test_second_install_refused(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """While one install runs, a second one and a check are refused clearly."""
    entry = await _entry(hass, camera)
    coordinator = entry.runtime_data.coordinator
    camera.download_steps = 1_000_000  # the download runs until the test lets it end
    first = hass.async_create_task(_install(hass))
    while not coordinator.installing:
        await asyncio.sleep(0.01)
    with pytest.raises(HomeAssistantError) as err:
        await coordinator.async_install(None)
    assert err.value.translation_key == "install_in_progress"
    with pytest.raises(HomeAssistantError):
        await _install(hass)  # Home Assistant's own in_progress guard
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "button",
            "press",
            {ATTR_ENTITY_ID: "button.camera_1_check_for_update"},
            blocking=True,
        )
    assert err.value.translation_key == "install_in_progress"
    camera.download_steps = 1
    await first
    _assert_never_flashed_early(camera)
    assert camera.count("PUT", "/ISAPI/System/onlineUpgrade/downloadPackage") == 1
    assert camera.firmware_version == "V5.7.20"


async def test_polling_during_install_leaves_the_camera_alone(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A scheduled refresh during an install does not poll the rebooting camera."""
    entry = await _entry(hass, camera)
    coordinator = entry.runtime_data.coordinator
    camera.download_steps = 1_000_000
    task = hass.async_create_task(_install(hass))
    while not coordinator.installing:
        await asyncio.sleep(0.01)
    before = camera.count("GET", "/ISAPI/System/deviceInfo")
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    assert coordinator.data.in_progress
    assert camera.count("GET", "/ISAPI/System/deviceInfo") == before
    camera.download_steps = 1
    await task


async def test_nothing_to_install(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Installing with no offer is refused: nothing sent, no failure reported."""
    camera.offer_version = None
    entry = await _entry(hass, camera)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await entry.runtime_data.coordinator.async_install(None)
    assert err.value.translation_key == "no_update"
    assert finished == []
    assert hass.states.get(STATUS).state == "idle"
    assert camera.count("PUT", "/ISAPI/System/onlineUpgrade/downloadPackage") == 0


async def test_refused_request_is_a_sentence(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The camera refuses the download (its offer vanished): no raw code shown."""
    await _entry(hass, camera)
    camera.offer_version = None  # downloadPackage now answers invalidOperation
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    _assert_understood(err.value, "camera_refused_request", "invalidOperation")
    assert finished[0].data["error"] == "camera_refused_request"
    assert (
        camera.count("PUT", "/ISAPI/System/onlineUpgrade/upgradeWithoutDownload") == 0
    )
