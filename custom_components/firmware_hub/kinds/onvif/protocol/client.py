"""ONVIF over SOAP (onvif-zeep-async): typed calls, typed errors, WS-Discovery.

Wire only, no Home Assistant imports.

`OnvifClient` wraps one `onvif.ONVIFCamera` built on the library's bundled WSDL
directory. `connect()` runs `update_xaddrs()` (GetServices, GetCapabilities as the
library's fallback) and creates the device management and media services once; the
imaging service is created on first use. Every later call reuses them. `close()`
closes them all; `connect()` closes what it opened when it fails, and the client is an
async context manager.

Camera clocks drift, and WS-Security UsernameToken digests carry a `Created` time that
cameras check against their own clock. The camera is built with the library's
`adjust_time=True`: before anything else it reads GetSystemDateAndTime without
authentication (ONVIF's PRE_AUTH class) and signs every request with the camera's
offset (`clock_offset`). A camera whose clock jumps later (a reboot without RTC, NTP
catching up) is handled too: an authentication failure on a client that has
authenticated before reconnects once, which measures the offset again, and retries.

Injected aiohttp session (Home Assistant's inject-websession rule): not possible.
onvif-zeep-async 4.3.0 builds a private `aiohttp.ClientSession` + `TCPConnector`
(certificate checks off, keep-alive 4 s) inside every `ONVIFService.__init__` and one
more for snapshots in `ONVIFCamera.__init__`; neither constructor takes a session,
`ONVIFService.close()` closes the session it holds (it would close Home Assistant's
shared one), and the transport takes its timeouts from that session. Only the firmware
upload, which is plain HTTP, uses the session the caller passes (`upload_firmware`).

Errors: every failure is an `OnvifError` — `OnvifAuthError` (a fault the library's
`is_auth_error` recognises, HTTP 401/403), `OnvifConnectionError` (refused, reset,
HTTP error without a SOAP answer) and its `OnvifTimeoutError`, `OnvifFaultError` (any
other SOAP fault, with its subcodes), `OnvifNotSupportedError` (the camera lacks the
service or the setting), `OnvifParseError` (not an ONVIF answer), `OnvifUploadError`
(the firmware upload's HTTP status).

Discovery: `discover_cameras()` is blocking (run it in an executor). Without an
address it is Home Assistant core's WS-Discovery multicast probe (`WSDiscovery`
threads). With an address it sends one directed SOAP-over-UDP Probe to that address
from a single unicast socket and reads the ProbeMatches (message building and parsing
from the `WSDiscovery` package): `WSDiscovery.start()` itself would bind UDP 3702 on
every interface and join the multicast group (IGMP reports on the network), which a
directed probe must not do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
import copy
from dataclasses import dataclass, fields
import datetime as dt
import logging
import os
from pathlib import Path
import re
import socket
import time
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
from aiohttp import hdrs
from onvif import (  # type: ignore[import-untyped]
    ONVIFCamera,
    ONVIFService,
    exceptions as onvif_exceptions,
    util as onvif_util,
)
from wsdiscovery import (  # type: ignore[import-untyped]
    QName,
    WSDiscovery,
    actions as wsd_actions,
    message as wsd_message,
)
from zeep.exceptions import Error as ZeepError, Fault, TransportError

_LOGGER = logging.getLogger(__name__)

#: The WSDL files bundled with onvif-zeep-async (the library's own default).
WSDL_DIR: Final = str(Path(onvif_util.__file__).with_name("wsdl"))
DEFAULT_TIMEOUT: Final = 15.0
UPLOAD_TIMEOUT: Final = 30 * 60.0
UPLOAD_CHUNK_BYTES: Final = 64 * 1024
DISCOVERY_PORT: Final = 3702
DISCOVERY_TIMEOUT: Final = 4.0

NS_DEVICE: Final = "http://www.onvif.org/ver10/device/wsdl"
NS_MEDIA: Final = "http://www.onvif.org/ver10/media/wsdl"
NS_IMAGING: Final = "http://www.onvif.org/ver20/imaging/wsdl"
NS_NETWORK: Final = "http://www.onvif.org/ver10/network/wsdl"

SCOPE_NAME: Final = "onvif://www.onvif.org/name/"
SCOPE_HARDWARE: Final = "onvif://www.onvif.org/hardware/"
SCOPE_MAC: Final = "onvif://www.onvif.org/mac/"

_AUTH_HTTP_STATUSES: Final = frozenset({401, 403})
_GOV_CODECS: Final = {"H264": "H264Profile", "MPEG4": "Mpeg4Profile"}
_DEFAULT_CODEC_PROFILE: Final = {"H264": "Main", "MPEG4": "SP"}
_DEFAULT_GOV_LENGTH: Final = 30
_ENCODINGS: Final = ("JPEG", "MPEG4", "H264")
_MAC_RE: Final = re.compile(r"[0-9a-f]{12}")
_SERVICE_NAMESPACES: Final = {
    "devicemgmt": NS_DEVICE,
    "media": NS_MEDIA,
    "imaging": NS_IMAGING,
}


# ---------------------------------------------------------------------- errors


class OnvifError(Exception):
    """Base class of every error the ONVIF client raises."""


class OnvifConnectionError(OnvifError):
    """The camera could not be reached, or answered HTTP without SOAP."""


class OnvifTimeoutError(OnvifConnectionError):
    """The camera did not answer in time."""


class OnvifAuthError(OnvifError):
    """The camera refused the credentials (or the WS-Security timestamp)."""


class OnvifNotSupportedError(OnvifError):
    """The camera lacks the service or setting asked for."""


class OnvifParseError(OnvifError):
    """The camera answered something that is not the expected ONVIF document."""


class OnvifFaultError(OnvifError):
    """A SOAP fault other than an authentication failure."""

    def __init__(
        self,
        operation: str,
        *,
        code: str | None,
        subcodes: tuple[str, ...],
        reason: str | None,
    ) -> None:
        """Initialize from the fault's code, subcodes (local names) and reason."""
        detail = "/".join(subcodes) or code or "no code"
        super().__init__(f"{operation}: SOAP fault {detail}: {reason or 'no reason'}")
        self.operation = operation
        self.code = code
        self.subcodes = subcodes
        self.reason = reason

    @property
    def subcode(self) -> str | None:
        """The most specific subcode, e.g. ``ConfigModify`` or ``ActionNotSupported``."""
        return self.subcodes[-1] if self.subcodes else None


class OnvifUploadError(OnvifError):
    """The firmware upload was answered with an HTTP error status."""

    def __init__(self, status: int, body: str) -> None:
        """Initialize with the HTTP status and the start of the answer."""
        super().__init__(f"firmware upload refused: HTTP {status} {body}".strip())
        self.status = status
        self.body = body


def _local_name(value: Any) -> str:
    """Return the local part of a QName (lxml QName, ``{ns}name`` or ``p:name``)."""
    text = str(getattr(value, "localname", None) or value)
    return text.rpartition("}")[2].rpartition(":")[2]


def _fault_error(fault: Fault, operation: str) -> OnvifFaultError:
    subcodes = tuple(_local_name(code) for code in fault.subcodes or ())
    return OnvifFaultError(
        operation,
        code=_local_name(fault.code) if fault.code else None,
        subcodes=subcodes,
        reason=fault.message or None,
    )


def _soap_error(err: Fault | TransportError, operation: str) -> OnvifError:
    if isinstance(err, Fault):
        if onvif_util.is_auth_error(err):
            return OnvifAuthError(
                f"{operation}: {onvif_util.stringify_onvif_error(err)}"
            )
        return _fault_error(err, operation)
    if err.status_code in _AUTH_HTTP_STATUSES:
        return OnvifAuthError(f"{operation}: HTTP {err.status_code}")
    if err.status_code == 200:  # noqa: PLR2004 - a 200 answer zeep could not parse
        return OnvifParseError(f"{operation}: {err.message}")
    return OnvifConnectionError(f"{operation}: HTTP {err.status_code}")


#: Exception types (checked in order) → the typed error they become.
_ERROR_TYPES: Final[
    tuple[tuple[tuple[type[BaseException], ...], type[OnvifError]], ...]
] = (
    ((onvif_exceptions.ONVIFAuthError,), OnvifAuthError),
    ((TimeoutError, onvif_exceptions.ONVIFTimeoutError), OnvifTimeoutError),
    ((aiohttp.ClientError, OSError), OnvifConnectionError),
    ((ZeepError,), OnvifParseError),
    ((onvif_exceptions.ONVIFError,), OnvifError),
    # What zeep and the library raise on answers that are SOAP but not the expected
    # document (an empty Body, a missing element, a number that is not one).
    ((AttributeError, TypeError, LookupError, ValueError), OnvifParseError),
)


def translate_error(err: BaseException, operation: str) -> OnvifError | None:
    """Map a library, zeep or aiohttp exception to a typed error (None: a bug)."""
    if isinstance(err, OnvifError):
        return err
    if isinstance(err, (Fault, TransportError)):
        return _soap_error(err, operation)
    for types, error_type in _ERROR_TYPES:
        if isinstance(err, types):
            return error_type(f"{operation}: {type(err).__name__} {err}".strip())
    return None


# ---------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class DeviceInformation:
    """GetDeviceInformation."""

    manufacturer: str | None
    model: str | None
    firmware_version: str | None
    serial_number: str | None
    hardware_id: str | None


@dataclass(frozen=True, slots=True)
class NetworkInterface:
    """One entry of GetNetworkInterfaces."""

    token: str | None
    enabled: bool
    name: str | None
    mac_address: str | None
    """Lower case, colon separated; None when absent or not a MAC address."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """A video resolution; ``str()`` spells it ``WxH``."""

    width: int
    height: int

    def __str__(self) -> str:
        """Return ``1920x1080``."""
        return f"{self.width}x{self.height}"

    @classmethod
    def parse(cls, value: str) -> Resolution:
        """Parse ``1920x1080`` (also ``1920X1080``, ``1920*1080``)."""
        match = re.fullmatch(r"\s*(\d{1,5})\s*[xX*]\s*(\d{1,5})\s*", value)
        if match is None:
            raise ValueError(f"not a resolution (WxH): {value!r}")
        return cls(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive numeric range from the camera's options."""

    minimum: float
    maximum: float

    def __contains__(self, value: object) -> bool:
        """Return whether ``value`` (a number) lies within the range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self.minimum <= value <= self.maximum


@dataclass(frozen=True, slots=True)
class VideoEncoderConfiguration:
    """A video encoder configuration (media ver10)."""

    token: str
    name: str | None
    encoding: str | None
    """``H264``, ``JPEG`` or ``MPEG4`` (media ver10 knows no H.265)."""
    resolution: Resolution | None
    fps: int | None
    """RateControl FrameRateLimit."""
    bitrate_kbps: int | None
    """RateControl BitrateLimit."""
    gov_length: int | None
    """GovLength of the H264 (or MPEG4) settings."""
    quality: float | None
    encoding_interval: int | None
    codec_profile: str | None
    """H264Profile (or Mpeg4Profile)."""


@dataclass(frozen=True, slots=True)
class MediaProfile:
    """A media profile and its video encoder configuration, if any."""

    token: str
    name: str | None
    video_source_token: str | None
    video_encoder: VideoEncoderConfiguration | None


@dataclass(frozen=True, slots=True)
class EncodingOptions:
    """What one encoding allows (GetVideoEncoderConfigurationOptions)."""

    encoding: str
    resolutions: tuple[Resolution, ...]
    fps_range: Range | None
    gov_length_range: Range | None
    bitrate_range: Range | None
    """From the options' Extension; None when the camera does not say."""
    encoding_interval_range: Range | None
    codec_profiles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VideoEncoderOptions:
    """GetVideoEncoderConfigurationOptions."""

    quality_range: Range | None
    encodings: tuple[EncodingOptions, ...]

    def get(self, encoding: str) -> EncodingOptions | None:
        """Return the options of ``encoding`` (``H264``...), if the camera has it."""
        return next((o for o in self.encodings if o.encoding == encoding), None)


@dataclass(frozen=True, slots=True)
class EncoderChanges:
    """Values to set on a video encoder configuration; None leaves a value alone."""

    encoding: str | None = None
    resolution: Resolution | None = None
    fps: int | None = None
    bitrate_kbps: int | None = None
    gov_length: int | None = None
    quality: float | None = None

    def is_empty(self) -> bool:
        """Return whether nothing would change."""
        return all(getattr(self, f.name) is None for f in fields(self))


@dataclass(frozen=True, slots=True)
class ImagingSettings:
    """Imaging settings of a video source. A field the camera does not report is None.

    Used both for what GetImagingSettings reports and for the values to set (None:
    leave alone).
    """

    brightness: float | None = None
    contrast: float | None = None
    saturation: float | None = None
    """ColorSaturation."""
    sharpness: float | None = None
    ir_cut_filter: str | None = None
    """``ON``, ``OFF`` or ``AUTO``."""
    wide_dynamic_range: str | None = None
    """WideDynamicRange Mode: ``ON`` or ``OFF``."""
    wide_dynamic_range_level: float | None = None
    backlight_compensation: str | None = None
    """BacklightCompensation Mode: ``ON`` or ``OFF``."""
    backlight_compensation_level: float | None = None
    exposure_mode: str | None = None
    """Exposure Mode: ``AUTO`` or ``MANUAL``."""

    def reported(self) -> dict[str, float | str]:
        """Return the fields that are present, by field name."""
        return {
            f.name: value
            for f in fields(self)
            if (value := getattr(self, f.name)) is not None
        }


@dataclass(frozen=True, slots=True)
class ImagingOptions:
    """Imaging GetOptions: ranges and allowed modes (absent ones stay None/empty)."""

    brightness: Range | None = None
    contrast: Range | None = None
    saturation: Range | None = None
    sharpness: Range | None = None
    ir_cut_filter_modes: tuple[str, ...] = ()
    wide_dynamic_range_modes: tuple[str, ...] = ()
    wide_dynamic_range_level: Range | None = None
    backlight_compensation_modes: tuple[str, ...] = ()
    backlight_compensation_level: Range | None = None
    exposure_modes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FirmwareUpgradeTicket:
    """StartFirmwareUpgrade: where and when to POST the firmware file."""

    upload_uri: str
    upload_delay: float
    """Seconds to wait before the POST."""
    expected_down_time: float | None
    """Seconds the camera expects to be offline after the upload."""


@dataclass(frozen=True, slots=True)
class DiscoveredCamera:
    """A WS-Discovery ProbeMatch."""

    endpoint_reference: str
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...]
    """Scope URIs (the WSDiscovery parser already turns ``%20`` into spaces)."""
    host: str | None
    """Host of the first HTTP(S) XAddr."""
    port: int
    name: str | None
    """From the ``onvif://www.onvif.org/name/`` scope, unquoted."""
    hardware: str | None
    """From the ``onvif://www.onvif.org/hardware/`` scope, unquoted."""
    mac_address: str | None
    """From an ``onvif://www.onvif.org/MAC/`` scope, if the camera sends one."""


# ---------------------------------------------------------------------- parsing


def _field(obj: Any, name: str) -> Any:
    """Return a child of a zeep object (or mapping), None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _str(obj: Any, name: str) -> str | None:
    value = _field(obj, name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except ValueError, TypeError, OverflowError:
        return None


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except ValueError, TypeError:
        return None


def _range(obj: Any) -> Range | None:
    low, high = _float(_field(obj, "Min")), _float(_field(obj, "Max"))
    if low is None or high is None:
        return None
    return Range(low, high)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(str(item).strip() for item in items if str(item).strip())


def _seconds(value: Any) -> float | None:
    """Return an xs:duration (timedelta or isodate Duration) in seconds."""
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    to_timedelta = getattr(value, "totimedelta", None)
    if callable(to_timedelta):
        delta = to_timedelta(start=dt.datetime.now(dt.UTC))
        return float(delta.total_seconds())
    return None


def normalize_mac(value: str | None) -> str | None:
    """Return ``aa:bb:cc:dd:ee:ff`` for any common MAC spelling; None if not one."""
    if not value:
        return None
    digits = re.sub(r"[\s:.\-]", "", value).lower()
    if not _MAC_RE.fullmatch(digits) or digits == "0" * 12:
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def parse_device_information(result: Any) -> DeviceInformation:
    """Read a GetDeviceInformation answer."""
    return DeviceInformation(
        manufacturer=_str(result, "Manufacturer"),
        model=_str(result, "Model"),
        firmware_version=_str(result, "FirmwareVersion"),
        serial_number=_str(result, "SerialNumber"),
        hardware_id=_str(result, "HardwareId"),
    )


def parse_network_interfaces(result: Any) -> tuple[NetworkInterface, ...]:
    """Read a GetNetworkInterfaces answer."""
    interfaces = result if isinstance(result, (list, tuple)) else [result]
    return tuple(
        NetworkInterface(
            token=_str(item, "token"),
            enabled=bool(_field(item, "Enabled")),
            name=_str(_field(item, "Info"), "Name"),
            mac_address=normalize_mac(_str(_field(item, "Info"), "HwAddress")),
        )
        for item in interfaces
        if item is not None
    )


def mac_from_interfaces(interfaces: Iterable[NetworkInterface]) -> str | None:
    """Return the MAC of the last enabled interface (as Home Assistant core does).

    Some cameras list a dummy interface first with the same MAC on every unit.
    """
    mac = None
    for interface in interfaces:
        if interface.enabled and interface.mac_address:
            mac = interface.mac_address
    return mac


def parse_video_encoder_configuration(config: Any) -> VideoEncoderConfiguration:
    """Read a VideoEncoderConfiguration (media ver10)."""
    resolution = _field(config, "Resolution")
    width, height = (
        _int(_field(resolution, "Width")),
        _int(_field(resolution, "Height")),
    )
    rate = _field(config, "RateControl")
    encoding = _str(config, "Encoding")
    codec = _field(config, encoding) if encoding in _GOV_CODECS else None
    if codec is None:
        codec = _field(config, "H264") or _field(config, "MPEG4")
    profile = _str(codec, "H264Profile") or _str(codec, "Mpeg4Profile")
    return VideoEncoderConfiguration(
        token=_str(config, "token") or "",
        name=_str(config, "Name"),
        encoding=encoding,
        resolution=Resolution(width, height) if width and height else None,
        fps=_int(_field(rate, "FrameRateLimit")),
        bitrate_kbps=_int(_field(rate, "BitrateLimit")),
        gov_length=_int(_field(codec, "GovLength")),
        quality=_float(_field(config, "Quality")),
        encoding_interval=_int(_field(rate, "EncodingInterval")),
        codec_profile=profile,
    )


def parse_profiles(result: Any) -> tuple[MediaProfile, ...]:
    """Read a GetProfiles answer."""
    profiles = result if isinstance(result, (list, tuple)) else [result]
    parsed: list[MediaProfile] = []
    for profile in profiles:
        if profile is None:
            continue
        encoder = _field(profile, "VideoEncoderConfiguration")
        parsed.append(
            MediaProfile(
                token=_str(profile, "token") or "",
                name=_str(profile, "Name"),
                video_source_token=_str(
                    _field(profile, "VideoSourceConfiguration"), "SourceToken"
                ),
                video_encoder=(
                    parse_video_encoder_configuration(encoder)
                    if encoder is not None
                    else None
                ),
            )
        )
    return tuple(parsed)


def _extension_bitrates(extension: Any) -> dict[str, Range]:
    """BitrateRange per encoding from the options' Extension.

    zeep puts the Extension's children in its leading ``xs:any`` (``_value_1``, raw
    lxml elements) rather than in the typed JPEG/MPEG4/H264 fields, so both are read.
    """
    ranges: dict[str, Range] = {}
    for encoding in _ENCODINGS:
        found = _range(_field(_field(extension, encoding), "BitrateRange"))
        if found is not None:
            ranges[encoding] = found
    for element in _field(extension, "_value_1") or ():
        encoding = _local_name(getattr(element, "tag", ""))
        if encoding not in _ENCODINGS or encoding in ranges:
            continue
        low = _float(element.findtext("{*}BitrateRange/{*}Min"))
        high = _float(element.findtext("{*}BitrateRange/{*}Max"))
        if low is not None and high is not None:
            ranges[encoding] = Range(low, high)
    return ranges


def parse_video_encoder_options(result: Any) -> VideoEncoderOptions:
    """Read a GetVideoEncoderConfigurationOptions answer (media ver10)."""
    bitrates = _extension_bitrates(_field(result, "Extension"))
    encodings: list[EncodingOptions] = []
    for encoding in _ENCODINGS:
        options = _field(result, encoding)
        if options is None:
            continue
        resolutions = tuple(
            Resolution(width, height)
            for item in _field(options, "ResolutionsAvailable") or ()
            if (width := _int(_field(item, "Width")))
            and (height := _int(_field(item, "Height")))
        )
        encodings.append(
            EncodingOptions(
                encoding=encoding,
                resolutions=resolutions,
                fps_range=_range(_field(options, "FrameRateRange")),
                gov_length_range=_range(_field(options, "GovLengthRange")),
                bitrate_range=bitrates.get(encoding),
                encoding_interval_range=_range(
                    _field(options, "EncodingIntervalRange")
                ),
                codec_profiles=_strings(
                    _field(options, "H264ProfilesSupported")
                    or _field(options, "Mpeg4ProfilesSupported")
                ),
            )
        )
    return VideoEncoderOptions(
        quality_range=_range(_field(result, "QualityRange")),
        encodings=tuple(encodings),
    )


def parse_imaging_settings(result: Any) -> ImagingSettings:
    """Read GetImagingSettings; what the camera does not report stays None."""
    wdr = _field(result, "WideDynamicRange")
    blc = _field(result, "BacklightCompensation")
    return ImagingSettings(
        brightness=_float(_field(result, "Brightness")),
        contrast=_float(_field(result, "Contrast")),
        saturation=_float(_field(result, "ColorSaturation")),
        sharpness=_float(_field(result, "Sharpness")),
        ir_cut_filter=_str(result, "IrCutFilter"),
        wide_dynamic_range=_str(wdr, "Mode"),
        wide_dynamic_range_level=_float(_field(wdr, "Level")),
        backlight_compensation=_str(blc, "Mode"),
        backlight_compensation_level=_float(_field(blc, "Level")),
        exposure_mode=_str(_field(result, "Exposure"), "Mode"),
    )


def parse_imaging_options(result: Any) -> ImagingOptions:
    """Read imaging GetOptions."""
    wdr = _field(result, "WideDynamicRange")
    blc = _field(result, "BacklightCompensation")
    return ImagingOptions(
        brightness=_range(_field(result, "Brightness")),
        contrast=_range(_field(result, "Contrast")),
        saturation=_range(_field(result, "ColorSaturation")),
        sharpness=_range(_field(result, "Sharpness")),
        ir_cut_filter_modes=_strings(_field(result, "IrCutFilterModes")),
        wide_dynamic_range_modes=_strings(_field(wdr, "Mode")),
        wide_dynamic_range_level=_range(_field(wdr, "Level")),
        backlight_compensation_modes=_strings(_field(blc, "Mode")),
        backlight_compensation_level=_range(_field(blc, "Level")),
        exposure_modes=_strings(_field(_field(result, "Exposure"), "Mode")),
    )


def apply_encoder_changes(
    config: Mapping[str, Any], changes: EncoderChanges
) -> dict[str, Any]:
    """Return a copy of a (serialised) configuration with ``changes`` applied."""
    new = copy.deepcopy(dict(config))
    if changes.encoding is not None:
        new["Encoding"] = changes.encoding
    if changes.resolution is not None:
        new["Resolution"] = {
            "Width": changes.resolution.width,
            "Height": changes.resolution.height,
        }
    if changes.quality is not None:
        new["Quality"] = float(changes.quality)
    _apply_rate_control(new, changes)
    _apply_gov_length(new, changes)
    return new


def _apply_rate_control(config: dict[str, Any], changes: EncoderChanges) -> None:
    if changes.fps is None and changes.bitrate_kbps is None:
        return
    rate = config.get("RateControl")
    if not isinstance(rate, dict):
        raise OnvifNotSupportedError(
            "the configuration has no RateControl to set fps or bitrate on"
        )
    if changes.fps is not None:
        rate["FrameRateLimit"] = int(changes.fps)
    if changes.bitrate_kbps is not None:
        rate["BitrateLimit"] = int(changes.bitrate_kbps)


def _apply_gov_length(config: dict[str, Any], changes: EncoderChanges) -> None:
    """Set the GOV length; give a codec switched to H264/MPEG4 its settings."""
    encoding = config.get("Encoding")
    if encoding not in _GOV_CODECS:
        if changes.gov_length is not None:
            raise OnvifNotSupportedError(f"{encoding} has no GOV length")
        return
    codec = config.get(encoding)
    if not isinstance(codec, dict):
        codec = {
            "GovLength": _DEFAULT_GOV_LENGTH,
            _GOV_CODECS[encoding]: _DEFAULT_CODEC_PROFILE[encoding],
        }
        config[encoding] = codec
    if changes.gov_length is not None:
        codec["GovLength"] = int(changes.gov_length)


def apply_imaging_changes(
    settings: Mapping[str, Any], changes: ImagingSettings
) -> dict[str, Any]:
    """Return a copy of (serialised) ImagingSettings20 with ``changes`` applied."""
    new = copy.deepcopy(dict(settings))
    for name, element in (
        ("brightness", "Brightness"),
        ("contrast", "Contrast"),
        ("saturation", "ColorSaturation"),
        ("sharpness", "Sharpness"),
    ):
        value = getattr(changes, name)
        if value is not None:
            new[element] = float(value)
    if changes.ir_cut_filter is not None:
        new["IrCutFilter"] = changes.ir_cut_filter
    for element, mode, level in (
        (
            "WideDynamicRange",
            changes.wide_dynamic_range,
            changes.wide_dynamic_range_level,
        ),
        (
            "BacklightCompensation",
            changes.backlight_compensation,
            changes.backlight_compensation_level,
        ),
    ):
        if mode is None and level is None:
            continue
        current = dict(new.get(element) or {})
        if mode is not None:
            current["Mode"] = mode
        if level is not None:
            current["Level"] = float(level)
        if not current.get("Mode"):
            raise OnvifNotSupportedError(f"{element} needs a mode to set its level")
        new[element] = current
    if changes.exposure_mode is not None:
        exposure = dict(new.get("Exposure") or {})
        exposure["Mode"] = changes.exposure_mode
        new["Exposure"] = exposure
    return new


def _plain(value: Any) -> dict[str, Any]:
    """Serialise a zeep object into plain nested dicts."""
    result = ONVIFService.to_dict(value)
    return _dicts(result) if isinstance(result, Mapping) else {}


def _dicts(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _dicts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dicts(item) for item in value]
    return value


# ---------------------------------------------------------------------- client


def _require_service(camera: Any, name: str) -> None:
    """Raise `OnvifNotSupportedError` unless update_xaddrs found service ``name``."""
    if _SERVICE_NAMESPACES[name] not in camera.xaddrs:
        raise OnvifNotSupportedError(f"the camera has no {name} service")


class OnvifClient:
    """One ONVIF camera (device management, media ver10, imaging ver20)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        password: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Initialize; no I/O until `connect()` (or the first call)."""
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._camera: Any = None
        self._services: dict[str, Any] = {}
        self._generation = 0
        self._authenticated = False

    @property
    def host(self) -> str:
        """Return the camera's host."""
        return self._host

    @property
    def port(self) -> int:
        """Return the camera's port."""
        return self._port

    @property
    def connected(self) -> bool:
        """Return whether the services are set up."""
        return self._camera is not None

    @property
    def clock_offset(self) -> float | None:
        """Seconds the camera's clock is ahead of ours (None: not measured)."""
        diff = getattr(self._camera, "dt_diff", None)
        return diff.total_seconds() if isinstance(diff, dt.timedelta) else None

    @property
    def xaddrs(self) -> Mapping[str, str]:
        """Service namespace → XAddr, as `update_xaddrs` found them."""
        return dict(getattr(self._camera, "xaddrs", None) or {})

    async def __aenter__(self) -> Self:
        """Connect."""
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close."""
        await self.close()

    async def connect(self) -> None:
        """Read the clock offset, find the services and create them (idempotent)."""
        async with self._lock:
            if self._camera is None:
                await self._connect()

    async def close(self) -> None:
        """Close every service session (idempotent)."""
        camera, self._camera = self._camera, None
        self._services = {}
        if camera is not None:
            await camera.close()

    async def _connect(self) -> None:
        try:
            try:
                await self._open(adjust_time=True)
            except AttributeError:
                # The library reads UTCDateTime; cameras that only report their
                # LocalDateTime make it fail. Go on without the clock correction.
                _LOGGER.debug(
                    "%s: no UTC time from GetSystemDateAndTime, clock offset unused",
                    self._host,
                )
                await self._open(adjust_time=False)
        except Exception as err:
            error = translate_error(err, "connect")
            if error is None:
                raise
            raise error from err

    async def _open(self, *, adjust_time: bool) -> None:
        camera = ONVIFCamera(
            self._host,
            self._port,
            self._username,
            self._password,
            WSDL_DIR,
            no_cache=True,
            adjust_time=adjust_time,
        )
        try:
            async with asyncio.timeout(self._timeout * 2):
                await camera.update_xaddrs()
                devicemgmt = await camera.create_devicemgmt_service()
                _require_service(camera, "media")
                media = await camera.create_media_service()
        except BaseException:
            await camera.close()
            raise
        self._camera = camera
        self._services = {"devicemgmt": devicemgmt, "media": media}
        self._generation += 1
        self._authenticated = False
        _LOGGER.debug(
            "%s: connected, clock offset %s s, services %s",
            self._host,
            self.clock_offset,
            sorted(camera.xaddrs),
        )

    async def _service(self, name: str) -> Any:
        await self.connect()
        service = self._services.get(name)
        if service is None:
            _require_service(self._camera, name)
            try:
                async with asyncio.timeout(self._timeout):
                    service = await self._camera.create_onvif_service(name)
            except Exception as err:
                error = translate_error(err, f"create {name} service")
                if error is None:
                    raise
                raise error from err
            self._services[name] = service
        return service

    async def _resync(self, generation: int) -> None:
        """Reconnect (measuring the clock offset again) unless another call did."""
        async with self._lock:
            if self._generation == generation:
                _LOGGER.debug("%s: authentication failed, reconnecting", self._host)
                await self.close()
                await self._connect()

    async def call(
        self, service: str, operation: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        """Call ``operation`` on ``service`` (devicemgmt, media, imaging); typed errors.

        An authentication failure on a client that has authenticated before
        reconnects once (the camera's clock may have jumped) and retries.
        """
        retried = False
        while True:
            generation = self._generation
            handler = getattr(await self._service(service), operation)
            try:
                async with asyncio.timeout(self._timeout):
                    result = await handler(dict(params) if params else None)
            except Exception as err:
                error = translate_error(err, operation)
                if error is None:
                    raise
                if (
                    isinstance(error, OnvifAuthError)
                    and self._authenticated
                    and not retried
                ):
                    retried = True
                    await self._resync(generation)
                    continue
                raise error from err
            self._authenticated = True
            return result

    # ------------------------------------------------------------------ device

    async def get_device_information(self) -> DeviceInformation:
        """GetDeviceInformation."""
        return parse_device_information(
            await self.call("devicemgmt", "GetDeviceInformation")
        )

    async def get_network_interfaces(self) -> tuple[NetworkInterface, ...]:
        """GetNetworkInterfaces."""
        return parse_network_interfaces(
            await self.call("devicemgmt", "GetNetworkInterfaces")
        )

    async def get_mac_address(self) -> str | None:
        """Return the last enabled interface's MAC address (lower case, colons)."""
        return mac_from_interfaces(await self.get_network_interfaces())

    async def system_reboot(self) -> str | None:
        """SystemReboot; return the camera's message."""
        result = await self.call("devicemgmt", "SystemReboot")
        if isinstance(result, str):
            return result.strip() or None
        return _str(result, "Message")

    async def start_firmware_upgrade(self) -> FirmwareUpgradeTicket:
        """StartFirmwareUpgrade: where to POST the file, how long to wait."""
        result = await self.call("devicemgmt", "StartFirmwareUpgrade")
        uri = _str(result, "UploadUri")
        if uri is None:
            raise OnvifParseError("StartFirmwareUpgrade: no UploadUri")
        base = self.xaddrs.get(NS_DEVICE) or f"http://{self._host}:{self._port}/"
        return FirmwareUpgradeTicket(
            upload_uri=urljoin(base, uri),
            upload_delay=max(0.0, _seconds(_field(result, "UploadDelay")) or 0.0),
            expected_down_time=_seconds(_field(result, "ExpectedDownTime")),
        )

    # ------------------------------------------------------------------ media

    async def get_profiles(self) -> tuple[MediaProfile, ...]:
        """GetProfiles, with each profile's video encoder configuration."""
        return parse_profiles(await self.call("media", "GetProfiles"))

    async def get_video_encoder_configuration(
        self, token: str
    ) -> VideoEncoderConfiguration:
        """GetVideoEncoderConfiguration."""
        return parse_video_encoder_configuration(
            await self.call(
                "media", "GetVideoEncoderConfiguration", {"ConfigurationToken": token}
            )
        )

    async def get_video_encoder_configurations(
        self,
    ) -> tuple[VideoEncoderConfiguration, ...]:
        """GetVideoEncoderConfigurations."""
        result = await self.call("media", "GetVideoEncoderConfigurations")
        return tuple(
            parse_video_encoder_configuration(item)
            for item in result or ()
            if item is not None
        )

    async def get_video_encoder_options(
        self, configuration_token: str, profile_token: str | None = None
    ) -> VideoEncoderOptions:
        """GetVideoEncoderConfigurationOptions for a configuration (and profile)."""
        params = {"ConfigurationToken": configuration_token}
        if profile_token is not None:
            params["ProfileToken"] = profile_token
        return parse_video_encoder_options(
            await self.call("media", "GetVideoEncoderConfigurationOptions", params)
        )

    async def set_video_encoder_configuration(
        self, token: str, changes: EncoderChanges
    ) -> None:
        """Apply ``changes`` (read, modify, SetVideoEncoderConfiguration persisted).

        Nothing is sent when ``changes`` is empty. The camera's answer only says it
        accepted the request; read the configuration back to see what it applied.
        """
        if changes.is_empty():
            return
        current = await self.call(
            "media", "GetVideoEncoderConfiguration", {"ConfigurationToken": token}
        )
        config = apply_encoder_changes(_plain(current), changes)
        await self.call(
            "media",
            "SetVideoEncoderConfiguration",
            {"Configuration": config, "ForcePersistence": True},
        )

    # ------------------------------------------------------------------ imaging

    async def get_imaging_settings(self, video_source_token: str) -> ImagingSettings:
        """GetImagingSettings of a video source."""
        return parse_imaging_settings(
            await self.call(
                "imaging",
                "GetImagingSettings",
                {"VideoSourceToken": video_source_token},
            )
        )

    async def get_imaging_options(self, video_source_token: str) -> ImagingOptions:
        """Imaging GetOptions of a video source."""
        return parse_imaging_options(
            await self.call(
                "imaging", "GetOptions", {"VideoSourceToken": video_source_token}
            )
        )

    async def set_imaging_settings(
        self, video_source_token: str, changes: ImagingSettings
    ) -> None:
        """Apply ``changes`` (read, modify, SetImagingSettings persisted).

        Nothing is sent when ``changes`` has no field set. Read back to verify.
        """
        if not changes.reported():
            return
        source = {"VideoSourceToken": video_source_token}
        current = await self.call("imaging", "GetImagingSettings", source)
        settings = apply_imaging_changes(_plain(current), changes)
        await self.call(
            "imaging",
            "SetImagingSettings",
            {**source, "ImagingSettings": settings, "ForcePersistence": True},
        )


# ---------------------------------------------------------------------- upload


async def upload_firmware(
    session: aiohttp.ClientSession,
    upload_uri: str,
    path: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    upload_timeout: float = UPLOAD_TIMEOUT,
    chunk_bytes: int = UPLOAD_CHUNK_BYTES,
) -> None:
    """POST a firmware file to an UploadUri as ``application/octet-stream``.

    The file is streamed in ``chunk_bytes`` pieces read in the executor (never read
    whole into memory) with a Content-Length. ``progress(sent, total)`` is called as
    the bytes go out. Raises `OnvifUploadError` for an HTTP error status,
    `OnvifTimeoutError` / `OnvifConnectionError` for the transport, OSError when the
    file cannot be read.
    """
    loop = asyncio.get_running_loop()
    handle = await loop.run_in_executor(None, path.open, "rb")
    try:
        size = (await loop.run_in_executor(None, os.fstat, handle.fileno())).st_size

        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            while chunk := await loop.run_in_executor(None, handle.read, chunk_bytes):
                yield chunk
                sent += len(chunk)
                if progress is not None:
                    progress(sent, size)

        headers = {
            hdrs.CONTENT_TYPE: "application/octet-stream",
            hdrs.CONTENT_LENGTH: str(size),
        }
        try:
            async with session.post(
                upload_uri,
                data=chunks(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=upload_timeout),
            ) as response:
                if response.status >= 300:  # noqa: PLR2004
                    body = await response.content.read(512)
                    raise OnvifUploadError(
                        response.status, body.decode("utf-8", "replace").strip()
                    )
        except TimeoutError as err:
            raise OnvifTimeoutError("firmware upload: timed out") from err
        except aiohttp.ClientError as err:
            raise OnvifConnectionError(
                f"firmware upload: {type(err).__name__}: {err}"
            ) from err
    finally:
        await loop.run_in_executor(None, handle.close)


# ---------------------------------------------------------------------- discovery


def _scope_value(scopes: Iterable[str], prefix: str) -> str | None:
    for scope in scopes:
        if scope.lower().startswith(prefix.lower()):
            value = unquote(scope[len(prefix) :]).strip().strip("/")
            if value:
                return value
    return None


def parse_discovered(
    endpoint_reference: str, xaddrs: Iterable[str], scopes: Iterable[str]
) -> DiscoveredCamera:
    """Build a `DiscoveredCamera` from a ProbeMatch's EPR, XAddrs and scopes."""
    addresses = tuple(x for x in xaddrs if x)
    scope_list = tuple(s for s in scopes if s)
    host: str | None = None
    port = 80
    for xaddr in addresses:
        url = urlsplit(xaddr)
        if url.scheme in {"http", "https"} and url.hostname:
            host = url.hostname
            port = url.port or (443 if url.scheme == "https" else 80)
            break
    return DiscoveredCamera(
        endpoint_reference=endpoint_reference,
        xaddrs=addresses,
        scopes=scope_list,
        host=host,
        port=port,
        name=_scope_value(scope_list, SCOPE_NAME),
        hardware=_scope_value(scope_list, SCOPE_HARDWARE),
        mac_address=normalize_mac(_scope_value(scope_list, SCOPE_MAC)),
    )


def _from_match(match: Any) -> DiscoveredCamera:
    return parse_discovered(
        str(match.getEPR()),
        [str(x) for x in match.getXAddrs() or ()],
        [str(scope.getValue()) for scope in match.getScopes() or ()],
    )


def _nvt_type() -> Any:
    return QName(NS_NETWORK, "NetworkVideoTransmitter", "dn")


def _multicast_probe(timeout: float) -> list[Any]:
    """Home Assistant core's probe: WSDiscovery threads, multicast on every interface."""
    discovery = WSDiscovery(ttl=4, relates_to=True)
    try:
        discovery.start()
        return list(discovery.searchServices(types=[_nvt_type()], timeout=timeout))
    finally:
        discovery.stop()


def _unicast_probe(address: str, port: int, timeout: float) -> list[Any]:
    """Send one Probe to ``address:port`` over unicast UDP; return its ProbeMatches."""
    probe = wsd_actions.constructProbe([_nvt_type()], [])
    payload = wsd_message.createSOAPMessage(probe).encode()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    matches: dict[str, Any] = {}
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, (address, port))
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                data, peer = sock.recvfrom(0xFFFF)
            except TimeoutError:
                break
            answer = wsd_message.parseSOAPMessage(data, peer[0])
            if (
                answer is None
                or answer.getAction() != wsd_actions.NS_ACTION_PROBE_MATCH
                or answer.getRelatesTo() != probe.getMessageId()
            ):
                continue
            for match in answer.getProbeResolveMatches():
                matches[str(match.getEPR())] = match
            break  # a directed probe has one responder, which answers once
    return list(matches.values())


def discover_cameras(
    *,
    timeout: float = DISCOVERY_TIMEOUT,
    address: str | None = None,
    port: int = DISCOVERY_PORT,
) -> list[DiscoveredCamera]:
    """Find ONVIF cameras (NetworkVideoTransmitter) by WS-Discovery. Blocking.

    ``address`` sends a directed unicast probe to ``address:port`` instead of the
    multicast probe (never multicast then). Raises `OnvifConnectionError` when the
    socket fails.
    """
    try:
        if address is None:
            found = _multicast_probe(timeout)
        else:
            found = _unicast_probe(address, port, timeout)
    except OSError as err:
        raise OnvifConnectionError(f"WS-Discovery: {err}") from err
    cameras: dict[str, DiscoveredCamera] = {}
    for match in found:
        camera = _from_match(match)
        cameras.setdefault(camera.endpoint_reference, camera)
    return list(cameras.values())
