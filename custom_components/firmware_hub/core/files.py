"""Firmware files handed to a backend: an open binary file, never a path."""

from __future__ import annotations

import asyncio
import os
from pathlib import PurePath
from typing import BinaryIO

from .backend import InstallRefusedError


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
