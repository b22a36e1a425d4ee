"""Polls of many entries are spread over the poll interval, each at a stable phase."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
import math

from homeassistant.core import HomeAssistant

from custom_components.firmware_hub.coordinator import FirmwareCoordinator
from custom_components.firmware_hub.kinds.hikvision.protocol.client import (
    PATH_DEVICE_INFO,
)
from custom_components.firmware_hub.poll_spread import next_poll, poll_phase

from .helpers import hikvision_entry, setup_entry
from .simulators.isapi import IsapiCameraSimulator

INTERVAL = 60.0


def _scheduled_at(coordinator: FirmwareCoordinator) -> float:
    """Return the loop time the coordinator's poll timer fires at."""
    cancel = coordinator._unsub_refresh
    assert isinstance(cancel, Callable)
    handle = getattr(cancel, "__self__", None)
    assert handle is not None
    when: float = handle.when()
    return when


def _phase_of(when: float, interval: float) -> float:
    return (when % interval) / interval


def test_phase_is_stable_and_in_range() -> None:
    """The same entry id always gets the same phase, in [0, 1)."""
    ids = [f"01JD{n:022d}" for n in range(200)]
    phases = [poll_phase(entry_id) for entry_id in ids]
    assert phases == [poll_phase(entry_id) for entry_id in ids]
    assert all(0.0 <= phase < 1.0 for phase in phases)
    assert len(set(phases)) == len(ids)


def test_phases_spread_over_the_interval() -> None:
    """1,000 entries fill each tenth of the interval with about a tenth of them."""
    phases = [poll_phase(f"01JD{n:022d}") for n in range(1000)]
    tenths = Counter(int(phase * 10) for phase in phases)
    assert sorted(tenths) == list(range(10))
    assert all(60 <= count <= 140 for count in tenths.values()), tenths


def test_next_poll_keeps_the_phase() -> None:
    """On phase, the next poll is one interval later; off phase, 0.5-1.5 later."""
    phase = 0.25
    on_phase = 3 * INTERVAL + phase * INTERVAL
    assert next_poll(on_phase, INTERVAL, phase) == on_phase + INTERVAL
    # A poll that fired on phase and took a while still keeps the next one.
    assert next_poll(on_phase + 2.0, INTERVAL, phase) == on_phase + INTERVAL
    for now in (on_phase - 29.0, on_phase + 29.0, on_phase + 31.0, 1000.123):
        scheduled = next_poll(now, INTERVAL, phase)
        assert INTERVAL / 2 <= scheduled - now <= INTERVAL * 1.5
        assert math.isclose(_phase_of(scheduled, INTERVAL), phase, abs_tol=1e-9)


async def test_entries_poll_at_their_own_phase(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Two cameras set up together are scheduled at their entries' phases."""
    other = IsapiCameraSimulator(serial_number="DS-OTHER-0001")
    await other.start()
    try:
        first, second = hikvision_entry(camera), hikvision_entry(other)
        await setup_entry(hass, first)
        await setup_entry(hass, second)
        coordinators = [
            first.runtime_data.coordinator,
            second.runtime_data.coordinator,
        ]
        for coordinator in coordinators:
            interval = coordinator.update_interval
            assert interval is not None
            seconds = interval.total_seconds()
            assert coordinator.poll_phase == poll_phase(
                coordinator.config_entry.entry_id
            )
            assert math.isclose(
                _phase_of(_scheduled_at(coordinator), seconds),
                coordinator.poll_phase,
                abs_tol=1e-6,
            )
        first_when, second_when = (_scheduled_at(c) for c in coordinators)
        assert first_when != second_when
        # A refresh (manual or polled) reschedules on the same phase.
        camera.reset_stats()
        await coordinators[0].async_refresh()
        assert camera.request_count == 1
        assert math.isclose(
            _phase_of(_scheduled_at(coordinators[0]), seconds),
            coordinators[0].poll_phase,
            abs_tol=1e-6,
        )
        for entry in (first, second):
            assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await other.stop()


async def test_timer_polls_the_device(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The rescheduled timer really polls: the camera is read, then read again."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    coordinator = entry.runtime_data.coordinator
    coordinator.update_interval = timedelta(seconds=0.2)  # shortened timing only
    coordinator._schedule_refresh()
    camera.reset_stats()
    # The timer is only set between polls: wait (without letting Home Assistant
    # settle, which could run the next poll) until two polls ran and the next one
    # is scheduled, then read it in the same step.
    async with asyncio.timeout(10):
        while not (
            camera.count("GET", PATH_DEVICE_INFO) >= 2
            and coordinator._unsub_refresh is not None
        ):
            await asyncio.sleep(0.01)
    scheduled = _scheduled_at(coordinator)
    assert camera.unauthorized_count == 0
    assert math.isclose(
        _phase_of(scheduled, 0.2),
        coordinator.poll_phase,
        abs_tol=1e-6,
    )
    assert await hass.config_entries.async_unload(entry.entry_id)
