"""Shared, immutable firmware state: what backends produce and entities read.

No Home Assistant imports: backends build these objects, the Home Assistant layer
only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Self, TypedDict, Unpack


class Phase(StrEnum):
    """Where the device's firmware lifecycle stands (the `firmware_status` sensor)."""

    IDLE = "idle"
    CHECKING = "checking"
    #: Waiting for a free install slot (the install queue).
    QUEUED = "queued"
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
        Phase.QUEUED,
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
class InstallRun:
    """The install running on the device: what the install journal persists.

    Written before the first request that can start a flash and removed once the
    outcome is known, so that an install outlives a reload or a restart: setup
    follows it to its end instead of offering (or starting) another one.
    """

    #: The version being installed (None: a file whose version is unknown).
    target_version: str | None
    #: When the install started (Unix time).
    started_at: float
    #: The version the device ran before (to tell a flash that did not take).
    before_version: str | None = None
    #: The device's serial number before (the device that comes back must match).
    serial_number: str | None = None
    #: The name of the firmware file being installed (file installs; never a path).
    file_name: str | None = None
    #: When the device must answer again at the latest (Unix time), if known.
    deadline: float | None = None
    #: The child device (`ChildDevice.key`) the install is for, through its parent.
    child: str | None = None
    #: The device's id of the install task, once it named one (followed after a
    #: restart instead of starting over).
    task_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the run as stored in the journal."""
        return {
            "target_version": self.target_version,
            "started_at": self.started_at,
            "before_version": self.before_version,
            "serial_number": self.serial_number,
            "file_name": self.file_name,
            "deadline": self.deadline,
            "child": self.child,
            "task_id": self.task_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstallRun:
        """Return the run the journal stored (unknown keys ignored)."""
        return cls(
            target_version=data.get("target_version"),
            started_at=float(data.get("started_at") or 0.0),
            before_version=data.get("before_version"),
            serial_number=data.get("serial_number"),
            file_name=data.get("file_name"),
            deadline=data.get("deadline"),
            child=data.get("child"),
            task_id=data.get("task_id"),
        )


@dataclass(frozen=True, slots=True)
class KindFacts:
    """Base of the typed facts one kind adds to the state (ONVIF settings...).

    Each kind subclasses it in its own package; the Home Assistant layer reads a
    kind's facts only through that kind's `spec.py`.
    """

    def as_diagnostics(self) -> dict[str, Any]:
        """Return the facts for diagnostics (redacted by the caller)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class ChildDevice:
    """A device behind the configured one (a recorder's IP channel camera).

    It has its own device registry entry (linked to its parent) and its own
    firmware; the parent's backend reads it on every refresh.
    """

    #: Stable while the child exists on its parent (entity unique ids derive from
    #: it); `identity.unique_id` is the same value.
    key: str
    identity: DeviceIdentity
    installed_version: str | None
    #: The newest firmware offered for the child (None: no offer is known).
    latest_version: str | None = None
    #: Whether the child's firmware can be installed through its parent.
    can_install: bool = False
    #: Whether the parent reaches the child (None: the parent does not say).
    online: bool | None = None
    #: An install on the child through its parent: its phase and progress.
    phase: Phase = Phase.IDLE
    progress: int | None = None

    @property
    def in_progress(self) -> bool:
        """Return True while an install on the child runs."""
        return self.phase in ACTIVE_PHASES


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
    #: The install running on the device, if any (persisted by the journal).
    install: InstallRun | None = None
    #: Whether the device reaches where its firmware comes from (the Hikvision
    #: upgrade server, the bridges' cloud); None when unknown or not applicable.
    connected: bool | None = None
    #: What the kind adds (typed per kind).
    facts: KindFacts | None = None
    #: Devices behind this one (a recorder's channel cameras), each with its
    #: own firmware.
    children: tuple[ChildDevice, ...] = ()

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

    def evolve(self, **changes: Unpack[StateChanges]) -> Self:
        """Return a copy with `changes` applied (the state itself never changes)."""
        return replace(self, **changes)

    def child(self, key: str | None) -> ChildDevice | None:
        """Return the child device `key` (None: no such child)."""
        return next((c for c in self.children if c.key == key), None)

    def with_child(self, key: str, **changes: Unpack[ChildChanges]) -> Self:
        """Return a copy whose child `key` has `changes` applied."""
        return replace(
            self,
            children=tuple(
                replace(c, **changes) if c.key == key else c for c in self.children
            ),
        )


class StateChanges(TypedDict, total=False):
    """The fields `FirmwareState.evolve` takes: a typo is a type error."""

    installed_version: str | None
    latest_version: str | None
    release_notes: str | None
    release_url: str | None
    phase: Phase
    progress: int | None
    error: str | None
    offers: tuple[FirmwareOffer, ...]
    last_check: datetime | None
    install: InstallRun | None
    connected: bool | None
    facts: KindFacts | None
    children: tuple[ChildDevice, ...]


class ChildChanges(TypedDict, total=False):
    """The fields `FirmwareState.with_child` takes: a child's install and firmware."""

    installed_version: str | None
    latest_version: str | None
    phase: Phase
    progress: int | None
