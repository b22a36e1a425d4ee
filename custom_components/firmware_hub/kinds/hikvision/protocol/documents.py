"""ISAPI documents: decoding answers into typed values (sans I/O).

Parsing is namespace-agnostic (devices use both `http://www.hikvision.com/ver20/
XMLSchema` and `http://www.isapi.org/ver20/XMLSchema`), never expands XML entities,
and turns every malformed body into `IsapiParseError`. No Home Assistant imports.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
import json
import math
from typing import Any, Final, cast
from xml.parsers.expat import ExpatError

import xmltodict

from .errors import (
    IsapiHttpError,
    IsapiNotSupportedError,
    IsapiParseError,
    IsapiResponseError,
)

#: The one attribute kept: a capability's choices (`opt="start,cancel,..."`).
OPTIONS_ATTRIBUTE: Final = "@opt"
#: The text of an element that has `opt`.
TEXT_KEY: Final = "#text"


def _strip_namespace(_path: Any, key: str, value: Any) -> tuple[str, Any] | None:
    """Drop any `prefix:` and every attribute but `opt` (a capability's choices).

    Documents then parse the same under every namespace, and an element without
    `opt` is its text as before.
    """
    name = key.rpartition(":")[2]
    if name.startswith("@") and name != OPTIONS_ATTRIBUTE:
        return None
    return name, value


def parse_xml(body: bytes | str) -> tuple[str, Any]:
    """Parse an ISAPI XML document into (root element name, content).

    Attributes (namespaces, `version`, `max`, ...) are dropped but `opt`; an
    element's content is its text, a dict of its children (`@opt` and `#text` for
    an element with choices), or None when empty.
    """
    try:
        doc = xmltodict.parse(
            body,
            disable_entities=True,
            xml_attribs=True,
            process_namespaces=False,
            postprocessor=_strip_namespace,
        )
    except (ExpatError, ValueError, TypeError, LookupError, RecursionError) as err:
        raise IsapiParseError(f"invalid XML: {err}") from err
    if not isinstance(doc, dict) or len(doc) != 1:
        raise IsapiParseError("XML document without a single root element")
    ((root, content),) = doc.items()
    return str(root), content


def parse_json(body: bytes | str) -> dict[str, Any]:
    """Parse an ISAPI JSON document (`?format=json`) into a dict."""
    try:
        doc = json.loads(body)
    except (ValueError, TypeError, RecursionError) as err:
        raise IsapiParseError(f"invalid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise IsapiParseError("JSON document is not an object")
    return doc


def text(value: Any) -> str | None:
    """Return an element's text (stripped), or None when absent or not text."""
    if isinstance(value, Mapping) and OPTIONS_ATTRIBUTE in value:
        value = value.get(TEXT_KEY)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def options(value: Any) -> frozenset[str]:
    """Return the choices an element's `opt` attribute lists (empty: none)."""
    if not isinstance(value, Mapping):
        return frozenset()
    raw = value.get(OPTIONS_ATTRIBUTE)
    if not isinstance(raw, str):
        return frozenset()
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def find(content: Any, *names: str) -> Any:
    """Return the first element named one of `names` at any depth (breadth first)."""
    queue: deque[Any] = deque([content])
    while queue:
        node = queue.popleft()
        if isinstance(node, Mapping):
            for name in names:
                if name in node:
                    return node[name]
            queue.extend(node.values())
        elif isinstance(node, list):
            queue.extend(node)
    return None


def _as_int(value: Any) -> int | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError, OverflowError:  # not a number, NaN, infinity
        return None


def _as_float(value: Any) -> float | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _as_bool(value: Any) -> bool | None:
    raw = text(value)
    if raw is None:
        return value if isinstance(value, bool) else None
    return {"true": True, "false": False}.get(raw.lower())


def _response_error(http_status: int, fields: Mapping[str, Any]) -> IsapiResponseError:
    sub = text(fields.get("subStatusCode"))
    cls = (
        IsapiNotSupportedError
        if sub is not None and sub.lower() == "notsupport"
        else IsapiResponseError
    )
    return cls(
        http_status=http_status,
        status_code=_as_int(fields.get("statusCode")),
        sub_status_code=sub,
        status_string=text(fields.get("statusString")),
        description=text(fields.get("description")) or text(fields.get("errorMsg")),
    )


def check_response_status(http_status: int, root: str, content: Any) -> None:
    """Raise the typed error a `ResponseStatus` (XML or JSON) describes, if any."""
    if root != "ResponseStatus":
        return
    fields = content if isinstance(content, Mapping) else {}
    if _as_int(fields.get("statusCode")) == 1 and http_status < 300:  # noqa: PLR2004
        return
    raise _response_error(http_status, fields)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The fields of `/ISAPI/System/deviceInfo` the integration uses."""

    serial_number: str
    model: str
    name: str
    firmware_version: str
    firmware_build: str | None
    mac_address: str | None
    hardware_version: str | None
    device_type: str | None
    raw: Mapping[str, Any]

    @property
    def full_version(self) -> str:
        """Return the version the way offers spell it: `V5.7.18 build 240826`."""
        if self.firmware_build:
            return f"{self.firmware_version} {self.firmware_build}"
        return self.firmware_version


@dataclass(frozen=True, slots=True)
class UpgradeVersion:
    """The camera's online check: the newest firmware its upgrade server offers."""

    version: str | None
    changelog: str | None
    raw: Any


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A download or upgrade status: the state word and a percentage.

    A package download also says how big the package is, what is left, how fast
    it goes and how long it should still take (None: not said).
    """

    status: str
    percent: int
    total_mb: float | None = None
    remain_mb: float | None = None
    speed_mb: float | None = None
    remaining_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class UpgradeProgress:
    """`/ISAPI/System/upgradeStatus`: whether the device flashes, and how far."""

    upgrading: bool
    percent: int


def decode_response(status: int, content_type: str, body: bytes) -> tuple[str, Any]:
    """Turn an HTTP answer into (root name, content), or raise a typed error.

    JSON answers come back as ("", dict).
    """
    stripped = body.lstrip()
    if "json" in content_type or stripped.startswith(b"{"):
        doc = parse_json(body)
        if "statusCode" in doc and (
            _as_int(doc.get("statusCode")) != 1 or status >= 300  # noqa: PLR2004
        ):
            raise _response_error(status, doc)
        if status >= 300:  # noqa: PLR2004
            raise IsapiHttpError(status)
        return "", doc
    if not stripped.startswith(b"<"):
        if status >= 300:  # noqa: PLR2004
            raise IsapiHttpError(status)
        raise IsapiParseError("not an XML or JSON body")
    try:
        root, content = parse_xml(body)
    except IsapiParseError:
        if status >= 300:  # noqa: PLR2004
            raise IsapiHttpError(status) from None
        raise
    check_response_status(status, root, content)
    if status >= 300:  # noqa: PLR2004
        raise IsapiHttpError(status)
    return root, content


def expect_document(root: str, content: Any, expected: str) -> Mapping[str, Any]:
    """Return `content` if it is an `<expected>` element with children."""
    if root != expected or not isinstance(content, Mapping):
        raise IsapiParseError(f"expected <{expected}>, got <{root or 'JSON'}>")
    return cast("Mapping[str, Any]", content)


def parse_device_info(root: str, content: Any) -> DeviceInfo:
    """Read a `DeviceInfo` document."""
    doc = expect_document(root, content, "DeviceInfo")
    serial = text(doc.get("serialNumber"))
    firmware = text(doc.get("firmwareVersion"))
    if not serial or not firmware:
        raise IsapiParseError("deviceInfo without serialNumber or firmwareVersion")
    return DeviceInfo(
        serial_number=serial,
        model=text(doc.get("model")) or "Hikvision device",
        name=text(doc.get("deviceName")) or text(doc.get("model")) or serial,
        firmware_version=firmware,
        firmware_build=text(doc.get("firmwareReleasedDate")) or None,
        mac_address=text(doc.get("macAddress")) or None,
        hardware_version=text(doc.get("hardwareVersion")) or None,
        device_type=text(doc.get("deviceType")) or None,
        raw=doc,
    )


def parse_upgrade_version(_root: str, content: Any) -> UpgradeVersion:
    """Read the online version check's answer.

    No public capture of a successful answer exists, so the version and change log
    are found by name at any depth, under every name seen in documents.
    """
    version = text(find(content, "newVersion", "firmwareVersion", "version"))
    changelog = text(find(content, "changeLog", "changelog", "description"))
    return UpgradeVersion(
        version=version or None, changelog=changelog or None, raw=content
    )


def parse_server_connected(_root: str, content: Any) -> bool | None:
    """Read whether the device reaches its upgrade server (None: not said)."""
    return _as_bool(find(content, "connectStatus"))


def parse_download_status(_root: str, content: Any) -> TaskStatus:
    """Read a `DownloadPackageStatus` (JSON) document."""
    status = find(content, "DownloadPackageStatus")
    fields = status if isinstance(status, Mapping) else content
    state = text(fields.get("status")) if isinstance(fields, Mapping) else None
    if not state:
        raise IsapiParseError("download status without a status")
    remaining = _as_int(fields.get("remainTime"))
    return TaskStatus(
        state,
        _clamp(_as_int(fields.get("progress"))),
        total_mb=_as_float(fields.get("total")),
        remain_mb=_as_float(fields.get("remain")),
        speed_mb=_as_float(fields.get("speed")),
        remaining_seconds=None if remaining is None else max(0, remaining),
    )


def parse_upgrade_status(root: str, content: Any) -> TaskStatus:
    """Read an `OnlineUpgradeStatus` document."""
    doc = expect_document(root, content, "OnlineUpgradeStatus")
    state = text(doc.get("status"))
    if not state:
        raise IsapiParseError("upgrade status without a status")
    return TaskStatus(state, _clamp(_as_int(doc.get("percent"))))


def parse_upgrade_progress(root: str, content: Any) -> UpgradeProgress:
    """Read an `upgradeStatus` document (a firmware file being flashed)."""
    doc = expect_document(root, content, "upgradeStatus")
    upgrading = _as_bool(doc.get("upgrading"))
    if upgrading is None:
        raise IsapiParseError("upgradeStatus without upgrading")
    return UpgradeProgress(upgrading, _clamp(_as_int(doc.get("percent"))))


def _clamp(value: int | None) -> int:
    return 0 if value is None else max(0, min(100, value))
