"""The ONVIF protocol layer against the loopback Bosch FLEXIDOME simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
import datetime as dt
import hashlib
from pathlib import Path
import re
from typing import Any
from xml.etree import ElementTree as ET

import aiohttp
from aiohttp import web
from onvif import ONVIFCamera  # type: ignore[import-untyped]
from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError  # type: ignore[import-untyped]
import pytest
from zeep import exceptions as zeep_exceptions

from custom_components.firmware_hub.kinds.onvif.protocol import (
    EncoderChanges,
    ImagingSettings,
    OnvifAuthError,
    OnvifClient,
    OnvifConnectionError,
    OnvifError,
    OnvifFaultError,
    OnvifNotSupportedError,
    OnvifParseError,
    OnvifTimeoutError,
    OnvifUploadError,
    Range,
    Resolution,
    changes,
    client as onvif_client,
    discovery,
    errors,
    messages,
    models,
    upload,
)

from .simulators.onvif import DEFAULT_FIXTURES_DIR, OnvifCameraSimulator

CAPTURE = DEFAULT_FIXTURES_DIR
# zeep's exception constructors are untyped.
Fault: Any = zeep_exceptions.Fault
TransportError: Any = zeep_exceptions.TransportError
XMLParseError: Any = zeep_exceptions.XMLParseError
FULL_IMAGING: dict[str, Any] = {
    "BacklightCompensation": {"Mode": "OFF", "Level": 10},
    "Brightness": 50,
    "ColorSaturation": 60,
    "Contrast": 70,
    "Exposure": {"Mode": "AUTO"},
    "IrCutFilter": "AUTO",
    "Sharpness": 40,
    "WideDynamicRange": {"Mode": "ON", "Level": 50},
}


def _client(sim: OnvifCameraSimulator, **kwargs: Any) -> OnvifClient:
    options: dict[str, Any] = {
        "host": sim.host,
        "port": sim.port,
        "username": sim.username,
        "password": sim.password,
        "timeout": 5.0,
    }
    options.update(kwargs)
    return OnvifClient(**options)


def _connected(client: OnvifClient) -> bool:
    """Whether the client's services are set up (it knows their XAddrs)."""
    return bool(client.xaddrs)


@pytest.fixture
async def sim(socket_enabled: None) -> AsyncGenerator[OnvifCameraSimulator]:
    """The Bosch FLEXIDOME camera on loopback."""
    camera = OnvifCameraSimulator()
    await camera.start()
    yield camera
    await camera.stop()


@pytest.fixture
async def client(sim: OnvifCameraSimulator) -> AsyncGenerator[OnvifClient]:
    """A connected client of ``sim``."""
    onvif_client = _client(sim)
    await onvif_client.connect()
    yield onvif_client
    await onvif_client.close()


@pytest.fixture
async def http(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """An aiohttp session standing in for Home Assistant's."""
    async with aiohttp.ClientSession() as session:
        yield session


async def _serve(
    handler: Callable[[web.Request], Any],
) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site.port


# ---------------------------------------------------------------------- simulator


async def test_simulator_serves_the_capture_verbatim(sim: OnvifCameraSimulator) -> None:
    """Unchanged state renders exactly the captured bytes (XAddrs aside)."""
    root = re.compile(r"<[^>]*Body>(.*)</[^>]*Body>", re.DOTALL)
    for operation, handler, request in (
        ("GetProfiles", sim._get_profiles, None),
        (
            "GetImagingSettings",
            sim._get_imaging,
            "<VideoSourceToken>1</VideoSourceToken>",
        ),
        (
            "GetVideoEncoderConfiguration",
            sim._get_encoder,
            "<ConfigurationToken>EncCfg_L1S1</ConfigurationToken>",
        ),
        ("GetDeviceInformation", sim._get_device_information, None),
    ):
        element = proto_element(request)
        served = handler(element).body.decode()
        captured = (CAPTURE / f"{operation}.response.xml").read_text(encoding="utf-8")
        assert served == captured.replace("http://192.168.1.201", sim.url)
        assert root.search(served)


def proto_element(inner: str | None) -> ET.Element:
    """Build a request element for calling simulator handlers directly."""
    return ET.fromstring(f"<Op>{inner or ''}</Op>")  # noqa: S314


# ---------------------------------------------------------------------- identity


async def test_connect_identity_and_mac(
    sim: OnvifCameraSimulator, client: OnvifClient
) -> None:
    """Connect costs two calls; identity is the capture's; the MAC is normalised."""
    assert _connected(client)
    assert dict(sim.calls) == {"GetSystemDateAndTime": 1, "GetServices": 1}
    assert client.xaddrs[onvif_client.NS_MEDIA] == f"{sim.url}/onvif/media_service"
    assert client.clock_offset is not None
    assert abs(client.clock_offset) < 2
    assert client.host == sim.host

    info = await client.get_device_information()
    assert info == models.DeviceInformation(
        manufacturer="Bosch",
        model="FLEXIDOME indoor 5100i IR",
        firmware_version="8.71.0066",
        serial_number="404754734001050102",
        hardware_id="F000B543",
    )
    interfaces = await client.get_network_interfaces()
    assert interfaces == (
        models.NetworkInterface(
            token="1", enabled=True, name="eth0", mac_address="00:07:5f:9c:4e:21"
        ),
    )
    assert await client.get_mac_address() == "00:07:5f:9c:4e:21"
    # Services are created once and reused: no second GetServices.
    assert sim.count("GetServices") == 1
    assert sim.count("GetSystemDateAndTime") == 1


async def test_context_manager_closes(sim: OnvifCameraSimulator) -> None:
    """The client is an async context manager; close() is idempotent."""
    states: list[bool] = []
    async with _client(sim) as client:
        states.append(_connected(client))
        await client.connect()  # already connected: nothing happens
    states.append(_connected(client))
    await client.close()
    assert states == [True, False]
    assert sim.count("GetServices") == 1


async def test_first_call_connects(sim: OnvifCameraSimulator) -> None:
    """A call on a fresh client connects first."""
    client = _client(sim)
    try:
        assert (await client.get_device_information()).model
        assert _connected(client)
    finally:
        await client.close()


async def test_fallback_to_get_capabilities(socket_enabled: None) -> None:
    """A camera without GetServices is found through the captured GetCapabilities."""
    sim = OnvifCameraSimulator(get_services=False)
    await sim.start()
    try:
        async with _client(sim) as client:
            assert sim.count("GetCapabilities") == 1
            assert (
                client.xaddrs[onvif_client.NS_IMAGING]
                == f"{sim.url}/onvif/imaging_service"
            )
            assert (await client.get_imaging_settings("1")).brightness == 128.0
    finally:
        await sim.stop()


# ---------------------------------------------------------------------- media


async def test_profiles_and_encoders_have_the_captured_values(
    client: OnvifClient,
) -> None:
    """Four H.264 profiles with the capture's resolutions, bitrates and GOV."""
    profiles = await client.get_profiles()
    assert [p.token for p in profiles] == ["0", "1", "2", "3"]
    assert [p.name for p in profiles] == [
        "Profile_L1S1",
        "Profile_L1S2",
        "Profile_L1S3",
        "Profile_L1S4",
    ]
    assert {p.video_source_token for p in profiles} == {"1"}
    encoders = [p.video_encoder for p in profiles]
    assert all(e is not None for e in encoders)
    assert [(e.token, str(e.resolution), e.bitrate_kbps) for e in encoders if e] == [
        ("EncCfg_L1S1", "1920x1080", 5200),
        ("EncCfg_L1S2", "1536x864", 3400),
        ("EncCfg_L1S3", "1280x720", 2400),
        ("EncCfg_L1S4", "512x288", 400),
    ]
    first = encoders[0]
    assert first == models.VideoEncoderConfiguration(
        token="EncCfg_L1S1",
        name="Balanced 2 MP",
        encoding="H264",
        resolution=Resolution(1920, 1080),
        fps=30,
        bitrate_kbps=5200,
        gov_length=255,
        quality=0.0,
        encoding_interval=1,
        codec_profile="Main",
    )
    assert await client.get_video_encoder_configuration("EncCfg_L1S1") == first
    assert tuple(await client.get_video_encoder_configurations()) == tuple(encoders)


async def test_encoder_options(client: OnvifClient) -> None:
    """Ranges and allowed values, including the BitrateRange from the Extension."""
    options = await client.get_video_encoder_options("EncCfg_L1S1", "0")
    assert options.quality_range == Range(0, 100)
    h264 = options.get("H264")
    assert h264 is not None
    assert Resolution(1920, 1080) in h264.resolutions
    assert len(h264.resolutions) == 6
    assert h264.fps_range == Range(1, 30)
    assert h264.gov_length_range == Range(1, 255)
    assert h264.bitrate_range == Range(64, 12000)
    assert h264.encoding_interval_range == Range(1, 1)
    assert h264.codec_profiles == ("Baseline", "Main", "High")
    jpeg = options.get("JPEG")
    assert jpeg is not None
    assert jpeg.gov_length_range is None
    assert jpeg.bitrate_range == Range(64, 12000)
    assert options.get("MPEG4") is None
    assert await client.get_video_encoder_options("EncCfg_L1S4") == options
    assert 30 in h264.fps_range
    assert 31 not in h264.fps_range
    assert True not in h264.fps_range
    assert "30" not in h264.fps_range


async def test_set_encoder_and_read_back(
    sim: OnvifCameraSimulator, client: OnvifClient
) -> None:
    """A Set with ForcePersistence changes what GetProfiles reports."""
    changes = EncoderChanges(
        resolution=Resolution(1280, 720),
        fps=15,
        bitrate_kbps=2000,
        gov_length=60,
        quality=50,
        encoding="H264",
    )
    await client.set_video_encoder_configuration("EncCfg_L1S1", changes)
    sent = sim.last_requests["SetVideoEncoderConfiguration"]
    assert b"ForcePersistence>true<" in sent
    encoder = await client.get_video_encoder_configuration("EncCfg_L1S1")
    assert (
        str(encoder.resolution),
        encoder.fps,
        encoder.bitrate_kbps,
        encoder.gov_length,
        encoder.quality,
        encoder.encoding,
    ) == ("1280x720", 15, 2000, 60, 50.0, "H264")
    assert encoder.name == "Balanced 2 MP"  # untouched fields are sent back as read
    profiles = await client.get_profiles()
    assert profiles[0].video_encoder == encoder
    assert sim.encoder("EncCfg_L1S2").fps == 30  # other configurations unchanged

    calls = sim.total_calls
    await client.set_video_encoder_configuration("EncCfg_L1S1", EncoderChanges())
    assert sim.total_calls == calls  # nothing to change: nothing sent


async def test_ignored_field_stays_unchanged(
    sim: OnvifCameraSimulator, client: OnvifClient
) -> None:
    """A camera that ignores a field answers OK; reading back shows the truth."""
    sim.ignored_fields = {"FrameRateLimit", "Brightness"}
    await client.set_video_encoder_configuration(
        "EncCfg_L1S1", EncoderChanges(fps=10, bitrate_kbps=1000)
    )
    encoder = await client.get_video_encoder_configuration("EncCfg_L1S1")
    assert (encoder.fps, encoder.bitrate_kbps) == (30, 1000)
    await client.set_imaging_settings("1", ImagingSettings(brightness=10, contrast=20))
    imaging = await client.get_imaging_settings("1")
    assert (imaging.brightness, imaging.contrast) == (128.0, 20.0)


async def test_config_modify_fault(
    sim: OnvifCameraSimulator, client: OnvifClient
) -> None:
    """Faults carry their subcodes; out-of-range values fault the same way."""
    sim.config_modify_fault = True
    with pytest.raises(OnvifFaultError) as err:
        await client.set_video_encoder_configuration(
            "EncCfg_L1S1", EncoderChanges(fps=10)
        )
    assert err.value.subcode == "ConfigModify"
    assert err.value.subcodes == ("InvalidArgVal", "ConfigModify")
    assert err.value.code == "Sender"
    assert err.value.operation == "SetVideoEncoderConfiguration"
    assert "ConfigModify" in str(err.value)
    with pytest.raises(OnvifFaultError) as imaging_err:
        await client.set_imaging_settings("1", ImagingSettings(brightness=1))
    assert imaging_err.value.subcode == "SettingsInvalid"

    sim.config_modify_fault = False
    with pytest.raises(OnvifFaultError) as range_err:
        await client.set_video_encoder_configuration(
            "EncCfg_L1S1", EncoderChanges(fps=99)
        )
    assert range_err.value.subcode == "ConfigModify"
    assert sim.encoder("EncCfg_L1S1").fps == 30
    with pytest.raises(OnvifFaultError) as token_err:
        await client.get_video_encoder_configuration("nope")
    assert token_err.value.subcode == "NoConfig"


async def test_unsupported_operation_fault(client: OnvifClient) -> None:
    """An operation the camera lacks is a fault with ActionNotSupported."""
    with pytest.raises(OnvifFaultError) as err:
        await client.call("devicemgmt", "GetHostname")
    assert err.value.subcode == "ActionNotSupported"
    assert err.value.code == "Receiver"


# ---------------------------------------------------------------------- imaging


async def test_bosch_imaging_reports_three_fields(
    sim: OnvifCameraSimulator, client: OnvifClient
) -> None:
    """Bosch reports brightness, saturation and contrast only; the rest stays None."""
    settings = await client.get_imaging_settings("1")
    assert settings == ImagingSettings(
        brightness=128.0, contrast=128.0, saturation=128.0
    )
    assert settings.reported() == {
        "brightness": 128.0,
        "contrast": 128.0,
        "saturation": 128.0,
    }
    options = await client.get_imaging_options("1")
    assert options == models.ImagingOptions(
        brightness=Range(0, 255), contrast=Range(0, 255), saturation=Range(0, 255)
    )
    await client.set_imaging_settings("1", ImagingSettings(brightness=100))
    sent = sim.last_requests["SetImagingSettings"]
    assert b"ForcePersistence>true<" in sent
    assert b"Sharpness" not in sent  # only what the camera reported is sent back
    after = await client.get_imaging_settings("1")
    assert after == ImagingSettings(brightness=100.0, contrast=128.0, saturation=128.0)
    with pytest.raises(OnvifFaultError) as err:
        await client.set_imaging_settings("1", ImagingSettings(sharpness=5))
    assert err.value.subcode == "SettingsInvalid"
    calls = sim.total_calls
    await client.set_imaging_settings("1", ImagingSettings())
    assert sim.total_calls == calls


async def test_full_imaging_camera(socket_enabled: None) -> None:
    """A camera that reports every field: parse, options, set and read back."""
    sim = OnvifCameraSimulator(imaging=FULL_IMAGING)
    await sim.start()
    try:
        async with _client(sim) as client:
            settings = await client.get_imaging_settings("1")
            assert settings == ImagingSettings(
                brightness=50.0,
                contrast=70.0,
                saturation=60.0,
                sharpness=40.0,
                ir_cut_filter="AUTO",
                wide_dynamic_range="ON",
                wide_dynamic_range_level=50.0,
                backlight_compensation="OFF",
                backlight_compensation_level=10.0,
                exposure_mode="AUTO",
            )
            options = await client.get_imaging_options("1")
            assert options.sharpness == Range(0, 255)
            assert options.ir_cut_filter_modes == ("ON", "OFF", "AUTO")
            assert options.wide_dynamic_range_modes == ("OFF", "ON")
            assert options.wide_dynamic_range_level == Range(0, 100)
            assert options.backlight_compensation_modes == ("OFF", "ON")
            assert options.exposure_modes == ("AUTO", "MANUAL")
            await client.set_imaging_settings(
                "1",
                ImagingSettings(
                    sharpness=80,
                    ir_cut_filter="OFF",
                    wide_dynamic_range_level=70,
                    backlight_compensation="ON",
                    exposure_mode="MANUAL",
                ),
            )
            after = await client.get_imaging_settings("1")
            assert (
                after.sharpness,
                after.ir_cut_filter,
                after.wide_dynamic_range,
                after.wide_dynamic_range_level,
                after.backlight_compensation,
                after.backlight_compensation_level,
                after.exposure_mode,
                after.brightness,
            ) == (80.0, "OFF", "ON", 70.0, "ON", 10.0, "MANUAL", 50.0)
    finally:
        await sim.stop()


async def test_missing_services(socket_enabled: None) -> None:
    """No imaging service: a clear error; no media service: connect fails."""
    sim = OnvifCameraSimulator(services=("device", "media"))
    await sim.start()
    try:
        async with _client(sim) as client:
            with pytest.raises(OnvifNotSupportedError):
                await client.get_imaging_settings("1")
        sim.services = ("device", "imaging")
        client = _client(sim)
        with pytest.raises(OnvifNotSupportedError):
            await client.connect()
        assert not _connected(client)
    finally:
        await sim.stop()


# ---------------------------------------------------------------------- auth


async def test_wrong_password(sim: OnvifCameraSimulator) -> None:
    """NotAuthorized at connect is an OnvifAuthError, and nothing stays open."""
    client = _client(sim, password="wrong")
    with pytest.raises(OnvifAuthError):
        await client.connect()
    assert not _connected(client)
    assert any(call.fault == "NotAuthorized" for call in sim.soap_calls)


async def test_password_changed_after_connect(
    sim: OnvifCameraSimulator, client: OnvifClient
) -> None:
    """A refused call reconnects once (new clock reading), then reports auth."""
    await client.get_device_information()
    sim.password = "changed"
    with pytest.raises(OnvifAuthError):
        await client.get_device_information()
    assert sim.count("GetSystemDateAndTime") == 2


async def test_clock_offset_still_authenticates(socket_enabled: None) -> None:
    """A camera an hour ahead: uncorrected digests fail, the client's work."""
    sim = OnvifCameraSimulator(clock_offset=3600)
    await sim.start()
    try:
        naive = ONVIFCamera(
            sim.host, sim.port, sim.username, sim.password, no_cache=True
        )
        try:
            with pytest.raises(Fault):
                await naive.update_xaddrs()
        finally:
            await naive.close()
        async with _client(sim) as client:
            assert client.clock_offset is not None
            assert abs(client.clock_offset - 3600) < 3
            assert (await client.get_device_information()).serial_number
    finally:
        await sim.stop()


async def test_clock_jump_after_connect(
    sim: OnvifCameraSimulator, client: OnvifClient
) -> None:
    """The camera clock jumps: concurrent calls reconnect once and succeed."""
    await client.get_device_information()
    sim.clock_offset = -7200
    first, second = await asyncio.gather(
        client.get_device_information(), client.get_profiles()
    )
    assert first.model
    assert len(second) == 4
    assert sim.count("GetSystemDateAndTime") == 2
    assert client.clock_offset is not None
    assert abs(client.clock_offset + 7200) < 3


async def test_camera_without_utc_time(socket_enabled: None) -> None:
    """LocalDateTime only: the library cannot measure the offset; go on without."""
    sim = OnvifCameraSimulator(utc_date_time=False)
    await sim.start()
    try:
        async with _client(sim) as client:
            assert client.clock_offset is None
            assert (await client.get_device_information()).model
    finally:
        await sim.stop()


# ---------------------------------------------------------------------- reboot


async def test_reboot_offline_then_back(
    sim: OnvifCameraSimulator, client: OnvifClient
) -> None:
    """SystemReboot answers, the camera refuses connections, then comes back."""
    assert await client.system_reboot() == "Rebooting in 1 seconds"
    while sim.is_online:
        await asyncio.sleep(0.01)
    with pytest.raises(OnvifConnectionError) as err:
        await client.get_device_information()
    assert not isinstance(err.value, OnvifTimeoutError)
    await sim.wait_online()
    assert (await client.get_device_information()).firmware_version == "8.71.0066"
    assert [name for _t, name in sim.events] == ["reboot_started", "reboot_finished"]


# ---------------------------------------------------------------------- firmware


async def test_firmware_upload(
    sim: OnvifCameraSimulator,
    client: OnvifClient,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """Start, stream the open file, camera offline for ExpectedDownTime, new version."""
    sim.upload_delay = 0.05
    ticket = await client.start_firmware_upgrade()
    assert ticket.upload_uri.startswith(f"{sim.url}/onvif/firmware_upload/")
    assert ticket.upload_delay == pytest.approx(0.05)
    assert ticket.expected_down_time == pytest.approx(0.3)
    firmware = tmp_path / "FLEXIDOME_8.71.0080.fw"
    content = bytes(range(256)) * 1200 + b"tail"  # ~300 KB, several chunks
    firmware.write_bytes(content)
    seen: list[tuple[int, int]] = []

    with firmware.open("rb") as file:
        with pytest.raises(OnvifUploadError) as early:
            await upload.upload_firmware(http, ticket.upload_uri, file)
        assert early.value.status == 503
        assert not sim.uploads

        await asyncio.sleep(ticket.upload_delay)
        file.seek(0)
        await upload.upload_firmware(
            http,
            ticket.upload_uri,
            file,
            progress=lambda sent, total: seen.append((sent, total)),
        )
        assert not file.closed  # the caller's file: the caller closes it
    record = sim.uploads[-1]
    assert (record.status, record.size) == (200, len(content))
    assert record.sha256 == hashlib.sha256(content).hexdigest()
    assert record.content_type == "application/octet-stream"
    assert not record.chunked  # Content-Length, not chunked
    assert len(seen) == 5
    assert seen[-1] == (len(content), len(content))

    await sim.wait_online()
    info = await client.get_device_information()
    assert info.firmware_version == "8.71.0080"
    assert [name for _t, name in sim.events] == [
        "upload_200",
        "upgrade_started",
        "upgrade_finished",
    ]


async def test_firmware_upload_refused(
    sim: OnvifCameraSimulator,
    client: OnvifClient,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """A file the camera rejects: 415, and the camera keeps its firmware."""
    sim.reject_firmware = True
    ticket = await client.start_firmware_upgrade()
    firmware = tmp_path / "bad.bin"
    firmware.write_bytes(b"not a firmware")
    with firmware.open("rb") as file, pytest.raises(OnvifUploadError) as err:
        await upload.upload_firmware(http, ticket.upload_uri, file)
    assert err.value.status == 415
    assert "unsupported firmware file" in str(err.value)
    assert [(u.status, u.size) for u in sim.uploads] == [(415, 14)]
    assert sim.is_online
    assert (await client.get_device_information()).firmware_version == "8.71.0066"


async def test_firmware_upload_answered_mid_body(
    socket_enabled: None, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A camera refusing before it read the body: the client stops, the file stays."""
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(b"x" * (8 * 1024 * 1024))
    requests: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        requests.append(request.path)
        return web.Response(status=503, text="busy")

    app = web.Application()
    app.router.add_post("/up", refuse)
    # No lingering: aiohttp's server closes a connection whose body it did not read.
    runner = web.AppRunner(app, access_log=None, lingering_time=0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        with firmware.open("rb") as file:
            with pytest.raises(OnvifUploadError) as err:
                await upload.upload_firmware(
                    http, f"http://127.0.0.1:{site.port}/up", file
                )
            assert file.read(1) in {b"x", b""}  # still open and usable
    finally:
        await runner.cleanup()
    assert err.value.status == 503
    assert requests == ["/up"]


async def test_firmware_upload_transport_errors(
    socket_enabled: None, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Refused connection and a stalled answer are typed."""
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(b"x" * 10)

    release = asyncio.Event()

    async def stall(_request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    runner, port = await _serve(stall)
    await runner.cleanup()  # nothing listens there any more
    with firmware.open("rb") as file, pytest.raises(OnvifConnectionError):
        await upload.upload_firmware(http, f"http://127.0.0.1:{port}/up", file)

    runner, port = await _serve(stall)
    try:
        with firmware.open("rb") as file, pytest.raises(OnvifTimeoutError):
            await upload.upload_firmware(
                http, f"http://127.0.0.1:{port}/up", file, upload_timeout=0.2
            )
    finally:
        release.set()
        await runner.cleanup()


async def test_firmware_upload_file_errors(
    socket_enabled: None, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A file that cannot be read, or that shrinks: OSError, not a device error."""
    received: list[int] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(len(await request.read()))
        return web.Response()

    runner, port = await _serve(receive)
    url = f"http://127.0.0.1:{port}/up"
    firmware = tmp_path / "fw.bin"
    try:
        with firmware.open("wb") as file:  # open for writing only: reads fail
            file.write(b"x" * 10)
            file.seek(0)
            with pytest.raises(OSError, match="read"):
                await upload.upload_firmware(http, url, file)

        firmware.write_bytes(b"x" * 200_000)

        def shrink(sent: int, _total: int) -> None:
            if sent == 65536:
                firmware.write_bytes(b"x" * 70_000)

        with firmware.open("rb") as file, pytest.raises(OSError, match="ended"):
            await upload.upload_firmware(http, url, file, progress=shrink)
    finally:
        await runner.cleanup()
    assert received == []  # no complete upload reached the camera


# ---------------------------------------------------------------------- transport


async def test_unreachable_and_silent_cameras(socket_enabled: None) -> None:
    """Refused: OnvifConnectionError; accepted but silent: OnvifTimeoutError."""

    async def ok(_request: web.Request) -> web.Response:
        return web.Response()

    runner, port = await _serve(ok)
    await runner.cleanup()
    client = OnvifClient(host="127.0.0.1", port=port, username="u", password="p")
    with pytest.raises(OnvifConnectionError):
        await client.connect()
    assert not _connected(client)

    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = OnvifClient(
            host="127.0.0.1", port=port, username="u", password="p", timeout=0.2
        )
        with pytest.raises(OnvifTimeoutError):
            await client.connect()
        assert not _connected(client)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, b"<html><body>router login</body></html>", OnvifParseError),
        (200, b"not xml at all", OnvifParseError),
        (401, b"", OnvifAuthError),
        (404, b"", OnvifConnectionError),
    ],
)
async def test_not_an_onvif_camera(
    socket_enabled: None, status: int, body: bytes, error: type[OnvifError]
) -> None:
    """Web servers that are not cameras give typed errors, never raw ones."""

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="text/html")

    runner, port = await _serve(answer)
    try:
        client = OnvifClient(host="127.0.0.1", port=port, username="u", password="p")
        with pytest.raises(error):
            await client.connect()
        assert not _connected(client)
    finally:
        await runner.cleanup()


async def test_empty_soap_answers(socket_enabled: None) -> None:
    """A SOAP server answering empty bodies is not an ONVIF camera."""
    envelope = (
        b'<?xml version="1.0"?><e:Envelope'
        b' xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>'
        b"</e:Body></e:Envelope>"
    )

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=envelope, content_type="application/soap+xml")

    runner, port = await _serve(answer)
    try:
        client = OnvifClient(host="127.0.0.1", port=port, username="u", password="p")
        with pytest.raises(OnvifParseError):
            await client.connect()
        assert not _connected(client)
    finally:
        await runner.cleanup()


async def test_close_on_every_connect_failure(
    sim: OnvifCameraSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ONVIFCamera the client creates is closed, also when connect fails."""
    cameras: list[Any] = []
    closed: list[Any] = []

    class Recording(ONVIFCamera):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            cameras.append(self)

        async def close(self) -> None:
            closed.append(self)
            await super().close()

    monkeypatch.setattr(onvif_client, "ONVIFCamera", Recording)
    bad = _client(sim, password="wrong")
    with pytest.raises(OnvifAuthError):
        await bad.connect()
    good = _client(sim)
    await good.connect()
    await good.get_imaging_settings("1")
    await good.close()
    assert cameras == closed
    assert len(cameras) == 2


# ---------------------------------------------------------------------- discovery


async def test_directed_unicast_discovery(sim: OnvifCameraSimulator) -> None:
    """A unicast probe to the loopback responder finds the camera's XAddr."""
    port = await sim.start_discovery()
    assert sim.discovery_port == port
    found = await asyncio.to_thread(
        discovery.discover_cameras, address="127.0.0.1", port=port, timeout=3
    )
    assert len(found) == 1
    camera = found[0]
    assert camera.xaddrs == (sim.device_service_url,)
    assert (camera.host, camera.port) == ("127.0.0.1", sim.port)
    assert camera.name == "Bosch FLEXIDOME indoor 5100i IR"
    assert camera.hardware == "FLEXIDOME indoor 5100i IR"
    assert camera.mac_address is None
    assert camera.endpoint_reference == sim.endpoint_reference
    assert "onvif://www.onvif.org/Profile/Streaming" in camera.scopes
    assert sim.probes_answered == 1


async def test_discovery_with_mac_scope_and_silence(socket_enabled: None) -> None:
    """A MAC scope is normalised; a silent address gives an empty list."""
    sim = OnvifCameraSimulator(
        scopes=(
            "onvif://www.onvif.org/name/Cam%201",
            "onvif://www.onvif.org/MAC/00-07-5F-9C-4E-21",
        )
    )
    await sim.start()
    try:
        port = await sim.start_discovery()
        (camera,) = await asyncio.to_thread(
            discovery.discover_cameras, address="127.0.0.1", port=port, timeout=3
        )
        assert (camera.name, camera.mac_address) == ("Cam 1", "00:07:5f:9c:4e:21")
        assert camera.hardware is None
        await sim.stop()  # the responder is gone: nobody answers
        assert (
            await asyncio.to_thread(
                discovery.discover_cameras, address="127.0.0.1", port=port, timeout=0.2
            )
            == []
        )
    finally:
        await sim.stop()


def test_multicast_discovery_at_the_library_boundary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without an address, WSDiscovery runs as in Home Assistant core (faked here)."""
    calls: list[str] = []

    class Scope:
        def __init__(self, value: str) -> None:
            self.value = value

        def getValue(self) -> str:  # noqa: N802 - the library's API
            return self.value

    class Service:
        def __init__(self, epr: str, xaddrs: list[str]) -> None:
            self.epr = epr
            self.xaddrs = xaddrs

        def getEPR(self) -> str:  # noqa: N802
            return self.epr

        def getXAddrs(self) -> list[str]:  # noqa: N802
            return self.xaddrs

        def getScopes(self) -> list[Scope]:  # noqa: N802
            return [Scope("onvif://www.onvif.org/hardware/IPC%2D1")]

    class FakeDiscovery:
        def __init__(self, **kwargs: Any) -> None:
            calls.append(f"init {sorted(kwargs.items())}")

        def start(self) -> None:
            calls.append("start")

        def searchServices(self, **kwargs: Any) -> list[Service]:  # noqa: N802
            types = kwargs["types"]
            calls.append(f"search {types[0].getLocalname()} {kwargs['timeout']}")
            return [
                Service("urn:a", ["https://10.0.0.5/onvif/device_service"]),
                Service("urn:a", ["https://10.0.0.5/onvif/device_service"]),
                Service("urn:b", ["soap.udp://x", "http://[fe80::1]:8080/onvif"]),
                Service("urn:c", []),
            ]

        def stop(self) -> None:
            calls.append("stop")

    monkeypatch.setattr(discovery, "WSDiscovery", FakeDiscovery)
    found = discovery.discover_cameras(timeout=1)
    assert calls == [
        "init [('relates_to', True), ('ttl', 4)]",
        "start",
        "search NetworkVideoTransmitter 1",
        "stop",
    ]
    assert [(c.endpoint_reference, c.host, c.port, c.hardware) for c in found] == [
        ("urn:a", "10.0.0.5", 443, "IPC-1"),
        ("urn:b", "fe80::1", 8080, "IPC-1"),
        ("urn:c", None, 80, "IPC-1"),
    ]

    class BrokenDiscovery(FakeDiscovery):
        def start(self) -> None:
            raise OSError("address in use")

    monkeypatch.setattr(discovery, "WSDiscovery", BrokenDiscovery)
    with pytest.raises(OnvifConnectionError):
        discovery.discover_cameras(timeout=1)


# ---------------------------------------------------------------------- units


def test_translate_error() -> None:
    """Library, zeep and aiohttp exceptions map to the typed errors."""
    cases: list[tuple[BaseException, type[OnvifError] | None]] = [
        (ONVIFAuthError("snapshot"), OnvifAuthError),
        (ONVIFTimeoutError("slow"), OnvifTimeoutError),
        (TimeoutError(), OnvifTimeoutError),
        (ONVIFError("wsdl"), OnvifError),
        (XMLParseError("bad"), OnvifParseError),
        (TransportError("x", status_code=403), OnvifAuthError),
        (TransportError("x", status_code=500), OnvifConnectionError),
        (TransportError("invalid XML", status_code=200), OnvifParseError),
        (aiohttp.ClientPayloadError("cut"), OnvifConnectionError),
        (Fault("Sender not Authorized", subcodes=None), OnvifAuthError),
        (IndexError("empty Body"), OnvifParseError),
        (RuntimeError("a bug"), None),
    ]
    for exception, expected in cases:
        error = errors.translate_error(exception, "Op")
        if expected is None:
            assert error is None
        else:
            assert type(error) is expected, exception
    same = OnvifParseError("x")
    assert errors.translate_error(same, "Op") is same
    fault = errors.translate_error(Fault("boom", code="env:Receiver"), "Op")
    assert isinstance(fault, OnvifFaultError)
    assert (fault.code, fault.subcodes, fault.subcode) == ("Receiver", (), None)


def test_apply_encoder_changes() -> None:
    """Changes land in the right elements; impossible ones are refused."""
    jpeg = {
        "Encoding": "JPEG",
        "Resolution": {"Width": 640, "Height": 480},
        "RateControl": {"FrameRateLimit": 5, "EncodingInterval": 1, "BitrateLimit": 1},
        "H264": None,
    }
    switched = changes.apply_encoder_changes(jpeg, EncoderChanges(encoding="H264"))
    assert switched["H264"] == {"GovLength": 30, "H264Profile": "Main"}
    assert jpeg["H264"] is None  # the input is not modified
    with pytest.raises(OnvifNotSupportedError):
        changes.apply_encoder_changes(jpeg, EncoderChanges(gov_length=10))
    with pytest.raises(OnvifNotSupportedError):
        changes.apply_encoder_changes({"Encoding": "H264"}, EncoderChanges(fps=5))
    mpeg4 = changes.apply_encoder_changes(
        {"Encoding": "JPEG"}, EncoderChanges(encoding="MPEG4", gov_length=12)
    )
    assert mpeg4["MPEG4"] == {"GovLength": 12, "Mpeg4Profile": "SP"}
    unchanged = changes.apply_encoder_changes(
        jpeg, EncoderChanges(quality=1, bitrate_kbps=64)
    )
    assert (unchanged["Quality"], unchanged["RateControl"]["FrameRateLimit"]) == (1, 5)
    assert unchanged["RateControl"]["BitrateLimit"] == 64
    assert EncoderChanges().is_empty()
    assert not EncoderChanges(quality=1).is_empty()


def test_apply_imaging_changes() -> None:
    """Mode/level pairs keep what the camera had; a level alone needs a mode."""
    current = {"Brightness": 1.0, "WideDynamicRange": {"Mode": "ON", "Level": 5.0}}
    new = changes.apply_imaging_changes(
        current, ImagingSettings(wide_dynamic_range="OFF", saturation=3)
    )
    assert new["WideDynamicRange"] == {"Mode": "OFF", "Level": 5.0}
    assert new["ColorSaturation"] == 3.0
    assert current["WideDynamicRange"] == {"Mode": "ON", "Level": 5.0}
    with pytest.raises(OnvifNotSupportedError):
        changes.apply_imaging_changes(
            {}, ImagingSettings(backlight_compensation_level=3)
        )


def test_small_parsers() -> None:
    """MAC, resolution, durations, discovery scopes, odd shapes."""
    assert messages.normalize_mac("00-07-5F-9C-4E-21") == "00:07:5f:9c:4e:21"
    assert messages.normalize_mac("0007.5f9c.4e21") == "00:07:5f:9c:4e:21"
    assert messages.normalize_mac("00:00:00:00:00:00") is None
    assert messages.normalize_mac("nonsense") is None
    assert messages.normalize_mac(None) is None
    assert Resolution.parse(" 1920 X 1080 ") == Resolution(1920, 1080)
    with pytest.raises(ValueError, match="WxH"):
        Resolution.parse("big")
    assert messages.seconds(dt.timedelta(seconds=90)) == 90

    class Months:  # isodate.Duration (years and months) converts from a start
        def totimedelta(self, start: dt.datetime) -> dt.timedelta:
            return dt.timedelta(days=31) if start.tzinfo else dt.timedelta()

    assert messages.seconds(Months()) == 31 * 86400
    assert messages.seconds("PT5S") is None
    assert (
        messages.parse_network_interfaces(
            {"Enabled": True, "Info": {"HwAddress": "AA:BB:CC:DD:EE:FF"}}
        )[0].mac_address
        == "aa:bb:cc:dd:ee:ff"
    )
    assert (
        messages.mac_from_interfaces(
            messages.parse_network_interfaces(
                [
                    {"Enabled": True, "Info": {"HwAddress": "02:00:00:00:00:01"}},
                    {"Enabled": False, "Info": {"HwAddress": "02:00:00:00:00:02"}},
                    {"Enabled": True, "Info": {"HwAddress": "02:00:00:00:00:03"}},
                    None,
                ]
            )
        )
        == "02:00:00:00:00:03"
    )
    assert messages.parse_profiles(
        [None, {"token": "p", "VideoEncoderConfiguration": None}]
    )[0] == models.MediaProfile(
        token="p", name=None, video_source_token=None, video_encoder=None
    )
    encoder = messages.parse_video_encoder_configuration(
        {"token": "t", "Encoding": "JPEG", "MPEG4": {"GovLength": "7"}, "Quality": "x"}
    )
    assert (encoder.gov_length, encoder.quality, encoder.resolution) == (7, None, None)
    assert (
        messages.parse_video_encoder_options(
            {"H264": {"ResolutionsAvailable": [{"Width": 0, "Height": 1}]}}
        )
        .encodings[0]
        .resolutions
        == ()
    )
    assert messages._int(True) is None
    assert messages._int("x") is None
    assert messages._float(True) is None
    assert messages._strings("Main") == ("Main",)
    assert errors.local_name("{urn:x}Name") == "Name"
    assert errors.local_name("ter:Name") == "Name"
    assert changes._dicts({"a": [{"b": 1}]}) == {"a": [{"b": 1}]}
    camera = discovery.parse_discovered(
        "urn:x",
        ["http://10.0.0.9/onvif/device_service", ""],
        ["onvif://www.onvif.org/name/", "onvif://www.onvif.org/Name/Second%20try", ""],
    )
    assert (camera.name, camera.xaddrs, camera.port) == (
        "Second try",
        ("http://10.0.0.9/onvif/device_service",),
        80,
    )


async def test_other_answer_shapes(
    sim: OnvifCameraSimulator, client: OnvifClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answer shapes the simulator does not produce: relative URI, none, a Message."""
    answers: list[Any] = [
        {"UploadUri": "/upload/1", "UploadDelay": None, "ExpectedDownTime": None},
        {"UploadUri": None},
        {"Message": "bye"},
    ]

    async def call(_service: str, _operation: str, _params: Any = None) -> Any:
        return answers.pop(0)

    monkeypatch.setattr(client, "call", call)
    ticket = await client.start_firmware_upgrade()
    assert ticket.upload_uri == f"{sim.url}/upload/1"  # joined to the device XAddr
    assert (ticket.upload_delay, ticket.expected_down_time) == (0.0, None)
    with pytest.raises(OnvifParseError):
        await client.start_firmware_upgrade()
    assert await client.system_reboot() == "bye"
