"""What the bridge lifecycle works with: offers, hand-offs, settings, typed facts.

No Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
import hashlib
import json
from typing import Any, Final, Protocol

from ..models import KindFacts
from ..packages import IntegrityError, Package, PackageStore
from ..retry import Backoff

#: The `source` entries that name where a package comes from, for offers that do
#: not say it in `origin` (EnOS: the file URL; Miling: the file name).
ORIGIN_KEYS: Final = ("file_url", "file_name")
#: Waits before a failed offer's package is downloaded again by itself.
FAILED_OFFER_RETRY = Backoff(initial=300.0, maximum=6 * 3600.0, jitter=0.2)


class Persistence(Protocol):
    """Where a bridge keeps what must survive a restart (a Home Assistant Store)."""

    async def async_load(self) -> dict[str, Any] | None:
        """Return the saved data, or None."""

    async def async_save(self, data: dict[str, Any]) -> None:
        """Save `data`."""


class MemoryPersistence:
    """Persistence that forgets (a config flow's throw-away backend)."""

    def __init__(self) -> None:
        """Start empty."""
        self.data: dict[str, Any] | None = None

    async def async_load(self) -> dict[str, Any] | None:
        """Return what was saved in this process."""
        return self.data

    async def async_save(self, data: dict[str, Any]) -> None:
        """Keep `data` in memory."""
        self.data = data


def _hex(value: str | None) -> str | None:
    return value.strip().lower() if value else None


@dataclass(frozen=True, slots=True)
class BridgeOffer:
    """Firmware the cloud offers, with what is needed to fetch and verify it."""

    version: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    release_notes: str | None = None
    #: Kind-specific, JSON-serialisable (URL, file name, message id...).
    source: Mapping[str, Any] = field(default_factory=dict)
    #: Where the package comes from (URL, file name); None: from `source`.
    origin: str | None = None

    @property
    def package_origin(self) -> str:
        """Return where the package comes from."""
        if self.origin is not None:
            return self.origin
        return next(
            (str(self.source[key]) for key in ORIGIN_KEYS if key in self.source), ""
        )

    @property
    def package_key(self) -> str:
        """Return the package's identity: version, size, checksums and origin.

        A corrected offer (same version, another file) has another key: the
        package downloaded for the old one is never handed off for it.
        """
        identity = [
            self.version,
            self.size,
            _hex(self.md5),
            _hex(self.sha256),
            self.package_origin,
        ]
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]

    def checked(self, package: Package) -> Package:
        """Return `package` if it is what this offer announces, else raise."""
        if not self.matches(package):
            raise IntegrityError(f"{package.size}-byte package differs from the offer")
        return package

    def matches(self, package: Package) -> bool:
        """Return whether `package` is what this offer announces (size, checksums)."""
        return (
            (self.size is None or package.size == self.size)
            and (self.md5 is None or _hex(self.md5) == package.md5)
            and (self.sha256 is None or _hex(self.sha256) == package.sha256)
        )


@dataclass(frozen=True, slots=True)
class HandOff:
    """A verified package handed to the device, waiting for its result."""

    version: str
    path: str
    size: int
    md5: str
    sha256: str
    since: float  # epoch seconds
    source: Mapping[str, Any] = field(default_factory=dict)
    #: The offer's `package_key` ("" when handed off by an older version).
    key: str = ""


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """What every bridge needs besides its cloud connection (from the entry)."""

    store: PackageStore
    persistence: Persistence
    handoff_timeout: float  # seconds
    auto_download: bool
    #: Waits before a failed offer is downloaded again (None: FAILED_OFFER_RETRY).
    retry: Backoff | None = None


@dataclass(frozen=True, slots=True)
class BridgeFacts(KindFacts):
    """What a bridge adds to the state: the pending hand-off, the ready packages."""

    handoff: HandOff | None = None
    #: Offered versions whose package is downloaded and verified.
    ready_versions: tuple[str, ...] = ()

    def as_diagnostics(self) -> dict[str, Any]:
        """Return the facts as plain data."""
        return {
            "handoff": asdict(self.handoff) if self.handoff else None,
            "ready_versions": list(self.ready_versions),
        }
