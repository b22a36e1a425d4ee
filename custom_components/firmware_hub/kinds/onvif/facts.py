"""What an ONVIF camera adds to the state: its stream and imaging settings (typed).

Written by the backend (`OnvifFacts` in `FirmwareState.facts`), read by the settings
sensors. No Home Assistant imports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from ...core.models import KindFacts
from .protocol import (
    ImagingOptions,
    ImagingSettings,
    MediaProfile,
    Range,
    VideoEncoderConfiguration,
)


@dataclass(frozen=True, slots=True)
class EncoderFacts:
    """One video encoder configuration some media profile uses."""

    token: str
    """The encoder configuration's token."""
    label: str
    """The first profile's Name (what video software shows), else its token."""
    resolution: str | None = None
    """``WIDTHxHEIGHT``."""
    codec: str | None = None
    """The media ver10 encoding: ``H264``, ``JPEG`` or ``MPEG4``."""
    fps: int | None = None
    bitrate_kbps: int | None = None
    gov_length: int | None = None
    profile_token: str | None = None
    """The token of the first media profile using the configuration."""

    @classmethod
    def of(
        cls, profile: MediaProfile, label: str, config: VideoEncoderConfiguration
    ) -> EncoderFacts:
        """Return the facts of a configuration `profile` uses, as reported."""
        return cls(
            token=config.token,
            label=label,
            profile_token=profile.token or None,
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
    options: ImagingOptions | None = None
    """The ranges and modes the camera allows (imaging GetOptions), if it says."""

    def range_of(self, name: str) -> Range | None:
        """Return the range of setting `name` (``brightness``...), if known."""
        allowed = getattr(self.options, name, None)
        return allowed if isinstance(allowed, Range) else None


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
                SourceImaging(source, settings, i.options) if i.source == source else i
                for i in self.imaging
            ),
        )


def encoder_labels(profiles: Mapping[str, MediaProfile]) -> dict[str, str]:
    """Return encoder token → what to call it, from the profile using it (by token).

    The profile's Name, else its token (else the encoder's token); two profiles of
    the same Name are told apart by their tokens.
    """
    names = {
        encoder: (profile.name or profile.token or encoder, profile.token)
        for encoder, profile in profiles.items()
    }
    counts = Counter(name for name, _ in names.values())
    return {
        encoder: name
        if counts[name] == 1 or not token or name == token
        else f"{name} ({token})"
        for encoder, (name, token) in names.items()
    }
