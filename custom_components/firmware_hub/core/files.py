"""Firmware files handed to a backend: an open binary file, never a path."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import PurePath
from typing import BinaryIO, Final

from .backend import InstallRefusedError

#: How much of a firmware file one executor read takes.
READ_CHUNK_BYTES: Final = 64 * 1024


def remaining_size(file: BinaryIO) -> int:
    """Return how many bytes are left from the file's position (blocking)."""
    return max(0, os.fstat(file.fileno()).st_size - file.tell())


async def checked_firmware_file(file: BinaryIO, name: str) -> tuple[str, int]:
    """Return the file's base name and size; refuse an unreadable or empty file.

    Raises `InstallRefusedError` (nothing was sent to the device).
    """
    file_name = PurePath(name).name
    try:
        size = await asyncio.get_running_loop().run_in_executor(
            None, remaining_size, file
        )
    except OSError as err:
        raise InstallRefusedError("file_unreadable", str(err), error=str(err)) from err
    if size == 0:
        raise InstallRefusedError(
            "firmware_file_invalid", f"{file_name} is empty", path=file_name
        )
    return file_name, size


def read_at(file: BinaryIO, offset: int, size: int = READ_CHUNK_BYTES) -> bytes:
    """Read up to `size` bytes at `offset`, leaving the file's position (blocking).

    Several readers (an upload, a hash, a recorder fetching the file) can read the
    same open file at once.
    """
    return os.pread(file.fileno(), size, offset)


async def file_md5(file: BinaryIO, size: int) -> str:
    """Return the hex MD5 of the `size` bytes from the file's position.

    Read in `READ_CHUNK_BYTES` executor reads, never whole; the position stays.
    """
    loop = asyncio.get_running_loop()
    start = await loop.run_in_executor(None, file.tell)
    digest = hashlib.md5(usedforsecurity=False)
    offset = 0
    while offset < size:
        chunk = await loop.run_in_executor(
            None, read_at, file, start + offset, min(READ_CHUNK_BYTES, size - offset)
        )
        if not chunk:
            raise OSError(f"the file ended after {offset} of {size} bytes")
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()
