"""What an ONVIF camera adds to the state: its stream and imaging settings (typed).

Written by the backend (`OnvifFacts` in `FirmwareState.facts`), read by the settings
sensors. No Home Assistant imports.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.models import KindFacts
from .protocol import ImagingSettings, VideoEncoderConfiguration


@dataclass(frozen=True, slots=True)
class EncoderFacts:
    """One video encoder configuration some media profile uses."""

    token: str
    label: str
    """The first profile's name (what video software shows), else the token."""
    resolution: str | None = None
    """``WIDTHxHEIGHT``."""
    codec: str | None = None
    """The media ver10 encoding: ``H264``, ``JPEG`` or ``MPEG4``."""
    fps: int | None = None
    bitrate_kbps: int | None = None
    gov_length: int | None = None

    @classmethod
    def of(cls, label: str, config: VideoEncoderConfiguration) -> EncoderFacts:
        """Return the facts of a configuration the camera reported."""
        return cls(
            token=config.token,
            label=label,
            resolution=str(config.resolution) if config.resolution else None,
            codec=config.encoding,
            fps=config.fps,
            bitrate_kbps=config.bitrate_kbps,
            gov_length=config.gov_length,
        )


@dataclass(frozen=True, slots=True)
class SourceImaging:
    """The imaging settings of one video source (a value not reported is None)."""

    source: str
    settings: ImagingSettings


@dataclass(frozen=True, slots=True)
class OnvifFacts(KindFacts):
    """The camera's encoder configurations and imaging settings, as last read."""

    encoders: tuple[EncoderFacts, ...] = ()
    imaging: tuple[SourceImaging, ...] = ()

    def encoder(self, token: str) -> EncoderFacts | None:
        """Return the encoder configuration `token`, if the camera reports it."""
        return next((e for e in self.encoders if e.token == token), None)

    def imaging_of(self, source: str) -> ImagingSettings | None:
        """Return the imaging settings of video source `source`, if reported."""
        return next((i.settings for i in self.imaging if i.source == source), None)

    def with_encoder(self, encoder: EncoderFacts) -> OnvifFacts:
        """Return the facts with `encoder` replacing the one of its token."""
        return OnvifFacts(
            tuple(encoder if e.token == encoder.token else e for e in self.encoders),
            self.imaging,
        )

    def with_imaging(self, source: str, settings: ImagingSettings) -> OnvifFacts:
        """Return the facts with new imaging settings for `source`."""
        return OnvifFacts(
            self.encoders,
            tuple(
                SourceImaging(source, settings) if i.source == source else i
                for i in self.imaging
            ),
        )
