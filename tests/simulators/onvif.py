"""Loopback ONVIF camera speaking SOAP over HTTP, for tests and manual runs.

The camera is the Bosch FLEXIDOME indoor 5100i IR of ``tests/fixtures/onvif/``: its
captured answers (GetDeviceInformation, GetCapabilities, GetProfiles,
GetVideoEncoderConfiguration, GetImagingSettings, GetStreamUri, GetSnapshotUri,
GetSystemDateAndTime) are served byte for byte, with the captured ``192.168.1.201``
XAddrs rewritten to the simulator's URL. Operations the capture lacks are built in
the same envelope style; their values (MAC address, option ranges) are invented.

What it does like a real camera:

* WS-Security UsernameToken: ``PasswordDigest`` = Base64(SHA-1(nonce + created +
  password)), ``Created`` checked against the camera's clock (``clock_offset`` seconds
  ahead of the host, ``clock_tolerance`` allowed), nonces not replayable. Failures
  answer HTTP 400 with a ``env:Sender / ter:NotAuthorized`` fault.
  GetSystemDateAndTime is answered without authentication (ONVIF's PRE_AUTH class).
* Stateful media and imaging: SetVideoEncoderConfiguration and SetImagingSettings
  change what GetProfiles / GetVideoEncoderConfiguration(s) / GetImagingSettings
  answer. Values outside the advertised options give ``ter:InvalidArgVal /
  ter:ConfigModify`` (encoder) or ``ter:InvalidArgVal / ter:SettingsInvalid``
  (imaging, also for a field the camera does not have).
* Profile names: ``profile_names`` (profile token → the ``Name`` GetProfiles
  answers; ``""`` an empty Name) renames the captured ``Profile_L1S1``... (whose
  tokens are ``0``..``3``), e.g. as a camera naming them ``MainStream``.
* Modes: ``ignored_fields`` (element names such as ``FrameRateLimit`` or
  ``Brightness``: the Set answers OK but the value stays), ``config_modify_fault``
  (every Set faults), ``reject_firmware`` (the upload answers 415).
* SystemReboot: answers, then refuses connections for ``reboot_seconds``.
* StartFirmwareUpgrade: answers an UploadUri on this server, ``upload_delay`` and
  ``expected_down_time``; a POST of ``application/octet-stream`` there (not before
  the delay) is accepted, the camera goes offline for ``expected_down_time`` and comes
  back running ``next_firmware_version``. Another content type, an empty body or
  ``reject_firmware`` answer 415.
* WS-Discovery: ``start_discovery()`` answers a directed (unicast) Probe on a loopback
  UDP port with a ProbeMatch carrying the simulator's XAddr. Nothing here ever sends
  or joins multicast.

Observations: ``calls`` (SOAP calls per operation, faults included), ``soap_calls``
(every call with its status and fault subcode), ``last_requests`` (the last request
body per operation), ``uploads``, ``events``, ``probes_answered``; ``encoder(token)``
and ``imaging_settings`` give the current state.

In tests, create it on the running event loop::

    sim = OnvifCameraSimulator()
    await sim.start()
    ...  # talk to sim.host / sim.port with sim.username / sim.password
    await sim.stop()

From a shell (runs until Ctrl-C)::

    python -m tests.simulators.onvif --port 18090

Only loopback addresses are meant to be used. Nothing here imports Home Assistant.
"""

import argparse
import asyncio
import base64
import binascii
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
import contextlib
from dataclasses import dataclass
import datetime as dt
import hashlib
import hmac
import logging
from pathlib import Path
import re
import secrets
import signal
import time
from typing import Any, Final
import uuid
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from aiohttp import web

from ._device import LoopbackDevice

__all__ = [
    "BITRATE_RANGE",
    "DEFAULT_FIXTURES_DIR",
    "FPS_RANGE",
    "GOV_LENGTH_RANGE",
    "H264_PROFILES",
    "IMAGING_RANGE",
    "QUALITY_RANGE",
    "RESOLUTIONS",
    "EncoderState",
    "OnvifCameraSimulator",
    "SoapCall",
    "UploadRecord",
    "main",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_FIXTURES_DIR: Final = (
    Path(__file__).resolve().parent.parent
    / "fixtures"
    / "onvif"
    / "bosch_flexidome_indoor_5100i_ir"
)
"""The real Bosch capture (``<Operation>.response.xml``)."""

CAPTURED_HOST: Final = "192.168.1.201"

NS_SOAP: Final = "http://www.w3.org/2003/05/soap-envelope"
NS_WSSE: Final = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
)
NS_WSA: Final = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSD: Final = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
ACTION_PROBE: Final = f"{NS_WSD}/Probe"
ACTION_PROBE_MATCHES: Final = f"{NS_WSD}/ProbeMatches"

DEVICE_PATH: Final = "/onvif/device_service"
MEDIA_PATH: Final = "/onvif/media_service"
IMAGING_PATH: Final = "/onvif/imaging_service"
UPLOAD_PATH: Final = "/onvif/firmware_upload"
_SERVICES: Final = {DEVICE_PATH: "device", MEDIA_PATH: "media", IMAGING_PATH: "imaging"}
_PRE_AUTH: Final = frozenset({"GetSystemDateAndTime"})
_SOAP_CONTENT_TYPE: Final = "application/soap+xml; charset=utf-8"
_MAX_SOAP_BYTES: Final = 256 * 1024
_MAX_SEEN_NONCES: Final = 4096

# Invented option ranges (the capture has no GetVideoEncoderConfigurationOptions).
RESOLUTIONS: Final = (
    (1920, 1080),
    (1536, 864),
    (1280, 720),
    (1024, 576),
    (768, 432),
    (512, 288),
)
FPS_RANGE: Final = (1, 30)
GOV_LENGTH_RANGE: Final = (1, 255)
BITRATE_RANGE: Final = (64, 12000)
QUALITY_RANGE: Final = (0, 100)
ENCODING_INTERVAL_RANGE: Final = (1, 1)
H264_PROFILES: Final = ("Baseline", "Main", "High")
ENCODINGS: Final = ("JPEG", "H264")
IMAGING_RANGE: Final = (0.0, 255.0)
"""Brightness, ColorSaturation, Contrast and Sharpness range."""
LEVEL_RANGE: Final = (0.0, 100.0)
"""WideDynamicRange and BacklightCompensation level range."""

_IMAGING_ORDER: Final = (
    "BacklightCompensation",
    "Brightness",
    "ColorSaturation",
    "Contrast",
    "Exposure",
    "IrCutFilter",
    "Sharpness",
    "WideDynamicRange",
)
"""ImagingSettings20 element order (the ones the simulator knows)."""
_IMAGING_FLOATS: Final = frozenset(
    {"Brightness", "ColorSaturation", "Contrast", "Sharpness"}
)
_IMAGING_MODES: Final[Mapping[str, tuple[str, ...]]] = {
    "BacklightCompensation": ("OFF", "ON"),
    "Exposure": ("AUTO", "MANUAL"),
    "IrCutFilter": ("ON", "OFF", "AUTO"),
    "WideDynamicRange": ("OFF", "ON"),
}

_ENVELOPE_OPEN: Final = (
    '<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope'
    ' xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"'
    ' xmlns:SOAP-ENC="http://www.w3.org/2003/05/soap-encoding"'
    ' xmlns:tt="http://www.onvif.org/ver10/schema"'
)
_PREFIXES: Final = {
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "timg": "http://www.onvif.org/ver20/imaging/wsdl",
}
_VEC_RE: Final = re.compile(
    r'<tt:VideoEncoderConfiguration token="([^"]+)">(.*?)</tt:VideoEncoderConfiguration>',
    re.DOTALL,
)
_PROFILE_NAME_RE: Final = re.compile(
    r'(<trt:Profiles token="([^"]+)"[^>]*><tt:Name>)([^<]*)(</tt:Name>)'
)
_UTC_RE: Final = re.compile(r"<tt:UTCDateTime>.*?</tt:UTCDateTime>", re.DOTALL)
_IMAGING_RE: Final = re.compile(
    r"<timg:ImagingSettings>(.*?)</timg:ImagingSettings>", re.DOTALL
)

#: The invented WS-Discovery scopes of the camera (ONVIF scope URIs, %20-quoted).
DEFAULT_SCOPES: Final = (
    "onvif://www.onvif.org/type/video_encoder",
    "onvif://www.onvif.org/type/audio_encoder",
    "onvif://www.onvif.org/Profile/Streaming",
    "onvif://www.onvif.org/Profile/G",
    "onvif://www.onvif.org/Profile/T",
    "onvif://www.onvif.org/hardware/FLEXIDOME%20indoor%205100i%20IR",
    "onvif://www.onvif.org/name/Bosch%20FLEXIDOME%20indoor%205100i%20IR",
)


@dataclass
class SoapCall:
    """One SOAP call the simulator answered."""

    time: float
    """``time.monotonic()`` when it was answered."""
    service: str
    """``device``, ``media`` or ``imaging``."""
    operation: str
    status: int
    fault: str | None = None
    """The most specific fault subcode (``NotAuthorized``, ``ConfigModify``...)."""


@dataclass
class UploadRecord:
    """One firmware upload POST."""

    content_type: str
    size: int
    sha256: str
    status: int
    chunked: bool
    """Whether the client sent ``Transfer-Encoding: chunked``."""


@dataclass(frozen=True)
class EncoderState:
    """The current values of one video encoder configuration."""

    token: str
    name: str
    encoding: str
    width: int
    height: int
    quality: float
    fps: int
    encoding_interval: int
    bitrate: int
    gov_length: int
    h264_profile: str


class _SoapFaultError(Exception):
    """Raised by an operation handler to answer with a SOAP fault."""

    def __init__(
        self,
        subcodes: Sequence[str],
        reason: str,
        *,
        code: str = "Sender",
        status: int = 400,
    ) -> None:
        super().__init__(reason)
        self.subcodes = tuple(subcodes)
        self.reason = reason
        self.code = code
        self.status = status


@dataclass
class _Reply:
    """A response to send, plus an optional action to run once it is sent."""

    status: int
    body: bytes
    content_type: str = _SOAP_CONTENT_TYPE
    after: Callable[[], Coroutine[Any, Any, None]] | None = None


def _local(tag: str) -> str:
    """Return the local name of an ElementTree tag (``{ns}name`` → ``name``)."""
    return tag.rpartition("}")[2]


def _child(element: ET.Element | None, *names: str) -> ET.Element | None:
    """Follow child elements by local name; None when one is missing."""
    for name in names:
        if element is None:
            return None
        element = next((c for c in element if _local(c.tag) == name), None)
    return element


def _text(element: ET.Element | None, *names: str) -> str | None:
    """Return the stripped text at a path of local names, or None."""
    found = _child(element, *names)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _xml_get(fragment: str, name: str) -> str:
    """Return the text of the first ``<tt:name>`` of ``fragment``."""
    match = re.search(rf"<tt:{name}>([^<]*)</tt:{name}>", fragment)
    if match is None:
        raise KeyError(name)
    return match.group(1)


def _xml_set(fragment: str, name: str, value: str) -> str:
    """Replace the text of the first ``<tt:name>`` of ``fragment``."""
    return re.sub(
        rf"(<tt:{name}>)[^<]*(</tt:{name}>)",
        lambda m: f"{m.group(1)}{escape(value)}{m.group(2)}",
        fragment,
        count=1,
    )


def _number(value: str | None, kind: type[int | float]) -> int | float | None:
    """Parse an xs:int / xs:float text; None when absent or not a number."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if kind is int:
        return int(number) if number.is_integer() else None
    return number


def _duration(seconds: float) -> str:
    """Format seconds as an xs:duration (``PT0.3S``)."""
    return f"PT{seconds:g}S"


def _fault_body(fault: _SoapFaultError) -> bytes:
    """Render a SOAP 1.2 fault the way gSOAP cameras do (nested subcodes)."""
    subcodes = "".join(
        f"<SOAP-ENV:Subcode><SOAP-ENV:Value>ter:{code}</SOAP-ENV:Value>"
        for code in fault.subcodes
    ) + "</SOAP-ENV:Subcode>" * len(fault.subcodes)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope'
        ' xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"'
        ' xmlns:ter="http://www.onvif.org/ver10/error"><SOAP-ENV:Body>'
        "<SOAP-ENV:Fault><SOAP-ENV:Code>"
        f"<SOAP-ENV:Value>SOAP-ENV:{fault.code}</SOAP-ENV:Value>{subcodes}"
        "</SOAP-ENV:Code><SOAP-ENV:Reason>"
        f'<SOAP-ENV:Text xml:lang="en">{escape(fault.reason)}</SOAP-ENV:Text>'
        "</SOAP-ENV:Reason></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    ).encode()


def _envelope(prefix: str, body: str) -> bytes:
    """Wrap a body in the Bosch-style envelope declaring ``tt`` and ``prefix``."""
    return (
        f'{_ENVELOPE_OPEN} xmlns:{prefix}="{_PREFIXES[prefix]}">'
        f"<SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    ).encode()


def _range(name: str, low: float, high: float, fmt: str = "g") -> str:
    """Render a ``<tt:name><tt:Min/><tt:Max/></tt:name>`` range."""
    return (
        f"<tt:{name}><tt:Min>{low:{fmt}}</tt:Min>"
        f"<tt:Max>{high:{fmt}}</tt:Max></tt:{name}>"
    )


def _parse_call(body: bytes) -> tuple[str, ET.Element, ET.Element]:
    """Return (operation, envelope, operation element) of a SOAP request."""
    envelope = _parse_envelope(body)
    soap_body = _child(envelope, "Body")
    op_element = next(iter(soap_body), None) if soap_body is not None else None
    if op_element is None:
        raise _SoapFaultError(["InvalidArgVal"], "empty Body")
    return _local(op_element.tag), envelope, op_element


def _parse_envelope(body: bytes) -> ET.Element:
    """Parse a request envelope (sent by the client under test, on loopback)."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise _SoapFaultError(["InvalidArgVal"], "DTDs are not accepted")
    try:
        return ET.fromstring(body)  # noqa: S314 - loopback test server, no DTDs
    except ET.ParseError as err:
        raise _SoapFaultError(["InvalidArgVal"], f"malformed XML: {err}") from err


class OnvifCameraSimulator(LoopbackDevice):
    """The Bosch FLEXIDOME on a loopback port, driven by tests.

    Mutable attributes tests may change at any time: ``password`` (the user changed
    it on the camera), ``clock_offset`` (seconds the camera clock is ahead of the
    host; negative: behind), ``clock_tolerance``, ``ignored_fields``,
    ``config_modify_fault``, ``reject_firmware``, ``reboot_seconds``,
    ``upload_delay``, ``expected_down_time``, ``next_firmware_version``,
    ``firmware_version``, ``serial_number``, ``upload_uri`` (the UploadUri to hand
    out instead of one on this server), ``profile_names``, ``imaging_range``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "service",
        password: str = "Passw0rd!",  # noqa: S107
        clock_offset: float = 0.0,
        clock_tolerance: float = 60.0,
        reboot_seconds: float = 0.3,
        upload_delay: float = 0.0,
        expected_down_time: float = 0.3,
        next_firmware_version: str = "8.71.0080",
        mac_address: str = "00:07:5F:9C:4E:21",
        imaging: Mapping[str, float | str | Mapping[str, float | str]] | None = None,
        profile_names: Mapping[str, str] | None = None,
        imaging_range: tuple[float, float] = IMAGING_RANGE,
        get_services: bool = True,
        utc_date_time: bool = True,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        services: Sequence[str] = ("device", "media", "imaging"),
        fixtures_dir: Path | None = None,
    ) -> None:
        """Load the capture and set up the (not yet started) camera.

        ``imaging`` replaces the captured imaging settings (Brightness,
        ColorSaturation, Contrast) with others, e.g. ``{"Brightness": 50,
        "IrCutFilter": "AUTO", "WideDynamicRange": {"Mode": "ON", "Level": 50}}``.
        ``get_services=False`` answers GetServices with ActionNotSupported (older
        cameras; clients fall back to GetCapabilities). ``utc_date_time=False``
        answers GetSystemDateAndTime with a LocalDateTime only. ``services`` are the
        ones GetServices lists (a camera without ``imaging`` or ``media``).
        ``profile_names`` maps profile tokens to the Name GetProfiles answers;
        ``imaging_range`` is the range imaging GetOptions gives the four values.
        """
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.clock_offset = clock_offset
        self.clock_tolerance = clock_tolerance
        self.reboot_seconds = reboot_seconds
        self.upload_delay = upload_delay
        self.expected_down_time = expected_down_time
        self.next_firmware_version = next_firmware_version
        self.mac_address = mac_address
        self.get_services = get_services
        self.utc_date_time = utc_date_time
        self.scopes = tuple(scopes)
        self.services = tuple(services)
        self.endpoint_reference = f"urn:uuid:{uuid.uuid4()}"

        #: Profile token → the Name GetProfiles answers instead of the captured one.
        self.profile_names: dict[str, str] = dict(profile_names or {})
        #: The Min/Max imaging GetOptions answers for Brightness, ColorSaturation,
        #: Contrast and Sharpness.
        self.imaging_range: tuple[float, float] = imaging_range
        #: Element names whose new value a Set answers OK for but does not apply.
        self.ignored_fields: set[str] = set()
        #: Every Set answers ConfigModify (encoder) / SettingsInvalid (imaging).
        self.config_modify_fault = False
        #: Firmware uploads answer 415 Unsupported Media Type.
        self.reject_firmware = False

        self.calls: Counter[str] = Counter()
        self.soap_calls: list[SoapCall] = []
        #: The last request body per operation (to check what a client sent).
        self.last_requests: dict[str, bytes] = {}
        self.uploads: list[UploadRecord] = []
        self.events: list[tuple[float, str]] = []
        self.probes_answered = 0

        directory = fixtures_dir or DEFAULT_FIXTURES_DIR
        self._capture = {
            path.name.removesuffix(".response.xml"): path.read_text(encoding="utf-8")
            for path in directory.glob("*.response.xml")
        }
        self.firmware_version = _xml_get_tds(
            self._capture["GetDeviceInformation"], "FirmwareVersion"
        )
        #: GetDeviceInformation's SerialNumber (a test may swap the device).
        self.serial_number = _xml_get_tds(
            self._capture["GetDeviceInformation"], "SerialNumber"
        )
        #: The UploadUri StartFirmwareUpgrade answers (None: one on this server).
        self.upload_uri: str | None = None
        self._encoders: dict[str, str] = dict(
            _VEC_RE.findall(self._capture["GetProfiles"])
        )
        self._imaging: dict[str, Any] = (
            _imaging_state(imaging)
            if imaging is not None
            else _parse_captured_imaging(self._capture["GetImagingSettings"])
        )
        self._seen_nonces: deque[str] = deque(maxlen=_MAX_SEEN_NONCES)
        self._tickets: dict[str, float] = {}

        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._online = asyncio.Event()
        self._ready = asyncio.Event()
        self._busy = False  # rebooting or flashing
        self._tasks: set[asyncio.Task[None]] = set()
        self._discovery: asyncio.DatagramTransport | None = None
        self._handlers: dict[tuple[str, str], Callable[[ET.Element], _Reply]] = {
            ("device", "GetSystemDateAndTime"): self._get_system_date_and_time,
            ("device", "GetServices"): self._get_services,
            ("device", "GetCapabilities"): self._captured_device("GetCapabilities"),
            ("device", "GetDeviceInformation"): self._get_device_information,
            ("device", "GetNetworkInterfaces"): self._get_network_interfaces,
            ("device", "SystemReboot"): self._system_reboot,
            ("device", "StartFirmwareUpgrade"): self._start_firmware_upgrade,
            ("media", "GetProfiles"): self._get_profiles,
            ("media", "GetVideoEncoderConfiguration"): self._get_encoder,
            ("media", "GetVideoEncoderConfigurations"): self._get_encoders,
            (
                "media",
                "GetVideoEncoderConfigurationOptions",
            ): self._get_encoder_options,
            ("media", "SetVideoEncoderConfiguration"): self._set_encoder,
            ("media", "GetStreamUri"): self._captured_device("GetStreamUri"),
            ("media", "GetSnapshotUri"): self._captured_device("GetSnapshotUri"),
            ("imaging", "GetImagingSettings"): self._get_imaging,
            ("imaging", "GetOptions"): self._get_imaging_options,
            ("imaging", "SetImagingSettings"): self._set_imaging,
        }

    # ------------------------------------------------------------------ state

    @property
    def device_service_url(self) -> str:
        """The device service XAddr."""
        return f"{self.url}{DEVICE_PATH}"

    @property
    def discovery_port(self) -> int | None:
        """The UDP port of the WS-Discovery responder, once started."""
        if self._discovery is None:
            return None
        return int(self._discovery.get_extra_info("sockname")[1])

    @property
    def encoder_tokens(self) -> tuple[str, ...]:
        """Video encoder configuration tokens, in GetProfiles order."""
        return tuple(self._encoders)

    def encoder(self, token: str) -> EncoderState:
        """Return the current values of encoder configuration ``token``."""
        inner = self._encoders[token]
        return EncoderState(
            token=token,
            name=_xml_get(inner, "Name"),
            encoding=_xml_get(inner, "Encoding"),
            width=int(_xml_get(inner, "Width")),
            height=int(_xml_get(inner, "Height")),
            quality=float(_xml_get(inner, "Quality")),
            fps=int(_xml_get(inner, "FrameRateLimit")),
            encoding_interval=int(_xml_get(inner, "EncodingInterval")),
            bitrate=int(_xml_get(inner, "BitrateLimit")),
            gov_length=int(_xml_get(inner, "GovLength")),
            h264_profile=_xml_get(inner, "H264Profile"),
        )

    @property
    def imaging_settings(self) -> dict[str, Any]:
        """The current imaging settings (element name → value or dict)."""
        return {
            key: dict(value) if isinstance(value, dict) else value
            for key, value in self._imaging.items()
        }

    def camera_time(self) -> float:
        """The camera's clock (POSIX seconds): the host's plus ``clock_offset``."""
        return time.time() + self.clock_offset

    def count(self, operation: str) -> int:
        """Return how many SOAP calls of ``operation`` were answered (faults too)."""
        return self.calls[operation]

    @property
    def total_calls(self) -> int:
        """SOAP calls answered since start or the last ``reset_stats``."""
        return sum(self.calls.values())

    def reset_stats(self) -> None:
        """Forget recorded calls, uploads and events."""
        self.calls.clear()
        self.soap_calls.clear()
        self.last_requests.clear()
        self.uploads.clear()
        self.events.clear()
        self.probes_answered = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start listening; with ``port=0`` the chosen port is stored in ``port``."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        app = web.Application(client_max_size=_MAX_SOAP_BYTES)
        for path in _SERVICES:
            app.router.add_post(path, self._handle_soap)
        app.router.add_post(f"{UPLOAD_PATH}/{{ticket}}", self._handle_upload)
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
        """Stop serving, close every connection, the responder and background tasks."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._busy = False
        self._ready.clear()
        if self._discovery is not None:
            self._discovery.close()
            self._discovery = None
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await self._close_listener(runner)
        await runner.cleanup()

    async def start_discovery(self, port: int = 0) -> int:
        """Answer directed WS-Discovery Probes on UDP ``host:port``; return the port.

        Unicast only: the socket is bound to ``host`` and never joins a multicast
        group.
        """
        if self._discovery is not None:
            raise RuntimeError("discovery responder already started")
        (
            transport,
            _protocol,
        ) = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _ProbeResponder(self), local_addr=(self.host, port)
        )
        self._discovery = transport
        return int(transport.get_extra_info("sockname")[1])

    async def reboot(self) -> None:
        """Go offline now and come back after ``reboot_seconds`` (in background)."""
        await self._outage("reboot", self.reboot_seconds, None)

    async def _outage(self, name: str, seconds: float, new_version: str | None) -> None:
        if self._runner is None:
            raise RuntimeError("simulator not started")
        if self._busy:
            return
        self._busy = True
        self._event(f"{name}_started")
        await self._close_listener(self._runner)
        self._tickets.clear()
        self._spawn(self._finish_outage(name, seconds, new_version))

    async def _finish_outage(
        self, name: str, seconds: float, new_version: str | None
    ) -> None:
        try:
            await asyncio.sleep(seconds)
            if new_version is not None:
                self.firmware_version = new_version
            await self._open_listener()
            self._ready.set()
            self._event(f"{name}_finished")
        finally:
            self._busy = False

    # ------------------------------------------------------------------ HTTP

    async def _send(self, request: web.Request, reply: _Reply) -> web.StreamResponse:
        response = web.Response(
            status=reply.status,
            body=reply.body,
            headers={"Content-Type": reply.content_type},
        )
        if reply.after is None:
            return response
        # Make sure the answer is on the wire before the camera goes away.
        self._ready.clear()
        await response.prepare(request)
        await response.write_eof()
        self._spawn(reply.after())
        return response

    async def _handle_soap(self, request: web.Request) -> web.StreamResponse:
        """Authenticate, dispatch and record one SOAP call."""
        service = _SERVICES[request.path]
        operation = "?"
        fault: str | None = None
        raw = await request.read()
        try:
            operation, envelope, op_element = _parse_call(raw)
            self.last_requests[operation] = raw
            reply = self._answer(service, operation, envelope, op_element)
        except _SoapFaultError as err:
            fault = err.subcodes[-1] if err.subcodes else err.code
            reply = _Reply(err.status, _fault_body(err))
        self.calls[operation] += 1
        self.soap_calls.append(
            SoapCall(time.monotonic(), service, operation, reply.status, fault)
        )
        _LOGGER.debug("%s %s %s -> %s", self.url, service, operation, reply.status)
        return await self._send(request, reply)

    def _answer(
        self,
        service: str,
        operation: str,
        envelope: ET.Element,
        op_element: ET.Element,
    ) -> _Reply:
        """Answer one parsed call (raises _SoapFaultError for a fault)."""
        if operation not in _PRE_AUTH:
            self._authenticate(envelope)
        handler = self._handlers.get((service, operation))
        if handler is None or (operation == "GetServices" and not self.get_services):
            raise _SoapFaultError(
                ["ActionNotSupported"],
                f"{operation} is not supported",
                code="Receiver",
                status=500,
            )
        return handler(op_element)

    def _authenticate(self, envelope: ET.Element) -> None:
        """Check the WS-Security UsernameToken; raise NotAuthorized if it fails."""
        reason = self._auth_failure(envelope)
        if reason is not None:
            _LOGGER.debug("%s: not authorized: %s", self.url, reason)
            raise _SoapFaultError(["NotAuthorized"], "Sender not authorized")

    def _auth_failure(self, envelope: ET.Element) -> str | None:
        token = _child(envelope, "Header", "Security", "UsernameToken")
        if token is None:
            return "no UsernameToken"
        password = _child(token, "Password")
        nonce = _text(token, "Nonce")
        created = _text(token, "Created")
        if _text(token, "Username") != self.username or password is None:
            return "unknown user"
        supplied = (password.text or "").strip()
        if password.get("Type", "").endswith("#PasswordText"):
            expected = self.password
        else:
            if nonce is None or created is None:
                return "digest without Nonce or Created"
            try:
                raw_nonce = base64.b64decode(nonce, validate=True)
            except binascii.Error:
                return "nonce is not Base64"
            digest = hashlib.sha1(
                raw_nonce + created.encode() + self.password.encode()
            ).digest()
            expected = base64.b64encode(digest).decode()
        if not hmac.compare_digest(expected.encode(), supplied.encode()):
            return "wrong password"
        if created is not None:
            try:
                stamp = dt.datetime.fromisoformat(created)
            except ValueError:
                return f"Created {created!r} is not a dateTime"
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.UTC)
            skew = stamp.timestamp() - self.camera_time()
            if abs(skew) > self.clock_tolerance:
                return f"Created {created} is {skew:+.0f} s off the camera clock"
        if nonce is not None:
            if nonce in self._seen_nonces:
                return "nonce replayed"
            self._seen_nonces.append(nonce)
        return None

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        """Receive a firmware file POSTed to an UploadUri.

        The body is read to its end before any answer, refusals included. Answered
        mid-body, the client aborts its upload and closes the connection, while
        aiohttp's server keeps waiting for the rest of the body ("lingering", 10 s)
        in a task that nothing wakes: neither the closed connection nor `stop()`.
        """
        issued = self._tickets.get(request.match_info["ticket"])
        early = issued is not None and time.monotonic() - issued < self.upload_delay
        content_type = request.headers.get("Content-Type", "")
        hasher = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            hasher.update(chunk)
            size += len(chunk)
        if issued is None:
            return web.Response(status=404, text="no such upload")
        if early:
            return web.Response(status=503, text="not ready for the upload yet")
        ok = (
            content_type.split(";")[0].strip().lower() == "application/octet-stream"
            and size > 0
            and not self.reject_firmware
        )
        status = 200 if ok else 415
        self.uploads.append(
            UploadRecord(
                content_type=content_type,
                size=size,
                sha256=hasher.hexdigest(),
                status=status,
                chunked=request.headers.get("Transfer-Encoding", "").lower()
                == "chunked",
            )
        )
        self._event(f"upload_{status}")
        if not ok:
            return web.Response(status=415, text="unsupported firmware file")
        self._tickets.pop(request.match_info["ticket"], None)
        reply = _Reply(
            200,
            b"",
            "text/plain",
            after=lambda: self._outage(
                "upgrade", self.expected_down_time, self.next_firmware_version
            ),
        )
        return await self._send(request, reply)

    # ------------------------------------------------------------------ device

    def _rewrite(self, xml: str) -> str:
        """Point the captured XAddrs and URIs at this simulator."""
        return xml.replace(f"http://{CAPTURED_HOST}", self.url).replace(
            CAPTURED_HOST, self.host
        )

    def _captured_device(self, operation: str) -> Callable[[ET.Element], _Reply]:
        def handler(_request: ET.Element) -> _Reply:
            return _Reply(200, self._rewrite(self._capture[operation]).encode())

        return handler

    def _get_system_date_and_time(self, _request: ET.Element) -> _Reply:
        now = dt.datetime.fromtimestamp(self.camera_time(), dt.UTC)
        element = "UTCDateTime" if self.utc_date_time else "LocalDateTime"
        stamp = (
            f"<tt:{element}><tt:Time><tt:Hour>{now.hour}</tt:Hour>"
            f"<tt:Minute>{now.minute}</tt:Minute><tt:Second>{now.second}</tt:Second>"
            f"</tt:Time><tt:Date><tt:Year>{now.year}</tt:Year>"
            f"<tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day>"
            f"</tt:Date></tt:{element}>"
        )
        xml = _UTC_RE.sub(stamp, self._capture["GetSystemDateAndTime"], count=1)
        return _Reply(200, xml.encode())

    def _get_services(self, _request: ET.Element) -> _Reply:
        services = (
            ("device", _PREFIXES["tds"], DEVICE_PATH),
            ("media", _PREFIXES["trt"], MEDIA_PATH),
            ("imaging", _PREFIXES["timg"], IMAGING_PATH),
        )
        body = "".join(
            f"<tds:Service><tds:Namespace>{namespace}</tds:Namespace>"
            f"<tds:XAddr>{self.url}{path}</tds:XAddr><tds:Version>"
            "<tt:Major>2</tt:Major><tt:Minor>0</tt:Minor></tds:Version></tds:Service>"
            for name, namespace, path in services
            if name in self.services
        )
        return _Reply(
            200,
            _envelope(
                "tds", f"<tds:GetServicesResponse>{body}</tds:GetServicesResponse>"
            ),
        )

    def _get_device_information(self, _request: ET.Element) -> _Reply:
        xml = _set_tds(
            self._capture["GetDeviceInformation"],
            "FirmwareVersion",
            self.firmware_version,
        )
        xml = _set_tds(xml, "SerialNumber", self.serial_number)
        return _Reply(200, xml.encode())

    def _get_network_interfaces(self, _request: ET.Element) -> _Reply:
        body = (
            '<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="1">'
            "<tt:Enabled>true</tt:Enabled><tt:Info><tt:Name>eth0</tt:Name>"
            f"<tt:HwAddress>{escape(self.mac_address)}</tt:HwAddress>"
            "<tt:MTU>1514</tt:MTU></tt:Info><tt:IPv4><tt:Enabled>true</tt:Enabled>"
            f"<tt:Config><tt:Manual><tt:Address>{escape(self.host)}</tt:Address>"
            "<tt:PrefixLength>24</tt:PrefixLength></tt:Manual>"
            "<tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4>"
            "</tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>"
        )
        return _Reply(200, _envelope("tds", body))

    def _system_reboot(self, _request: ET.Element) -> _Reply:
        body = (
            "<tds:SystemRebootResponse><tds:Message>Rebooting in 1 seconds"
            "</tds:Message></tds:SystemRebootResponse>"
        )
        return _Reply(200, _envelope("tds", body), after=self.reboot)

    def _start_firmware_upgrade(self, _request: ET.Element) -> _Reply:
        ticket = secrets.token_urlsafe(12)
        self._tickets[ticket] = time.monotonic()
        body = (
            "<tds:StartFirmwareUpgradeResponse>"
            "<tds:UploadUri>"
            f"{escape(self.upload_uri or f'{self.url}{UPLOAD_PATH}/{ticket}')}"
            "</tds:UploadUri>"
            f"<tds:UploadDelay>{_duration(self.upload_delay)}</tds:UploadDelay>"
            "<tds:ExpectedDownTime>"
            f"{_duration(self.expected_down_time)}</tds:ExpectedDownTime>"
            "</tds:StartFirmwareUpgradeResponse>"
        )
        return _Reply(200, _envelope("tds", body))

    # ------------------------------------------------------------------ discovery

    def probe_match(self, relates_to: str) -> bytes:
        """Return the ProbeMatches answer to the Probe with MessageID ``relates_to``."""
        return (
            '<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope'
            f' xmlns:SOAP-ENV="{NS_SOAP}" xmlns:wsa="{NS_WSA}" xmlns:d="{NS_WSD}"'
            ' xmlns:dn="http://www.onvif.org/ver10/network/wsdl"'
            f' xmlns:tds="{_PREFIXES["tds"]}"><SOAP-ENV:Header>'
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
            f"<wsa:RelatesTo>{escape(relates_to)}</wsa:RelatesTo>"
            "<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
            f"</wsa:To><wsa:Action>{ACTION_PROBE_MATCHES}</wsa:Action>"
            '<d:AppSequence InstanceId="1" MessageNumber="1"/></SOAP-ENV:Header>'
            "<SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference>"
            f"<wsa:Address>{self.endpoint_reference}</wsa:Address>"
            "</wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device"
            f"</d:Types><d:Scopes>{escape(' '.join(self.scopes))}</d:Scopes>"
            f"<d:XAddrs>{self.device_service_url}</d:XAddrs>"
            "<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>"
            "</SOAP-ENV:Body></SOAP-ENV:Envelope>"
        ).encode()

    # ------------------------------------------------------------------ media

    def _get_profiles(self, _request: ET.Element) -> _Reply:
        xml = _VEC_RE.sub(
            lambda m: (
                f'<tt:VideoEncoderConfiguration token="{m.group(1)}">'
                f"{self._encoders[m.group(1)]}</tt:VideoEncoderConfiguration>"
            ),
            self._capture["GetProfiles"],
        )
        xml = _PROFILE_NAME_RE.sub(self._profile_name, xml)
        return _Reply(200, self._rewrite(xml).encode())

    def _profile_name(self, match: re.Match[str]) -> str:
        """Put the Name of ``profile_names`` (if any) into a GetProfiles profile."""
        head, token, name, tail = match.groups()
        if token in self.profile_names:
            name = escape(self.profile_names[token])
        return f"{head}{name}{tail}"

    def _encoder_token(self, request: ET.Element) -> str:
        token = _text(request, "ConfigurationToken")
        if token is None or token not in self._encoders:
            raise _SoapFaultError(
                ["InvalidArgVal", "NoConfig"], "no such configuration"
            )
        return token

    def _get_encoder(self, request: ET.Element) -> _Reply:
        token = self._encoder_token(request)
        template = self._capture["GetVideoEncoderConfiguration"]
        head, _, _ = template.partition("<trt:GetVideoEncoderConfigurationResponse>")
        _, _, tail = template.partition("</trt:GetVideoEncoderConfigurationResponse>")
        xml = (
            f"{head}<trt:GetVideoEncoderConfigurationResponse>"
            f'<trt:Configuration token="{token}">{self._encoders[token]}'
            "</trt:Configuration></trt:GetVideoEncoderConfigurationResponse>"
            f"{tail}"
        )
        return _Reply(200, xml.encode())

    def _get_encoders(self, _request: ET.Element) -> _Reply:
        body = "".join(
            f'<trt:Configurations token="{token}">{inner}</trt:Configurations>'
            for token, inner in self._encoders.items()
        )
        return _Reply(
            200,
            _envelope(
                "trt",
                "<trt:GetVideoEncoderConfigurationsResponse>"
                f"{body}</trt:GetVideoEncoderConfigurationsResponse>",
            ),
        )

    def _get_encoder_options(self, request: ET.Element) -> _Reply:
        if _text(request, "ConfigurationToken") is not None:
            self._encoder_token(request)
        resolutions = "".join(
            f"<tt:ResolutionsAvailable><tt:Width>{w}</tt:Width>"
            f"<tt:Height>{h}</tt:Height></tt:ResolutionsAvailable>"
            for w, h in RESOLUTIONS
        )
        jpeg = (
            f"{resolutions}{_range('FrameRateRange', *FPS_RANGE)}"
            f"{_range('EncodingIntervalRange', *ENCODING_INTERVAL_RANGE)}"
        )
        h264 = (
            f"{resolutions}{_range('GovLengthRange', *GOV_LENGTH_RANGE)}"
            f"{_range('FrameRateRange', *FPS_RANGE)}"
            f"{_range('EncodingIntervalRange', *ENCODING_INTERVAL_RANGE)}"
            + "".join(
                f"<tt:H264ProfilesSupported>{p}</tt:H264ProfilesSupported>"
                for p in H264_PROFILES
            )
        )
        bitrate = _range("BitrateRange", *BITRATE_RANGE)
        body = (
            "<trt:GetVideoEncoderConfigurationOptionsResponse><trt:Options>"
            f"{_range('QualityRange', *QUALITY_RANGE)}"
            f"<tt:JPEG>{jpeg}</tt:JPEG><tt:H264>{h264}</tt:H264>"
            f"<tt:Extension><tt:JPEG>{jpeg}{bitrate}</tt:JPEG>"
            f"<tt:H264>{h264}{bitrate}</tt:H264></tt:Extension>"
            "</trt:Options></trt:GetVideoEncoderConfigurationOptionsResponse>"
        )
        return _Reply(200, _envelope("trt", body))

    def _set_encoder(self, request: ET.Element) -> _Reply:
        config = _child(request, "Configuration")
        token = config.get("token") if config is not None else None
        if config is None or token not in self._encoders:
            raise _SoapFaultError(
                ["InvalidArgVal", "NoConfig"], "no such configuration"
            )
        if self.config_modify_fault:
            raise _SoapFaultError(
                ["InvalidArgVal", "ConfigModify"], "The configuration cannot be changed"
            )
        changes = _encoder_changes(config)
        inner = self._encoders[token]
        for name, value in changes.items():
            if name in self.ignored_fields:
                continue
            if name == "Resolution":
                width, height = value.split("x")
                inner = _xml_set(_xml_set(inner, "Width", width), "Height", height)
            else:
                inner = _xml_set(inner, name, value)
        self._encoders[token] = inner
        return _Reply(
            200,
            _envelope(
                "trt",
                "<trt:SetVideoEncoderConfigurationResponse>"
                "</trt:SetVideoEncoderConfigurationResponse>",
            ),
        )

    # ------------------------------------------------------------------ imaging

    def _check_source(self, request: ET.Element) -> None:
        if _text(request, "VideoSourceToken") != "1":
            raise _SoapFaultError(["InvalidArgVal", "NoSource"], "no such video source")

    def _render_imaging(self) -> str:
        parts: list[str] = []
        for name in _IMAGING_ORDER:
            if name not in self._imaging:
                continue
            value = self._imaging[name]
            if isinstance(value, dict):
                inner = "".join(
                    f"<tt:{key}>{_format_imaging(item)}</tt:{key}>"
                    for key, item in value.items()
                )
            else:
                inner = _format_imaging(value)
            parts.append(f"<tt:{name}>{inner}</tt:{name}>")
        return "".join(parts)

    def _get_imaging(self, request: ET.Element) -> _Reply:
        self._check_source(request)
        xml = _IMAGING_RE.sub(
            lambda _m: (
                f"<timg:ImagingSettings>{self._render_imaging()}</timg:ImagingSettings>"
            ),
            self._capture["GetImagingSettings"],
            count=1,
        )
        return _Reply(200, xml.encode())

    def _get_imaging_options(self, request: ET.Element) -> _Reply:
        self._check_source(request)
        parts: list[str] = []
        for name in _IMAGING_ORDER:
            value = self._imaging.get(name)
            if value is None:
                continue
            if name in _IMAGING_FLOATS:
                parts.append(_range(name, *self.imaging_range, fmt=".2f"))
            elif name == "IrCutFilter":
                parts.extend(
                    f"<tt:IrCutFilterModes>{mode}</tt:IrCutFilterModes>"
                    for mode in _IMAGING_MODES[name]
                )
            else:
                modes = "".join(
                    f"<tt:Mode>{mode}</tt:Mode>" for mode in _IMAGING_MODES[name]
                )
                level = (
                    _range("Level", *LEVEL_RANGE, fmt=".2f") if "Level" in value else ""
                )
                parts.append(f"<tt:{name}>{modes}{level}</tt:{name}>")
        body = (
            "<timg:GetOptionsResponse><timg:ImagingOptions>"
            f"{''.join(parts)}</timg:ImagingOptions></timg:GetOptionsResponse>"
        )
        return _Reply(200, _envelope("timg", body))

    def _set_imaging(self, request: ET.Element) -> _Reply:
        self._check_source(request)
        if self.config_modify_fault:
            raise _SoapFaultError(
                ["InvalidArgVal", "SettingsInvalid"], "The settings cannot be changed"
            )
        settings = _child(request, "ImagingSettings")
        changes: dict[str, Any] = {}
        for element in settings if settings is not None else ():
            name = _local(element.tag)
            current = self._imaging.get(name)
            if current is None:
                raise _SoapFaultError(
                    ["InvalidArgVal", "SettingsInvalid"], f"{name} is not supported"
                )
            changes[name] = _imaging_value(name, element, current, self.imaging_range)
        for name, value in changes.items():
            if name not in self.ignored_fields:
                self._imaging[name] = value
        return _Reply(
            200,
            _envelope(
                "timg",
                "<timg:SetImagingSettingsResponse></timg:SetImagingSettingsResponse>",
            ),
        )


# ---------------------------------------------------------------------- helpers


def _xml_get_tds(xml: str, name: str) -> str:
    match = re.search(rf"<tds:{name}>([^<]*)</tds:{name}>", xml)
    if match is None:
        raise KeyError(name)
    return match.group(1)


def _set_tds(xml: str, name: str, value: str) -> str:
    """Replace the text of the first ``<tds:name>`` of ``xml``."""
    return re.sub(
        rf"(<tds:{name}>)[^<]*(</tds:{name}>)",
        lambda m: f"{m.group(1)}{escape(value)}{m.group(2)}",
        xml,
        count=1,
    )


def _invalid(what: str) -> _SoapFaultError:
    return _SoapFaultError(["InvalidArgVal", "ConfigModify"], f"{what} cannot be set")


def _in_range(value: float | None, bounds: tuple[float, float]) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


def _encoder_changes(config: ET.Element) -> dict[str, str]:
    """Validate a SetVideoEncoderConfiguration request; return element → new text."""
    changes: dict[str, str] = {}
    name = _text(config, "Name")
    if name is not None:
        changes["Name"] = name
    encoding = _text(config, "Encoding")
    if encoding is not None:
        if encoding not in ENCODINGS:
            raise _invalid(f"Encoding {encoding}")
        changes["Encoding"] = encoding
    width = _number(_text(config, "Resolution", "Width"), int)
    height = _number(_text(config, "Resolution", "Height"), int)
    if width is not None or height is not None:
        if (width, height) not in RESOLUTIONS:
            raise _invalid(f"Resolution {width}x{height}")
        changes["Resolution"] = f"{width}x{height}"
    checks: tuple[
        tuple[tuple[str, ...], type[int | float], tuple[float, float]], ...
    ] = (
        (("Quality",), float, QUALITY_RANGE),
        (("RateControl", "FrameRateLimit"), int, FPS_RANGE),
        (("RateControl", "EncodingInterval"), int, ENCODING_INTERVAL_RANGE),
        (("RateControl", "BitrateLimit"), int, BITRATE_RANGE),
        (("H264", "GovLength"), int, GOV_LENGTH_RANGE),
    )
    for path, kind, bounds in checks:
        raw = _text(config, *path)
        if raw is None:
            continue
        value = _number(raw, kind)
        if not _in_range(value, bounds):
            raise _invalid(f"{path[-1]} {raw}")
        changes[path[-1]] = f"{value:.2f}" if kind is float else str(value)
    profile = _text(config, "H264", "H264Profile")
    if profile is not None:
        if profile not in H264_PROFILES:
            raise _invalid(f"H264Profile {profile}")
        changes["H264Profile"] = profile
    return changes


def _imaging_value(
    name: str,
    element: ET.Element,
    current: Any,
    allowed: tuple[float, float] = IMAGING_RANGE,
) -> Any:
    """Validate one element of SetImagingSettings; return the new state value."""
    bad = _SoapFaultError(
        ["InvalidArgVal", "SettingsInvalid"], f"{name} is out of range"
    )
    if name in _IMAGING_FLOATS:
        value = _number((element.text or "").strip(), float)
        if not _in_range(value, allowed):
            raise bad
        return value
    if name == "IrCutFilter":
        ir_mode = (element.text or "").strip()
        if ir_mode not in _IMAGING_MODES[name]:
            raise bad
        return ir_mode
    mode = _text(element, "Mode")
    if mode not in _IMAGING_MODES[name]:
        raise bad
    new: dict[str, Any] = {"Mode": mode}
    if "Level" in current:
        raw = _text(element, "Level")
        level = current["Level"] if raw is None else _number(raw, float)
        if not _in_range(level, LEVEL_RANGE):
            raise bad
        new["Level"] = level
    return new


def _format_imaging(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return escape(str(value))


def _imaging_state(
    imaging: Mapping[str, float | str | Mapping[str, float | str]],
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name, value in imaging.items():
        if name not in _IMAGING_ORDER:
            raise ValueError(f"unknown imaging setting {name!r}")
        if isinstance(value, Mapping):
            state[name] = {
                key: float(item) if key == "Level" else item
                for key, item in value.items()
            }
        elif name in _IMAGING_FLOATS:
            state[name] = float(value)
        else:
            state[name] = value
    return state


def _parse_captured_imaging(xml: str) -> dict[str, Any]:
    match = _IMAGING_RE.search(xml)
    assert match is not None
    return {
        name: float(value)
        for name, value in re.findall(r"<tt:(\w+)>([^<]*)</tt:\1>", match.group(1))
    }


# ---------------------------------------------------------------------- discovery


class _ProbeResponder(asyncio.DatagramProtocol):
    """Answers WS-Discovery Probes sent straight to it (SOAP-over-UDP unicast)."""

    def __init__(self, sim: OnvifCameraSimulator) -> None:
        self._sim = sim
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self._transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            envelope = _parse_envelope(data)
        except _SoapFaultError:
            return
        header = _child(envelope, "Header")
        probe = _child(envelope, "Body", "Probe")
        if probe is None or _text(header, "Action") != ACTION_PROBE:
            return
        message_id = _text(header, "MessageID")
        types = (_text(probe, "Types") or "").split()
        wanted = {t.rpartition(":")[2] for t in types}
        if message_id is None or (
            wanted and not wanted & {"NetworkVideoTransmitter", "Device"}
        ):
            return
        assert self._transport is not None
        self._transport.sendto(self._sim.probe_match(message_id), addr)
        self._sim.probes_answered += 1


# ---------------------------------------------------------------------- CLI


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulators.onvif",
        description="Run a loopback ONVIF camera (Bosch FLEXIDOME capture) until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090, help="0: any free port")
    parser.add_argument(
        "--discovery-port",
        type=int,
        default=None,
        help="also answer directed WS-Discovery probes on this UDP port",
    )
    parser.add_argument("--username", default="service")
    parser.add_argument("--password", default="Passw0rd!")
    parser.add_argument(
        "--clock-offset", type=float, default=0.0, help="camera clock ahead, seconds"
    )
    parser.add_argument("--reboot-seconds", type=float, default=5.0)
    parser.add_argument("--expected-down-time", type=float, default=10.0)
    parser.add_argument("--upload-delay", type=float, default=1.0)
    parser.add_argument("--next-firmware-version", default="8.71.0080")
    parser.add_argument(
        "--ignore-field",
        action="append",
        default=[],
        help="element a Set answers OK for but does not apply (e.g. FrameRateLimit)",
    )
    parser.add_argument("--config-modify-fault", action="store_true")
    parser.add_argument("--reject-firmware", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every call")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    sim = OnvifCameraSimulator(
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
        clock_offset=args.clock_offset,
        reboot_seconds=args.reboot_seconds,
        expected_down_time=args.expected_down_time,
        upload_delay=args.upload_delay,
        next_firmware_version=args.next_firmware_version,
    )
    sim.ignored_fields.update(args.ignore_field)
    sim.config_modify_fault = args.config_modify_fault
    sim.reject_firmware = args.reject_firmware
    await sim.start()
    try:
        if args.discovery_port is not None:
            port = await sim.start_discovery(args.discovery_port)
            print(f"WS-Discovery (unicast) on udp://{sim.host}:{port}", flush=True)
        print(
            f"{sim.device_service_url} username={sim.username} "
            f"password={sim.password} firmware={sim.firmware_version}",
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
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: run the camera until Ctrl-C."""
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
