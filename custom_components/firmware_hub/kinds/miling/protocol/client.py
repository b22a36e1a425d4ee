"""Miling cloud upgrade protocol (2nd generation): messages, WebSocket, chunk download.

Wire only, no Home Assistant imports. Source: seed 003 and `reference/miling.md`.

- WebSocket `ws://host:6007/DevRegister`, JSON text frames: the device registers
  (1010 → 1011) on every (re)connect; the server pushes upgrade requests (1012) the
  device answers (1013: 0 accepted, -1 package mismatch, -2 too large).
- HTTP `POST http://host:6008/download`: the device fetches the package in ranges of
  at most 2048 bytes, End inclusive (1014 → 1015 with a base64 `FileChunk` and an MD5
  `Check`).

Codecs are frozen dataclasses validated on construction, so a message decoded from
the network and one built locally pass the same checks; every malformed message
raises a `MilingProtocolError` subclass, never anything else. Extra keys are ignored
(forward compatibility); an integral float (`4096.0`) is read as an int; booleans,
non-finite numbers and fractions are refused where ints are expected.

Which bytes `Check` covers is not stated by the seed ("MD5 taken from the file chunk
sent"): a chunk is accepted when `Check` equals, compared case-insensitively, the MD5
of the decoded chunk bytes (the likely reading) *or* the MD5 of the base64 text of
`FileChunk` as received (the other reading).

`MilingClient` keeps the WebSocket up with `websockets`' reconnecting
`async for websocket in connect(...)` iterator. Reconnect delays come from `Backoff`
(capped, 30 s by default) on websockets ≥ 17; older versions use the library's own
backoff (capped at 90 s). A server that accepts and then closes at once is reconnected
after the same backoff, never in a busy loop.
"""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import Callable, Coroutine, Generator, Mapping
import contextlib
from dataclasses import dataclass
from enum import IntEnum
import hashlib
import inspect
import json
import logging
import math
import random
from typing import Any, ClassVar, Final
import unicodedata

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException
from yarl import URL

_LOGGER = logging.getLogger(__name__)

DEFAULT_WS_PORT: Final = 6007
DEFAULT_HTTP_PORT: Final = 6008
WS_PATH: Final = "/DevRegister"
DOWNLOAD_PATH: Final = "/download"
#: Largest range one 1014 request may ask for (End - Start + 1).
MAX_CHUNK_SIZE: Final = 2048
#: A 1015 reply carries ≤ 2048 bytes as base64 (~2.8 kB) plus a few fields.
MAX_REPLY_BYTES: Final = 64 * 1024
#: Socket messages are a few hundred bytes; anything larger closes the connection.
MAX_WS_MESSAGE_BYTES: Final = 64 * 1024
#: A FileName longer than this (UTF-8 bytes) is not a plain file name.
MAX_FILE_NAME_BYTES: Final = 255
DEFAULT_TIMEOUT: Final = 10.0

_CONNECT_SUPPORTS_DELAYS: Final = (
    "reconnect_delays" in inspect.signature(connect).parameters
)
_JSON_HEADERS: Final = {"Content-Type": "application/json"}
# Categories refused in file names: controls, format (bidi overrides, zero width),
# surrogates, line and paragraph separators.
_BAD_NAME_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class ProtocolCode(IntEnum):
    """The six messages of the protocol."""

    REGISTER = 1010
    REGISTER_REPLY = 1011
    UPGRADE_REQUEST = 1012
    UPGRADE_REPLY = 1013
    CHUNK_REQUEST = 1014
    CHUNK_REPLY = 1015


class UpgradeStatus(IntEnum):
    """1013 Status values named by the seed (other non-zero values also refuse)."""

    ACCEPTED = 0
    PACKAGE_MISMATCH = -1
    TOO_LARGE = -2


class ChunkStatus(IntEnum):
    """1015 Status values."""

    OK = 0
    FILE_MISSING = 1
    OTHER_ERROR = 2


# ----------------------------------------------------------------------- errors


class MilingError(Exception):
    """Base class of every error this module raises.

    `retryable` tells whether the same request may succeed when tried again.
    """

    retryable: bool = False


class MilingProtocolError(MilingError):
    """A message that is not a valid Miling message.

    When the message had a known `ProtocolCode` and a `Parameters` object, they are
    kept in `code` and `parameters` (a backend may still answer a malformed 1012).
    """

    code: int | None = None
    parameters: Mapping[str, Any] | None = None


class MilingDecodeError(MilingProtocolError):
    """Not JSON, or not a JSON object with `ProtocolCode` and `Parameters`."""


class MilingFieldError(MilingProtocolError):
    """A field is missing, of the wrong type or out of range."""

    def __init__(self, field: str, problem: str) -> None:
        """Initialize with the field name and what is wrong with it."""
        super().__init__(f"{field}: {problem}")
        self.field = field


class UnknownProtocolCodeError(MilingProtocolError):
    """A `ProtocolCode` this protocol does not define."""

    def __init__(self, code: int) -> None:
        """Initialize with the code received."""
        super().__init__(f"unknown ProtocolCode {code!r}")
        self.code = code


class UnexpectedMessageError(MilingProtocolError):
    """A valid message in a place it does not belong (a 1014 on the socket)."""


class MilingConnectionError(MilingError):
    """The server could not be reached or the connection broke."""

    retryable = True


class MilingTimeoutError(MilingConnectionError):
    """The server did not answer in time."""


class MilingNotConnectedError(MilingConnectionError):
    """The WebSocket is not connected right now."""


class MilingRegistrationRefusedError(MilingError):
    """The server answered 1011 with a non-zero Status."""

    def __init__(self, status: int) -> None:
        """Initialize with the Status received."""
        super().__init__(f"registration refused (Status {status})")
        self.status = status


class ChunkError(MilingError):
    """A chunk could not be fetched; carries the requested range."""

    def __init__(self, message: str, *, file_name: str, start: int, end: int) -> None:
        """Initialize with a description and the requested range."""
        super().__init__(f"{file_name} [{start}-{end}]: {message}")
        self.file_name = file_name
        self.start = start
        self.end = end


class ChunkMissingError(ChunkError):
    """Status 1: the file does not exist on the server. Final."""


class ChunkServerError(ChunkError):
    """Status 2: some other server error. Retry later."""

    retryable = True


class ChunkChecksumError(ChunkError):
    """The chunk's MD5 matches neither the raw bytes nor the base64 text."""

    retryable = True


class ChunkReplyError(ChunkError, MilingProtocolError):
    """A 1015 reply that is malformed or does not answer the request."""

    retryable = True


class ChunkHttpError(ChunkError):
    """An HTTP error status without a 1015 body."""

    def __init__(self, status: int, *, file_name: str, start: int, end: int) -> None:
        """Initialize with the HTTP status."""
        super().__init__(f"HTTP {status}", file_name=file_name, start=start, end=end)
        self.status = status

        # Server errors and 429 are worth retrying, other client errors are not.
        self.retryable = status >= 500 or status == 429  # noqa: PLR2004


# ----------------------------------------------------------------- validation


def _check_str(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise MilingFieldError(field, f"expected a string, got {type(value).__name__}")


def _check_int(field: str, value: object, minimum: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MilingFieldError(
            field, f"expected an integer, got {type(value).__name__}"
        )
    if minimum is not None and value < minimum:
        raise MilingFieldError(field, f"{value} is below {minimum}")


def _get(params: Mapping[str, Any], field: str) -> Any:
    try:
        return params[field]
    except KeyError:
        raise MilingFieldError(field, "missing") from None


def _as_int(field: str, value: Any) -> Any:
    """Read an integral float (`4096.0`) as an int; leave other values to checks."""
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise MilingFieldError(field, f"expected an integer, got {value!r}")
        return int(value)
    return value


def _int_field(params: Mapping[str, Any], field: str) -> Any:
    return _as_int(field, _get(params, field))


def _opt_int_field(params: Mapping[str, Any], field: str) -> Any:
    value = params.get(field)
    return None if value is None else _as_int(field, value)


# ------------------------------------------------------------------- messages

_CHUNK_STATUSES: Final = frozenset(int(status) for status in ChunkStatus)


@dataclass(frozen=True, slots=True)
class Register:
    """1010, device → server: register (on every connect)."""

    CODE: ClassVar[ProtocolCode] = ProtocolCode.REGISTER

    device_id: str
    device_type: str
    prog_version: str

    def __post_init__(self) -> None:
        """Validate field types."""
        _check_str("DeviceId", self.device_id)
        _check_str("DeviceType", self.device_type)
        _check_str("ProgVersion", self.prog_version)

    def parameters(self) -> dict[str, Any]:
        """Return the `Parameters` object in the seed's key order."""
        return {
            "DeviceId": self.device_id,
            "DeviceType": self.device_type,
            "ProgVersion": self.prog_version,
        }

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> Register:
        """Build from a decoded `Parameters` object."""
        return cls(
            device_id=_get(params, "DeviceId"),
            device_type=_get(params, "DeviceType"),
            prog_version=_get(params, "ProgVersion"),
        )


@dataclass(frozen=True, slots=True)
class RegisterReply:
    """1011, server → device: Status 0 registered, anything else refused."""

    CODE: ClassVar[ProtocolCode] = ProtocolCode.REGISTER_REPLY

    device_id: str
    status: int

    def __post_init__(self) -> None:
        """Validate field types."""
        _check_str("DeviceId", self.device_id)
        _check_int("Status", self.status)

    @property
    def ok(self) -> bool:
        """Return whether the registration was accepted."""
        return self.status == 0

    def parameters(self) -> dict[str, Any]:
        """Return the `Parameters` object in the seed's key order."""
        return {"DeviceId": self.device_id, "Status": self.status}

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> RegisterReply:
        """Build from a decoded `Parameters` object."""
        return cls(
            device_id=_get(params, "DeviceId"), status=_int_field(params, "Status")
        )


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """1012, server → device: an upgrade the device should validate and answer."""

    CODE: ClassVar[ProtocolCode] = ProtocolCode.UPGRADE_REQUEST

    file_name: str
    file_size: int
    device_id: str
    device_type: str
    prog_version: str
    load_condition: int

    def __post_init__(self) -> None:
        """Validate field types and ranges."""
        _check_str("FileName", self.file_name)
        _check_int("FileSize", self.file_size, 0)
        _check_str("DeviceId", self.device_id)
        _check_str("DeviceType", self.device_type)
        _check_str("ProgVersion", self.prog_version)
        _check_int("LoadCondition", self.load_condition, 0)

    def parameters(self) -> dict[str, Any]:
        """Return the `Parameters` object in the seed's key order."""
        return {
            "FileName": self.file_name,
            "FileSize": self.file_size,
            "DeviceId": self.device_id,
            "DeviceType": self.device_type,
            "ProgVersion": self.prog_version,
            "LoadCondition": self.load_condition,
        }

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> UpgradeRequest:
        """Build from a decoded `Parameters` object."""
        return cls(
            file_name=_get(params, "FileName"),
            file_size=_int_field(params, "FileSize"),
            device_id=_get(params, "DeviceId"),
            device_type=_get(params, "DeviceType"),
            prog_version=_get(params, "ProgVersion"),
            load_condition=_int_field(params, "LoadCondition"),
        )


@dataclass(frozen=True, slots=True)
class UpgradeReply:
    """1013, device → server: 0 accepted, -1 mismatch, -2 too large."""

    CODE: ClassVar[ProtocolCode] = ProtocolCode.UPGRADE_REPLY

    device_id: str
    status: int

    def __post_init__(self) -> None:
        """Validate field types."""
        _check_str("DeviceId", self.device_id)
        _check_int("Status", self.status)

    def parameters(self) -> dict[str, Any]:
        """Return the `Parameters` object in the seed's key order."""
        return {"DeviceId": self.device_id, "Status": self.status}

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> UpgradeReply:
        """Build from a decoded `Parameters` object."""
        return cls(
            device_id=_get(params, "DeviceId"), status=_int_field(params, "Status")
        )


@dataclass(frozen=True, slots=True)
class ChunkRequest:
    """1014, device → server (HTTP): bytes Start..End inclusive, at most 2048."""

    CODE: ClassVar[ProtocolCode] = ProtocolCode.CHUNK_REQUEST

    device_id: str
    file_name: str
    start: int
    end: int

    def __post_init__(self) -> None:
        """Validate field types and the range."""
        _check_str("DeviceId", self.device_id)
        _check_str("FileName", self.file_name)
        _check_int("Start", self.start, 0)
        _check_int("End", self.end, self.start)
        if self.end - self.start + 1 > MAX_CHUNK_SIZE:
            raise MilingFieldError("End", f"range larger than {MAX_CHUNK_SIZE} bytes")

    def parameters(self) -> dict[str, Any]:
        """Return the `Parameters` object in the seed's key order."""
        return {
            "DeviceId": self.device_id,
            "FileName": self.file_name,
            "Start": self.start,
            "End": self.end,
        }

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> ChunkRequest:
        """Build from a decoded `Parameters` object."""
        return cls(
            device_id=_get(params, "DeviceId"),
            file_name=_get(params, "FileName"),
            start=_int_field(params, "Start"),
            end=_int_field(params, "End"),
        )


@dataclass(frozen=True, slots=True)
class ChunkReply:
    """1015, server → device (HTTP).

    Status 0 carries FileName, Start, End, Check and FileChunk; error replies
    (1 file missing, 2 other error) need only Status, the rest may be absent.
    """

    CODE: ClassVar[ProtocolCode] = ProtocolCode.CHUNK_REPLY

    status: int
    file_name: str | None = None
    start: int | None = None
    end: int | None = None
    check: str | None = None
    file_chunk: str | None = None

    def __post_init__(self) -> None:
        """Validate field types; a Status 0 reply must carry every field."""
        _check_int("Status", self.status)
        if self.status not in _CHUNK_STATUSES:
            raise MilingFieldError("Status", f"unknown Status {self.status}")
        required = self.status == ChunkStatus.OK
        for field, value in (
            ("FileName", self.file_name),
            ("Check", self.check),
            ("FileChunk", self.file_chunk),
        ):
            if value is not None:
                _check_str(field, value)
            elif required:
                raise MilingFieldError(field, "missing")
        for field, number in (("Start", self.start), ("End", self.end)):
            if number is not None:
                _check_int(field, number, 0)
            elif required:
                raise MilingFieldError(field, "missing")

    def parameters(self) -> dict[str, Any]:
        """Return the `Parameters` object in the seed's key order (no None fields)."""
        fields = (
            ("Status", self.status),
            ("FileName", self.file_name),
            ("Start", self.start),
            ("End", self.end),
            ("Check", self.check),
            ("FileChunk", self.file_chunk),
        )
        return {key: value for key, value in fields if value is not None}

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> ChunkReply:
        """Build from a decoded `Parameters` object."""
        return cls(
            status=_int_field(params, "Status"),
            file_name=params.get("FileName"),
            start=_opt_int_field(params, "Start"),
            end=_opt_int_field(params, "End"),
            check=params.get("Check"),
            file_chunk=params.get("FileChunk"),
        )


type Message = (
    Register | RegisterReply | UpgradeRequest | UpgradeReply | ChunkRequest | ChunkReply
)

_BY_CODE: Final[dict[int, Callable[[Mapping[str, Any]], Message]]] = {
    int(cls.CODE): cls.from_parameters
    for cls in (
        Register,
        RegisterReply,
        UpgradeRequest,
        UpgradeReply,
        ChunkRequest,
        ChunkReply,
    )
}


def _refuse_constant(name: str) -> Any:
    raise MilingDecodeError(f"non-finite number {name}")


def decode_message(raw: str | bytes | bytearray) -> Message:
    """Decode one JSON message; raise a `MilingProtocolError` subclass if invalid."""
    try:
        doc = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, TypeError, RecursionError) as err:
        raise MilingDecodeError(f"invalid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise MilingDecodeError("message is not a JSON object")
    code = _as_int("ProtocolCode", _get(doc, "ProtocolCode"))
    _check_int("ProtocolCode", code)
    params = _get(doc, "Parameters")
    if not isinstance(params, dict):
        raise MilingFieldError("Parameters", "expected an object")
    try:
        from_parameters = _BY_CODE[code]
    except KeyError:
        raise UnknownProtocolCodeError(code) from None
    try:
        return from_parameters(params)
    except MilingProtocolError as err:
        err.code = code
        err.parameters = params
        raise


def encode_message(message: Message) -> str:
    """Encode a message as the seed shows it: `{"ProtocolCode":…,"Parameters":{…}}`."""
    return json.dumps(
        {"ProtocolCode": int(message.CODE), "Parameters": message.parameters()},
        separators=(",", ":"),
        allow_nan=False,
    )


def is_plain_file_name(name: object) -> bool:
    r"""Return whether a pushed FileName is a plain file name.

    Refused: not a string, empty, `.`, anything containing `..`, a `/` or `\\`,
    control/format/separator characters or lone surrogates, longer than 255 UTF-8
    bytes. The name is still only ever used verbatim in 1014 requests, never as a
    local path.
    """
    if not isinstance(name, str) or not name or name == ".":
        return False
    if ".." in name or "/" in name or "\\" in name:
        return False
    if any(unicodedata.category(char) in _BAD_NAME_CATEGORIES for char in name):
        return False
    return len(name.encode()) <= MAX_FILE_NAME_BYTES


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
    expected = check.strip().lower()
    if hashlib.md5(data, usedforsecurity=False).hexdigest() == expected:
        return True
    try:
        text = file_chunk.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hashlib.md5(text, usedforsecurity=False).hexdigest() == expected


# --------------------------------------------------------------- chunk fetcher


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
        _check_str("DeviceId", device_id)
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
        try:
            async with self._session.post(
                self._url, data=body, headers=_JSON_HEADERS, timeout=self._timeout
            ) as resp:
                length = resp.content_length
                if length is not None and length > MAX_REPLY_BYTES:
                    raise ChunkReplyError(
                        "reply too large", file_name=name, start=start, end=end
                    )
                bounded = (
                    await resp.read()
                    if length is not None
                    else await _read_bounded(resp.content, MAX_REPLY_BYTES)
                )
                if bounded is None:
                    raise ChunkReplyError(
                        "reply too large", file_name=name, start=start, end=end
                    )
                reply, status = bounded, resp.status
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
        request = ChunkRequest(self._device_id, file_name, start, end)  # validates
        raw = await self._post(self._body(file_name, start, end), file_name, start, end)
        return self._verify(request, raw, file_size)

    @staticmethod
    def _verify(request: ChunkRequest, raw: bytes, file_size: int | None) -> bytes:
        name, start, end = request.file_name, request.start, request.end

        def error(cls: type[ChunkError], message: str) -> ChunkError:
            return cls(message, file_name=name, start=start, end=end)

        reply = _chunk_reply(raw, error)
        # Status 0: __post_init__ guarantees every field is present.
        assert reply.file_chunk is not None  # noqa: S101
        assert reply.check is not None  # noqa: S101
        if reply.file_name != name:
            raise error(ChunkReplyError, f"FileName {reply.file_name!r} echoed")
        if reply.start != start:
            raise error(ChunkReplyError, f"Start {reply.start} echoed")
        try:
            data = binascii.a2b_base64(reply.file_chunk)
        except (binascii.Error, ValueError) as err:
            raise error(ChunkReplyError, f"FileChunk is not base64: {err}") from err
        size = len(data)
        expected = end - start + 1
        if file_size is not None and end >= file_size:
            expected = max(0, file_size - start)
        if size != expected:
            raise error(ChunkReplyError, f"{size} bytes, expected {expected}")
        if reply.end not in {end, start + size - 1}:
            raise error(ChunkReplyError, f"End {reply.end} echoed")
        if not md5_matches(reply.check, data, reply.file_chunk):
            raise error(ChunkChecksumError, f"MD5 mismatch (Check {reply.check})")
        return data


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


# ------------------------------------------------------------------- WebSocket


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts.

    The first is random in [0, initial) (spreading devices after a server
    restart), then `minimum` growing by `factor` up to `maximum`. A connection
    that lived less than `stable_after` seconds counts as a failed attempt.
    """

    initial: float = 1.0
    minimum: float = 2.0
    factor: float = 1.618
    maximum: float = 30.0
    stable_after: float = 10.0

    def delays(self) -> Generator[float]:
        """Yield the delays before each successive attempt."""
        yield random.random() * self.initial  # noqa: S311
        delay = self.minimum
        while delay < self.maximum:
            yield delay
            delay *= self.factor
        while True:
            yield self.maximum


def build_ws_uri(host: str, ws_port: int = DEFAULT_WS_PORT, path: str = WS_PATH) -> str:
    """Return `ws://host:port/DevRegister` (IPv6 hosts bracketed)."""
    if not host:
        raise ValueError("host must not be empty")
    return str(URL.build(scheme="ws", host=host, port=ws_port, path=path))


def _retry_connect(exc: Exception) -> Exception | None:
    """Reconnect after network and handshake errors; a bad URI is fatal."""
    if isinstance(exc, InvalidURI):
        return exc
    if isinstance(exc, (OSError, TimeoutError, WebSocketException)):
        return None
    return exc


type ConnectedHook = Callable[[], Coroutine[Any, Any, None]]
type MessageHook = Callable[[Message], None]
type InvalidHook = Callable[[str | bytes, MilingProtocolError], None]
type DisconnectedHook = Callable[[], None]


class MilingClient:
    """The device side of the Miling WebSocket, kept connected until `close()`.

    Hooks:
    - `on_connected()` (a coroutine function) runs as a task after every
      (re)connect, typically to `register()`; it is cancelled if the connection drops.
    - `on_message(message)` gets every valid 1011 and 1012, in order, from the
      receive loop: keep it short (start tasks for anything that waits).
    - `on_invalid(frame, error)` gets every frame that is not a valid 1011/1012;
      it is also logged and the connection is kept.
    - `on_disconnected()` runs when an established connection ends.
    Exceptions raised by hooks are logged and do not affect the connection.
    """

    def __init__(  # noqa: PLR0913  # keyword-only hooks and tuning
        self,
        *,
        host: str,
        ws_port: int = DEFAULT_WS_PORT,
        path: str = WS_PATH,
        on_connected: ConnectedHook | None = None,
        on_message: MessageHook | None = None,
        on_invalid: InvalidHook | None = None,
        on_disconnected: DisconnectedHook | None = None,
        backoff: Backoff | None = None,
        request_timeout: float = DEFAULT_TIMEOUT,
        open_timeout: float = DEFAULT_TIMEOUT,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 5.0,
    ) -> None:
        """Initialize; nothing connects until `start()`."""
        self.uri = build_ws_uri(host, ws_port, path)
        self._on_connected = on_connected
        self._on_message = on_message
        self._on_invalid = on_invalid
        self._on_disconnected = on_disconnected
        self.backoff = backoff or Backoff()
        self._request_timeout = request_timeout
        self._connect_options: dict[str, Any] = {
            "open_timeout": open_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_size": MAX_WS_MESSAGE_BYTES,
            "compression": None,
            "proxy": None,
            "process_exception": _retry_connect,
        }
        if _CONNECT_SUPPORTS_DELAYS:
            self._connect_options["reconnect_delays"] = self.backoff.delays
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._waiters: list[tuple[str, asyncio.Future[RegisterReply]]] = []
        self._connected_event = asyncio.Event()
        self.connections = 0
        """How many connections were established so far."""
        self.last_error: Exception | None = None
        """The fatal error that stopped reconnecting, if any."""

    @property
    def connected(self) -> bool:
        """Return whether the WebSocket is open right now."""
        return self._ws is not None

    def start(self) -> None:
        """Start `run()` in a task of its own."""
        if self._task is not None:
            raise RuntimeError("client already started")
        self._task = asyncio.get_running_loop().create_task(
            self.run(), name=f"miling {self.uri}"
        )

    async def run(self) -> None:
        """Connect and reconnect until `close()` (which cancels this coroutine).

        For callers that own the task, e.g. Home Assistant's
        `entry.async_create_background_task(hass, client.run(), name)`; returns
        early only after a fatal error (`last_error`).
        """
        task = asyncio.current_task()
        if self._task is None:
            self._task = task
        elif self._task is not task:
            raise RuntimeError("client already started")
        self._closing = False
        await self._run()

    async def close(self) -> None:
        """Disconnect and stop reconnecting."""
        self._closing = True
        task, self._task = self._task, None
        ws = self._ws
        if ws is not None:  # a clean close (1000) rather than 1011 from cancelling
            await ws.close()
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        if self._hook_tasks:
            await asyncio.wait(self._hook_tasks)

    async def wait_connected(self) -> None:
        """Wait until the WebSocket is open (bound it with `asyncio.timeout`)."""
        await self._connected_event.wait()

    async def send(self, message: Message) -> None:
        """Send one message on the socket."""
        ws = self._ws
        if ws is None:
            raise MilingNotConnectedError(f"{self.uri}: not connected")
        try:
            await ws.send(encode_message(message))
        except ConnectionClosed as err:
            raise MilingConnectionError(f"{self.uri}: {err}") from err

    async def register(
        self,
        device_id: str,
        device_type: str,
        prog_version: str,
    ) -> RegisterReply:
        """Send 1010 and wait for the 1011 reply.

        Raises `MilingRegistrationRefusedError` for a non-zero Status,
        `MilingTimeoutError`, `MilingConnectionError` (also when the connection
        drops while waiting), each after at most `request_timeout` seconds.
        """
        message = Register(device_id, device_type, prog_version)
        future: asyncio.Future[RegisterReply] = (
            asyncio.get_running_loop().create_future()
        )
        waiter = (device_id, future)
        self._waiters.append(waiter)
        try:
            await self.send(message)
            async with asyncio.timeout(self._request_timeout):
                reply = await future
        except TimeoutError as err:
            raise MilingTimeoutError(f"{self.uri}: no 1011 reply") from err
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        if not reply.ok:
            raise MilingRegistrationRefusedError(reply.status)
        return reply

    async def reply_upgrade(self, device_id: str, status: int) -> None:
        """Send the 1013 answer to an upgrade request."""
        await self.send(UpgradeReply(device_id, int(status)))

    # ----------------------------------------------------------------- internals

    async def _run(self) -> None:
        short_lived: Generator[float] | None = None
        loop = asyncio.get_running_loop()
        try:
            async for ws in connect(self.uri, **self._connect_options):
                started = loop.time()
                await self._serve(ws)
                if self._closing:
                    return
                if loop.time() - started >= self.backoff.stable_after:
                    short_lived = None
                    continue
                if short_lived is None:
                    short_lived = self.backoff.delays()
                delay = next(short_lived)
                _LOGGER.debug(
                    "%s closed early; reconnecting in %.2f s", self.uri, delay
                )
                await asyncio.sleep(delay)
        except Exception as err:  # noqa: BLE001  # the iterator's fatal errors
            self.last_error = err
            _LOGGER.error("%s: giving up reconnecting: %r", self.uri, err)  # noqa: TRY400

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.connections += 1
        self._connected_event.set()
        _LOGGER.debug("%s connected", self.uri)
        if self._on_connected is not None:
            task = asyncio.get_running_loop().create_task(
                self._run_hook(self._on_connected), name=f"miling connected {self.uri}"
            )
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)
        try:
            async for frame in ws:
                self._dispatch(frame)
        except ConnectionClosed as err:
            _LOGGER.debug("%s connection lost: %s", self.uri, err)
        finally:
            self._ws = None
            self._connected_event.clear()
            for task in list(self._hook_tasks):
                task.cancel()
            lost = MilingConnectionError(f"{self.uri}: connection closed")
            for future in [f for _i, f in self._waiters if not f.done()]:
                future.set_exception(lost)
            _LOGGER.debug("%s disconnected", self.uri)
            if self._on_disconnected is not None:
                self._call(self._on_disconnected)

    async def _run_hook(self, hook: ConnectedHook) -> None:
        try:
            await hook()
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("%s: on_connected failed", self.uri)

    def _call(self, hook: Callable[..., None], *args: Any) -> None:
        try:
            hook(*args)
        except Exception:
            _LOGGER.exception("%s: hook %s failed", self.uri, hook)

    def _dispatch(self, frame: str | bytes) -> None:
        try:
            message = decode_message(frame)
            if not isinstance(message, (RegisterReply, UpgradeRequest)):
                raise UnexpectedMessageError(
                    f"{int(message.CODE)} is not sent by a server on the socket"
                )
        except MilingProtocolError as err:
            _LOGGER.warning(
                "%s: ignoring invalid frame (%s): %.200r", self.uri, err, frame
            )
            if self._on_invalid is not None:
                self._call(self._on_invalid, frame, err)
            return
        if isinstance(message, RegisterReply):
            self._resolve(message)
        if self._on_message is not None:
            self._call(self._on_message, message)

    def _resolve(self, reply: RegisterReply) -> None:
        """Answer the waiter for this DeviceId, else the oldest.

        The seed's example replies with another DeviceId than it registered.
        """
        pending = [(i, f) for i, f in self._waiters if not f.done()]
        if not pending:
            return
        future = next((f for i, f in pending if i == reply.device_id), pending[0][1])
        future.set_result(reply)


async def register_once(
    host: str,
    ws_port: int,
    device_id: str,
    device_type: str,
    prog_version: str,
    *,
    path: str = WS_PATH,
    request_timeout: float = DEFAULT_TIMEOUT,
) -> RegisterReply:
    """Connect, register once and disconnect: a config flow's validation.

    The whole exchange is bounded by `request_timeout`; invalid frames before the
    1011 are skipped. Raises
    `MilingRegistrationRefusedError`, `MilingTimeoutError`, `MilingConnectionError`.
    """
    uri = build_ws_uri(host, ws_port, path)
    request = encode_message(Register(device_id, device_type, prog_version))
    try:
        async with (
            asyncio.timeout(request_timeout),
            connect(
                uri,
                open_timeout=None,
                close_timeout=1.0,
                max_size=MAX_WS_MESSAGE_BYTES,
                compression=None,
                proxy=None,
            ) as ws,
        ):
            await ws.send(request)
            reply = await _first_register_reply(ws)
    except TimeoutError as err:
        raise MilingTimeoutError(
            f"{uri}: no 1011 reply in {request_timeout} s"
        ) from err
    except (OSError, WebSocketException) as err:
        raise MilingConnectionError(f"{uri}: {type(err).__name__}: {err}") from err
    if not reply.ok:
        raise MilingRegistrationRefusedError(reply.status)
    return reply


async def _first_register_reply(ws: ClientConnection) -> RegisterReply:
    async for frame in ws:
        try:
            message = decode_message(frame)
        except MilingProtocolError as err:
            _LOGGER.warning("register_once: ignoring invalid frame (%s)", err)
            continue
        if isinstance(message, RegisterReply):
            return message
    raise MilingConnectionError("connection closed before the 1011 reply")
