"""A recorder's IP channel cameras as child devices. No Home Assistant imports.

Each IP channel of an NVR/DVR becomes a `ChildDevice` keyed by the recorder and the
channel number: the recorder forgets an offline camera's model, serial number and
firmware (real NVRs send empty elements), so a key from the camera's serial number
would remove and re-add the device every time a camera drops off the network. What
the recorder said last about a channel is kept while it says nothing.

A firmware file can be installed on a channel camera through the recorder
(`can_install`) where the recorder's online-upgrade capabilities say
`isSupportUpgradeChannels` and the camera is proxied over Hikvision's own protocol
(`channel_install.py`). No channel offer is known: the recorder's list of newer
firmware for its channels (`onlineUpgrade/SearchDevInfo`) has no public
description, so a channel's latest version is its installed one. See
`tests/fixtures/hikvision/README.md`.
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
from typing import Any, Final

from ...core.backend import DeviceResponseError
from ...core.models import ChildDevice, DeviceIdentity
from .errors import call
from .protocol import DeviceInfo, IsapiClient, IsapiNotSupportedError, find, text
from .protocol.channels import (
    ChannelStatus,
    InputChannel,
    get_channel_status,
    get_channels,
)

_LOGGER = logging.getLogger(__name__)

#: deviceInfo `deviceType`s that proxy IP cameras.
RECORDER_TYPES: Final = frozenset({"NVR", "DVR", "HVR", "XVR", "NVR/DVR"})
#: Between the recorder's serial number and the channel number in a child's key.
CHANNEL_KEY: Final = "_channel_"
#: Proxy protocols that mean the camera is a Hikvision one.
_HIKVISION_PROTOCOLS: Final = frozenset({"HIKVISION", "ISAPI"})


class RecorderChannels:
    """Reads a recorder's IP channels on every refresh."""

    def __init__(self, client: IsapiClient, manufacturer: str) -> None:
        """Initialize; nothing is read before the first refresh."""
        self._client = client
        self._manufacturer = manufacturer
        #: None until known; False for cameras and recorders without IP channels.
        self._supported: bool | None = None
        #: Whether the recorder's online upgrade upgrades channels (capability).
        self.upgrade_channels = False
        self._children: dict[str, ChildDevice] = {}
        self._documents: dict[str, Any] = {}

    def read_capabilities(self, caps: Mapping[str, Any] | None) -> None:
        """Note what the online-upgrade capabilities say about channels."""
        flag = text(find(caps or {}, "isSupportUpgradeChannels"))
        self.upgrade_channels = flag is not None and flag.lower() == "true"

    def child(self, key: str) -> ChildDevice | None:
        """Return a channel camera as last read (None: no such channel)."""
        return self._children.get(key)

    async def async_read(self, info: DeviceInfo) -> tuple[ChildDevice, ...]:
        """Return the channel cameras (none for a camera).

        A recorder that answers notSupport has no IP channels and is not asked
        again; any other error keeps the last children (a device error must not
        remove devices), and a lost connection fails the refresh as usual.
        """
        if self._supported is None:
            self._supported = (info.device_type or "").upper() in RECORDER_TYPES
        if not self._supported:
            return ()
        try:
            channels = await call(get_channels(self._client))
        except DeviceResponseError as err:
            if isinstance(err.__cause__, IsapiNotSupportedError):
                _LOGGER.debug("%s has no IP channels: %s", info.model, err)
                self._supported = False
                self._children = {}
                return ()
            _LOGGER.warning("%s: IP channels unavailable: %s", info.model, err)
            return tuple(self._children.values())
        statuses = await self._async_statuses(info)
        self._documents["channels"] = [_as_dict(channel) for channel in channels]
        self._children = {
            child.key: child
            for child in (
                self._child(info, channel, statuses.get(channel.channel_id))
                for channel in channels
            )
        }
        return tuple(self._children.values())

    async def _async_statuses(self, info: DeviceInfo) -> dict[str, ChannelStatus]:
        try:
            statuses = await call(get_channel_status(self._client))
        except DeviceResponseError as err:
            _LOGGER.debug("%s: channel status unavailable: %s", info.model, err)
            return {}
        self._documents["channel_status"] = {
            key: _as_dict(status) for key, status in statuses.items()
        }
        return statuses

    def _child(
        self, info: DeviceInfo, channel: InputChannel, status: ChannelStatus | None
    ) -> ChildDevice:
        key = f"{info.serial_number}{CHANNEL_KEY}{channel.channel_id}"
        last = self._children.get(key)
        model = channel.model or (last.identity.model if last else None)
        serial = channel.serial_number or (
            last.identity.serial_number if last else None
        )
        version = channel.firmware_version or (last.installed_version if last else None)
        protocol = (channel.protocol or "").upper()
        identity = DeviceIdentity(
            unique_id=key,
            # A camera added over ONVIF (or RTSP...) is of an unknown make.
            manufacturer=(
                self._manufacturer
                if not protocol or protocol in _HIKVISION_PROTOCOLS
                else ""
            ),
            model=model or "IP camera",
            name=channel.name or f"{info.name} channel {channel.channel_id}",
            serial_number=serial,
        )
        return ChildDevice(
            key=key,
            identity=identity,
            installed_version=version,
            # No offer is known for a channel camera (see the module's doc).
            latest_version=version,
            can_install=self.upgrade_channels
            and (not protocol or protocol in _HIKVISION_PROTOCOLS),
            online=status.online if status else None,
        )

    def diagnostics(self) -> dict[str, Any]:
        """Return the channel documents as read, and the channel capability."""
        if not self._supported:
            return {}
        return {"upgrade_channels": self.upgrade_channels, **self._documents}


def _as_dict(value: InputChannel | ChannelStatus) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}
