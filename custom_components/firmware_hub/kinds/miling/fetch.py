"""Miling package download: MD5-checked chunks, an adaptive number in flight, resumable.

The package is fetched in ≤2048-byte chunks (1014 → 1015) into the package store's
`PartialFile`. How many requests are in flight follows the server's answers
(`core.window.AdaptiveWindow`: it starts at two, grows while the round trip holds,
shrinks on Status 2, errors, timeouts and a rising LoadCondition), never more than
the configured maximum; a chunk waiting for its retry gives its slot back. Verified
chunks are written at their offsets in batches (one executor job per `FLUSH_BYTES`,
contiguous chunks joined); each written chunk's MD5 (computed once, for the check)
is recorded in a ledger beside the partial file, saved with every checkpoint. The protocol has no whole-file checksum, so a
resume trusts nothing it cannot check:

- a chunk counts as done only when the partial file covers it *and* the ledger holds
  its MD5 *and* the bytes on disk still have that MD5;
- before resuming, a sample of the finished chunks (all of them when there are few)
  is fetched again and compared with the ledger: one difference means the server's
  file changed since, and the partial file is discarded and the download restarts
  from the first byte (old bytes followed by new bytes are never assembled).

No Home Assistant imports; file I/O runs in the executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
import hashlib
import json
import logging
import os
import random
from typing import Any, Final

from ...core.backend import DeviceResponseError
from ...core.packages import (
    IntegrityError,
    Package,
    PackageError,
    PackageStore,
    PartialFile,
)
from ...core.retry import Backoff
from ...core.window import AdaptiveWindow, Outcome
from .protocol.chunks import ChunkClient, chunk_ranges
from .protocol.errors import (
    ChunkChecksumError,
    ChunkError,
    ChunkMissingError,
    ChunkServerError,
    MilingConnectionError,
)

_LOGGER = logging.getLogger(__name__)

#: Default bound of the requests in flight (the option `max_requests_in_flight`).
DEFAULT_MAX_IN_FLIGHT: Final = 32
#: The option's range.
MIN_IN_FLIGHT: Final = 1
MAX_IN_FLIGHT: Final = 64
#: Requests in flight at the start of a download (the window grows from there).
INITIAL_IN_FLIGHT: Final = 2
#: Chunks between two checkpoints of the partial download (≈ 1 MiB).
CHECKPOINT_EVERY: Final = 512
#: Verified bytes gathered before they are written (one executor job).
FLUSH_BYTES: Final = 64 * 1024
#: Finished chunks fetched again before a resume (all of them when fewer).
RESUME_SAMPLE: Final = 8
_LEDGER_SUFFIX: Final = ".md5.json"
_RANDOM = random.Random()  # noqa: S311 - sampling, not security

type Progress = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class FetchTiming:
    """Retries of one chunk (tests shorten them)."""

    attempts: int = 10  # per chunk, for retryable errors (Status 2 is routine)
    # A chunk waiting for its retry holds no slot: the window, not this wait,
    # is what slows the download down for a struggling server.
    retry: Backoff = field(
        default_factory=lambda: Backoff(initial=0.2, maximum=10.0, jitter=0.5)
    )


def partial_key(file_name: str, size: int, version: str) -> str:
    """Return the store key of an offer's partial download (no network text)."""
    digest = hashlib.sha256(f"{file_name}\0{size}\0{version}".encode()).hexdigest()
    return digest[:32]


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class ChunkLedger:
    """The MD5 of every finished chunk (by its Start), saved beside the partial."""

    def __init__(self, partial: PartialFile) -> None:
        """Belong to `partial`; call `load` (executor) to read what was saved."""
        self.data_path = partial.path
        self.path = partial.path.with_name(partial.path.name + _LEDGER_SUFFIX)
        self.size = partial.size
        self.md5: dict[int, str] = {}

    def load(self) -> None:
        """Read the saved MD5s; anything unreadable counts as nothing (executor)."""
        try:
            doc: Any = json.loads(self.path.read_text())
        except OSError, ValueError:
            return
        if not isinstance(doc, dict) or doc.get("size") != self.size:
            return
        chunks = doc.get("md5")
        if isinstance(chunks, dict):
            self.md5 = {
                int(start): value
                for start, value in chunks.items()
                if start.isdecimal() and isinstance(value, str)
            }

    def snapshot(self) -> dict[int, str]:
        """Return a copy of the MD5s to `save` (taken on the event loop)."""
        return dict(self.md5)

    def save(self, md5: dict[int, str]) -> None:
        """Write `md5` (a `snapshot`) atomically (executor; after the data)."""
        doc = {"size": self.size, "md5": {str(k): v for k, v in md5.items()}}
        temp = self.path.with_name(self.path.name + ".tmp")
        temp.write_text(json.dumps(doc, separators=(",", ":")))
        temp.replace(self.path)

    def remove(self) -> None:
        """Forget the ledger (download finished or discarded; executor)."""
        self.md5 = {}
        self.path.unlink(missing_ok=True)

    def intact(self, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Return the ranges whose bytes on disk still have their MD5 (executor)."""
        good: list[tuple[int, int]] = []
        with self.data_path.open("rb") as handle:
            for start, end in ranges:
                data = os.pread(handle.fileno(), end - start + 1, start)
                if _md5(data) == self.md5[start]:
                    good.append((start, end))
        return good


async def _run[T](func: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


class _ChunkWriter:
    """Writes verified chunks in batches; records their MD5s once they are written."""

    def __init__(
        self, partial: PartialFile, ledger: ChunkLedger, progress: Progress
    ) -> None:
        self._partial = partial
        self._ledger = ledger
        self._progress = progress
        self._pending: list[tuple[int, bytes, str]] = []
        self._pending_bytes = 0
        self._unsaved = 0
        self._lock = asyncio.Lock()

    async def add(self, start: int, data: bytes, md5: str) -> None:
        """Take a verified chunk; write the batch once it is large enough."""
        self._pending.append((start, data, md5))
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        """Write what is pending (contiguous chunks joined), then checkpoint."""
        async with self._lock:  # one batch and one checkpoint at a time
            batch, self._pending, self._pending_bytes = self._pending, [], 0
            if not batch:
                return
            batch.sort()
            partial, ledger = self._partial, self._ledger
            run_start, run = batch[0][0], [batch[0][1]]
            run_end = run_start + len(run[0])
            for start, data, _md5 in batch[1:]:
                if start != run_end:
                    await partial.write(run_start, b"".join(run))
                    run_start, run = start, []
                run.append(data)
                run_end = start + len(data)
            await partial.write(run_start, b"".join(run))
            for start, _data, md5 in batch:  # only chunks that are on disk
                ledger.md5[start] = md5
            self._unsaved += len(batch)
            if self._unsaved >= CHECKPOINT_EVERY:
                self._unsaved = 0
                await partial.checkpoint()
                await _run(ledger.save, ledger.snapshot())
            self._progress(partial.bytes_done, partial.size)


class ChunkDownloader:
    """Fetches one offer's package into the store; resumes what it can verify."""

    def __init__(
        self,
        chunks: ChunkClient,
        store: PackageStore,
        timing: FetchTiming,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        """Use `chunks` for the wire and `store` for the partial and final files."""
        if not MIN_IN_FLIGHT <= max_in_flight <= MAX_IN_FLIGHT:
            raise ValueError(f"max_in_flight must be {MIN_IN_FLIGHT}..{MAX_IN_FLIGHT}")
        self._chunks = chunks
        self._store = store
        self._timing = timing
        self.max_in_flight = max_in_flight
        self._load = 0
        #: The window of the download running now (None between downloads).
        self.window: AdaptiveWindow | None = None

    def set_load_condition(self, level: int) -> None:
        """Take the server's load hint (a 1012's LoadCondition), also mid-download."""
        self._load = level
        if self.window is not None:
            self.window.set_load(level)

    async def download(
        self,
        file_name: str,
        size: int,
        version: str,
        *,
        progress: Progress,
    ) -> Package:
        """Fetch every chunk not verifiably done, then assemble the package."""
        key = partial_key(file_name, size, version)
        window = self.window = AdaptiveWindow(
            self.max_in_flight, initial=INITIAL_IN_FLIGHT, load=self._load
        )
        partial, ledger = await self._open(key, size)
        writer: _ChunkWriter | None = None
        try:
            done = await self._resumable(partial, ledger, file_name, size)
            if done is None:  # the server's file changed: start again
                await self._discard(partial, ledger)
                partial, ledger = await self._open(key, size)
                done = set()
            todo = [r for r in chunk_ranges(size) if r[0] not in done]
            progress(partial.bytes_done, size)
            writer = _ChunkWriter(partial, ledger, progress)
            await self._fetch_all(file_name, size, todo, writer)
            await writer.flush()
        except ChunkMissingError as err:
            await self._discard(partial, ledger)
            raise DeviceResponseError(f"the server no longer has {file_name}") from err
        except ChunkChecksumError as err:
            await self._discard(partial, ledger)
            raise IntegrityError(
                f"chunk {err.start}-{err.end} keeps failing its MD5"
            ) from err
        except BaseException:
            if writer is not None:  # verified chunks not written yet: keep them
                with contextlib.suppress(OSError, PackageError):
                    await writer.flush()
            await partial.close()  # keep finished chunks (and their MD5s) to resume
            await _run(ledger.save, ledger.snapshot())
            raise
        finally:
            if self.window is window:
                self.window = None
        package = await partial.complete()
        await _run(ledger.remove)
        return package

    async def _open(self, key: str, size: int) -> tuple[PartialFile, ChunkLedger]:
        partial = await self._store.open_partial(key, size)
        ledger = ChunkLedger(partial)
        await _run(ledger.load)
        return partial, ledger

    @staticmethod
    async def _discard(partial: PartialFile, ledger: ChunkLedger) -> None:
        await partial.discard()
        await _run(ledger.remove)

    async def _resumable(
        self, partial: PartialFile, ledger: ChunkLedger, file_name: str, size: int
    ) -> set[int] | None:
        """Return the Starts of the chunks to keep; None when the source changed."""
        recorded = [
            (start, end)
            for start, end in chunk_ranges(size)
            if start in ledger.md5 and partial.covered(start, end + 1)
        ]
        if not recorded:
            return set()
        intact = await _run(ledger.intact, recorded)
        sample = intact
        if len(intact) > RESUME_SAMPLE:
            # The first and the last finished chunk, and some in between.
            middle = _RANDOM.sample(intact[1:-1], RESUME_SAMPLE - 2)
            sample = [intact[0], *middle, intact[-1]]
        for start, end in sample:
            _data, md5 = await self._fetch_chunk(file_name, size, start, end)
            if md5 != ledger.md5[start]:
                _LOGGER.warning(
                    "%s changed on the server since the download began "
                    "(chunk %d-%d differs); starting again",
                    file_name,
                    start,
                    end,
                )
                return None
        return {start for start, _end in intact}

    async def _fetch_all(
        self,
        file_name: str,
        size: int,
        todo: list[tuple[int, int]],
        writer: _ChunkWriter,
    ) -> None:
        """Fetch `todo` with workers that each wait for a slot of the window.

        Twice as many workers as the window may grow to, so that chunks waiting
        for a retry (holding no slot) never leave a slot unused.
        """
        window = self.window
        assert window is not None  # noqa: S101 - set by download
        queue = iter(todo)

        async def worker() -> None:
            for start, end in queue:
                data, md5 = await self._fetch_chunk(file_name, size, start, end)
                await writer.add(start, data, md5)

        loop = asyncio.get_running_loop()
        count = min(len(todo), 2 * window.maximum)
        workers = [loop.create_task(worker()) for _ in range(count)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    async def _fetch_chunk(
        self, file_name: str, size: int, start: int, end: int
    ) -> tuple[bytes, str]:
        """Fetch one chunk and its MD5 in a slot of the window, retrying what can be.

        A chunk waiting for its retry holds no slot.
        """
        window = self.window
        assert window is not None  # noqa: S101 - set by download
        attempts = self._timing.attempts
        for attempt in range(1, attempts + 1):
            ticket = await window.acquire()
            try:
                chunk = await self._chunks.fetch_verified(
                    file_name, start, end, file_size=size
                )
            except (ChunkError, MilingConnectionError) as err:
                final = not err.retryable or attempt == attempts
                if final:  # no other chunk starts: the download fails
                    window.close(err)
                busy = isinstance(err, ChunkServerError)
                window.release(ticket, Outcome.BUSY if busy else Outcome.FAILED)
                if final:
                    if isinstance(err, (ChunkMissingError, ChunkChecksumError)):
                        raise
                    raise PackageError(f"chunk download failed: {err}") from err
            except BaseException:
                window.release(ticket, Outcome.NEUTRAL)
                raise
            else:
                window.release(ticket, Outcome.OK)
                return chunk
            await asyncio.sleep(self._timing.retry.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover
