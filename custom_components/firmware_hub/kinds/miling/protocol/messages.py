"""Miling messages (seed 003): the six codecs, JSON encoding and decoding.

Wire only, no Home Assistant imports, no I/O. Source: seed 003 and `reference/miling.md`.

Codecs are frozen dataclasses validated on construction, so a message decoded from
the network and one built locally pass the same checks; every malformed message
raises a `MilingProtocolError` subclass, never anything else. Extra keys are ignored
(forward compatibility); an integral float (`4096.0`) is read as an int; booleans,
non-finite numbers and fractions are refused where ints are expected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
import json
from typing import Any, ClassVar, Final
import unicodedata

from .errors import (
    MilingDecodeError,
    MilingFieldError,
    MilingProtocolError,
    UnknownProtocolCodeError,
)
from .fields import as_int, check_int, check_str, get, int_field, opt_int_field

DEFAULT_WS_PORT: Final = 6007
DEFAULT_HTTP_PORT: Final = 6008
WS_PATH: Final = "/DevRegister"
DOWNLOAD_PATH: Final = "/download"
#: Largest range one 1014 request may ask for (End - Start + 1).
MAX_CHUNK_SIZE: Final = 2048
#: A FileName longer than this (UTF-8 bytes) is not a plain file name.
MAX_FILE_NAME_BYTES: Final = 255
DEFAULT_TIMEOUT: Final = 10.0

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
        check_str("DeviceId", self.device_id)
        check_str("DeviceType", self.device_type)
        check_str("ProgVersion", self.prog_version)

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
            device_id=get(params, "DeviceId"),
            device_type=get(params, "DeviceType"),
            prog_version=get(params, "ProgVersion"),
        )


@dataclass(frozen=True, slots=True)
class RegisterReply:
    """1011, server → device: Status 0 registered, anything else refused."""

    CODE: ClassVar[ProtocolCode] = ProtocolCode.REGISTER_REPLY

    device_id: str
    status: int

    def __post_init__(self) -> None:
        """Validate field types."""
        check_str("DeviceId", self.device_id)
        check_int("Status", self.status)

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
            device_id=get(params, "DeviceId"), status=int_field(params, "Status")
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
        check_str("FileName", self.file_name)
        check_int("FileSize", self.file_size, 0)
        check_str("DeviceId", self.device_id)
        check_str("DeviceType", self.device_type)
        check_str("ProgVersion", self.prog_version)
        check_int("LoadCondition", self.load_condition, 0)

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
            file_name=get(params, "FileName"),
            file_size=int_field(params, "FileSize"),
            device_id=get(params, "DeviceId"),
            device_type=get(params, "DeviceType"),
            prog_version=get(params, "ProgVersion"),
            load_condition=int_field(params, "LoadCondition"),
        )


@dataclass(frozen=True, slots=True)
class UpgradeReply:
    """1013, device → server: 0 accepted, -1 mismatch, -2 too large."""

    CODE: ClassVar[ProtocolCode] = ProtocolCode.UPGRADE_REPLY

    device_id: str
    status: int

    def __post_init__(self) -> None:
        """Validate field types."""
        check_str("DeviceId", self.device_id)
        check_int("Status", self.status)

    def parameters(self) -> dict[str, Any]:
        """Return the `Parameters` object in the seed's key order."""
        return {"DeviceId": self.device_id, "Status": self.status}

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> UpgradeReply:
        """Build from a decoded `Parameters` object."""
        return cls(
            device_id=get(params, "DeviceId"), status=int_field(params, "Status")
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
        check_str("DeviceId", self.device_id)
        check_str("FileName", self.file_name)
        check_int("Start", self.start, 0)
        check_int("End", self.end, self.start)
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
            device_id=get(params, "DeviceId"),
            file_name=get(params, "FileName"),
            start=int_field(params, "Start"),
            end=int_field(params, "End"),
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
        check_int("Status", self.status)
        if self.status not in _CHUNK_STATUSES:
            raise MilingFieldError("Status", f"unknown Status {self.status}")
        required = self.status == ChunkStatus.OK
        for field, value in (
            ("FileName", self.file_name),
            ("Check", self.check),
            ("FileChunk", self.file_chunk),
        ):
            if value is not None:
                check_str(field, value)
            elif required:
                raise MilingFieldError(field, "missing")
        for field, number in (("Start", self.start), ("End", self.end)):
            if number is not None:
                check_int(field, number, 0)
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
            status=int_field(params, "Status"),
            file_name=params.get("FileName"),
            start=opt_int_field(params, "Start"),
            end=opt_int_field(params, "End"),
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
    code = as_int("ProtocolCode", get(doc, "ProtocolCode"))
    check_int("ProtocolCode", code)
    params = get(doc, "Parameters")
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
