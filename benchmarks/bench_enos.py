"""EnOS package download: throughput against curl, and memory.

``scripts/bench enos``. A 64 MiB package is served by the EnOS simulator's firmware
file server (``tests.simulators.enos.FirmwareFileServer``) in a SEPARATE process, so
its CPU does not count against the client. In the same run:

- ``curl`` fetches the file to disk (the baseline a download cannot beat by much);
- the reference pipeline ``curl -s URL | tee FILE | tee >(md5sum) | sha256sum``
  does what the integration must do with the same bytes: write them to disk and
  compute both digests (each tool in its own process, so on as many cores);
- the integration's download path, ``PackageStore.download`` (streaming to a
  temporary file in the executor, MD5 and SHA-256 in one pass, verified, renamed),
  fetches it with the SHA-256 the offer would announce.

Each is run ``RUNS`` times; the medians give the throughput ratio (target >= 0.8 of
curl; on loopback curl runs near memory speed, while every verified download
must at least compute the MD5 and SHA-256 the hand-off event carries, so the MD5
rate of one core is printed as the ceiling), and >= 1.0 of the pipeline. CPU
seconds per GiB: for curl and the pipeline, the CPU time of the reaped child
processes (``RUSAGE_CHILDREN``); for the integration, this process's CPU time (every
thread) while it downloads. Peak memory growth is the largest resident set size (``VmRSS``, sampled every
5 ms) above the value before the download (target < 20 MiB: streaming, one pass).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import hashlib
import json
import os
from pathlib import Path
import resource
import shutil
import statistics
import sys
import tempfile
import time

import aiohttp

from custom_components.firmware_hub.core.packages import Expected, PackageStore

from .report import record

BENCH = "enos"
SIZE = 64 * 1024 * 1024
RUNS = 5
REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER = """
import asyncio, json, sys
from pathlib import Path
from tests.simulators.enos import FirmwareFileServer

async def main():
    server = FirmwareFileServer()
    server.add("package.bin", Path(sys.argv[1]))
    await server.start()
    print(json.dumps({"url": server.url("package.bin")}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()

asyncio.run(main())
"""


def say(text: str) -> None:
    """Print a line of the report (benchmarks talk to the terminal)."""
    sys.stdout.write(text + "\n")


def _rss() -> int:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.asynccontextmanager
async def _file_server(path: Path) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        str(path),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    if process.stdout is None or process.stdin is None:  # pragma: no cover - PIPE
        raise RuntimeError("no pipes to the file server")
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        yield str(json.loads(line)["url"])
    finally:
        process.stdin.close()
        await process.wait()


PIPELINE = (
    'set -o pipefail; exec 3> >(md5sum > "$3"); md5=$!;'
    ' curl -s --fail "$1" | tee "$2" | tee /dev/fd/3 | sha256sum > "$4";'
    " status=$?; exec 3>&-; wait $md5; exit $status"
)
"""The reference ``curl -s URL | tee FILE | tee >(md5sum) | sha256sum``: the same
bytes to disk and through MD5 and SHA-256. The ``>(md5sum)`` is opened by the shell
itself (not inside the pipeline's subshell) so that it can wait for its digest."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _curl(url: str, target: Path) -> tuple[float, float]:
    start, cpu = time.perf_counter(), _children_cpu()
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--fail", "-o", str(target), url
    )
    if await process.wait() != 0:
        raise RuntimeError("curl failed")
    return time.perf_counter() - start, _children_cpu() - cpu


async def _pipeline(url: str, tmp: Path, md5: str, sha256: str) -> tuple[float, float]:
    target, md5_out, sha_out = (tmp / name for name in ("pipe.bin", "md5", "sha"))
    start, cpu = time.perf_counter(), _children_cpu()
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", PIPELINE, "pipeline", url, str(target), str(md5_out), str(sha_out)
    )
    if await process.wait() != 0:
        raise RuntimeError("the reference pipeline failed")
    elapsed, used = time.perf_counter() - start, _children_cpu() - cpu
    digests = (md5_out.read_text().split()[0], sha_out.read_text().split()[0])
    if digests != (md5, sha256) or target.stat().st_size != SIZE:
        raise RuntimeError(f"the pipeline computed {digests}, not ({md5}, {sha256})")
    for path in (target, md5_out, sha_out):
        path.unlink()
    return elapsed, used


async def _ours(url: str, root: Path, sha256: str) -> tuple[float, float, int]:
    store = PackageStore(root)
    baseline = _rss()
    peak = baseline
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss())
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    start, cpu = time.perf_counter(), time.process_time()
    async with aiohttp.ClientSession() as session:
        package = await store.download(session, url, Expected(size=SIZE, sha256=sha256))
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    done.set()
    await sampler
    if package.sha256 != sha256:
        raise RuntimeError("downloaded package differs from the source")
    await store.remove_all()
    return elapsed, used, peak - baseline


def _hash_rate(name: str) -> float:
    """Return how many MiB/s one core hashes with ``name`` (CPU time)."""
    block = os.urandom(1 << 20)
    digest = hashlib.new(name, usedforsecurity=False)
    start = time.process_time()
    for _ in range(SIZE // len(block)):
        digest.update(block)
    return SIZE / (1 << 20) / (time.process_time() - start)


def _make_source(path: Path) -> tuple[str, str]:
    """Write SIZE random bytes to ``path``; return their MD5 and SHA-256."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("wb") as out:
        for _ in range(SIZE // (1 << 20)):
            chunk = os.urandom(1 << 20)
            sha256.update(chunk)
            md5.update(chunk)
            out.write(chunk)
    return md5.hexdigest(), sha256.hexdigest()


async def test_download_throughput(socket_enabled: None) -> None:
    """64 MiB from the loopback file server: our download path against curl."""
    if shutil.which("curl") is None:
        raise RuntimeError("curl is needed for the baseline")
    with tempfile.TemporaryDirectory(prefix="bench-enos-") as tmp:
        source = Path(tmp) / "source.bin"
        md5, sha256 = _make_source(source)
        curl_times: list[float] = []
        curl_cpu: list[float] = []
        pipe_times: list[float] = []
        pipe_cpu: list[float] = []
        our_times: list[float] = []
        our_cpu: list[float] = []
        growths: list[int] = []
        async with _file_server(source) as url:
            for run in range(RUNS):
                elapsed, used = await _curl(url, Path(tmp) / f"curl-{run}.bin")
                curl_times.append(elapsed)
                curl_cpu.append(used)
                (Path(tmp) / f"curl-{run}.bin").unlink()
                elapsed, used = await _pipeline(url, Path(tmp), md5, sha256)
                pipe_times.append(elapsed)
                pipe_cpu.append(used)
                elapsed, used, growth = await _ours(url, Path(tmp) / "store", sha256)
                our_times.append(elapsed)
                our_cpu.append(used)
                growths.append(growth)
    mib = SIZE / (1 << 20)
    md5_rate = _hash_rate("md5")
    sha256_rate = _hash_rate("sha256")
    curl_rate = mib / statistics.median(curl_times)
    our_rate = mib / statistics.median(our_times)
    pipe_rate = mib / statistics.median(pipe_times)
    gib = SIZE / (1 << 30)
    say(f"\n[{BENCH}] 64 MiB package, {RUNS} runs each")
    say(f"  curl: {[f'{t:.2f}s' for t in curl_times]}")
    say(
        f"  curl | tee | tee >(md5sum) | sha256sum: {[f'{t:.2f}s' for t in pipe_times]}"
    )
    say(
        "  CPU s: curl "
        f"{[f'{c:.2f}' for c in curl_cpu]}, pipeline {[f'{c:.2f}' for c in pipe_cpu]},"
        f" download {[f'{c:.2f}' for c in our_cpu]}"
    )
    say(f"  PackageStore.download: {[f'{t:.2f}s' for t in our_times]}")
    say(f"  RSS growth: {[f'{g / (1 << 20):.1f} MiB' for g in growths]}")
    record(BENCH, "curl throughput (median)", curl_rate, "MiB/s")
    record(BENCH, "pipeline throughput (median)", pipe_rate, "MiB/s")
    record(BENCH, "download throughput (median)", our_rate, "MiB/s")
    # The hand-off event carries both checksums; MD5 is the slower one, and the
    # ceiling of any download that computes it on this machine.
    record(BENCH, "MD5 alone, one core (ceiling)", md5_rate, "MiB/s")
    record(BENCH, "download / MD5 ceiling", our_rate / md5_rate, "x")
    # Where a download's CPU goes: the two digests, then receiving and writing.
    record(BENCH, "SHA-256 alone, one core", sha256_rate, "MiB/s")
    record(
        BENCH,
        "CPU per GiB, MD5 + SHA-256 alone",
        1024 / md5_rate + 1024 / sha256_rate,
        "s",
    )
    record(
        BENCH,
        "download / curl",
        our_rate / curl_rate,
        "x",
        target=0.8,
        better=lambda value, target: value >= target,
        target_text=">= 0.80 x",
    )
    record(
        BENCH,
        "download / pipeline (curl|tee|md5sum|sha256sum)",
        our_rate / pipe_rate,
        "x",
        target=1.0,
        better=lambda value, target: value >= target,
        target_text=">= 1.00 x",
    )
    for name, cpu in (
        ("curl", curl_cpu),
        ("pipeline", pipe_cpu),
        ("download", our_cpu),
    ):
        record(
            BENCH, f"CPU per GiB, {name} (median)", statistics.median(cpu) / gib, "s"
        )
    record(
        BENCH,
        "peak RSS growth during a download (max of runs)",
        max(growths) / (1 << 20),
        "MiB",
        target=20.0,
        better=lambda value, target: value < target,
        target_text="< 20 MiB",
        fmt=".1f",
    )
