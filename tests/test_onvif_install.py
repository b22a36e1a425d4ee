"""ONVIF firmware file installs as transactions, against the loopback simulator.

The backend is built directly on the simulator (as the protocol tests build
clients): the journal it writes, what it publishes and, above all, what the camera
received (SOAP calls, uploads) are observed. Following an install after a restart is
also driven through Home Assistant's setup with a journal marker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import contextlib
import hashlib
import io
from pathlib import Path
import time
from typing import Any

import aiohttp
from aiohttp import web
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.firmware_hub.const import (
    CONF_KIND,
    DOMAIN,
    EVENT_UPGRADE_FINISHED,
)
from custom_components.firmware_hub.core.backend import (
    InstallError,
    InstallRefusedError,
)
from custom_components.firmware_hub.core.models import FirmwareState, InstallRun, Phase
from custom_components.firmware_hub.kinds.onvif.backend import OnvifBackend
from custom_components.firmware_hub.kinds.onvif.install import OnvifTiming
from custom_components.firmware_hub.kinds.onvif.protocol import OnvifClient

from .helpers import unload_all, wait_until
from .simulators.onvif import OnvifCameraSimulator

BEFORE = "8.71.0066"
AFTER = "8.71.0080"
SERIAL = "404754734001050102"
MAC = "00:07:5f:9c:4e:21"
#: What changes a camera: never sent while an install is followed.
DEVICE_CHANGING = frozenset(
    {
        "StartFirmwareUpgrade",
        "SystemReboot",
        "SetVideoEncoderConfiguration",
        "SetImagingSettings",
    }
)


class Recorder:
    """A backend's journal and published states, and what the camera had then."""

    def __init__(self, sim: OnvifCameraSimulator) -> None:
        self.sim = sim
        self.journal: list[InstallRun | None] = []
        #: (StartFirmwareUpgrade calls, uploads) at each journal write.
        self.camera_at_write: list[tuple[int, int]] = []
        self.states: list[FirmwareState] = []

    async def write(self, run: InstallRun | None) -> None:
        self.journal.append(run)
        self.camera_at_write.append(
            (self.sim.count("StartFirmwareUpgrade"), len(self.sim.uploads))
        )

    def publish(self, state: FirmwareState) -> None:
        self.states.append(state)


def _backend(sim: OnvifCameraSimulator, http: aiohttp.ClientSession) -> OnvifBackend:
    client = OnvifClient(
        host=sim.host,
        port=sim.port,
        username=sim.username,
        password=sim.password,
        timeout=5.0,
    )
    return OnvifBackend(client, http, OnvifTiming(poll_interval=0.02, reboot_timeout=1))


@pytest.fixture
async def sim(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncGenerator[OnvifCameraSimulator]:
    """The Bosch FLEXIDOME on loopback."""
    camera = OnvifCameraSimulator()
    await camera.start()
    yield camera
    await unload_all(hass)  # clients stop before the simulator
    await camera.stop()


@pytest.fixture
async def http(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """An aiohttp session standing in for Home Assistant's."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def backend(
    sim: OnvifCameraSimulator, http: aiohttp.ClientSession
) -> AsyncGenerator[OnvifBackend]:
    """A backend set up as Home Assistant does (probe, first refresh), stats reset."""
    onvif = _backend(sim, http)
    await onvif.async_probe()
    await onvif.async_refresh(check=True)
    sim.reset_stats()
    yield onvif
    await onvif.async_close()


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    """A firmware file (~200 KB)."""
    path = tmp_path / "FLEXIDOME_8.71.0080.fw"
    path.write_bytes(bytes(range(256)) * 800)
    return path


async def test_install_journals_the_run_before_the_flash(
    sim: OnvifCameraSimulator, backend: OnvifBackend, firmware: Path
) -> None:
    """Journal first, then StartFirmwareUpgrade; the deadline as soon as it is known."""
    recorder = Recorder(sim)
    backend.journal = recorder.write
    with firmware.open("rb") as file:
        final = await backend.async_install_file(
            file, f"/elsewhere/{firmware.name}", recorder.publish
        )
    assert (final.installed_version, final.phase, final.install) == (
        AFTER,
        Phase.IDLE,
        None,
    )
    sha256 = hashlib.sha256(firmware.read_bytes()).hexdigest()
    assert [(u.status, u.sha256) for u in sim.uploads] == [(200, sha256)]
    # Recorded before StartFirmwareUpgrade; the deadline once it answered and
    # again after the upload. Clearing it is the caller's (the outcome is known).
    assert recorder.camera_at_write == [(0, 0), (1, 0), (1, 1)]
    begun, known, uploaded = recorder.journal
    assert begun == InstallRun(
        target_version=None,
        started_at=begun.started_at,
        before_version=BEFORE,
        serial_number=SERIAL,
        file_name=firmware.name,  # the base name, never a path
    )
    assert known is not None
    assert uploaded is not None
    assert known.deadline is not None
    assert uploaded.deadline is not None
    assert begun.started_at < known.deadline <= uploaded.deadline
    # From the end of the upload: ExpectedDownTime (0.3 s) + the margin (1 s here).
    assert uploaded.deadline <= time.time() + 0.3 + 1
    shown = [state.install for state in recorder.states]
    assert shown.index(begun) < shown.index(known) < shown.index(uploaded)


@pytest.mark.parametrize(
    ("upload_uri", "host"),
    [
        ("http://localhost:{port}/fw", "localhost"),
        ("ftp://127.0.0.1:{port}/fw", "127.0.0.1"),
    ],
    ids=["another_host", "not_http"],
)
async def test_install_refuses_an_upload_uri_off_the_camera(
    sim: OnvifCameraSimulator,
    backend: OnvifBackend,
    firmware: Path,
    upload_uri: str,
    host: str,
) -> None:
    """An UploadUri not http(s) on the camera's host: refused, nothing uploaded."""
    received: list[int] = []

    async def catch(request: web.Request) -> web.Response:
        received.append(len(await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", catch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sim.upload_uri = upload_uri.format(port=site.port)
    recorder = Recorder(sim)
    backend.journal = recorder.write
    try:
        with firmware.open("rb") as file, pytest.raises(InstallRefusedError) as err:
            await backend.async_install_file(file, firmware.name, recorder.publish)
    finally:
        await runner.cleanup()
    assert err.value.key == "upload_uri_foreign"
    assert err.value.placeholders == {"upload_host": host, "host": sim.host}
    assert received == []
    assert sim.uploads == []
    assert sim.count("StartFirmwareUpgrade") == 1
    assert sim.firmware_version == BEFORE
    # Journaled before StartFirmwareUpgrade, cleared with the refusal.
    assert recorder.journal[-1] is None
    assert len(recorder.journal) == 2
    assert (backend.state.phase, backend.state.install) == (Phase.IDLE, None)
    assert recorder.states[-1] == backend.state


async def test_install_fails_when_another_device_comes_back(
    sim: OnvifCameraSimulator, backend: OnvifBackend, firmware: Path
) -> None:
    """The device answering after the flash has another serial number: a failure."""
    recorder = Recorder(sim)

    def publish(state: FirmwareState) -> None:
        recorder.publish(state)
        if state.phase is Phase.REBOOTING:
            sim.serial_number = "404754734001059999"  # another unit took the address

    with firmware.open("rb") as file, pytest.raises(InstallError) as err:
        await backend.async_install_file(file, firmware.name, publish)
    assert err.value.key == "serial_mismatch"
    assert len(sim.uploads) == 1
    assert sim.firmware_version == AFTER  # what answers runs other firmware...
    state = backend.state
    assert (state.phase, state.install) == (Phase.FAILED, None)
    assert state.installed_version == BEFORE  # ...which is not taken as ours
    assert recorder.states[-1] == state


async def test_empty_file_refused_before_anything_is_sent(
    sim: OnvifCameraSimulator, backend: OnvifBackend, tmp_path: Path
) -> None:
    """An empty file: refused, no journal, no request at all."""
    recorder = Recorder(sim)
    backend.journal = recorder.write
    empty = tmp_path / "empty.fw"
    empty.write_bytes(b"")
    with empty.open("rb") as file, pytest.raises(InstallRefusedError) as err:
        await backend.async_install_file(file, empty.name, recorder.publish)
    assert err.value.key == "firmware_file_invalid"
    assert sim.total_calls == 0
    assert recorder.journal == []
    assert recorder.states == []


async def test_stream_not_a_file_refused_before_anything_is_sent(
    sim: OnvifCameraSimulator, backend: OnvifBackend
) -> None:
    """A stream without a file behind it (no size): refused, nothing sent."""
    recorder = Recorder(sim)
    backend.journal = recorder.write
    with pytest.raises(InstallRefusedError) as err:
        await backend.async_install_file(
            io.BytesIO(b"firmware"), "fw.bin", recorder.publish
        )
    assert err.value.key == "file_unreadable"
    assert sim.total_calls == 0
    assert recorder.journal == []


async def test_unreadable_file_fails_the_upload(
    sim: OnvifCameraSimulator, backend: OnvifBackend, tmp_path: Path
) -> None:
    """The file cannot be read once the upload runs: file_unreadable, no upload."""
    recorder = Recorder(sim)
    backend.journal = recorder.write
    firmware = tmp_path / "fw.bin"
    with firmware.open("wb") as file:  # open for writing only: reads fail
        file.write(b"x" * 1000)
        file.seek(0)
        with pytest.raises(InstallError) as err:
            await backend.async_install_file(file, firmware.name, recorder.publish)
    assert err.value.key == "file_unreadable"
    assert sim.count("StartFirmwareUpgrade") == 1
    assert sim.uploads == []
    assert sim.firmware_version == BEFORE
    assert (backend.state.phase, backend.state.install) == (Phase.FAILED, None)
    assert None not in recorder.journal  # the caller clears it with the outcome


async def test_follow_after_a_restart_sends_nothing_and_verifies(
    sim: OnvifCameraSimulator,
    http: aiohttp.ClientSession,
    backend: OnvifBackend,
    firmware: Path,
) -> None:
    """Home Assistant stopped while the camera flashed: the next one follows it."""
    sim.expected_down_time = 0.5
    previous = _backend(sim, http)
    before = Recorder(sim)
    previous.journal = before.write
    rebooting = asyncio.Event()

    def publish(state: FirmwareState) -> None:
        if state.phase is Phase.REBOOTING:
            rebooting.set()

    with firmware.open("rb") as file:
        install = asyncio.create_task(
            previous.async_install_file(file, firmware.name, publish)
        )
        await rebooting.wait()
        install.cancel()  # Home Assistant stops: nothing more is sent
        with contextlib.suppress(asyncio.CancelledError):
            await install
    await previous.async_close()
    marker = before.journal[-1]
    assert marker is not None
    assert marker.deadline is not None

    sim.reset_stats()
    after = Recorder(sim)
    final = await backend.async_follow(marker, after.publish)
    assert final is not None
    assert (final.installed_version, final.phase, final.install) == (
        AFTER,
        Phase.IDLE,
        None,
    )
    assert after.states[0].install == marker
    assert after.states[0].phase is Phase.REBOOTING
    assert not DEVICE_CHANGING & set(sim.calls)
    assert sim.uploads == []
    assert sim.count("GetDeviceInformation") >= 1


async def test_follow_camera_back_with_the_old_firmware(
    sim: OnvifCameraSimulator, backend: OnvifBackend
) -> None:
    """The flash never took (the upload was cut): verification_failed, nothing sent."""
    marker = InstallRun(
        target_version=None,
        started_at=time.time(),
        before_version=BEFORE,
        serial_number=SERIAL,
        file_name="FLEXIDOME_8.71.0080.fw",
        deadline=time.time() + 0.2,
    )
    recorder = Recorder(sim)
    with pytest.raises(InstallError) as err:
        await backend.async_follow(marker, recorder.publish)
    assert err.value.key == "verification_failed"
    assert err.value.placeholders == {
        "installed": BEFORE,
        "expected": "FLEXIDOME_8.71.0080.fw",
    }
    assert time.time() >= marker.deadline  # the old version was waited out
    assert set(sim.calls) == {"GetDeviceInformation"}
    assert (backend.state.phase, backend.state.install) == (Phase.FAILED, None)


async def test_follow_another_device_answers(
    sim: OnvifCameraSimulator, backend: OnvifBackend
) -> None:
    """After the restart another unit answers at the address: serial_mismatch."""
    sim.firmware_version = AFTER
    sim.serial_number = "404754734001059999"
    marker = InstallRun(
        target_version=None,
        started_at=time.time() - 60,
        before_version=BEFORE,
        serial_number=SERIAL,
        file_name="FLEXIDOME_8.71.0080.fw",
        deadline=time.time() + 60,
    )
    with pytest.raises(InstallError) as err:
        await backend.async_follow(marker, Recorder(sim).publish)
    assert err.value.key == "serial_mismatch"
    assert set(sim.calls) == {"GetDeviceInformation"}
    assert backend.state.installed_version == BEFORE


async def test_follow_camera_never_back(
    sim: OnvifCameraSimulator, backend: OnvifBackend
) -> None:
    """The deadline has passed and the camera does not answer: reboot_timeout."""
    await sim.go_offline()
    marker = InstallRun(
        target_version=None,
        started_at=time.time() - 120,
        before_version=BEFORE,
        serial_number=SERIAL,
        deadline=None,  # journaled before StartFirmwareUpgrade answered
    )
    with pytest.raises(InstallError) as err:
        await backend.async_follow(marker, Recorder(sim).publish)
    assert err.value.key == "reboot_timeout"
    assert sim.total_calls == 0
    assert backend.state.phase is Phase.FAILED


async def test_follow_without_a_marker(
    sim: OnvifCameraSimulator, backend: OnvifBackend
) -> None:
    """No marker: an ONVIF camera never flashes by itself, nothing to follow."""
    state = backend.state
    assert await backend.async_follow(None, Recorder(sim).publish) is None
    assert sim.total_calls == 0
    assert backend.state == state


async def test_setup_follows_a_journaled_install(
    hass: HomeAssistant,
    sim: OnvifCameraSimulator,
    http: aiohttp.ClientSession,
    firmware: Path,
    hass_storage: dict[str, Any],
) -> None:
    """Home Assistant restarted mid-install: setup follows it to the finished event.

    The camera is offline (flashing) when the entry is set up: the entity shows the
    install in progress, nothing device-changing is sent, and the camera that comes
    back with the new firmware ends the install (event, journal cleared).
    """
    sim.expected_down_time = 0.5
    previous = _backend(sim, http)
    before = Recorder(sim)
    previous.journal = before.write
    with firmware.open("rb") as file:
        install = asyncio.create_task(
            previous.async_install_file(file, firmware.name, before.publish)
        )
        await wait_until(
            hass, lambda: any(name == "upgrade_started" for _t, name in sim.events)
        )
        install.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await install
    await previous.async_close()
    marker = before.journal[-1]
    assert marker is not None
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Bosch FLEXIDOME indoor 5100i IR",
        unique_id=MAC,
        data={
            CONF_KIND: "onvif",
            "host": sim.host,
            "port": sim.port,
            "username": sim.username,
            "password": sim.password,
        },
    )
    hass_storage[f"{DOMAIN}.installs"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.installs",
        "data": {
            entry.entry_id: {
                "run": marker.as_dict(),
                "identity": {
                    "unique_id": MAC,
                    "manufacturer": "Bosch",
                    "model": "FLEXIDOME indoor 5100i IR",
                    "name": "Bosch FLEXIDOME indoor 5100i IR",
                    "serial_number": SERIAL,
                    "mac_address": MAC,
                    "hw_version": None,
                },
            }
        },
    }
    sim.reset_stats()
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    update = "update.bosch_flexidome_indoor_5100i_ir_firmware"
    assert hass.states.get(update).attributes["in_progress"] is True
    # An ONVIF install cannot be stopped: a clear refusal, the install goes on.
    with pytest.raises(ServiceValidationError) as refused:
        await hass.services.async_call(
            DOMAIN, "cancel_install", {ATTR_ENTITY_ID: update}, blocking=True
        )
    assert refused.value.translation_key == "cancel_not_supported"
    await wait_until(hass, lambda: bool(finished))
    assert [(e.data["success"], e.data["version"]) for e in finished] == [(True, AFTER)]
    await hass.async_block_till_done()
    assert not DEVICE_CHANGING & set(sim.calls)
    assert sim.uploads == []
    assert hass_storage[f"{DOMAIN}.installs"]["data"] == {}
    assert hass.states.get(update).attributes["in_progress"] is False
    assert hass.states.get(update).attributes["installed_version"] == AFTER
    assert await hass.config_entries.async_unload(entry.entry_id)
