"""Errors of the Miling protocol: every failure of this package is a `MilingError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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


class ChunkEncodingError(ChunkReplyError):
    """A compressed (Content-Encoding) reply: refused, never inflated.

    Chunks are asked for uncompressed (`Accept-Encoding: identity`); a server that
    compresses anyway would do so again, so this is not retried.
    """

    retryable = False
