"""ONVIF over SOAP (onvif-zeep-async): one camera's typed calls and typed errors.

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
upload (`upload.py`), which is plain HTTP, uses the session the caller passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import datetime as dt
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urljoin

from onvif import ONVIFCamera, util as onvif_util  # type: ignore[import-untyped]

from .changes import apply_encoder_changes, apply_imaging_changes, plain
from .errors import (
    OnvifAuthError,
    OnvifNotSupportedError,
    OnvifParseError,
    translate_error,
)
from .messages import (
    field,
    mac_from_interfaces,
    parse_device_information,
    parse_imaging_options,
    parse_imaging_settings,
    parse_network_interfaces,
    parse_profiles,
    parse_video_encoder_configuration,
    parse_video_encoder_options,
    seconds,
    text,
)
from .models import (
    DeviceInformation,
    EncoderChanges,
    FirmwareUpgradeTicket,
    ImagingOptions,
    ImagingSettings,
    MediaProfile,
    NetworkInterface,
    VideoEncoderConfiguration,
    VideoEncoderOptions,
)

__all__ = ["DEFAULT_TIMEOUT", "WSDL_DIR", "OnvifClient"]

_LOGGER = logging.getLogger(__name__)

#: The WSDL files bundled with onvif-zeep-async (the library's own default).
WSDL_DIR: Final = str(Path(onvif_util.__file__).with_name("wsdl"))
DEFAULT_TIMEOUT: Final = 15.0

NS_DEVICE: Final = "http://www.onvif.org/ver10/device/wsdl"
NS_MEDIA: Final = "http://www.onvif.org/ver10/media/wsdl"
NS_IMAGING: Final = "http://www.onvif.org/ver20/imaging/wsdl"
_SERVICE_NAMESPACES: Final = {
    "devicemgmt": NS_DEVICE,
    "media": NS_MEDIA,
    "imaging": NS_IMAGING,
}


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
        return text(result, "Message")

    async def start_firmware_upgrade(self) -> FirmwareUpgradeTicket:
        """StartFirmwareUpgrade: where to POST the file, how long to wait."""
        result = await self.call("devicemgmt", "StartFirmwareUpgrade")
        uri = text(result, "UploadUri")
        if uri is None:
            raise OnvifParseError("StartFirmwareUpgrade: no UploadUri")
        base = self.xaddrs.get(NS_DEVICE) or f"http://{self._host}:{self._port}/"
        return FirmwareUpgradeTicket(
            upload_uri=urljoin(base, uri),
            upload_delay=max(0.0, seconds(field(result, "UploadDelay")) or 0.0),
            expected_down_time=seconds(field(result, "ExpectedDownTime")),
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
        config = apply_encoder_changes(plain(current), changes)
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
        settings = apply_imaging_changes(plain(current), changes)
        await self.call(
            "imaging",
            "SetImagingSettings",
            {**source, "ImagingSettings": settings, "ForcePersistence": True},
        )
