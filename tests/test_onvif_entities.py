"""What an ONVIF camera's entities show: last read, stream names, imaging numbers.

Against the loopback Bosch FLEXIDOME simulator (renamed profiles, other imaging
ranges, or operations it lacks where a test says so).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.firmware_hub.kinds.onvif.facts import encoder_labels
from custom_components.firmware_hub.kinds.onvif.protocol import MediaProfile

from .helpers import setup_entry, unload_all
from .simulators.onvif import OnvifCameraSimulator, _Reply
from .test_onvif import MAC, SLUG, TITLE, _not_supported, _poll, _setup, onvif_entry

LAST_CHECK = f"sensor.{SLUG}_last_check"
START = "2026-12-05T10:00:00+00:00"


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


def _precision(entity_registry: er.EntityRegistry, entity_id: str) -> int | None:
    """Return the display precision Home Assistant stored for a sensor."""
    entry = entity_registry.async_get(entity_id)
    assert entry is not None
    return entry.options.get("sensor", {}).get("suggested_display_precision")


# ---------------------------------------------------------------------- last_check


async def test_last_check_is_when_the_camera_was_last_read(
    hass: HomeAssistant, sim: OnvifCameraSimulator, freezer: FrozenDateTimeFactory
) -> None:
    """Set at setup and by every poll that read the camera, settings or not."""
    freezer.move_to(START)
    entry = await _setup(hass, sim)
    assert hass.states.get(LAST_CHECK).state == START
    sim.reset_stats()
    freezer.tick(timedelta(minutes=5))
    await _poll(hass)
    assert dict(sim.calls) == {"GetDeviceInformation": 1}  # the one-call poll
    assert hass.states.get(LAST_CHECK).state == "2026-12-05T10:05:00+00:00"
    freezer.tick(timedelta(minutes=5))
    await _poll(hass, settings=True)
    assert sim.count("GetVideoEncoderConfigurations") == 1
    assert hass.states.get(LAST_CHECK).state == "2026-12-05T10:10:00+00:00"
    assert entry.runtime_data.coordinator.data.last_check.isoformat() == (
        "2026-12-05T10:10:00+00:00"
    )


async def test_last_check_stays_when_the_camera_could_not_be_read(
    hass: HomeAssistant, sim: OnvifCameraSimulator, freezer: FrozenDateTimeFactory
) -> None:
    """A poll the camera answers with a fault does not move last_check."""
    freezer.move_to(START)
    entry = await _setup(hass, sim)
    coordinator = entry.runtime_data.coordinator
    _not_supported(sim, "device", "GetDeviceInformation")
    sim.reset_stats()
    freezer.tick(timedelta(minutes=5))
    await _poll(hass)
    assert [(c.operation, c.fault) for c in sim.soap_calls] == [
        ("GetDeviceInformation", "ActionNotSupported")
    ]
    assert not coordinator.last_update_success
    assert hass.states.get(LAST_CHECK).state == STATE_UNAVAILABLE
    assert coordinator.data.last_check.isoformat() == START


# ---------------------------------------------------------------------- stream names


async def test_stream_sensors_are_named_after_the_profile_names(
    hass: HomeAssistant,
    socket_enabled: None,
    entity_registry: er.EntityRegistry,
) -> None:
    """GetProfiles' Name names the sensors; no Name: the token; tokens in attributes.

    Two profiles sharing a Name are told apart by their tokens.
    """
    sim = OnvifCameraSimulator(
        profile_names={"0": "MainStream", "1": "SubStream", "2": "", "3": "SubStream"}
    )
    await sim.start()
    try:
        await _setup(hass, sim)
        expected = {
            "mainstream": ("MainStream", "0", "EncCfg_L1S1", "5200"),
            "substream_1": ("SubStream (1)", "1", "EncCfg_L1S2", "3400"),
            "2": ("2", "2", "EncCfg_L1S3", "2400"),
            "substream_3": ("SubStream (3)", "3", "EncCfg_L1S4", "400"),
        }
        for slug, (name, profile, encoder, bitrate) in expected.items():
            entity_id = f"sensor.{SLUG}_{slug}_bitrate"
            state = hass.states.get(entity_id)
            assert state.state == bitrate
            assert state.attributes["friendly_name"] == f"{TITLE} {name} bitrate"
            assert state.attributes["profile_token"] == profile
            assert state.attributes["encoder_configuration_token"] == encoder
            registered = entity_registry.async_get(entity_id)
            assert registered.unique_id == f"{MAC}_encoder_{encoder}_bitrate"
        resolution = hass.states.get(f"sensor.{SLUG}_mainstream_resolution")
        assert resolution.attributes["friendly_name"] == (
            f"{TITLE} MainStream resolution"
        )
        assert resolution.state == "1920x1080"
    finally:
        await sim.stop()


async def test_bosch_profile_names_and_tokens(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """The Bosch names its profiles Profile_L1S1.. (tokens 0..3): names, tokens."""
    await _setup(hass, sim)
    state = hass.states.get(f"sensor.{SLUG}_profile_l1s2_frame_rate")
    assert state.attributes["friendly_name"] == f"{TITLE} Profile_L1S2 frame rate"
    assert state.attributes["profile_token"] == "1"
    assert state.attributes["encoder_configuration_token"] == "EncCfg_L1S2"
    brightness = hass.states.get(f"sensor.{SLUG}_brightness")
    assert brightness.attributes["video_source_token"] == "1"


def test_encoder_labels_of_odd_profiles() -> None:
    """Neither Name nor token: the encoder's token; a shared Name without a token."""
    profiles = {
        "enc_a": MediaProfile("", None, None, None),
        "enc_b": MediaProfile("", "Main", None, None),
        "enc_c": MediaProfile("p3", "Main", None, None),
        "enc_d": MediaProfile("p4", "p4", None, None),
    }
    assert encoder_labels(profiles) == {
        "enc_a": "enc_a",
        "enc_b": "Main",
        "enc_c": "Main (p3)",
        "enc_d": "p4",
    }


# ---------------------------------------------------------------------- imaging


async def test_imaging_integral_range_shows_whole_numbers(
    hass: HomeAssistant, sim: OnvifCameraSimulator, entity_registry: er.EntityRegistry
) -> None:
    """Range 0.00..255.00: 128 (not 128.0), display precision 0; options read once."""
    await _setup(hass, sim)
    assert sim.count("GetOptions") == 1
    for name in ("brightness", "contrast", "saturation"):
        entity_id = f"sensor.{SLUG}_{name}"
        assert hass.states.get(entity_id).state == "128"
        assert _precision(entity_registry, entity_id) == 0
    sim.reset_stats()
    await _poll(hass, settings=True)
    assert sim.count("GetOptions") == 0


async def test_imaging_fractional_range_keeps_decimals(
    hass: HomeAssistant, socket_enabled: None, entity_registry: er.EntityRegistry
) -> None:
    """Range -2.5..2.5: the value stays a float, display precision 1."""
    sim = OnvifCameraSimulator(
        imaging={"Brightness": 1.0, "Contrast": 0.5}, imaging_range=(-2.5, 2.5)
    )
    await sim.start()
    try:
        await _setup(hass, sim)
        assert sim.count("GetOptions") == 1
        for name, value in (("brightness", "1.0"), ("contrast", "0.5")):
            entity_id = f"sensor.{SLUG}_{name}"
            assert hass.states.get(entity_id).state == value
            assert _precision(entity_registry, entity_id) == 1
    finally:
        await sim.stop()


async def test_imaging_without_options_still_shows_whole_numbers(
    hass: HomeAssistant, sim: OnvifCameraSimulator, entity_registry: er.EntityRegistry
) -> None:
    """Imaging GetOptions not supported: 128 all the same, no display precision."""
    _not_supported(sim, "imaging", "GetOptions")
    await _setup(hass, sim)
    assert [c.fault for c in sim.soap_calls if c.operation == "GetOptions"] == [
        "ActionNotSupported"
    ]
    entity_id = f"sensor.{SLUG}_brightness"
    assert hass.states.get(entity_id).state == "128"
    assert _precision(entity_registry, entity_id) is None


async def test_imaging_options_garbled_setup_retries(
    hass: HomeAssistant, sim: OnvifCameraSimulator
) -> None:
    """Imaging GetOptions answered with something not SOAP: setup retries later."""
    sim._handlers["imaging", "GetOptions"] = lambda _request: _Reply(
        200, b"<html>not SOAP</html>"
    )
    entry = onvif_entry(sim)
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert [(c.operation, c.status) for c in sim.soap_calls][-1] == ("GetOptions", 200)
