"""Following a Hikvision install found at setup (a restart or reload mid-install).

The backend is built against the ISAPI simulator the way the integration builds it
(as tests/test_isapi.py builds clients); `async_follow` is what setup calls. Each
test asserts that following sent nothing that changes the camera.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
import time

import aiohttp
import pytest

from custom_components.firmware_hub.core.backend import (
    InstallError,
    InstallRefusedError,
)
from custom_components.firmware_hub.core.models import FirmwareState, InstallRun, Phase
from custom_components.firmware_hub.kinds.hikvision import backend as hikvision
from custom_components.firmware_hub.kinds.hikvision.backend import (
    HikvisionBackend,
    HikvisionFacts,
)
from custom_components.firmware_hub.kinds.hikvision.protocol import IsapiClient

from .simulators.isapi import IsapiCameraSimulator, OnlineUpgrade

DOWNLOAD = "/ISAPI/System/onlineUpgrade/downloadPackage"
FLASH = "/ISAPI/System/onlineUpgrade/upgradeWithoutDownload"
REBOOT = "/ISAPI/System/reboot"
OFFER = "V5.7.20 build 250110"
BEFORE = "V5.7.18 build 240826"

type BackendFactory = Callable[[IsapiCameraSimulator], HikvisionBackend]


@pytest.fixture
async def session(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """A plain aiohttp session, as Home Assistant's shared one."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def build(session: aiohttp.ClientSession) -> BackendFactory:
    """Build a backend for a camera as a freshly set up entry does."""

    def _build(camera: IsapiCameraSimulator) -> HikvisionBackend:
        client = IsapiClient(
            session,
            host=camera.host,
            port=camera.port,
            ssl=False,
            username="admin",
            password=camera.password,
        )
        return HikvisionBackend(client, hikvision.DEFAULT_TIMING)

    return _build


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) until `condition()` holds."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


def _changes(camera: IsapiCameraSimulator) -> tuple[int, int, int]:
    return (
        camera.count("PUT", DOWNLOAD),
        camera.count("PUT", FLASH),
        camera.count("PUT", REBOOT),
    )


def _run(camera: IsapiCameraSimulator, target: str = OFFER) -> InstallRun:
    return InstallRun(
        target_version=target,
        started_at=time.time(),
        before_version=BEFORE,
        serial_number=camera.serial_number,
    )


async def test_follow_a_flash_found_at_setup(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """Home Assistant restarted while the camera flashes: follow it, verify, no PUT."""
    camera.reboot_after_upgrade = "auto"
    camera.upgrade_steps = 8
    camera.begin_upgrade()
    backend = build(camera)
    await backend.async_probe()
    states: list[FirmwareState] = []
    final = await backend.async_follow(None, states.append)
    assert final is not None
    assert final.installed_version == OFFER
    assert final.phase is Phase.IDLE
    assert final.install is None
    assert _changes(camera) == (0, 0, 0)
    installing = [s.progress for s in states if s.phase is Phase.INSTALLING]
    assert len(installing) >= 4
    assert installing == sorted(installing)
    assert all(s.install is not None for s in states if s.in_progress)
    assert [s.phase for s in states][-2:] == [Phase.VERIFYING, Phase.IDLE]
    assert camera.running_version == OFFER


async def test_follow_a_flash_that_waits_for_a_manual_reboot(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """A followed flash that needs a reboot is reported; the reboot is not sent."""
    camera.begin_upgrade()
    backend = build(camera)
    await backend.async_probe()
    states: list[FirmwareState] = []
    with pytest.raises(InstallError) as err:
        await backend.async_follow(None, states.append)
    assert err.value.key == "reboot_required"
    assert _changes(camera) == (0, 0, 0)
    assert camera.upgrade_status == "successful"
    assert states[-1].phase is Phase.FAILED
    assert states[-1].install is None


async def test_journal_marker_of_a_finished_install_is_verified(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """The marker's camera already runs the target: a verified success, no request."""
    camera.firmware_version, camera.firmware_build = "V5.7.20", "build 250110"
    backend = build(camera)
    await backend.async_probe()
    cleared: list[InstallRun | None] = []

    async def journal(run: InstallRun | None) -> None:
        cleared.append(run)

    backend.journal = journal
    final = await backend.async_follow(_run(camera), lambda _state: None)
    assert final is not None
    assert final.installed_version == OFFER
    assert final.install is None
    assert cleared[-1] is None
    assert _changes(camera) == (0, 0, 0)


async def test_journal_marker_while_the_camera_reboots(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """Setup while the camera reboots into the new firmware: wait, then verify."""
    backend = build(camera)
    await backend.async_probe()
    await camera.go_offline()
    camera.firmware_version, camera.firmware_build = "V5.7.20", "build 250110"
    states: list[FirmwareState] = []
    follow = asyncio.create_task(backend.async_follow(_run(camera), states.append))
    await _until(lambda: bool(states))
    assert states[0].phase is Phase.REBOOTING
    assert states[0].in_progress
    await camera.go_online()
    final = await follow
    assert final is not None
    assert final.installed_version == OFFER
    assert _changes(camera) == (0, 0, 0)


async def test_journal_marker_but_another_camera_answers(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """The marker's serial differs from the camera's: serial_mismatch, not success."""
    backend = build(camera)
    await backend.async_probe()
    camera.serial_number = "DS-2CD2346G2-ISU20250101CCWRJ99999999"
    camera.firmware_version, camera.firmware_build = "V5.7.20", "build 250110"
    with pytest.raises(InstallError) as err:
        await backend.async_follow(
            replace_serial(_run(camera), "DS-OLD"), lambda _state: None
        )
    assert err.value.key == "serial_mismatch"
    assert backend.state.phase is Phase.FAILED
    assert _changes(camera) == (0, 0, 0)


def replace_serial(run: InstallRun, serial: str) -> InstallRun:
    """Return `run` recorded for another camera."""
    return InstallRun(
        target_version=run.target_version,
        started_at=run.started_at,
        before_version=run.before_version,
        serial_number=serial,
    )


async def test_journal_marker_of_an_install_that_never_started(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """Stopped before the camera got anything: reported interrupted, then installable."""
    backend = build(camera)
    await backend.async_probe()
    await backend.async_refresh(check=True)
    with pytest.raises(InstallError) as err:
        await backend.async_follow(_run(camera), lambda _state: None)
    assert err.value.key == "install_interrupted"
    assert _changes(camera) == (0, 0, 0)
    final = await backend.async_install(None, lambda _state: None)
    assert final.installed_version == OFFER
    assert _changes(camera) == (1, 1, 1)


async def test_nothing_to_follow(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """An idle camera and no marker: nothing is followed, nothing sent."""
    backend = build(camera)
    await backend.async_probe()
    assert await backend.async_follow(None, lambda _state: None) is None
    assert backend.state.install is None
    assert isinstance(backend.state.facts, HikvisionFacts)
    assert backend.state.facts.online_upgrade
    assert backend.diagnostics()["auth_scheme"] == "digest"
    assert _changes(camera) == (0, 0, 0)


async def test_reload_during_a_download(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """A reload mid-download: no second download; the package is flashed once.

    The old entry's install is stopped (as Home Assistant stops it); the new
    entry's backend refuses a second install, follows the download from the
    journal's marker, and the next install flashes that package without
    downloading it again.
    """
    camera.download_steps = 1_000_000
    first = build(camera)
    await first.async_probe()
    await first.async_refresh(check=True)
    journal: list[InstallRun | None] = []

    async def record(run: InstallRun | None) -> None:
        journal.append(run)

    first.journal = record
    task = asyncio.create_task(first.async_install(None, lambda _state: None))
    await _until(lambda: camera.download_status == "downloading")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    marker = journal[-1]
    assert marker is not None
    assert marker.target_version == OFFER

    second = build(camera)
    await second.async_probe()
    await second.async_refresh(check=True)
    with pytest.raises(InstallRefusedError) as refused:
        await second.async_install(None, lambda _state: None)
    assert refused.value.key == "device_busy"
    assert _changes(camera) == (1, 0, 0)

    states: list[FirmwareState] = []
    follow = asyncio.create_task(second.async_follow(marker, states.append))
    await _until(lambda: any(s.phase is Phase.DOWNLOADING for s in states))
    assert states[0].phase is Phase.VERIFYING
    assert all(s.in_progress for s in states)
    camera.download_steps = 1
    with pytest.raises(InstallError) as err:
        await follow
    assert err.value.key == "install_interrupted"
    assert camera.download_status == "finish"
    assert _changes(camera) == (1, 0, 0)

    final = await second.async_install(None, lambda _state: None)
    assert final.installed_version == OFFER
    assert _changes(camera) == (1, 1, 1)


@pytest.mark.parametrize(
    ("download", "upgrade", "key"),
    [
        ("downloadFailed", "notUpgrade", "camera_download_failed"),
        ("hdOperationFailed", "notUpgrade", "camera_storage_failed"),
        ("finish", "writeFlashError", "camera_flash_write_error"),
        ("finish", "engineVersionMismatch", "camera_engine_version_mismatch"),
        ("finish", "successful", "reboot_required"),
    ],
)
async def test_journal_marker_of_an_install_that_ended_meanwhile(
    camera: IsapiCameraSimulator,
    build: BackendFactory,
    download: str,
    upgrade: str,
    key: str,
) -> None:
    """The camera's statuses tell how the journal's install ended; nothing is sent."""
    camera.force_status(download=download, upgrade=upgrade)
    backend = build(camera)
    await backend.async_probe()
    states: list[FirmwareState] = []
    with pytest.raises(InstallError) as err:
        await backend.async_follow(_run(camera), states.append)
    assert err.value.key == key
    assert states[0].phase is Phase.VERIFYING
    assert states[-1].phase is Phase.FAILED
    assert states[-1].install is None
    assert _changes(camera) == (0, 0, 0)


async def test_journal_marker_after_our_download_finished(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """Stopped between download and flash: the next install flashes that package."""
    camera.hold_package(OFFER)  # what our own download left
    backend = build(camera)
    await backend.async_probe()
    await backend.async_refresh(check=True)
    with pytest.raises(InstallError) as err:
        await backend.async_follow(_run(camera), lambda _state: None)
    assert err.value.key == "install_interrupted"
    final = await backend.async_install(None, lambda _state: None)
    assert final.installed_version == OFFER
    assert _changes(camera) == (0, 1, 1)


async def test_follow_a_download_started_elsewhere(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """A download from the camera's web page is followed; its package is then used."""
    camera.download_steps = 3
    camera.begin_download()
    backend = build(camera)
    await backend.async_probe()
    states: list[FirmwareState] = []
    final = await backend.async_follow(None, states.append)
    assert final is not None
    assert final.phase is Phase.IDLE
    assert final.install is None
    assert Phase.DOWNLOADING in {state.phase for state in states}
    assert _changes(camera) == (0, 0, 0)
    await backend.async_refresh(check=True)
    await backend.async_install(None, lambda _state: None)
    assert camera.running_version == OFFER
    assert _changes(camera) == (0, 1, 1)


async def test_journal_marker_camera_back_on_its_old_firmware(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """Rebooted mid-install and back on the old firmware: verification_failed."""
    backend = build(camera)
    await backend.async_probe()
    await camera.go_offline()
    states: list[FirmwareState] = []
    follow = asyncio.create_task(backend.async_follow(_run(camera), states.append))
    await _until(lambda: bool(states))
    await camera.go_online()
    with pytest.raises(InstallError) as err:
        await follow
    assert err.value.key == "verification_failed"
    assert _changes(camera) == (0, 0, 0)


async def test_nothing_to_follow_without_online_upgrade(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """A camera without online upgrade has nothing to follow; no status is read."""
    camera.online_upgrade = OnlineUpgrade.ABSENT
    backend = build(camera)
    await backend.async_probe()
    assert await backend.async_follow(None, lambda _state: None) is None
    assert camera.count("GET", "/ISAPI/System/onlineUpgrade/status") == 0
    assert isinstance(backend.state.facts, HikvisionFacts)
    assert not backend.state.facts.online_upgrade


async def test_restart_of_a_camera_without_upgrade_status(
    camera: IsapiCameraSimulator, build: BackendFactory
) -> None:
    """Status documents answering notSupport: no upgrade can run, restart proceeds."""
    backend = build(camera)
    await backend.async_probe()
    camera.online_upgrade = OnlineUpgrade.ABSENT
    await backend.async_restart()
    assert _changes(camera) == (0, 0, 1)
