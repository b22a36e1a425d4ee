"""What the ONVIF client reads from and sends to a camera: typed, frozen values."""

from __future__ import annotations

from dataclasses import dataclass, fields
import re
from typing import Final

#: Encodings with a GOV length, and the element naming their codec profile.
GOV_CODECS: Final = {"H264": "H264Profile", "MPEG4": "Mpeg4Profile"}


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
