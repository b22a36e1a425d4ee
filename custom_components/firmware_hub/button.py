"""Buttons: check for update, restart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.components.button.const import ButtonDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import FirmwareCoordinator, FirmwareHubConfigEntry
from .entity import FirmwareHubEntity

# No platform semaphore: the coordinator refuses actions during an install instead
# of queueing them behind it.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class FirmwareButtonEntityDescription(ButtonEntityDescription):
    """A button calling one coordinator action."""

    exists_fn: Callable[[FirmwareCoordinator], bool]
    press_fn: Callable[[FirmwareCoordinator], Awaitable[None]]
    #: Whether it can be pressed now (a bridge's check needs the cloud).
    usable_fn: Callable[[FirmwareCoordinator], bool] = lambda _coordinator: True


BUTTONS: tuple[FirmwareButtonEntityDescription, ...] = (
    FirmwareButtonEntityDescription(
        key="check_for_update",
        translation_key="check_for_update",
        entity_category=EntityCategory.DIAGNOSTIC,
        exists_fn=lambda coordinator: coordinator.backend.can_check,
        press_fn=lambda coordinator: coordinator.async_check(),
        usable_fn=lambda coordinator: coordinator.data.connected is not False,
    ),
    FirmwareButtonEntityDescription(
        key="restart",
        device_class=ButtonDeviceClass.RESTART,
        entity_category=EntityCategory.CONFIG,
        exists_fn=lambda coordinator: coordinator.backend.can_restart,
        press_fn=lambda coordinator: coordinator.async_restart(),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FirmwareHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the buttons the device kind supports."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        FirmwareButton(coordinator, description)
        for description in BUTTONS
        if description.exists_fn(coordinator)
    )


class FirmwareButton(FirmwareHubEntity, ButtonEntity):
    """A device action."""

    entity_description: FirmwareButtonEntityDescription

    @property
    def available(self) -> bool:
        """Return whether the action can run now."""
        return super().available and self.entity_description.usable_fn(self.coordinator)

    async def async_press(self) -> None:
        """Run the action."""
        await self.entity_description.press_fn(self.coordinator)
