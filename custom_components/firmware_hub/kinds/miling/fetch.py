"""Miling package download: MD5-checked chunks, several in flight, resumable.

The package is fetched in ≤2048-byte chunks (1014 → 1015) into the package store's
`PartialFile`. Each finished chunk's MD5 is recorded in a ledger beside the partial
file, saved with every checkpoint. The protocol has no whole-file checksum, so a
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
from .protocol.chunks import ChunkClient, chunk_ranges
from .protocol.errors import (
    ChunkChecksumError,
    ChunkError,
    ChunkMissingError,
    MilingConnectionError,
)

_LOGGER = logging.getLogger(__name__)

#: Requests in flight when the server is idle (LoadCondition 0); halved per level.
MAX_IN_FLIGHT: Final = 16
#: Chunks between two checkpoints of the partial download (≈ 1 MiB).
CHECKPOINT_EVERY: Final = 512
#: Finished chunks fetched again before a resume (all of them when fewer).
RESUME_SAMPLE: Final = 8
_LEDGER_SUFFIX: Final = ".md5.json"
_RANDOM = random.Random()  # noqa: S311 - sampling, not security

type Progress = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class FetchTiming:
    """Retries of one chunk (tests shorten them)."""

    attempts: int = 10  # per chunk, for retryable errors (Status 2 is routine)
    retry: Backoff = field(
        default_factory=lambda: Backoff(initial=0.5, maximum=10.0, jitter=0.5)
    )


def in_flight(load_condition: int) -> int:
    """Return how many chunk requests to keep in flight for a server load level."""
    return max(1, MAX_IN_FLIGHT >> max(0, min(load_condition, 4)))


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

    def save(self) -> None:
        """Write the MD5s atomically (executor; after the data was flushed)."""
        doc = {"size": self.size, "md5": {str(k): v for k, v in self.md5.items()}}
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


class ChunkDownloader:
    """Fetches one offer's package into the store; resumes what it can verify."""

    def __init__(
        self, chunks: ChunkClient, store: PackageStore, timing: FetchTiming
    ) -> None:
        """Use `chunks` for the wire and `store` for the partial and final files."""
        self._chunks = chunks
        self._store = store
        self._timing = timing

    async def download(
        self,
        file_name: str,
        size: int,
        version: str,
        *,
        load_condition: int,
        progress: Progress,
    ) -> Package:
        """Fetch every chunk not verifiably done, then assemble the package."""
        key = partial_key(file_name, size, version)
        partial, ledger = await self._open(key, size)
        try:
            done = await self._resumable(partial, ledger, file_name, size)
            if done is None:  # the server's file changed: start again
                await self._discard(partial, ledger)
                partial, ledger = await self._open(key, size)
                done = set()
            todo = [r for r in chunk_ranges(size) if r[0] not in done]
            progress(partial.bytes_done, size)
            await self._fetch_all(
                file_name, size, todo, (partial, ledger), progress, load_condition
            )
        except ChunkMissingError as err:
            await self._discard(partial, ledger)
            raise DeviceResponseError(f"the server no longer has {file_name}") from err
        except ChunkChecksumError as err:
            await self._discard(partial, ledger)
            raise IntegrityError(
                f"chunk {err.start}-{err.end} keeps failing its MD5"
            ) from err
        except BaseException:
            await partial.close()  # keep finished chunks (and their MD5s) to resume
            await _run(ledger.save)
            raise
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
            data = await self._fetch_chunk(file_name, size, start, end)
            if _md5(data) != ledger.md5[start]:
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
        files: tuple[PartialFile, ChunkLedger],
        progress: Progress,
        load_condition: int,
    ) -> None:
        partial, ledger = files
        queue = iter(todo)
        written = 0

        async def worker() -> None:
            nonlocal written
            for start, end in queue:
                data = await self._fetch_chunk(file_name, size, start, end)
                await partial.write(start, data)
                ledger.md5[start] = _md5(data)
                written += 1
                if written % CHECKPOINT_EVERY == 0:
                    await partial.checkpoint()
                    await _run(ledger.save)
                progress(partial.bytes_done, size)

        loop = asyncio.get_running_loop()
        wanted = min(in_flight(load_condition), max(1, len(todo)))
        workers = [loop.create_task(worker()) for _ in range(wanted)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    async def _fetch_chunk(
        self, file_name: str, size: int, start: int, end: int
    ) -> bytes:
        """Fetch one chunk, retrying what can be retried."""
        attempts = self._timing.attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._chunks.fetch_chunk(
                    file_name, start, end, file_size=size
                )
            except (ChunkError, MilingConnectionError) as err:
                if not err.retryable or attempt == attempts:
                    if isinstance(err, (ChunkMissingError, ChunkChecksumError)):
                        raise
                    raise PackageError(f"chunk download failed: {err}") from err
            await asyncio.sleep(self._timing.retry.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover
