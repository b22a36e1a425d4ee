"""A package assembled from chunks written at their offsets, resumable.

What is done is kept as merged byte ranges (a handful, however many chunks) in a
small JSON file beside the data, written after the data is flushed, so a range
marked done is really on disk. The JSON also names the offer the file is for, so
that pruning can tell a resumable download from a stale one.

No Home Assistant imports; file I/O runs in the executor.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable
import json
import os
from pathlib import Path
from typing import IO, Any

from .base import (
    STATE_SUFFIX,
    Expected,
    IntegrityError,
    Package,
    PackageError,
    disk,
    download_owner,
    hash_file,
    reserve,
    run,
    verify,
    write_fully,
)


def _is_chunk(value: Any, size: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2  # noqa: PLR2004
        and all(isinstance(part, int) and not isinstance(part, bool) for part in value)
        and value[0] >= 0
        and value[1] > 0
        and value[0] + value[1] <= size
    )


def read_state(path: Path) -> dict[str, Any]:
    """Return a partial file's saved state ({} when missing or unreadable)."""
    try:
        state = json.loads(path.read_text())
    except OSError, ValueError:
        return {}
    return state if isinstance(state, dict) else {}


class PartialFile:
    """A file assembled from chunks at offsets, resumable across restarts."""

    def __init__(
        self,
        path: Path,
        size: int,
        finish: Callable[[Path, str], Path],
        active: set[Path],
        lock: asyncio.Lock,
    ) -> None:
        """Initialize; call `load` (in the executor) before use.

        `finish` gives a verified file its final name (under the store's `lock`,
        which pruning holds); `active` holds the files of the downloads running
        now (pruning leaves them alone) until this one ends.
        """
        self._finish = finish
        self._active = active
        self._lock = lock
        self.path = path
        self.size = size
        self._state_path = path.with_name(path.name + STATE_SUFFIX)
        self._owner = download_owner.get()
        #: Written byte ranges [start, end), sorted and merged.
        self._starts: list[int] = []
        self._ends: list[int] = []
        self.bytes_done = 0
        self._handle: IO[bytes] | None = None

    def _file(self) -> IO[bytes]:
        if self._handle is None:
            raise PackageError("the partial download is closed")
        return self._handle

    @disk
    def load(self) -> None:
        """Open the data file and read which ranges are done (executor)."""
        state = read_state(self._state_path) if self.path.exists() else {}
        ranges = state.get("done")
        self._starts, self._ends, self.bytes_done = [], [], 0
        if state.get("size") == self.size and isinstance(ranges, list):
            for item in ranges:
                if _is_chunk(item, self.size):
                    self._add(item[0], item[0] + item[1])
            self._handle = self.path.open("r+b")
        else:
            self._handle = self.path.open("w+b")
        reserve(self._handle.fileno(), self.size)
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
    def paths(self) -> tuple[Path, Path]:
        """Return the data and state files."""
        return self.path, self._state_path

    @disk
    def _write(self, start: int, data: bytes) -> None:
        # Positional: several chunks are written concurrently from the executor.
        write_fully(self._file().fileno(), data, start)

    async def write(self, start: int, data: bytes) -> None:
        """Write a verified chunk at its offset."""
        if start < 0 or start + len(data) > self.size:
            raise IntegrityError(f"chunk {start}+{len(data)} outside 0..{self.size}")
        await run(self._write, start, data)
        self._add(start, start + len(data))

    @disk
    def _save_state(self, ranges: list[list[int]]) -> None:
        handle = self._file()
        handle.flush()
        os.fsync(handle.fileno())
        temp = self._state_path.with_name(self._state_path.name + ".tmp")
        temp.write_text(
            json.dumps({"size": self.size, "done": ranges, "owner": self._owner})
        )
        temp.replace(self._state_path)

    async def checkpoint(self) -> None:
        """Persist which ranges are done (call now and then, and before stopping)."""
        ranges = [
            [start, end - start]
            for start, end in zip(self._starts, self._ends, strict=True)
        ]
        await run(self._save_state, ranges)

    def missing(self) -> int | None:
        """Return the first offset no written range covers (None: complete)."""
        if not self._starts or self._starts[0] > 0:
            return 0
        return None if self._ends[0] >= self.size else self._ends[0]

    @disk
    def _complete(self) -> Package:
        if (gap := self.missing()) is not None:
            raise IntegrityError(f"no chunk covers offset {gap}")
        handle, self._handle = self._file(), None
        handle.close()
        hashes = hash_file(self.path)
        md5, sha256 = verify(hashes, Expected(size=self.size))
        final = self._finish(self.path, sha256)
        self._state_path.unlink(missing_ok=True)
        return Package(final, hashes.size, md5, sha256)

    def _release(self) -> None:
        self._active.difference_update(self.paths)

    async def complete(self) -> Package:
        """Check the size, checksum the whole file once, and keep it as ready."""
        async with self._lock:
            package = await run(self._complete)
        self._release()
        return package

    @disk
    def _discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.path.unlink(missing_ok=True)
        self._state_path.unlink(missing_ok=True)

    async def discard(self) -> None:
        """Delete the partial data (failed for good)."""
        try:
            await run(self._discard)
        finally:
            self._release()

    async def close(self) -> None:
        """Persist progress and close, keeping the partial data for a resume."""
        if self._handle is not None:
            try:
                await self.checkpoint()
            finally:
                handle, self._handle = self._handle, None
                self._release()
                await run(disk(handle.close))
