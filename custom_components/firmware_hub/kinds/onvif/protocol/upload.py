"""The ONVIF firmware upload: POST a firmware file to the camera's UploadUri.

Plain HTTP on the aiohttp session the caller passes (Home Assistant's). The file is
one the caller opened (and closes): it is streamed from where it stands, in
`chunk_bytes` pieces each read in the executor, never read whole into memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from typing import BinaryIO, Final, Self

import aiohttp
from aiohttp import hdrs

from ....core.files import remaining_size
from .errors import OnvifConnectionError, OnvifTimeoutError, OnvifUploadError

UPLOAD_TIMEOUT: Final = 30 * 60.0
UPLOAD_CHUNK_BYTES: Final = 64 * 1024

#: Called with (bytes sent, bytes in all) as the upload goes out.
Progress = Callable[[int, int], None]


class _FileChunks:
    """The bytes of an open file as an async iterator, each read in the executor.

    aiohttp's request writer pulls from it and is cancelled when the camera answers
    before the whole body went out: a read still running in the executor then
    finishes in the background. `aclose()` waits for it, so that the caller may close
    the file once the upload returned. A read error is kept in `error` (aiohttp turns
    it into a connection error).
    """

    def __init__(
        self, file: BinaryIO, size: int, chunk_bytes: int, progress: Progress | None
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._file = file
        self._size = size
        self._chunk_bytes = chunk_bytes
        self._progress = progress
        self._sent = 0
        self._read: asyncio.Future[bytes] | None = None
        self.error: OSError | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        wanted = min(self._chunk_bytes, self._size - self._sent)
        if wanted <= 0:
            raise StopAsyncIteration
        self._read = self._loop.run_in_executor(None, self._file.read, wanted)
        try:
            chunk = await asyncio.shield(self._read)
        except OSError as err:
            self.error = err
            raise
        self._read = None
        if not chunk:
            self.error = OSError(
                f"the file ended after {self._sent} of {self._size} bytes"
            )
            raise self.error
        self._sent += len(chunk)
        if self._progress is not None:
            self._progress(self._sent, self._size)
        return chunk

    async def aclose(self) -> None:
        """Wait for a read still running in the executor (its outcome is moot)."""
        read, self._read = self._read, None
        if read is not None:
            with contextlib.suppress(Exception):
                await read


async def upload_firmware(
    session: aiohttp.ClientSession,
    upload_uri: str,
    file: BinaryIO,
    *,
    progress: Progress | None = None,
    upload_timeout: float = UPLOAD_TIMEOUT,
    chunk_bytes: int = UPLOAD_CHUNK_BYTES,
) -> None:
    """POST the rest of an open binary file to an UploadUri (application/octet-stream).

    Sent with a Content-Length (the bytes from the file's position to its end).
    ``progress(sent, total)`` is called as the bytes go out. Raises `OnvifUploadError`
    for an HTTP error status, `OnvifTimeoutError` / `OnvifConnectionError` for the
    transport, OSError when the file cannot be read (or ends early). The file stays
    open; no read of it runs any more once this returns.
    """
    loop = asyncio.get_running_loop()
    size = await loop.run_in_executor(None, remaining_size, file)
    chunks = _FileChunks(file, size, chunk_bytes, progress)
    headers = {
        hdrs.CONTENT_TYPE: "application/octet-stream",
        hdrs.CONTENT_LENGTH: str(size),
    }
    try:
        async with session.post(
            upload_uri,
            data=chunks,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=upload_timeout),
        ) as response:
            if response.status >= 300:  # noqa: PLR2004
                body = await response.content.read(512)
                raise OnvifUploadError(
                    response.status, body.decode("utf-8", "replace").strip()
                )
    except TimeoutError as err:
        raise OnvifTimeoutError("firmware upload: timed out") from err
    except aiohttp.ClientError as err:
        if chunks.error is not None:
            raise chunks.error from err
        raise OnvifConnectionError(
            f"firmware upload: {type(err).__name__}: {err}"
        ) from err
    finally:
        await chunks.aclose()
