"""The shipped blueprints: valid for Home Assistant, and one run end to end."""

from __future__ import annotations

from pathlib import Path
import shutil

from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml_dict
import pytest
from pytest_homeassistant_custom_component.common import (
    async_capture_events,
    async_mock_service,
)

from custom_components.firmware_hub.const import DOMAIN, EVENT_ROLLOUT_FINISHED

from .helpers import hikvision_entry, setup_entry, wait_until
from .simulators.isapi import Failure, IsapiCameraSimulator

BLUEPRINTS = Path(__file__).parent.parent / "blueprints" / "automation" / DOMAIN


@pytest.mark.parametrize(
    "name",
    [
        "nightly_upgrade_window.yaml",
        "notify_firmware.yaml",
        "flash_bridged_package.yaml",
    ],
)
def test_blueprint_is_valid(name: str) -> None:
    """Home Assistant's blueprint schema accepts each shipped blueprint."""
    blueprint = Blueprint(
        load_yaml_dict(BLUEPRINTS / name),
        path=name,
        expected_domain="automation",
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )
    assert blueprint.domain == "automation"
    assert blueprint.metadata["source_url"].endswith(f"/{name}")
    assert {path.name for path in BLUEPRINTS.glob("*.yaml")} >= {name}


async def test_nightly_window_runs_a_rollout(
    hass: HomeAssistant,
    camera: IsapiCameraSimulator,
    device_registry: dr.DeviceRegistry,
    tmp_path: Path,
) -> None:
    """An automation from the nightly blueprint upgrades the camera and notifies."""
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / DOMAIN
    target.mkdir(parents=True)
    shutil.copy(BLUEPRINTS / "nightly_upgrade_window.yaml", target)
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, entry.unique_id), entry.entry_id
    )
    assert device is not None
    notified = async_mock_service(hass, "test", "notify")
    finished = async_capture_events(hass, EVENT_ROLLOUT_FINISHED)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "id": "nightly",
                "alias": "Nightly firmware",
                "use_blueprint": {
                    "path": f"{DOMAIN}/nightly_upgrade_window.yaml",
                    "input": {
                        "devices": [device.id],
                        "start": "00:00:00",
                        "end": "23:59:59",
                        "notify": [
                            {
                                "action": "test.notify",
                                "data": {"message": "{{ message }}"},
                            }
                        ],
                    },
                },
            }
        },
    )
    await hass.services.async_call(
        "automation",
        "trigger",
        {"entity_id": "automation.nightly_firmware", "skip_condition": True},
        blocking=True,
    )
    await wait_until(hass, lambda: bool(notified))
    assert finished[0].data["devices"][0]["result"] == "installed", finished[0].data
    assert camera.firmware_version == "V5.7.20"
    assert finished[0].data["totals"]["installed"] == 1
    assert "1 installed, 0 failed" in notified[0].data["message"]
    # Detach the time trigger (no timer may outlive the test).
    await hass.services.async_call(
        "automation",
        "turn_off",
        {"entity_id": "automation.nightly_firmware"},
        blocking=True,
    )


async def test_failed_install_notification_says_what_happened(
    hass: HomeAssistant, camera: IsapiCameraSimulator, tmp_path: Path
) -> None:
    """The notify blueprint's failure message is the error's sentence."""
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / DOMAIN
    target.mkdir(parents=True)
    shutil.copy(BLUEPRINTS / "notify_firmware.yaml", target)
    await setup_entry(hass, hikvision_entry(camera))
    notified = async_mock_service(hass, "test", "notify")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "id": "notify",
                "alias": "Firmware news",
                "use_blueprint": {
                    "path": f"{DOMAIN}/notify_firmware.yaml",
                    "input": {
                        "updates": ["update.camera_1_firmware"],
                        "notify": [
                            {
                                "action": "test.notify",
                                "data": {"message": "{{ message }}"},
                            }
                        ],
                    },
                },
            }
        },
    )
    camera.failures.add(Failure.WRITE_FLASH_ERROR)
    with pytest.raises(HomeAssistantError):
        await hass.services.async_call(
            "update",
            "install",
            {"entity_id": "update.camera_1_firmware"},
            blocking=True,
        )
    await wait_until(hass, lambda: bool(notified))
    message = notified[0].data["message"]
    assert "on CAMERA 1 failed: The camera could not write" in message
    assert "could not write the firmware to its flash memory" in message
    assert "camera_flash_write_error" not in message
