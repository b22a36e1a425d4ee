"""Fleet upgrades: the install queue behind "Update all" and the staged rollout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN, SERVICE_INSTALL
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.firmware_hub.const import (
    CONF_KIND,
    CONF_MAX_CONCURRENT_INSTALLS,
    DOMAIN,
    EVENT_ROLLOUT_FINISHED,
    Kind,
)

from .helpers import Recorder, hikvision_input, setup_entry
from .simulators.isapi import Failure, IsapiCameraSimulator

CAMERAS = 10
NEW = "V5.7.20"


@pytest.fixture
async def fleet(socket_enabled: None) -> AsyncGenerator[list[IsapiCameraSimulator]]:
    """Ten cameras with an update on offer."""
    cameras = [
        IsapiCameraSimulator(serial_number=f"FLEET{index:04d}", download_steps=3)
        for index in range(CAMERAS)
    ]
    for camera in cameras:
        await camera.start()
    yield cameras
    for camera in cameras:
        await camera.stop()


async def _set_up(
    hass: HomeAssistant, cameras: list[IsapiCameraSimulator], **options: Any
) -> list[MockConfigEntry]:
    entries = []
    for index, camera in enumerate(cameras):
        entry = MockConfigEntry(
            domain=DOMAIN,
            title=f"Camera {index}",
            unique_id=camera.serial_number,
            data={CONF_KIND: Kind.HIKVISION.value, **hikvision_input(camera)},
            options=options,
        )
        await setup_entry(hass, entry)
        entries.append(entry)
    return entries


def _most_busy_at_once(cameras: list[IsapiCameraSimulator]) -> int:
    """Return how many cameras were between download start and reboot end at once."""
    edges: list[tuple[float, int]] = []
    for camera in cameras:
        times = {name: time for time, name in camera.events}
        if "download_started" in times:
            edges.append((times["download_started"], 1))
            edges.append((times.get("reboot_finished", float("inf")), -1))
    busy = most = 0
    for _time, step in sorted(edges):
        busy += step
        most = max(most, busy)
    return most


def _update(index: int) -> str:
    return f"update.camera_{index}_firmware"


async def test_update_all_runs_through_the_queue(
    hass: HomeAssistant, fleet: list[IsapiCameraSimulator]
) -> None:
    """Install pressed on all ten at once: never more than two busy, the rest queued."""
    await _set_up(hass, fleet)
    recorder = Recorder(hass)
    await hass.services.async_call(
        UPDATE_DOMAIN,
        SERVICE_INSTALL,
        {ATTR_ENTITY_ID: [_update(index) for index in range(CAMERAS)]},
        blocking=True,
    )
    await hass.async_block_till_done()
    recorder.unsub()
    assert all(camera.firmware_version == NEW for camera in fleet)
    assert _most_busy_at_once(fleet) == 2
    statuses = [f"sensor.camera_{index}_firmware_status" for index in range(CAMERAS)]
    queued = [entity for entity in statuses if "queued" in recorder.values(entity)]
    assert len(queued) >= CAMERAS - 2
    queued_update = [
        state
        for state in recorder.states
        if state.entity_id.startswith("update.")
        and state.attributes.get("in_progress")
        and state.attributes.get("update_percentage") is None
    ]
    assert queued_update


async def test_the_smallest_limit_of_any_device_applies(
    hass: HomeAssistant, fleet: list[IsapiCameraSimulator]
) -> None:
    """One device set to one install at a time makes the whole site go one by one."""
    entries = await _set_up(hass, fleet[:4])
    hass.config_entries.async_update_entry(
        entries[0], options={CONF_MAX_CONCURRENT_INSTALLS: 1}
    )
    await hass.async_block_till_done()
    await hass.services.async_call(
        UPDATE_DOMAIN,
        SERVICE_INSTALL,
        {ATTR_ENTITY_ID: [_update(index) for index in range(4)]},
        blocking=True,
    )
    assert _most_busy_at_once(fleet[:4]) == 1


async def _queue_behind_a_download(
    hass: HomeAssistant, cameras: list[IsapiCameraSimulator]
) -> list[asyncio.Task[None]]:
    """Install on every camera (one at a time): the first downloads, the rest wait.

    Returns the installs once the others show `queued`; the first camera's
    download ends when the test sets its `download_steps` low again.
    """
    cameras[0].download_steps = 1_000_000
    installs = [
        hass.async_create_task(
            hass.services.async_call(
                UPDATE_DOMAIN,
                SERVICE_INSTALL,
                {ATTR_ENTITY_ID: _update(index)},
                blocking=True,
            )
        )
        for index in range(len(cameras))
    ]
    async with asyncio.timeout(5):
        while not (
            cameras[0].download_status == "downloading"
            and all(
                hass.states.get(f"sensor.camera_{index}_firmware_status").state
                == "queued"
                for index in range(1, len(cameras))
            )
        ):
            await asyncio.sleep(0.01)
    return installs


async def test_cancel_queued_installs(
    hass: HomeAssistant,
    fleet: list[IsapiCameraSimulator],
    device_registry: dr.DeviceRegistry,
) -> None:
    """A queued install is cancelled before anything reaches its camera."""
    entries = await _set_up(hass, fleet[:3], **{CONF_MAX_CONCURRENT_INSTALLS: 1})
    installs = await _queue_behind_a_download(hass, fleet[:3])
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, entries[2].unique_id), entries[2].entry_id
    )
    assert device is not None
    response = await hass.services.async_call(
        DOMAIN,
        "cancel_queued_installs",
        {"device_id": device.id},
        blocking=True,
        return_response=True,
    )
    assert response == {"cancelled": [device.id]}
    with pytest.raises(HomeAssistantError) as err:
        await installs[2]
    assert err.value.translation_key == "install_cancelled"
    assert hass.states.get("sensor.camera_2_firmware_status").state == "idle"
    assert fleet[2].count("PUT", "/ISAPI/System/onlineUpgrade/downloadPackage") == 0
    fleet[0].download_steps = 1
    await asyncio.gather(installs[0], installs[1])
    assert [camera.firmware_version for camera in fleet[:3]] == [
        NEW,
        NEW,
        "V5.7.18",
    ]


async def test_cancel_install_of_a_queued_install(
    hass: HomeAssistant, fleet: list[IsapiCameraSimulator]
) -> None:
    """`cancel_install` on a Firmware entity whose install waits: it leaves the queue."""
    await _set_up(hass, fleet[:2], **{CONF_MAX_CONCURRENT_INSTALLS: 1})
    installs = await _queue_behind_a_download(hass, fleet[:2])
    await hass.services.async_call(
        DOMAIN, "cancel_install", {ATTR_ENTITY_ID: _update(1)}, blocking=True
    )
    with pytest.raises(HomeAssistantError) as err:
        await installs[1]
    assert err.value.translation_key == "install_cancelled"
    assert fleet[1].count("PUT", "/ISAPI/System/onlineUpgrade/downloadPackage") == 0
    # The running one is not touched by the other's cancel.
    assert fleet[0].count("DELETE", "/ISAPI/System/onlineUpgrade/downloadPackage") == 0
    fleet[0].download_steps = 1
    await installs[0]
    assert [camera.firmware_version for camera in fleet[:2]] == [NEW, "V5.7.18"]


async def _rollout(hass: HomeAssistant, **data: Any) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, "install_updates", data, blocking=True, return_response=True
    )
    assert response is not None
    return dict(response)


async def test_rollout_stops_when_the_canary_fails(
    hass: HomeAssistant, fleet: list[IsapiCameraSimulator]
) -> None:
    """The canary's flash fails: nothing else starts, and the summary says so."""
    await _set_up(hass, fleet[:4])
    fleet[0].failures.add(Failure.WRITE_FLASH_ERROR)  # "Camera 0" sorts first
    finished = async_capture_events(hass, EVENT_ROLLOUT_FINISHED)
    summary = await _rollout(hass, canary=1, max_parallel=3)
    results = {line["name"]: line["result"] for line in summary["devices"]}
    assert results == {
        "Camera 0": "failed",
        "Camera 1": "not_started",
        "Camera 2": "not_started",
        "Camera 3": "not_started",
    }
    assert summary["totals"] == {
        "installed": 0,
        "failed": 1,
        "skipped": 0,
        "not_started": 3,
    }
    assert summary["devices"][0]["error"]
    assert [
        camera.count("PUT", "/ISAPI/System/onlineUpgrade/downloadPackage")
        for camera in fleet[:4]
    ] == [1, 0, 0, 0]
    await hass.async_block_till_done()
    assert finished[0].data == summary


async def test_rollout_healthy_canary_then_a_failure(
    hass: HomeAssistant, fleet: list[IsapiCameraSimulator]
) -> None:
    """Canary fine, then one fails with stop_on_failure: the rest is not started."""
    await _set_up(hass, fleet[:5])
    fleet[1].failures.add(Failure.DOWNLOAD_FAILED)
    summary = await _rollout(hass, canary=1, max_parallel=1)
    results = [line["result"] for line in summary["devices"]]
    assert results == [
        "installed",
        "failed",
        "not_started",
        "not_started",
        "not_started",
    ]
    assert summary["devices"][0]["to_version"] == "V5.7.20 build 250110"
    assert [camera.firmware_version for camera in fleet[:5]] == [
        NEW,
        "V5.7.18",
        "V5.7.18",
        "V5.7.18",
        "V5.7.18",
    ]


async def test_rollout_dry_run_and_skips(
    hass: HomeAssistant, fleet: list[IsapiCameraSimulator]
) -> None:
    """A dry run sends nothing; devices without an update are skipped."""
    fleet[2].offer_version = None
    await _set_up(hass, fleet[:3])
    fleet[2].reset_stats()
    before = [camera.request_count for camera in fleet[:3]]
    summary = await _rollout(hass, dry_run=True)
    assert summary["dry_run"] is True
    assert [(line["result"], line["error"]) for line in summary["devices"]] == [
        ("not_started", None),
        ("not_started", None),
        ("skipped", "no_update"),
    ]
    assert [camera.request_count for camera in fleet[:3]] == before

    summary = await _rollout(hass, kinds=["onvif"])
    assert summary["devices"] == []


async def test_rollout_targets_a_device(
    hass: HomeAssistant,
    fleet: list[IsapiCameraSimulator],
    device_registry: dr.DeviceRegistry,
) -> None:
    """Only the targeted devices are installed; the rest of the fleet is untouched."""
    entries = await _set_up(hass, fleet[:3])
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, entries[1].unique_id), entries[1].entry_id
    )
    assert device is not None
    summary = await _rollout(hass, device_id=device.id, canary=0)
    assert [line["name"] for line in summary["devices"]] == ["Camera 1"]
    assert summary["totals"]["installed"] == 1
    assert [camera.firmware_version for camera in fleet[:3]] == [
        "V5.7.18",
        NEW,
        "V5.7.18",
    ]


async def test_queue_survives_reloading_an_idle_device(
    hass: HomeAssistant, fleet: list[IsapiCameraSimulator]
) -> None:
    """Reloading a device that is not installing leaves the queue working."""
    entries = await _set_up(hass, fleet[:3], **{CONF_MAX_CONCURRENT_INSTALLS: 1})
    fleet[0].download_steps = 1_000_000
    installs = [
        hass.async_create_task(
            hass.services.async_call(
                UPDATE_DOMAIN,
                SERVICE_INSTALL,
                {ATTR_ENTITY_ID: _update(index)},
                blocking=True,
            )
        )
        for index in (0, 1)
    ]
    async with asyncio.timeout(5):
        while hass.states.get("sensor.camera_1_firmware_status").state != "queued":
            await asyncio.sleep(0.01)
    assert await hass.config_entries.async_reload(entries[2].entry_id)
    assert hass.states.get("sensor.camera_1_firmware_status").state == "queued"
    fleet[0].download_steps = 1
    await asyncio.gather(*installs)
    assert [camera.firmware_version for camera in fleet[:3]] == [NEW, NEW, "V5.7.18"]
    assert _most_busy_at_once(fleet[:2]) == 1
