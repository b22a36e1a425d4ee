"""Hikvision ISAPI over HTTP(S): requests, parsing and typed errors.

Wire only, no Home Assistant imports. The client takes an aiohttp session (Home
Assistant's shared one) and authenticates with aiohttp's `DigestAuthMiddleware`,
one per device so the server nonce is reused and steady-state requests do not pay a
401 round trip. Devices that challenge with Basic get Basic.

Parsing is namespace-agnostic (devices use both `http://www.hikvision.com/ver20/
XMLSchema` and `http://www.isapi.org/ver20/XMLSchema`), never expands XML entities,
and turns every malformed body into `IsapiParseError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
import json
from typing import Any, Final, cast
from xml.parsers.expat import ExpatError

import aiohttp
from aiohttp import hdrs
import xmltodict
from yarl import URL

#: Bodies larger than this are not ISAPI answers; refuse them instead of buffering.
MAX_BODY_BYTES: Final = 1024 * 1024
DEFAULT_TIMEOUT: Final = 10.0

PATH_DEVICE_INFO: Final = "/ISAPI/System/deviceInfo"
PATH_REBOOT: Final = "/ISAPI/System/reboot"
PATH_UPGRADE_CAPABILITIES: Final = "/ISAPI/System/onlineUpgrade/capabilities"
PATH_UPGRADE_SERVER: Final = "/ISAPI/System/onlineUpgrade/server"
PATH_UPGRADE_VERSION: Final = "/ISAPI/System/onlineUpgrade/version"
PATH_DOWNLOAD_PACKAGE: Final = "/ISAPI/System/onlineUpgrade/downloadPackage"
PATH_DOWNLOAD_STATUS: Final = "/ISAPI/System/onlineUpgrade/downloadPackage/status"
PATH_UPGRADE_NO_DOWNLOAD: Final = "/ISAPI/System/onlineUpgrade/upgradeWithoutDownload"
PATH_UPGRADE_STATUS: Final = "/ISAPI/System/onlineUpgrade/status"

_JSON: Final = {"format": "json"}


class IsapiError(Exception):
    """Base class of every error the ISAPI client raises."""


class IsapiConnectionError(IsapiError):
    """The device could not be reached (refused, reset, DNS, TLS)."""


class IsapiTimeoutError(IsapiConnectionError):
    """The device did not answer in time."""


class IsapiAuthError(IsapiError):
    """The device refused the credentials."""


class IsapiParseError(IsapiError):
    """The device answered something that is not a valid ISAPI document."""


class IsapiHttpError(IsapiError):
    """An HTTP error status without an ISAPI `ResponseStatus` body."""

    def __init__(self, status: int) -> None:
        """Initialize with the HTTP status."""
        super().__init__(f"HTTP {status}")
        self.status = status


class IsapiResponseError(IsapiError):
    """The device answered with a `ResponseStatus` that is not OK."""

    def __init__(
        self,
        *,
        http_status: int,
        status_code: int | None,
        sub_status_code: str | None,
        status_string: str | None = None,
        description: str | None = None,
    ) -> None:
        """Initialize from the ResponseStatus fields."""
        super().__init__(
            f"statusCode={status_code} subStatusCode={sub_status_code}"
            f" ({description or status_string or 'no description'})"
        )
        self.http_status = http_status
        self.status_code = status_code
        self.sub_status_code = sub_status_code
        self.status_string = status_string
        self.description = description


class IsapiNotSupportedError(IsapiResponseError):
    """`subStatusCode` notSupport: the device does not offer this function."""


def _strip_namespace(_path: Any, key: str, value: Any) -> tuple[str, Any]:
    """Drop any `prefix:` so documents parse the same under every namespace."""
    return key.rpartition(":")[2], value


def parse_xml(body: bytes | str) -> tuple[str, Any]:
    """Parse an ISAPI XML document into (root element name, content).

    Attributes (namespaces, `version`, `max`, ...) are dropped; an element's content
    is its text, a dict of its children, or None when empty.
    """
    try:
        doc = xmltodict.parse(
            body,
            disable_entities=True,
            xml_attribs=False,
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
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


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
    """A download or upgrade status: the state word and a percentage."""

    status: str
    percent: int


class _DeviceDigestAuth(aiohttp.DigestAuthMiddleware):
    """Digest auth whose protection space is the whole device.

    Hikvision NVRs challenge with `domain="::"`, which aiohttp reads as an absolute
    URI no request ever matches, so it would never send credentials up front and
    every request would pay a 401 round trip. A camera is one protection space.
    """

    def __init__(self, login: str, password: str, origin: URL) -> None:
        super().__init__(login, password, preemptive=True)
        self._device_origin = origin

    def _in_protection_space(self, url: URL) -> bool:
        return url.origin() == self._device_origin or super()._in_protection_space(url)


class IsapiClient:
    """One Hikvision device's ISAPI."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        host: str,
        port: int,
        ssl: bool,
        username: str,
        password: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Initialize; no I/O until the first request."""
        self._session = session
        self._base = URL.build(scheme="https" if ssl else "http", host=host, port=port)
        self._username = username
        self._password = password
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._digest = _DeviceDigestAuth(username, password, self._base.origin())
        self._basic: str | None = None  # Authorization header, once Basic is seen
        # The last answer per GET request: (body, decoded). Parsed documents are
        # never mutated, so an identical body can reuse its decoded form.
        self._last_answer: dict[
            tuple[str, str, str, int, str], tuple[bytes, tuple[str, Any]]
        ] = {}

    @property
    def base_url(self) -> str:
        """Return the device's base URL (no credentials)."""
        return str(self._base)

    async def _send(
        self, method: str, path: str, params: Mapping[str, str] | None, data: Any
    ) -> tuple[int, str, bytes]:
        url = self._base.with_path(path)
        kwargs: dict[str, Any] = {"params": params, "timeout": self._timeout}
        if data is not None:
            kwargs["data"] = data
        if self._basic is not None:
            kwargs["headers"] = {hdrs.AUTHORIZATION: self._basic}
        else:
            kwargs["middlewares"] = (self._digest,)
        try:
            async with self._session.request(method, url, **kwargs) as resp:
                if resp.status == 401:  # noqa: PLR2004
                    challenge = resp.headers.get(hdrs.WWW_AUTHENTICATE, "")
                    if self._basic is None and challenge.lower().startswith("basic"):
                        self._basic = aiohttp.encode_basic_auth(
                            self._username, self._password
                        )
                        return await self._send(method, path, params, data)
                    raise IsapiAuthError(f"{method} {path}: credentials refused")
                body = await _read_body(resp)
                if body is None:
                    raise IsapiParseError(f"{method} {path}: body too large")
                return resp.status, resp.headers.get(hdrs.CONTENT_TYPE, ""), body
        except TimeoutError as err:
            raise IsapiTimeoutError(f"{method} {path}: timed out") from err
        except aiohttp.ClientError as err:
            raise IsapiConnectionError(
                f"{method} {path}: {type(err).__name__}: {err}"
            ) from err

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Any = None,
    ) -> tuple[str, Any]:
        """Send a request; return the answer as (root name, content).

        JSON answers come back as ("", dict). A `ResponseStatus` that is not OK, an
        HTTP error, or a body that is neither XML nor JSON raise typed errors.
        """
        status, content_type, body = await self._send(method, path, params, data)
        key = (method, path, str(sorted((params or {}).items())), status, content_type)
        cached = self._last_answer.get(key)
        if cached is not None and cached[0] == body:
            # Polling returns the same document most of the time: parse it once.
            return cached[1]
        try:
            answer = decode_response(status, content_type, body)
        except IsapiParseError as err:
            raise IsapiParseError(f"{method} {path}: {err}") from err
        if method == hdrs.METH_GET:
            self._last_answer[key] = (body, answer)
        return answer

    async def _put_json(self, path: str) -> None:
        await self.request(hdrs.METH_PUT, path, params=_JSON, data=b"")

    async def get_device_info(self) -> DeviceInfo:
        """Read `/ISAPI/System/deviceInfo`."""
        return parse_device_info(*await self.request(hdrs.METH_GET, PATH_DEVICE_INFO))

    async def get_upgrade_capabilities(self) -> Mapping[str, Any]:
        """Read the online-upgrade capability document."""
        root, content = await self.request(hdrs.METH_GET, PATH_UPGRADE_CAPABILITIES)
        return expect_document(root, content, "OnlineUpgradeCap")

    async def get_upgrade_server_connected(self) -> bool | None:
        """Return whether the device reaches its upgrade server (None: not said)."""
        _root, content = await self.request(hdrs.METH_GET, PATH_UPGRADE_SERVER)
        return _as_bool(find(content, "connectStatus"))

    async def get_upgrade_version(self) -> UpgradeVersion:
        """Ask the device's upgrade server for the newest firmware."""
        return parse_upgrade_version(
            *await self.request(hdrs.METH_GET, PATH_UPGRADE_VERSION)
        )

    async def start_package_download(self) -> None:
        """Tell the device to download the offered package."""
        await self._put_json(PATH_DOWNLOAD_PACKAGE)

    async def get_download_status(self) -> TaskStatus:
        """Read the package download status."""
        return parse_download_status(
            *await self.request(hdrs.METH_GET, PATH_DOWNLOAD_STATUS, params=_JSON)
        )

    async def start_upgrade(self) -> None:
        """Flash the downloaded package (`upgradeWithoutDownload`)."""
        await self._put_json(PATH_UPGRADE_NO_DOWNLOAD)

    async def get_upgrade_status(self) -> TaskStatus:
        """Read the upgrade (flash) status."""
        return parse_upgrade_status(
            *await self.request(hdrs.METH_GET, PATH_UPGRADE_STATUS)
        )

    async def reboot(self) -> None:
        """Reboot the device."""
        await self.request(hdrs.METH_PUT, PATH_REBOOT, data=b"")


async def _read_body(resp: aiohttp.ClientResponse) -> bytes | None:
    """Read the whole body, or return None once it exceeds `MAX_BODY_BYTES`."""
    parts: list[bytes] = []
    size = 0
    async for data in resp.content.iter_any():
        size += len(data)
        if size > MAX_BODY_BYTES:
            return None
        parts.append(data)
    return b"".join(parts)


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


def parse_download_status(_root: str, content: Any) -> TaskStatus:
    """Read a `DownloadPackageStatus` (JSON) document."""
    status = find(content, "DownloadPackageStatus")
    fields = status if isinstance(status, Mapping) else content
    state = text(fields.get("status")) if isinstance(fields, Mapping) else None
    if not state:
        raise IsapiParseError("download status without a status")
    return TaskStatus(state, _clamp(_as_int(fields.get("progress"))))


def parse_upgrade_status(root: str, content: Any) -> TaskStatus:
    """Read an `OnlineUpgradeStatus` document."""
    doc = expect_document(root, content, "OnlineUpgradeStatus")
    state = text(doc.get("status"))
    if not state:
        raise IsapiParseError("upgrade status without a status")
    return TaskStatus(state, _clamp(_as_int(doc.get("percent"))))


def _clamp(value: int | None) -> int:
    return 0 if value is None else max(0, min(100, value))
