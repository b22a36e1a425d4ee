"""Base entity: one device per config entry, state read from the coordinator."""

from __future__ import annotations

from homeassistant.helpers.device_registry import (
    CONNECTION_NETWORK_MAC,
    DeviceInfo,
    format_mac,
)
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import FirmwareCoordinator

#: What devices report when they have no value (e.g. Hikvision's hardware "0x0").
PLACEHOLDER_VALUES = frozenset({"", "0", "0x0", "n/a", "na", "none", "null", "unknown"})


def real_value(value: str | None) -> str | None:
    """Return `value`, or None for a placeholder that must not reach the registry."""
    if value is None or value.strip().lower() in PLACEHOLDER_VALUES:
        return None
    return value


class FirmwareHubEntity(CoordinatorEntity[FirmwareCoordinator]):
    """An entity of a Firmware Hub device."""

    _attr_has_entity_name = True

    def __init__(
        self, coordinator: FirmwareCoordinator, description: EntityDescription
    ) -> None:
        """Initialize from the coordinator's device identity."""
        super().__init__(coordinator)
        self.entity_description = description
        identity = coordinator.identity
        self._attr_unique_id = f"{identity.unique_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, identity.unique_id)},
            connections=(
                {(CONNECTION_NETWORK_MAC, format_mac(identity.mac_address))}
                if identity.mac_address
                else set()
            ),
            manufacturer=identity.manufacturer,
            model=identity.model,
            name=coordinator.config_entry.title,
            serial_number=identity.serial_number,
            hw_version=real_value(identity.hw_version),
            sw_version=coordinator.data.installed_version,
        )
