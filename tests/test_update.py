"""The update entity and its sensors before any install."""

from __future__ import annotations

from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from .helpers import hikvision_entry, setup_entry
from .simulators.isapi import IsapiCameraSimulator, OnlineUpgrade

UPDATE = "update.camera_1_firmware"


async def _release_notes(
    hass_ws_client: WebSocketGenerator, hass: HomeAssistant
) -> object:
    client = await hass_ws_client(hass)
    await client.send_json(
        {"id": 1, "type": "update/release_notes", "entity_id": UPDATE}
    )
    result = await client.receive_json()
    assert result["success"], result
    return result["result"]


async def test_update_available_with_release_notes(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """The camera's online check offers newer firmware with a change log."""
    await setup_entry(hass, hikvision_entry(camera))
    state = hass.states.get(UPDATE)
    assert state is not None
    assert state.state == STATE_ON
    assert state.attributes["installed_version"] == "V5.7.18 build 240826"
    assert state.attributes["latest_version"] == "V5.7.20 build 250110"
    assert state.attributes["in_progress"] is False
    # The change log's two lines stay two lines in the dialog's Markdown: a list.
    assert camera.changelog == "Fixed RTSP stability.\nImproved night image."
    assert await _release_notes(hass_ws_client, hass) == (
        "- Fixed RTSP stability.\n- Improved night image."
    )
    assert hass.states.get("sensor.camera_1_firmware_status").state == "idle"
    assert hass.states.get("sensor.camera_1_firmware_version").state == (
        "V5.7.18 build 240826"
    )
    assert hass.states.get("binary_sensor.camera_1_upgrade_server").state == STATE_ON


async def test_up_to_date(hass: HomeAssistant, camera: IsapiCameraSimulator) -> None:
    """No newer firmware: latest equals installed, no update shown."""
    camera.offer_version = None
    await setup_entry(hass, hikvision_entry(camera))
    state = hass.states.get(UPDATE)
    assert state.state == STATE_OFF
    assert state.attributes["latest_version"] == state.attributes["installed_version"]


async def test_offer_of_the_same_firmware_spelled_differently(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """`V5.7.18 build 240826` offered to a camera running V5.7.18 is no update."""
    camera.offer_version = "V5.7.18 build 240826"
    await setup_entry(hass, hikvision_entry(camera))
    assert hass.states.get(UPDATE).state == STATE_OFF


async def test_upgrade_server_unreachable(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The camera cannot reach Hikvision's server: the connectivity sensor says so."""
    camera.server_connected = False
    await setup_entry(hass, hikvision_entry(camera))
    assert hass.states.get("binary_sensor.camera_1_upgrade_server").state == STATE_OFF


@pytest.mark.parametrize("mode", [OnlineUpgrade.NOT_SUPPORTED, OnlineUpgrade.ABSENT])
async def test_unsupported_camera(
    hass: HomeAssistant, camera: IsapiCameraSimulator, mode: OnlineUpgrade
) -> None:
    """A camera whose version call says notSupport sets up fine, with no false update."""
    camera.online_upgrade = mode
    await setup_entry(hass, hikvision_entry(camera))
    state = hass.states.get(UPDATE)
    assert state.state == STATE_OFF
    assert state.attributes["latest_version"] == "V5.7.18 build 240826"
    assert hass.states.get("sensor.camera_1_firmware_status").state == "unsupported"
    upgrade_server = hass.states.get("binary_sensor.camera_1_upgrade_server")
    if mode is OnlineUpgrade.ABSENT:
        assert upgrade_server is None
    else:
        assert upgrade_server is not None
