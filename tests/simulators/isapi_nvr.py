"""Loopback Hikvision NVR with IP channel cameras, for tests and manual runs.

An ``IsapiCameraSimulator`` (the recorder itself: deviceInfo, online upgrade,
reboot, authentication) that also serves ``/ISAPI/ContentMgmt/InputProxy/channels``
and ``.../channels/status``, seeded from
``tests/fixtures/hikvision/<device>/InputProxy.channels*.xml`` (three IP cameras of
different models and firmware). Tests add, remove, take offline or re-flash
channel cameras at run time::

    nvr = IsapiNvrSimulator()
    await nvr.start()
    nvr.remove_channel("2")
    nvr.add_channel(NvrChannel("4", "gate", "DS-2CD2143G2-I", "DS-2CD2143G2-I0000", "V5.7.3 build 220112"))

The recorder's online-upgrade capabilities say ``isSupportUpgradeChannels`` (as the
ISAPI guide documents it) unless ``upgrade_channels`` is False; its upgrade task
for a channel (``isapi_channel_task.py``) fetches the package URL it is given.
Nothing here imports Home Assistant.
"""

import argparse
import asyncio
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass, replace
import logging
from pathlib import Path
import signal
from typing import TYPE_CHECKING, Any, Unpack
from xml.sax.saxutils import escape

import xmltodict

from .isapi import DEFAULT_FIXTURES_DIR, IsapiCameraSimulator, SimulatorOptions
from .isapi_channel_task import TASK_PATH, TASK_STATUS_PREFIX, ChannelTaskMixin

if TYPE_CHECKING:
    from aiohttp import web

    from .isapi import _Reply

__all__ = ["CHANNELS_PATH", "CHANNELS_STATUS_PATH", "IsapiNvrSimulator", "NvrChannel"]

CHANNELS_PATH = "/ISAPI/ContentMgmt/InputProxy/channels"
CHANNELS_STATUS_PATH = "/ISAPI/ContentMgmt/InputProxy/channels/status"


@dataclass(frozen=True)
class NvrChannel:
    """One IP channel of the simulated recorder and the camera behind it."""

    channel_id: str
    name: str
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    ip_address: str = "192.168.254.99"
    protocol: str = "HIKVISION"
    online: bool = True


def _as_list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    return list(value or [])


def load_channels(path: Path) -> dict[str, NvrChannel]:
    """Read the channels of an ``InputProxyChannelList`` fixture."""
    doc = xmltodict.parse(path.read_bytes(), disable_entities=True)
    channels: dict[str, NvrChannel] = {}
    for item in _as_list(doc["InputProxyChannelList"].get("InputProxyChannel")):
        port = item["sourceInputPortDescriptor"]
        channel = NvrChannel(
            channel_id=item["id"],
            name=item["name"],
            model=port.get("model"),
            serial_number=port.get("serialNumber"),
            firmware_version=port.get("firmwareVersion"),
            ip_address=port["ipAddress"],
            protocol=port["proxyProtocol"],
        )
        channels[channel.channel_id] = channel
    return channels


def _element(name: str, value: str | None) -> str:
    """``<name>value</name>``, or ``<name/>`` as recorders send an unknown value."""
    return f"<{name}/>\n" if value is None else f"<{name}>{escape(value)}</{name}>\n"


class IsapiNvrSimulator(IsapiCameraSimulator, ChannelTaskMixin):
    """A Hikvision NVR whose IP channels tests change at run time.

    ``channels`` maps channel ids to ``NvrChannel``; change it directly or through
    ``add_channel``, ``remove_channel``, ``set_online`` and ``set_firmware``.
    ``channels_supported=False`` answers notSupport on the channel paths (a recorder
    without IP channels); ``channels_error=True`` answers a statusCode 3 deviceError;
    ``status_supported=False`` answers notSupport on the status list only.
    """

    def __init__(
        self,
        *,
        upgrade_channels: bool = True,
        **options: Unpack[SimulatorOptions],
    ) -> None:
        """Load the recorder's fixtures and its channels (default DS-7608NXI-I2)."""
        options.setdefault("device", "DS-7608NXI-I2")
        options.setdefault("offer_version", None)
        super().__init__(**options)
        directory = (options.get("fixtures_dir") or DEFAULT_FIXTURES_DIR) / self.device
        self.channels = load_channels(directory / "InputProxy.channels.xml")
        self.upgrade_channels = upgrade_channels
        self.channels_supported = True
        self.channels_error = False
        #: False: only the status list answers notSupport (older recorders).
        self.status_supported = True
        self._routes[("GET", CHANNELS_PATH)] = self._get_channels
        self._routes[("GET", CHANNELS_STATUS_PATH)] = self._get_channel_status
        self._routes[("POST", TASK_PATH)] = self._post_task
        self._init_channel_tasks()

    # ------------------------------------------------------------------ scenarios

    def add_channel(self, channel: NvrChannel) -> None:
        """Add (or replace) an IP channel, as the recorder's web page would."""
        self.channels[channel.channel_id] = channel

    def remove_channel(self, channel_id: str) -> None:
        """Delete an IP channel."""
        del self.channels[channel_id]

    def set_online(self, channel_id: str, *, online: bool) -> None:
        """Make the recorder reach (or lose) a channel's camera.

        An offline camera is listed without model, serial number and firmware,
        as real recorders list a camera they cannot reach.
        """
        self.channels[channel_id] = replace(self.channels[channel_id], online=online)

    def set_firmware(self, channel_id: str, version: str) -> None:
        """Make a channel's camera run ``version`` (flashed outside the recorder)."""
        self.channels[channel_id] = replace(
            self.channels[channel_id], firmware_version=version
        )

    # ------------------------------------------------------------------ handlers

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Keep a task's JSON body for its handler, then handle as the camera."""
        await self._read_task_body(request)
        return await super()._handle(request)

    def _dispatch(self, request: web.Request) -> _Reply:
        """Route ``status/task/<taskID>`` (a path with an id) besides the table."""
        if request.method == "GET" and request.path.startswith(TASK_STATUS_PREFIX):
            reply: _Reply = self._get_task_status(
                request.path.removeprefix(TASK_STATUS_PREFIX)
            )
            return reply
        return super()._dispatch(request)

    def _refused(self, path: str) -> _Reply | None:
        if not self.channels_supported:
            return self._not_found(path)
        if self.channels_error:
            return self._response_status(
                path,
                http_status=500,
                code=3,
                string="Device Error",
                sub_code="deviceError",
            )
        return None

    def _get_channels(self, request: web.Request) -> _Reply:
        """``GET /ISAPI/ContentMgmt/InputProxy/channels``."""
        if (refused := self._refused(request.path)) is not None:
            return refused
        inner = ""
        for channel in sorted(self.channels.values(), key=lambda c: int(c.channel_id)):
            known = channel.online
            inner += (
                "<InputProxyChannel>\n"
                f"<id>{escape(channel.channel_id)}</id>\n"
                f"<name>{escape(channel.name)}</name>\n"
                "<sourceInputPortDescriptor>\n"
                f"<proxyProtocol>{escape(channel.protocol)}</proxyProtocol>\n"
                "<addressingFormatType>ipaddress</addressingFormatType>\n"
                f"<ipAddress>{escape(channel.ip_address)}</ipAddress>\n"
                "<managePortNo>8000</managePortNo>\n"
                "<srcInputPort>1</srcInputPort>\n"
                "<userName>admin</userName>\n"
                "<streamType>auto</streamType>\n"
                + _element("model", channel.model if known else None)
                + _element("serialNumber", channel.serial_number if known else None)
                + _element(
                    "firmwareVersion", channel.firmware_version if known else None
                )
                + "<deviceID/>\n"
                "</sourceInputPortDescriptor>\n"
                "<enableTiming>true</enableTiming>\n"
                "</InputProxyChannel>\n"
            )
        return self._xml("InputProxyChannelList", inner)

    def _get_channel_status(self, request: web.Request) -> _Reply:
        """``GET /ISAPI/ContentMgmt/InputProxy/channels/status``."""
        if not self.status_supported:
            return self._not_found(request.path)
        if (refused := self._refused(request.path)) is not None:
            return refused
        inner = ""
        for channel in sorted(self.channels.values(), key=lambda c: int(c.channel_id)):
            number = int(channel.channel_id)
            inner += (
                "<InputProxyChannelStatus>\n"
                f"<id>{escape(channel.channel_id)}</id>\n"
                "<sourceInputPortDescriptor>\n"
                f"<proxyProtocol>{escape(channel.protocol)}</proxyProtocol>\n"
                "<addressingFormatType>ipaddress</addressingFormatType>\n"
                f"<ipAddress>{escape(channel.ip_address)}</ipAddress>\n"
                "<managePortNo>8000</managePortNo>\n"
                "<srcInputPort>1</srcInputPort>\n"
                "</sourceInputPortDescriptor>\n"
                f"<online>{'true' if channel.online else 'false'}</online>\n"
                "<streamingProxyChannelIdList>\n"
                f"<streamingProxyChannelId>{number}01</streamingProxyChannelId>\n"
                f"<streamingProxyChannelId>{number}02</streamingProxyChannelId>\n"
                "</streamingProxyChannelIdList>\n"
                "</InputProxyChannelStatus>\n"
            )
        return self._xml("InputProxyChannelStatusList", inner)

    def _get_upgrade_capabilities(self, request: web.Request) -> _Reply:
        """The recorder's capabilities, with ``isSupportUpgradeChannels``."""
        reply = super()._get_upgrade_capabilities(request)
        if self.upgrade_channels:
            reply.body = reply.body.replace(
                b"<UpgradePackageTask>\n",
                b"<UpgradePackageTask>\n"
                b"<isSupportUpgradeChannels>true</isSupportUpgradeChannels>\n",
            )
        return reply


# ---------------------------------------------------------------------- CLI


async def _serve(port: int, password: str, upgrade_steps: int) -> None:
    """Run one recorder (three IP cameras; channel upgrades) until SIGINT/SIGTERM."""
    nvr = IsapiNvrSimulator(password=password, upgrade_steps=upgrade_steps)
    nvr.port = port
    await nvr.start()
    try:
        print(f"{nvr.url} serial={nvr.serial_number} model={nvr.model}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await nvr.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (screenshots of a channel camera install)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulators.isapi_nvr",
        description="Run a loopback Hikvision NVR with three IP cameras until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=18084)
    parser.add_argument("--password", default="Passw0rd!")
    parser.add_argument(
        "--upgrade-steps", type=int, default=4, help="task polls to upgrade a channel"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.password, args.upgrade_steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
