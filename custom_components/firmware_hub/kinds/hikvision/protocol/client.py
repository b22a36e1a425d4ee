"""Hikvision ISAPI over HTTP(S): the client (wire only, no Home Assistant imports).

The client takes an aiohttp session (Home Assistant's shared one) and authenticates
with aiohttp's `DigestAuthMiddleware`, one per device so the server nonce is reused
and steady-state requests do not pay a 401 round trip.

The authentication scheme is fixed by the first answer that authenticates and never
changes afterwards: a device that challenges with Basic gets Basic only over HTTPS
and only before Digest ever worked. Over plain HTTP a Basic challenge raises
`IsapiAuthSchemeError` and the password is never sent in clear.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, BinaryIO, Final

import aiohttp
from aiohttp import hdrs
from yarl import URL

from ....core.files import remaining_size
from .documents import (
    DeviceInfo,
    TaskStatus,
    UpgradeProgress,
    UpgradeVersion,
    decode_response,
    expect_document,
    parse_device_info,
    parse_download_status,
    parse_server_connected,
    parse_upgrade_progress,
    parse_upgrade_status,
    parse_upgrade_version,
)
from .errors import (
    IsapiAuthError,
    IsapiAuthSchemeError,
    IsapiConnectionError,
    IsapiParseError,
    IsapiResponseError,
    IsapiTimeoutError,
)
from .upload import FirmwarePayload, Progress

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
PATH_UPDATE_FIRMWARE: Final = "/ISAPI/System/updateFirmware"
PATH_FILE_UPGRADE_STATUS: Final = "/ISAPI/System/upgradeStatus"
#: A firmware upload may take this long (slow links, the device flashing first).
UPLOAD_TIMEOUT: Final = 30 * 60.0
#: ResponseStatus statusCode "Reboot Required": the firmware went in.
STATUS_REBOOT_REQUIRED: Final = 7

_JSON: Final = {"format": "json"}


class UploadResult(StrEnum):
    """How a device took a firmware file."""

    ACCEPTED = "accepted"
    REBOOT_REQUIRED = "reboot_required"
    DROPPED = "dropped"


class AuthScheme(StrEnum):
    """How the client authenticates, once a device accepted it."""

    DIGEST = "digest"
    BASIC = "basic"


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
        self._ssl = ssl
        self._base = URL.build(scheme="https" if ssl else "http", host=host, port=port)
        self._username = username
        self._password = password
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._digest = _DeviceDigestAuth(username, password, self._base.origin())
        #: The scheme the device accepted (None until a request authenticated).
        self._scheme: AuthScheme | None = None
        self._basic: str | None = None  # Authorization header, once Basic is chosen
        # The last answer per GET request: (body, decoded). Parsed documents are
        # never mutated, so an identical body can reuse its decoded form.
        self._last_answer: dict[
            tuple[str, str, str, int, str], tuple[bytes, tuple[str, Any]]
        ] = {}
        # The last deviceInfo read from the same decoded answer (every poll's read).
        self._device_info: tuple[tuple[str, Any], DeviceInfo] | None = None

    @property
    def host(self) -> str:
        """Return the device's host (address or name), as configured."""
        return self._base.host or ""

    @property
    def auth_scheme(self) -> AuthScheme | None:
        """Return the scheme the device accepted (None before the first answer)."""
        return self._scheme

    def _choose_basic(self, method: str, path: str) -> None:
        """Answer a Basic challenge: only over HTTPS, only before any scheme worked."""
        if self._scheme is not None:
            raise IsapiAuthSchemeError(
                f"{method} {path}: the device asked for Basic after {self._scheme}"
                " worked; refusing to change the authentication scheme"
            )
        if not self._ssl:
            raise IsapiAuthSchemeError(
                f"{method} {path}: the device asks for Basic authentication over"
                " plain HTTP; enable HTTPS (or Digest on the device)"
            )
        self._basic = aiohttp.encode_basic_auth(self._username, self._password)

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: Any,
        limits: aiohttp.ClientTimeout | None = None,
    ) -> tuple[int, str, bytes]:
        url = self._base.with_path(path)
        kwargs: dict[str, Any] = {
            "params": params,
            "timeout": limits or self._timeout,
        }
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
                        self._choose_basic(method, path)
                        return await self._send(method, path, params, data, limits)
                    raise IsapiAuthError(f"{method} {path}: credentials refused")
                if self._scheme is None:
                    self._scheme = (
                        AuthScheme.DIGEST if self._basic is None else AuthScheme.BASIC
                    )
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
        """Read `/ISAPI/System/deviceInfo` (an unchanged answer gives the same object)."""
        answer = await self.request(hdrs.METH_GET, PATH_DEVICE_INFO)
        last = self._device_info
        if last is not None and last[0] is answer:
            return last[1]
        info = parse_device_info(*answer)
        self._device_info = (answer, info)
        return info

    async def get_upgrade_capabilities(self) -> Mapping[str, Any]:
        """Read the online-upgrade capability document."""
        root, content = await self.request(hdrs.METH_GET, PATH_UPGRADE_CAPABILITIES)
        return expect_document(root, content, "OnlineUpgradeCap")

    async def get_upgrade_server_connected(self) -> bool | None:
        """Return whether the device reaches its upgrade server (None: not said)."""
        return parse_server_connected(
            *await self.request(hdrs.METH_GET, PATH_UPGRADE_SERVER)
        )

    async def get_upgrade_version(self, *, check_now: bool = False) -> UpgradeVersion:
        """Read the newest firmware the device's upgrade server offers.

        Without `check_now`, the device's cached answer; with it, the device asks
        its upgrade server now (`?check=true`, the user's "Check for update").
        """
        params = {"check": "true"} if check_now else None
        return parse_upgrade_version(
            *await self.request(hdrs.METH_GET, PATH_UPGRADE_VERSION, params=params)
        )

    async def start_package_download(self) -> None:
        """Tell the device to download the offered package."""
        await self._put_json(PATH_DOWNLOAD_PACKAGE)

    async def cancel_package_download(self) -> None:
        """Stop the package download and drop what was downloaded.

        `DELETE downloadPackage`, where `ManualDownloadPackage/supportOperation`
        lists `cancel` (Hikvision's ISAPI guide, "Online Upgrade Device", step 6).
        """
        await self.request(hdrs.METH_DELETE, PATH_DOWNLOAD_PACKAGE, params=_JSON)

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

    async def get_upload_progress(self) -> UpgradeProgress:
        """Read `/ISAPI/System/upgradeStatus` (a firmware file being flashed)."""
        return parse_upgrade_progress(
            *await self.request(hdrs.METH_GET, PATH_FILE_UPGRADE_STATUS)
        )

    async def upload_firmware(
        self, file: BinaryIO, *, progress: Progress | None = None
    ) -> UploadResult:
        """PUT the rest of an open firmware file to `/ISAPI/System/updateFirmware`.

        Streamed from the file (executor reads). Returns how the device took it:
        `ACCEPTED` (statusCode 1), `REBOOT_REQUIRED` (statusCode 7), or `DROPPED`
        when the connection closed after the whole file went out (the device
        reboots into the new firmware). Raises `IsapiResponseError` when the
        device refused the file (a package for another model...), a connection
        error when it went away before the file was sent, OSError when the file
        cannot be read. The file stays open; no read of it runs once this returns.
        """
        size = await asyncio.get_running_loop().run_in_executor(
            None, remaining_size, file
        )
        body = FirmwarePayload(file, size, progress=progress)
        timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT)
        try:
            status, content_type, answer = await self._send(
                hdrs.METH_PUT, PATH_UPDATE_FIRMWARE, None, body, timeout
            )
        except IsapiConnectionError:
            if body.error is not None:
                raise body.error from None
            if body.complete:
                return UploadResult.DROPPED
            raise
        finally:
            await body.settle()
        try:
            decode_response(status, content_type, answer)
        except IsapiResponseError as err:
            if err.status_code == STATUS_REBOOT_REQUIRED and status < 300:  # noqa: PLR2004
                return UploadResult.REBOOT_REQUIRED
            raise
        except IsapiParseError:
            if status >= 300:  # noqa: PLR2004
                raise
            # An answer that is no document after the file went in: accepted.
        return UploadResult.ACCEPTED

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
