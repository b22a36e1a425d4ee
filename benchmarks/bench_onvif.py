"""ONVIF benchmarks: ``scripts/bench onvif``.

Run like the Hikvision benchmarks (see ``bench_hikvision.py`` for why pytest, and
``benchmarks/conftest.py``): a real Home Assistant core, the Bosch FLEXIDOME SOAP
simulator on loopback; a missed target prints MISS, only a breakage fails.

1. SOAP calls per steady-state refresh of one camera: ``coordinator.async_refresh()``
   after setup and one warm-up refresh, counted on the simulator per operation and
   averaged over ``REFRESHES`` refreshes (the refresh is also timed); then the same
   for refreshes that also read the settings (due every check interval). The setup of the
   same camera is counted and timed too (median over ``SETUPS`` setups of a fresh
   entry: connect with the clock reading, identity, MAC, profiles, imaging). Against
   it, a NAIVE poller builds a new client per poll and reads GetProfiles plus
   GetVideoEncoderConfiguration per encoder, as a first implementation might.

2. Setup time per camera with ``CAMERAS`` cameras (simulators in another process,
   ``benchmarks/onvif_farm.py``, so their CPU time is not Home Assistant's): all
   entries set up at once as at Home Assistant's start, timed; then ``ROUNDS``
   gathered refresh rounds (median and worst, with the longest event-loop stall and
   the SOAP calls per camera and round).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
import statistics
import time

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]

from custom_components.firmware_hub.const import CONF_KIND, DOMAIN, Kind
from custom_components.firmware_hub.coordinator import FirmwareCoordinator
from custom_components.firmware_hub.kinds.onvif.protocol.client import OnvifClient
from tests.simulators.onvif import OnvifCameraSimulator

from .bench_hikvision import (
    Farm as HikvisionFarm,
    Timing,
    below,
    check_round,
    coordinator_of,
    describe,
    say,
    timed,
)
from .report import record

BENCH = "onvif"
REFRESHES = 20
SETUPS = 5
CAMERAS = 50
ROUNDS = 10
FARM_START_TIMEOUT = 120.0

TARGET_CALLS = 1.0
"""GetDeviceInformation (the settings are read at the check interval)."""
TARGET_SETTINGS_CALLS = 3.0
"""GetDeviceInformation, GetVideoEncoderConfigurations, GetImagingSettings."""
TARGET_SETUP_SECONDS = 1.0
"""Per camera, one camera alone."""
TARGET_ROUND_SECONDS = 2.0
TARGET_STALL_MS = 50.0

REPO_ROOT = Path(__file__).resolve().parent.parent


def onvif_entry(
    *, port: int, mac: str, username: str, password: str, title: str
) -> MockConfigEntry:
    """Return a config entry for a simulated camera, as the config flow creates it."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=title,
        unique_id=mac,
        data={
            CONF_KIND: Kind.ONVIF.value,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: port,
            CONF_USERNAME: username,
            CONF_PASSWORD: password,
        },
    )


# ---------------------------------------------------------------- 1. one camera


async def naive_calls_per_poll(sim: OnvifCameraSimulator) -> float:
    """Return the SOAP calls of a naive poll (new client, per-encoder reads)."""

    async def poll() -> None:
        async with OnvifClient(
            host=sim.host, port=sim.port, username=sim.username, password=sim.password
        ) as client:
            await client.get_device_information()
            for profile in await client.get_profiles():
                if profile.video_encoder is not None:
                    await client.get_video_encoder_configuration(
                        profile.video_encoder.token
                    )
            await client.get_imaging_settings("1")

    await poll()
    sim.reset_stats()
    for _ in range(REFRESHES):
        await poll()
    return sim.total_calls / REFRESHES


async def set_up_once(
    hass: HomeAssistant, sim: OnvifCameraSimulator, number: int
) -> tuple[float, Counter[str]]:
    """Set up a fresh entry for ``sim``; return the seconds and the SOAP calls."""
    entry = onvif_entry(
        port=sim.port,
        mac=sim.mac_address.lower(),
        username=sim.username,
        password=sim.password,
        title=f"Camera {number}",
    )
    entry.add_to_hass(hass)
    sim.reset_stats()
    start = time.perf_counter()
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    seconds = time.perf_counter() - start
    if entry.state is not ConfigEntryState.LOADED:
        raise RuntimeError(f"entry did not load: {entry.state} {entry.reason}")
    calls = Counter(sim.calls)
    if not await hass.config_entries.async_unload(entry.entry_id):
        raise RuntimeError("entry did not unload")
    await hass.config_entries.async_remove(entry.entry_id)
    return seconds, calls


async def time_refreshes(
    sim: OnvifCameraSimulator, coordinator: FirmwareCoordinator, *, settings: bool
) -> tuple[list[float], dict[str, float], int]:
    """Time REFRESHES refreshes: (seconds each, calls per operation per refresh, faults).

    With `settings`, every refresh is due to read the settings (check interval).
    """
    sim.reset_stats()
    times: list[float] = []
    for _ in range(REFRESHES):
        if settings:
            coordinator.next_check = dt_util.utcnow()  # the check interval elapsed
        start = time.perf_counter()
        await coordinator.async_refresh()
        times.append(time.perf_counter() - start)
        if not coordinator.last_update_success:
            raise RuntimeError(f"refresh failed: {coordinator.last_exception!r}")
    per_operation = {op: n / REFRESHES for op, n in sorted(sim.calls.items())}
    return times, per_operation, sum(1 for call in sim.soap_calls if call.fault)


async def test_soap_calls_per_refresh(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """SOAP calls and time per steady-state refresh; setup calls and time."""
    if not await async_setup_component(hass, DOMAIN, {}):
        raise RuntimeError("the integration did not set up")
    sim = OnvifCameraSimulator()
    await sim.start()
    try:
        setups = [await set_up_once(hass, sim, n) for n in range(SETUPS)]
        setup_seconds = statistics.median(seconds for seconds, _ in setups)
        setup_calls = setups[-1][1]

        entry = onvif_entry(
            port=sim.port,
            mac=sim.mac_address.lower(),
            username=sim.username,
            password=sim.password,
            title="Cam",
        )
        entry.add_to_hass(hass)
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        coordinator = coordinator_of(entry)
        await coordinator.async_refresh()  # warm-up
        times, per_operation, faults = await time_refreshes(
            sim, coordinator, settings=False
        )
        calls = sum(per_operation.values())
        settings_times, settings_operations, _ = await time_refreshes(
            sim, coordinator, settings=True
        )
        settings_calls = sum(settings_operations.values())
        if not await hass.config_entries.async_unload(entry.entry_id):
            raise RuntimeError("entry did not unload")
        naive = await naive_calls_per_poll(sim)
    finally:
        await sim.stop()

    refresh_ms = statistics.median(times) * 1000
    say()
    say(
        f"[{BENCH}] one camera (Bosch FLEXIDOME capture), {REFRESHES} steady-state refreshes"
    )
    say(
        f"  setup (median of {SETUPS}): {setup_seconds * 1000:.0f} ms, {sum(setup_calls.values())} SOAP calls"
    )
    for operation, count in sorted(setup_calls.items()):
        say(f"    {operation}: {count}")
    say(
        f"  refresh: {calls:.2f} SOAP calls, {faults} faults, median {refresh_ms:.1f} ms"
    )
    for operation, rate in per_operation.items():
        say(f"    {operation}: {rate:.2f} per refresh")
    say(
        f"  refresh at the check interval (settings too): {settings_calls:.2f} SOAP "
        f"calls, median {statistics.median(settings_times) * 1000:.1f} ms"
    )
    say(
        f"  naive poller (new client, per-encoder reads): {naive:.2f} SOAP calls per poll"
    )
    record(BENCH, "SOAP calls per refresh (1 camera)", calls, target=TARGET_CALLS)
    record(BENCH, "refresh time, 1 camera (median)", refresh_ms, "ms", fmt=".1f")
    record(
        BENCH,
        "SOAP calls per settings refresh (check interval)",
        settings_calls,
        target=TARGET_SETTINGS_CALLS,
    )
    record(
        BENCH,
        f"setup time, 1 camera (median of {SETUPS})",
        setup_seconds,
        "s",
        target=TARGET_SETUP_SECONDS,
        fmt=".3f",
    )
    record(BENCH, "setup SOAP calls (1 camera)", sum(setup_calls.values()), fmt="d")
    record(BENCH, "naive SOAP calls per poll", naive)
    record(BENCH, "naive/integration SOAP calls", naive / calls, "x")


# ---------------------------------------------------------------- 2. many cameras


class Farm(HikvisionFarm):
    """The simulated ONVIF cameras' process (``benchmarks/onvif_farm.py``)."""

    module = "benchmarks.onvif_farm"


async def test_many_cameras(hass: HomeAssistant, socket_enabled: None) -> None:
    """CAMERAS cameras: setup time per camera, gathered refresh rounds."""
    async with Farm.running(CAMERAS) as farm:
        entries = [
            onvif_entry(
                port=camera["port"],
                mac=camera["mac"],
                username=camera["username"],
                password=camera["password"],
                title=f"Camera {number}",
            )
            for number, camera in enumerate(farm.cameras, start=1)
        ]
        for entry in entries:
            entry.add_to_hass(hass)

        async def set_up() -> bool:
            done = await async_setup_component(hass, DOMAIN, {})
            await hass.async_block_till_done()
            return done

        done, setup = await timed(set_up)
        not_loaded = [e for e in entries if e.state is not ConfigEntryState.LOADED]
        if not done or not_loaded:
            raise RuntimeError(
                f"{len(not_loaded)} of {len(entries)} entries did not load"
            )
        setup_stats = await farm.command("stats")
        coordinators = [coordinator_of(entry) for entry in entries]

        async def gathered() -> None:
            await asyncio.gather(*(c.async_refresh() for c in coordinators))

        await gathered()  # warm-up
        check_round(coordinators, "warm-up round")
        await farm.command("reset")
        rounds: list[Timing] = []
        for _ in range(ROUNDS):
            rounds.append((await timed(gathered))[1])
            check_round(coordinators, "refresh round")
        stats = await farm.command("stats")
        unloaded = await asyncio.gather(
            *(hass.config_entries.async_unload(e.entry_id) for e in entries)
        )
        if not all(unloaded):
            raise RuntimeError("some entries did not unload")
        await hass.async_block_till_done()

    per_camera_setup = setup.seconds / CAMERAS
    times = [timing.seconds for timing in rounds]
    stalls = [timing.stall_ms for timing in rounds]
    calls = stats["calls"] / (ROUNDS * CAMERAS)
    say()
    say(
        f"[{BENCH}] {CAMERAS} cameras in one Home Assistant (cameras in another process)"
    )
    say(f"  setup of {CAMERAS} entries at once: {describe(setup)}")
    say(
        f"    per camera: {per_camera_setup * 1000:.1f} ms; SOAP calls: {setup_stats['calls']} ({setup_stats['calls'] / CAMERAS:.1f} per camera), faults {setup_stats['faults']}"
    )
    for number, timing in enumerate(rounds, start=1):
        say(f"  gathered round {number}: {describe(timing)}")
    say(
        f"  per camera and round: {calls:.2f} SOAP calls, {stats['faults']} faults in all"
    )
    record(BENCH, f"setup of {CAMERAS} cameras at once", setup.seconds, "s", fmt=".2f")
    record(
        BENCH,
        f"setup time per camera ({CAMERAS} at once)",
        per_camera_setup * 1000,
        "ms",
        fmt=".1f",
    )
    record(BENCH, "loop stall during setup", setup.stall_ms, "ms", fmt=".1f")
    record(
        BENCH,
        f"refresh round, {CAMERAS} cameras (median of {ROUNDS})",
        statistics.median(times),
        "s",
        target=TARGET_ROUND_SECONDS,
        target_text=f"< {TARGET_ROUND_SECONDS:.0f} s",
        better=below,
        fmt=".3f",
    )
    record(
        BENCH,
        f"loop stall in a round (worst of {ROUNDS})",
        max(stalls),
        "ms",
        target=TARGET_STALL_MS,
        target_text=f"< {TARGET_STALL_MS:.0f} ms",
        better=below,
        fmt=".1f",
    )
    record(
        BENCH,
        f"SOAP calls per camera per round ({CAMERAS})",
        calls,
        target=TARGET_CALLS,
    )
