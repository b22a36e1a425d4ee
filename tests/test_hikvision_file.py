"""Installing a firmware file on a Hikvision camera (`install_firmware_file`).

Driven through the action, the entities and the events; what the camera received
(the file's bytes, its content type, every request) is read off the simulator.
"""

from __future__ import annotations

from dataclasses import replace
import hashlib
from pathlib import Path
import tracemalloc
from typing import Any

import aiohttp
from homeassistant.components.update import UpdateEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.firmware_hub.const import DOMAIN, EVENT_UPGRADE_FINISHED
from custom_components.firmware_hub.core.models import FirmwareState, InstallRun
from custom_components.firmware_hub.kinds.hikvision import backend as hikvision
from custom_components.firmware_hub.kinds.hikvision.backend import HikvisionBackend
from custom_components.firmware_hub.kinds.hikvision.protocol import IsapiClient

from .helpers import Recorder, allowed_firmware, hikvision_entry, setup_entry
from .simulators.isapi import FileMode, IsapiCameraSimulator, OnlineUpgrade

UPDATE = "update.camera_1_firmware"
STATUS = "sensor.camera_1_firmware_status"
UPLOAD = "/ISAPI/System/updateFirmware"
REBOOT = "/ISAPI/System/reboot"
BEFORE = "V5.7.18 build 240826"
AFTER = "V5.7.22 build 250301"
FILE_NAME = "digicap.dav"


@pytest.fixture
def firmware(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A firmware file (1 MiB) in a directory Home Assistant allows."""
    return allowed_firmware(hass, tmp_path, FILE_NAME)


async def _entry(hass: HomeAssistant, camera: IsapiCameraSimulator) -> MockConfigEntry:
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    return entry


def _device_id(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, entry.unique_id or ""), entry.entry_id
    )
    assert device is not None
    return device.id


async def _install_file(
    hass: HomeAssistant, entry: MockConfigEntry, path: Path | str
) -> None:
    await hass.services.async_call(
        DOMAIN,
        "install_firmware_file",
        {"device_id": _device_id(hass, entry), "path": str(path)},
        blocking=True,
    )


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _names(camera: IsapiCameraSimulator) -> list[str]:
    return [name for _time, name in camera.events]


async def test_file_install_on_a_camera_without_online_upgrade(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    firmware: Path,
    recorder: Recorder,
) -> None:
    """Upload, flash, reboot, verify: progress rises, then a finished event."""
    camera.online_upgrade = OnlineUpgrade.NOT_SUPPORTED
    entry = await _entry(hass, camera)
    state = hass.states.get(UPDATE)
    features = UpdateEntityFeature(state.attributes["supported_features"])
    assert UpdateEntityFeature.INSTALL in features
    assert UpdateEntityFeature.PROGRESS in features
    assert state.attributes["latest_version"] == BEFORE  # never offers a version
    journal: list[tuple[InstallRun | None, int]] = []
    backend = entry.runtime_data.coordinator.backend
    write = backend.journal

    async def spy(run: InstallRun | None) -> None:
        journal.append((run, len(camera.received_files)))
        await write(run)

    backend.journal = spy
    recorder.clear()
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)

    await _install_file(hass, entry, firmware)
    await hass.async_block_till_done()

    (received,) = camera.received_files
    assert received.content_type == "application/octet-stream"
    assert received.size == firmware.stat().st_size
    assert received.md5 == _md5(firmware)
    names = _names(camera)
    assert names.index("file_received") < names.index("file_flashed")
    assert names.index("file_flashed") < names.index("reboot_started")
    assert names[-1] == "reboot_finished"
    assert camera.running_version == AFTER
    assert camera.count("PUT", REBOOT) == 0  # it rebooted by itself
    # Journalled before the upload (file name, version and serial before).
    run, files_then = journal[0]
    assert run is not None
    assert files_then == 0
    assert (run.file_name, run.before_version, run.serial_number) == (
        FILE_NAME,
        BEFORE,
        camera.serial_number,
    )
    assert journal[-1][0] is None

    running = [s for s in recorder.of(UPDATE) if s.attributes["in_progress"]]
    progress = [s.attributes["update_percentage"] for s in running]
    assert progress == sorted(progress)
    assert progress[0] == 0
    assert len({p for p in progress if 0 < p < 60}) >= 2  # bytes sent
    assert progress[-1] == 99
    # From the journalled run on, the dialog names the file being installed.
    shown = [s.attributes["latest_version"] for s in running]
    assert shown[-1] == FILE_NAME
    assert set(shown[shown.index(FILE_NAME) :]) == {FILE_NAME}
    assert recorder.values(STATUS) == ["installing", "rebooting", "verifying", "idle"]
    state = hass.states.get(UPDATE)
    assert state.attributes["installed_version"] == AFTER
    assert state.attributes["in_progress"] is False
    assert [e.data["success"] for e in finished] == [True]
    assert finished[0].data["version"] == AFTER
    assert finished[0].data["kind"] == "hikvision"


@pytest.mark.parametrize(
    ("mode", "key"),
    [
        (FileMode.MISMATCH, "firmware_file_mismatch"),
        (FileMode.DEVICE_ERROR, "firmware_file_refused"),
    ],
)
async def test_refused_file(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    firmware: Path,
    mode: FileMode,
    key: str,
) -> None:
    """A file the camera refuses: a translated error, a failed event, no reboot."""
    entry = await _entry(hass, camera)
    camera.file_mode = mode
    camera.reset_stats()
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await _install_file(hass, entry, firmware)
    assert err.value.translation_key == key
    message = str(err.value)
    assert FILE_NAME in message
    assert "badDevType" not in message
    assert "deviceError" not in message
    assert [(e.data["success"], e.data["error"]) for e in finished] == [(False, key)]
    # Nothing else was sent: no reboot, the camera runs its firmware.
    assert camera.count("PUT", UPLOAD) == 1
    assert camera.count("PUT", REBOOT) == 0
    assert "reboot_started" not in _names(camera)
    assert [r.method for r in camera.requests if r.status != 401].count("PUT") == 1
    assert camera.running_version == BEFORE
    assert hass.states.get(STATUS).state == "failed"
    assert hass.states.get(UPDATE).attributes["in_progress"] is False


async def test_connection_dropped_after_the_upload_is_the_reboot(
    hass: HomeAssistant, camera: IsapiCameraSimulator, firmware: Path
) -> None:
    """The camera closes the connection once the file is in: it reboots into it."""
    entry = await _entry(hass, camera)
    camera.file_mode = FileMode.DROP
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await _install_file(hass, entry, firmware)
    assert camera.received_files[0].size == firmware.stat().st_size
    assert camera.count("PUT", REBOOT) == 0
    assert camera.running_version == AFTER
    assert [e.data["success"] for e in finished] == [True]


async def test_reboot_required_answer_reboots_the_camera(
    hass: HomeAssistant, camera: IsapiCameraSimulator, firmware: Path
) -> None:
    """A "Reboot Required" answer (statusCode 7): one reboot request, then verified."""
    entry = await _entry(hass, camera)
    camera.file_mode = FileMode.REBOOT_REQUIRED
    await _install_file(hass, entry, firmware)
    assert camera.count("PUT", REBOOT) == 1
    upload = next(r for r in camera.requests if r.path == UPLOAD and r.status == 200)
    reboot = next(r for r in camera.requests if r.path == REBOOT)
    assert upload.time < reboot.time
    assert camera.running_version == AFTER


async def test_camera_without_upgrade_status_or_online_upgrade(
    hass: HomeAssistant, camera: IsapiCameraSimulator, firmware: Path
) -> None:
    """No onlineUpgrade, no upgradeStatus (older firmware): the file still goes in."""
    camera.online_upgrade = OnlineUpgrade.ABSENT
    camera.upgrade_status_supported = False
    entry = await _entry(hass, camera)
    await _install_file(hass, entry, firmware)
    assert camera.running_version == AFTER
    assert camera.count("PUT", REBOOT) == 0
    assert hass.states.get(UPDATE).attributes["installed_version"] == AFTER


async def test_camera_that_stays_up_after_flashing_is_restarted(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    firmware: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Flashed, not restarting by itself: after a grace period, one reboot request."""
    entry = await _entry(hass, camera)
    camera.file_self_reboot = False
    backend = entry.runtime_data.coordinator.backend
    monkeypatch.setattr(
        backend,
        "_timing",
        replace(backend._timing, self_reboot_grace=0.1),
    )
    await _install_file(hass, entry, firmware)
    assert camera.count("PUT", REBOOT) == 1
    names = _names(camera)
    assert names.index("file_flashed") < names.index("reboot_started")
    assert camera.running_version == AFTER


async def test_a_flash_that_starts_late_is_never_cut_by_a_reboot(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    firmware: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Idle right after the upload, flashing a moment later: followed, not rebooted."""
    entry = await _entry(hass, camera)
    camera.file_flash_delay = 3
    backend = entry.runtime_data.coordinator.backend
    monkeypatch.setattr(
        backend, "_timing", replace(backend._timing, self_reboot_grace=0.5)
    )
    await _install_file(hass, entry, firmware)
    assert camera.count("PUT", REBOOT) == 0
    names = _names(camera)
    assert names.index("file_upgrade_started") < names.index("file_flashed")
    assert names.index("file_flashed") < names.index("reboot_started")
    assert camera.running_version == AFTER


async def test_same_firmware_after_the_reboot_is_not_confirmed(
    hass: HomeAssistant, camera: IsapiCameraSimulator, firmware: Path
) -> None:
    """The camera comes back on its old version: verification fails."""
    entry = await _entry(hass, camera)
    camera.file_version = BEFORE
    with pytest.raises(HomeAssistantError) as err:
        await _install_file(hass, entry, firmware)
    assert err.value.translation_key == "verification_failed"


async def test_refused_while_the_camera_flashes(
    hass: HomeAssistant, camera: IsapiCameraSimulator, firmware: Path
) -> None:
    """A camera flashing already gets no file; nothing is reported as failed."""
    entry = await _entry(hass, camera)
    camera.begin_file_upgrade()
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await _install_file(hass, entry, firmware)
    assert err.value.translation_key == "device_busy"
    assert camera.count("PUT", UPLOAD) == 0
    assert finished == []
    assert hass.states.get(STATUS).state == "idle"


async def test_refused_while_the_camera_downloads_online(
    hass: HomeAssistant, camera: IsapiCameraSimulator, firmware: Path
) -> None:
    """A camera busy with its own online upgrade gets no file."""
    entry = await _entry(hass, camera)
    camera.begin_download()
    with pytest.raises(HomeAssistantError) as err:
        await _install_file(hass, entry, firmware)
    assert err.value.translation_key == "device_busy"
    assert camera.count("PUT", UPLOAD) == 0
    assert camera.received_files == []


async def test_restart_refused_while_a_file_flashes(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A reboot would cut the flash (started on the camera's web page): refused."""
    await _entry(hass, camera)
    camera.begin_file_upgrade()
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "button",
            "press",
            {"entity_id": "button.camera_1_restart"},
            blocking=True,
        )
    assert err.value.translation_key == "device_busy"
    assert camera.count("PUT", REBOOT) == 0


async def test_path_outside_the_allowed_directories(
    hass: HomeAssistant, camera: IsapiCameraSimulator, tmp_path: Path
) -> None:
    """A file outside allowlist_external_dirs is refused before anything is sent."""
    entry = await _entry(hass, camera)
    outside = tmp_path / FILE_NAME
    outside.write_bytes(b"firmware")
    hass.config.allowlist_external_dirs = {str(tmp_path / "allowed")}
    camera.reset_stats()
    with pytest.raises(ServiceValidationError) as err:
        await _install_file(hass, entry, outside)
    assert err.value.translation_key == "path_not_allowed"
    assert camera.requests == []


async def test_a_large_file_is_never_read_whole(
    hass: HomeAssistant, camera: IsapiCameraSimulator, tmp_path: Path
) -> None:
    """A 128 MiB file goes out with at most 16 MiB allocated at any moment."""
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    big = tmp_path / FILE_NAME
    size = 128 * 1024 * 1024
    budget = size // 8
    with big.open("wb") as file:
        file.truncate(size)  # sparse: no disk, same bytes to send
    entry = await _entry(hass, camera)
    tracemalloc.start()
    try:
        await _install_file(hass, entry, big)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert camera.received_files[0].size == size
    assert peak < budget
    assert camera.running_version == AFTER


async def test_file_install_followed_after_a_restart(
    hass: HomeAssistant, camera: IsapiCameraSimulator, hass_storage: dict[str, Any]
) -> None:
    """The journal holds a file install the camera still flashes: followed to the end."""
    entry = hikvision_entry(camera)
    run = InstallRun(
        target_version=None,
        started_at=0.0,
        before_version=BEFORE,
        serial_number=camera.serial_number,
        file_name=FILE_NAME,
    )
    _write_marker(hass_storage, entry, run)
    camera.begin_file_upgrade()
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await setup_entry(hass, entry)
    assert [e.data["success"] for e in finished] == [True]
    assert camera.running_version == AFTER
    assert camera.count("PUT", UPLOAD) == 0
    assert camera.count("PUT", REBOOT) == 0
    assert hass.states.get(UPDATE).attributes["installed_version"] == AFTER


async def test_file_install_cut_short_by_a_restart(
    hass: HomeAssistant, camera: IsapiCameraSimulator, hass_storage: dict[str, Any]
) -> None:
    """The journal holds a file install the camera never took: interrupted, said so."""
    entry = hikvision_entry(camera)
    _write_marker(
        hass_storage,
        entry,
        InstallRun(
            target_version=None,
            started_at=0.0,
            before_version=BEFORE,
            serial_number=camera.serial_number,
            file_name=FILE_NAME,
        ),
    )
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await setup_entry(hass, entry)
    assert [(e.data["success"], e.data["error"]) for e in finished] == [
        (False, "file_install_interrupted")
    ]
    assert [r.method for r in camera.requests] == ["GET"] * len(camera.requests)


def _write_marker(
    storage: dict[str, Any], entry: MockConfigEntry, run: InstallRun
) -> None:
    """Leave the journal a previous Home Assistant run wrote mid-install."""
    storage[f"{DOMAIN}.installs"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.installs",
        "data": {
            entry.entry_id: {
                "run": run.as_dict(),
                "identity": {
                    "unique_id": entry.unique_id,
                    "manufacturer": "Hikvision",
                    "model": "DS-2CD2346G2-ISU/SL",
                    "name": "CAMERA 1",
                    "serial_number": run.serial_number,
                    "mac_address": None,
                    "hw_version": None,
                },
            }
        },
    }


async def test_follow_a_file_install_while_the_camera_restarts(
    camera: IsapiCameraSimulator,
) -> None:
    """The journal's file install, the camera away restarting: waited for, verified."""
    async with aiohttp.ClientSession() as session:
        client = IsapiClient(
            session,
            host=camera.host,
            port=camera.port,
            ssl=False,
            username="admin",
            password=camera.password,
        )
        backend = HikvisionBackend(client, hikvision.DEFAULT_TIMING)
        await backend.async_probe()
        camera.upgrade_steps = 1
        camera.begin_file_upgrade()
        await client.get_upload_progress()  # flashed: the camera restarts now
        camera.reset_stats()
        states: list[FirmwareState] = []
        run = InstallRun(
            target_version=None,
            started_at=0.0,
            before_version=BEFORE,
            serial_number=camera.serial_number,
            file_name=FILE_NAME,
        )
        final = await backend.async_follow(run, states.append)
    assert final is not None
    assert final.installed_version == AFTER
    assert final.install is None
    assert states[0].install == run
    assert {r.method for r in camera.requests} == {"GET"}
