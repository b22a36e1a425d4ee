"""The firmware file upload body (wire only, no Home Assistant imports).

`PUT /ISAPI/System/updateFirmware` takes the firmware (`digicap.dav`) as the raw
body, `application/octet-stream` (devices answer 400 "Invalid XML Content" to
application/xml). The body streams from the open file the caller passes, in
`chunk_bytes` pieces each read in the executor, never the whole file in memory.

It is a reusable aiohttp payload: when the device answers the first attempt with a
Digest challenge (a nonce gone stale), the client's digest middleware sends the
request again and the payload starts over from the file's first position.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from typing import BinaryIO, Final

from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter

UPLOAD_CHUNK_BYTES: Final = 64 * 1024
CONTENT_TYPE: Final = "application/octet-stream"

#: Called with (bytes sent, bytes in all) as the upload goes out.
Progress = Callable[[int, int], None]


class FirmwarePayload(payload.Payload):
    """The rest of an open binary file, streamed in executor reads."""

    _value: BinaryIO
    _autoclose = True  # the file is the caller's: nothing here to close

    def __init__(
        self,
        file: BinaryIO,
        size: int,
        *,
        progress: Progress | None = None,
        chunk_bytes: int = UPLOAD_CHUNK_BYTES,
    ) -> None:
        """Initialize at the file's current position (`size` bytes from there)."""
        super().__init__(file, content_type=CONTENT_TYPE)
        self._start = file.tell()
        self._length = size
        self._progress = progress
        self._chunk_bytes = chunk_bytes
        self._read: asyncio.Future[bytes] | None = None
        #: Bytes of the last attempt that went out.
        self.sent = 0
        #: A read error (aiohttp turns it into a connection error).
        self.error: OSError | None = None

    @property
    def size(self) -> int:
        """Return the body's length (the Content-Length)."""
        return self._length

    @property
    def complete(self) -> bool:
        """Return True once the whole body of the last attempt went out."""
        return self.sent >= self._length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """Refuse: the body is a binary file, never read whole."""
        raise TypeError("a firmware file is not text")

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """Refuse: reading the body whole (Digest auth-int) would hold it in memory."""
        raise TypeError("a firmware file is never read whole into memory")

    async def write(self, writer: AbstractStreamWriter) -> None:
        """Write the whole body."""
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        """Stream the body from its first byte (again, on a retry)."""
        loop = asyncio.get_running_loop()
        limit = self._length if content_length is None else content_length
        self.sent = 0
        await loop.run_in_executor(None, self._value.seek, self._start)
        while self.sent < limit:
            wanted = min(self._chunk_bytes, limit - self.sent)
            self._read = loop.run_in_executor(None, self._value.read, wanted)
            try:
                chunk = await asyncio.shield(self._read)
            except OSError as err:
                self.error = err
                raise
            self._read = None
            if not chunk:
                self.error = OSError(
                    f"the file ended after {self.sent} of {self._length} bytes"
                )
                raise self.error
            await writer.write(chunk)
            self.sent += len(chunk)
            if self._progress is not None:
                self._progress(self.sent, self._length)

    async def close(self) -> None:
        """Leave the file open (the caller closes it)."""

    async def settle(self) -> None:
        """Wait for a read still running in the executor (its outcome is moot)."""
        read, self._read = self._read, None
        if read is not None:
            with contextlib.suppress(Exception):
                await read
