"""What the package store's parts share: errors, results, checksums, disk writes.

No Home Assistant imports; everything that blocks runs in the executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
import errno
import functools
import hashlib
import os
from pathlib import Path
from typing import Any, Final

#: Bytes read from the network per step (and per executor write).
STREAM_CHUNK: Final = 1024 * 1024
#: Space kept free beyond the package itself.
FREE_SPACE_MARGIN: Final = 16 * 1024 * 1024
PARTIAL_SUFFIX: Final = ".part"
STATE_SUFFIX: Final = ".json"

#: Progress callback: (bytes done, total bytes or None).
Progress = Callable[[int, int | None], None]

#: The offer a download runs for (set by the bridge around a kind's download):
#: resumable partial files remember it, so that pruning knows whose they are.
download_owner: ContextVar[str | None] = ContextVar(
    "firmware_hub_download_owner", default=None
)

_NO_ROOM: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_CANNOT_RESERVE: Final = frozenset({errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})


class PackageError(Exception):
    """Base class of package store errors."""


class DownloadError(PackageError):
    """The package could not be downloaded (after retries)."""


class IntegrityError(PackageError):
    """The package's size or checksum is not what was announced."""


class InsufficientSpaceError(PackageError):
    """Not enough free disk space for the package."""


class StorageError(PackageError):
    """Writing or reading the package on disk failed (an `OSError`)."""


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


async def run[T](func: Callable[..., T], *args: Any) -> T:
    """Run blocking file work in the executor."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def disk[**P, T](func: Callable[P, T]) -> Callable[P, T]:
    """Turn the `OSError`s of a file operation into `StorageError`s."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except InsufficientSpaceError:
            raise
        except OSError as err:
            if err.errno in _NO_ROOM:
                raise InsufficientSpaceError(
                    f"the disk is full: {err.strerror or err}"
                ) from err
            raise StorageError(f"disk error: {err.strerror or err}") from err

    return wrapper


def write_fully(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset`, continuing after short writes."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.EIO, "the disk accepted no bytes")
        view = view[written:]
        offset += written


def reserve(fd: int, size: int) -> None:
    """Allocate `size` bytes for the file now, so a full disk fails up front."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None or size <= 0:
        return
    try:
        fallocate(fd, 0, size)
    except OSError as err:
        if err.errno in _NO_ROOM:
            raise InsufficientSpaceError(
                f"no room for {size} bytes: {err.strerror or err}"
            ) from err
        if err.errno not in _CANNOT_RESERVE:
            raise
        # The file system cannot reserve: the free-space check stands alone.


class Hashes:
    """MD5, SHA-256 and size of what was fed, in order."""

    def __init__(self) -> None:
        """Start empty."""
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        """Add `data`."""
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)


def _same_hex(announced: str | None, actual: str) -> bool:
    return announced is None or announced.strip().lower() == actual


def verify(hashes: Hashes, expected: Expected) -> tuple[str, str]:
    """Return (MD5, SHA-256) when they and the size are what was announced."""
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


@disk
def hash_file(path: Path) -> Hashes:
    """Checksum a whole file (executor)."""
    hashes = Hashes()
    with path.open("rb") as handle:
        while data := handle.read(STREAM_CHUNK):
            hashes.update(data)
    return hashes
