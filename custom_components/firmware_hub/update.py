"""The `firmware` update entity: installed and latest version, install, progress."""

from __future__ import annotations

from typing import Any

from homeassistant.components.update import (
    UpdateDeviceClass,
    UpdateEntity,
    UpdateEntityDescription,
    UpdateEntityFeature,
)
from homeassistant.core import HomeAssistant, ServiceResponse
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .children import ChildUpdateEntity, async_add_child_entities, file_summary
from .coordinator import FirmwareCoordinator, FirmwareHubConfigEntry
from .core.models import Phase
from .entity import FirmwareHubEntity
from .registry import KINDS

# No platform semaphore: it would queue a second install behind the first (an
# install takes minutes) instead of refusing it; the coordinator's per-device lock
# refuses it with a clear error.
PARALLEL_UPDATES = 0

FIRMWARE = UpdateEntityDescription(
    key="firmware",
    translation_key="firmware",
    device_class=UpdateDeviceClass.FIRMWARE,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FirmwareHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the firmware update entity."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities([FirmwareUpdateEntity(coordinator, FIRMWARE)])
    async_add_child_entities(
        coordinator,
        async_add_entities,
        lambda coordinator, child: [ChildUpdateEntity(coordinator, child, FIRMWARE)],
    )


def _local_time(timestamp: float) -> str:
    return dt_util.as_local(dt_util.utc_from_timestamp(timestamp)).strftime("%H:%M")


class FirmwareUpdateEntity(FirmwareHubEntity, UpdateEntity):
    """The device's firmware.

    `in_progress` and `update_percentage` come from the coordinator's state, not from
    attributes Home Assistant resets when `async_install` returns: they stay true and
    live until the device really finished (rebooted and verified, or handed off).
    """

    entity_description: UpdateEntityDescription

    def __init__(
        self, coordinator: FirmwareCoordinator, description: UpdateEntityDescription
    ) -> None:
        """Initialize; features follow what the device kind can do."""
        super().__init__(coordinator, description)
        features = UpdateEntityFeature(0)
        if coordinator.backend.has_release_notes:
            features |= UpdateEntityFeature.RELEASE_NOTES
        if coordinator.backend.specific_version:
            features |= UpdateEntityFeature.SPECIFIC_VERSION
        if coordinator.backend.can_install or coordinator.backend.can_install_file:
            # ONVIF installs a file (install_firmware_file) and never offers a
            # version, so Home Assistant shows no Install button; its progress
            # still shows here while a file is installed.
            features |= UpdateEntityFeature.INSTALL | UpdateEntityFeature.PROGRESS
        self._attr_supported_features = features

    @property
    def installed_version(self) -> str | None:
        """Return the firmware the device runs."""
        return self.coordinator.data.installed_version

    @property
    def latest_version(self) -> str | None:
        """Return the newest firmware offered (the installed one when none is).

        While a firmware file is installed, its name: the dialog then says which
        file goes in, instead of showing the installed version twice.
        """
        data = self.coordinator.data
        if data.in_progress and data.install and data.install.file_name:
            return data.install.file_name
        return data.latest_version

    @property
    def release_summary(self) -> str | None:
        """Say what an install waits for (a bridge's device, a firmware file)."""
        data = self.coordinator.data
        handoffs = self.coordinator.handoffs
        if (
            data.phase is Phase.WAITING_FOR_DEVICE
            and handoffs is not None
            and (pending := handoffs.pending) is not None
        ):
            since, deadline = (_local_time(moment) for moment in pending)
            return (
                f"Handed to the device at {since}; waiting for its result "
                f"(firmware_hub.report_install_result) until {deadline}."
            )
        if data.in_progress and (summary := file_summary(data.install)):
            return summary
        if data.in_progress:
            return KINDS[self.coordinator.kind].release_summary(data)
        return None

    @property
    def release_url(self) -> str | None:
        """Return the offer's release page, if the vendor gives one."""
        return self.coordinator.data.release_url

    @property
    def in_progress(self) -> bool:
        """Return True while an install runs."""
        return self.coordinator.data.in_progress

    @property
    def update_percentage(self) -> int | None:
        """Return the install's progress."""
        data = self.coordinator.data
        return data.progress if data.in_progress else None

    def version_is_newer(self, latest_version: str, installed_version: str) -> bool:
        """Vendors' version strings are not semantic versions: the backend decides.

        A backend reports `latest_version` equal to `installed_version` unless the
        offer is newer (`V5.7.18` and `V5.7.18 build 240826` are the same firmware).
        """
        return latest_version != installed_version

    async def async_release_notes(self) -> str | None:
        """Return the offer's change log."""
        return self.coordinator.data.release_notes

    async def async_get_release_notes(self) -> ServiceResponse:
        """Return the offer and its change log (`firmware_hub.get_release_notes`)."""
        data = self.coordinator.data
        return {
            "installed_version": data.installed_version,
            "latest_version": data.latest_version,
            "release_notes": data.release_notes,
            "release_url": data.release_url,
        }

    async def async_cancel_install(self) -> None:
        """Cancel the device's queued or running install (`firmware_hub.cancel_install`)."""
        await self.coordinator.async_cancel_install()

    async def async_install(
        self, version: str | None, backup: bool, **kwargs: Any
    ) -> None:
        """Install the firmware and wait until the device finished."""
        await self.coordinator.async_install(version)
