"""`firmware_hub.cancel_install`: a Hikvision download stops, a flash never does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN, SERVICE_INSTALL
from homeassistant.const import ATTR_ENTITY_ID, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.firmware_hub.const import DOMAIN, EVENT_UPGRADE_FINISHED
from custom_components.firmware_hub.core.backend import InstallRefusedError
from custom_components.firmware_hub.kinds.hikvision.cancel import CancelSwitch

from .helpers import hikvision_entry, setup_entry
from .simulators.isapi import Failure, Gate, IsapiCameraSimulator

UPDATE = "update.camera_1_firmware"
STATUS = "sensor.camera_1_firmware_status"
DOWNLOAD = "/ISAPI/System/onlineUpgrade/downloadPackage"
FLASH = "/ISAPI/System/onlineUpgrade/upgradeWithoutDownload"
UPGRADE_STATUS = "/ISAPI/System/onlineUpgrade/status"


async def _cancel(hass: HomeAssistant) -> None:
    await hass.services.async_call(
        DOMAIN, "cancel_install", {ATTR_ENTITY_ID: UPDATE}, blocking=True
    )


def _start_install(hass: HomeAssistant) -> asyncio.Task[None]:
    return hass.async_create_task(
        hass.services.async_call(
            UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
        )
    )


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for `condition` (a plain loop: an install task runs meanwhile)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)


async def _install_downloading(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> asyncio.Task[None]:
    """Start an install; return it once the camera downloads (for as long as needed).

    The download finishes once the test sets `camera.download_steps` low again.
    """
    camera.download_steps = 1_000_000
    install = _start_install(hass)
    await _until(
        lambda: (
            camera.download_status == "downloading"
            and hass.states.get(STATUS).state == "downloading"
        )
    )
    return install


async def _entry(hass: HomeAssistant, camera: IsapiCameraSimulator) -> MockConfigEntry:
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    return entry


async def test_cancel_a_running_download(
    hass: HomeAssistant, camera: IsapiCameraSimulator, issue_registry: ir.IssueRegistry
) -> None:
    """The camera drops its download, nothing is flashed, the offer stays."""
    entry = await _entry(hass, camera)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    install = await _install_downloading(hass, camera)

    await _cancel(hass)

    with pytest.raises(HomeAssistantError) as err:
        await install
    assert err.value.translation_key == "download_cancelled"
    assert camera.count("DELETE", DOWNLOAD) == 1
    assert camera.count("PUT", FLASH) == 0
    assert camera.download_status == "notDownload"
    assert camera.firmware_version == "V5.7.18"
    # The user's choice, not a failure: idle, the offer still there, no repair.
    assert hass.states.get(STATUS).state == "idle"
    update = hass.states.get(UPDATE)
    assert update.state == STATE_ON
    assert update.attributes["in_progress"] is False
    assert [e.data["error"] for e in finished] == ["download_cancelled"]
    assert finished[0].data["success"] is False
    assert (
        issue_registry.async_get_issue(DOMAIN, f"install_failed_{entry.entry_id}")
        is None
    )

    # Nothing runs any more; a new install starts from scratch and completes.
    with pytest.raises(ServiceValidationError) as refused:
        await _cancel(hass)
    assert refused.value.translation_key == "nothing_to_cancel"
    camera.download_steps = 2
    await _start_install(hass)
    assert camera.firmware_version == "V5.7.20"


async def _refused_then_installed(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    install: asyncio.Task[None],
    key: str,
    *,
    deletes: int,
) -> None:
    """A cancel is refused with `key`; the install goes on and is verified."""
    with pytest.raises(ServiceValidationError) as err:
        await _cancel(hass)
    assert err.value.translation_key == key
    assert camera.count("DELETE", DOWNLOAD) == deletes
    camera.download_steps = 2
    camera.upgrade_steps = 1
    await install
    assert camera.firmware_version == "V5.7.20"


async def test_camera_that_cannot_cancel(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Without `cancel` in supportOperation nothing is sent; the install goes on."""
    camera.download_operations = "start"
    await _entry(hass, camera)
    install = await _install_downloading(hass, camera)
    await _refused_then_installed(
        hass, camera, install, "cancel_not_supported", deletes=0
    )


async def test_a_flash_is_never_cancelled(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Once the package is complete, a cancel is refused and the install ends well."""
    await _entry(hass, camera)
    camera.upgrade_steps = 1_000_000
    install = _start_install(hass)
    await _until(lambda: camera.upgrade_status == "upgrading")
    await _refused_then_installed(hass, camera, install, "cancel_too_late", deletes=0)


async def test_camera_ignoring_the_cancel(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The camera answers OK but goes on: the user is told, the install completes."""
    await _entry(hass, camera)
    camera.ignore_cancel = True
    install = await _install_downloading(hass, camera)
    await _refused_then_installed(hass, camera, install, "cancel_failed", deletes=1)


async def test_download_completing_during_the_cancel(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The package completes as the cancel arrives: it is flashed, and verified.

    The camera answers the cancel but reports the download `finish`ed: the user
    hears it came too late; the install, which alone decides to flash, flashes
    the complete package and verifies it.
    """
    await _entry(hass, camera)
    camera.complete_on_cancel = True
    install = await _install_downloading(hass, camera)
    await _refused_then_installed(hass, camera, install, "cancel_too_late", deletes=1)


async def _cancel_at(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera: IsapiCameraSimulator,
    gate: tuple[str, str],
) -> tuple[asyncio.Task[None], asyncio.Task[None]]:
    """Start an install, hold `gate`'s request, ask to cancel, then let it through.

    Returns the install and the cancel call, both still running.
    """
    held = camera.gates[gate] = Gate()
    install = _start_install(hass)
    await held.reached.wait()
    cancel = hass.async_create_task(_cancel(hass))
    switch = entry.runtime_data.coordinator.backend._cancel
    await _until(lambda: switch.wanted)
    held.opened.set()
    return install, cancel


async def test_cancel_before_the_camera_is_asked(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A cancel while the install checks the camera is idle: nothing is sent."""
    entry = await _entry(hass, camera)
    install, cancel = await _cancel_at(hass, entry, camera, ("GET", UPGRADE_STATUS))

    await cancel
    with pytest.raises(HomeAssistantError) as err:
        await install
    assert err.value.translation_key == "download_cancelled"
    assert camera.count("PUT", DOWNLOAD) == 0
    assert camera.count("DELETE", DOWNLOAD) == 0
    assert hass.states.get(STATUS).state == "idle"


async def test_cancel_while_the_download_is_requested(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A cancel during the download request waits until the camera downloads."""
    entry = await _entry(hass, camera)
    camera.download_steps = 1_000_000
    install, cancel = await _cancel_at(hass, entry, camera, ("PUT", DOWNLOAD))

    await cancel
    with pytest.raises(HomeAssistantError) as err:
        await install
    assert err.value.translation_key == "download_cancelled"
    assert camera.count("DELETE", DOWNLOAD) == 1
    assert camera.count("PUT", FLASH) == 0
    assert camera.download_status == "notDownload"


async def test_cancel_before_flashing_a_held_package(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The camera holds the complete package: a cancel before the flash stops it."""
    entry = await _entry(hass, camera)
    camera.failures.add(Failure.WRITE_FLASH_ERROR)
    with pytest.raises(HomeAssistantError):
        await _start_install(hass)  # downloaded, then the flash failed
    camera.failures.clear()
    install, cancel = await _cancel_at(hass, entry, camera, ("GET", UPGRADE_STATUS))

    await cancel
    with pytest.raises(HomeAssistantError) as err:
        await install
    assert err.value.translation_key == "download_cancelled"
    # The held package was neither downloaded again nor flashed.
    assert camera.count("PUT", DOWNLOAD) == 1
    assert camera.count("PUT", FLASH) == 1
    assert camera.download_status == "finish"
    assert camera.firmware_version == "V5.7.18"


async def test_nothing_to_cancel(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """No install runs: a clear refusal, nothing sent."""
    await _entry(hass, camera)
    with pytest.raises(ServiceValidationError) as err:
        await _cancel(hass)
    assert err.value.translation_key == "nothing_to_cancel"
    assert camera.count("DELETE", DOWNLOAD) == 0


async def test_switch_answers_a_request_when_the_install_ends() -> None:
    """A request pending when the download ends is answered, never left hanging."""
    switch = CancelSwitch()
    switch.supported = True
    with pytest.raises(InstallRefusedError) as idle:
        await switch.request()  # no download runs (a file upload, a reboot...)
    assert idle.value.key == "cancel_not_possible"
    switch.answer()  # nothing pending: nothing to answer
    switch.arm()
    pending = asyncio.ensure_future(switch.request())
    again = asyncio.ensure_future(switch.request())  # asked twice: one answer
    await asyncio.sleep(0)
    assert switch.wanted
    switch.answer()
    await asyncio.gather(pending, again)
    assert not switch.wanted

    pending = asyncio.ensure_future(switch.request())
    await asyncio.sleep(0)
    switch.disarm(finished=False)  # the install failed or was unloaded
    with pytest.raises(InstallRefusedError) as err:
        await pending
    assert err.value.key == "cancel_not_possible"

    switch.arm()
    pending = asyncio.ensure_future(switch.request())
    await asyncio.sleep(0)
    switch.disarm(finished=True)  # the package completed: the flash starts
    with pytest.raises(InstallRefusedError) as late:
        await pending
    assert late.value.key == "cancel_too_late"
    # Asked again while the camera flashes: refused at once, with the same reason.
    with pytest.raises(InstallRefusedError) as again:
        await switch.request()
    assert again.value.key == "cancel_too_late"
    # The install ended: nothing to cancel any more, not "too late".
    switch.reset()
    with pytest.raises(InstallRefusedError) as ended:
        await switch.request()
    assert ended.value.key == "cancel_not_possible"
