"""ONVIF cameras: firmware version, stream and imaging settings, reboot, firmware file.

No Home Assistant imports. ONVIF has no online firmware check: the installed version
is the only version (`latest_version` equals it, so no false update is shown), and a
new firmware arrives as a file the user uploads (`async_install_file`):

    GetDeviceInformation (the version before) → StartFirmwareUpgrade → wait UploadDelay
    → POST the file to UploadUri → wait ExpectedDownTime, polling until the camera
    answers → verify GetDeviceInformation's FirmwareVersion changed

Settings are applied and verified: the request is checked against what the camera
offers (GetVideoEncoderConfigurationOptions, imaging GetOptions) before anything is
sent (`InvalidRequestError`, nothing sent), set with ForcePersistence, read back and
compared; what the camera did not take is reported in `mismatches`, not raised.

A steady-state refresh is one SOAP call, GetDeviceInformation (the firmware version,
and whether the camera answers). The settings are read at the options' check interval
(there is no firmware check to run then), after the camera was unreachable, and read
back by the actions: GetVideoEncoderConfigurations (every encoder at once) and
GetImagingSettings per video source, 3 calls for a single-sensor camera. The profiles
(which encoder and video source each uses) are read once, at setup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import asdict, dataclass, fields
import logging
from pathlib import Path
import time
from typing import Any, Final

import aiohttp

from ...core.backend import (
    BackendError,
    DeviceAuthError,
    DeviceConnectionError,
    DeviceResponseError,
    FirmwareBackend,
    InstallError,
    InstallRefusedError,
    InvalidRequestError,
    Publish,
)
from ...core.models import DeviceIdentity, FirmwareState, Phase
from .protocol.client import (
    DeviceInformation,
    EncoderChanges,
    ImagingOptions,
    ImagingSettings,
    MediaProfile,
    OnvifAuthError,
    OnvifClient,
    OnvifConnectionError,
    OnvifError,
    OnvifFaultError,
    OnvifNotSupportedError,
    OnvifUploadError,
    Range,
    Resolution,
    VideoEncoderConfiguration,
    VideoEncoderOptions,
    upload_firmware,
)

_LOGGER = logging.getLogger(__name__)

#: The settings `apply_stream_settings` takes, in the order they are reported.
STREAM_FIELDS: Final = ("resolution", "codec", "fps", "bitrate_kbps", "gov_length")
#: The settings `apply_imaging_settings` takes.
IMAGING_FIELDS: Final = (
    "brightness",
    "contrast",
    "saturation",
    "sharpness",
    "ir_cut_filter",
    "wide_dynamic_range",
    "backlight_compensation",
    "exposure_mode",
)
#: Imaging values shown as sensors (the settings and the levels of WDR and BLC).
IMAGING_VALUES: Final = tuple(f.name for f in fields(ImagingSettings))
_NUMERIC_IMAGING: Final = frozenset(
    {"brightness", "contrast", "saturation", "sharpness"}
)
#: Codecs with a GOV length (media ver10).
_GOV_CODECS: Final = frozenset({"H264", "MPEG4"})
_CODEC_ALIASES: Final = {
    "H.264": "H264",
    "AVC": "H264",
    "MPEG-4": "MPEG4",
    "MJPEG": "JPEG",
}
#: Two imaging values closer than this are the same (cameras answer with 2 decimals).
_IMAGING_TOLERANCE: Final = 0.005

# Install progress: upload 0-70 %, reboot 75-95 %, verification 99 %.
_UPLOAD_SPAN: Final = 70
_REBOOT_START: Final = 75
_REBOOT_END: Final = 95
_VERIFY: Final = 99


@dataclass(frozen=True, slots=True)
class OnvifTiming:
    """How the firmware install waits (seconds)."""

    poll_interval: float = 2.0
    #: How long past the camera's ExpectedDownTime to wait for it to come back.
    reboot_timeout: float = 10 * 60


#: The timing backends use unless given one (tests shorten it).
DEFAULT_TIMING = OnvifTiming()


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """What `apply_stream_settings` asks for; None leaves a setting alone."""

    profile_token: str | None = None
    """The media profile whose video encoder to change (None: the first one)."""
    resolution: str | None = None
    """``WIDTHxHEIGHT``."""
    codec: str | None = None
    fps: int | None = None
    bitrate_kbps: int | None = None
    gov_length: int | None = None


@dataclass(frozen=True, slots=True)
class ImagingRequest:
    """What `apply_imaging_settings` asks for; None leaves a setting alone."""

    profile_token: str | None = None
    """The media profile whose video source to change (None: the first one)."""
    brightness: float | None = None
    contrast: float | None = None
    saturation: float | None = None
    sharpness: float | None = None
    ir_cut_filter: str | None = None
    wide_dynamic_range: str | None = None
    backlight_compensation: str | None = None
    exposure_mode: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What an apply sent and what the camera reported back."""

    applied: Mapping[str, Any]
    """The settings sent, by field name."""
    mismatches: Mapping[str, Mapping[str, Any]]
    """Field → ``{"requested", "reported"}`` for each value the camera did not take."""

    @property
    def verified(self) -> bool:
        """Return whether the camera reports every value sent."""
        return not self.mismatches

    def as_response(self) -> dict[str, Any]:
        """Return the action's response: ``{applied, verified, mismatches}``."""
        return {
            "applied": dict(self.applied),
            "verified": self.verified,
            "mismatches": {key: dict(value) for key, value in self.mismatches.items()},
        }


@dataclass(frozen=True, slots=True)
class _Encoder:
    """A video encoder configuration some profile uses (learnt at setup)."""

    token: str
    label: str
    """The first profile's name (what video software shows), else the token."""
    profile_token: str
    video_source_token: str | None


def stream_values(config: VideoEncoderConfiguration) -> dict[str, Any]:
    """Return an encoder configuration's values by `STREAM_FIELDS` name."""
    return {
        "resolution": str(config.resolution) if config.resolution else None,
        "codec": config.encoding,
        "fps": config.fps,
        "bitrate_kbps": config.bitrate_kbps,
        "gov_length": config.gov_length,
    }


def normalize_codec(value: str) -> str:
    """Return the media ver10 encoding for ``h264``, ``H.264``, ``MJPEG``..."""
    codec = value.strip().upper()
    return _CODEC_ALIASES.get(codec, codec)


def _number(value: float) -> str:
    return f"{value:g}"


def _check_range(setting: str, value: float, allowed: Range | None) -> None:
    if allowed is not None and value not in allowed:
        raise InvalidRequestError(
            "setting_out_of_range",
            f"{setting} {_number(value)} is outside "
            f"{_number(allowed.minimum)}-{_number(allowed.maximum)}",
            setting=setting,
            value=_number(value),
            minimum=_number(allowed.minimum),
            maximum=_number(allowed.maximum),
        )


def _check_allowed(setting: str, value: str, allowed: tuple[str, ...]) -> None:
    if allowed and value not in allowed:
        raise InvalidRequestError(
            "setting_not_allowed",
            f"{setting} {value} is not one of {', '.join(allowed)}",
            setting=setting,
            value=value,
            allowed=", ".join(allowed),
        )


def _stream_wanted(request: StreamRequest) -> dict[str, Any]:
    """Return the requested stream settings, normalised (`STREAM_FIELDS` order)."""
    wanted: dict[str, Any] = {}
    if request.resolution is not None:
        try:
            wanted["resolution"] = str(Resolution.parse(request.resolution))
        except ValueError as err:
            raise InvalidRequestError(
                "invalid_resolution", str(err), value=request.resolution
            ) from err
    if request.codec is not None:
        wanted["codec"] = normalize_codec(request.codec)
    for name in ("fps", "bitrate_kbps", "gov_length"):
        if (value := getattr(request, name)) is not None:
            wanted[name] = int(value)
    if not wanted:
        raise InvalidRequestError("no_settings", "no setting to apply")
    return wanted


def _validate_stream(
    wanted: Mapping[str, Any], codec: str, all_options: VideoEncoderOptions
) -> None:
    """Check the request against the encoding's options (raise before any Set)."""
    options = all_options.get(codec)
    if options is None:
        raise InvalidRequestError(
            "setting_not_allowed",
            f"codec {codec} is not offered",
            setting="codec",
            value=codec,
            allowed=", ".join(item.encoding for item in all_options.encodings) or "-",
        )
    if "resolution" in wanted:
        _check_allowed(
            "resolution",
            wanted["resolution"],
            tuple(str(resolution) for resolution in options.resolutions),
        )
    if "fps" in wanted:
        _check_range("fps", wanted["fps"], options.fps_range)
    if "bitrate_kbps" in wanted:
        _check_range("bitrate_kbps", wanted["bitrate_kbps"], options.bitrate_range)
    if "gov_length" in wanted:
        if codec not in _GOV_CODECS:
            raise InvalidRequestError(
                "setting_not_for_codec",
                f"{codec} has no GOV length",
                setting="gov_length",
                codec=codec,
            )
        _check_range("gov_length", wanted["gov_length"], options.gov_length_range)


def _imaging_wanted(request: ImagingRequest) -> dict[str, Any]:
    wanted: dict[str, Any] = {}
    for name in IMAGING_FIELDS:
        value = getattr(request, name)
        if value is None:
            continue
        wanted[name] = (
            float(value) if name in _NUMERIC_IMAGING else str(value).strip().upper()
        )
    if not wanted:
        raise InvalidRequestError("no_settings", "no setting to apply")
    return wanted


def _validate_imaging(
    wanted: Mapping[str, Any], reported: Mapping[str, Any], options: ImagingOptions
) -> None:
    unsupported = [name for name in wanted if name not in reported]
    if unsupported:
        supported = [name for name in IMAGING_FIELDS if name in reported]
        raise InvalidRequestError(
            "setting_not_supported",
            f"the camera does not report {', '.join(unsupported)}",
            setting=", ".join(unsupported),
            supported=", ".join(supported) or "-",
        )
    modes = {
        "ir_cut_filter": options.ir_cut_filter_modes,
        "wide_dynamic_range": options.wide_dynamic_range_modes,
        "backlight_compensation": options.backlight_compensation_modes,
        "exposure_mode": options.exposure_modes,
    }
    for name, value in wanted.items():
        if name in _NUMERIC_IMAGING:
            _check_range(name, value, getattr(options, name))
        else:
            _check_allowed(name, value, tuple(m.upper() for m in modes[name]))


def _same(requested: Any, reported: Any) -> bool:
    if isinstance(requested, float) and isinstance(reported, (int, float)):
        return abs(requested - reported) < _IMAGING_TOLERANCE
    if isinstance(requested, str) and isinstance(reported, str):
        return requested.upper() == reported.upper()
    return bool(requested == reported)


def _mismatches(
    wanted: Mapping[str, Any], reported: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    return {
        name: {"requested": value, "reported": reported.get(name)}
        for name, value in wanted.items()
        if not _same(value, reported.get(name))
    }


class OnvifBackend(FirmwareBackend):
    """An ONVIF camera (device management, media ver10, imaging ver20)."""

    kind = "onvif"
    can_install = False  # no online offer: update.install has nothing to install
    can_check = False  # ONVIF has no firmware check
    can_restart = True
    can_install_file = True
    has_release_notes = False

    def __init__(
        self,
        client: OnvifClient,
        session: aiohttp.ClientSession,
        timing: OnvifTiming | None = None,
    ) -> None:
        """Initialize over an ONVIF client; `session` carries the firmware upload."""
        super().__init__()
        self._client = client
        self._session = session
        self._timing = timing or DEFAULT_TIMING
        self._info: DeviceInformation | None = None
        self._mac: str | None = None
        self._profiles: tuple[MediaProfile, ...] = ()
        self._encoders: dict[str, _Encoder] = {}
        #: Video sources whose imaging settings the camera reports.
        self._imaging_sources: tuple[str, ...] = ()
        #: Settings read at setup, used by the refresh right after it.
        self._probed: tuple[dict[str, Any], dict[str, Any]] | None = None
        #: Whether the next refresh must read the settings (after an outage).
        self._settings_stale = False

    @property
    def client(self) -> OnvifClient:
        """Return the ONVIF client."""
        return self._client

    async def _call[T](self, coro: Awaitable[T]) -> T:
        """Await a protocol call, turning protocol errors into backend errors."""
        try:
            return await coro
        except OnvifError as err:
            raise _backend_error(err) from err

    # ------------------------------------------------------------------ state

    async def async_probe(self) -> DeviceIdentity:
        """Identify the camera; read its profiles, encoders and imaging settings."""
        info = await self._read_info()
        try:
            self._mac = await self._client.get_mac_address()
        except (OnvifFaultError, OnvifNotSupportedError) as err:
            _LOGGER.debug(
                "No network interfaces (%s): the serial number identifies", err
            )
        except OnvifError as err:
            raise _backend_error(err) from err
        unique_id = self._mac or info.serial_number
        if not unique_id:
            raise DeviceResponseError(
                "the camera reports neither a MAC address nor a serial number"
            )
        self._profiles = await self._call(self._client.get_profiles())
        self._encoders = {}
        encoders: dict[str, Any] = {}
        for profile in self._profiles:
            config = profile.video_encoder
            if config is None or not config.token or config.token in self._encoders:
                continue
            self._encoders[config.token] = _Encoder(
                token=config.token,
                label=profile.name or config.name or config.token,
                profile_token=profile.token,
                video_source_token=profile.video_source_token,
            )
            encoders[config.token] = self._encoder_details(config)
        imaging = await self._probe_imaging()
        self._probed = (encoders, imaging)
        name = " ".join(part for part in (info.manufacturer, info.model) if part)
        return DeviceIdentity(
            unique_id=unique_id,
            manufacturer=info.manufacturer or "ONVIF",
            model=info.model or "ONVIF camera",
            name=name or "ONVIF camera",
            serial_number=info.serial_number,
            mac_address=self._mac,
            hw_version=info.hardware_id,
        )

    async def _probe_imaging(self) -> dict[str, Any]:
        """Read the imaging settings of every video source that has them."""
        sources = dict.fromkeys(
            profile.video_source_token
            for profile in self._profiles
            if profile.video_source_token
        )
        imaging: dict[str, Any] = {}
        for source in sources:
            try:
                settings = await self._client.get_imaging_settings(source)
            except OnvifNotSupportedError as err:
                _LOGGER.debug("No imaging service: %s", err)
                break
            except OnvifFaultError as err:
                _LOGGER.debug(
                    "No imaging settings for video source %s: %s", source, err
                )
                continue
            except OnvifError as err:
                raise _backend_error(err) from err
            imaging[source] = settings.reported()
        self._imaging_sources = tuple(imaging)
        return imaging

    async def _read_info(self) -> DeviceInformation:
        info = await self._call(self._client.get_device_information())
        self._info = info
        return info

    def _encoder_details(self, config: VideoEncoderConfiguration) -> dict[str, Any]:
        encoder = self._encoders[config.token]
        return {
            "label": encoder.label,
            "profile_token": encoder.profile_token,
            "video_source_token": encoder.video_source_token,
            "name": config.name,
            **stream_values(config),
            "quality": config.quality,
            "codec_profile": config.codec_profile,
        }

    async def async_refresh(self, *, check: bool) -> FirmwareState:
        """Read the firmware version (one SOAP call); the settings when due.

        ONVIF has no firmware check: the latest version is the installed one. The
        stream and imaging settings are read with `check` (every check interval),
        after the camera was unreachable (a reboot may have changed them) and right
        after setup; the actions update them as they read them back.
        """
        if self._probed is not None and self._info is not None:
            info = self._info
            encoders, imaging = self._probed
            self._probed = None
        else:
            try:
                info = await self._read_info()
            except DeviceConnectionError:
                self._settings_stale = True
                raise
            if not (check or self._settings_stale):
                return self._set_state(
                    self._state.evolve(
                        installed_version=info.firmware_version,
                        latest_version=info.firmware_version,
                    )
                )
            encoders, imaging = await self._read_settings()
        self._settings_stale = False
        return self._set_state(
            self._state.evolve(
                installed_version=info.firmware_version,
                latest_version=info.firmware_version,
                details={"encoders": encoders, "imaging": imaging},
            )
        )

    async def _read_settings(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read every encoder (one call) and each video source's imaging settings."""
        configs = await self._call(self._client.get_video_encoder_configurations())
        encoders = {
            config.token: self._encoder_details(config)
            for config in configs
            if config.token in self._encoders
        }
        imaging: dict[str, Any] = {}
        for source in self._imaging_sources:
            try:
                settings = await self._client.get_imaging_settings(source)
            except OnvifFaultError as err:
                _LOGGER.debug("Imaging settings of %s unavailable: %s", source, err)
                continue
            except OnvifError as err:
                raise _backend_error(err) from err
            imaging[source] = settings.reported()
        return encoders, imaging

    def _with_details(self, name: str, key: str, value: Any) -> None:
        details = dict(self._state.details)
        group = dict(details.get(name) or {})
        group[key] = value
        details[name] = group
        self._set_state(self._state.evolve(details=details))

    async def async_restart(self) -> None:
        """Reboot the camera (SystemReboot); read its settings once it is back."""
        await self._call(self._client.system_reboot())
        self._settings_stale = True

    async def async_install(
        self, version: str | None, publish: Publish
    ) -> FirmwareState:
        """Refuse: ONVIF offers no firmware; install a file instead."""
        raise InstallRefusedError("no_update", "ONVIF cameras offer no firmware")

    def diagnostics(self) -> Mapping[str, Any]:
        """Return what the camera reported (serial number and MAC are redacted)."""
        return {
            "device_information": asdict(self._info) if self._info else None,
            "mac_address": self._mac,
            "clock_offset_seconds": self._client.clock_offset,
            "services": sorted(self._client.xaddrs),
            "profiles": [asdict(profile) for profile in self._profiles],
            "imaging_sources": list(self._imaging_sources),
        }

    async def async_close(self) -> None:
        """Close the SOAP services' sessions."""
        await self._client.close()

    # ------------------------------------------------------------------ settings

    def _profile(self, token: str | None) -> MediaProfile:
        if token is None:
            if self._profiles:
                return self._profiles[0]
            raise InvalidRequestError(
                "unknown_profile",
                "the camera has no media profile",
                profile="-",
                profiles="-",
            )
        for profile in self._profiles:
            if profile.token == token:
                return profile
        raise InvalidRequestError(
            "unknown_profile",
            f"no media profile {token}",
            profile=token,
            profiles=", ".join(p.token for p in self._profiles) or "-",
        )

    async def async_apply_stream_settings(self, request: StreamRequest) -> ApplyResult:
        """Validate, set (persisted), read back and compare a video encoder's settings."""
        wanted = _stream_wanted(request)
        profile = self._profile(request.profile_token)
        if profile.video_encoder is None or not profile.video_encoder.token:
            raise InvalidRequestError(
                "profile_without_encoder",
                f"profile {profile.token} has no video encoder",
                profile=profile.token,
            )
        token = profile.video_encoder.token
        options = await self._call(
            self._client.get_video_encoder_options(token, profile.token)
        )
        current = await self._call(self._client.get_video_encoder_configuration(token))
        _validate_stream(wanted, wanted.get("codec") or current.encoding or "", options)
        changes = EncoderChanges(
            encoding=wanted.get("codec"),
            resolution=(
                Resolution.parse(wanted["resolution"])
                if "resolution" in wanted
                else None
            ),
            fps=wanted.get("fps"),
            bitrate_kbps=wanted.get("bitrate_kbps"),
            gov_length=wanted.get("gov_length"),
        )
        await self._set(self._client.set_video_encoder_configuration(token, changes))
        after = await self._call(self._client.get_video_encoder_configuration(token))
        if token in self._encoders:
            self._with_details("encoders", token, self._encoder_details(after))
        return ApplyResult(wanted, _mismatches(wanted, stream_values(after)))

    async def async_apply_imaging_settings(
        self, request: ImagingRequest
    ) -> ApplyResult:
        """Validate, set (persisted), read back and compare a video source's imaging."""
        wanted = _imaging_wanted(request)
        profile = self._profile(request.profile_token)
        source = profile.video_source_token
        if source is None:
            raise InvalidRequestError(
                "imaging_not_supported",
                f"profile {profile.token} has no video source",
            )
        try:
            current = await self._client.get_imaging_settings(source)
        except OnvifNotSupportedError as err:
            raise InvalidRequestError("imaging_not_supported", str(err)) from err
        except OnvifError as err:
            raise _backend_error(err) from err
        _validate_imaging(
            wanted,
            current.reported(),
            await self._call(self._client.get_imaging_options(source)),
        )
        await self._set(
            self._client.set_imaging_settings(source, ImagingSettings(**wanted))
        )
        after = (await self._call(self._client.get_imaging_settings(source))).reported()
        if source in self._imaging_sources:
            self._with_details("imaging", source, after)
        return ApplyResult(wanted, _mismatches(wanted, after))

    async def _set(self, coro: Awaitable[None]) -> None:
        """Send a Set; a SOAP fault means the camera refused the settings."""
        try:
            await coro
        except OnvifFaultError as err:
            raise SettingsRefusedError(
                str(err), reason=err.subcode or err.reason or str(err)
            ) from err
        except OnvifNotSupportedError as err:
            raise InvalidRequestError("unsupported_request", str(err)) from err
        except OnvifError as err:
            raise _backend_error(err) from err

    # ------------------------------------------------------------------ install

    async def async_install_file(self, path: Path, publish: Publish) -> FirmwareState:
        """Upload a firmware file, wait out the reboot, verify the version changed."""
        step = _Step(self, publish)
        try:
            step.publish(phase=Phase.INSTALLING, progress=0, error=None)
            before = (await self._read_info()).firmware_version
            ticket = await self._call(self._client.start_firmware_upgrade())
            if ticket.upload_delay > 0:
                await asyncio.sleep(ticket.upload_delay)
            await self._upload(step, ticket.upload_uri, path)
            step.publish(phase=Phase.REBOOTING, progress=_REBOOT_START)
            info = await self._wait_for_new_firmware(
                step, before, ticket.expected_down_time or 0.0, path.name
            )
        except BackendError as err:
            error = err if isinstance(err, InstallError) else _as_install_error(err)
            step.publish(phase=Phase.FAILED, progress=None, error=str(error))
            raise error from err
        self._settings_stale = True  # new firmware: read the settings again
        return self._set_state(
            self._state.evolve(
                installed_version=info.firmware_version,
                latest_version=info.firmware_version,
                phase=Phase.IDLE,
                progress=None,
                error=None,
            )
        )

    async def _upload(self, step: _Step, uri: str, path: Path) -> None:
        def progress(sent: int, total: int) -> None:
            step.publish(progress=_UPLOAD_SPAN * sent // max(total, 1))

        try:
            await upload_firmware(self._session, uri, path, progress=progress)
        except OnvifUploadError as err:
            raise InstallError(
                "upload_refused",
                str(err),
                status=str(err.status),
                reason=err.body or "-",
            ) from err
        except OnvifConnectionError as err:
            raise InstallError("device_lost", str(err), error=str(err)) from err
        except OSError as err:
            raise InstallError("file_unreadable", str(err), error=str(err)) from err

    async def _wait_for_new_firmware(
        self, step: _Step, before: str | None, expected_down: float, file_name: str
    ) -> DeviceInformation:
        """Poll until the camera answers with another firmware version.

        The camera may keep answering with the old version while it flashes: only
        an answer after it was unreachable, or the deadline, ends the wait with the
        old version.
        """
        start = time.monotonic()
        deadline = start + expected_down + self._timing.reboot_timeout
        went_down = False
        while True:
            try:
                info: DeviceInformation | None = await self._read_info()
            except DeviceConnectionError:
                went_down = True
                info = None
            if info is not None:
                if info.firmware_version != before:
                    step.publish(phase=Phase.VERIFYING, progress=_VERIFY)
                    return info
                if went_down or time.monotonic() >= deadline:
                    raise InstallError(
                        "verification_failed",
                        f"the camera came back with {before}, not the firmware of "
                        f"{file_name}",
                        installed=before or "-",
                        expected=file_name,
                    )
            elif time.monotonic() >= deadline:
                raise InstallError(
                    "reboot_timeout",
                    f"the camera did not answer within {deadline - start:.0f} s",
                )
            elapsed = time.monotonic() - start
            share = min(1.0, elapsed / expected_down) if expected_down > 0 else 1.0
            step.publish(
                progress=_REBOOT_START + int((_REBOOT_END - _REBOOT_START) * share)
            )
            await asyncio.sleep(self._timing.poll_interval)


class SettingsRefusedError(DeviceResponseError):
    """The camera answered a Set with a SOAP fault (ConfigModify...)."""

    key = "settings_refused"


class _Step:
    """Publishes install progress as new states of the backend."""

    def __init__(self, backend: OnvifBackend, publish: Publish) -> None:
        self._backend = backend
        self._publish = publish

    def publish(self, **changes: Any) -> None:
        state = self._backend.state
        new = state.evolve(**changes)
        if new != state:
            self._publish(self._backend._set_state(new))  # noqa: SLF001


def _backend_error(err: OnvifError) -> BackendError:
    """Return the backend error a protocol error stands for."""
    if isinstance(err, OnvifAuthError):
        return DeviceAuthError(str(err))
    if isinstance(err, OnvifConnectionError):
        return DeviceConnectionError(str(err))
    return DeviceResponseError(str(err))


def _as_install_error(err: BackendError) -> InstallError:
    if isinstance(err, DeviceAuthError):
        return InstallError("install_auth_failed", str(err))
    if isinstance(err, DeviceConnectionError):
        return InstallError("device_lost", str(err), error=str(err))
    return InstallError("device_refused", str(err), reason=str(err.__cause__ or err))
