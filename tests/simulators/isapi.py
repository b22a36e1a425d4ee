"""Loopback Hikvision camera speaking ISAPI over HTTP, for tests and manual runs.

The simulator serves real (anonymised) ``deviceInfo``/``capabilities`` documents
from ``tests/fixtures/hikvision/<device>/`` and implements the online-upgrade
flow (capabilities, server, version, download, upgrade, reboot) as a small
state machine that advances one step per status poll. It authenticates like a
real NVR (RFC 7616 Digest, MD5, ``qop="auth"``, ``domain="::"``) or with Basic,
records every request, and can go offline so that connections are refused.

In tests, create it on the running event loop::

    sim = IsapiCameraSimulator(device="DS-7608NXI-I2")
    await sim.start()
    ...  # talk to sim.url with sim.username / sim.password
    await sim.stop()

From a shell (runs until Ctrl-C)::

    python -m tests.simulators.isapi --port 18080 --count 3

Only loopback addresses are meant to be used. Nothing here imports Home Assistant.
"""

import argparse
import asyncio
import base64
import binascii
import contextlib
from dataclasses import dataclass, field
from enum import Enum, StrEnum
import hashlib
import hmac
import json
import logging
from pathlib import Path
import re
import secrets
import signal
import ssl
import time
from typing import TYPE_CHECKING, Any, Final, TypedDict, Unpack
from xml.sax.saxutils import escape

from aiohttp import web

from ._device import LoopbackDevice
from .isapi_file import (
    PATH_UPDATE_FIRMWARE,
    PATH_UPGRADE_STATUS,
    FileMode,
    FirmwareFileMixin,
    ReceivedFile,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence

__all__ = [
    "DEFAULT_FIXTURES_DIR",
    "DOWNLOAD_FAILURES",
    "UPGRADE_FAILURES",
    "Failure",
    "FileMode",
    "IsapiCameraSimulator",
    "OnlineUpgrade",
    "ReceivedFile",
    "RequestRecord",
    "SimulatorOptions",
    "derive_identity",
    "main",
    "start_many",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_FIXTURES_DIR: Final = (
    Path(__file__).resolve().parent.parent / "fixtures" / "hikvision"
)
"""Directory holding one sub-directory of fixture documents per device model."""

_ONLINE_UPGRADE_PREFIX: Final = "/ISAPI/System/onlineUpgrade/"
_XML_CONTENT_TYPE: Final = 'application/xml; charset="UTF-8"'
_JSON_CONTENT_TYPE: Final = 'application/json; charset="UTF-8"'
_UNAUTHORIZED_BODY: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<userCheck>\n"
    b"<statusValue>401</statusValue>\n"
    b"<statusString>Unauthorized</statusString>\n"
    b"</userCheck>"
)
_ERROR_CODE_INVALID_OPERATION: Final = 1073741825
_PACKAGE_SIZE_MB: Final = 78.4
_DOWNLOAD_SPEED_MB: Final = 4.2
_FAILURE_THRESHOLD_PERCENT: Final = 50
_MAX_RETIRED_NONCES: Final = 4096
_NONCE_PRUNE_THRESHOLD: Final = 1024

_AUTH_PARAM_RE: Final = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_NC_RE: Final = re.compile(r"[0-9a-fA-F]{8}")
_NAMESPACE_RE: Final = re.compile(r'xmlns="([^"]+)"')
_LAST_DIGITS_RE: Final = re.compile(r"\d+(?=\D*$)")


class Failure(StrEnum):
    """Faults a test can inject through ``IsapiCameraSimulator.failures``.

    Download failures end the download at the poll that would reach 50 %; upgrade
    failures end the upgrade the same way. The value is the status string the
    camera reports.
    """

    DOWNLOAD_FAILED = "downloadFailed"
    INCORRECT_PACKAGE = "incorrectPackage"
    HD_OPERATION_FAILED = "hdOperationFailed"
    WRITE_FLASH_ERROR = "writeFlashError"
    PACKAGE_TYPE_MISMATCH = "packageTypeMismatch"
    PACKAGE_VERSION_MISMATCH = "packageVersionMismatch"
    LANGUAGE_MISMATCH = "languageMismatch"
    NET_UNREACHABLE = "netUnreachable"
    UNKNOWN_ERROR = "unknownError"
    ENGINE_VERSION_MISMATCH = "engineVersionMismatch"
    LOST_DURING_UPGRADE = "lostDuringUpgrade"
    """Refuse connections for ``offline_seconds`` at 50 % of the upgrade, then go on."""
    WRONG_VERSION_AFTER_REBOOT = "wrongVersionAfterReboot"
    """Reboot after a successful upgrade but keep running the old firmware."""


DOWNLOAD_FAILURES: Final = (
    Failure.DOWNLOAD_FAILED,
    Failure.INCORRECT_PACKAGE,
    Failure.HD_OPERATION_FAILED,
)
"""Failures that end the download phase, in order of precedence."""

UPGRADE_FAILURES: Final = (
    Failure.WRITE_FLASH_ERROR,
    Failure.PACKAGE_TYPE_MISMATCH,
    Failure.PACKAGE_VERSION_MISMATCH,
    Failure.LANGUAGE_MISMATCH,
    Failure.NET_UNREACHABLE,
    Failure.UNKNOWN_ERROR,
    Failure.ENGINE_VERSION_MISMATCH,
)
"""Failures that end the upgrade (flash) phase, in order of precedence."""


class OnlineUpgrade(StrEnum):
    """How much of ``/ISAPI/System/onlineUpgrade/*`` the camera implements."""

    SUPPORTED = "supported"
    """Everything works."""
    NOT_SUPPORTED = "notSupported"
    """Capabilities exist, but ``version`` (and the PUT actions) answer notSupport."""
    ABSENT = "absent"
    """Every onlineUpgrade path answers 404 with a notSupport ResponseStatus."""


class SimulatorOptions(TypedDict, total=False):
    """Keyword arguments of ``IsapiCameraSimulator`` that ``start_many`` passes on."""

    device: str
    host: str
    username: str
    password: str
    online_upgrade: OnlineUpgrade
    offer_version: str | None
    changelog: str
    reboot_after_upgrade: str
    server_connected: bool
    auth_scheme: str
    nonce_lifetime: float
    download_steps: int
    upgrade_steps: int
    reboot_seconds: float
    offline_seconds: float
    not_support_http_status: int
    fixtures_dir: Path | None


class Gate:
    """Holds one kind of request (method, path) until the test opens it."""

    def __init__(self) -> None:
        """Start closed."""
        #: Set when a request arrived at the gate.
        self.reached = asyncio.Event()
        #: Set by the test: held requests are answered, later ones pass.
        self.opened = asyncio.Event()


@dataclass
class RequestRecord:
    """One request the simulator answered (401 challenges included)."""

    time: float
    """``time.monotonic()`` when the request was answered."""
    method: str
    path: str
    """Path without the query string."""
    query: str
    """Raw query string, without the ``?``."""
    status: int
    """HTTP status sent."""
    authorization: str = ""
    """Scheme of the request's ``Authorization`` header (lower case; empty: none)."""


class _AuthOutcome(Enum):
    """Result of checking an ``Authorization`` header."""

    OK = "ok"
    UNAUTHORIZED = "unauthorized"
    STALE = "stale"


@dataclass
class _NonceState:
    """A nonce the simulator handed out."""

    issued: float
    seen: set[tuple[str, str]] = field(default_factory=set)
    """``(nc, cnonce)`` pairs already used with this nonce (replay protection)."""


@dataclass
class _Reply:
    """A response to send, plus an optional action to run once it is sent."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    after: Callable[[], Coroutine[Any, Any, None]] | None = None


def _md5(text: str) -> str:
    """Return the hex MD5 of ``text`` encoded as UTF-8 (the Digest ``H`` function)."""
    return hashlib.md5(text.encode()).hexdigest()


def _element_text(xml: str, name: str) -> str:
    """Return the text of the first ``<name>`` element of ``xml`` (empty if absent)."""
    match = re.search(rf"<{name}>([^<]*)</{name}>", xml)
    return match.group(1) if match else ""


def _replace_element_text(xml: str, name: str, value: str) -> str:
    """Replace the text of the first ``<name>`` element of ``xml``."""
    return re.sub(
        rf"(<{name}>)[^<]*(</{name}>)",
        lambda m: f"{m.group(1)}{escape(value)}{m.group(2)}",
        xml,
        count=1,
    )


def _normalise_version(version: str) -> str:
    """Normalise ``"V5.7.18 build 240826"`` for comparisons (case, spaces, ``V``)."""
    return " ".join(version.lower().split()).removeprefix("v")


def _split_version(version: str) -> tuple[str, str]:
    """Split ``"V5.7.20 build 250110"`` into ``("V5.7.20", "build 250110")``."""
    head, _, tail = version.strip().partition(" ")
    return head, tail.strip()


def _parse_auth_params(value: str) -> dict[str, str]:
    """Parse ``key="value", key=value`` pairs of an ``Authorization`` header."""
    params: dict[str, str] = {}
    for match in _AUTH_PARAM_RE.finditer(value):
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = (
            re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        )
    return params


def derive_identity(serial: str, mac: str, number: int) -> tuple[str, str]:
    """Return a serial number and MAC address unique to camera ``number``.

    The last run of digits in ``serial`` is replaced by ``number`` (zero-padded to
    the same width); the MAC keeps its vendor prefix (first three octets) and
    encodes ``number`` in the last three.
    """
    match = _LAST_DIGITS_RE.search(serial)
    if match is None:
        new_serial = f"{serial}{number}"
    else:
        digits = str(number).zfill(len(match.group(0)))
        new_serial = f"{serial[: match.start()]}{digits}{serial[match.end() :]}"
    oui = ":".join(mac.split(":")[:3])
    new_mac = f"{oui}:{(number >> 16) & 0xFF:02x}:{(number >> 8) & 0xFF:02x}:{number & 0xFF:02x}"
    return new_serial, new_mac


class IsapiCameraSimulator(LoopbackDevice, FirmwareFileMixin):
    """A Hikvision camera (or NVR) on a loopback port, driven by tests.

    Mutable attributes tests may change at any time: ``failures``, ``password``
    (simulates the user changing the camera password), ``online_upgrade``,
    ``offer_version``, ``changelog``, ``server_connected``,
    ``reboot_after_upgrade``, ``auth_scheme`` (a device, or a man in the middle,
    that starts challenging with Basic), ``ignore_download_request``,
    ``serial_after_reboot`` and the timing/step settings. ``hold_package``,
    ``begin_download`` and ``begin_upgrade`` put the camera mid-install.

    Observations: ``requests`` (every request, 401s included), ``events``
    (``(time.monotonic(), name)``), ``upgrade_before_download_finished``.
    """

    def __init__(
        self,
        *,
        device: str = "DS-2CD2346G2-ISU",
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str = "Passw0rd!",  # noqa: S107
        online_upgrade: OnlineUpgrade = OnlineUpgrade.SUPPORTED,
        offer_version: str | None = "V5.7.20 build 250110",
        changelog: str = "Fixed RTSP stability.\nImproved night image.",
        reboot_after_upgrade: str = "manual",
        server_connected: bool = True,
        auth_scheme: str = "digest",
        nonce_lifetime: float = 600.0,
        download_steps: int = 4,
        upgrade_steps: int = 4,
        reboot_seconds: float = 0.3,
        offline_seconds: float = 0.3,
        not_support_http_status: int = 403,
        fixtures_dir: Path | None = None,
        serial_number: str | None = None,
        mac_address: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Load the device's fixtures and set up the (not yet started) camera.

        ``device`` names a directory under ``fixtures_dir`` (default
        ``tests/fixtures/hikvision``) holding ``deviceInfo.xml`` and
        ``capabilities.xml``. ``offer_version=None`` means no newer firmware.
        ``serial_number``/``mac_address`` override the fixture's values.
        With ``ssl_context`` the camera serves HTTPS.
        """
        if auth_scheme not in {"digest", "basic"}:
            raise ValueError(
                f"auth_scheme must be 'digest' or 'basic', not {auth_scheme!r}"
            )
        if download_steps < 1 or upgrade_steps < 1:
            raise ValueError("download_steps and upgrade_steps must be at least 1")
        self.device = device
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.online_upgrade = OnlineUpgrade(online_upgrade)
        self.offer_version = offer_version
        self.changelog = changelog
        self.reboot_after_upgrade = reboot_after_upgrade
        self.server_connected = server_connected
        self.auth_scheme = auth_scheme
        self.nonce_lifetime = nonce_lifetime
        self.download_steps = download_steps
        self.upgrade_steps = upgrade_steps
        self.reboot_seconds = reboot_seconds
        self.offline_seconds = offline_seconds
        self.not_support_http_status = not_support_http_status
        #: When True, the online version check fails with statusCode 3 deviceError
        #: (the camera cannot reach its upgrade server in time, as real ones do).
        self.version_check_fails = False
        #: When True, PUT downloadPackage is answered OK but no download starts.
        self.ignore_download_request = False
        #: What ``ManualDownloadPackage/supportOperation`` lists (``cancel``: a
        #: download can be cancelled with ``DELETE downloadPackage``).
        self.download_operations = "start,cancel,pause,resume"
        #: When True, ``DELETE downloadPackage`` is answered OK and ignored.
        self.ignore_cancel = False
        #: When True, the package completes as ``DELETE downloadPackage`` arrives
        #: (the cancel came too late): answered OK, the download is ``finish``.
        self.complete_on_cancel = False
        #: When set, the device that answers after the next reboot has this serial
        #: number (the camera was swapped for another one at the same address).
        self.serial_after_reboot: str | None = None
        self.ssl_context = ssl_context

        #: Requests held before they are answered, until the test opens the gate.
        self.gates: dict[tuple[str, str], Gate] = {}
        self.failures: set[Failure] = set()
        self.requests: list[RequestRecord] = []
        self.events: list[tuple[float, str]] = []
        self.upgrade_before_download_finished = False

        directory = (fixtures_dir or DEFAULT_FIXTURES_DIR) / device
        self._device_info_xml = (directory / "deviceInfo.xml").read_text(
            encoding="utf-8"
        )
        self._capabilities_xml = (directory / "capabilities.xml").read_text(
            encoding="utf-8"
        )
        namespace = _NAMESPACE_RE.search(self._device_info_xml)
        self.namespace: str = (
            namespace.group(1)
            if namespace
            else "http://www.hikvision.com/ver20/XMLSchema"
        )
        self._model = _element_text(self._device_info_xml, "model")
        self._serial = serial_number or _element_text(
            self._device_info_xml, "serialNumber"
        )
        self._mac = mac_address or _element_text(self._device_info_xml, "macAddress")
        self._firmware_version = _element_text(self._device_info_xml, "firmwareVersion")
        self._firmware_build = _element_text(
            self._device_info_xml, "firmwareReleasedDate"
        )

        self._nonces: dict[str, _NonceState] = {}
        self._retired_nonces: dict[str, None] = {}

        self._download_status = "notDownload"
        self._download_polls = 0
        self._download_progress = 0
        self._package_version: str | None = None
        self._upgrade_status = "notUpgrade"
        self._upgrade_polls = 0
        self._upgrade_percent = 0
        self._lost_during_upgrade_done = False
        self._flashed_version: str | None = None
        self._init_firmware_file()

        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._online = asyncio.Event()  # listening
        self._ready = asyncio.Event()  # listening, and no announced outage pending
        self._rebooting = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._routes: dict[tuple[str, str], Callable[[web.Request], _Reply]] = {
            ("GET", "/ISAPI/System/deviceInfo"): self._get_device_info,
            ("GET", "/ISAPI/System/capabilities"): self._get_capabilities,
            (
                "GET",
                f"{_ONLINE_UPGRADE_PREFIX}capabilities",
            ): self._get_upgrade_capabilities,
            ("GET", f"{_ONLINE_UPGRADE_PREFIX}server"): self._get_upgrade_server,
            ("GET", f"{_ONLINE_UPGRADE_PREFIX}version"): self._get_upgrade_version,
            ("PUT", f"{_ONLINE_UPGRADE_PREFIX}downloadPackage"): self._put_download,
            (
                "DELETE",
                f"{_ONLINE_UPGRADE_PREFIX}downloadPackage",
            ): self._delete_download,
            (
                "GET",
                f"{_ONLINE_UPGRADE_PREFIX}downloadPackage/status",
            ): self._get_download_status,
            (
                "PUT",
                f"{_ONLINE_UPGRADE_PREFIX}upgradeWithoutDownload",
            ): self._put_upgrade,
            ("GET", f"{_ONLINE_UPGRADE_PREFIX}status"): self._get_upgrade_status,
            ("PUT", "/ISAPI/System/reboot"): self._put_reboot,
            ("GET", PATH_UPGRADE_STATUS): self._get_file_upgrade_status,
        }

    # ------------------------------------------------------------------ identity

    @property
    def model(self) -> str:
        """Model from deviceInfo, e.g. ``DS-2CD2346G2-ISU/SL``; also the Digest realm."""
        return self._model

    @property
    def realm(self) -> str:
        """Authentication realm (the model, as on real NVRs)."""
        return self._model

    @property
    def serial_number(self) -> str:
        """Serial number reported by deviceInfo."""
        return self._serial

    @serial_number.setter
    def serial_number(self, value: str) -> None:
        self._serial = value

    @property
    def mac_address(self) -> str:
        """MAC address reported by deviceInfo."""
        return self._mac

    @mac_address.setter
    def mac_address(self, value: str) -> None:
        self._mac = value

    @property
    def firmware_version(self) -> str:
        """Running firmware version, e.g. ``V5.7.18`` (deviceInfo firmwareVersion)."""
        return self._firmware_version

    @firmware_version.setter
    def firmware_version(self, value: str) -> None:
        self._firmware_version = value

    @property
    def firmware_build(self) -> str:
        """Running firmware build, e.g. ``build 240826`` (firmwareReleasedDate)."""
        return self._firmware_build

    @firmware_build.setter
    def firmware_build(self, value: str) -> None:
        self._firmware_build = value

    @property
    def running_version(self) -> str:
        """Running firmware as an offer would spell it: ``V5.7.18 build 240826``."""
        return f"{self._firmware_version} {self._firmware_build}".strip()

    @property
    def download_status(self) -> str:
        """Current download status (``notDownload``, ``downloading``, ``finish``, ...)."""
        return self._download_status

    @property
    def upgrade_status(self) -> str:
        """Current upgrade status (``notUpgrade``, ``upgrading``, ``successful``, ...)."""
        return self._upgrade_status

    # ------------------------------------------------------------------ scenarios

    def hold_package(self, version: str) -> None:
        """Hold a finished download of ``version`` (an earlier offer, say).

        The download status reports ``finish`` without naming the version (as the
        ISAPI reference documents it); ``upgradeWithoutDownload`` flashes this
        package, and ``downloadPackage`` answers OK without downloading anew.
        """
        self._package_version = version
        self._download_status = "finish"
        self._download_progress = 100

    def force_status(
        self, *, download: str | None = None, upgrade: str | None = None
    ) -> None:
        """Make the camera report these statuses (e.g. what a failed task left)."""
        if download is not None:
            self._download_status = download
        if upgrade is not None:
            self._upgrade_status = upgrade

    def pause_download(self) -> None:
        """Pause the running download (the camera's web page can)."""
        self._download_status = "pause"
        self._event("download_paused")

    def resume_download(self) -> None:
        """Resume a paused download."""
        self._download_status = "downloading"
        self._event("download_resumed")

    def begin_download(self) -> None:
        """Start downloading the offer, as the camera's own web page would."""
        self._package_version = self.offer_version
        self._download_status = "downloading"
        self._download_polls = 0
        self._download_progress = 0
        self._event("download_started")

    def begin_upgrade(self, version: str | None = None) -> None:
        """Start flashing ``version`` (default: the offer), as the web page would."""
        self.hold_package(version or self.offer_version or self.running_version)
        self._upgrade_status = "upgrading"
        self._upgrade_polls = 0
        self._upgrade_percent = 0
        self._event("upgrade_started")

    # ------------------------------------------------------------------ stats

    @property
    def request_count(self) -> int:
        """Number of requests answered since start or the last ``reset_stats``."""
        return len(self.requests)

    @property
    def unauthorized_count(self) -> int:
        """Number of 401 responses sent since start or the last ``reset_stats``."""
        return sum(1 for record in self.requests if record.status == 401)

    def count(self, method: str, path: str) -> int:
        """Return how many requests (any status) hit ``method path`` (path sans query)."""
        return sum(
            1 for r in self.requests if r.method == method.upper() and r.path == path
        )

    def reset_stats(self) -> None:
        """Forget recorded requests (and with them the 401 count)."""
        self.requests.clear()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start listening; with ``port=0`` the chosen port is stored in ``port``."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        try:
            await self._open_listener()
        except BaseException:
            self._runner = None
            await runner.cleanup()
            raise
        self._ready.set()

    async def stop(self) -> None:
        """Stop serving, close every connection and cancel background tasks."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._rebooting = False
        self._ready.clear()
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await self._close_listener(runner)
        await runner.cleanup()

    async def _open_listener(self) -> None:
        """Bind the site (HTTPS with ``ssl_context``) and mark the device online."""
        if self.ssl_context is None:
            await super()._open_listener()
            return
        if self._runner is None:
            raise RuntimeError("simulator not started")
        if self._site is None:
            site = web.TCPSite(
                self._runner,
                self.host,
                self.port,
                reuse_address=True,
                ssl_context=self.ssl_context,
            )
            await site.start()
            self._site = site
            self.port = site.port
        self._online.set()

    async def reboot(self) -> None:
        """Reboot: go offline now, come back after ``reboot_seconds`` (in background).

        All nonces are invalidated (a request carrying one gets ``stale="TRUE"``
        if its digest is otherwise right), a successfully flashed firmware is
        applied (unless ``Failure.WRONG_VERSION_AFTER_REBOOT``), and the
        download/upgrade state goes back to ``notDownload``/``notUpgrade``.
        Use ``wait_online()`` to wait for the end of the reboot.
        """
        if self._runner is None:
            raise RuntimeError("simulator not started")
        if self._rebooting:
            return
        self._rebooting = True
        self._event("reboot_started")
        if self.is_online:
            await self._close_listener(self._runner)
        self._retire_nonces()
        self._apply_flashed_firmware()
        self._reset_upgrade_state()
        self._reset_file_upgrade()
        self._spawn(self._finish_reboot())

    async def _finish_reboot(self) -> None:
        """Second half of a reboot: wait, then listen again."""
        try:
            await asyncio.sleep(self.reboot_seconds)
            await self._open_listener()
            self._ready.set()
            self._event("reboot_finished")
        finally:
            self._rebooting = False

    async def _lose_connection(self) -> None:
        """``Failure.LOST_DURING_UPGRADE``: refuse connections for a while."""
        await self.go_offline()
        self._retire_nonces()
        await asyncio.sleep(self.offline_seconds)
        await self.go_online()

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Authenticate, dispatch, record, and run post-response actions."""
        drop = False
        if request.method == "PUT" and request.path == PATH_UPDATE_FIRMWARE:
            # A firmware file: authenticated first, then streamed in (never whole).
            reply = self._authorize(request)
            if reply is None:
                reply, drop = await self._receive_firmware(request)
            else:
                await self._discard_body(request)
        else:
            if request.can_read_body:
                await request.read()
            reply = self._authorize(request)
            if reply is None:
                if (gate := self.gates.get((request.method, request.path))) is not None:
                    gate.reached.set()
                    await gate.opened.wait()
                reply = self._dispatch(request)
        if drop:
            # The file went in; the device reboots into it without answering.
            self.requests.append(
                RequestRecord(
                    time.monotonic(), request.method, request.path, "", 0, "digest"
                )
            )
            await self.reboot()
            raise ConnectionResetError("rebooting")
        self.requests.append(
            RequestRecord(
                time=time.monotonic(),
                method=request.method,
                path=request.path,
                query=request.query_string,
                status=reply.status,
                authorization=request.headers.get("Authorization", "")
                .partition(" ")[0]
                .lower(),
            )
        )
        _LOGGER.debug(
            "%s %s %s -> %s", self.url, request.method, request.path_qs, reply.status
        )
        response = web.Response(
            status=reply.status,
            body=reply.body,
            headers={"Content-Type": reply.content_type, **reply.headers},
        )
        if reply.after is None:
            return response
        # Make sure the answer is on the wire before the camera goes away.
        self._ready.clear()
        await response.prepare(request)
        await response.write_eof()
        self._spawn(reply.after())
        return response

    def _dispatch(self, request: web.Request) -> _Reply:
        """Route an authenticated request."""
        path = request.path
        if (
            path.startswith(_ONLINE_UPGRADE_PREFIX)
            and self.online_upgrade == OnlineUpgrade.ABSENT
        ):
            return self._not_found(path)
        route = self._routes.get((request.method, path))
        if route is None:
            return self._not_found(path)
        return route(request)

    # ------------------------------------------------------------------ auth

    def _authorize(self, request: web.Request) -> _Reply | None:
        """Return a 401 reply, or ``None`` when the request is authenticated."""
        header = request.headers.get("Authorization", "")
        if self.auth_scheme == "basic":
            if self._check_basic(header):
                return None
            return self._unauthorized(f'Basic realm="{self.realm}"')
        outcome = self._check_digest(request, header)
        if outcome is _AuthOutcome.OK:
            return None
        return self._unauthorized(
            self._digest_challenge(stale=outcome is _AuthOutcome.STALE)
        )

    def _check_basic(self, header: str) -> bool:
        """Check a Basic ``Authorization`` header against the current credentials."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode()
        except binascii.Error, UnicodeDecodeError:
            return False
        username, sep, password = decoded.partition(":")
        return bool(sep) and hmac.compare_digest(
            f"{username}:{password}".encode(),
            f"{self.username}:{self.password}".encode(),
        )

    def _check_digest(self, request: web.Request, header: str) -> _AuthOutcome:
        """Check a Digest ``Authorization`` header (RFC 7616, MD5, qop=auth)."""
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "digest":
            return _AuthOutcome.UNAUTHORIZED
        params = _parse_auth_params(rest)
        try:
            username, realm, nonce, uri, response, qop, nc, cnonce = (
                params[key]
                for key in (
                    "username",
                    "realm",
                    "nonce",
                    "uri",
                    "response",
                    "qop",
                    "nc",
                    "cnonce",
                )
            )
        except KeyError:
            return _AuthOutcome.UNAUTHORIZED
        if (
            username != self.username
            or realm != self.realm
            or params.get("algorithm", "MD5").upper() != "MD5"
            or qop != "auth"
            or not _NC_RE.fullmatch(nc)
            or not cnonce
            or uri not in {request.raw_path, request.path_qs}
        ):
            return _AuthOutcome.UNAUTHORIZED
        state = self._nonces.get(nonce)
        retired = nonce in self._retired_nonces
        if state is None and not retired:
            return _AuthOutcome.UNAUTHORIZED
        ha1 = _md5(f"{self.username}:{self.realm}:{self.password}")
        ha2 = _md5(f"{request.method}:{uri}")
        expected = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
        if not hmac.compare_digest(expected, response.lower()):
            return _AuthOutcome.UNAUTHORIZED
        if state is None or time.monotonic() - state.issued > self.nonce_lifetime:
            return _AuthOutcome.STALE
        if (nc, cnonce) in state.seen:
            return _AuthOutcome.UNAUTHORIZED
        state.seen.add((nc, cnonce))
        return _AuthOutcome.OK

    def _digest_challenge(self, *, stale: bool) -> str:
        """Issue a fresh nonce and return the ``WWW-Authenticate`` value for it."""
        now = time.monotonic()
        if len(self._nonces) > _NONCE_PRUNE_THRESHOLD:
            horizon = 2 * self.nonce_lifetime
            for old in [n for n, s in self._nonces.items() if now - s.issued > horizon]:
                del self._nonces[old]
        nonce = secrets.token_hex(24)
        self._nonces[nonce] = _NonceState(issued=now)
        return (
            f'Digest realm="{self.realm}", domain="::", qop="auth", nonce="{nonce}", '
            f'opaque="", algorithm="MD5", stale="{"TRUE" if stale else "FALSE"}"'
        )

    def _retire_nonces(self) -> None:
        """Invalidate every nonce handed out so far (reboot, lost connection)."""
        self._retired_nonces.update(dict.fromkeys(self._nonces))
        self._nonces.clear()
        excess = len(self._retired_nonces) - _MAX_RETIRED_NONCES
        for old in list(self._retired_nonces)[: max(excess, 0)]:
            del self._retired_nonces[old]

    @staticmethod
    def _unauthorized(challenge: str) -> _Reply:
        """401 with the NVR's ``userCheck`` body."""
        return _Reply(
            status=401,
            body=_UNAUTHORIZED_BODY,
            content_type="application/xml",
            headers={"WWW-Authenticate": challenge},
        )

    # ------------------------------------------------------------------ documents

    def _xml(self, root: str, inner: str, status: int = 200) -> _Reply:
        """Build an XML reply ``<root version="2.0" xmlns=...>inner</root>``."""
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<{root} version="2.0" xmlns="{self.namespace}">\n{inner}</{root}>\n'
        )
        return _Reply(status=status, body=text.encode(), content_type=_XML_CONTENT_TYPE)

    @staticmethod
    def _json(payload: dict[str, Any], status: int = 200) -> _Reply:
        """Build a JSON reply."""
        return _Reply(
            status=status,
            body=json.dumps(payload, indent="\t").encode(),
            content_type=_JSON_CONTENT_TYPE,
        )

    def _response_status(
        self,
        url: str,
        *,
        http_status: int,
        code: int,
        string: str,
        sub_code: str,
        description: str | None = None,
    ) -> _Reply:
        """Build an XML ``ResponseStatus`` reply."""
        inner = (
            f"<requestURL>{escape(url)}</requestURL>\n"
            f"<statusCode>{code}</statusCode>\n"
            f"<statusString>{escape(string)}</statusString>\n"
            f"<subStatusCode>{escape(sub_code)}</subStatusCode>\n"
        )
        if description is not None:
            inner += f"<description>{escape(description)}</description>\n"
        return self._xml("ResponseStatus", inner, status=http_status)

    def _not_found(self, path: str) -> _Reply:
        """404 notSupport for unknown paths (and for an ABSENT online upgrade)."""
        return self._response_status(
            path,
            http_status=404,
            code=4,
            string="Invalid Operation",
            sub_code="notSupport",
        )

    def _json_error(self, sub_code: str, http_status: int) -> _Reply:
        """Build a JSON ``statusCode 4`` error like real firmware sends."""
        return self._json(
            {
                "statusCode": 4,
                "statusString": "Invalid Operation",
                "subStatusCode": sub_code,
                "errorCode": _ERROR_CODE_INVALID_OPERATION,
                "errorMsg": sub_code,
            },
            status=http_status,
        )

    @staticmethod
    def _json_ok() -> _Reply:
        """Build the JSON success answer of PUT actions."""
        return IsapiCameraSimulator._json(
            {"statusCode": 1, "statusString": "ok", "subStatusCode": "ok"}
        )

    def _has_offer(self) -> bool:
        """Whether ``offer_version`` is set and differs from the running firmware."""
        if self.offer_version is None or not self.offer_version.strip():
            return False
        offer = _normalise_version(self.offer_version)
        if " " not in offer:  # no build in the offer: compare version numbers only
            return offer != _normalise_version(self._firmware_version)
        return offer != _normalise_version(self.running_version)

    def _offer_elements(self) -> tuple[str, str]:
        """``(newVersion, changeLog)`` texts the camera currently reports."""
        if self._has_offer():
            assert self.offer_version is not None
            return self.offer_version, self.changelog
        return self.running_version, ""

    # ------------------------------------------------------------------ handlers

    def _get_device_info(self, _request: web.Request) -> _Reply:
        """``GET /ISAPI/System/deviceInfo``: the fixture with live values."""
        xml = self._device_info_xml
        for name, value in (
            ("serialNumber", self._serial),
            ("macAddress", self._mac),
            ("firmwareVersion", self._firmware_version),
            ("firmwareReleasedDate", self._firmware_build),
        ):
            xml = _replace_element_text(xml, name, value)
        return _Reply(status=200, body=xml.encode(), content_type=_XML_CONTENT_TYPE)

    def _get_capabilities(self, _request: web.Request) -> _Reply:
        """``GET /ISAPI/System/capabilities``: the fixture as is."""
        return _Reply(
            status=200,
            body=self._capabilities_xml.encode(),
            content_type=_XML_CONTENT_TYPE,
        )

    def _get_upgrade_capabilities(self, _request: web.Request) -> _Reply:
        """``GET .../onlineUpgrade/capabilities`` (``Version`` only when supported)."""
        inner = (
            '<firmwareNum max="1"/>\n'
            '<firmwareCode max="128"/>\n'
            '<firmwareVersion max="64"/>\n'
            '<firmwareCodeNumOnce max="1"/>\n'
            '<upgradePercent min="0" max="100"/>\n'
        )
        if self.online_upgrade == OnlineUpgrade.SUPPORTED:
            new_version, changelog = self._offer_elements()
            inner += (
                "<Version>\n"
                f"<newVersion>{escape(new_version)}</newVersion>\n"
                f"<changeLog>{escape(changelog)}</changeLog>\n"
                "</Version>\n"
            )
        inner += (
            "<ManualDownloadPackage>\n"
            f'<supportOperation opt="{escape(self.download_operations)}">start'
            "</supportOperation>\n"
            "</ManualDownloadPackage>\n"
            "<UpgradePackageTask>\n"
            "<isSupportDownloadStrategy>true</isSupportDownloadStrategy>\n"
            "</UpgradePackageTask>\n"
            f"<rebootAfterUpgrade>{escape(self.reboot_after_upgrade)}</rebootAfterUpgrade>\n"
        )
        return self._xml("OnlineUpgradeCap", inner)

    def _get_upgrade_server(self, _request: web.Request) -> _Reply:
        """``GET .../onlineUpgrade/server``: connection to Hikvision's servers."""
        status = "true" if self.server_connected else "false"
        return self._xml(
            "OnlineUpgradeServer", f"<connectStatus>{status}</connectStatus>\n"
        )

    def _not_supported(self, path: str) -> _Reply:
        """Build the seed camera's answer to ``version`` (XML notSupport)."""
        return self._response_status(
            path,
            http_status=self.not_support_http_status,
            code=4,
            string="Invalid Operation",
            sub_code="notSupport",
            description="SW_ONLINE_UPGRADE_SUP not support.",
        )

    def _get_upgrade_version(self, request: web.Request) -> _Reply:
        """``GET .../onlineUpgrade/version``: the offer, or the running version."""
        if self.online_upgrade == OnlineUpgrade.NOT_SUPPORTED:
            return self._not_supported(request.path)
        if self.version_check_fails:
            return self._response_status(
                request.path,
                http_status=500,
                code=3,
                string="Device Error",
                sub_code="deviceError",
            )
        new_version, changelog = self._offer_elements()
        inner = (
            f"<newVersion>{escape(new_version)}</newVersion>\n"
            f"<changeLog>{escape(changelog)}</changeLog>\n"
            f"<isNeedUpgrade>{'true' if self._has_offer() else 'false'}</isNeedUpgrade>\n"
        )
        return self._xml("OnlineUpgradeVersion", inner)

    def _put_download(self, _request: web.Request) -> _Reply:
        """``PUT .../onlineUpgrade/downloadPackage?format=json``: start the download."""
        if self.online_upgrade == OnlineUpgrade.NOT_SUPPORTED:
            return self._json_error("notSupport", self.not_support_http_status)
        if self._download_status in {"downloading", "finish"}:
            return self._json_ok()
        if not self._has_offer():
            return self._json_error("invalidOperation", 403)
        if self.ignore_download_request:
            return self._json_ok()
        self._package_version = self.offer_version
        self._download_status = "downloading"
        self._download_polls = 0
        self._download_progress = 0
        self._event("download_started")
        return self._json_ok()

    def _delete_download(self, _request: web.Request) -> _Reply:
        """``DELETE .../onlineUpgrade/downloadPackage?format=json``: cancel it.

        The camera stops the download and drops the partial package (Hikvision's
        ISAPI guide, "Online Upgrade Device", step 6).
        """
        if "cancel" not in self.download_operations.split(","):
            return self._json_error("notSupport", self.not_support_http_status)
        if self._download_status not in {"downloading", "pause"}:
            return self._json_error("invalidOperation", 403)
        if self.ignore_cancel:
            return self._json_ok()
        if self.complete_on_cancel:
            self._download_progress = 100
            self._download_status = "finish"
            self._event("download_finished")
            return self._json_ok()
        self._download_status = "notDownload"
        self._download_progress = 0
        self._package_version = None
        self._event("download_cancelled")
        return self._json_ok()

    def _get_download_status(self, _request: web.Request) -> _Reply:
        """``GET .../downloadPackage/status?format=json``: one step per poll."""
        if self._download_status == "downloading":
            self._download_polls += 1
            progress = min(100, self._download_polls * 100 // self.download_steps)
            failure = next((f for f in DOWNLOAD_FAILURES if f in self.failures), None)
            if failure is not None and progress >= _FAILURE_THRESHOLD_PERCENT:
                self._download_status = failure.value
                self._event("download_failed")
            elif progress >= 100:
                self._download_progress = 100
                self._download_status = "finish"
                self._event("download_finished")
            else:
                self._download_progress = progress
        downloading = self._download_status == "downloading"
        total = 0.0 if self._download_status == "notDownload" else _PACKAGE_SIZE_MB
        remain = round(total * (100 - self._download_progress) / 100, 1)
        if self._download_status == "notDownload":
            remain = 0.0
        return self._json(
            {
                "DownloadPackageStatus": {
                    "status": self._download_status,
                    "total": total,
                    "remain": remain,
                    "speed": _DOWNLOAD_SPEED_MB if downloading else 0.0,
                    "remainTime": int(remain / _DOWNLOAD_SPEED_MB)
                    if downloading
                    else 0,
                    "progress": self._download_progress,
                }
            }
        )

    def _put_upgrade(self, _request: web.Request) -> _Reply:
        """``PUT .../upgradeWithoutDownload?format=json``: flash the downloaded package."""
        if self.online_upgrade == OnlineUpgrade.NOT_SUPPORTED:
            return self._json_error("notSupport", self.not_support_http_status)
        if self._download_status != "finish":
            self.upgrade_before_download_finished = True
            return self._json_error("invalidOperation", 403)
        if self._upgrade_status in {"upgrading", "successful"}:
            return self._json_ok()
        self._upgrade_status = "upgrading"
        self._upgrade_polls = 0
        self._upgrade_percent = 0
        self._lost_during_upgrade_done = False
        self._event("upgrade_started")
        return self._json_ok()

    def _get_upgrade_status(self, _request: web.Request) -> _Reply:
        """``GET .../onlineUpgrade/status``: one step per poll while upgrading."""
        after: Callable[[], Coroutine[Any, Any, None]] | None = None
        if self._upgrade_status == "upgrading" and self._flashed_version is None:
            self._upgrade_polls += 1
            percent = min(100, self._upgrade_polls * 100 // self.upgrade_steps)
            failure = next((f for f in UPGRADE_FAILURES if f in self.failures), None)
            if failure is not None and percent >= _FAILURE_THRESHOLD_PERCENT:
                self._upgrade_status = failure.value
                self._event("upgrade_failed")
            elif (
                Failure.LOST_DURING_UPGRADE in self.failures
                and percent >= _FAILURE_THRESHOLD_PERCENT
                and not self._lost_during_upgrade_done
            ):
                self._lost_during_upgrade_done = True
                self._upgrade_percent = min(percent, 99)
                after = self._lose_connection
            elif percent >= 100:
                self._upgrade_percent = 100
                self._flashed_version = self._package_version or self.offer_version
                self._event("upgrade_finished")
                if self.reboot_after_upgrade == "auto":
                    after = self.reboot  # answer "upgrading" 100, then reboot
                else:
                    self._upgrade_status = "successful"
            else:
                self._upgrade_percent = percent
        inner = (
            f"<status>{self._upgrade_status}</status>\n"
            f"<percent>{self._upgrade_percent}</percent>\n"
            "<taskID></taskID>\n"
            "<packageName></packageName>\n"
            "<statusDescription>0x0</statusDescription>\n"
        )
        reply = self._xml("OnlineUpgradeStatus", inner)
        reply.after = after
        return reply

    def _put_reboot(self, request: web.Request) -> _Reply:
        """``PUT /ISAPI/System/reboot``: answer OK, then reboot."""
        reply = self._response_status(
            request.path, http_status=200, code=1, string="OK", sub_code="ok"
        )
        reply.after = self.reboot
        return reply

    # ------------------------------------------------------------------ state

    def _apply_flashed_firmware(self) -> None:
        """On reboot, run the flashed firmware (unless told to keep the old one)."""
        if self.serial_after_reboot is not None:
            self._serial, self.serial_after_reboot = self.serial_after_reboot, None
        flashed, self._flashed_version = self._flashed_version, None
        if flashed is None or Failure.WRONG_VERSION_AFTER_REBOOT in self.failures:
            return
        version, build = _split_version(flashed)
        self._firmware_version = version
        if build:
            self._firmware_build = build
        self.offer_version = None

    def _reset_upgrade_state(self) -> None:
        """Back to ``notDownload``/``notUpgrade`` (what a reboot does)."""
        self._download_status = "notDownload"
        self._download_polls = 0
        self._download_progress = 0
        self._package_version = None
        self._upgrade_status = "notUpgrade"
        self._upgrade_polls = 0
        self._upgrade_percent = 0
        self._lost_during_upgrade_done = False


async def start_many(
    count: int, *, base_port: int = 0, **kwargs: Unpack[SimulatorOptions]
) -> list[IsapiCameraSimulator]:
    """Start ``count`` simulators with distinct serial numbers and MAC addresses.

    Camera ``i`` (0-based) listens on ``base_port + i`` (or a free port when
    ``base_port`` is 0) and gets identity number ``i + 1`` (see
    ``derive_identity``). ``kwargs`` go to ``IsapiCameraSimulator``. If one fails
    to start, those already started are stopped.
    """
    simulators: list[IsapiCameraSimulator] = []
    try:
        for index in range(count):
            sim = IsapiCameraSimulator(
                port=base_port + index if base_port else 0, **kwargs
            )
            sim.serial_number, sim.mac_address = derive_identity(
                sim.serial_number, sim.mac_address, index + 1
            )
            await sim.start()
            simulators.append(sim)
    except BaseException:
        for sim in simulators:
            await sim.stop()
        raise
    return simulators


# ---------------------------------------------------------------------- CLI


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulators.isapi",
        description="Run loopback Hikvision ISAPI cameras until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=18080, help="first port (0: any free)"
    )
    parser.add_argument(
        "--count", type=int, default=1, help="cameras on port..port+N-1"
    )
    parser.add_argument(
        "--device", default="DS-2CD2346G2-ISU", help="fixture directory"
    )
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="Passw0rd!")
    parser.add_argument(
        "--online-upgrade",
        choices=[m.value for m in OnlineUpgrade],
        default="supported",
    )
    parser.add_argument(
        "--reboot-after-upgrade", choices=["manual", "auto"], default="manual"
    )
    parser.add_argument("--offer-version", default="V5.7.20 build 250110")
    parser.add_argument("--no-offer", action="store_true", help="no newer firmware")
    parser.add_argument("--auth-scheme", choices=["digest", "basic"], default="digest")
    parser.add_argument(
        "--failure", action="append", default=[], choices=[f.value for f in Failure]
    )
    parser.add_argument("--download-steps", type=int, default=4)
    parser.add_argument("--upgrade-steps", type=int, default=4)
    parser.add_argument("--reboot-seconds", type=float, default=5.0)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every request"
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    """Start the cameras described by ``args`` and serve until cancelled."""
    simulators = await start_many(
        args.count,
        base_port=args.port,
        host=args.host,
        device=args.device,
        username=args.username,
        password=args.password,
        online_upgrade=OnlineUpgrade(args.online_upgrade),
        reboot_after_upgrade=args.reboot_after_upgrade,
        offer_version=None if args.no_offer else args.offer_version,
        auth_scheme=args.auth_scheme,
        download_steps=args.download_steps,
        upgrade_steps=args.upgrade_steps,
        reboot_seconds=args.reboot_seconds,
    )
    try:
        for sim in simulators:
            sim.failures.update(Failure(value) for value in args.failure)
            print(
                f"{sim.url} username={sim.username} password={sim.password} "
                f"serial={sim.serial_number} model={sim.model} firmware={sim.running_version}",
                flush=True,
            )
        print("Serving; press Ctrl-C to stop.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        print("Stopping.", flush=True)
    finally:
        await asyncio.gather(*(sim.stop() for sim in simulators))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: run simulators until Ctrl-C."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
