"""Hikvision at scale: polls driven by the coordinators' own timers (``scripts/bench hikvision``).

``bench_hikvision.py`` times rounds in which every coordinator refreshes at once
(``asyncio.gather``). Home Assistant does not poll that way: each coordinator's timer
fires its own refresh. Here the timers do the work, over two fleets:

- ``FARM_CAMERAS`` (1,000) cameras in another process (``benchmarks/isapi_farm.py``);
- ``LOCAL_CAMERAS`` (200) cameras in Home Assistant's own process and event loop, as
  a user's test setup runs them (their CPU counts as the loop's).

All entries are set up at once (timed; resident memory growth per entry, after a
garbage collection, is the memory per entry). Then each coordinator's update interval
is shortened to ``INTERVAL`` seconds (it stands for the real minute: the same number
of polls ``60 / INTERVAL`` times as dense) and every timer is rescheduled in one go,
as after Home Assistant's start, under two schedules:

- ``stock``: Home Assistant's ``DataUpdateCoordinator._schedule_refresh``, which fires
  at ``int(loop.time()) + random 0.05-0.5 s + interval``: every entry within the same
  0.45 s of each interval;
- ``spread``: the integration's (``poll_spread``): each entry at its own phase.

For ``ROUNDS`` consecutive windows of ``INTERVAL`` seconds a monitor sleeping 1 ms
records the longest event-loop stall. A round is ``cameras`` consecutive polls (in
the order they started): its time runs from the first one's start to the last one's
end. Poll duration is one refresh's start to end (queueing in the loop shows there).

Per-refresh memory: with ``tracemalloc`` tracing, ``TRACED_REFRESHES`` refreshes run
one after another; the traced peak above the level before each refresh is its
transient memory, and the growth after all of them the memory a refresh keeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
import functools
import gc
import os
from pathlib import Path
import statistics
import tracemalloc
from typing import Any

import aiohttp
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]

from custom_components.firmware_hub.const import DOMAIN
from custom_components.firmware_hub.coordinator import FirmwareCoordinator
from custom_components.firmware_hub.core.models import FirmwareState
from tests.simulators.isapi import IsapiCameraSimulator, start_many

from .bench_hikvision import (
    TARGET_ROUND_SECONDS,
    TARGET_STALL_MS,
    Farm,
    Timing,
    coordinator_of,
    follow_tasks,
    hikvision_entry,
    say,
    timed,
)
from .report import record

BENCH = "hikvision"
FARM_CAMERAS = 1000
LOCAL_CAMERAS = 200
INTERVAL = 1.5
"""Seconds between a coordinator's polls while measuring (the real interval is 60)."""
ROUNDS = 5
TRACED_REFRESHES = 50
TARGET_SETUP_SECONDS = 10.0
TARGET_KIB_PER_ENTRY = 150.0
SCHEDULES = ("stock", "spread")
FARM_LABEL = "farm process"


def _rss() -> int:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass(slots=True)
class Polls:
    """(start, end) loop times of every poll while recording."""

    spans: list[tuple[float, float]] = field(default_factory=list)

    def watch(self, coordinator: FirmwareCoordinator) -> None:
        """Record the coordinator's refreshes (wraps its update method)."""
        update = coordinator._async_update_data  # noqa: SLF001
        loop = asyncio.get_running_loop()

        async def recorded() -> FirmwareState:
            start = loop.time()
            try:
                return await update()
            finally:
                self.spans.append((start, loop.time()))

        coordinator._async_update_data = recorded  # type: ignore[method-assign]  # noqa: SLF001

    def rounds(self, size: int) -> list[float]:
        """Return each complete round's time: ``size`` polls in start order."""
        spans = sorted(self.spans)
        return [
            max(end for _, end in spans[first : first + size]) - spans[first][0]
            for first in range(0, len(spans) - size + 1, size)
        ]


def use_schedule(coordinator: FirmwareCoordinator, schedule: str) -> None:
    """Make ``coordinator`` poll every INTERVAL under ``schedule``; reschedule now."""
    if schedule == "stock":
        coordinator._microsecond = coordinator._random_microsecond  # noqa: SLF001
        coordinator._schedule_refresh = functools.partial(  # type: ignore[method-assign]  # noqa: SLF001
            DataUpdateCoordinator._schedule_refresh,  # noqa: SLF001
            coordinator,
        )
    else:
        with contextlib.suppress(AttributeError):
            del coordinator._schedule_refresh  # noqa: SLF001
    coordinator.update_interval = timedelta(seconds=INTERVAL)
    coordinator._schedule_refresh()  # noqa: SLF001


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """What one schedule measured."""

    windows: list[Timing]
    rounds: list[float]
    poll_seconds: list[float]


async def run_schedule(
    coordinators: list[FirmwareCoordinator], schedule: str
) -> ScheduleResult:
    """Poll under ``schedule`` for ROUNDS windows; return what was measured."""
    polls = Polls()
    for coordinator in coordinators:
        use_schedule(coordinator, schedule)
    await asyncio.sleep(INTERVAL)  # the first polls land; the schedule settles
    for coordinator in coordinators:
        polls.watch(coordinator)
    windows = [(await timed(_sleep_interval))[1] for _ in range(ROUNDS)]
    for coordinator in coordinators:
        del coordinator._async_update_data  # noqa: SLF001
    failed = [c for c in coordinators if not c.last_update_success]
    if failed:
        raise RuntimeError(
            f"{schedule}: {len(failed)} polls failed, e.g. {failed[0].last_exception!r}"
        )
    return ScheduleResult(
        windows=windows,
        rounds=polls.rounds(len(coordinators)),
        poll_seconds=[end - start for start, end in polls.spans],
    )


async def _sleep_interval() -> None:
    await asyncio.sleep(INTERVAL)


@dataclass(frozen=True, slots=True)
class Traced:
    """What ``tracemalloc`` saw of refreshes (medians, bytes)."""

    peak: int
    """Transient: the traced peak above the level before one refresh."""
    kept: int
    """Traced growth over all the sample's refreshes, per refresh."""
    kept_by_file: list[str]
    """Where the growth is (the largest three source files)."""
    bare_get: int
    """Transient peak of one bare aiohttp GET, for comparison."""


async def _peak_of(body: Callable[[], Awaitable[object]]) -> int:
    level = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    await body()
    return tracemalloc.get_traced_memory()[1] - level


async def traced_refresh(coordinators: list[FirmwareCoordinator], port: int) -> Traced:
    """Trace ``TRACED_REFRESHES`` refreshes and as many bare GETs.

    The sample is refreshed once while tracing before it is measured, so that what
    a refresh replaces (the last state, the parsed document) is traced on both sides.
    A bare GET is one aiohttp request on its own (answered 401, no credentials):
    what the transport allocates whatever the client does with the answer.
    """
    sample = coordinators[:TRACED_REFRESHES]
    for coordinator in sample:  # warm: parsed documents cached, nonces known
        await coordinator.async_refresh()
    url = f"http://127.0.0.1:{port}/ISAPI/System/deviceInfo"
    async with aiohttp.ClientSession() as session:

        async def bare() -> None:
            async with session.get(url) as resp:
                await resp.read()

        await bare()  # warm: connection open
        gc.collect()
        tracemalloc.start()
        try:
            for coordinator in sample:
                await coordinator.async_refresh()
            gc.collect()
            before = tracemalloc.take_snapshot()
            level = tracemalloc.get_traced_memory()[0]
            peaks = [await _peak_of(c.async_refresh) for c in sample]
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - level
            growth = tracemalloc.take_snapshot().compare_to(before, "filename")
            bare_peaks = [await _peak_of(bare) for _ in sample]
        finally:
            tracemalloc.stop()
    return Traced(
        peak=int(statistics.median(peaks)),
        kept=kept // len(sample),
        kept_by_file=[
            f"{Path(stat.traceback[0].filename).name} {stat.size_diff // len(sample)} B"
            for stat in growth[:3]
        ],
        bare_get=int(statistics.median(bare_peaks)),
    )


async def set_up(
    hass: HomeAssistant, cameras: list[dict[str, Any]]
) -> tuple[list[MockConfigEntry], Timing, float]:
    """Set up one entry per camera at once; return entries, timing, bytes per entry."""
    entries = [
        hikvision_entry(
            port=camera["port"],
            serial=camera["serial"],
            password=camera["password"],
            title=f"Camera {number}",
        )
        for number, camera in enumerate(cameras, start=1)
    ]
    gc.collect()
    before = _rss()
    for entry in entries:
        entry.add_to_hass(hass)

    async def setup() -> bool:
        done = await async_setup_component(hass, DOMAIN, {})
        await hass.async_block_till_done()
        return done

    done, timing = await timed(setup)
    gc.collect()
    per_entry = (_rss() - before) / len(entries)
    not_loaded = [e for e in entries if e.state is not ConfigEntryState.LOADED]
    if not done or not_loaded:
        raise RuntimeError(f"{len(not_loaded)} of {len(entries)} entries did not load")
    return entries, timing, per_entry


@contextlib.asynccontextmanager
async def local_cameras(count: int) -> AsyncIterator[list[dict[str, Any]]]:
    """Run ``count`` simulated cameras in this process and event loop."""
    sims: list[IsapiCameraSimulator] = await start_many(count, host="127.0.0.1")
    try:
        yield [
            {
                "port": sim.port,
                "serial": sim.serial_number,
                "password": sim.password,
            }
            for sim in sims
        ]
    finally:
        await asyncio.gather(*(sim.stop() for sim in sims))


async def measure(
    hass: HomeAssistant, cameras: list[dict[str, Any]], label: str
) -> None:
    """Set up, poll under both schedules, trace refreshes, report as ``label``."""
    count = len(cameras)
    entries, setup, per_entry = await set_up(hass, cameras)
    coordinators = [coordinator_of(entry) for entry in entries]
    await follow_tasks(coordinators)
    results = {
        schedule: await run_schedule(coordinators, schedule) for schedule in SCHEDULES
    }
    traced = await traced_refresh(coordinators, cameras[0]["port"])
    unloaded = await asyncio.gather(
        *(hass.config_entries.async_unload(e.entry_id) for e in entries)
    )
    if not all(unloaded):
        raise RuntimeError("some entries did not unload")
    await hass.async_block_till_done()
    report(label, count, setup, per_entry, results, traced)


def report(
    label: str,
    count: int,
    setup: Timing,
    per_entry: float,
    results: dict[str, ScheduleResult],
    traced: Traced,
) -> None:
    """Print and record one fleet's numbers."""
    say()
    say(f"[{BENCH}] {count} cameras ({label}), timers at {INTERVAL} s intervals")
    load = os.getloadavg()[0]
    say(f"  machine load (1 min average, 2 cores is 2.0): {load:.2f}")
    record(BENCH, f"machine load after the {label} run (1 min)", load)
    say(
        f"  setup: {setup.seconds:.2f} s (CPU {setup.cpu_seconds:.2f} s), stall "
        f"{setup.stall_ms:.0f} ms; RSS {per_entry / 1024:.1f} KiB per entry"
    )
    for schedule, result in results.items():
        for number, window in enumerate(result.windows, start=1):
            say(
                f"  {schedule} window {number}: stall {window.stall_ms:.1f} ms, "
                f"GC {window.gc_ms:.1f} ms, CPU {window.cpu_seconds:.2f} s"
            )
        say(f"  {schedule} rounds: {[f'{r:.2f}s' for r in result.rounds]}")
    say(
        f"  tracemalloc per refresh: {traced.peak / 1024:.1f} KiB peak, {traced.kept}"
        f" B kept ({', '.join(traced.kept_by_file)}); bare GET"
        f" {traced.bare_get / 1024:.1f} KiB peak"
    )
    stall_target = f"< {TARGET_STALL_MS:.0f} ms"
    for schedule, result in results.items():
        worst = max(w.stall_ms for w in result.windows)
        record(
            BENCH,
            f"{count} {label}, {schedule}: stall (worst of {ROUNDS} windows)",
            worst,
            "ms",
            target=TARGET_STALL_MS if schedule == "spread" else None,
            target_text=stall_target if schedule == "spread" else None,
            better=_below,
            fmt=".1f",
        )
        record(
            BENCH,
            f"{count} {label}, {schedule}: round (slowest)",
            max(result.rounds, default=float("nan")),
            "s",
            target=TARGET_ROUND_SECONDS if schedule == "spread" else None,
            target_text=f"< {TARGET_ROUND_SECONDS:.0f} s"
            if schedule == "spread"
            else None,
            better=_below,
            fmt=".2f",
        )
        record(
            BENCH,
            f"{count} {label}, {schedule}: poll duration (median / max)",
            statistics.median(result.poll_seconds) * 1000,
            f"/ {max(result.poll_seconds) * 1000:.0f} ms",
            fmt=".1f",
        )
    farm = label == FARM_LABEL
    record(
        BENCH,
        f"setup of {count} entries ({label})",
        setup.seconds,
        "s",
        target=TARGET_SETUP_SECONDS if farm else None,
        target_text=f"< {TARGET_SETUP_SECONDS:.0f} s" if farm else None,
        better=_below,
    )
    if farm:  # in process, the simulators' memory and freed heap blur the figure
        record(
            BENCH,
            f"memory per entry, RSS growth over setup ({count})",
            per_entry / 1024,
            "KiB",
            target=TARGET_KIB_PER_ENTRY,
            target_text=f"< {TARGET_KIB_PER_ENTRY:.0f} KiB",
            better=_below,
            fmt=".1f",
        )
    record(
        BENCH,
        f"refresh: transient peak / kept, tracemalloc ({label})",
        traced.peak / 1024,
        f"KiB / {traced.kept} B",
        fmt=".1f",
    )
    record(
        BENCH,
        f"bare aiohttp GET: transient peak, tracemalloc ({label})",
        traced.bare_get / 1024,
        "KiB",
        fmt=".1f",
    )


def _below(value: float, target: float) -> bool:
    return value < target


async def _with_farm(
    count: int, body: Callable[[list[dict[str, Any]]], Awaitable[None]]
) -> None:
    async with Farm.running(count) as farm:
        await body(farm.cameras)


async def test_scheduled_polls_farm(hass: HomeAssistant, socket_enabled: None) -> None:
    """1,000 cameras in another process, polled by their coordinators' timers."""
    await _with_farm(FARM_CAMERAS, lambda cams: measure(hass, cams, FARM_LABEL))


async def test_scheduled_polls_in_process(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """200 cameras in Home Assistant's own process, polled by the timers."""
    async with local_cameras(LOCAL_CAMERAS) as cameras:
        await measure(hass, cameras, "in process")
