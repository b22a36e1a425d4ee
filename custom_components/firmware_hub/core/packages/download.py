"""HTTP(S) download of a package: streamed, checksummed, resumed with `Range`.

A dropped connection resumes where it stopped; failures are retried with the shared
`Backoff`. The bytes go to their offset with positional writes that continue after
short writes, into a file whose space was reserved up front.

No Home Assistant imports; file I/O and hashing run in executor threads.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import logging
import os
import re
from typing import Any, Final

import aiohttp
from aiohttp import hdrs

from ..retry import Backoff
from .base import (
    STREAM_CHUNK,
    DownloadError,
    Expected,
    Hashes,
    IntegrityError,
    Progress,
    disk,
    reserve,
    run,
    write_fully,
)

_LOGGER = logging.getLogger(__name__)

_CONTENT_RANGE: Final = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a download is retried."""

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 60.0  # without a byte arriving

    @property
    def schedule(self) -> Backoff:
        """Return the waits between attempts."""
        return Backoff(initial=self.backoff, maximum=self.max_backoff)


@disk
def _write_at(fd: int, data: bytes, offset: int) -> None:
    write_fully(fd, data, offset)


@disk
def _truncate(fd: int, size: int | None) -> None:
    os.ftruncate(fd, 0)
    if size is not None:
        reserve(fd, size)


class Sink:
    """Writes and checksums a stream in order, beside the network reads.

    Three single-thread executors, one each for the file, the MD5 and the SHA-256
    (file writes and hashlib release the GIL), so receiving, writing and both
    checksums overlap. At most `_MAX_PENDING` chunks wait, which bounds memory.
    """

    _MAX_PENDING: Final = 4

    def __init__(self, fd: int, reserved: int | None) -> None:
        """Write to the open file `fd`, whose `reserved` bytes are allocated."""
        self._fd: int | None = fd
        self._reserved = reserved
        self.hashes = Hashes()
        self.size = 0
        self._threads = [
            ThreadPoolExecutor(1, thread_name_prefix=f"firmware_hub_{name}")
            for name in ("write", "md5", "sha256")
        ]
        self._pending: deque[asyncio.Future[Any]] = deque()

    async def feed(self, data: bytes) -> None:
        """Queue `data` for writing and checksumming."""
        loop = asyncio.get_running_loop()
        assert self._fd is not None  # noqa: S101 - fed only while open
        offset = self.size
        self.size += len(data)
        self.hashes.size += len(data)
        write, md5, sha256 = self._threads
        self._pending.append(
            asyncio.gather(
                loop.run_in_executor(write, _write_at, self._fd, data, offset),
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
        assert self._fd is not None  # noqa: S101 - restarted only while open
        await asyncio.get_running_loop().run_in_executor(
            self._threads[0], _truncate, self._fd, self._reserved
        )
        self.hashes = Hashes()
        self.size = 0

    async def close(self, *, failed: bool = False) -> None:
        """Finish pending work, close the file, stop the threads.

        With `failed` (cleaning up after an error) the pending work's own errors
        are dropped: the first error is the one that counts.
        """
        try:
            if failed:
                pending, self._pending = list(self._pending), deque()
                await asyncio.gather(*pending, return_exceptions=True)
            else:
                await self.drain()
        finally:
            fd, self._fd = self._fd, None
            if fd is not None:
                await run(disk(os.close), fd)
            for thread in self._threads:
                await run(thread.shutdown)


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    sink: Sink,
    expected: Expected,
    progress: Progress | None,
    headers: dict[str, str],
    retry: RetryPolicy,
) -> None:
    """Stream `url` into `sink`, resuming and retrying until complete or failed."""
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
                await _resume_point(resp, sink)
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
            delay = retry.schedule.delay(failures)
            _LOGGER.info(
                "Package download interrupted at %d bytes (%r); retrying in %.1f s",
                sink.size,
                err,
                delay,
            )
            await asyncio.sleep(delay)


async def _resume_point(resp: aiohttp.ClientResponse, sink: Sink) -> None:
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
    match = _CONTENT_RANGE.fullmatch(resp.headers.get(hdrs.CONTENT_RANGE, ""))
    if match is None or int(match.group(1)) != sink.size:
        raise DownloadError(
            f"server resumed at {resp.headers.get(hdrs.CONTENT_RANGE)!r}, "
            f"not {sink.size}"
        )
