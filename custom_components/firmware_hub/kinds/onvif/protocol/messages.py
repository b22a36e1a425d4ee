"""Reading ONVIF answers (zeep objects or plain mappings) into typed values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import datetime as dt
import re
from typing import Any, Final

from .errors import local_name
from .models import (
    GOV_CODECS,
    DeviceInformation,
    EncodingOptions,
    ImagingOptions,
    ImagingSettings,
    MediaProfile,
    NetworkInterface,
    Range,
    Resolution,
    VideoEncoderConfiguration,
    VideoEncoderOptions,
)

_ENCODINGS: Final = ("JPEG", "MPEG4", "H264")
_MAC_RE: Final = re.compile(r"[0-9a-f]{12}")


def field(obj: Any, name: str) -> Any:
    """Return a child of a zeep object (or mapping), None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def text(obj: Any, name: str) -> str | None:
    """Return a child's text, stripped; None when absent or empty."""
    value = field(obj, name)
    if value is None:
        return None
    return str(value).strip() or None


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
    low, high = _float(field(obj, "Min")), _float(field(obj, "Max"))
    if low is None or high is None:
        return None
    return Range(low, high)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(str(item).strip() for item in items if str(item).strip())


def seconds(value: Any) -> float | None:
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
        manufacturer=text(result, "Manufacturer"),
        model=text(result, "Model"),
        firmware_version=text(result, "FirmwareVersion"),
        serial_number=text(result, "SerialNumber"),
        hardware_id=text(result, "HardwareId"),
    )


def parse_network_interfaces(result: Any) -> tuple[NetworkInterface, ...]:
    """Read a GetNetworkInterfaces answer."""
    interfaces = result if isinstance(result, (list, tuple)) else [result]
    return tuple(
        NetworkInterface(
            token=text(item, "token"),
            enabled=bool(field(item, "Enabled")),
            name=text(field(item, "Info"), "Name"),
            mac_address=normalize_mac(text(field(item, "Info"), "HwAddress")),
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
    resolution = field(config, "Resolution")
    width, height = (
        _int(field(resolution, "Width")),
        _int(field(resolution, "Height")),
    )
    rate = field(config, "RateControl")
    encoding = text(config, "Encoding")
    codec = field(config, encoding) if encoding in GOV_CODECS else None
    if codec is None:
        codec = field(config, "H264") or field(config, "MPEG4")
    profile = text(codec, "H264Profile") or text(codec, "Mpeg4Profile")
    return VideoEncoderConfiguration(
        token=text(config, "token") or "",
        name=text(config, "Name"),
        encoding=encoding,
        resolution=Resolution(width, height) if width and height else None,
        fps=_int(field(rate, "FrameRateLimit")),
        bitrate_kbps=_int(field(rate, "BitrateLimit")),
        gov_length=_int(field(codec, "GovLength")),
        quality=_float(field(config, "Quality")),
        encoding_interval=_int(field(rate, "EncodingInterval")),
        codec_profile=profile,
    )


def parse_profiles(result: Any) -> tuple[MediaProfile, ...]:
    """Read a GetProfiles answer."""
    profiles = result if isinstance(result, (list, tuple)) else [result]
    parsed: list[MediaProfile] = []
    for profile in profiles:
        if profile is None:
            continue
        encoder = field(profile, "VideoEncoderConfiguration")
        parsed.append(
            MediaProfile(
                token=text(profile, "token") or "",
                name=text(profile, "Name"),
                video_source_token=text(
                    field(profile, "VideoSourceConfiguration"), "SourceToken"
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
        found = _range(field(field(extension, encoding), "BitrateRange"))
        if found is not None:
            ranges[encoding] = found
    for element in field(extension, "_value_1") or ():
        encoding = local_name(getattr(element, "tag", ""))
        if encoding not in _ENCODINGS or encoding in ranges:
            continue
        low = _float(element.findtext("{*}BitrateRange/{*}Min"))
        high = _float(element.findtext("{*}BitrateRange/{*}Max"))
        if low is not None and high is not None:
            ranges[encoding] = Range(low, high)
    return ranges


def parse_video_encoder_options(result: Any) -> VideoEncoderOptions:
    """Read a GetVideoEncoderConfigurationOptions answer (media ver10)."""
    bitrates = _extension_bitrates(field(result, "Extension"))
    encodings: list[EncodingOptions] = []
    for encoding in _ENCODINGS:
        options = field(result, encoding)
        if options is None:
            continue
        resolutions = tuple(
            Resolution(width, height)
            for item in field(options, "ResolutionsAvailable") or ()
            if (width := _int(field(item, "Width")))
            and (height := _int(field(item, "Height")))
        )
        encodings.append(
            EncodingOptions(
                encoding=encoding,
                resolutions=resolutions,
                fps_range=_range(field(options, "FrameRateRange")),
                gov_length_range=_range(field(options, "GovLengthRange")),
                bitrate_range=bitrates.get(encoding),
                encoding_interval_range=_range(field(options, "EncodingIntervalRange")),
                codec_profiles=_strings(
                    field(options, "H264ProfilesSupported")
                    or field(options, "Mpeg4ProfilesSupported")
                ),
            )
        )
    return VideoEncoderOptions(
        quality_range=_range(field(result, "QualityRange")),
        encodings=tuple(encodings),
    )


def parse_imaging_settings(result: Any) -> ImagingSettings:
    """Read GetImagingSettings; what the camera does not report stays None."""
    wdr = field(result, "WideDynamicRange")
    blc = field(result, "BacklightCompensation")
    return ImagingSettings(
        brightness=_float(field(result, "Brightness")),
        contrast=_float(field(result, "Contrast")),
        saturation=_float(field(result, "ColorSaturation")),
        sharpness=_float(field(result, "Sharpness")),
        ir_cut_filter=text(result, "IrCutFilter"),
        wide_dynamic_range=text(wdr, "Mode"),
        wide_dynamic_range_level=_float(field(wdr, "Level")),
        backlight_compensation=text(blc, "Mode"),
        backlight_compensation_level=_float(field(blc, "Level")),
        exposure_mode=text(field(result, "Exposure"), "Mode"),
    )


def parse_imaging_options(result: Any) -> ImagingOptions:
    """Read imaging GetOptions."""
    wdr = field(result, "WideDynamicRange")
    blc = field(result, "BacklightCompensation")
    return ImagingOptions(
        brightness=_range(field(result, "Brightness")),
        contrast=_range(field(result, "Contrast")),
        saturation=_range(field(result, "ColorSaturation")),
        sharpness=_range(field(result, "Sharpness")),
        ir_cut_filter_modes=_strings(field(result, "IrCutFilterModes")),
        wide_dynamic_range_modes=_strings(field(wdr, "Mode")),
        wide_dynamic_range_level=_range(field(wdr, "Level")),
        backlight_compensation_modes=_strings(field(blc, "Mode")),
        backlight_compensation_level=_range(field(blc, "Level")),
        exposure_modes=_strings(field(field(result, "Exposure"), "Mode")),
    )
