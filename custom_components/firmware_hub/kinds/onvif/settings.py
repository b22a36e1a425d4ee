"""Apply and verify ONVIF stream and imaging settings. No Home Assistant imports.

The request is checked against what the camera offers (GetVideoEncoderConfiguration
Options, imaging GetOptions) before anything is sent (`InvalidRequestError`, nothing
sent), set with ForcePersistence, read back and compared; what the camera did not take
is reported in `mismatches`, not raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ...core.backend import InvalidRequestError
from .errors import SettingsRefusedError, backend_error, call
from .protocol import (
    EncoderChanges,
    ImagingOptions,
    ImagingSettings,
    MediaProfile,
    OnvifClient,
    OnvifError,
    OnvifFaultError,
    OnvifNotSupportedError,
    Range,
    Resolution,
    VideoEncoderConfiguration,
    VideoEncoderOptions,
)
from .protocol.models import GOV_CODECS

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
_NUMERIC_IMAGING: Final = frozenset(
    {"brightness", "contrast", "saturation", "sharpness"}
)
_CODEC_ALIASES: Final = {
    "H.264": "H264",
    "AVC": "H264",
    "MPEG-4": "MPEG4",
    "MJPEG": "JPEG",
}
#: Two imaging values closer than this are the same (cameras answer with 2 decimals).
_IMAGING_TOLERANCE: Final = 0.005


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
        if codec not in GOV_CODECS:
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


def find_profile(profiles: Sequence[MediaProfile], token: str | None) -> MediaProfile:
    """Return the media profile `token` (None: the first one)."""
    if token is None:
        if profiles:
            return profiles[0]
        raise InvalidRequestError(
            "unknown_profile",
            "the camera has no media profile",
            profile="-",
            profiles="-",
        )
    for profile in profiles:
        if profile.token == token:
            return profile
    raise InvalidRequestError(
        "unknown_profile",
        f"no media profile {token}",
        profile=token,
        profiles=", ".join(p.token for p in profiles) or "-",
    )


async def apply_stream_settings(
    client: OnvifClient, profile: MediaProfile, request: StreamRequest
) -> tuple[ApplyResult, VideoEncoderConfiguration]:
    """Validate, set (persisted), read back and compare a video encoder's settings.

    Returns the result and the configuration read back.
    """
    wanted = _stream_wanted(request)
    if profile.video_encoder is None or not profile.video_encoder.token:
        raise InvalidRequestError(
            "profile_without_encoder",
            f"profile {profile.token} has no video encoder",
            profile=profile.token,
        )
    token = profile.video_encoder.token
    options = await call(client.get_video_encoder_options(token, profile.token))
    current = await call(client.get_video_encoder_configuration(token))
    _validate_stream(wanted, wanted.get("codec") or current.encoding or "", options)
    changes = EncoderChanges(
        encoding=wanted.get("codec"),
        resolution=(
            Resolution.parse(wanted["resolution"]) if "resolution" in wanted else None
        ),
        fps=wanted.get("fps"),
        bitrate_kbps=wanted.get("bitrate_kbps"),
        gov_length=wanted.get("gov_length"),
    )
    await _set(client.set_video_encoder_configuration(token, changes))
    after = await call(client.get_video_encoder_configuration(token))
    return ApplyResult(wanted, _mismatches(wanted, stream_values(after))), after


async def apply_imaging_settings(
    client: OnvifClient, profile: MediaProfile, request: ImagingRequest
) -> tuple[ApplyResult, ImagingSettings]:
    """Validate, set (persisted), read back and compare a video source's imaging.

    Returns the result and the settings read back.
    """
    wanted = _imaging_wanted(request)
    source = profile.video_source_token
    if source is None:
        raise InvalidRequestError(
            "imaging_not_supported",
            f"profile {profile.token} has no video source",
        )
    try:
        current = await client.get_imaging_settings(source)
    except OnvifNotSupportedError as err:
        raise InvalidRequestError("imaging_not_supported", str(err)) from err
    except OnvifError as err:
        raise backend_error(err) from err
    _validate_imaging(
        wanted,
        current.reported(),
        await call(client.get_imaging_options(source)),
    )
    await _set(client.set_imaging_settings(source, ImagingSettings(**wanted)))
    after = await call(client.get_imaging_settings(source))
    return ApplyResult(wanted, _mismatches(wanted, after.reported())), after


async def _set(coro: Awaitable[None]) -> None:
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
        raise backend_error(err) from err
