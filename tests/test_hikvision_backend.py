"""Hikvision backend: version comparison and install edge cases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.firmware_hub.core.models import Phase
from custom_components.firmware_hub.core.versions import (
    is_newer,
    parse_version,
    same_version,
)
from custom_components.firmware_hub.kinds.hikvision.backend import (
    HikvisionBackend,
    HikvisionFacts,
    markdown_notes,
)

from .helpers import hikvision_entry, setup_entry
from .simulators.isapi import IsapiCameraSimulator, OnlineUpgrade

FLASH = "/ISAPI/System/onlineUpgrade/upgradeWithoutDownload"
VERSION = "/ISAPI/System/onlineUpgrade/version"


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("V5.7.18", "V5.7.18 build 240826", True),
        ("V5.7.18 build 240826", "5.7.18_build240826", True),
        ("V5.7.18 build 240826", "V5.7.18 build 240901", False),
        ("V5.7.18", "V5.7.19", False),
        ("custom-fw", "CUSTOM-FW ", True),
        ("custom-fw", "V5.7.18", False),
    ],
)
def test_same_version(first: str, second: str, same: bool) -> None:
    """Versions compare by numbers, and by build only when both have one."""
    assert same_version(first, second) is same
    assert same_version(second, first) is same


@pytest.mark.parametrize(
    ("offer", "installed", "newer"),
    [
        ("V5.7.20 build 250110", "V5.7.18 build 240826", True),
        ("V5.7.18 build 240901", "V5.7.18 build 240826", True),
        ("V5.7.18 build 240826", "V5.7.18", False),
        ("V5.7.9", "V5.7.18", False),
        ("V4.62.210", "V5.0.0", False),
        ("beta", "V5.7.18", True),
        ("V5.7.18", "V5.7.18", False),
    ],
)
def test_is_newer(offer: str, installed: str, newer: bool) -> None:
    """An offer is newer by numbers, then by build; unparsable ones when different."""
    assert is_newer(offer, installed) is newer


def test_parse_version() -> None:
    """Numbers and build are found wherever the vendor puts them."""
    parsed = parse_version("V5.7.18 build 240826")
    assert parsed is not None
    assert parsed.numbers == (5, 7, 18)
    assert parsed.build == "240826"
    assert parse_version("no digits") is None


async def test_install_on_unsupported_camera_refused(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """An unsupported camera never gets a download request."""
    camera.online_upgrade = OnlineUpgrade.NOT_SUPPORTED
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    with pytest.raises(HomeAssistantError) as err:
        await entry.runtime_data.coordinator.async_install(None)
    assert err.value.translation_key == "not_supported"
    assert camera.count("PUT", "/ISAPI/System/onlineUpgrade/downloadPackage") == 0


async def test_camera_busy_while_downloading(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A short outage during the download is waited out; a long one fails safely."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    coordinator = entry.runtime_data.coordinator
    camera.download_steps = 1_000_000
    task = hass.async_create_task(coordinator.async_install(None))
    while camera.download_status != "downloading":
        await asyncio.sleep(0.01)
    await camera.go_offline()
    await asyncio.sleep(0.03)  # a few refused polls
    await camera.go_online()
    camera.download_steps = 1
    await task
    assert camera.firmware_version == "V5.7.20"
    assert not camera.upgrade_before_download_finished

    camera.offer_version = "V5.7.21 build 250601"
    await coordinator.async_check()
    camera.download_steps = 1_000_000
    task = hass.async_create_task(coordinator.async_install(None))
    while camera.download_status != "downloading":
        await asyncio.sleep(0.01)
    await camera.go_offline()
    with pytest.raises(HomeAssistantError) as err:
        await task
    assert err.value.translation_key == "device_lost"
    assert (
        camera.count("PUT", "/ISAPI/System/onlineUpgrade/upgradeWithoutDownload") == 1
    )


async def test_password_changed_during_install(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Credentials refused mid-install stop it before flashing, with a clear error."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    coordinator = entry.runtime_data.coordinator
    camera.download_steps = 1_000_000
    task = hass.async_create_task(coordinator.async_install(None))
    while camera.download_status != "downloading":
        await asyncio.sleep(0.01)
    camera.password = "changed"
    with pytest.raises(HomeAssistantError) as err:
        await task
    assert err.value.translation_key == "install_auth_failed"
    assert (
        camera.count("PUT", "/ISAPI/System/onlineUpgrade/upgradeWithoutDownload") == 0
    )


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) until `condition()` holds, while an install task runs."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


async def test_download_speed_and_time_left_while_downloading(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The state carries the camera's speed and time left; a pause is shown, waited."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    coordinator = entry.runtime_data.coordinator

    def facts() -> HikvisionFacts:
        assert isinstance(coordinator.data.facts, HikvisionFacts)
        return coordinator.data.facts

    assert facts().download_speed is None  # nothing downloads
    camera.download_steps = 1_000_000
    task = hass.async_create_task(coordinator.async_install(None))
    await _until(lambda: facts().download_speed is not None)
    assert facts().download_speed == 4.2
    assert facts().remaining_seconds == 18  # 78.4 MB at 4.2 MB/s
    assert facts().download_paused is False

    camera.pause_download()
    await _until(lambda: facts().download_paused)
    assert facts().download_speed is None
    assert facts().remaining_seconds is None
    assert coordinator.data.phase is Phase.DOWNLOADING  # waited, not failed
    assert camera.count("PUT", FLASH) == 0

    camera.resume_download()
    camera.download_steps = 1
    await task
    assert camera.firmware_version == "V5.7.20"
    assert facts() == HikvisionFacts(online_upgrade=True)  # nothing downloads now


async def test_check_now_asks_the_camera_the_periodic_check_does_not(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """`now` (the user's check) sends ?check=true; a scheduled check reads the cache."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    backend = entry.runtime_data.coordinator.backend
    assert isinstance(backend, HikvisionBackend)
    camera.reset_stats()
    await backend.async_refresh(check=True)
    await backend.async_refresh(check=True, now=True)
    assert [r.query for r in camera.requests if r.path == VERSION] == [
        "",
        "check=true",
    ]
    # The Check for update button is the user's check: the camera asks now.
    camera.reset_stats()
    await hass.services.async_call(
        "button",
        "press",
        {"entity_id": "button.camera_1_check_for_update"},
        blocking=True,
    )
    assert [r.query for r in camera.requests if r.path == VERSION] == ["check=true"]


async def test_failed_check_says_why_without_vendor_codes(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The camera cannot ask its server: a sentence, the code in diagnostics."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    camera.version_check_fails = True
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "button",
            "press",
            {"entity_id": "button.camera_1_check_for_update"},
            blocking=True,
        )
    assert err.value.translation_key == "check_failed"
    assert "deviceError" not in str(err.value)
    assert "statusCode" not in str(err.value)
    backend = entry.runtime_data.coordinator.backend
    assert "deviceError" in backend.diagnostics()["version_error"]
    # The last offer is kept.
    assert hass.states.get("update.camera_1_firmware").state == "on"


@pytest.mark.parametrize(
    ("changelog", "notes"),
    [
        (
            "Fixed RTSP stability.\nImproved night image.",
            "- Fixed RTSP stability.\n- Improved night image.",
        ),
        ("One line only.", "One line only."),
        ("- Already a list\r\n\r\n- of two", "- Already a list\n- of two"),
        (" \n ", None),
        (None, None),
    ],
)
def test_change_log_keeps_its_line_breaks(
    changelog: str | None, notes: str | None
) -> None:
    """Several lines become a Markdown list (Markdown would join them)."""
    assert markdown_notes(changelog) == notes
