"""Devices behind a configured device (a recorder's channel cameras).

The backend lists them in `FirmwareState.children`; here each becomes a device
registry entry linked to its parent (`via_device_id`) with its own firmware
entities. Children that appear are added after the poll that found them; children
that disappear are removed from the device registry (Home Assistant's
stale-devices rule), which removes their entities. Generic: no kind is named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.components.sensor import SensorEntity
from homeassistant.components.update import UpdateEntity, UpdateEntityFeature
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import FirmwareCoordinator, FirmwareHubConfigEntry
from .core.models import ChildDevice, InstallRun

#: Builds a platform's entities for one child.
type ChildEntities = Callable[[FirmwareCoordinator, ChildDevice], Iterable[Entity]]


def _parent_device_id(coordinator: FirmwareCoordinator) -> str:
    """Return the parent's device id, registering the parent if it is not yet."""
    device = dr.async_get(coordinator.hass).async_get_or_create(
        config_entry_id=coordinator.config_entry.entry_id,
        identifiers={(DOMAIN, coordinator.identity.unique_id)},
    )
    return device.id


def file_summary(install: InstallRun | None, child: str | None = None) -> str | None:
    """Name the firmware file an install (on the device, or on `child`) installs."""
    if install is None or install.child != child or not install.file_name:
        return None
    return f"Installing the firmware file {install.file_name}."


class ChildEntity(CoordinatorEntity[FirmwareCoordinator]):
    """An entity of a child device; its state is the child's, read by key."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: FirmwareCoordinator,
        child: ChildDevice,
        description: EntityDescription,
    ) -> None:
        """Initialize for `child`, linked to the coordinator's device."""
        super().__init__(coordinator)
        self.entity_description = description
        self._key = child.key
        self._attr_unique_id = f"{child.key}_{description.key}"
        identity = child.identity
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, identity.unique_id)},
            manufacturer=identity.manufacturer or None,
            model=identity.model,
            name=identity.name,
            serial_number=identity.serial_number,
            sw_version=child.installed_version,
            via_device_id=_parent_device_id(coordinator),
        )

    @property
    def child(self) -> ChildDevice | None:
        """Return the child's latest state (None once its parent dropped it)."""
        return self.coordinator.data.child(self._key)

    @property
    def available(self) -> bool:
        """Return False while the parent does not reach the child."""
        child = self.child
        return super().available and child is not None and child.online is not False


class ChildFirmwareSensor(ChildEntity, SensorEntity):
    """A child's firmware version."""

    @property
    def native_value(self) -> str | None:
        """Return the firmware the child runs."""
        child = self.child
        return child.installed_version if child else None


class ChildUpdateEntity(ChildEntity, UpdateEntity):
    """A child's firmware: its version, and the progress of a file install.

    No INSTALL feature: no offer is known for a child (the Hikvision kind's
    `channels.py` says why). A child that takes a firmware file through its
    parent (`can_install`, the `install_firmware_file` action) shows that
    install's progress here.
    """

    @property
    def supported_features(self) -> UpdateEntityFeature:
        """Return PROGRESS where the child takes a file through its parent."""
        child = self.child
        if child is not None and child.can_install:
            return UpdateEntityFeature.PROGRESS
        return UpdateEntityFeature(0)

    @property
    def in_progress(self) -> bool:
        """Return True while a firmware file is installed on the child."""
        child = self.child
        return child is not None and child.in_progress

    @property
    def update_percentage(self) -> int | None:
        """Return the child's install progress."""
        child = self.child
        return child.progress if child is not None and child.in_progress else None

    @property
    def release_summary(self) -> str | None:
        """Name the firmware file being installed on the child."""
        return file_summary(self.coordinator.data.install, self._key)

    @property
    def installed_version(self) -> str | None:
        """Return the firmware the child runs."""
        child = self.child
        return child.installed_version if child else None

    @property
    def latest_version(self) -> str | None:
        """Return the newest firmware known for the child (else the installed one)."""
        child = self.child
        if child is None:
            return None
        return child.latest_version or child.installed_version

    def version_is_newer(self, latest_version: str, installed_version: str) -> bool:
        """Vendors' version strings are not semantic versions: the backend decides."""
        return latest_version != installed_version


@callback
def async_add_child_entities(
    coordinator: FirmwareCoordinator,
    async_add_entities: AddConfigEntryEntitiesCallback,
    build: ChildEntities,
) -> None:
    """Add a platform's entities for every child, now and whenever one appears."""
    added: set[str] = set()

    @callback
    def _add_new() -> None:
        children = coordinator.data.children
        # A child removed and added again later gets new entities.
        added.intersection_update(child.key for child in children)
        new = [child for child in children if child.key not in added]
        if not new:
            return
        added.update(child.key for child in new)
        async_add_entities(
            [entity for child in new for entity in build(coordinator, child)]
        )

    _add_new()
    coordinator.config_entry.async_on_unload(coordinator.async_add_listener(_add_new))


@callback
def async_track_child_devices(
    hass: HomeAssistant, entry: FirmwareHubConfigEntry
) -> None:
    """Keep the children's registry entries what the parent reports.

    A child the parent no longer lists is removed from the device registry (and
    with it its entities); a child's new firmware shows as its device's software version.
    A state without an installed version was not read from the device: it
    removes nothing.
    """
    coordinator = entry.runtime_data.coordinator

    @callback
    def _sync() -> None:
        state = coordinator.data
        if state.installed_version is None:
            return
        registry = dr.async_get(hass)
        parent_id = coordinator.device_id
        if parent_id is None:
            return
        children = {child.identity.unique_id: child for child in state.children}
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
            if device.via_device_id != parent_id:
                continue
            child = next(
                (
                    children[unique_id]
                    for domain, unique_id in device.identifiers
                    if domain == DOMAIN and unique_id in children
                ),
                None,
            )
            if child is None:
                # A device belongs to one config entry (Home Assistant 2026.8+):
                # removing the entry's stale device is `async_remove_device`.
                registry.async_remove_device(device.id)
            elif (device.sw_version, device.model, device.serial_number) != (
                child.installed_version,
                child.identity.model,
                child.identity.serial_number,
            ):
                registry.async_update_device(
                    device.id,
                    sw_version=child.installed_version,
                    model=child.identity.model,
                    serial_number=child.identity.serial_number,
                )

    _sync()  # children removed while Home Assistant was not running
    entry.async_on_unload(coordinator.async_add_listener(_sync))
