"""Miling chunked download benchmarks: ``scripts/bench miling``.

Two scenarios, each against the Miling simulator in a process of its own (its
command line, ``python -m tests.simulators.miling --delay D --status2-fraction
0.02``, so that its CPU time is not counted against the client), answering every
request after D and 2 % of them with Status 2 ("other error"):

- ``1 ms``: a 16 MiB package on loopback with 1 ms of server delay: the client's and
  the simulator's CPU decide;
- ``40 ms``: an 8 MiB package with 40 ms per request, a WAN-like round trip: the
  number of requests in flight decides.

The package gets into the simulator the way it does in production: the
integration's ``MilingBackend`` connects to the WebSocket and registers (1010),
``POST /sim/push`` makes the simulator send a 1012, the backend validates it and
answers 0 (1013) and records the offer. Like ``bench_hikvision.py``, this is a pytest
file that ``scripts/bench`` runs explicitly (the ``hass`` fixture gives Home
Assistant's shared aiohttp session); the test suite never collects it. A missed
target is printed as MISS; only a breakage (a refused offer, a wrong SHA-256) fails.

Per scenario, in the same run:

1. The integration: ``MilingBackend.download(offer, progress)`` with Home Assistant's
   shared session, a ``PackageStore`` in a temporary directory, the default
   ``max_requests_in_flight`` (``DEFAULT_MAX_IN_FLIGHT``): the adaptive window starts
   at two requests and grows, shrinks on Status 2 beyond what a healthy server
   shows; chunks checked (base64, MD5), written in batches at their offsets,
   checkpointed, then ``PartialFile.complete`` (size, SHA-256). Timed
   ``INTEGRATION_RUNS`` times; the median counts (the cores are shared). CPU is this
   process's (every thread: the executor writes too) over the download, per request
   the simulator counted (retries included).
2. The NAIVE baseline: the same ``ChunkClient.fetch_chunk`` and ``PartialFile.write``
   one chunk at a time (fetch, write, next; a Status 2 is retried at once), over the
   first ``naive_bytes`` of the package (its rate per request does not depend on
   how many requests follow).
3. The ceiling, the lower of:
   - latency: ``max_requests_in_flight`` requests in flight, each taking the round
     trip the naive run measured (the delay plus both sides' overhead);
   - the simulator: what its process answers at most, measured by a light load
     generator in this process (pre-encoded 1014 bodies, ``CEILING_IN_FLIGHT`` in
     flight on its own session, replies read but not decoded). Both processes share
     the machine's cores: this is the ceiling on this machine, not in theory.
   The integration's request rate (the simulator's count over the download time) is
   reported as a share of it, with the mean and highest number of requests the
   simulator saw in flight at each arrival.
4. At 1 ms also the memory: this process's resident set size (``VmRSS``) sampled
   every millisecond during each timed download, the highest sample minus the one
   before it starts (target < 20 MiB for the 16 MiB package: the download must not
   hold the package); ``ru_maxrss`` growth and the ``tracemalloc`` peak of an untimed
   download beside it. Every downloaded file's SHA-256 is checked against the source.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
import contextlib
from dataclasses import dataclass, field
import hashlib
import os
from pathlib import Path
import random
import resource
import socket
import sys
import threading
import time
import tracemalloc
from typing import Any

import aiohttp
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest

from custom_components.firmware_hub.core.bridge import (
    BridgeOffer,
    BridgeSettings,
    MemoryPersistence,
)
from custom_components.firmware_hub.core.models import FirmwareState
from custom_components.firmware_hub.core.packages import Package, PackageStore
from custom_components.firmware_hub.kinds.miling.backend import MilingBackend
from custom_components.firmware_hub.kinds.miling.fetch import DEFAULT_MAX_IN_FLIGHT
from custom_components.firmware_hub.kinds.miling.protocol.chunks import (
    ChunkClient,
    chunk_ranges,
)
from custom_components.firmware_hub.kinds.miling.protocol.errors import ChunkServerError
from custom_components.firmware_hub.kinds.miling.protocol.messages import (
    DOWNLOAD_PATH,
    MAX_CHUNK_SIZE,
)

from .report import record

BENCH = "miling"
STATUS2 = 0.02
"""Share of requests the simulator answers with Status 2."""
LOAD_CONDITION = 0
CEILING_IN_FLIGHT = 128
"""Requests in flight while measuring the simulator's ceiling."""
CEILING_REQUESTS = 8192
INTEGRATION_RUNS = 3
"""Timed integration downloads; the median counts (the machine's cores are shared)."""

BASELINE_CPU_MS = 0.28
"""CPU per request of the fixed-16 client (issue 13, measured on main)."""
TARGET_CPU_MS = BASELINE_CPU_MS * 0.7
TARGET_CEILING_PCT = 70.0
TARGET_MEMORY_MIB = 20.0

DEVICE_ID = "10001"
DEVICE_TYPE = "TS"
INSTALLED_VERSION = "200200"
OFFERED_VERSION = "200201"
FILE_NAME = "bench-package.bin"
START_TIMEOUT = 60.0
MIB = 1024 * 1024

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Scenario:
    """One server latency and what is measured at it."""

    name: str
    delay: float
    """Seconds the simulator waits before every answer."""
    package_size: int
    naive_bytes: int
    """The naive client fetches this much of the package."""
    ratio_target: float
    memory: bool = False
    """Sample memory and trace allocations (the 1 ms scenario)."""


SCENARIOS = (
    Scenario("1 ms", 0.001, 16 * MIB, 4 * MIB, ratio_target=5.0, memory=True),
    Scenario("40 ms", 0.040, 8 * MIB, MIB // 2, ratio_target=20.0),
)


def say(text: str = "") -> None:
    """Print a line of the benchmark's report right away."""
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def at_least(value: float, target: float) -> bool:
    """Return True when ``value`` reaches ``target``."""
    return value >= target


def below(value: float, target: float) -> bool:
    """Return True when ``value`` is strictly below ``target``."""
    return value < target


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free loopback ports (held together while chosen)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def source_package(size: int) -> bytes:
    """Return the bytes ``POST /sim/push`` serves for ``Size`` = ``size``.

    The simulator generates ``random.Random(size).randbytes(size)``; the MD5 its push
    answer carries is compared with this copy before anything else is trusted.
    """
    return random.Random(size).randbytes(size)  # noqa: S311 - test data


def sha256_of(path: Path) -> str:
    """Return the SHA-256 of a file (executor)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(1 << 20):
            digest.update(data)
    return digest.hexdigest()


# ---------------------------------------------------------------- the simulator


@dataclass(slots=True)
class Server:
    """The simulator's command line in a process of its own."""

    process: asyncio.subprocess.Process
    ws_port: int
    http_port: int

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, log: Path, delay: float, status2: float
    ) -> AsyncIterator[Server]:
        """Start ``python -m tests.simulators.miling``; yield once it listens."""
        ws_port, http_port = free_ports(2)
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.simulators.miling",
                "--ws-port",
                str(ws_port),
                "--http-port",
                str(http_port),
                "--delay",
                str(delay),
                "--status2-fraction",
                str(status2),
                cwd=REPO_ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        try:
            if process.stdout is None:
                raise RuntimeError("simulator without stdout")
            async with asyncio.timeout(START_TIMEOUT):
                # Three lines once both ports listen: WebSocket, Download, Push.
                for _ in range(3):
                    if not await process.stdout.readline():
                        raise RuntimeError(f"the simulator exited; see {log}")
            yield cls(process, ws_port, http_port)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    process.terminate()  # SIGTERM: the CLI stops its servers, exits
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()

    @property
    def base(self) -> str:
        """Return the simulator's HTTP base URL."""
        return f"http://127.0.0.1:{self.http_port}"

    async def state(
        self, session: aiohttp.ClientSession, since: int = 0
    ) -> dict[str, Any]:
        """Return ``GET /sim/state?since=...``."""
        async with session.get(f"{self.base}/sim/state?since={since}") as resp:
            resp.raise_for_status()
            answer: dict[str, Any] = await resp.json()
            return answer

    async def push(
        self, session: aiohttp.ClientSession, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """``POST /sim/push``: the simulator sends a 1012 and returns the 1013."""
        async with session.post(f"{self.base}/sim/push", json=payload) as resp:
            answer: dict[str, Any] = await resp.json()
            if resp.status != 200:  # noqa: PLR2004
                raise RuntimeError(f"/sim/push: HTTP {resp.status} {answer}")
            return answer


# ---------------------------------------------------------------- measuring


class RssSampler:
    """Resident set size of this process, sampled by a thread every millisecond."""

    def __init__(self, interval: float = 0.001) -> None:
        """Initialize; ``start`` begins sampling."""
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self.samples = 0
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss-sampler")

    def rss(self) -> int:
        """Return the resident set size now, in bytes."""
        with open("/proc/self/statm", "rb") as statm:  # noqa: PTH123
            return int(statm.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self.samples += 1
            time.sleep(self.interval)

    def start(self) -> None:
        """Take the baseline and start sampling."""
        self.baseline = self.peak = self.rss()
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (one last sample)."""
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth(self) -> int:
        """Return the highest sample minus the baseline, in bytes."""
        return self.peak - self.baseline


def maxrss_bytes() -> int:
    """Return the process's RSS high-water mark (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(frozen=True, slots=True)
class Download:
    """One timed download."""

    package: Package
    seconds: float
    cpu_seconds: float
    requests: int
    """HTTP requests the simulator counted (retries included)."""
    mean_in_flight: float
    """Mean of the requests in flight the simulator saw at each arrival."""
    max_in_flight: int

    @property
    def mib_per_s(self) -> float:
        """Return the throughput."""
        return self.package.size / MIB / self.seconds

    @property
    def requests_per_s(self) -> float:
        """Return the request rate."""
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        """Return this process's CPU per request, in milliseconds."""
        return 1000 * self.cpu_seconds / self.requests


async def timed_download(
    server: Server,
    session: aiohttp.ClientSession,
    body: Callable[[], Any],
) -> Download:
    """Run the download ``body()`` returns; time it and count its requests."""
    before = (await server.state(session))["http_requests"]
    start, cpu_start = time.perf_counter(), time.process_time()
    package: Package = await body()
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    state = await server.state(session, since=before)
    seen = state["in_flight_seen"]
    requests = state["http_requests"] - before
    return Download(
        package,
        seconds,
        cpu,
        requests,
        seen["sum"] / max(1, seen["count"]),
        seen["max"],
    )


async def check_package(package: Package, expected: bytes, what: str) -> None:
    """Fail unless the file on disk is ``expected`` (size and SHA-256)."""
    sha256 = hashlib.sha256(expected).hexdigest()
    actual = await asyncio.get_running_loop().run_in_executor(
        None, sha256_of, package.path
    )
    if actual != sha256 or package.sha256 != sha256:
        raise RuntimeError(
            f"{what}: SHA-256 {actual} (reported {package.sha256}), source {sha256}"
        )
    if package.size != len(expected):
        raise RuntimeError(f"{what}: {package.size} bytes, not {len(expected)}")


async def naive_download(
    session: aiohttp.ClientSession, server: Server, root: Path, scenario: Scenario
) -> Package:
    """One chunk at a time: fetch (1014 → 1015, MD5 checked), write, next."""
    chunks = ChunkClient(
        session, host="127.0.0.1", http_port=server.http_port, device_id=DEVICE_ID
    )
    size = scenario.naive_bytes
    partial = await PackageStore(root).open_partial("naive", size)
    try:
        for start, end in chunk_ranges(size):
            while True:
                try:
                    data = await chunks.fetch_chunk(
                        FILE_NAME, start, end, file_size=scenario.package_size
                    )
                    break
                except ChunkServerError:  # Status 2: again, at once
                    continue
            await partial.write(start, data)
    except BaseException:
        await partial.discard()
        raise
    return await partial.complete()


async def ceiling_rate(server: Server, package_size: int) -> tuple[float, float]:
    """Requests/s the simulator answers at most: (rate, this process's CPU seconds).

    ``CEILING_IN_FLIGHT`` workers post pre-encoded 1014 bodies on a session of their
    own and read the replies without decoding them: the lightest client there is.
    """
    bodies = [
        (
            f'{{"ProtocolCode":1014,"Parameters":{{"DeviceId":"{DEVICE_ID}",'
            f'"FileName":"{FILE_NAME}","Start":{start},"End":{end}}}}}'
        ).encode()
        for start, end in chunk_ranges(package_size)
    ]
    url = f"{server.base}{DOWNLOAD_PATH}"
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=CEILING_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(numbers: Iterator[int]) -> None:
            for number in numbers:
                async with session.post(
                    url, data=bodies[number % len(bodies)], headers=headers
                ) as resp:
                    await resp.read()
                    if resp.status != 200:  # noqa: PLR2004
                        raise RuntimeError(f"ceiling: HTTP {resp.status}")

        async def burst(requests: int) -> None:
            numbers = iter(range(requests))  # shared: each request is taken once
            await asyncio.gather(*(worker(numbers) for _ in range(CEILING_IN_FLIGHT)))

        await burst(CEILING_IN_FLIGHT * 4)  # warm-up: open the connections
        start, cpu_start = time.perf_counter(), time.process_time()
        await burst(CEILING_REQUESTS)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    return CEILING_REQUESTS / seconds, cpu


# ---------------------------------------------------------------- the benchmark


@dataclass(slots=True)
class Bridge:
    """A registered ``MilingBackend`` and what it published."""

    backend: MilingBackend
    persistence: MemoryPersistence
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    offered: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, state: FirmwareState) -> None:
        """Receive the backend's pushed states (as the coordinator does)."""
        if state.connected:
            self.connected.set()
        if state.latest_version == OFFERED_VERSION:
            self.offered.set()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, session: aiohttp.ClientSession, server: Server, root: Path
    ) -> AsyncIterator[Bridge]:
        """Yield a backend connected and registered to ``server``; close it after."""
        persistence = MemoryPersistence()
        backend = MilingBackend(
            session,
            host="127.0.0.1",
            ws_port=server.ws_port,
            http_port=server.http_port,
            device_id=DEVICE_ID,
            device_type=DEVICE_TYPE,
            prog_version=INSTALLED_VERSION,
            max_package_bytes=64 * MIB,
            bridge=BridgeSettings(
                store=PackageStore(root),
                persistence=persistence,
                handoff_timeout=3600.0,
                auto_download=False,  # the benchmark starts (and times) the download
            ),
        )
        bridge = cls(backend, persistence)
        backend.attach(bridge.publish)
        await backend.async_restore()
        run = asyncio.get_running_loop().create_task(backend.async_run())
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await bridge.connected.wait()  # 1010 → 1011 Status 0
            yield bridge
        finally:
            await backend.async_close()
            if not run.done():
                run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run

    async def offer(
        self, session: aiohttp.ClientSession, server: Server, size: int
    ) -> tuple[BridgeOffer, str]:
        """Push the package (1012 → 1013 0); return the recorded offer and its MD5."""
        answer = await server.push(
            session,
            {
                "DeviceId": DEVICE_ID,
                "Size": size,
                "FileName": FILE_NAME,
                "ProgVersion": OFFERED_VERSION,
                "LoadCondition": LOAD_CONDITION,
            },
        )
        if answer.get("Status") != 0:
            raise RuntimeError(f"the backend refused the offer: {answer}")
        async with asyncio.timeout(10):  # the 1013 goes out before the offer is saved
            await self.offered.wait()
        saved = self.persistence.data or {}
        offer = BridgeOffer(**saved["offers"][0])  # as async_restore reads it
        if offer.size != size:
            raise RuntimeError(f"unexpected offer {offer}")
        return offer, str(answer["md5"])


@dataclass(slots=True)
class Memory:
    """Memory of the 1 ms scenario's downloads."""

    rss: RssSampler
    maxrss_growth: int
    traced_peak: int


@dataclass(slots=True)
class Results:
    """Everything one scenario measured."""

    scenario: Scenario
    integration: list[Download]
    naive: Download
    server_ceiling: float
    ceiling_cpu: float
    verified: int
    memory: Memory | None = None

    @property
    def median(self) -> Download:
        """Return the median integration run (by time)."""
        runs = sorted(self.integration, key=lambda run: run.seconds)
        return runs[len(runs) // 2]


async def measure_traced(bridge: Bridge, offer: BridgeOffer) -> tuple[Package, int]:
    """Download again under ``tracemalloc``: (package, peak of Python allocations)."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        package = await bridge.backend.download(offer, lambda _done, _total: None)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    return package, peak


async def measure(hass: HomeAssistant, tmp_path: Path, scenario: Scenario) -> Results:
    """Run one scenario's downloads and ceiling against one simulator process."""
    loop = asyncio.get_running_loop()
    size = scenario.package_size
    source = await loop.run_in_executor(None, source_package, size)
    session = async_get_clientsession(hass)  # what create_backend gives the backend
    root = tmp_path / scenario.name.replace(" ", "")

    async with (
        Server.running(root.with_suffix(".log"), scenario.delay, STATUS2) as server,
        Bridge.running(session, server, root / "integration") as bridge,
    ):
        offer, pushed_md5 = await bridge.offer(session, server, size)
        if pushed_md5 != hashlib.md5(source, usedforsecurity=False).hexdigest():
            raise RuntimeError("the simulator serves another package than expected")

        def progress(_done: int, _total: int | None) -> None:
            pass

        integration: list[Download] = []
        samplers: list[RssSampler] = []
        maxrss_growth = 0
        for _ in range(INTEGRATION_RUNS):
            sampler = RssSampler()
            maxrss_before = maxrss_bytes()
            if scenario.memory:
                sampler.start()
            try:
                download = await timed_download(
                    server, session, lambda: bridge.backend.download(offer, progress)
                )
            finally:
                if scenario.memory:
                    sampler.stop()
            maxrss_growth = max(maxrss_growth, maxrss_bytes() - maxrss_before)
            await check_package(download.package, source, "integration")
            await loop.run_in_executor(None, download.package.path.unlink)
            integration.append(download)
            samplers.append(sampler)
        verified = len(integration)

        naive = await timed_download(
            server,
            session,
            lambda: naive_download(session, server, root / "naive", scenario),
        )
        await check_package(naive.package, source[: scenario.naive_bytes], "naive")
        verified += 1

        server_ceiling, ceiling_cpu = await ceiling_rate(server, size)

        memory = None
        if scenario.memory:
            traced, traced_peak = await measure_traced(bridge, offer)
            await check_package(traced, source, "traced integration")
            verified += 1
            memory = Memory(
                max(samplers, key=lambda sampler: sampler.growth),
                maxrss_growth,
                traced_peak,
            )

    return Results(
        scenario, integration, naive, server_ceiling, ceiling_cpu, verified, memory
    )


def report(results: Results) -> None:
    """Print one scenario's numbers and record its summary rows."""
    scenario, runs, naive = results.scenario, results.integration, results.naive
    integration = results.median
    workers = DEFAULT_MAX_IN_FLIGHT
    ratio = integration.mib_per_s / naive.mib_per_s
    round_trip = naive.seconds / naive.requests
    latency_bound = workers / round_trip
    ceiling = min(latency_bound, results.server_ceiling)
    share = 100 * integration.requests_per_s / ceiling
    cpu_ms = integration.cpu_ms_per_request
    name = f"{BENCH} {scenario.name}"
    expected = len(chunk_ranges(scenario.package_size))

    say()
    say(
        f"[{name}] {scenario.package_size // MIB} MiB package ({expected} chunks of "
        f"{MAX_CHUNK_SIZE} bytes), simulator in another process: "
        f"{scenario.delay * 1000:.0f} ms per request, {STATUS2:.0%} Status 2"
    )
    say(
        f"  integration (MilingBackend.download, adaptive, at most {workers} in "
        f"flight): {integration.seconds:.2f} s, {integration.mib_per_s:.2f} MiB/s, "
        f"{integration.requests} requests, CPU {integration.cpu_seconds:.2f} s = "
        f"{cpu_ms:.3f} ms/request; in flight seen by the server: mean "
        f"{integration.mean_in_flight:.1f}, max {integration.max_in_flight} "
        f"(median of {len(runs)}: "
        + ", ".join(f"{run.seconds:.2f} s" for run in runs)
        + ")"
    )
    say(
        f"  naive (one chunk at a time, first {scenario.naive_bytes // 1024} KiB): "
        f"{naive.seconds:.2f} s, {naive.mib_per_s:.2f} MiB/s, {naive.requests} "
        f"requests, CPU {naive.cpu_ms_per_request:.3f} ms/request, round trip "
        f"{round_trip * 1000:.2f} ms"
    )
    say(f"  integration / naive: {ratio:.1f}x")
    say(
        f"  ceiling: {workers} in flight / {round_trip * 1000:.2f} ms round trip = "
        f"{latency_bound:.0f}/s; simulator ({CEILING_IN_FLIGHT} in flight, "
        f"{CEILING_REQUESTS} requests, load generator CPU {results.ceiling_cpu:.2f} "
        f"s) {results.server_ceiling:.0f}/s; ceiling = the lower, {ceiling:.0f}/s; "
        f"integration {integration.requests_per_s:.0f}/s = {share:.0f} %"
    )
    # Why a share is low: one event loop, so the client's own CPU per request
    # bounds its rate; the load generator's CPU per request is aiohttp's floor
    # (request, response, loopback syscalls, nothing decoded).
    cpu_bound = 1000 / cpu_ms
    floor_ms = 1000 * results.ceiling_cpu / CEILING_REQUESTS
    say(
        f"  client CPU bound: one core / {cpu_ms:.3f} ms = {cpu_bound:.0f}/s, "
        f"integration at {100 * integration.requests_per_s / cpu_bound:.0f} % of it; "
        f"CPU {100 * integration.cpu_seconds / integration.seconds:.0f} % of a core "
        f"during the download; load generator (aiohttp floor) {floor_ms:.3f} "
        f"ms/request"
    )
    memory = results.memory
    if memory is not None:
        rss = memory.rss
        say(
            f"  memory: VmRSS peak growth {rss.growth / MIB:.2f} MiB ({rss.samples} "
            f"samples, baseline {rss.baseline / MIB:.0f} MiB), ru_maxrss growth "
            f"{memory.maxrss_growth / MIB:.2f} MiB, tracemalloc peak "
            f"{memory.traced_peak / MIB:.2f} MiB (separate untimed download)"
        )
    say(f"  SHA-256 of {results.verified} downloaded files = source")

    record(
        name,
        f"integration throughput (median of {len(runs)})",
        integration.mib_per_s,
        "MiB/s",
    )
    record(name, "naive throughput (1 at a time)", naive.mib_per_s, "MiB/s")
    record(
        name,
        "integration / naive throughput",
        ratio,
        "x",
        target=scenario.ratio_target,
        better=at_least,
        target_text=f">= {scenario.ratio_target:.0f} x",
        fmt=".1f",
    )
    record(
        name,
        "in flight seen by the server (mean / max)",
        integration.mean_in_flight,
        f"/ {integration.max_in_flight}",
        fmt=".1f",
    )
    record(
        name,
        f"ceiling: latency ({workers} / {round_trip * 1000:.2f} ms)",
        latency_bound,
        "req/s",
        fmt=".0f",
    )
    record(
        name,
        f"ceiling: simulator ({CEILING_IN_FLIGHT} in flight)",
        results.server_ceiling,
        "req/s",
        fmt=".0f",
    )
    record(
        name,
        f"integration {integration.requests_per_s:.0f} req/s / ceiling",
        share,
        "%",
        target=TARGET_CEILING_PCT,
        better=at_least,
        target_text=f">= {TARGET_CEILING_PCT:.0f} %",
        fmt=".0f",
    )
    record(
        name,
        "CPU per request (integration)",
        cpu_ms,
        "ms",
        target=TARGET_CPU_MS,
        better=lambda value, target: value <= target,
        target_text=f"<= {TARGET_CPU_MS:.3f} ms (0.28 - 30 %)",
        fmt=".3f",
    )
    record(
        name,
        "client CPU bound (one core / CPU per request)",
        cpu_bound,
        "req/s",
        fmt=".0f",
    )
    record(
        name,
        "load generator CPU per request (aiohttp floor)",
        floor_ms,
        "ms",
        fmt=".3f",
    )
    if memory is not None:
        record(
            name,
            f"peak memory growth (VmRSS sampled, worst of {len(runs)})",
            memory.rss.growth / MIB,
            "MiB",
            target=TARGET_MEMORY_MIB,
            better=below,
            target_text=f"< {TARGET_MEMORY_MIB:.0f} MiB",
        )
        record(
            name,
            "Python allocations peak (tracemalloc)",
            memory.traced_peak / MIB,
            "MiB",
        )
    verified = INTEGRATION_RUNS + 1 + (1 if memory is not None else 0)
    record(
        name,
        "downloads whose SHA-256 equals the source",
        results.verified,
        target=verified,
        better=at_least,
        target_text=f"{verified} of {verified}",
        fmt="d",
    )


@pytest.mark.timeout(900)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name.replace(" ", ""))
async def test_download(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path, scenario: Scenario
) -> None:
    """The package from the simulator: integration vs naive, ceiling, CPU, memory."""
    report(await measure(hass, tmp_path, scenario))
