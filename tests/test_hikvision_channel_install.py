"""A firmware file installed on a recorder's channel camera, through the recorder.

Home Assistant's HTTP server runs on a real loopback port (its local URL); the NVR
simulator fetches the shared file from it, as a recorder fetches a package URL,
and reports the task. What the recorder was asked and what it fetched are read off
the simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import replace
import hashlib
import logging
from pathlib import Path
import secrets
import time
import tracemalloc
from typing import Any

import aiohttp
from homeassistant.components.http import ApiConfig
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.firmware_hub.const import (
    CONF_KIND,
    DOMAIN,
    EVENT_UPGRADE_FINISHED,
    Kind,
)
from custom_components.firmware_hub.core.models import InstallRun
from custom_components.firmware_hub.file_share import async_file_sharer
from custom_components.firmware_hub.kinds.hikvision import (
    backend as hikvision,
    channel_install,
)

from .helpers import Recorder, allowed_firmware, hikvision_input, setup_entry
from .simulators.isapi_channel_task import TASK_PATH, ChannelTask
from .simulators.isapi_nvr import IsapiNvrSimulator

BEFORE = "V5.7.15 build 240201"
AFTER = "V5.7.22 build 250301"
FILE_NAME = "IPC_G5_EN_STD_V5.7.22_build250301.dav"
UPDATE = "update.garden_firmware"
SENSOR = "sensor.garden_firmware_version"
SHARE_PREFIX = "/api/firmware_hub/firmware/"


@pytest.fixture
async def nvr(socket_enabled: None) -> AsyncGenerator[IsapiNvrSimulator]:
    """A DS-7608NXI-I2 NVR with three IP cameras; channel 1 is `garden`."""
    sim = IsapiNvrSimulator()
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def local_url(
    hass: HomeAssistant, hass_client_no_auth: ClientSessionGenerator
) -> str:
    """Home Assistant's HTTP server on a loopback port, set as its local URL.

    The integration is set up first: its view is registered before the server
    starts (Home Assistant's own server also takes views added later).
    """
    assert await async_setup_component(hass, DOMAIN, {})
    client = await hass_client_no_auth()
    url = str(client.make_url("/")).rstrip("/")
    assert url.startswith("http://127.0.0.1:")
    await hass.config.async_update(internal_url=url)
    return url


@pytest.fixture
def firmware(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A firmware file (1 MiB) in a directory Home Assistant allows."""
    return allowed_firmware(hass, tmp_path, FILE_NAME)


async def _entry(hass: HomeAssistant, nvr: IsapiNvrSimulator) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="NVR",
        unique_id=nvr.serial_number,
        data={CONF_KIND: Kind.HIKVISION.value, **hikvision_input(nvr)},
    )
    await setup_entry(hass, entry)
    return entry


def _key(nvr: IsapiNvrSimulator, channel: str = "1") -> str:
    return f"{nvr.serial_number}_channel_{channel}"


def _device(hass: HomeAssistant, nvr: IsapiNvrSimulator) -> dr.DeviceEntry:
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, _key(nvr)), entry.entry_id
    )
    assert isinstance(device, dr.DeviceEntry)
    return device


async def _install(hass: HomeAssistant, path: Path, **target: str) -> None:
    await hass.services.async_call(
        DOMAIN, "install_firmware_file", {**target, "path": str(path)}, blocking=True
    )


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _posts(nvr: IsapiNvrSimulator) -> list[str]:
    return [r.path for r in nvr.requests if r.method != "GET" and r.status != 401]


async def test_channel_install_through_the_recorder(
    hass: HomeAssistant,
    nvr: IsapiNvrSimulator,
    local_url: str,
    firmware: Path,
    recorder: Recorder,
) -> None:
    """The recorder fetches the file once, upgrades the camera; verified on the child."""
    entry = await _entry(hass, nvr)
    backend = entry.runtime_data.coordinator.backend
    journal: list[tuple[InstallRun | None, int]] = []
    write = backend.journal

    async def spy(run: InstallRun | None) -> None:
        journal.append((run, len(nvr.task_bodies)))
        await write(run)

    backend.journal = spy
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    recorder.clear()

    await _install(hass, firmware, entity_id=UPDATE)
    await hass.async_block_till_done()

    # One task for channel 1, with the file's name and MD5 and a share URL.
    ((body),) = nvr.task_bodies
    package = body["PackageDescription"]
    assert (package["channel"], package["name"], package["MD5"]) == (
        1,
        FILE_NAME,
        _md5(firmware),
    )
    assert package["URL"].startswith(local_url + SHARE_PREFIX)
    # Fetched exactly once, the right bytes.
    (fetched,) = nvr.fetched_packages
    assert (fetched.status, fetched.size, fetched.md5) == (
        200,
        firmware.stat().st_size,
        _md5(firmware),
    )
    # Journalled before the task was posted, then with the task's id.
    (first, posted_then), (second, _) = journal[0], journal[1]
    assert posted_then == 0
    assert first is not None
    assert (first.child, first.file_name, first.before_version) == (
        _key(nvr),
        FILE_NAME,
        BEFORE,
    )
    assert first.task_id is None
    assert second is not None
    assert second.task_id == next(iter(nvr.tasks))
    assert journal[-1][0] is None
    # Progress rose on the child's update entity; the recorder's stayed idle.
    running = [s for s in recorder.of(UPDATE) if s.attributes["in_progress"]]
    progress = [s.attributes["update_percentage"] for s in running]
    assert progress == sorted(progress)
    assert progress[0] == 0
    assert len({p for p in progress if 0 < p < 90}) >= 2
    assert progress[-1] == 99
    assert running[-1].attributes["release_summary"] == (
        f"Installing the firmware file {FILE_NAME}."
    )
    assert not [
        s for s in recorder.of("update.nvr_firmware") if s.attributes["in_progress"]
    ]
    # Verified: the camera runs the new firmware; the event is the child's.
    assert nvr.channels["1"].firmware_version == AFTER
    assert hass.states.get(SENSOR).state == AFTER
    assert hass.states.get(UPDATE).attributes["in_progress"] is False
    assert _device(hass, nvr).sw_version == AFTER
    assert [(e.data["device_id"], e.data["success"]) for e in finished] == [
        (_device(hass, nvr).id, True)
    ]
    assert finished[0].data["version"] == AFTER
    # The share ended with the install: the recorder's own address gets a 404 now.
    async with (
        aiohttp.ClientSession() as session,
        session.get(package["URL"]) as response,
    ):
        assert response.status == 404


async def test_recorder_without_channel_upgrade(
    hass: HomeAssistant, nvr: IsapiNvrSimulator, local_url: str, firmware: Path
) -> None:
    """No isSupportUpgradeChannels: refused before anything reaches the recorder."""
    nvr.upgrade_channels = False
    await _entry(hass, nvr)
    nvr.reset_stats()

    with pytest.raises(ServiceValidationError) as err:
        await _install(hass, firmware, device_id=_device(hass, nvr).id)

    assert err.value.translation_key == "child_install_not_supported"
    assert "garden" in str(err.value)
    assert _posts(nvr) == []
    assert nvr.task_bodies == []
    assert nvr.fetched_packages == []


async def test_no_local_url(
    hass: HomeAssistant, nvr: IsapiNvrSimulator, firmware: Path
) -> None:
    """Home Assistant has no local URL (HTTPS only, none set): nothing is sent."""
    await _entry(hass, nvr)
    hass.config.api = ApiConfig("127.0.0.1", "127.0.0.1", 8123, use_ssl=True)
    nvr.reset_stats()

    with pytest.raises(ServiceValidationError) as err:
        await _install(hass, firmware, entity_id=UPDATE)

    assert err.value.translation_key == "no_internal_url"
    assert "Settings" in str(err.value)
    assert _posts(nvr) == []
    assert hass.states.get(UPDATE).attributes["in_progress"] is False


@pytest.mark.parametrize(
    ("fault", "key"),
    [
        ("corrupt_package", "camera_package_type_mismatch"),
        ("task_failure", "camera_flash_write_error"),
        ("task_refused", "camera_refused_request"),
    ],
)
async def test_failed_channel_install(
    hass: HomeAssistant,
    nvr: IsapiNvrSimulator,
    local_url: str,
    firmware: Path,
    fault: str,
    key: str,
) -> None:
    """A damaged package, a failed or refused task: its error, the camera unchanged."""
    entry = await _entry(hass, nvr)
    setattr(nvr, fault, "writeFlashError" if fault == "task_failure" else True)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)

    with pytest.raises(HomeAssistantError) as err:
        await _install(hass, firmware, entity_id=UPDATE)

    assert err.value.translation_key == key
    assert [
        (e.data["device_id"], e.data["success"], e.data["error"]) for e in finished
    ] == [(_device(hass, nvr).id, False, key)]
    assert len(nvr.task_bodies) == 1
    assert len(nvr.fetched_packages) == (0 if fault == "task_refused" else 1)
    assert nvr.channels["1"].firmware_version == BEFORE
    assert "channel_flashed" not in [name for _t, name in nvr.events]
    assert hass.states.get(UPDATE).attributes["in_progress"] is False
    assert hass.states.get(SENSOR).state == BEFORE
    assert entry.runtime_data.coordinator.data.install is None
    # The channel camera's own failure state raises its repair (what to do), on
    # the channel's name; a refused task changed nothing and raises none.
    issues = [issue for k, issue in ir.async_get(hass).issues.items() if k[0] == DOMAIN]
    if fault == "task_refused":
        assert issues == []
    else:
        assert [issue.translation_key for issue in issues] == [f"install_{key}"]
        assert issues[0].translation_placeholders["name"] == _device(hass, nvr).name


@pytest.mark.parametrize(
    ("fault", "key", "repair"),
    [
        ("channel_keeps_version", "verification_failed", "install_verification_failed"),
        ("channel_stays_offline", "reboot_timeout", "install_reboot_timeout"),
    ],
)
async def test_channel_not_confirmed_after_the_task(
    hass: HomeAssistant,
    nvr: IsapiNvrSimulator,
    local_url: str,
    firmware: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    key: str,
    repair: str,
) -> None:
    """`successful`, but the channel keeps its version (or stays away): a repair."""
    monkeypatch.setattr(
        hikvision,
        "DEFAULT_TIMING",
        hikvision.HikvisionTiming(poll_interval=0.01, reboot_timeout=0.3),
    )
    entry = await _entry(hass, nvr)
    setattr(nvr, fault, True)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)

    with pytest.raises(HomeAssistantError) as err:
        await _install(hass, firmware, entity_id=UPDATE)

    assert err.value.translation_key == key
    assert [(e.data["success"], e.data["error"]) for e in finished] == [(False, key)]
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"install_failed_{entry.entry_id}_{_key(nvr)}"
    )
    assert issue is not None
    assert issue.translation_key == repair
    assert issue.translation_placeholders["name"] == "garden"
    # Removing the recorder's entry removes its channels' repairs.
    await hass.config_entries.async_remove(entry.entry_id)
    assert not [key for key in ir.async_get(hass).issues if key[0] == DOMAIN]


async def test_channel_install_followed_after_a_restart(
    hass: HomeAssistant,
    nvr: IsapiNvrSimulator,
    hass_storage: dict[str, Any],
    local_url: str,
) -> None:
    """The journal holds a running task: setup follows it; nothing is posted again."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="NVR",
        unique_id=nvr.serial_number,
        data={CONF_KIND: Kind.HIKVISION.value, **hikvision_input(nvr)},
    )
    nvr.tasks["t1"] = ChannelTask("t1", "1", "http://x/", FILE_NAME, "", fetched=True)
    run = InstallRun(
        target_version=None,
        started_at=time.time(),
        before_version=BEFORE,
        serial_number=nvr.channels["1"].serial_number,
        file_name=FILE_NAME,
        child=_key(nvr),
        task_id="t1",
    )
    hass_storage[f"{DOMAIN}.installs"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.installs",
        "data": {entry.entry_id: {"run": run.as_dict(), "identity": None}},
    }
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)

    await setup_entry(hass, entry)

    assert [(e.data["device_id"], e.data["success"]) for e in finished] == [
        (_device(hass, nvr).id, True)
    ]
    assert finished[0].data["version"] == AFTER
    assert nvr.count("POST", TASK_PATH) == 0
    assert hass.states.get(SENSOR).state == AFTER
    assert hass.states.get("sensor.nvr_firmware_status").state == "idle"


@pytest.mark.parametrize(
    ("flashed", "success", "error"),
    [(True, True, None), (False, False, "file_install_interrupted")],
)
async def test_restart_before_the_recorder_named_its_task(
    hass: HomeAssistant,
    nvr: IsapiNvrSimulator,
    hass_storage: dict[str, Any],
    flashed: bool,
    success: bool,
    error: str | None,
) -> None:
    """No taskID in the journal: only the channel's firmware says how it went."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="NVR",
        unique_id=nvr.serial_number,
        data={CONF_KIND: Kind.HIKVISION.value, **hikvision_input(nvr)},
    )
    if flashed:
        nvr.set_firmware("1", AFTER)
    run = InstallRun(
        target_version=None,
        started_at=time.time(),
        before_version=BEFORE,
        file_name=FILE_NAME,
        child=_key(nvr),
    )
    hass_storage[f"{DOMAIN}.installs"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.installs",
        "data": {entry.entry_id: {"run": run.as_dict(), "identity": None}},
    }
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)

    await setup_entry(hass, entry)

    assert [(e.data["success"], e.data["error"]) for e in finished] == [
        (success, error)
    ]
    assert finished[0].data["device_id"] == _device(hass, nvr).id
    assert nvr.count("POST", TASK_PATH) == 0
    assert nvr.tasks == {}


async def test_channel_install_never_reads_the_file_whole(
    hass: HomeAssistant,
    nvr: IsapiNvrSimulator,
    local_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 128 MiB file is hashed and served with at most 32 MiB allocated at a time.

    (Everything the process allocates is traced: coverage's bookkeeping and what
    earlier tests left running take part of the budget.) Traced, hashing and
    serving 128 MiB takes seconds on a busy machine: the task may take a minute.
    """
    monkeypatch.setattr(
        hikvision,
        "DEFAULT_TIMING",
        replace(hikvision.DEFAULT_TIMING, flash_timeout=60),
    )
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    big = tmp_path / FILE_NAME
    size = 128 * 1024 * 1024
    with big.open("wb") as file:
        file.truncate(size)  # sparse: no disk, same bytes to serve
    await _entry(hass, nvr)
    tracemalloc.start()
    try:
        await _install(hass, big, entity_id=UPDATE)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (fetched,) = nvr.fetched_packages
    assert fetched.size == size
    assert peak < size // 4
    assert nvr.channels["1"].firmware_version == AFTER


async def test_share_serves_only_the_device_and_only_while_shared(
    hass: HomeAssistant, local_url: str, firmware: Path
) -> None:
    """Real requests: another address, an unknown and a revoked token all get 404."""
    share = async_file_sharer(hass)
    size = firmware.stat().st_size
    file = await hass.async_add_executor_job(firmware.open, "rb")
    try:
        async with aiohttp.ClientSession() as session:
            # Shared with another address: this one (127.0.0.1) is refused.
            async with share(file, FILE_NAME, size, "192.0.2.10") as url:
                assert url.startswith(local_url + SHARE_PREFIX)
                async with session.get(url) as response:
                    refused = (response.status, await response.read())
                unknown = url.rpartition("/")[0] + "/" + secrets.token_urlsafe(32)
                async with session.get(unknown) as response:
                    # The same answer: nothing tells whether a token exists.
                    assert (response.status, await response.read()) == refused
            assert refused[0] == 404
            # Shared with this address, by name: the whole file, streamed.
            async with (
                share(file, FILE_NAME, size, "localhost") as url,
                session.get(url) as response,
            ):
                assert response.status == 200
                assert response.content_type == "application/octet-stream"
                assert response.content_length == size
                body = await response.read()
            assert hashlib.md5(body).hexdigest() == _md5(firmware)
            # A name with a quote and a line break stays one quoted header value.
            async with (
                share(file, 'odd"name\n.dav', size, "127.0.0.1") as odd,
                session.get(odd) as response,
            ):
                assert response.status == 200
                assert response.headers["Content-Disposition"] == (
                    'attachment; filename="odd%22name%0A.dav"'
                )
            # Revoked once the install (the context) ended.
            async with session.get(url) as response:
                assert (response.status, await response.read()) == refused
    finally:
        await hass.async_add_executor_job(file.close)


async def test_recorder_unreachable_while_its_task_runs(
    hass: HomeAssistant,
    nvr: IsapiNvrSimulator,
    local_url: str,
    firmware: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No answer from the recorder for a while is waited out: its task goes on."""
    caplog.set_level(logging.DEBUG, logger=channel_install.__name__)
    await _entry(hass, nvr)
    nvr.upgrade_steps = 1_000_000
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    install = hass.async_create_task(_install(hass, firmware, entity_id=UPDATE))
    async with asyncio.timeout(10):
        while not any(task.polls for task in nvr.tasks.values()):
            await asyncio.sleep(0.01)
        await nvr.go_offline()
        while "No answer from the recorder" not in caplog.text:
            await asyncio.sleep(0.01)
    assert hass.states.get(UPDATE).attributes["in_progress"] is True
    await nvr.go_online()
    nvr.upgrade_steps = 1
    await install
    assert nvr.channels["1"].firmware_version == AFTER
    assert [(e.data["success"], e.data["version"]) for e in finished] == [(True, AFTER)]
