"""ONVIF cameras: firmware version, stream and imaging settings, reboot, firmware file.

No Home Assistant imports. ONVIF has no online firmware check: the installed version
is the only version (`latest_version` equals it, so no false update is shown), and a
new firmware arrives as a file the user uploads (`install.py`). Settings are applied
and verified (`settings.py`); what the camera reports is in the state's `OnvifFacts`.

A steady-state refresh is one SOAP call, GetDeviceInformation (the firmware version,
and whether the camera answers). The settings are read at the options' check interval
(there is no firmware check to run then), after the camera was unreachable, and read
back by the actions: GetVideoEncoderConfigurations (every encoder at once) and
GetImagingSettings per video source, 3 calls for a single-sensor camera. The profiles
(which encoder and video source each uses) and the imaging options (the ranges the
sensors present their values in) are read once, at setup. Every refresh that read the
camera sets `last_check`: when the camera was last read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
import logging
from typing import Any

import aiohttp

from ...core.backend import (
    DeviceConnectionError,
    DeviceResponseError,
    InstallRefusedError,
    Publish,
)
from ...core.models import DeviceIdentity, FirmwareState
from .errors import backend_error, call
from .facts import EncoderFacts, OnvifFacts, SourceImaging, encoder_labels
from .install import DEFAULT_TIMING, OnvifFileInstall, OnvifTiming
from .protocol import (
    DeviceInformation,
    ImagingOptions,
    MediaProfile,
    OnvifClient,
    OnvifError,
    OnvifFaultError,
    OnvifNotSupportedError,
    VideoEncoderConfiguration,
)
from .settings import (
    IMAGING_FIELDS,
    STREAM_FIELDS,
    ApplyResult,
    ImagingRequest,
    StreamRequest,
    apply_imaging_settings,
    apply_stream_settings,
    find_profile,
)

__all__ = [
    "IMAGING_FIELDS",
    "STREAM_FIELDS",
    "ApplyResult",
    "ImagingRequest",
    "OnvifBackend",
    "StreamRequest",
]

_LOGGER = logging.getLogger(__name__)


class OnvifBackend(OnvifFileInstall):
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
        #: Encoder configuration token → the first profile using it, and its label.
        self._encoders: dict[str, tuple[MediaProfile, str]] = {}
        #: Video sources whose imaging settings the camera reports → their options.
        self._imaging_options: dict[str, ImagingOptions | None] = {}
        #: Settings read at setup, used by the refresh right after it.
        self._probed: OnvifFacts | None = None
        self._settings_stale = False

    @property
    def client(self) -> OnvifClient:
        """Return the ONVIF client."""
        return self._client

    @property
    def facts(self) -> OnvifFacts:
        """Return the settings as last read (empty before the first refresh)."""
        facts = self._state.facts
        return facts if isinstance(facts, OnvifFacts) else OnvifFacts()

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
            raise backend_error(err) from err
        unique_id = self._mac or info.serial_number
        if not unique_id:
            raise DeviceResponseError(
                "the camera reports neither a MAC address nor a serial number"
            )
        self._profiles = await call(self._client.get_profiles())
        first: dict[str, MediaProfile] = {}
        for profile in self._profiles:
            config = profile.video_encoder
            if config is not None and config.token:
                first.setdefault(config.token, profile)
        labels = encoder_labels(first)
        self._encoders = {
            token: (profile, labels[token]) for token, profile in first.items()
        }
        encoders = tuple(
            self._encoder_facts(profile.video_encoder)
            for profile in first.values()
            if profile.video_encoder is not None
        )
        self._probed = OnvifFacts(encoders, await self._probe_imaging())
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

    async def _probe_imaging(self) -> tuple[SourceImaging, ...]:
        """Read the imaging settings of every video source that has them."""
        sources = dict.fromkeys(
            profile.video_source_token
            for profile in self._profiles
            if profile.video_source_token
        )
        imaging: list[SourceImaging] = []
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
                raise backend_error(err) from err
            imaging.append(
                SourceImaging(source, settings, await self._probe_options(source))
            )
        self._imaging_options = {item.source: item.options for item in imaging}
        return tuple(imaging)

    async def _probe_options(self, source: str) -> ImagingOptions | None:
        """Read the imaging options of `source` (None when the camera has none)."""
        try:
            return await self._client.get_imaging_options(source)
        except (OnvifFaultError, OnvifNotSupportedError) as err:
            _LOGGER.debug("No imaging options for video source %s: %s", source, err)
            return None
        except OnvifError as err:
            raise backend_error(err) from err

    def _encoder_facts(self, config: VideoEncoderConfiguration) -> EncoderFacts:
        profile, label = self._encoders[config.token]
        return EncoderFacts.of(profile, label, config)

    async def _read_info(self) -> DeviceInformation:
        info = await call(self._client.get_device_information())
        self._info = info
        return info

    async def async_refresh(self, *, check: bool) -> FirmwareState:
        """Read the firmware version (one SOAP call); the settings when due.

        ONVIF has no firmware check: the latest version is the installed one. The
        stream and imaging settings are read with `check` (every check interval),
        after the camera was unreachable (a reboot may have changed them) and right
        after setup; the actions update them as they read them back.
        """
        if self._probed is not None and self._info is not None:
            info = self._info
            facts = self._probed
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
                        last_check=datetime.now(UTC),
                    )
                )
            facts = await self._read_settings()
        self._settings_stale = False
        return self._set_state(
            self._state.evolve(
                installed_version=info.firmware_version,
                latest_version=info.firmware_version,
                facts=facts,
                last_check=datetime.now(UTC),
            )
        )

    async def _read_settings(self) -> OnvifFacts:
        """Read every encoder (one call) and each video source's imaging settings."""
        configs = await call(self._client.get_video_encoder_configurations())
        encoders = tuple(
            self._encoder_facts(config)
            for config in configs
            if config.token in self._encoders
        )
        imaging: list[SourceImaging] = []
        for source, options in self._imaging_options.items():
            try:
                settings = await self._client.get_imaging_settings(source)
            except OnvifFaultError as err:
                _LOGGER.debug("Imaging settings of %s unavailable: %s", source, err)
                continue
            except OnvifError as err:
                raise backend_error(err) from err
            imaging.append(SourceImaging(source, settings, options))
        return OnvifFacts(encoders, tuple(imaging))

    async def async_restart(self) -> None:
        """Reboot the camera (SystemReboot); read its settings once it is back."""
        await call(self._client.system_reboot())
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
            "imaging_sources": list(self._imaging_options),
            "encoders": {
                token: {"profile_token": profile.token, "label": label}
                for token, (profile, label) in self._encoders.items()
            },
        }

    async def async_close(self) -> None:
        """Close the SOAP services' sessions."""
        await self._client.close()

    # ------------------------------------------------------------------ settings

    async def async_apply_stream_settings(self, request: StreamRequest) -> ApplyResult:
        """Validate, set (persisted), read back and compare a video encoder's settings."""
        profile = find_profile(self._profiles, request.profile_token)
        result, after = await apply_stream_settings(self._client, profile, request)
        if after.token in self._encoders:
            encoder = self._encoder_facts(after)
            self._set_state(self._state.evolve(facts=self.facts.with_encoder(encoder)))
        return result

    async def async_apply_imaging_settings(
        self, request: ImagingRequest
    ) -> ApplyResult:
        """Validate, set (persisted), read back and compare a video source's imaging."""
        profile = find_profile(self._profiles, request.profile_token)
        result, after = await apply_imaging_settings(self._client, profile, request)
        source = profile.video_source_token
        if source is not None and source in self._imaging_options:
            facts = self.facts.with_imaging(source, after)
            self._set_state(self._state.evolve(facts=facts))
        return result
