"""Firmware sensors: version, status, progress, last check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import PERCENTAGE, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .children import ChildFirmwareSensor, async_add_child_entities
from .coordinator import FirmwareHubConfigEntry
from .core.models import FirmwareState, Phase
from .entity import FirmwareHubEntity
from .registry import KINDS

# Read-only entities fed by the coordinator.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class FirmwareSensorEntityDescription(SensorEntityDescription):
    """A sensor reading one value of the firmware state."""

    value_fn: Callable[[FirmwareState], StateType | datetime]


SENSORS: tuple[FirmwareSensorEntityDescription, ...] = (
    FirmwareSensorEntityDescription(
        key="firmware_version",
        translation_key="firmware_version",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.installed_version,
    ),
    FirmwareSensorEntityDescription(
        key="firmware_status",
        translation_key="firmware_status",
        device_class=SensorDeviceClass.ENUM,
        options=[phase.value for phase in Phase],
        value_fn=lambda state: state.phase.value,
    ),
    FirmwareSensorEntityDescription(
        key="firmware_progress",
        translation_key="firmware_progress",
        native_unit_of_measurement=PERCENTAGE,
        # Unknown whenever no install runs; a number while one does.
        value_fn=lambda state: state.progress if state.in_progress else None,
    ),
    FirmwareSensorEntityDescription(
        key="last_check",
        translation_key="last_check",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.last_check,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FirmwareHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the firmware sensors and the ones the device's kind adds."""
    coordinator = entry.runtime_data.coordinator
    sensors: list[SensorEntity] = [
        FirmwareSensor(coordinator, description) for description in SENSORS
    ]
    sensors.extend(KINDS[coordinator.kind].sensors(coordinator))
    async_add_entities(sensors)
    async_add_child_entities(
        coordinator,
        async_add_entities,
        lambda coordinator, child: [
            ChildFirmwareSensor(coordinator, child, SENSORS[0])
        ],
    )


class FirmwareSensor(FirmwareHubEntity, SensorEntity):
    """A firmware sensor."""

    entity_description: FirmwareSensorEntityDescription

    @property
    def native_value(self) -> StateType | datetime:
        """Return the sensor's value from the firmware state."""
        return self.entity_description.value_fn(self.coordinator.data)
