"""Connectivity binary sensors: the device's upgrade server, the bridge's cloud."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import Kind
from .coordinator import FirmwareCoordinator, FirmwareHubConfigEntry
from .core.bridge import BridgeBackend
from .entity import FirmwareHubEntity

# Read-only entities fed by the coordinator.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class FirmwareBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A binary sensor reading one detail of the firmware state."""

    detail: str
    exists_fn: Callable[[FirmwareCoordinator], bool]


BINARY_SENSORS: tuple[FirmwareBinarySensorEntityDescription, ...] = (
    FirmwareBinarySensorEntityDescription(
        key="upgrade_server",
        translation_key="upgrade_server",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        detail="upgrade_server_connected",
        exists_fn=lambda coordinator: (
            coordinator.kind is Kind.HIKVISION
            and bool(coordinator.data.details.get("online_upgrade"))
        ),
    ),
    FirmwareBinarySensorEntityDescription(
        key="cloud_connection",
        translation_key="cloud_connection",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        detail="cloud_connected",
        exists_fn=lambda coordinator: isinstance(coordinator.backend, BridgeBackend),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FirmwareHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the connectivity sensors the device has."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        FirmwareBinarySensor(coordinator, description)
        for description in BINARY_SENSORS
        if description.exists_fn(coordinator)
    )


class FirmwareBinarySensor(FirmwareHubEntity, BinarySensorEntity):
    """A connectivity sensor."""

    entity_description: FirmwareBinarySensorEntityDescription

    @property
    def is_on(self) -> bool | None:
        """Return the connection state (None when the device does not say)."""
        value = self.coordinator.data.details.get(self.entity_description.detail)
        return value if isinstance(value, bool) else None
