"""The bridge's books: offers, verified packages, background downloads, state.

Packages are keyed by the offer's `package_key` (version, size, checksums and
origin): a corrected offer for the same version cancels the stale download and is
fetched anew. Packages no longer offered are pruned (unless handed off); a failed
offer is retried with backoff, not at every check and reconnect. Everything a
download can raise ends as a failed state, never a download stuck running.

No Home Assistant imports.
"""

from __future__ import annotations

from abc import abstractmethod
import asyncio
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
import logging
from pathlib import Path
from typing import Any

import aiohttp

from ..backend import BackendError, FirmwareBackend, InstallError, Publish
from ..models import FirmwareOffer, FirmwareState, Phase, StateChanges
from ..packages import (
    DownloadError,
    InsufficientSpaceError,
    IntegrityError,
    Package,
    PackageError,
    StorageError,
    download_owner,
)
from ..versions import sort_key
from .models import (
    FAILED_OFFER_RETRY,
    BridgeFacts,
    BridgeOffer,
    BridgeSettings,
    HandOff,
)

_LOGGER = logging.getLogger(__name__)

#: `OSError`s that are the network's, not the disk's.
_NETWORK_ERRORS = (ConnectionError, TimeoutError, aiohttp.ClientError)


class OfferBook(FirmwareBackend):
    """Offers and their packages; `BridgeBackend` adds hand-off and result."""

    def __init__(self, *, installed_version: str, settings: BridgeSettings) -> None:
        """Initialize; call `async_restore` before use."""
        super().__init__()
        self.store = settings.store
        self._persistence = settings.persistence
        self.handoff_timeout = settings.handoff_timeout
        self.auto_download = settings.auto_download
        self._retry = settings.retry or FAILED_OFFER_RETRY
        self._installed = installed_version
        self._configured = installed_version
        self._offers: dict[str, BridgeOffer] = {}
        #: Verified packages by the offer's package key.
        self._ready: dict[str, Package] = {}
        self._downloads: dict[str, asyncio.Task[Package]] = {}
        #: Failed downloads by package key: (failures so far, retry at loop time).
        self._failures: dict[str, tuple[int, float]] = {}
        self._retry_timer: asyncio.TimerHandle | None = None
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
            if sort_key(offer.version) > sort_key(self._installed)
        ]
        return max(newer, key=lambda offer: sort_key(offer.version), default=None)

    def _compose(self, **changes: Any) -> FirmwareState:
        latest = self._latest()
        offers = sorted(self._offers.values(), key=lambda o: sort_key(o.version))
        ready = tuple(o.version for o in offers if o.package_key in self._ready)
        if self.handoff is not None and "phase" not in changes:
            changes.update(phase=Phase.WAITING_FOR_DEVICE, progress=None)
        typed: StateChanges = {
            "installed_version": self._installed,
            "latest_version": latest.version if latest else self._installed,
            "release_notes": latest.release_notes if latest else None,
            "offers": tuple(FirmwareOffer(o.version, o.release_notes) for o in offers),
            "connected": self._connected,
            "facts": BridgeFacts(handoff=self.handoff, ready_versions=ready),
        }
        return self._state.evolve(**typed, **changes)

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

    # ------------------------------------------------------------ persistence

    async def async_restore(self) -> None:
        """Load offers, verified packages and a pending hand-off; delete leftovers."""
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
            await self._restore_package(raw)
        if isinstance(raw_handoff := data.get("handoff"), dict):
            try:
                self.handoff = HandOff(**raw_handoff)
            except TypeError:
                self.handoff = None
        # Interrupted downloads of offers gone, stale temporary files: deleted.
        await self._prune()
        self._state = self._compose()

    async def _restore_package(self, raw: Any) -> None:
        try:
            package = Package(Path(raw["path"]), raw["size"], raw["md5"], raw["sha256"])
        except KeyError, TypeError:
            return
        key = raw.get("key")
        if not isinstance(key, str):  # saved before packages had keys
            offer = self._offers.get(raw.get("version", ""))
            if offer is None or not offer.matches(package):
                return
            key = offer.package_key
        if await asyncio.to_thread(_intact, package):
            self._ready[key] = package

    async def _persist(self) -> None:
        versions = {offer.package_key: offer.version for offer in self._offers.values()}
        await self._persistence.async_save(
            {
                "configured_version": self._configured,
                "installed_version": self._installed,
                "offers": [asdict(offer) for offer in self._offers.values()],
                "ready": [
                    {
                        "key": key,
                        "version": versions.get(key),
                        "path": str(package.path),
                        "size": package.size,
                        "md5": package.md5,
                        "sha256": package.sha256,
                    }
                    for key, package in self._ready.items()
                ],
                "handoff": asdict(self.handoff) if self.handoff else None,
            }
        )

    def _wanted(self) -> set[str]:
        wanted = {offer.package_key for offer in self._offers.values()}
        if self.handoff is not None:
            wanted.add(self.handoff.key)
        return wanted

    async def _prune(self) -> None:
        """Forget and delete what no current offer or hand-off needs."""
        wanted = self._wanted()
        self._failures = {k: f for k, f in self._failures.items() if k in wanted}

        def keep() -> list[Path]:
            # Asked by the store once no download can finish meanwhile.
            wanted = self._wanted()
            self._ready = {k: p for k, p in self._ready.items() if k in wanted}
            paths = [package.path for package in self._ready.values()]
            if self.handoff is not None:
                paths.append(Path(self.handoff.path))
            return paths

        await self.store.prune(keep, owners=wanted)

    # ------------------------------------------------------------ offers

    async def async_offer(self, offer: BridgeOffer, *, replace: bool = False) -> None:
        """Record an offer from the cloud (push or version list)."""
        offers = {} if replace else dict(self._offers)
        offers[offer.version] = offer
        await self._take_offers(offers)
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
        await self._take_offers(current | {offer.version: offer for offer in offers})
        self.resume()

    async def _take_offers(self, offers: dict[str, BridgeOffer]) -> None:
        """Replace the offers; stop downloads and drop packages of offers gone."""
        wanted = {offer.package_key for offer in offers.values()}
        self._offers = offers
        stale = [
            task
            for key, task in self._downloads.items()
            if key not in wanted and not task.done()
        ]
        for task in stale:
            _LOGGER.info("Offer changed or withdrawn; stopping its download")
            task.cancel()
        if stale:
            await asyncio.wait(stale)
        await self._prune()
        await self._persist()
        changes: dict[str, Any] = {"last_check": datetime.now(UTC)}
        if stale and not self._downloading():
            changes.update(phase=Phase.IDLE, progress=None)
        self._emit(**changes)

    def _downloading(self) -> bool:
        return any(not task.done() for task in self._downloads.values())

    def _start_download(self, offer: BridgeOffer) -> asyncio.Task[Package]:
        key = offer.package_key
        task = self._downloads.get(key)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(
                self._download_verified(offer),
                name=f"firmware_hub download {offer.version}",
            )
            task.add_done_callback(_consume)
            self._downloads[key] = task
        return task

    async def _download_verified(self, offer: BridgeOffer) -> Package:
        key = offer.package_key
        download_owner.set(key)  # this task's partial files belong to the offer
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
            package = offer.checked(await self.download(offer, progress))
        except Exception as err:
            raise await self._download_failed(offer, err) from err
        self._failures.pop(key, None)
        self._ready[key] = package
        await self._prune()  # forgotten again if the offer changed meanwhile
        await self._persist()
        self._emit(phase=Phase.IDLE, progress=None)
        return package

    async def _download_failed(
        self, offer: BridgeOffer, err: Exception
    ) -> InstallError:
        """Report and publish a failed download; return the error to raise."""
        if isinstance(err, _NETWORK_ERRORS):  # not mapped by the kind
            err = DownloadError(str(err) or type(err).__name__)
        elif isinstance(err, OSError):  # a kind's own file work
            err = StorageError(f"disk error: {err.strerror or err}")
        elif not isinstance(err, (PackageError, BackendError)):
            _LOGGER.error(
                "Unexpected error downloading %s", offer.version, exc_info=err
            )
        count = self._failures.get(offer.package_key, (0, 0.0))[0] + 1
        self._failures[offer.package_key] = (
            count,
            asyncio.get_running_loop().time() + self._retry.delay(count),
        )
        checksum = isinstance(err, IntegrityError)
        await self.on_download_failed(offer, err, checksum=checksum)
        self._emit(phase=Phase.FAILED, progress=None, error=str(err))
        self.resume()  # schedules the retry once the backoff ran out
        if checksum:
            return InstallError("checksum_mismatch", str(err))
        if isinstance(err, InsufficientSpaceError):
            return InstallError("insufficient_space", str(err))
        if isinstance(err, StorageError):
            return InstallError("package_storage_failed", str(err))
        return InstallError("download_failed", str(err), reason=str(err))

    def resume(self) -> None:
        """Download the latest offer's package unless done, running or backing off."""
        latest = self._latest()
        if (
            not self.auto_download
            or latest is None
            or self.handoff is not None
            or latest.package_key in self._ready
        ):
            return
        key = latest.package_key
        _count, retry_at = self._failures.get(key, (0, 0.0))
        loop = asyncio.get_running_loop()
        if retry_at > loop.time():
            if self._retry_timer is not None:
                self._retry_timer.cancel()
            self._retry_timer = loop.call_at(retry_at, self._retry_due, key)
            return
        self._start_download(latest)

    def _retry_due(self, key: str) -> None:
        """Try a failed offer again once its backoff ran out (if still wanted)."""
        self._retry_timer = None
        if key in self._failures:
            self._failures[key] = (self._failures[key][0], 0.0)
        self.resume()

    async def async_close(self) -> None:
        """Stop background downloads (they save their progress as they stop)."""
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
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
        """React to a download that failed (EnOS reports -2 / -3)."""


def _intact(package: Package) -> bool:
    try:
        return package.path.stat().st_size == package.size
    except OSError:
        return False


def _consume(task: asyncio.Task[Package]) -> None:
    """Retrieve a background download's exception (it was published as state)."""
    if not task.cancelled() and (err := task.exception()) is not None:
        _LOGGER.debug("Background download ended: %r", err)
