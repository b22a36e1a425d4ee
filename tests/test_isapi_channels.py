"""Decoding a recorder's IP channel documents, in the shapes real recorders send.

The shapes come from hikvision_next's diagnostics dumps of real NVRs/DVRs (see
tests/fixtures/hikvision/README.md): an empty list, one channel (a single
element), a camera the recorder knows nothing about (empty elements), and the
status list with `online` in or beside the port descriptor.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.firmware_hub.kinds.hikvision.protocol import IsapiParseError
from custom_components.firmware_hub.kinds.hikvision.protocol.channels import (
    ChannelStatus,
    InputChannel,
    parse_channel_status,
    parse_channels,
)
from custom_components.firmware_hub.kinds.hikvision.protocol.documents import parse_xml

FIXTURES = Path(__file__).parent / "fixtures" / "hikvision" / "DS-7608NXI-I2"
HIK = 'xmlns="http://www.hikvision.com/ver20/XMLSchema"'


def test_fixture_channels() -> None:
    """The NVR fixture: three cameras of different models and firmware."""
    channels = parse_channels(
        *parse_xml((FIXTURES / "InputProxy.channels.xml").read_bytes())
    )
    assert [(c.channel_id, c.name, c.model, c.firmware_version) for c in channels] == [
        ("1", "garden", "DS-2CD2386G2-IU", "V5.7.15 build 240201"),
        ("2", "porch", "DS-2CD2046G2-IU", "V5.7.18 build 240826"),
        ("3", "road", "DS-2CD2055FWD-I", "V5.6.6 build 210625"),
    ]
    assert channels[0].protocol == "HIKVISION"
    statuses = parse_channel_status(
        *parse_xml((FIXTURES / "InputProxy.channels.status.xml").read_bytes())
    )
    assert {key: status.online for key, status in statuses.items()} == {
        "1": True,
        "2": True,
        "3": True,
    }


def test_empty_channel_list() -> None:
    """A DVR without IP cameras (iDS-7204HUHI-M1) sends an empty list."""
    body = f'<InputProxyChannelList version="1.0" {HIK} size="2"/>'
    assert parse_channels(*parse_xml(body)) == ()
    body = f'<InputProxyChannelStatusList version="1.0" {HIK}/>'
    assert parse_channel_status(*parse_xml(body)) == {}


def test_list_without_channel_elements() -> None:
    """A list whose children are not channels lists none."""
    body = f"<InputProxyChannelList {HIK}><note>x</note></InputProxyChannelList>"
    assert parse_channels(*parse_xml(body)) == ()


def test_one_channel_and_unknown_camera() -> None:
    """One channel parses as an element, not a list; empty elements are unknown."""
    body = (
        f'<InputProxyChannelList version="2.0" {HIK}><InputProxyChannel>'
        "<id>4</id><name>gate</name><sourceInputPortDescriptor>"
        "<proxyProtocol>HIKVISION</proxyProtocol><ipAddress>10.0.0.238</ipAddress>"
        "<model/><serialNumber/><firmwareVersion/><deviceID/>"
        "</sourceInputPortDescriptor></InputProxyChannel></InputProxyChannelList>"
    )
    assert parse_channels(*parse_xml(body)) == (
        InputChannel(
            channel_id="4",
            name="gate",
            protocol="HIKVISION",
            model=None,
            serial_number=None,
            firmware_version=None,
            ip_address="10.0.0.238",
        ),
    )


def test_channel_without_descriptor() -> None:
    """A channel without a port descriptor (DS-7616NI-Q2 style) still lists."""
    body = (
        f"<InputProxyChannelList {HIK}><InputProxyChannel><id>1</id>"
        "</InputProxyChannel></InputProxyChannelList>"
    )
    (channel,) = parse_channels(*parse_xml(body))
    assert (channel.channel_id, channel.name, channel.firmware_version) == (
        "1",
        None,
        None,
    )


def test_channel_without_id_is_refused() -> None:
    """A channel without an id cannot be keyed: the document is invalid."""
    body = (
        f"<InputProxyChannelList {HIK}><InputProxyChannel><name>x</name>"
        "</InputProxyChannel></InputProxyChannelList>"
    )
    with pytest.raises(IsapiParseError):
        parse_channels(*parse_xml(body))


def test_wrong_document_is_refused() -> None:
    """Another document where the channel list belongs is a parse error."""
    with pytest.raises(IsapiParseError):
        parse_channels(*parse_xml(f"<DeviceInfo {HIK}><model>x</model></DeviceInfo>"))


def test_status_online_inside_descriptor() -> None:
    """Hikvision's web SDK reads `online` inside the descriptor; both are read."""
    body = (
        f"<InputProxyChannelStatusList {HIK}>"
        "<InputProxyChannelStatus><id>1</id><sourceInputPortDescriptor>"
        "<online>false</online></sourceInputPortDescriptor>"
        "</InputProxyChannelStatus>"
        "<InputProxyChannelStatus><id>2</id><online>true</online>"
        "<chanDetectResult>online</chanDetectResult></InputProxyChannelStatus>"
        "<InputProxyChannelStatus><online>true</online></InputProxyChannelStatus>"
        "</InputProxyChannelStatusList>"
    )
    assert parse_channel_status(*parse_xml(body)) == {
        "1": ChannelStatus(channel_id="1", online=False, detect_result=None),
        "2": ChannelStatus(channel_id="2", online=True, detect_result="online"),
    }
