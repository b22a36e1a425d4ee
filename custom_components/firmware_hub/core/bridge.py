"""Bridge kinds (EnOS, Miling): Home Assistant as a device's agent towards a cloud.

The cloud offers firmware; the bridge downloads and verifies the package, hands it to
the real device (the Home Assistant layer fires `firmware_hub_install_requested`),
waits for the device's result (`report_install_result`) or a hand-off timeout, and
tells the cloud how it went. Offers, verified packages and a pending hand-off survive
a Home Assistant restart through a `Persistence` the Home Assistant layer provides.

No Home Assistant imports.
"""

from __future__ import annotations

from abc import abstractmethod
import asyncio
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
import logging
from pathlib import Path
import re
import time
from typing import Any, Protocol

from .backend import (
    BackendError,
    FirmwareBackend,
    InstallError,
    InstallRefusedError,
    Publish,
)
from .models import DeviceIdentity, FirmwareOffer, FirmwareState, Phase
from .packages import IntegrityError, Package, PackageError, PackageStore

_LOGGER = logging.getLogger(__name__)

_DIGITS = re.compile(r"(\d+)")


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key comparing the numbers in a version numerically (`1.10` > `1.9`)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in _DIGITS.split(version)
        if part
    )


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


class Persistence(Protocol):
    """Where a bridge keeps what must survive a restart (a Home Assistant Store)."""

    async def async_load(self) -> dict[str, Any] | None:
        """Return the saved data, or None."""

    async def async_save(self, data: dict[str, Any]) -> None:
        """Save `data`."""


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


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """What every bridge needs besides its cloud connection (from the entry)."""

    store: PackageStore
    persistence: Persistence
    handoff_timeout: float  # seconds
    auto_download: bool


class BridgeBackend(FirmwareBackend):
    """Shared lifecycle of the bridge kinds; subclasses speak the cloud's protocol."""

    can_restart = False
    polls = False
    has_release_notes = False

    def __init__(self, *, installed_version: str, settings: BridgeSettings) -> None:
        """Initialize; call `async_restore` before use."""
        super().__init__()
        self.store = settings.store
        self._persistence = settings.persistence
        self.handoff_timeout = settings.handoff_timeout
        self.auto_download = settings.auto_download
        self._installed = installed_version
        self._configured = installed_version
        self._offers: dict[str, BridgeOffer] = {}
        self._ready: dict[str, Package] = {}
        self._downloads: dict[str, asyncio.Task[Package]] = {}
        self.handoff: HandOff | None = None
        self._publish: Publish | None = None
        self._connected = False
        #: Called when the cloud refuses the credentials (Home Assistant: reauth).
        self.on_auth_failed: Callable[[], None] | None = None
        self._state = self._compose()

    # ------------------------------------------------------------ state

    def _latest(self) -> BridgeOffer | None:
        newer = [
            offer
            for offer in self._offers.values()
            if version_key(offer.version) > version_key(self._installed)
        ]
        return max(newer, key=lambda offer: version_key(offer.version), default=None)

    def _compose(self, **changes: Any) -> FirmwareState:
        latest = self._latest()
        offers = tuple(
            FirmwareOffer(offer.version, offer.release_notes)
            for offer in sorted(
                self._offers.values(), key=lambda offer: version_key(offer.version)
            )
        )
        details = {
            "cloud_connected": self._connected,
            "handoff": asdict(self.handoff) if self.handoff else None,
            "ready_versions": sorted(self._ready),
        }
        if self.handoff is not None and "phase" not in changes:
            changes.update(phase=Phase.WAITING_FOR_DEVICE, progress=None)
        return self._state.evolve(
            installed_version=self._installed,
            latest_version=latest.version if latest else self._installed,
            release_notes=latest.release_notes if latest else None,
            offers=offers,
            connected=self._connected,
            details=details,
            **changes,
        )

    def _emit(self, **changes: Any) -> FirmwareState:
        state = self._set_state(self._compose(**changes))
        if self._publish is not None:
            self._publish(state)
        return state

    def attach(self, publish: Publish) -> None:
        """Send every new state (pushes, progress) to `publish`."""
        self._publish = publish

    def set_connected(self, connected: bool) -> None:
        """Record the cloud connection state (the `cloud_connection` sensor)."""
        if connected != self._connected:
            self._connected = connected
            self._emit()

    @property
    def connected(self) -> bool:
        """Return whether the cloud connection is up."""
        return self._connected

    # ------------------------------------------------------------ persistence

    async def async_restore(self) -> None:
        """Load offers, verified packages and a pending hand-off."""
        data = await self._persistence.async_load() or {}
        # The stored version (updated by installs) wins, unless the user has since
        # changed the configured one (the device was flashed another way).
        if data.get(
            "configured_version", self._configured
        ) == self._configured and isinstance(
            installed := data.get("installed_version"), str
        ):
            self._installed = installed
        for raw in data.get("offers", []):
            try:
                offer = BridgeOffer(**raw)
            except TypeError:
                continue
            self._offers[offer.version] = offer
        for raw in data.get("ready", []):
            try:
                package = Package(
                    Path(raw["path"]), raw["size"], raw["md5"], raw["sha256"]
                )
            except KeyError, TypeError:
                continue
            if await asyncio.to_thread(_intact, package):
                self._ready[raw["version"]] = package
        if isinstance(raw_handoff := data.get("handoff"), dict):
            try:
                self.handoff = HandOff(**raw_handoff)
            except TypeError:
                self.handoff = None
        self._state = self._compose()

    async def _persist(self) -> None:
        await self._persistence.async_save(
            {
                "configured_version": self._configured,
                "installed_version": self._installed,
                "offers": [asdict(offer) for offer in self._offers.values()],
                "ready": [
                    {
                        "version": version,
                        "path": str(package.path),
                        "size": package.size,
                        "md5": package.md5,
                        "sha256": package.sha256,
                    }
                    for version, package in self._ready.items()
                ],
                "handoff": asdict(self.handoff) if self.handoff else None,
            }
        )

    # ------------------------------------------------------------ offers

    async def async_offer(self, offer: BridgeOffer, *, replace: bool = False) -> None:
        """Record an offer from the cloud (push or version list)."""
        if replace:
            self._offers = {}
        self._offers[offer.version] = offer
        await self._persist()
        self._emit(last_check=datetime.now(UTC))
        if self._latest() is offer:
            self.resume()

    async def async_set_offers(
        self, offers: list[BridgeOffer], *, keep: Callable[[BridgeOffer], bool]
    ) -> None:
        """Take the cloud's current list (a version check).

        Offers the list does not carry are dropped unless `keep` says otherwise
        (EnOS keeps pushed offers: a push is an explicit request, and a version
        list answered just after it must not erase it).
        """
        current = {v: o for v, o in self._offers.items() if keep(o)}
        self._offers = current | {offer.version: offer for offer in offers}
        await self._persist()
        self._emit(last_check=datetime.now(UTC))
        self.resume()

    def _start_download(self, offer: BridgeOffer) -> asyncio.Task[Package]:
        task = self._downloads.get(offer.version)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(
                self._download_verified(offer),
                name=f"firmware_hub download {offer.version}",
            )
            task.add_done_callback(_consume)
            self._downloads[offer.version] = task
        return task

    async def _download_verified(self, offer: BridgeOffer) -> Package:
        self._emit(phase=Phase.DOWNLOADING, progress=0, error=None)
        last = -1

        def progress(done: int, total: int | None) -> None:
            nonlocal last
            if not total:
                return
            percent = min(99, done * 100 // total)
            if percent != last:
                last = percent
                self._emit(progress=percent)
                self.on_progress(offer, percent)

        try:
            package = await self.download(offer, progress)
        except IntegrityError as err:
            await self.on_download_failed(offer, err, checksum=True)
            self._emit(phase=Phase.FAILED, progress=None, error=str(err))
            raise InstallError("checksum_mismatch", str(err)) from err
        except (PackageError, BackendError) as err:
            await self.on_download_failed(offer, err, checksum=False)
            self._emit(phase=Phase.FAILED, progress=None, error=str(err))
            raise InstallError("download_failed", str(err), reason=str(err)) from err
        self._ready[offer.version] = package
        await self.store.prune(keep=[p.path for p in self._ready.values()])
        await self._persist()
        self._emit(phase=Phase.IDLE, progress=None)
        return package

    # ------------------------------------------------------------ install

    def _choose(self, version: str | None) -> BridgeOffer:
        if self.handoff is not None:
            raise InstallRefusedError(
                "waiting_for_device",
                f"version {self.handoff.version} is waiting for the device's result",
                version=self.handoff.version,
            )
        if version is None:
            offer = self._latest()
            if offer is None:
                raise InstallRefusedError("no_update", "no newer firmware is offered")
            return offer
        if (offer := self._offers.get(version)) is None:
            raise InstallRefusedError(
                "version_not_offered",
                f"version {version} is not offered",
                version=version,
            )
        return offer

    async def async_install(
        self, version: str | None, publish: Publish
    ) -> FirmwareState:
        """Download and verify (unless done), then hand the package to the device."""
        offer = self._choose(version)
        package = self._ready.get(offer.version)
        if package is None:
            package = await self._start_download(offer)
        self.handoff = HandOff(
            version=offer.version,
            path=str(package.path),
            size=package.size,
            md5=package.md5,
            sha256=package.sha256,
            since=time.time(),
            source=dict(offer.source),
        )
        await self._persist()
        await self.on_handed_off(offer)
        return self._emit(phase=Phase.WAITING_FOR_DEVICE, progress=None, error=None)

    @property
    def handoff_deadline(self) -> float | None:
        """Return when (epoch seconds) the pending hand-off times out."""
        return self.handoff.since + self.handoff_timeout if self.handoff else None

    async def async_report_result(
        self, success: bool, version: str | None, message: str | None
    ) -> FirmwareState:
        """Take the device's result for the pending hand-off."""
        handoff = self.handoff
        if handoff is None:
            raise InstallRefusedError("no_pending_install", "nothing was handed off")
        if success and version is not None and version != handoff.version:
            raise InstallRefusedError(
                "version_mismatch",
                f"the device reports {version}, but {handoff.version} was handed off",
                version=version,
                expected=handoff.version,
            )
        self.handoff = None
        if success:
            self._installed = handoff.version
            self._offers = {
                v: o
                for v, o in self._offers.items()
                if version_key(v) > version_key(self._installed)
            }
            self._ready.pop(handoff.version, None)
            await self.store.prune(
                keep=[p.path for p in self._ready.values()],
                partials=all(task.done() for task in self._downloads.values()),
            )
            await self._persist()
            state = self._emit(phase=Phase.IDLE, progress=None, error=None)
            await self.on_result(handoff, success=True, message=message)
            return state
        await self._persist()
        self._emit(phase=Phase.FAILED, progress=None, error=message or "failed")
        await self.on_result(handoff, success=False, message=message)
        raise InstallError(
            "device_reported_failure",
            f"the device reported a failure: {message or 'no message'}",
            reason=message or "",
        )

    async def async_handoff_expired(self) -> None:
        """Fail the pending hand-off: the device did not report in time."""
        handoff = self.handoff
        if handoff is None:
            return
        self.handoff = None
        await self._persist()
        self._emit(phase=Phase.FAILED, progress=None, error="hand-off timed out")
        await self.on_result(
            handoff, success=False, message="hand-off timed out", timed_out=True
        )
        raise InstallError(
            "handoff_timeout",
            f"the device did not report a result for {handoff.version} in time",
        )

    @property
    @abstractmethod
    def identity(self) -> DeviceIdentity:
        """Return who the device is (from its configuration, no I/O)."""

    @abstractmethod
    async def async_run(self) -> None:
        """Stay connected to the cloud (reconnecting) until closed."""

    def resume(self) -> None:
        """Continue what a restart interrupted: the latest offer's download."""
        latest = self._latest()
        if (
            self.auto_download
            and latest is not None
            and self.handoff is None
            and latest.version not in self._ready
        ):
            self._start_download(latest)

    async def async_probe(self) -> DeviceIdentity:
        """Check the cloud accepts the device (config flow), return its identity."""
        await self.async_check_cloud()
        return self.identity

    @abstractmethod
    async def async_check_cloud(self) -> None:
        """Log in / register once with the cloud, then disconnect."""

    async def async_close(self) -> None:
        """Stop background downloads (they save their progress as they stop)."""
        tasks = list(self._downloads.values())
        self._downloads.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ kind hooks

    @abstractmethod
    async def download(
        self, offer: BridgeOffer, progress: Callable[[int, int | None], None]
    ) -> Package:
        """Fetch and verify the offer's package (raise PackageError/BackendError)."""

    def on_progress(self, offer: BridgeOffer, percent: int) -> None:
        """React to download progress (EnOS reports steps to the cloud)."""

    async def on_download_failed(
        self, offer: BridgeOffer, err: Exception, *, checksum: bool
    ) -> None:
        """React to a download that failed for good (EnOS reports -2 / -3)."""

    async def on_handed_off(self, offer: BridgeOffer) -> None:
        """React to the package going to the device."""

    @abstractmethod
    async def on_result(
        self,
        handoff: HandOff,
        *,
        success: bool,
        message: str | None,
        timed_out: bool = False,
    ) -> None:
        """Tell the cloud how the install went."""


def _intact(package: Package) -> bool:
    try:
        return package.path.stat().st_size == package.size
    except OSError:
        return False


def _consume(task: asyncio.Task[Package]) -> None:
    """Retrieve a background download's exception (it was published as state)."""
    if not task.cancelled() and (err := task.exception()) is not None:
        _LOGGER.debug("Background download ended: %r", err)
