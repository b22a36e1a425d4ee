"""A recorder's IP channel cameras: child devices with their own firmware.

Through Home Assistant (config entry, entities, device registry) against the NVR
simulator, whose channels change at run time.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
import time

from homeassistant.components.update import (
    ATTR_INSTALLED_VERSION,
    ATTR_LATEST_VERSION,
    DOMAIN as UPDATE_DOMAIN,
    SERVICE_INSTALL,
    UpdateEntityFeature,
)
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.firmware_hub.const import (
    CONF_KIND,
    DOMAIN,
    EVENT_UPGRADE_FINISHED,
    Kind,
)
from custom_components.firmware_hub.core.models import InstallRun
from custom_components.firmware_hub.diagnostics import (
    async_get_config_entry_diagnostics,
)
from custom_components.firmware_hub.storage import InstallJournal

from .helpers import hikvision_entry, hikvision_input, setup_entry, wait_until
from .simulators.isapi import IsapiCameraSimulator
from .simulators.isapi_nvr import (
    CHANNELS_PATH,
    CHANNELS_STATUS_PATH,
    IsapiNvrSimulator,
    NvrChannel,
)

CAMERAS = {
    "1": ("garden", "DS-2CD2386G2-IU", "V5.7.15 build 240201"),
    "2": ("porch", "DS-2CD2046G2-IU", "V5.7.18 build 240826"),
    "3": ("road", "DS-2CD2055FWD-I", "V5.6.6 build 210625"),
}


@pytest.fixture
async def nvr(socket_enabled: None) -> AsyncGenerator[IsapiNvrSimulator]:
    """A DS-7608NXI-I2 NVR with three IP cameras."""
    sim = IsapiNvrSimulator()
    await sim.start()
    yield sim
    await sim.stop()


def _entry(nvr: IsapiNvrSimulator) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="NVR",
        unique_id=nvr.serial_number,
        data={CONF_KIND: Kind.HIKVISION.value, **hikvision_input(nvr)},
    )


def _key(nvr: IsapiNvrSimulator, channel: str) -> str:
    return f"{nvr.serial_number}_channel_{channel}"


def _children(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, dr.DeviceEntry]:
    """Return the recorder's child devices by their identifier."""
    registry = dr.async_get(hass)
    recorder = registry.async_get_device_by_identifier(
        (DOMAIN, entry.unique_id or ""), entry.entry_id
    )
    assert recorder is not None
    return {
        unique_id: device
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        if device.via_device_id == recorder.id
        for domain, unique_id in device.identifiers
        if domain == DOMAIN
    }


def _entity_id(hass: HomeAssistant, platform: str, unique_id: str) -> str | None:
    return er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)


async def _poll(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Run the coordinator's next poll."""
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()


async def test_channel_cameras_are_child_devices(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """Three IP cameras: three devices behind the recorder, each with its firmware."""
    entry = _entry(nvr)
    await setup_entry(hass, entry)

    children = _children(hass, entry)
    assert set(children) == {_key(nvr, channel) for channel in CAMERAS}
    for channel, (name, model, version) in CAMERAS.items():
        device = children[_key(nvr, channel)]
        assert (device.name, device.model, device.sw_version) == (name, model, version)
        assert device.manufacturer == "Hikvision"
        assert device.serial_number == nvr.channels[channel].serial_number
        sensor = _entity_id(hass, "sensor", f"{_key(nvr, channel)}_firmware_version")
        assert sensor == f"sensor.{name}_firmware_version"
        assert hass.states.get(sensor).state == version
        update = _entity_id(hass, "update", f"{_key(nvr, channel)}_firmware")
        assert update == f"update.{name}_firmware"
        state = hass.states.get(update)
        assert state.state == STATE_OFF
        assert state.attributes[ATTR_INSTALLED_VERSION] == version
        assert state.attributes[ATTR_LATEST_VERSION] == version
    # The recorder itself keeps its own firmware entities.
    assert hass.states.get("sensor.nvr_firmware_version").state == nvr.running_version
    assert nvr.count("GET", CHANNELS_STATUS_PATH) >= 1


async def test_channel_install_not_offered(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """The recorder upgrades channels, but no channel offer is known: no INSTALL.

    Its capabilities say isSupportUpgradeChannels; the child's update entity shows
    a file install's progress (PROGRESS) but has no INSTALL feature: an install
    is refused, and nothing reaches the recorder.
    """
    entry = _entry(nvr)
    await setup_entry(hass, entry)
    update = f"update.{CAMERAS['1'][0]}_firmware"
    assert hass.states.get(update).attributes["supported_features"] == (
        UpdateEntityFeature.PROGRESS
    )
    nvr.reset_stats()

    with pytest.raises(HomeAssistantError):
        await hass.services.async_call(
            UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: update}, blocking=True
        )

    assert [r.path for r in nvr.requests if r.method != "GET"] == []
    assert not [r for r in nvr.requests if "onlineUpgrade" in r.path]
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["device"]["upgrade_channels"] is True
    # Channel cameras' keys, serial numbers and addresses are redacted.
    (child, *_) = diagnostics["state"]["children"]
    assert child["key"] == child["identity"]["serial_number"] == "**REDACTED**"
    (channel, *_) = diagnostics["device"]["channels"]
    assert channel["ip_address"] == channel["serial_number"] == "**REDACTED**"
    assert channel["firmware_version"] == CAMERAS["1"][2]


async def test_channel_removed_disappears(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """A channel deleted on the recorder: its device and entities go at the next poll."""
    entry = _entry(nvr)
    await setup_entry(hass, entry)
    update = _entity_id(hass, "update", f"{_key(nvr, '2')}_firmware")
    assert update is not None

    nvr.remove_channel("2")
    await _poll(hass, entry)

    assert set(_children(hass, entry)) == {_key(nvr, "1"), _key(nvr, "3")}
    assert _entity_id(hass, "update", f"{_key(nvr, '2')}_firmware") is None
    assert _entity_id(hass, "sensor", f"{_key(nvr, '2')}_firmware_version") is None
    assert hass.states.get(update) is None
    # The recorder's own device stays.
    assert hass.states.get("update.nvr_firmware") is not None


async def test_channel_added_appears(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """Cameras added on the recorder appear after the next poll, no restart.

    One of them is added over ONVIF (a camera of unknown make, as real NVRs list
    them with model and firmware).
    """
    entry = _entry(nvr)
    await setup_entry(hass, entry)

    nvr.add_channel(
        NvrChannel(
            "4",
            "gate",
            "DS-2CD2143G2-I",
            "DS-2CD2143G2-I20230101AAWRL00000004",
            "V5.7.3 build 220112",
        )
    )
    nvr.add_channel(
        NvrChannel(
            "5",
            "shed",
            "JVSWO708-PO300M2",
            None,
            "V1.0.0014 - 20210517 15:00:00",
            protocol="ONVIF",
        )
    )
    await _poll(hass, entry)

    onvif = _children(hass, entry)[_key(nvr, "5")]
    assert (onvif.manufacturer, onvif.model, onvif.sw_version) == (
        None,
        "JVSWO708-PO300M2",
        "V1.0.0014 - 20210517 15:00:00",
    )
    device = _children(hass, entry)[_key(nvr, "4")]
    assert (device.name, device.model, device.sw_version) == (
        "gate",
        "DS-2CD2143G2-I",
        "V5.7.3 build 220112",
    )
    assert hass.states.get("sensor.gate_firmware_version").state == (
        "V5.7.3 build 220112"
    )
    assert hass.states.get("update.gate_firmware").attributes[
        ATTR_INSTALLED_VERSION
    ] == ("V5.7.3 build 220112")


async def test_channel_removed_and_added_again(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """A channel that comes back gets its device and entities again."""
    entry = _entry(nvr)
    await setup_entry(hass, entry)
    channel = nvr.channels["3"]

    nvr.remove_channel("3")
    await _poll(hass, entry)
    assert _key(nvr, "3") not in _children(hass, entry)

    nvr.add_channel(channel)
    await _poll(hass, entry)
    assert _children(hass, entry)[_key(nvr, "3")].sw_version == "V5.6.6 build 210625"
    assert hass.states.get("sensor.road_firmware_version").state == (
        "V5.6.6 build 210625"
    )


async def test_channel_flashed_elsewhere_shows_new_firmware(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """A channel camera upgraded outside Home Assistant: sensor and device follow."""
    entry = _entry(nvr)
    await setup_entry(hass, entry)

    nvr.set_firmware("3", "V5.7.3 build 230101")
    await _poll(hass, entry)

    assert hass.states.get("sensor.road_firmware_version").state == (
        "V5.7.3 build 230101"
    )
    assert _children(hass, entry)[_key(nvr, "3")].sw_version == "V5.7.3 build 230101"


async def test_offline_channel_keeps_its_device(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """An unreachable camera (listed without model/firmware) is unavailable, not gone."""
    entry = _entry(nvr)
    await setup_entry(hass, entry)

    nvr.set_online("1", online=False)
    await _poll(hass, entry)

    device = _children(hass, entry)[_key(nvr, "1")]
    assert (device.model, device.sw_version) == CAMERAS["1"][1:]
    assert hass.states.get("sensor.garden_firmware_version").state == (
        STATE_UNAVAILABLE
    )
    assert hass.states.get("update.garden_firmware").state == STATE_UNAVAILABLE

    nvr.set_online("1", online=True)
    await _poll(hass, entry)
    assert hass.states.get("sensor.garden_firmware_version").state == CAMERAS["1"][2]


async def test_channel_error_keeps_children(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """A recorder that fails to list its channels once removes nothing."""
    entry = _entry(nvr)
    await setup_entry(hass, entry)

    nvr.channels_error = True
    await _poll(hass, entry)

    assert len(_children(hass, entry)) == len(CAMERAS)
    assert hass.states.get("sensor.porch_firmware_version").state == CAMERAS["2"][2]
    assert nvr.count("GET", CHANNELS_PATH) == 2  # setup, then the failed poll


async def test_recorder_without_channel_status(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """Without the status list, the channels still show (reachability unknown)."""
    nvr.status_supported = False
    entry = _entry(nvr)
    await setup_entry(hass, entry)

    assert len(_children(hass, entry)) == len(CAMERAS)
    assert hass.states.get("sensor.road_firmware_version").state == CAMERAS["3"][2]
    assert {c.online for c in entry.runtime_data.coordinator.data.children} == {None}
    assert nvr.count("GET", CHANNELS_STATUS_PATH) == 1


async def test_channels_removed_while_not_running(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """A channel deleted while the entry was unloaded is removed at setup."""
    entry = _entry(nvr)
    await setup_entry(hass, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    nvr.remove_channel("1")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert set(_children(hass, entry)) == {_key(nvr, "2"), _key(nvr, "3")}


async def test_recorder_without_ip_channels(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """A recorder that answers notSupport has no children and is not asked again."""
    nvr.channels_supported = False
    entry = _entry(nvr)
    await setup_entry(hass, entry)
    await _poll(hass, entry)

    assert _children(hass, entry) == {}
    assert nvr.count("GET", CHANNELS_PATH) == 1
    assert nvr.count("GET", CHANNELS_STATUS_PATH) == 0


async def test_camera_has_no_children(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """An IP camera is never asked for channels."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    await _poll(hass, entry)

    assert _children(hass, entry) == {}
    assert camera.count("GET", CHANNELS_PATH) == 0
    assert entry.runtime_data.coordinator.data.children == ()


async def test_setup_during_the_recorders_reboot_keeps_channel_devices(
    hass: HomeAssistant, nvr: IsapiNvrSimulator
) -> None:
    """Home Assistant restarted while the recorder flashed: its cameras stay.

    Setup from the journal cannot read the channels; the install it follows ends
    with a state that lists none. No channel device is removed on the way, and the
    reload after the install finds the same devices again.
    """
    entry = _entry(nvr)
    await setup_entry(hass, entry)
    before = {key: device.id for key, device in _children(hass, entry).items()}
    coordinator = entry.runtime_data.coordinator
    run = InstallRun(
        target_version="V4.62.215 build 240710",
        started_at=time.time(),
        before_version=nvr.running_version,
        serial_number=nvr.serial_number,
    )
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    journal = await InstallJournal.async_get(hass)
    await journal.async_write(entry.entry_id, run, coordinator.identity)
    await nvr.go_offline()
    nvr.firmware_version, nvr.firmware_build = "V4.62.215", "build 240710"
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    registry_changes = async_capture_events(hass, dr.EVENT_DEVICE_REGISTRY_UPDATED)

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert {key: d.id for key, d in _children(hass, entry).items()} == before
    await nvr.go_online()
    await wait_until(hass, lambda: bool(finished))
    assert [e.data["success"] for e in finished] == [True]
    await wait_until(
        hass,
        lambda: (
            entry.runtime_data.coordinator is not coordinator
            and entry.runtime_data.coordinator.data.children != ()
        ),
    )

    assert {key: d.id for key, d in _children(hass, entry).items()} == before
    assert hass.states.get("sensor.garden_firmware_version").state == CAMERAS["1"][2]
    assert [e.data for e in registry_changes if e.data["action"] == "remove"] == []
