"""Connectivity sensors: a bridge's cloud connection, and what the kind adds."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import FirmwareHubConfigEntry
from .entity import FirmwareHubEntity
from .kind_spec import KindBinarySensorEntityDescription
from .registry import KINDS

# Read-only entities fed by the coordinator.
PARALLEL_UPDATES = 0

#: The bridges' link to their cloud (`FirmwareState.connected`).
CLOUD_CONNECTION = KindBinarySensorEntityDescription(
    key="cloud_connection",
    translation_key="cloud_connection",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
    value_fn=lambda state: state.connected,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FirmwareHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the connectivity sensors the device has."""
    coordinator = entry.runtime_data.coordinator
    descriptions = list(KINDS[coordinator.kind].binary_sensors)
    if coordinator.handoffs is not None:
        descriptions.append(CLOUD_CONNECTION)
    async_add_entities(
        FirmwareBinarySensor(coordinator, description)
        for description in descriptions
        if description.exists_fn(coordinator.data)
    )


class FirmwareBinarySensor(FirmwareHubEntity, BinarySensorEntity):
    """A connectivity sensor."""

    entity_description: KindBinarySensorEntityDescription

    @property
    def is_on(self) -> bool | None:
        """Return the connection state (None when the device does not say)."""
        return self.entity_description.value_fn(self.coordinator.data)
