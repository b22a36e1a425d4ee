"""Miling chunked download benchmarks: ``scripts/bench miling``.

A 16 MiB package served by the Miling simulator with 1 ms of delay before every
1015 answer. The simulator runs in a process of its own (its command line, ``python
-m tests.simulators.miling --delay 0.001``) so that its CPU time (JSON, base64 and MD5
of every chunk) is not counted against the client. The package gets into it the way
it does in production: the integration's ``MilingBackend`` connects to the WebSocket
and registers (1010), ``POST /sim/push`` makes the simulator send a 1012, the backend
validates it and answers 0 (1013) and records the offer. Like ``bench_hikvision.py``,
this is a pytest file that ``scripts/bench`` runs explicitly (the ``hass`` fixture gives
Home Assistant's shared aiohttp session); the test suite never collects it. A missed
target is printed as MISS; only a breakage (a refused offer, a wrong SHA-256) fails.

1. Throughput of the integration's download path: ``MilingBackend.download(offer,
   progress)`` with Home Assistant's shared aiohttp session (as ``create_backend``
   builds it), a ``PackageStore`` in a temporary directory and ``MemoryPersistence``.
   That is ``in_flight(LoadCondition 0)`` workers, each fetching a chunk
   (``ChunkClient.fetch_chunk``: 1014 → 1015, base64, MD5) and writing it at its offset
   (``PartialFile.write``, ``os.pwrite`` in the executor), with a checkpoint every
   ``CHECKPOINT_EVERY`` chunks, then ``PartialFile.complete`` (size check, SHA-256).
   Timed ``INTEGRATION_RUNS`` times; the median counts (the cores are shared).
2. The NAIVE baseline in the same run: the same ``ChunkClient.fetch_chunk`` and
   ``PartialFile.write``, one chunk at a time (fetch, write, next). Only the
   concurrency differs, so the ratio is what keeping several requests in flight buys.
3. Requests per second: the integration's rate (the simulator's own count of HTTP
   requests, retries included, over the download time) against the ceiling, which is
   the lower of two bounds:
   - latency: ``in_flight(0)`` requests in flight, each taking the round trip the naive
     run measured (1 ms of simulator delay plus both sides' overhead); with a zero-cost
     round trip this would be ``in_flight(0)`` x 1000/s;
   - server CPU: what the simulator process answers at most, measured by a light load
     generator in this process (pre-encoded 1014 bodies, ``CEILING_IN_FLIGHT`` requests
     in flight on its own session, replies read but not decoded), so many in flight
     that the 1 ms delay no longer limits and the simulator's CPU does. Both processes
     share the machine's cores, so this is the ceiling on this machine, not in theory.
4. Peak memory growth during the download (target < 20 MiB, the package being 16 MiB:
   the download must not hold the package in memory): this process's resident set
   size (``VmRSS``, from ``/proc/self/statm``) sampled every millisecond by a thread
   during each timed download, the highest sample minus the one taken just before it
   starts; the worst run counts.
   Shown beside it: the ``resource.getrusage`` ``ru_maxrss`` delta (the kernel's
   high-water mark: it only grows past the peak the process had already reached, e.g.
   while Home Assistant started, so it can read 0), and the peak of Python allocations
   (``tracemalloc``) in a separate untimed download (tracing slows every allocation).
   Every downloaded file's SHA-256 is checked against the source package.
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
from custom_components.firmware_hub.kinds.miling.fetch import (
    CHECKPOINT_EVERY,
    in_flight,
)
from custom_components.firmware_hub.kinds.miling.protocol.chunks import (
    ChunkClient,
    chunk_ranges,
)
from custom_components.firmware_hub.kinds.miling.protocol.messages import (
    DOWNLOAD_PATH,
    MAX_CHUNK_SIZE,
)

from .report import record

BENCH = "miling"
PACKAGE_SIZE = 16 * 1024 * 1024
DELAY = 0.001
"""Seconds the simulator waits before every 1015 answer."""
LOAD_CONDITION = 0
CEILING_IN_FLIGHT = 128
"""Requests in flight while measuring the simulator's ceiling."""
CEILING_REQUESTS = 8192
INTEGRATION_RUNS = 3
"""Timed integration downloads; the median counts (the machine's cores are shared)."""

TARGET_RATIO = 5.0
TARGET_MEMORY_MIB = 20.0

DEVICE_ID = "10001"
DEVICE_TYPE = "TS"
INSTALLED_VERSION = "200200"
OFFERED_VERSION = "200201"
FILE_NAME = "bench-package.bin"
START_TIMEOUT = 60.0
MIB = 1024 * 1024

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    async def running(cls, log: Path, delay: float) -> AsyncIterator[Server]:
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

    async def state(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """Return ``GET /sim/state``."""
        async with session.get(f"{self.base}/sim/state") as resp:
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

    @property
    def mib_per_s(self) -> float:
        """Return the throughput."""
        return self.package.size / MIB / self.seconds

    @property
    def requests_per_s(self) -> float:
        """Return the request rate."""
        return self.requests / self.seconds


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
    after = (await server.state(session))["http_requests"]
    return Download(package, seconds, cpu, after - before)


async def check_package(package: Package, expected_sha256: str, what: str) -> str:
    """Fail unless the file on disk is the source package; return its SHA-256."""
    actual = await asyncio.get_running_loop().run_in_executor(
        None, sha256_of, package.path
    )
    if actual != expected_sha256 or package.sha256 != expected_sha256:
        raise RuntimeError(
            f"{what}: SHA-256 {actual} (reported {package.sha256}), "
            f"source {expected_sha256}"
        )
    if package.size != PACKAGE_SIZE:
        raise RuntimeError(f"{what}: {package.size} bytes, not {PACKAGE_SIZE}")
    return actual


async def naive_download(
    session: aiohttp.ClientSession, server: Server, root: Path
) -> Package:
    """One chunk at a time: fetch (1014 → 1015, MD5 checked), write, next."""
    chunks = ChunkClient(
        session, host="127.0.0.1", http_port=server.http_port, device_id=DEVICE_ID
    )
    partial = await PackageStore(root).open_partial("naive", PACKAGE_SIZE)
    try:
        for start, end in chunk_ranges(PACKAGE_SIZE):
            data = await chunks.fetch_chunk(
                FILE_NAME, start, end, file_size=PACKAGE_SIZE
            )
            await partial.write(start, data)
    except BaseException:
        await partial.discard()
        raise
    return await partial.complete()


async def ceiling_rate(server: Server) -> tuple[float, float]:
    """Requests/s the simulator answers at most: (rate, this process's CPU seconds).

    ``CEILING_IN_FLIGHT`` workers post pre-encoded 1014 bodies on a session of their
    own and read the replies without decoding them: the lightest client there is.
    """
    bodies = [
        (
            f'{{"ProtocolCode":1014,"Parameters":{{"DeviceId":"{DEVICE_ID}",'
            f'"FileName":"{FILE_NAME}","Start":{start},"End":{end}}}}}'
        ).encode()
        for start, end in chunk_ranges(PACKAGE_SIZE)
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
        self, session: aiohttp.ClientSession, server: Server
    ) -> tuple[BridgeOffer, str]:
        """Push the package (1012 → 1013 0); return the recorded offer and its MD5."""
        answer = await server.push(
            session,
            {
                "DeviceId": DEVICE_ID,
                "Size": PACKAGE_SIZE,
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
        if offer.size != PACKAGE_SIZE:
            raise RuntimeError(f"unexpected offer {offer}")
        return offer, str(answer["md5"])


@dataclass(slots=True)
class Results:
    """Everything the benchmark measured."""

    integration: list[Download]
    naive: Download
    progress_calls: int
    rss: RssSampler
    maxrss_growth: int
    server_ceiling: float
    ceiling_cpu: float
    traced_peak: int
    verified: int
    sha256: str


async def measure_integration(
    bridge: Bridge, offer: BridgeOffer, server: Server, session: aiohttp.ClientSession
) -> tuple[Download, int, RssSampler, int]:
    """Time ``MilingBackend.download``: (download, progress calls, RSS, maxrss growth)."""
    calls = 0

    def progress(_done: int, _total: int | None) -> None:
        nonlocal calls
        calls += 1

    sampler = RssSampler()
    maxrss_before = maxrss_bytes()
    sampler.start()
    try:
        download = await timed_download(
            server, session, lambda: bridge.backend.download(offer, progress)
        )
    finally:
        sampler.stop()
    return download, calls, sampler, max(0, maxrss_bytes() - maxrss_before)


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


async def measure(hass: HomeAssistant, tmp_path: Path) -> Results:
    """Run the downloads and the ceiling against one simulator process."""
    loop = asyncio.get_running_loop()
    source = await loop.run_in_executor(None, source_package, PACKAGE_SIZE)
    source_md5 = hashlib.md5(source, usedforsecurity=False).hexdigest()
    sha256 = hashlib.sha256(source).hexdigest()
    del source
    session = async_get_clientsession(hass)  # what create_backend gives the backend

    async with (
        Server.running(tmp_path / "simulator.log", DELAY) as server,
        Bridge.running(session, server, tmp_path / "integration") as bridge,
    ):
        offer, pushed_md5 = await bridge.offer(session, server)
        if pushed_md5 != source_md5:
            raise RuntimeError("the simulator serves another package than expected")

        # 1. the integration's download path, with memory sampled
        integration: list[Download] = []
        samplers: list[RssSampler] = []
        maxrss_growth = 0
        for _ in range(INTEGRATION_RUNS):
            download, calls, sampler, growth = await measure_integration(
                bridge, offer, server, session
            )
            await check_package(download.package, sha256, "integration")
            await loop.run_in_executor(None, download.package.path.unlink)
            integration.append(download)
            samplers.append(sampler)
            maxrss_growth = max(maxrss_growth, growth)
        verified = len(integration)
        rss = max(samplers, key=lambda sampler: sampler.growth)

        # 2. naive: one chunk at a time
        naive = await timed_download(
            server, session, lambda: naive_download(session, server, tmp_path / "naive")
        )
        await check_package(naive.package, sha256, "naive")
        verified += 1

        # 3. the simulator's ceiling
        server_ceiling, ceiling_cpu = await ceiling_rate(server)

        # 4. Python allocations during an untimed integration download
        traced, traced_peak = await measure_traced(bridge, offer)
        await check_package(traced, sha256, "traced integration")
        verified += 1

    return Results(
        integration=integration,
        naive=naive,
        progress_calls=calls,
        rss=rss,
        maxrss_growth=maxrss_growth,
        server_ceiling=server_ceiling,
        ceiling_cpu=ceiling_cpu,
        traced_peak=traced_peak,
        verified=verified,
        sha256=sha256,
    )


def report(results: Results) -> None:
    """Print the numbers and record the summary rows."""
    runs, naive = results.integration, results.naive
    integration = sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]  # median
    workers = in_flight(LOAD_CONDITION)
    ratio = integration.mib_per_s / naive.mib_per_s
    round_trip = naive.seconds / naive.requests
    latency_bound = workers / round_trip
    ceiling = min(latency_bound, results.server_ceiling)
    rss = results.rss

    say()
    say(
        f"[{BENCH}] {PACKAGE_SIZE // MIB} MiB package "
        f"({len(chunk_ranges(PACKAGE_SIZE))} chunks of {MAX_CHUNK_SIZE} bytes), "
        f"simulator in another process with {DELAY * 1000:.0f} ms delay per request"
    )
    say(
        f"  integration (MilingBackend.download, {workers} in flight, checkpoint "
        f"every {CHECKPOINT_EVERY} chunks): {integration.seconds:.2f} s, "
        f"{integration.mib_per_s:.2f} MiB/s, {integration.requests} requests, "
        f"CPU {integration.cpu_seconds:.2f} s, {results.progress_calls} progress calls"
        f" (median of {len(runs)}: "
        + ", ".join(f"{run.seconds:.2f} s" for run in runs)
        + ")"
    )
    say(
        f"  naive (one chunk at a time): {naive.seconds:.2f} s, "
        f"{naive.mib_per_s:.2f} MiB/s, {naive.requests} requests, "
        f"CPU {naive.cpu_seconds:.2f} s, round trip {round_trip * 1000:.2f} ms"
    )
    say(f"  integration / naive: {ratio:.1f}x")
    say(
        f"  requests/s: integration {integration.requests_per_s:.0f}, "
        f"naive {naive.requests_per_s:.0f}"
    )
    say(
        f"  ceiling: {workers} in flight x 1000/s at exactly {DELAY * 1000:.0f} ms "
        f"= {workers / DELAY:.0f}/s; with the measured round trip "
        f"{latency_bound:.0f}/s; simulator CPU bound ({CEILING_IN_FLIGHT} in flight, "
        f"{CEILING_REQUESTS} requests, load generator CPU "
        f"{results.ceiling_cpu:.2f} s) {results.server_ceiling:.0f}/s; "
        f"ceiling = the lower, {ceiling:.0f}/s"
    )
    say(
        f"  memory: VmRSS peak growth {rss.growth / MIB:.2f} MiB ({rss.samples} "
        f"samples, baseline {rss.baseline / MIB:.0f} MiB), ru_maxrss growth "
        f"{results.maxrss_growth / MIB:.2f} MiB, tracemalloc peak "
        f"{results.traced_peak / MIB:.2f} MiB (separate untimed download)"
    )
    say(f"  SHA-256 of every downloaded file = source {results.sha256[:16]}…")

    record(
        BENCH,
        f"integration throughput ({workers} in flight, median of {len(runs)})",
        integration.mib_per_s,
        "MiB/s",
    )
    record(BENCH, "naive throughput (1 at a time)", naive.mib_per_s, "MiB/s")
    record(
        BENCH,
        "integration / naive throughput",
        ratio,
        "x",
        target=TARGET_RATIO,
        better=at_least,
        target_text=f">= {TARGET_RATIO:.0f} x",
        fmt=".1f",
    )
    record(
        BENCH, "integration requests/s", integration.requests_per_s, "req/s", fmt=".0f"
    )
    record(
        BENCH,
        f"ceiling: latency ({workers} / {round_trip * 1000:.2f} ms round trip)",
        latency_bound,
        "req/s",
        fmt=".0f",
    )
    record(
        BENCH,
        f"ceiling: simulator CPU ({CEILING_IN_FLIGHT} in flight)",
        results.server_ceiling,
        "req/s",
        fmt=".0f",
    )
    record(
        BENCH,
        "integration requests/s / ceiling",
        100 * integration.requests_per_s / ceiling,
        "%",
        fmt=".0f",
    )
    record(
        BENCH,
        f"peak memory growth (VmRSS sampled, worst of {len(runs)})",
        rss.growth / MIB,
        "MiB",
        target=TARGET_MEMORY_MIB,
        better=below,
        target_text=f"< {TARGET_MEMORY_MIB:.0f} MiB",
    )
    record(BENCH, "ru_maxrss growth", results.maxrss_growth / MIB, "MiB")
    record(
        BENCH,
        "Python allocations peak (tracemalloc)",
        results.traced_peak / MIB,
        "MiB",
    )
    record(
        BENCH,
        "downloads whose SHA-256 equals the source",
        results.verified,
        target=INTEGRATION_RUNS + 2,
        better=at_least,
        target_text=f"{INTEGRATION_RUNS + 2} of {INTEGRATION_RUNS + 2}",
        fmt="d",
    )


@pytest.mark.timeout(600)  # the naive download alone takes ~10-20 s
async def test_download(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path
) -> None:
    """16 MiB from the simulator: integration vs naive, request rate, memory."""
    report(await measure(hass, tmp_path))
