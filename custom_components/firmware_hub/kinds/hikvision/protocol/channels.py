"""A recorder's IP channels: `/ISAPI/ContentMgmt/InputProxy/channels` (wire only).

An NVR (or a hybrid DVR) proxies IP cameras as "input proxy channels". The channel
list carries each camera's address, model, serial number and firmware in its
`sourceInputPortDescriptor` (when the recorder knows them: an offline camera, or a
camera added through a third-party protocol, often has none); the status list says
whether the recorder reaches each camera. Shapes and sources:
`tests/fixtures/hikvision/README.md`. No Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import hdrs

from .client import IsapiClient
from .documents import _as_bool, expect_document, text
from .errors import IsapiParseError

PATH_CHANNELS: Final = "/ISAPI/ContentMgmt/InputProxy/channels"
PATH_CHANNELS_STATUS: Final = "/ISAPI/ContentMgmt/InputProxy/channels/status"


@dataclass(frozen=True, slots=True)
class InputChannel:
    """One IP channel of a recorder and the camera behind it."""

    #: The channel number (`id`): stable while the channel exists.
    channel_id: str
    name: str | None
    #: How the recorder talks to the camera: HIKVISION, ISAPI, ONVIF, ...
    protocol: str | None
    model: str | None
    serial_number: str | None
    #: As the recorder spells it, e.g. `V5.7.15 build 240201`.
    firmware_version: str | None
    ip_address: str | None


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """Whether the recorder reaches one channel's camera."""

    channel_id: str
    online: bool | None
    #: The recorder's reason (`online`, `offline`, `userOrPasswordError`, ...).
    detect_result: str | None


def _items(content: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """Return the `<name>` children: one element parses as a dict, several as a list."""
    value = content.get(name)
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def parse_channels(root: str, content: Any) -> tuple[InputChannel, ...]:
    """Read an `InputProxyChannelList` (an empty list has no children at all)."""
    if root == "InputProxyChannelList" and content is None:
        return ()
    doc = expect_document(root, content, "InputProxyChannelList")
    channels: list[InputChannel] = []
    for item in _items(doc, "InputProxyChannel"):
        channel_id = text(item.get("id"))
        if not channel_id:
            raise IsapiParseError("InputProxyChannel without an id")
        source = item.get("sourceInputPortDescriptor")
        port: Mapping[str, Any] = source if isinstance(source, Mapping) else {}
        channels.append(
            InputChannel(
                channel_id=channel_id,
                name=text(item.get("name")) or None,
                protocol=text(port.get("proxyProtocol")) or None,
                model=text(port.get("model")) or None,
                serial_number=text(port.get("serialNumber")) or None,
                firmware_version=text(port.get("firmwareVersion")) or None,
                ip_address=text(port.get("ipAddress")) or None,
            )
        )
    return tuple(channels)


def parse_channel_status(root: str, content: Any) -> dict[str, ChannelStatus]:
    """Read an `InputProxyChannelStatusList`, by channel id."""
    if root == "InputProxyChannelStatusList" and content is None:
        return {}
    doc = expect_document(root, content, "InputProxyChannelStatusList")
    statuses: dict[str, ChannelStatus] = {}
    for item in _items(doc, "InputProxyChannelStatus"):
        channel_id = text(item.get("id"))
        if not channel_id:
            continue
        online = _as_bool(item.get("online"))
        source = item.get("sourceInputPortDescriptor")
        if online is None and isinstance(source, Mapping):
            # Hikvision's web SDK reads `online` inside the descriptor as well.
            online = _as_bool(source.get("online"))
        statuses[channel_id] = ChannelStatus(
            channel_id=channel_id,
            online=online,
            detect_result=text(item.get("chanDetectResult")) or None,
        )
    return statuses


async def get_channels(client: IsapiClient) -> tuple[InputChannel, ...]:
    """Read the recorder's IP channels."""
    return parse_channels(*await client.request(hdrs.METH_GET, PATH_CHANNELS))


async def get_channel_status(client: IsapiClient) -> dict[str, ChannelStatus]:
    """Read whether the recorder reaches each IP channel's camera."""
    return parse_channel_status(
        *await client.request(hdrs.METH_GET, PATH_CHANNELS_STATUS)
    )
