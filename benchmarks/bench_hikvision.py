"""Hikvision (ISAPI) benchmarks: ``scripts/bench hikvision``.

Why pytest: the benchmarks drive the real integration inside a real Home Assistant
core (config entries, coordinators, entity state writes), and the ``hass`` fixture
of pytest-homeassistant-custom-component builds one in a few lines, with in-memory
storage. The file is run explicitly by ``scripts/bench`` with ``--no-cov -p no:randomly
-s``; it is not under ``tests/`` and its name does not match ``test_*.py``, so the
test suite never collects it. ``benchmarks/conftest.py`` turns off the test plugin's
asyncio debug mode and its INFO logging so the numbers resemble production. A
benchmark is not a test: a missed target is printed as MISS in the summary table;
only a breakage (an entry that does not load, a refresh that fails) fails the run.

1. Requests per steady-state refresh of one camera: ``coordinator.async_refresh()``
   (one GET deviceInfo; the upgrade-server status and the firmware check run only
   every ``check_interval_minutes``), counted on the simulator after setup and one warm-up
   refresh, averaged over ``REFRESHES`` refreshes. Against it, a NAIVE client does
   the same GET with aiohttp's stock ``DigestAuthMiddleware``: once shared by
   all requests (it meets the NVR's ``domain="::"`` challenge, which matches no URL,
   so it never sends credentials up front), once created anew for every request.

2. One refresh round over ``CAMERAS`` simulated cameras in one Home Assistant: the
   cameras run in another process (``benchmarks/isapi_farm.py``) so that their CPU
   time is not counted as Home Assistant's. All entries are set up at once (as at
   Home Assistant's start, timed), then after a warm-up round
   ``asyncio.gather(*(c.async_refresh() for c in coordinators))`` is timed over
   ``ROUNDS`` rounds (median and worst are reported) while a monitor task sleeping
   1 ms in a loop records the longest event-loop stall (its largest lateness). Each
   timing also shows the process's CPU time (CPU well below wall time means the
   process waited or was preempted by another process) and the longest garbage
   collection, to tell a stall's cause. The NAIVE baseline is one sequential round
   (``for c in coordinators: await c.async_refresh()``); the floor is the same GETs
   through ``IsapiClient`` alone, without Home Assistant.

The polls as Home Assistant runs them (each coordinator's timer; 1,000 cameras in
another process, 200 in this one) are in ``bench_hikvision_scale.py``, which
``scripts/bench hikvision`` runs too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass
import gc
import json
from pathlib import Path
import statistics
import sys
import time
from typing import Any, ClassVar, Self

import aiohttp
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_SSL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]

from custom_components.firmware_hub.const import CONF_KIND, DOMAIN, Kind
from custom_components.firmware_hub.coordinator import FirmwareCoordinator
from custom_components.firmware_hub.kinds.hikvision.protocol.client import (
    PATH_DEVICE_INFO,
    IsapiClient,
)
from tests.simulators.isapi import IsapiCameraSimulator

from .report import record

BENCH = "hikvision"
REFRESHES = 20
"""Steady-state refreshes averaged in the requests-per-refresh benchmark."""
CAMERAS = 200
ROUNDS = 20
"""Timed refresh rounds over all cameras (after one warm-up round)."""
FARM_START_TIMEOUT = 120.0

TARGET_REQUESTS = 3.0
TARGET_UNAUTHORIZED = 0.0
TARGET_ROUND_SECONDS = 2.0
TARGET_STALL_MS = 50.0

STEADY_STATE_PATHS = (PATH_DEVICE_INFO,)
"""What one steady-state refresh reads (``HikvisionBackend.async_refresh``): the
upgrade server status is read with the firmware check, not every poll."""

REPO_ROOT = Path(__file__).resolve().parent.parent


def say(text: str = "") -> None:
    """Print a line of the benchmark's report right away."""
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def hikvision_entry(
    *, port: int, serial: str, password: str, title: str
) -> MockConfigEntry:
    """Return a config entry for a simulated camera, as the config flow creates it."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=title,
        unique_id=serial,
        data={
            CONF_KIND: Kind.HIKVISION.value,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: port,
            CONF_SSL: False,
            CONF_VERIFY_SSL: False,
            CONF_USERNAME: "admin",
            CONF_PASSWORD: password,
        },
    )


def coordinator_of(entry: MockConfigEntry) -> FirmwareCoordinator:
    """Return the coordinator of a loaded entry."""
    coordinator = entry.runtime_data.coordinator
    if not isinstance(coordinator, FirmwareCoordinator):
        raise TypeError(f"{entry.title}: no coordinator")
    return coordinator


class StallMonitor:
    """Longest event-loop stall while active: a task sleeps 1 ms in a loop.

    Each wake-up that comes later than asked adds lateness; the largest lateness is
    the longest time the loop could not run a ready callback.
    """

    def __init__(self, interval: float = 0.001) -> None:
        """Initialize; ``start`` begins measuring."""
        self.interval = interval
        self.max_lateness = 0.0
        self.wakeups = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            lateness = time.perf_counter() - start - self.interval
            self.wakeups += 1
            self.max_lateness = max(self.max_lateness, lateness)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls) -> AsyncIterator[Self]:
        """Measure around the ``async with`` body (with a few idle ms either side)."""
        monitor = cls()
        monitor._task = asyncio.get_running_loop().create_task(monitor._run())
        await asyncio.sleep(0.005)  # the monitor is sleeping before the body starts
        try:
            yield monitor
            await asyncio.sleep(0.005)  # and sees the body's last stall
        finally:
            monitor._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor._task

    @property
    def max_stall_ms(self) -> float:
        """Return the longest stall seen, in milliseconds."""
        return self.max_lateness * 1000


# ---------------------------------------------------------------- 1. requests


async def naive_requests_per_refresh(
    sim: IsapiCameraSimulator, *, middleware_per_request: bool
) -> tuple[float, float]:
    """Do the steady-state GETs with the stock middleware: (requests, 401s) per round."""
    async with aiohttp.ClientSession() as session:
        shared = aiohttp.DigestAuthMiddleware(sim.username, sim.password)

        async def one_round() -> None:
            for path in STEADY_STATE_PATHS:
                middleware = (
                    aiohttp.DigestAuthMiddleware(sim.username, sim.password)
                    if middleware_per_request
                    else shared
                )
                async with session.get(
                    f"{sim.url}{path}", middlewares=(middleware,)
                ) as resp:
                    await resp.read()
                    if resp.status != 200:  # noqa: PLR2004
                        raise RuntimeError(f"naive GET {path}: HTTP {resp.status}")

        await one_round()  # warm-up: the shared middleware learns the challenge
        sim.reset_stats()
        for _ in range(REFRESHES):
            await one_round()
    return sim.request_count / REFRESHES, sim.unauthorized_count / REFRESHES


async def test_requests_per_refresh(hass: HomeAssistant, socket_enabled: None) -> None:
    """HTTP requests and 401s per steady-state refresh, integration vs naive."""
    sim = IsapiCameraSimulator()
    await sim.start()
    try:
        entry = hikvision_entry(
            port=sim.port, serial=sim.serial_number, password=sim.password, title="Cam"
        )
        entry.add_to_hass(hass)
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        if entry.state is not ConfigEntryState.LOADED:
            raise RuntimeError(f"entry did not load: {entry.state} {entry.reason}")
        coordinator = coordinator_of(entry)
        await follow_tasks([coordinator])
        setup_requests, setup_401 = sim.request_count, sim.unauthorized_count
        setup_paths = Counter(f"{r.method} {r.path}" for r in sim.requests)
        await coordinator.async_refresh()  # warm-up
        sim.reset_stats()
        for _ in range(REFRESHES):
            await coordinator.async_refresh()
            if not coordinator.last_update_success:
                raise RuntimeError(f"refresh failed: {coordinator.last_exception!r}")
        requests = sim.request_count / REFRESHES
        unauthorized = sim.unauthorized_count / REFRESHES
        per_path = {
            path: sim.count("GET", path) / REFRESHES for path in STEADY_STATE_PATHS
        }
        if not await hass.config_entries.async_unload(entry.entry_id):
            raise RuntimeError("entry did not unload")

        stock = await naive_requests_per_refresh(sim, middleware_per_request=False)
        fresh = await naive_requests_per_refresh(sim, middleware_per_request=True)
    finally:
        await sim.stop()

    say()
    say(f"[{BENCH}] one camera ({sim.model}), {REFRESHES} steady-state refreshes")
    say(f"  setup (probe + first check): {setup_requests} requests, {setup_401} 401s")
    for request, times in setup_paths.items():
        say(f"    {request}: {times}")
    say(f"  integration: {requests:.2f} requests, {unauthorized:.2f} 401s per refresh")
    for path, count in per_path.items():
        say(f"    GET {path}: {count:.2f} per refresh")
    say(
        f"  naive, stock middleware shared: {stock[0]:.2f} requests, {stock[1]:.2f} 401s"
    )
    say(
        f"  naive, new middleware per request: {fresh[0]:.2f} requests, {fresh[1]:.2f} 401s"
    )
    record(BENCH, "requests per refresh (1 camera)", requests, target=TARGET_REQUESTS)
    record(
        BENCH,
        "401s per refresh (1 camera)",
        unauthorized,
        target=TARGET_UNAUTHORIZED,
        target_text="0",
    )
    record(BENCH, "setup requests (probe + check)", setup_requests, fmt="d")
    record(BENCH, "setup 401s", setup_401, fmt="d")
    record(BENCH, "naive requests/refresh (stock mw, domain=::)", stock[0])
    record(BENCH, "naive 401s/refresh (stock mw, domain=::)", stock[1])
    record(BENCH, "naive requests/refresh (new mw per request)", fresh[0])
    record(BENCH, "naive/integration requests", stock[0] / requests, "x")


# ---------------------------------------------------------------- 2. 200 cameras


@dataclass(slots=True)
class Farm:
    """The simulated cameras' process (``benchmarks/isapi_farm.py``)."""

    #: The module run as the farm process (the ONVIF bench runs its own).
    module: ClassVar[str] = "benchmarks.isapi_farm"
    process: asyncio.subprocess.Process
    cameras: list[dict[str, Any]]

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, count: int) -> AsyncIterator[Self]:
        """Start ``count`` cameras in another process; yield once all listen."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            cls.module,
            "--count",
            str(count),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        try:
            if process.stdout is None:
                raise RuntimeError("farm without stdout")
            line = await asyncio.wait_for(process.stdout.readline(), FARM_START_TIMEOUT)
            if not line:
                raise RuntimeError("the camera farm exited before listening")
            yield cls(process, json.loads(line)["cameras"])
        finally:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def command(self, command: str) -> dict[str, Any]:
        """Send a command line, return the farm's JSON answer."""
        if self.process.stdin is None or self.process.stdout is None:
            raise RuntimeError("farm pipes closed")
        self.process.stdin.write(f"{command}\n".encode())
        await self.process.stdin.drain()
        answer: dict[str, Any] = json.loads(await self.process.stdout.readline())
        return answer


@dataclass(frozen=True, slots=True)
class Timing:
    """One timed body: wall time, process CPU time, longest loop stall and GC pause."""

    seconds: float
    cpu_seconds: float
    """CPU time of this process (well below ``seconds``: it waited, or was preempted)."""
    stall_ms: float
    gc_ms: float
    """Longest single garbage collection while timing."""


async def timed[T](body: Callable[[], Awaitable[T]]) -> tuple[T, Timing]:
    """Run ``body`` under a stall monitor; return its result and its timing."""
    gc_pauses: list[float] = []
    gc_started = 0.0

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        nonlocal gc_started
        if phase == "start":
            gc_started = time.perf_counter()
        else:
            gc_pauses.append(time.perf_counter() - gc_started)

    gc.callbacks.append(on_gc)
    try:
        async with StallMonitor.running() as monitor:
            start, cpu_start = time.perf_counter(), time.process_time()
            result = await body()
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
    finally:
        gc.callbacks.remove(on_gc)
    return result, Timing(
        seconds=elapsed,
        cpu_seconds=cpu,
        stall_ms=monitor.max_stall_ms,
        gc_ms=max(gc_pauses, default=0.0) * 1000,
    )


def describe(timing: Timing) -> str:
    """Return ``timing`` as a line fragment."""
    return (
        f"{timing.seconds:.3f} s (CPU {timing.cpu_seconds:.3f} s), longest stall "
        f"{timing.stall_ms:.1f} ms, longest GC {timing.gc_ms:.1f} ms"
    )


async def follow_tasks(coordinators: list[FirmwareCoordinator]) -> None:
    """Wait for setup's look for a running install.

    It holds the device lock, and a poll while the lock is held is skipped: it
    would read nothing and count no request.
    """
    await asyncio.gather(
        *(c.follow_task for c in coordinators if c.follow_task is not None)
    )


def check_round(coordinators: list[FirmwareCoordinator], what: str) -> None:
    """Fail when a coordinator's last refresh failed."""
    failed = [c for c in coordinators if not c.last_update_success]
    if failed:
        raise RuntimeError(
            f"{what}: {len(failed)} refreshes failed, e.g. {failed[0].last_exception!r}"
        )


async def client_only_rounds(farm: Farm) -> list[Timing]:
    """Time the same GETs through ``IsapiClient`` alone, without Home Assistant.

    ``ROUNDS`` gathered rounds over every camera, after a warm-up round: the floor
    that the coordinators and entities add to.
    """
    async with aiohttp.ClientSession() as session:
        clients = [
            IsapiClient(
                session,
                host="127.0.0.1",
                port=camera["port"],
                ssl=False,
                username=camera["username"],
                password=camera["password"],
            )
            for camera in farm.cameras
        ]

        async def one(client: IsapiClient) -> None:
            await client.get_device_info()

        async def gathered() -> None:
            await asyncio.gather(*(one(client) for client in clients))

        await gathered()  # warm-up: connections and nonces
        return [(await timed(gathered))[1] for _ in range(ROUNDS)]


async def setup_cameras(
    hass: HomeAssistant, farm: Farm
) -> tuple[list[MockConfigEntry], Timing]:
    """Add one entry per camera and set all up at once, as Home Assistant starts."""
    entries = [
        hikvision_entry(
            port=camera["port"],
            serial=camera["serial"],
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

    done, timing = await timed(set_up)
    not_loaded = [e for e in entries if e.state is not ConfigEntryState.LOADED]
    if not done or not_loaded:
        example = not_loaded[0] if not_loaded else None
        raise RuntimeError(
            f"{len(not_loaded)} of {len(entries)} entries did not load"
            + (
                f", e.g. {example.title}: {example.state} {example.reason}"
                if example
                else ""
            )
        )
    return entries, timing


@dataclass(frozen=True, slots=True)
class RoundResults:
    """What the many-cameras benchmark measured."""

    setup: Timing
    rounds: list[Timing]
    floor: list[Timing]
    sequential: Timing
    requests: int
    unauthorized: int


async def measure_rounds(hass: HomeAssistant) -> RoundResults:
    """Set up CAMERAS entries and time refresh rounds over them."""
    async with Farm.running(CAMERAS) as farm:
        floor = await client_only_rounds(farm)
        entries, setup = await setup_cameras(hass, farm)
        coordinators = [coordinator_of(entry) for entry in entries]
        await follow_tasks(coordinators)

        async def gathered() -> None:
            await asyncio.gather(*(c.async_refresh() for c in coordinators))

        async def sequential() -> None:
            for coordinator in coordinators:
                await coordinator.async_refresh()

        await gathered()  # warm-up
        check_round(coordinators, "warm-up round")
        await farm.command("reset")
        rounds: list[Timing] = []
        for _ in range(ROUNDS):
            rounds.append((await timed(gathered))[1])
            check_round(coordinators, "refresh round")
        stats = await farm.command("stats")
        _, sequential_timing = await timed(sequential)
        check_round(coordinators, "sequential round")

        unloaded = await asyncio.gather(
            *(hass.config_entries.async_unload(e.entry_id) for e in entries)
        )
        if not all(unloaded):
            raise RuntimeError("some entries did not unload")
        await hass.async_block_till_done()
    return RoundResults(
        setup=setup,
        rounds=rounds,
        floor=floor,
        sequential=sequential_timing,
        requests=stats["requests"],
        unauthorized=stats["unauthorized"],
    )


def below(value: float, target: float) -> bool:
    """Return True when ``value`` is strictly below ``target``."""
    return value < target


async def test_refresh_round(hass: HomeAssistant, socket_enabled: None) -> None:
    """One refresh round over CAMERAS cameras: wall time and longest loop stall."""
    results = await measure_rounds(hass)
    times = [timing.seconds for timing in results.rounds]
    stalls = [timing.stall_ms for timing in results.rounds]
    median = statistics.median(times)
    floor_median = statistics.median(timing.seconds for timing in results.floor)
    floor_stall = statistics.median(timing.stall_ms for timing in results.floor)
    per_camera = results.requests / (ROUNDS * CAMERAS)
    unauthorized = results.unauthorized / (ROUNDS * CAMERAS)

    say()
    say(
        f"[{BENCH}] {CAMERAS} cameras in one Home Assistant (cameras in another process)"
    )
    say(f"  setup of {CAMERAS} entries: {describe(results.setup)}")
    for number, timing in enumerate(results.rounds, start=1):
        say(f"  gathered round {number}: {describe(timing)}")
    say(f"  per camera and round: {per_camera:.2f} requests, {unauthorized:.2f} 401s")
    for number, timing in enumerate(results.floor, start=1):
        say(
            f"  floor, IsapiClient alone (no Home Assistant), round {number}: {describe(timing)}"
        )
    say(f"  naive sequential round: {describe(results.sequential)}")

    round_target = f"< {TARGET_ROUND_SECONDS:.0f} s"
    stall_target = f"< {TARGET_STALL_MS:.0f} ms"
    record(
        BENCH,
        f"refresh round, {CAMERAS} cameras (median of {ROUNDS})",
        median,
        "s",
        target=TARGET_ROUND_SECONDS,
        target_text=round_target,
        better=below,
        fmt=".3f",
    )
    record(
        BENCH,
        f"refresh round, {CAMERAS} cameras (slowest of {ROUNDS})",
        max(times),
        "s",
        target=TARGET_ROUND_SECONDS,
        target_text=round_target,
        better=below,
        fmt=".3f",
    )
    record(
        BENCH,
        f"loop stall in a round (median of {ROUNDS})",
        statistics.median(stalls),
        "ms",
        target=TARGET_STALL_MS,
        target_text=stall_target,
        better=below,
        fmt=".1f",
    )
    record(
        BENCH,
        f"loop stall in a round (worst of {ROUNDS})",
        max(stalls),
        "ms",
        target=TARGET_STALL_MS,
        target_text=stall_target,
        better=below,
        fmt=".1f",
    )
    record(BENCH, f"requests per camera per round ({CAMERAS})", per_camera)
    record(BENCH, f"401s per camera per round ({CAMERAS})", unauthorized)
    record(BENCH, f"setup of {CAMERAS} entries", results.setup.seconds, "s")
    record(BENCH, "loop stall during setup", results.setup.stall_ms, "ms", fmt=".1f")
    record(
        BENCH, "floor: IsapiClient alone, round (median)", floor_median, "s", fmt=".3f"
    )
    record(
        BENCH, "floor: IsapiClient alone, stall (median)", floor_stall, "ms", fmt=".1f"
    )
    record(BENCH, "naive sequential round", results.sequential.seconds, "s", fmt=".3f")
    record(
        BENCH,
        "naive sequential / gathered (median)",
        results.sequential.seconds / median,
        "x",
    )
