"""One config entry's package store: verified packages, or nothing.

Packages live in `<config>/firmware_hub/<entry_id>/`. A download is written to a
temporary name and renamed to its final name only once its size and checksums are
verified. File names from the network never become paths: a ready package is named
after its own SHA-256, a partial download after a key its caller derives.

No Home Assistant imports; file I/O runs in the executor, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
import logging
import os
from pathlib import Path
import re
import secrets
import shutil

import aiohttp

from .base import (
    FREE_SPACE_MARGIN,
    PARTIAL_SUFFIX,
    STATE_SUFFIX,
    Expected,
    InsufficientSpaceError,
    Package,
    Progress,
    disk,
    reserve,
    run,
    verify,
)
from .download import RetryPolicy, Sink, fetch
from .partial import PartialFile, read_state

_LOGGER = logging.getLogger(__name__)

_READY_PREFIX = "package-"
_DOWNLOAD_PREFIX = ".download-"
_CHUNKS_PREFIX = ".chunks-"


class PackageStore:
    """One config entry's packages."""

    def __init__(self, root: Path) -> None:
        """Use `root` (created on demand) for this entry's packages."""
        self.root = root
        #: Files of the downloads running now: pruning never touches them.
        self._active: set[Path] = set()
        #: Held while files are created or pruned, so a prune cannot see a new
        #: download's file before it counts as running.
        self._lock = asyncio.Lock()

    @disk
    def _prepare(self, size: int | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if size is not None:
            free = shutil.disk_usage(self.root).free
            if free < size + FREE_SPACE_MARGIN:
                raise InsufficientSpaceError(f"{size} bytes needed, {free} free")

    def finish(self, temp: Path, sha256: str) -> Path:
        """Give a verified file its final name (executor)."""
        final = self.root / f"{_READY_PREFIX}{sha256[:16]}.bin"
        temp.replace(final)
        return final

    @disk
    def _create(self, temp: Path, size: int | None) -> int:
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if size is not None:
                reserve(fd, size)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        return fd

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
        it cannot fit, `StorageError` when the disk fails. Nothing but a verified
        package is ever left behind.
        """
        retry = retry or RetryPolicy()
        await run(self._prepare, expected.size)
        temp = self.root / f"{_DOWNLOAD_PREFIX}{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        try:
            async with self._lock:
                self._active.add(temp)
                fd = await run(self._create, temp, expected.size)
            sink = Sink(fd, expected.size)
            try:
                await fetch(
                    session, url, sink, expected, progress, headers or {}, retry
                )
                await sink.close()
                md5, sha256 = verify(sink.hashes, expected)
                async with self._lock:  # not while a prune decides what to keep
                    final = await run(disk(self.finish), temp, sha256)
            except BaseException:
                await sink.close(failed=True)
                await run(temp.unlink, True)
                raise
        finally:
            self._active.discard(temp)
        return Package(final, sink.hashes.size, md5, sha256)

    async def open_partial(self, name: str, size: int) -> PartialFile:
        """Open (or resume) a chunked download; `name` must be a safe local key.

        The caller derives `name` from data it trusts (e.g. a hash of the offer),
        never from a network file name.
        """
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise ValueError(f"unsafe partial name {name!r}")
        await run(self._prepare, size)
        partial = PartialFile(
            self.root / f"{_CHUNKS_PREFIX}{name}{PARTIAL_SUFFIX}",
            size,
            self.finish,
            self._active,
            self._lock,
        )
        async with self._lock:
            self._active.update(partial.paths)
            try:
                await run(partial.load)
            except BaseException:
                self._active.difference_update(partial.paths)
                raise
        return partial

    async def prune(
        self,
        keep: Iterable[Path] | Callable[[], Iterable[Path]] = (),
        *,
        owners: Collection[str] | None = None,
    ) -> None:
        """Delete the ready packages except `keep`, and what no download needs.

        `keep` may be a function: it is then asked once no download can finish
        any more until the pruning is done, so a package that was just finished
        (and recorded by the caller when its download returned) is never lost.
        With `owners`, also delete the unfinished downloads that are not running
        now and are not a resumable download for one of `owners` (the offers still
        wanted): temporary files of interrupted downloads, partial files of offers
        gone, leftovers of interrupted writes.
        """
        async with self._lock:
            kept = {Path(path) for path in (keep() if callable(keep) else keep)}
            # A running download's files, and the temporary files derived from them.
            running = tuple(path.name for path in self._active)
            await run(self._prune, kept, owners, running)

    def _prune(
        self,
        keep: set[Path],
        owners: Collection[str] | None,
        running: tuple[str, ...],
    ) -> None:
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if path in keep or path.name.startswith(running) or not path.is_file():
                continue
            if path.name.startswith(_READY_PREFIX) or (
                owners is not None and _stale(path, owners)
            ):
                _LOGGER.debug("Deleting %s", path.name)
                path.unlink(missing_ok=True)

    async def remove_all(self) -> None:
        """Delete the entry's whole package directory (entry removed)."""
        await run(shutil.rmtree, self.root, True)


def _stale(path: Path, owners: Collection[str]) -> bool:
    """Return whether an unfinished file serves none of `owners`."""
    name = path.name
    if not name.startswith("."):
        return False
    if not name.startswith(_CHUNKS_PREFIX) or PARTIAL_SUFFIX not in name:
        return True  # an interrupted download or write: never resumed
    # A partial file, its state, or a kind's sidecar of it (Miling's chunk
    # ledger `<partial>.md5.json`): they live and die with the partial file.
    data = path.with_name(name[: name.index(PARTIAL_SUFFIX) + len(PARTIAL_SUFFIX)])
    state = read_state(data.with_name(data.name + STATE_SUFFIX))
    return not data.exists() or state.get("owner") not in owners
