"""Building ONVIF Set requests: a read configuration with the changes applied."""

from __future__ import annotations

from collections.abc import Mapping
import copy
from typing import Any, Final

from onvif import ONVIFService  # type: ignore[import-untyped]

from .errors import OnvifNotSupportedError
from .models import GOV_CODECS, EncoderChanges, ImagingSettings

_DEFAULT_CODEC_PROFILE: Final = {"H264": "Main", "MPEG4": "SP"}
_DEFAULT_GOV_LENGTH: Final = 30


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
    if encoding not in GOV_CODECS:
        if changes.gov_length is not None:
            raise OnvifNotSupportedError(f"{encoding} has no GOV length")
        return
    codec = config.get(encoding)
    if not isinstance(codec, dict):
        codec = {
            "GovLength": _DEFAULT_GOV_LENGTH,
            GOV_CODECS[encoding]: _DEFAULT_CODEC_PROFILE[encoding],
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


def plain(value: Any) -> dict[str, Any]:
    """Serialise a zeep object into plain nested dicts."""
    result = ONVIFService.to_dict(value)
    return _dicts(result) if isinstance(result, Mapping) else {}


def _dicts(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _dicts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dicts(item) for item in value]
    return value
