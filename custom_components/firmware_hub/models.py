"""Shared, immutable firmware state: what backends produce and entities read.

No Home Assistant imports: backends build these objects, the Home Assistant layer
only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Self


class Phase(StrEnum):
    """Where the device's firmware lifecycle stands (the `firmware_status` sensor)."""

    IDLE = "idle"
    CHECKING = "checking"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    INSTALLING = "installing"
    REBOOTING = "rebooting"
    WAITING_FOR_DEVICE = "waiting_for_device"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"


#: Phases during which an install is running: the update entity shows progress.
ACTIVE_PHASES = frozenset(
    {
        Phase.DOWNLOADING,
        Phase.VERIFYING,
        Phase.INSTALLING,
        Phase.REBOOTING,
        Phase.WAITING_FOR_DEVICE,
    }
)


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who the device is: the device registry entry and the config entry unique id."""

    unique_id: str
    manufacturer: str
    model: str
    name: str
    serial_number: str | None = None
    mac_address: str | None = None
    hw_version: str | None = None


@dataclass(frozen=True, slots=True)
class FirmwareOffer:
    """A firmware version the device could install."""

    version: str
    release_notes: str | None = None
    release_url: str | None = None


@dataclass(frozen=True, slots=True)
class FirmwareState:
    """Everything the entities show about a device's firmware."""

    installed_version: str | None = None
    latest_version: str | None = None
    release_notes: str | None = None
    release_url: str | None = None
    phase: Phase = Phase.IDLE
    progress: int | None = None
    error: str | None = None
    offers: tuple[FirmwareOffer, ...] = ()
    last_check: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def in_progress(self) -> bool:
        """Return True while an install runs (until the device really finished)."""
        return self.phase in ACTIVE_PHASES

    @property
    def update_available(self) -> bool:
        """Return True when the latest version differs from the installed one."""
        return (
            self.latest_version is not None
            and self.installed_version is not None
            and self.latest_version != self.installed_version
        )

    def evolve(self, **changes: Any) -> Self:
        """Return a copy with `changes` applied (the state itself never changes)."""
        if "details" in changes:
            changes["details"] = dict(changes["details"])
        return replace(self, **changes)
