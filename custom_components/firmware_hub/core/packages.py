"""Firmware package store: downloads that are complete and verified, or nothing.

Packages live in `<config>/firmware_hub/<entry_id>/`. A download is written to a
temporary name, checksummed while it streams, and renamed to its final name only
once its size and checksums are verified. File names from the network never become
paths: a ready package is named after its own SHA-256.

Two ways in:
- `PackageStore.download()` streams an HTTP(S) URL, resuming with `Range` after a
  dropped connection and retrying with backoff (EnOS).
- `PackageStore.open_partial()` assembles a file from chunks written at their
  offsets, remembering which chunks are done so a restart resumes (Miling).

No Home Assistant imports; file I/O runs in the executor, never on the event loop.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import hashlib
import json
import logging
import os
from pathlib import Path
import re
import secrets
import shutil
from typing import IO, Any, Final

import aiohttp
from aiohttp import hdrs

_LOGGER = logging.getLogger(__name__)

#: Bytes read from the network per step (and per executor write).
STREAM_CHUNK: Final = 1024 * 1024
#: Space kept free beyond the package itself.
FREE_SPACE_MARGIN: Final = 16 * 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_PARTIAL_SUFFIX: Final = ".part"
_STATE_SUFFIX: Final = ".json"

#: Progress callback: (bytes done, total bytes or None).
Progress = Callable[[int, int | None], None]


class PackageError(Exception):
    """Base class of package store errors."""


class DownloadError(PackageError):
    """The package could not be downloaded (after retries)."""


class IntegrityError(PackageError):
    """The package's size or checksum is not what was announced."""


class InsufficientSpaceError(PackageError):
    """Not enough free disk space for the package."""


@dataclass(frozen=True, slots=True)
class Expected:
    """What the offer announces about a package."""

    size: int | None = None
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Package:
    """A complete, verified package on disk."""

    path: Path
    size: int
    md5: str
    sha256: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a download is retried."""

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 60.0  # without a byte arriving

    def delay(self, attempt: int) -> float:
        """Return the wait before retry number `attempt` (1-based)."""
        return float(min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1)))


async def _run[T](func: Callable[..., T], *args: Any) -> T:
    """Run blocking file work in the executor."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


class _Hashes:
    def __init__(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)


class _Sink:
    """Writes and checksums a stream in order, beside the network reads.

    Three single-thread executors, one each for the file, the MD5 and the SHA-256
    (file writes and hashlib release the GIL), so receiving, writing and both
    checksums overlap. At most `_MAX_PENDING` chunks wait, which bounds memory.
    """

    _MAX_PENDING: Final = 4

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.hashes = _Hashes()
        self.size = 0
        self._threads = [
            ThreadPoolExecutor(1, thread_name_prefix=f"firmware_hub_{name}")
            for name in ("write", "md5", "sha256")
        ]
        self._pending: deque[asyncio.Future[Any]] = deque()

    async def feed(self, data: bytes) -> None:
        """Queue `data` for writing and checksumming."""
        loop = asyncio.get_running_loop()
        self.size += len(data)
        self.hashes.size += len(data)
        write, md5, sha256 = self._threads
        self._pending.append(
            asyncio.gather(
                loop.run_in_executor(write, self._handle.write, data),
                loop.run_in_executor(md5, self.hashes.md5.update, data),
                loop.run_in_executor(sha256, self.hashes.sha256.update, data),
            )
        )
        if len(self._pending) > self._MAX_PENDING:
            await self._pending.popleft()

    async def drain(self) -> None:
        """Wait until everything fed is written and checksummed."""
        while self._pending:
            await self._pending.popleft()

    async def restart(self) -> None:
        """Forget everything written (the server sends the file from the start)."""
        await self.drain()
        await asyncio.get_running_loop().run_in_executor(
            self._threads[0], _truncate, self._handle
        )
        self.hashes = _Hashes()
        self.size = 0

    async def close(self) -> None:
        """Finish pending work, close the file, stop the threads."""
        try:
            await self.drain()
        finally:
            await _run(self._handle.close)
            for thread in self._threads:
                await _run(thread.shutdown)


def _same_hex(announced: str | None, actual: str) -> bool:
    return announced is None or announced.strip().lower() == actual


def _verify(hashes: _Hashes, expected: Expected) -> tuple[str, str]:
    md5, sha256 = hashes.md5.hexdigest(), hashes.sha256.hexdigest()
    if expected.size is not None and hashes.size != expected.size:
        raise IntegrityError(
            f"size {hashes.size} differs from announced {expected.size}"
        )
    if not _same_hex(expected.md5, md5):
        raise IntegrityError(f"MD5 {md5} differs from announced {expected.md5}")
    if not _same_hex(expected.sha256, sha256):
        raise IntegrityError(
            f"SHA-256 {sha256} differs from announced {expected.sha256}"
        )
    return md5, sha256


class PackageStore:
    """One config entry's packages."""

    def __init__(self, root: Path) -> None:
        """Use `root` (created on demand) for this entry's packages."""
        self.root = root

    def _prepare(self, size: int | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if size is not None:
            free = shutil.disk_usage(self.root).free
            if free < size + FREE_SPACE_MARGIN:
                raise InsufficientSpaceError(
                    f"{size} bytes needed, {free} free in {self.root}"
                )

    def finish(self, temp: Path, sha256: str) -> Path:
        """Give a verified file its final name (executor)."""
        final = self.root / f"package-{sha256[:16]}.bin"
        temp.replace(final)
        return final

    async def download(
        self,
        session: aiohttp.ClientSession,
        url: str,
        expected: Expected,
        *,
        progress: Progress | None = None,
        headers: dict[str, str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> Package:
        """Download `url`, verify it against `expected`, and keep it.

        Raises `DownloadError` when it cannot be fetched, `IntegrityError` when it
        is not the announced package, `InsufficientSpaceError` before starting when
        it cannot fit. Nothing but a verified package is ever left behind.
        """
        retry = retry or RetryPolicy()
        await _run(self._prepare, expected.size)
        temp = self.root / f".download-{secrets.token_hex(8)}{_PARTIAL_SUFFIX}"
        sink = _Sink(await _run(temp.open, "wb"))
        try:
            await self._stream(
                session, url, sink, expected, progress, headers or {}, retry
            )
            await sink.close()
            md5, sha256 = _verify(sink.hashes, expected)
            final = await _run(self.finish, temp, sha256)
        except BaseException:
            await sink.close()
            await _run(temp.unlink, True)
            raise
        return Package(final, sink.hashes.size, md5, sha256)

    async def _stream(
        self,
        session: aiohttp.ClientSession,
        url: str,
        sink: _Sink,
        expected: Expected,
        progress: Progress | None,
        headers: dict[str, str],
        retry: RetryPolicy,
    ) -> None:
        total = expected.size
        failures = 0
        timeout = aiohttp.ClientTimeout(total=None, sock_read=retry.timeout)
        while True:
            request_headers = dict(headers)
            if sink.size:
                request_headers[hdrs.RANGE] = f"bytes={sink.size}-"
            try:
                async with session.get(
                    url, headers=request_headers, timeout=timeout
                ) as resp:
                    await self._resume_point(resp, sink)
                    if total is None and resp.content_length is not None:
                        total = sink.size + resp.content_length
                    async for data in resp.content.iter_chunked(STREAM_CHUNK):
                        await sink.feed(data)
                        if total is not None and sink.size > total:
                            raise IntegrityError("more data than announced")
                        if progress is not None:
                            progress(sink.size, total)
                    return
            except (aiohttp.ClientError, TimeoutError) as err:
                failures += 1
                if failures >= retry.attempts:
                    raise DownloadError(
                        f"download failed after {failures} attempts: {err!r}"
                    ) from err
                delay = retry.delay(failures)
                _LOGGER.info(
                    "Package download interrupted at %d bytes (%r); retrying in %.1f s",
                    sink.size,
                    err,
                    delay,
                )
                await asyncio.sleep(delay)

    @staticmethod
    async def _resume_point(resp: aiohttp.ClientResponse, sink: _Sink) -> None:
        """Check the answer; start over when a resume was not honoured."""
        if 400 <= resp.status < 500:  # noqa: PLR2004
            raise DownloadError(f"HTTP {resp.status} for the package")
        resp.raise_for_status()
        if not sink.size:
            return
        if resp.status != 206:  # noqa: PLR2004
            _LOGGER.debug("Server ignored Range; restarting the download")
            await sink.restart()
            return
        _check_content_range(resp, sink.size)

    async def open_partial(self, name: str, size: int) -> PartialFile:
        """Open (or resume) a chunked download; `name` must be a safe local key.

        The caller derives `name` from data it trusts (e.g. a hash of the offer),
        never from a network file name.
        """
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise ValueError(f"unsafe partial name {name!r}")
        await _run(self._prepare, size)
        partial = PartialFile(
            self, self.root / f".chunks-{name}{_PARTIAL_SUFFIX}", size
        )
        await _run(partial.load)
        return partial

    async def prune(self, keep: Iterable[Path] = (), *, partials: bool = False) -> None:
        """Delete the ready packages except `keep`.

        With `partials`, also delete unfinished downloads (only when none runs:
        another download's temporary file must not vanish under it).
        """
        await _run(self._prune, {Path(path) for path in keep}, partials)

    def _prune(self, keep: set[Path], partials: bool) -> None:
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if path in keep or not path.is_file():
                continue
            if path.name.startswith("package-") or (
                partials and path.name.startswith(".")
            ):
                path.unlink(missing_ok=True)

    async def remove_all(self) -> None:
        """Delete the entry's whole package directory (entry removed)."""
        await _run(shutil.rmtree, self.root, True)


def _is_chunk(value: Any, size: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2  # noqa: PLR2004
        and all(isinstance(part, int) and not isinstance(part, bool) for part in value)
        and value[0] >= 0
        and value[1] > 0
        and value[0] + value[1] <= size
    )


def _truncate(handle: IO[bytes]) -> None:
    handle.seek(0)
    handle.truncate()


def _check_content_range(resp: aiohttp.ClientResponse, start: int) -> None:
    match = _CONTENT_RANGE.fullmatch(resp.headers.get(hdrs.CONTENT_RANGE, ""))
    if match is None or int(match.group(1)) != start:
        raise DownloadError(
            f"server resumed at {resp.headers.get(hdrs.CONTENT_RANGE)!r}, not {start}"
        )


class PartialFile:
    """A file assembled from chunks at offsets, resumable across restarts.

    What is done is kept as merged byte ranges (a handful, however many chunks)
    in a small JSON file beside the data, written after the data is flushed, so a
    range marked done is really on disk.
    """

    def __init__(self, store: PackageStore, path: Path, size: int) -> None:
        """Initialize; call `load` (in the executor) before use."""
        self._store = store
        self.path = path
        self.size = size
        self._state_path = path.with_name(path.name + _STATE_SUFFIX)
        #: Written byte ranges [start, end), sorted and merged.
        self._starts: list[int] = []
        self._ends: list[int] = []
        self.bytes_done = 0
        self._handle: IO[bytes] | None = None

    def _file(self) -> IO[bytes]:
        if self._handle is None:
            raise PackageError("the partial download is closed")
        return self._handle

    def load(self) -> None:
        """Open the data file and read which ranges are done (executor)."""
        state: dict[str, Any] = {}
        if self.path.exists() and self._state_path.exists():
            try:
                state = json.loads(self._state_path.read_text())
            except OSError, ValueError:
                state = {}
        ranges = state.get("done")
        self._starts, self._ends, self.bytes_done = [], [], 0
        if state.get("size") == self.size and isinstance(ranges, list):
            for item in ranges:
                if _is_chunk(item, self.size):
                    self._add(item[0], item[0] + item[1])
            self._handle = self.path.open("r+b")
        else:
            self._handle = self.path.open("w+b")
            self._handle.truncate(self.size)

    def _add(self, start: int, end: int) -> None:
        """Mark [start, end) written, merging with neighbouring ranges."""
        index = bisect.bisect_left(self._starts, start)
        # Merge with the range before when it touches or overlaps.
        if index and self._ends[index - 1] >= start:
            index -= 1
            start = self._starts[index]
            end = max(end, self._ends[index])
            self.bytes_done -= self._ends[index] - self._starts[index]
            del self._starts[index], self._ends[index]
        # Swallow the ranges after it that it reaches.
        while index < len(self._starts) and self._starts[index] <= end:
            end = max(end, self._ends[index])
            self.bytes_done -= self._ends[index] - self._starts[index]
            del self._starts[index], self._ends[index]
        self._starts.insert(index, start)
        self._ends.insert(index, end)
        self.bytes_done += end - start

    def covered(self, start: int, end: int) -> bool:
        """Return whether [start, end) is entirely written."""
        index = bisect.bisect_right(self._starts, start) - 1
        return index >= 0 and self._ends[index] >= end

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """Return the written ranges as (start, end) pairs."""
        return list(zip(self._starts, self._ends, strict=True))

    @property
    def paths(self) -> tuple[Path, Path]:
        """Return the data and state files (to keep when pruning)."""
        return self.path, self._state_path

    def _write(self, start: int, data: bytes) -> None:
        # Positional: several chunks are written concurrently from the executor.
        os.pwrite(self._file().fileno(), data, start)

    async def write(self, start: int, data: bytes) -> None:
        """Write a verified chunk at its offset."""
        if start < 0 or start + len(data) > self.size:
            raise IntegrityError(f"chunk {start}+{len(data)} outside 0..{self.size}")
        await _run(self._write, start, data)
        self._add(start, start + len(data))

    def _save_state(self, ranges: list[list[int]]) -> None:
        handle = self._file()
        handle.flush()
        os.fsync(handle.fileno())
        temp = self._state_path.with_name(self._state_path.name + ".tmp")
        temp.write_text(json.dumps({"size": self.size, "done": ranges}))
        temp.replace(self._state_path)

    async def checkpoint(self) -> None:
        """Persist which ranges are done (call now and then, and before stopping)."""
        ranges = [
            [start, end - start]
            for start, end in zip(self._starts, self._ends, strict=True)
        ]
        await _run(self._save_state, ranges)

    def missing(self) -> int | None:
        """Return the first offset no written range covers (None: complete)."""
        if not self._starts or self._starts[0] > 0:
            return 0
        return None if self._ends[0] >= self.size else self._ends[0]

    def _complete(self) -> Package:
        if (gap := self.missing()) is not None:
            raise IntegrityError(f"no chunk covers offset {gap}")
        handle = self._file()
        handle.flush()
        handle.seek(0)
        hashes = _Hashes()
        while data := handle.read(STREAM_CHUNK):
            hashes.update(data)
        handle.close()
        self._handle = None
        md5, sha256 = _verify(hashes, Expected(size=self.size))
        final = self._store.finish(self.path, sha256)
        self._state_path.unlink(missing_ok=True)
        return Package(final, hashes.size, md5, sha256)

    async def complete(self) -> Package:
        """Check the size, checksum the whole file once, and keep it as ready."""
        return await _run(self._complete)

    def _discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.path.unlink(missing_ok=True)
        self._state_path.unlink(missing_ok=True)

    async def discard(self) -> None:
        """Delete the partial data (failed for good)."""
        await _run(self._discard)

    async def close(self) -> None:
        """Persist progress and close, keeping the partial data for a resume."""
        if self._handle is not None:
            await self.checkpoint()
            handle, self._handle = self._handle, None
            await _run(handle.close)
