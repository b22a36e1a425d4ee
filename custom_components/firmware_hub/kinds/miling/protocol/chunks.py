"""Miling package transfer (1014 → 1015): chunk ranges, MD5 checks, the HTTP fetcher.

Wire only, no Home Assistant imports. `POST http://host:6008/download` returns one
≤2048-byte range of the package, base64 in `FileChunk`, with an MD5 `Check`.

Which bytes `Check` covers is not stated by the seed ("MD5 taken from the file chunk
sent"): a chunk is accepted when `Check` equals, compared case-insensitively, the MD5
of the decoded chunk bytes (the likely reading) *or* the MD5 of the base64 text of
`FileChunk` as received (the other reading).

Replies are bounded as they arrive on the wire: chunks are asked for uncompressed
(`Accept-Encoding: identity`), aiohttp does not inflate them, and a compressed reply
is refused (`ChunkEncodingError`), so a small gzip body can never grow in memory.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
import hashlib
import json
from typing import Final

import aiohttp
from aiohttp import hdrs
from yarl import URL

from .errors import (
    ChunkChecksumError,
    ChunkEncodingError,
    ChunkError,
    ChunkHttpError,
    ChunkMissingError,
    ChunkReplyError,
    ChunkServerError,
    MilingConnectionError,
    MilingProtocolError,
    MilingTimeoutError,
)
from .fields import check_str
from .messages import (
    DEFAULT_HTTP_PORT,
    DEFAULT_TIMEOUT,
    DOWNLOAD_PATH,
    MAX_CHUNK_SIZE,
    ChunkReply,
    ChunkRequest,
    ChunkStatus,
    ProtocolCode,
    decode_message,
)

#: A 1015 reply carries ≤ 2048 bytes as base64 (~2.8 kB) plus a few fields.
MAX_REPLY_BYTES: Final = 64 * 1024
_HEADERS: Final = {
    hdrs.CONTENT_TYPE: "application/json",
    hdrs.ACCEPT_ENCODING: "identity",
}
_IDENTITY: Final = frozenset({"", "identity"})


def chunk_ranges(
    file_size: int, chunk_size: int = MAX_CHUNK_SIZE
) -> list[tuple[int, int]]:
    """Return the (Start, End) ranges, End inclusive, covering `file_size` bytes."""
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be 1..{MAX_CHUNK_SIZE}")
    if file_size < 0:
        raise ValueError("file_size must not be negative")
    return [
        (start, min(start + chunk_size, file_size) - 1)
        for start in range(0, file_size, chunk_size)
    ]


def md5_matches(check: str, data: bytes, file_chunk: str) -> bool:
    """Return whether `check` is the MD5 of the raw bytes or of the base64 text."""
    return _checked_md5(check, data, file_chunk) is not None


def _checked_md5(check: str, data: bytes, file_chunk: str) -> str | None:
    """Return the MD5 of `data` when `check` vouches for it (either reading)."""
    expected = check.strip().lower()
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if digest == expected:
        return digest
    try:
        text = file_chunk.encode("ascii")
    except UnicodeEncodeError:
        return None
    if hashlib.md5(text, usedforsecurity=False).hexdigest() == expected:
        return digest
    return None


class ChunkClient:
    """Fetches package chunks over HTTP (1014 → 1015) on a shared aiohttp session.

    Stateless per request, so any number of `fetch_chunk` calls may be in flight;
    concurrency, retries and resume belong to the caller.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        host: str,
        http_port: int = DEFAULT_HTTP_PORT,
        device_id: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Initialize; no I/O until the first request."""
        check_str("DeviceId", device_id)
        self._session = session
        self._url = URL.build(scheme="http", host=host, port=http_port).with_path(
            DOWNLOAD_PATH
        )
        self._device_id = device_id
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # 1014 bodies differ only in Start and End: encode the rest once per file.
        self._prefix_json = json.dumps(device_id)
        self._prefixes: dict[str, str] = {}

    @property
    def url(self) -> str:
        """Return the download URL."""
        return str(self._url)

    def _body(self, file_name: str, start: int, end: int) -> bytes:
        prefix = self._prefixes.get(file_name)
        if prefix is None:
            if len(self._prefixes) > 16:  # noqa: PLR2004
                self._prefixes.clear()
            prefix = self._prefixes[file_name] = (
                '{"ProtocolCode":1014,"Parameters":{"DeviceId":'
                f'{self._prefix_json},"FileName":{json.dumps(file_name)},"Start":'
            )
        return f'{prefix}{start},"End":{end}}}}}'.encode()

    async def _post(self, body: bytes, name: str, start: int, end: int) -> bytes:
        def error(cls: type[ChunkError], message: str) -> ChunkError:
            return cls(message, file_name=name, start=start, end=end)

        try:
            async with self._session.post(
                self._url,
                data=body,
                headers=_HEADERS,
                timeout=self._timeout,
                auto_decompress=False,
            ) as resp:
                encoding = resp.headers.get(hdrs.CONTENT_ENCODING, "")
                if encoding.strip().lower() not in _IDENTITY:
                    raise error(ChunkEncodingError, f"compressed reply ({encoding})")
                length = resp.content_length
                if length is not None and length > MAX_REPLY_BYTES:
                    raise error(ChunkReplyError, "reply too large")
                # With a Content-Length the parser stops at it: read in one go.
                reply = (
                    await resp.read()
                    if length is not None
                    else await _read_bounded(resp.content, MAX_REPLY_BYTES)
                )
                if reply is None:
                    raise error(ChunkReplyError, "reply too large")
                status = resp.status
        except TimeoutError as err:
            raise MilingTimeoutError(f"{name} [{start}-{end}]: timed out") from err
        except aiohttp.ClientError as err:
            raise MilingConnectionError(
                f"{name} [{start}-{end}]: {type(err).__name__}: {err}"
            ) from err
        if status != 200:  # noqa: PLR2004
            try:
                decode_message(reply)
            except MilingProtocolError:
                raise ChunkHttpError(
                    status, file_name=name, start=start, end=end
                ) from None
        return reply

    async def fetch_chunk(
        self, file_name: str, start: int, end: int, *, file_size: int | None = None
    ) -> bytes:
        """Fetch bytes `start..end` (inclusive, at most 2048) of `file_name`.

        The reply must echo FileName and Start, and End (or the last byte it really
        sent, for a short final chunk); the data must be `end - start + 1` bytes,
        or, when `file_size` is given, up to the end of the file. Raises
        `ChunkMissingError` (Status 1, final), `ChunkServerError` (Status 2),
        `ChunkChecksumError`, `ChunkReplyError`, `ChunkHttpError`,
        `MilingConnectionError` / `MilingTimeoutError`.
        """
        data, _md5 = await self.fetch_verified(
            file_name, start, end, file_size=file_size
        )
        return data

    async def fetch_verified(
        self, file_name: str, start: int, end: int, *, file_size: int | None = None
    ) -> tuple[bytes, str]:
        """Fetch a chunk as `fetch_chunk` does; also return its bytes' MD5 (hex).

        The MD5 is computed once, for the check, and handed on (a resume ledger
        keeps it) instead of being computed again.
        """
        request = ChunkRequest(self._device_id, file_name, start, end)  # validates
        raw = await self._post(self._body(file_name, start, end), file_name, start, end)
        return self._verify(request, raw, file_size)

    @staticmethod
    def _verify(
        request: ChunkRequest, raw: bytes, file_size: int | None
    ) -> tuple[bytes, str]:
        name, start, end = request.file_name, request.start, request.end

        def error(cls: type[ChunkError], message: str) -> ChunkError:
            return cls(message, file_name=name, start=start, end=end)

        fields = _plain_ok(raw)
        if fields is None:  # anything unusual: the codec's checks and errors
            reply = _chunk_reply(raw, error)
            # Status 0: __post_init__ guarantees every field is present.
            assert reply.file_name is not None  # noqa: S101
            assert reply.start is not None  # noqa: S101
            assert reply.end is not None  # noqa: S101
            assert reply.check is not None  # noqa: S101
            assert reply.file_chunk is not None  # noqa: S101
            fields = (
                reply.file_name,
                reply.start,
                reply.end,
                reply.check,
                reply.file_chunk,
            )
        reply_name, reply_start, reply_end, check, file_chunk = fields
        if reply_name != name:
            raise error(ChunkReplyError, f"FileName {reply_name!r} echoed")
        if reply_start != start:
            raise error(ChunkReplyError, f"Start {reply_start} echoed")
        try:
            data = binascii.a2b_base64(file_chunk)
        except (binascii.Error, ValueError) as err:
            raise error(ChunkReplyError, f"FileChunk is not base64: {err}") from err
        size = len(data)
        expected = end - start + 1
        if file_size is not None and end >= file_size:
            expected = max(0, file_size - start)
        if size != expected:
            raise error(ChunkReplyError, f"{size} bytes, expected {expected}")
        if reply_end not in {end, start + size - 1}:
            raise error(ChunkReplyError, f"End {reply_end} echoed")
        digest = _checked_md5(check, data, file_chunk)
        if digest is None:
            raise error(ChunkChecksumError, f"MD5 mismatch (Check {check})")
        return data, digest


def _plain_ok(raw: bytes) -> tuple[str, int, int, str, str] | None:
    """Return (FileName, Start, End, Check, FileChunk) of a plain Status 0 1015.

    The common reply, parsed once without building a `ChunkReply`: a JSON object
    with ProtocolCode 1015 and every field of the exact type. Anything else
    (errors, integral floats, missing fields, not JSON) returns None and goes
    through `decode_message`, which accepts and refuses exactly as for any message.
    """
    try:
        doc = json.loads(raw)
    except ValueError, RecursionError:
        return None
    if type(doc) is not dict or doc.get("ProtocolCode") != ProtocolCode.CHUNK_REPLY:
        return None
    params = doc.get("Parameters")
    if type(params) is not dict:
        return None
    status, start, end = params.get("Status"), params.get("Start"), params.get("End")
    name, check, chunk = (
        params.get("FileName"),
        params.get("Check"),
        params.get("FileChunk"),
    )
    if (
        type(status) is int
        and status == ChunkStatus.OK
        and type(start) is int
        and type(end) is int
        and start >= 0
        and end >= 0
        and type(name) is str
        and type(check) is str
        and type(chunk) is str
    ):
        return name, start, end, check, chunk
    return None


def _chunk_reply(
    raw: bytes, error: Callable[[type[ChunkError], str], ChunkError]
) -> ChunkReply:
    """Decode a 1015 reply; raise the error its Status stands for."""
    try:
        reply = decode_message(raw)
    except MilingProtocolError as err:
        raise error(ChunkReplyError, str(err)) from err
    if not isinstance(reply, ChunkReply):
        raise error(ChunkReplyError, f"expected 1015, got {int(reply.CODE)}")
    if reply.status == ChunkStatus.FILE_MISSING:
        raise error(ChunkMissingError, "file does not exist on the server")
    if reply.status == ChunkStatus.OTHER_ERROR:
        raise error(ChunkServerError, "server error (Status 2)")
    return reply


async def _read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    """Read a body of unknown length; None when it exceeds `limit`."""
    parts: list[bytes] = []
    size = 0
    async for part in stream.iter_any():
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)
