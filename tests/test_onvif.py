"""ONVIF cameras end to end, against the loopback Bosch FLEXIDOME simulator.

Config flow (WS-Discovery by a directed unicast probe to the simulator's loopback
responder, never multicast), sensors, apply-and-verify actions, restart, reauth, the
firmware file install and diagnostics.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import json
from pathlib import Path
import socket
from typing import Any

from homeassistant.components.update import UpdateEntityFeature
from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_USER, ConfigEntryState
from homeassistant.const import (
    ATTR_ENTITY_ID,
    ATTR_SUPPORTED_FEATURES,
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_USERNAME,
    EVENT_STATE_CHANGED,
    STATE_OFF,
    STATE_UNAVAILABLE,
    EntityCategory,
)
from homeassistant.core import Event, HomeAssistant, State, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.firmware_hub.const import (
    CONF_KIND,
    DOMAIN,
    EVENT_UPGRADE_FINISHED,
)
from custom_components.firmware_hub.kinds.onvif import (
    backend as onvif_backend,
    discovery as onvif_discovery,
)
from custom_components.firmware_hub.kinds.onvif.facts import (
    EncoderFacts,
    OnvifFacts,
    SourceImaging,
)
from custom_components.firmware_hub.kinds.onvif.install import OnvifTiming
from custom_components.firmware_hub.kinds.onvif.protocol import ImagingSettings
from custom_components.firmware_hub.kinds.onvif.protocol.client import NS_DEVICE
from custom_components.firmware_hub.kinds.onvif.sensors import onvif_sensors

from .helpers import hikvision_entry, setup_entry, unload_all, wait_until
from .simulators.isapi import IsapiCameraSimulator
from .simulators.onvif import OnvifCameraSimulator, _SoapFaultError

MAC = "00:07:5f:9c:4e:21"
SERIAL = "404754734001050102"
TITLE = "Bosch FLEXIDOME indoor 5100i IR"
SLUG = "bosch_flexidome_indoor_5100i_ir"
UPDATE = f"update.{SLUG}_firmware"
STATUS = f"sensor.{SLUG}_firmware_status"
VERSION = f"sensor.{SLUG}_firmware_version"
RESTART = f"button.{SLUG}_restart"
BRIGHTNESS = f"sensor.{SLUG}_brightness"
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


@pytest.fixture(autouse=True)
def fast_onvif(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll a rebooting camera every 20 ms (conftest keeps discovery on loopback)."""
    monkeypatch.setattr(
        onvif_backend,
        "DEFAULT_TIMING",
        OnvifTiming(poll_interval=0.02, reboot_timeout=1.0),
    )


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def sim(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncGenerator[OnvifCameraSimulator]:
    """The Bosch FLEXIDOME on loopback."""
    camera = OnvifCameraSimulator()
    await camera.start()
    yield camera
    await unload_all(hass)  # clients stop before the simulator
    await camera.stop()


def onvif_input(sim: OnvifCameraSimulator, **overrides: Any) -> dict[str, Any]:
    """Return what a user types into the onvif form for `sim`."""
    return {
        CONF_HOST: sim.host,
        CONF_PORT: sim.port,
        CONF_USERNAME: sim.username,
        CONF_PASSWORD: sim.password,
        **overrides,
    }


def onvif_entry(sim: OnvifCameraSimulator) -> MockConfigEntry:
    """Return a config entry for `sim` as the config flow creates it."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=TITLE,
        unique_id=MAC,
        data={CONF_KIND: "onvif", **onvif_input(sim)},
    )


async def _setup(hass: HomeAssistant, sim: OnvifCameraSimulator) -> MockConfigEntry:
    entry = onvif_entry(sim)
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    return entry


async def _poll(hass: HomeAssistant, *, settings: bool = False) -> None:
    """Run what the coordinator's poll timer runs (see tests/test_init.py).

    With `settings`, as when the check interval has elapsed (settings are read).
    """
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        coordinator = entry.runtime_data.coordinator
        if settings:
            coordinator.next_check = dt_util.utcnow()
        await coordinator.async_refresh()
    await hass.async_block_till_done()


async def _onvif_step(hass: HomeAssistant) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    return dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "onvif"}
        )
    )


def _suggested(result: dict[str, Any]) -> dict[str, Any]:
    return {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }


async def _call(
    hass: HomeAssistant, service: str, device_id: str, **data: Any
) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        service,
        {"device_id": device_id, **data},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    return dict(response)


def _device_id(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, str(entry.unique_id)), entry.entry_id
    )
    assert device is not None
    return device.id


# ---------------------------------------------------------------------- config flow


async def test_flow_discovery_list_and_pick(
    hass: HomeAssistant, sim: OnvifCameraSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directed unicast probe finds the camera; picking it fills the address."""
    port = await sim.start_discovery()
    monkeypatch.setattr(onvif_discovery, "DISCOVERY_TARGET", ("127.0.0.1", port))
    monkeypatch.setattr(onvif_discovery, "DISCOVERY_TIMEOUT", 3.0)
    result = await _onvif_step(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pick_device"
    assert sim.probes_answered == 1
    selector = result["data_schema"].schema["device"]
    options = selector.config["options"]
    choice = f"{sim.host}:{sim.port}"
    assert options == [
        {"value": choice, "label": f"{TITLE} ({choice})"},
        {"value": "manual", "label": "manual"},
    ]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"device": choice}
    )
    assert result["step_id"] == "onvif"
    assert _suggested(result) == {CONF_HOST: sim.host, CONF_PORT: sim.port}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], onvif_input(sim, password="wrong")
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], onvif_input(sim)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == TITLE  # the camera's name scope
    assert result["result"].unique_id == MAC
    assert result["data"] == {CONF_KIND: "onvif", **onvif_input(sim)}
    await hass.async_block_till_done()


async def test_flow_discovery_manual_entry(
    hass: HomeAssistant, sim: OnvifCameraSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Manual entry from the discovery list; the title is the device's."""
    port = await sim.start_discovery()
    monkeypatch.setattr(onvif_discovery, "DISCOVERY_TARGET", ("127.0.0.1", port))
    monkeypatch.setattr(onvif_discovery, "DISCOVERY_TIMEOUT", 3.0)
    result = await _onvif_step(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"device": "manual"}
    )
    assert result["step_id"] == "onvif"
    assert _suggested(result) == {}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], onvif_input(sim)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == TITLE
    await hass.async_block_till_done()


async def test_flow_nothing_found_and_errors(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """No camera answers: the address form; cannot_connect, invalid_host, success."""
    result = await _onvif_step(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "onvif"
    flow_id = result["flow_id"]
    result = await hass.config_entries.flow.async_configure(
        flow_id, onvif_input(sim, **{CONF_PORT: _free_tcp_port()})
    )
    assert result["errors"] == {"base": "cannot_connect"}
    assert _suggested(result)[CONF_HOST] == sim.host
    result = await hass.config_entries.flow.async_configure(
        flow_id, onvif_input(sim, **{CONF_HOST: "http://192.0.2.1/"})
    )
    assert result["errors"] == {CONF_HOST: "invalid_host"}
    result = await hass.config_entries.flow.async_configure(flow_id, onvif_input(sim))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == TITLE
    await hass.async_block_till_done()


async def test_flow_unsupported_device(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """An ONVIF device without a media service is not a camera this supports."""
    sim = OnvifCameraSimulator(services=("device", "imaging"))
    await sim.start()
    try:
        result = await _onvif_step(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], onvif_input(sim)
        )
        assert result["errors"] == {"base": "unsupported_device"}
    finally:
        await sim.stop()


async def test_flow_discovery_fails(
    hass: HomeAssistant, sim: OnvifCameraSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probe that cannot be sent finds nothing: the address form."""
    monkeypatch.setattr(onvif_discovery, "DISCOVERY_TARGET", ("256.0.0.1", 3702))
    result = await _onvif_step(hass)
    assert result["step_id"] == "onvif"


async def test_flow_already_configured(
    hass: HomeAssistant, sim: OnvifCameraSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured camera is not offered again; adding it anyway aborts."""
    entry = onvif_entry(sim)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_HOST: "localhost"}
    )
    # Entries of other kinds do not hide cameras.
    MockConfigEntry(domain=DOMAIN, data={CONF_KIND: "miling"}).add_to_hass(hass)
    port = await sim.start_discovery()
    monkeypatch.setattr(onvif_discovery, "DISCOVERY_TARGET", ("127.0.0.1", port))
    monkeypatch.setattr(onvif_discovery, "DISCOVERY_TIMEOUT", 3.0)
    sim.scopes = (*sim.scopes, f"onvif://www.onvif.org/MAC/{MAC.replace(':', '')}")
    result = await _onvif_step(hass)
    assert sim.probes_answered == 1
    assert result["step_id"] == "onvif"  # the only camera found is configured
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], onvif_input(sim)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == sim.host  # the address typed is kept


async def test_flow_reauth(hass: HomeAssistant, sim: OnvifCameraSimulator) -> None:
    """The password changed on the camera: polling starts reauth, which stores it."""
    entry = await _setup(hass, sim)
    sim.password = "N3w-password"
    await _poll(hass)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    # One refused call, then one reconnect (GetServices, and GetCapabilities as the
    # library's fallback) after re-reading the clock: no loop that locks the user out.
    refused = [call.operation for call in sim.soap_calls if call.fault]
    assert refused == ["GetDeviceInformation", "GetServices", "GetCapabilities"]
    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"],
        {CONF_USERNAME: sim.username, CONF_PASSWORD: "still-wrong"},
    )
    assert result["errors"] == {"base": "invalid_auth"}
    assert _suggested(result)[CONF_USERNAME] == sim.username
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: sim.username, CONF_PASSWORD: "N3w-password"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_PASSWORD] == "N3w-password"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_flow_reconfigure(hass: HomeAssistant, sim: OnvifCameraSimulator) -> None:
    """The camera moved; an empty password keeps the stored one; old client closed."""
    entry = await _setup(hass, sim)
    old_client = entry.runtime_data.coordinator.backend.client
    moved = OnvifCameraSimulator()
    await moved.start()
    try:
        result = await entry.start_reconfigure_flow(hass)
        assert result["step_id"] == "reconfigure"
        assert CONF_PASSWORD not in _suggested(result)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], onvif_input(moved, password="")
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert entry.data[CONF_PORT] == moved.port
        assert entry.data[CONF_PASSWORD] == sim.password
        await hass.async_block_till_done()
        assert not old_client.xaddrs  # closed
        assert entry.state is ConfigEntryState.LOADED
        new_client = entry.runtime_data.coordinator.backend.client
        assert new_client.xaddrs[NS_DEVICE] == moved.device_service_url
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert not new_client.xaddrs
    finally:
        await moved.stop()


# ---------------------------------------------------------------------- entities


async def test_sensors_show_the_capture(
    hass: HomeAssistant, sim: OnvifCameraSimulator, entity_registry: er.EntityRegistry
) -> None:
    """Per-encoder sensors and the three imaging values the Bosch reports."""
    await _setup(hass, sim)
    expected = {
        "profile_l1s1": ("1920x1080", "5200"),
        "profile_l1s2": ("1536x864", "3400"),
        "profile_l1s3": ("1280x720", "2400"),
        "profile_l1s4": ("512x288", "400"),
    }
    for profile, (resolution, bitrate) in expected.items():
        prefix = f"sensor.{SLUG}_{profile}"
        assert hass.states.get(f"{prefix}_resolution").state == resolution
        assert hass.states.get(f"{prefix}_bitrate").state == bitrate
        assert hass.states.get(f"{prefix}_codec").state == "h264"
        assert hass.states.get(f"{prefix}_frame_rate").state == "30"
        assert hass.states.get(f"{prefix}_gov_length").state == "255"
    bitrate = hass.states.get(f"sensor.{SLUG}_profile_l1s1_bitrate")
    assert bitrate.attributes["unit_of_measurement"] == "kbit/s"
    assert bitrate.attributes["friendly_name"] == f"{TITLE} Profile_L1S1 bitrate"
    codec = entity_registry.async_get(f"sensor.{SLUG}_profile_l1s1_codec")
    assert codec.entity_category is EntityCategory.DIAGNOSTIC
    assert codec.translation_key == "encoder_codec"
    assert codec.unique_id == f"{MAC}_encoder_EncCfg_L1S1_codec"
    for name in ("brightness", "contrast", "saturation"):
        assert hass.states.get(f"sensor.{SLUG}_{name}").state == "128"
    onvif_sensor_ids = {
        entry.entity_id
        for entry in er.async_entries_for_config_entry(
            entity_registry, hass.config_entries.async_entries(DOMAIN)[0].entry_id
        )
        if entry.translation_key
        in {"sharpness", "ir_cut_filter", "exposure_mode", "wide_dynamic_range"}
    }
    assert onvif_sensor_ids == set()  # only what the camera reports
    assert hass.states.get(RESTART) is not None
    assert hass.states.get(f"button.{SLUG}_check_for_update") is None


async def test_firmware_version_no_false_update(
    hass: HomeAssistant, sim: OnvifCameraSimulator, device_registry: dr.DeviceRegistry
) -> None:
    """The capture's FirmwareVersion; no online check, so no update; no INSTALL."""
    entry = await _setup(hass, sim)
    assert hass.states.get(VERSION).state == "8.71.0066"
    update = hass.states.get(UPDATE)
    assert update.state == STATE_OFF
    assert update.attributes["installed_version"] == "8.71.0066"
    assert update.attributes["latest_version"] == "8.71.0066"
    assert update.attributes[ATTR_SUPPORTED_FEATURES] == (
        UpdateEntityFeature.INSTALL | UpdateEntityFeature.PROGRESS
    )
    assert hass.states.get(STATUS).state == "idle"
    device = device_registry.async_get(_device_id(hass, entry))
    assert (device.manufacturer, device.model, device.serial_number) == (
        "Bosch",
        "FLEXIDOME indoor 5100i IR",
        SERIAL,
    )
    assert device.sw_version == "8.71.0066"
    assert device.hw_version == "F000B543"
    assert (dr.CONNECTION_NETWORK_MAC, MAC) in device.connections
    coordinator = entry.runtime_data.coordinator
    with pytest.raises(HomeAssistantError) as err:
        await coordinator.async_install(None)
    assert err.value.translation_key == "no_update"


async def test_steady_state_refresh_is_one_call(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """A poll reads the firmware version; the settings come at the check interval."""
    await _setup(hass, sim)
    sim.reset_stats()
    sim._imaging["Brightness"] = 10.0  # changed in the camera's web interface
    for _ in range(3):
        await _poll(hass)
    assert dict(sim.calls) == {"GetDeviceInformation": 3}
    assert hass.states.get(BRIGHTNESS).state == "128"
    sim.reset_stats()
    await _poll(hass, settings=True)
    assert dict(sim.calls) == {
        "GetDeviceInformation": 1,
        "GetVideoEncoderConfigurations": 1,
        "GetImagingSettings": 1,
    }
    assert hass.states.get(BRIGHTNESS).state == "10"


async def test_unique_id_from_serial_without_mac(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """No MAC address: the serial number identifies; no imaging: no imaging sensors."""
    sim = OnvifCameraSimulator(mac_address="", services=("device", "media"))
    await sim.start()
    try:
        result = await _onvif_step(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], onvif_input(sim)
        )
        assert result["result"].unique_id == SERIAL
        await hass.async_block_till_done()
        assert hass.states.get(BRIGHTNESS) is None
        assert hass.states.get(f"sensor.{SLUG}_profile_l1s1_resolution").state == (
            "1920x1080"
        )
        device_id = _device_id(hass, result["result"])
        with pytest.raises(ServiceValidationError) as err:
            await _call(hass, "apply_imaging_settings", device_id, brightness=10)
        assert err.value.translation_key == "imaging_not_supported"
    finally:
        await sim.stop()


async def test_several_video_sources_name_their_sensors(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """A camera with two video sources: imaging sensors carry the source."""
    entry = await _setup(hass, sim)
    coordinator = entry.runtime_data.coordinator
    data = coordinator.data
    two = (
        SourceImaging("1", ImagingSettings(brightness=1.0)),
        SourceImaging(
            "2",
            ImagingSettings(brightness=2.0, ir_cut_filter="AUTO", exposure_mode=1),
        ),
    )
    odd = (EncoderFacts("EncCfg_L1S1", "Main", codec="H265"),)
    coordinator.async_set_updated_data(data.evolve(facts=OnvifFacts(odd, two)))
    encoder_values = {
        s.entity_description.key: s.native_value
        for s in onvif_sensors(coordinator)
        if "encoder" in str(s.unique_id)
    }
    assert encoder_values == {
        "resolution": None,
        "codec": None,  # not an encoding media ver10 knows: unknown, not an error
        "fps": None,
        "bitrate": None,
        "gov_length": None,
    }
    sensors = [s for s in onvif_sensors(coordinator) if "imaging" in str(s.unique_id)]
    assert [
        (s.entity_description.translation_key, s.translation_placeholders)
        for s in sensors
    ] == [
        ("source_brightness", {"source": "1"}),
        ("source_brightness", {"source": "2"}),
        ("source_ir_cut_filter", {"source": "2"}),
        ("source_exposure_mode", {"source": "2"}),
    ]
    assert [s.native_value for s in sensors] == [1.0, 2.0, "auto", None]


# ---------------------------------------------------------------------- actions


async def test_apply_stream_settings_verified(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """Set with ForcePersistence, read back, compare; the sensors follow at once."""
    entry = await _setup(hass, sim)
    response = await _call(
        hass,
        "apply_stream_settings",
        _device_id(hass, entry),
        profile_token="1",
        resolution="1280x720",
        codec="h264",
        fps=15,
        bitrate_kbps=2000,
        gov_length=60,
    )
    assert response == {
        "applied": {
            "resolution": "1280x720",
            "codec": "H264",
            "fps": 15,
            "bitrate_kbps": 2000,
            "gov_length": 60,
        },
        "verified": True,
        "mismatches": {},
    }
    assert (
        b"ForcePersistence>true<" in sim.last_requests["SetVideoEncoderConfiguration"]
    )
    state = sim.encoder("EncCfg_L1S2")
    assert (state.width, state.fps, state.bitrate, state.gov_length) == (
        1280,
        15,
        2000,
        60,
    )
    assert sim.encoder("EncCfg_L1S1").fps == 30  # the other encoders are untouched
    assert hass.states.get(f"sensor.{SLUG}_profile_l1s2_frame_rate").state == "15"
    assert hass.states.get(f"sensor.{SLUG}_profile_l1s2_resolution").state == (
        "1280x720"
    )


async def test_apply_stream_settings_ignored_field(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """A camera that silently ignores the frame rate: verified false, a mismatch."""
    entry = await _setup(hass, sim)
    sim.ignored_fields = {"FrameRateLimit"}
    response = await _call(
        hass,
        "apply_stream_settings",
        _device_id(hass, entry),
        fps=10,
        bitrate_kbps=1000,
    )
    assert response == {
        "applied": {"fps": 10, "bitrate_kbps": 1000},
        "verified": False,
        "mismatches": {"fps": {"requested": 10, "reported": 30}},
    }
    assert hass.states.get(f"sensor.{SLUG}_profile_l1s1_frame_rate").state == "30"
    assert hass.states.get(f"sensor.{SLUG}_profile_l1s1_bitrate").state == "1000"


@pytest.mark.parametrize(
    ("request_data", "key", "placeholders"),
    [
        (
            {"fps": 60},
            "setting_out_of_range",
            {"setting": "fps", "value": "60", "minimum": "1", "maximum": "30"},
        ),
        (
            {"bitrate_kbps": 50000},
            "setting_out_of_range",
            {"setting": "bitrate_kbps", "maximum": "12000"},
        ),
        ({"gov_length": 300}, "setting_out_of_range", {"setting": "gov_length"}),
        (
            {"resolution": "3840x2160"},
            "setting_not_allowed",
            {"setting": "resolution", "value": "3840x2160"},
        ),
        (
            {"codec": "H.265"},
            "setting_not_allowed",
            {"setting": "codec", "value": "H.265", "allowed": "JPEG, H264"},
        ),
        (
            {"codec": "mjpeg", "gov_length": 10},
            "setting_not_for_codec",
            {"setting": "gov_length", "codec": "JPEG"},
        ),
        ({"resolution": "big"}, "invalid_resolution", {"value": "big"}),
        ({"profile_token": "9", "fps": 10}, "unknown_profile", {"profile": "9"}),
        ({}, "no_settings", {}),
    ],
)
async def test_apply_stream_settings_refused_before_sending(
    hass: HomeAssistant,
    sim: OnvifCameraSimulator,
    request_data: dict[str, Any],
    key: str,
    placeholders: dict[str, str],
) -> None:
    """A request outside the camera's options: ServiceValidationError, no Set sent."""
    entry = await _setup(hass, sim)
    with pytest.raises(ServiceValidationError) as err:
        await _call(
            hass, "apply_stream_settings", _device_id(hass, entry), **request_data
        )
    assert err.value.translation_key == key
    assert placeholders.items() <= err.value.translation_placeholders.items()
    assert sim.count("SetVideoEncoderConfiguration") == 0


async def test_apply_stream_settings_fault(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """The camera answers ConfigModify: a translated HomeAssistantError."""
    entry = await _setup(hass, sim)
    sim.config_modify_fault = True
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "apply_stream_settings", _device_id(hass, entry), fps=10)
    assert not isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "settings_refused"
    assert err.value.translation_placeholders["reason"] == "ConfigModify"
    assert sim.count("SetVideoEncoderConfiguration") == 1


async def test_apply_imaging_settings(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """Brightness is verified; an ignored value is a mismatch, not an error."""
    entry = await _setup(hass, sim)
    device_id = _device_id(hass, entry)
    response = await _call(hass, "apply_imaging_settings", device_id, brightness=100)
    assert response == {
        "applied": {"brightness": 100.0},
        "verified": True,
        "mismatches": {},
    }
    assert sim.imaging_settings["Brightness"] == 100.0
    assert hass.states.get(BRIGHTNESS).state == "100"
    sim.ignored_fields = {"ColorSaturation"}
    response = await _call(
        hass, "apply_imaging_settings", device_id, saturation=10, contrast=20
    )
    assert response["verified"] is False
    assert response["mismatches"] == {
        "saturation": {"requested": 10.0, "reported": 128.0}
    }


@pytest.mark.parametrize(
    ("request_data", "key", "placeholders"),
    [
        (
            {"sharpness": 5},
            "setting_not_supported",
            {"setting": "sharpness", "supported": "brightness, contrast, saturation"},
        ),
        (
            {"brightness": 10, "ir_cut_filter": "off"},
            "setting_not_supported",
            {"setting": "ir_cut_filter"},
        ),
        (
            {"brightness": 300},
            "setting_out_of_range",
            {"setting": "brightness", "maximum": "255"},
        ),
        ({}, "no_settings", {}),
    ],
)
async def test_apply_imaging_settings_refused_before_sending(
    hass: HomeAssistant,
    sim: OnvifCameraSimulator,
    request_data: dict[str, Any],
    key: str,
    placeholders: dict[str, str],
) -> None:
    """A setting the Bosch does not report, or out of range: a clear error."""
    entry = await _setup(hass, sim)
    with pytest.raises(ServiceValidationError) as err:
        await _call(
            hass, "apply_imaging_settings", _device_id(hass, entry), **request_data
        )
    assert err.value.translation_key == key
    assert placeholders.items() <= err.value.translation_placeholders.items()
    assert sim.count("SetImagingSettings") == 0


async def test_apply_imaging_modes_on_a_full_camera(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """A camera reporting every imaging value: sensors for each, modes applied."""
    sim = OnvifCameraSimulator(imaging=FULL_IMAGING)
    await sim.start()
    try:
        entry = await _setup(hass, sim)
        assert hass.states.get(f"sensor.{SLUG}_ir_cut_filter").state == "auto"
        assert hass.states.get(f"sensor.{SLUG}_wide_dynamic_range").state == "on"
        assert hass.states.get(f"sensor.{SLUG}_wide_dynamic_range_level").state == (
            "50"
        )
        assert hass.states.get(f"sensor.{SLUG}_exposure_mode").state == "auto"
        assert hass.states.get(f"sensor.{SLUG}_sharpness").state == "40"
        response = await _call(
            hass,
            "apply_imaging_settings",
            _device_id(hass, entry),
            profile_token="0",
            sharpness=80,
            ir_cut_filter="OFF",
            backlight_compensation="on",
            exposure_mode="manual",
        )
        assert response["verified"] is True
        assert response["applied"] == {
            "sharpness": 80.0,
            "ir_cut_filter": "OFF",
            "backlight_compensation": "ON",
            "exposure_mode": "MANUAL",
        }
        assert hass.states.get(f"sensor.{SLUG}_ir_cut_filter").state == "off"
        assert hass.states.get(f"sensor.{SLUG}_backlight_compensation").state == "on"
    finally:
        await sim.stop()


async def test_actions_refused_for_other_devices_and_mid_install(
    hass: HomeAssistant, sim: OnvifCameraSimulator, tmp_path: Path
) -> None:
    """Unknown device; another action runs while a firmware file installs."""
    entry = await _setup(hass, sim)
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "apply_stream_settings", "not-a-device", fps=10)
    assert err.value.translation_key == "device_not_found"
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    firmware = tmp_path / "FLEXIDOME_8.71.0080.fw"
    firmware.write_bytes(b"firmware")
    sim.upload_delay = 0.3  # the install waits before its upload
    # A background task: wait_until's block_till_done does not wait for it.
    install = hass.async_create_background_task(
        _install_file(hass, entry, firmware), "install"
    )
    await wait_until(hass, lambda: sim.count("StartFirmwareUpgrade") == 1)
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "apply_stream_settings", _device_id(hass, entry), fps=10)
    assert err.value.translation_key == "install_in_progress"
    await install
    assert sim.count("SetVideoEncoderConfiguration") == 0
    assert sim.firmware_version == "8.71.0080"


async def test_apply_with_changed_password_starts_reauth(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """Credentials refused during an action: translated error and reauth."""
    entry = await _setup(hass, sim)
    sim.password = "changed"
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "apply_stream_settings", _device_id(hass, entry), fps=10)
    assert err.value.translation_key == "invalid_auth"
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


# ---------------------------------------------------------------------- availability


async def test_restart_unavailable_then_back(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """SystemReboot; entities unavailable until the camera answers again."""
    await _setup(hass, sim)
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: RESTART}, blocking=True
    )
    assert sim.count("SystemReboot") == 1
    assert hass.states.get(UPDATE).state == STATE_UNAVAILABLE
    assert hass.states.get(BRIGHTNESS).state == STATE_UNAVAILABLE
    await sim.wait_online()
    sim.reset_stats()
    await _poll(hass)
    assert hass.states.get(UPDATE).state == STATE_OFF
    assert hass.states.get(BRIGHTNESS).state == "128"
    # Back from a reboot: the settings are read again at once.
    assert sim.count("GetVideoEncoderConfigurations") == 1


async def test_offline_and_back(hass: HomeAssistant, sim: OnvifCameraSimulator) -> None:
    """The camera drops off the network and comes back."""
    entry = await _setup(hass, sim)
    await sim.go_offline()
    await _poll(hass)
    assert hass.states.get(VERSION).state == STATE_UNAVAILABLE
    assert hass.states.get(RESTART).state == STATE_UNAVAILABLE
    with pytest.raises(HomeAssistantError) as err:
        await entry.runtime_data.coordinator.async_restart()
    assert err.value.translation_key == "cannot_connect"
    await sim.go_online()
    sim.reset_stats()
    await _poll(hass)
    assert hass.states.get(VERSION).state == "8.71.0066"
    assert sim.count("GetImagingSettings") == 1  # read again after the outage
    await _poll(hass)
    assert sim.count("GetImagingSettings") == 1


async def test_setup_offline_retries(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """An unreachable camera makes the entry retry later."""
    await sim.go_offline()
    entry = onvif_entry(sim)
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_clock_one_hour_ahead_still_authenticates(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """The camera's clock is an hour ahead: signing with its offset works."""
    sim = OnvifCameraSimulator(clock_offset=3600)
    await sim.start()
    try:
        entry = await _setup(hass, sim)
        assert not any(call.fault for call in sim.soap_calls)
        client = entry.runtime_data.coordinator.backend.client
        assert client.clock_offset == pytest.approx(3600, abs=3)
        await _poll(hass)
        assert hass.states.get(VERSION).state == "8.71.0066"
    finally:
        await sim.stop()


# ---------------------------------------------------------------------- firmware file


class _Recorder:
    """The states an entity takes."""

    def __init__(self, hass: HomeAssistant, entity_id: str) -> None:
        self.states: list[State] = []

        @callback
        def record(event: Event[Any]) -> None:
            new = event.data["new_state"]
            if new is not None and new.entity_id == entity_id:
                self.states.append(new)

        self.unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, record)

    def values(self) -> list[str]:
        values: list[str] = []
        for state in self.states:
            if not values or values[-1] != state.state:
                values.append(state.state)
        return values


@pytest.fixture
def firmware(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A firmware file in a directory Home Assistant allows."""
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    path = tmp_path / "FLEXIDOME_8.71.0080.fw"
    path.write_bytes(bytes(range(256)) * 1024)
    return path


async def _install_file(
    hass: HomeAssistant, entry: MockConfigEntry, path: Path
) -> None:
    """Call the install_firmware_file action for `entry`'s device."""
    await hass.services.async_call(
        DOMAIN,
        "install_firmware_file",
        {"device_id": _device_id(hass, entry), "path": str(path)},
        blocking=True,
    )


async def test_install_firmware_file(
    hass: HomeAssistant,
    sim: OnvifCameraSimulator,
    firmware: Path,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Start, upload, reboot, verify the new version; progress and an event."""
    sim.upload_delay = 0.05
    entry = await _setup(hass, sim)
    device_id = _device_id(hass, entry)
    status = _Recorder(hass, STATUS)
    update = _Recorder(hass, UPDATE)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await hass.services.async_call(
        DOMAIN,
        "install_firmware_file",
        {"device_id": device_id, "path": str(firmware)},
        blocking=True,
    )
    await hass.async_block_till_done()
    assert sim.uploads[-1].status == 200
    assert sim.uploads[-1].size == firmware.stat().st_size
    assert [name for _t, name in sim.events] == [
        "upload_200",
        "upgrade_started",
        "upgrade_finished",
    ]
    assert status.values() == ["installing", "rebooting", "verifying", "idle"]
    running = [s for s in update.states if s.attributes["in_progress"]]
    progress = [s.attributes["update_percentage"] for s in running]
    assert progress == sorted(progress)
    assert progress[0] == 0
    assert progress[-1] == 99
    assert len(set(progress)) >= 4
    state = hass.states.get(UPDATE)
    assert state.state == STATE_OFF
    assert state.attributes["installed_version"] == "8.71.0080"
    assert state.attributes["in_progress"] is False
    assert hass.states.get(VERSION).state == "8.71.0080"
    assert device_registry.async_get(device_id).sw_version == "8.71.0080"
    assert [event.data for event in finished] == [
        {
            "device_id": device_id,
            "entry_id": entry.entry_id,
            "kind": "onvif",
            "version": "8.71.0080",
            "success": True,
            "error": None,
            "message": None,
        }
    ]


async def test_install_firmware_file_refused(
    hass: HomeAssistant, sim: OnvifCameraSimulator, firmware: Path
) -> None:
    """The camera answers 415: a failure event and a translated error."""
    entry = await _setup(hass, sim)
    sim.reject_firmware = True
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "install_firmware_file",
            {"device_id": _device_id(hass, entry), "path": str(firmware)},
            blocking=True,
        )
    assert err.value.translation_key == "upload_refused"
    assert err.value.translation_placeholders["status"] == "415"
    await hass.async_block_till_done()
    assert [(e.data["success"], e.data["error"]) for e in finished] == [
        (False, "upload_refused")
    ]
    assert finished[0].data["version"] is None
    assert hass.states.get(STATUS).state == "failed"
    assert hass.states.get(UPDATE).attributes["in_progress"] is False
    assert sim.firmware_version == "8.71.0066"


async def test_install_firmware_file_same_version_after_reboot(
    hass: HomeAssistant,
    sim: OnvifCameraSimulator,
    firmware: Path,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The camera comes back with the old firmware: verification_failed, repair."""
    entry = await _setup(hass, sim)
    sim.next_firmware_version = sim.firmware_version
    with pytest.raises(HomeAssistantError) as err:
        await _install_file(hass, entry, firmware)
    assert err.value.translation_key == "verification_failed"
    assert err.value.translation_placeholders["installed"] == "8.71.0066"
    assert err.value.translation_placeholders["expected"] == firmware.name
    assert issue_registry.async_get_issue(DOMAIN, f"install_failed_{entry.entry_id}")


async def test_install_firmware_file_camera_never_back(
    hass: HomeAssistant,
    sim: OnvifCameraSimulator,
    firmware: Path,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The camera stays away longer than it announced (+ 1 s here): reboot_timeout."""
    entry = await _setup(hass, sim)
    sim.upload_delay = 0.1
    sim.expected_down_time = 0.0  # what StartFirmwareUpgrade announces
    install = hass.async_create_task(_install_file(hass, entry, firmware))
    while sim.count("StartFirmwareUpgrade") == 0:
        await asyncio.sleep(0.01)
    sim.expected_down_time = 30.0  # how long the camera really stays away
    with pytest.raises(HomeAssistantError) as err:
        await install
    assert err.value.translation_key == "reboot_timeout"
    assert issue_registry.async_get_issue(DOMAIN, f"install_failed_{entry.entry_id}")
    assert hass.states.get(STATUS).state == "failed"


async def test_install_firmware_file_path_checks(
    hass: HomeAssistant, sim: OnvifCameraSimulator, firmware: Path, tmp_path: Path
) -> None:
    """Outside the allowed directories (also through links), not a file, or empty.

    A ServiceValidationError, and nothing is sent to the camera.
    """
    entry = await _setup(hass, sim)
    device_id = _device_id(hass, entry)
    outside = tmp_path.parent / "outside.fw"
    outside.write_bytes(b"firmware")
    empty = tmp_path / "empty.fw"
    empty.write_bytes(b"")
    # A link inside the allowed directory to a file outside it: never followed.
    link = tmp_path / "link.fw"
    link.symlink_to(outside)
    # A directory link leading outside: the opened file's real place decides.
    (tmp_path / "elsewhere").symlink_to(tmp_path.parent, target_is_directory=True)
    through_directory = tmp_path / "elsewhere" / "outside.fw"
    for path, key in (
        (outside, "path_not_allowed"),
        (empty, "firmware_file_invalid"),
        (tmp_path / "missing.fw", "firmware_file_invalid"),
        (link, "firmware_file_invalid"),
        (through_directory, "path_not_allowed"),
        (tmp_path, "firmware_file_invalid"),
    ):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                DOMAIN,
                "install_firmware_file",
                {"device_id": device_id, "path": str(path)},
                blocking=True,
            )
        assert err.value.translation_key == key
    assert sim.count("StartFirmwareUpgrade") == 0
    assert not sim.uploads


# ---------------------------------------------------------------------- diagnostics


async def test_diagnostics_without_secrets(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    sim: OnvifCameraSimulator,
) -> None:
    """No password, serial number or MAC address; the profiles are there."""
    entry = await _setup(hass, sim)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    dump = json.dumps(diagnostics)
    assert sim.password not in dump
    assert SERIAL not in dump
    assert MAC not in dump.lower()
    assert MAC.replace(":", "") not in dump.lower()
    assert diagnostics["entry"]["data"]["password"] == "**REDACTED**"
    device = diagnostics["device"]
    assert device["device_information"]["firmware_version"] == "8.71.0066"
    assert [p["token"] for p in device["profiles"]] == ["0", "1", "2", "3"]
    encoders = diagnostics["state"]["facts"]["encoders"]
    assert {e["token"]: e["fps"] for e in encoders}["EncCfg_L1S1"] == 30


# ---------------------------------------------------------------------- odd cameras


def _not_supported(sim: OnvifCameraSimulator, service: str, operation: str) -> None:
    """Make the simulator answer `operation` with an ActionNotSupported fault."""

    def handler(_request: Any) -> Any:
        raise _SoapFaultError(
            ["ActionNotSupported"], f"{operation} is not supported", code="Receiver"
        )

    sim._handlers[(service, operation)] = handler


async def test_camera_without_network_interfaces_or_imaging(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """GetNetworkInterfaces and GetImagingSettings fault: serial, no imaging sensors."""
    _not_supported(sim, "device", "GetNetworkInterfaces")
    _not_supported(sim, "imaging", "GetImagingSettings")
    result = await _onvif_step(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], onvif_input(sim)
    )
    assert result["result"].unique_id == SERIAL
    await hass.async_block_till_done()
    assert hass.states.get(BRIGHTNESS) is None
    sim.reset_stats()
    await _poll(hass, settings=True)
    assert sim.count("GetVideoEncoderConfigurations") == 1
    assert sim.count("GetImagingSettings") == 0  # not asked again


async def test_imaging_fault_while_polling(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """Imaging settings the camera stops answering: only their sensors go away."""
    await _setup(hass, sim)
    _not_supported(sim, "imaging", "GetImagingSettings")
    await _poll(hass, settings=True)
    assert hass.states.get(BRIGHTNESS).state == STATE_UNAVAILABLE
    assert hass.states.get(VERSION).state == "8.71.0066"


@pytest.mark.parametrize(
    ("breakage", "key"),
    [("password", "install_auth_failed"), ("offline", "device_lost")],
)
async def test_install_firmware_file_cannot_start(
    hass: HomeAssistant,
    sim: OnvifCameraSimulator,
    firmware: Path,
    breakage: str,
    key: str,
) -> None:
    """The camera refuses the credentials or is gone when the install starts."""
    entry = await _setup(hass, sim)
    if breakage == "password":
        sim.password = "changed"
    else:
        await sim.go_offline()
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    with pytest.raises(HomeAssistantError) as err:
        await _install_file(hass, entry, firmware)
    assert err.value.translation_key == key
    await hass.async_block_till_done()
    assert [e.data["error"] for e in finished] == [key]
    assert not sim.uploads


def test_discovery_target_from_the_environment() -> None:
    """FIRMWARE_HUB_ONVIF_DISCOVERY: host, host:port, [v6]:port; junk is ignored."""
    parse = onvif_discovery.target_from_env
    assert parse(None) is None
    assert parse(" ") is None
    assert parse("127.0.0.1") == ("127.0.0.1", 3702)
    assert parse("127.0.0.1:13702") == ("127.0.0.1", 13702)
    assert parse("[::1]:13702") == ("::1", 13702)
    assert parse("[::1]") == ("::1", 3702)
    assert parse("127.0.0.1:port") is None


async def test_onvif_actions_refused_for_other_kinds(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The ONVIF actions name the kind they do not apply to."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    for service, data in (
        ("apply_stream_settings", {"fps": 10}),
        ("apply_imaging_settings", {"brightness": 10}),
    ):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                DOMAIN,
                service,
                {"device_id": _device_id(hass, entry), **data},
                blocking=True,
                return_response=True,
            )
        assert err.value.translation_key == "action_not_for_kind"
        assert err.value.translation_placeholders == {
            "action": service,
            "kind": "hikvision",
        }
