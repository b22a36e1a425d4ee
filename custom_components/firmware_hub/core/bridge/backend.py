"""The bridge's install: a verified package handed to the device, and its result.

The cloud offers firmware (`OfferBook`); an install hands the package to the real
device (the Home Assistant layer fires `firmware_hub_install_requested`), waits
for the device's result (`report_install_result`) or a hand-off timeout, and
tells the cloud how it went. Right before the hand-off the stored package is
checksummed again and compared with the current offer: a package that differs
is deleted and refused.

No Home Assistant imports.
"""

from __future__ import annotations

from abc import abstractmethod
import asyncio
import time
from typing import Final

from ..backend import InstallError, InstallRefusedError, Publish
from ..models import DeviceIdentity, FirmwareState, Phase
from ..packages import IntegrityError, Package, PackageError, hash_file
from ..packages.base import Expected, verify
from ..versions import sort_key
from .models import BridgeOffer, HandOff
from .offers import OfferBook

#: How often an install follows an offer corrected while it downloads.
_MAX_OFFER_CHANGES: Final = 3


class BridgeBackend(OfferBook):
    """Shared lifecycle of the bridge kinds; subclasses speak the cloud's protocol."""

    can_restart = False
    polls = False
    has_release_notes = False

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

    async def _package_for(self, version: str) -> tuple[BridgeOffer, Package]:
        """Return the current offer of `version` and its verified package.

        An offer corrected while its package downloads is followed: the stale
        download is cancelled and the corrected package fetched.
        """
        for _ in range(_MAX_OFFER_CHANGES):
            offer = self._choose(version)
            if (package := self._ready.get(offer.package_key)) is not None:
                return offer, package
            task = self._start_download(offer)
            await asyncio.wait([task])
            if not task.cancelled():
                package = task.result()
                if (current := self._offers.get(version)) is not None and (
                    current.package_key == offer.package_key
                ):
                    return offer, package
        self._emit(phase=Phase.IDLE, progress=None)
        raise InstallRefusedError(
            "version_not_offered",
            f"the offer of {version} kept changing during the download",
            version=version,
        )

    async def _recheck(self, offer: BridgeOffer, package: Package) -> None:
        """Checksum the stored package again; refuse it unless it is the offer's."""
        try:
            hashes = await asyncio.to_thread(hash_file, package.path)
            md5, sha256 = verify(
                hashes,
                Expected(
                    size=offer.size if offer.size is not None else package.size,
                    md5=offer.md5 or package.md5,
                    sha256=offer.sha256 or package.sha256,
                ),
            )
            if (md5, sha256) != (package.md5, package.sha256):
                raise IntegrityError("the stored package changed on disk")
        except PackageError as err:
            self._ready.pop(offer.package_key, None)
            await self.store.prune(lambda: [p.path for p in self._ready.values()])
            await self._persist()
            raise await self._download_failed(offer, err) from err

    async def async_install(
        self, version: str | None, publish: Publish
    ) -> FirmwareState:
        """Download and verify (unless done), then hand the package to the device."""
        offer, package = await self._package_for(self._choose(version).version)
        await self._recheck(offer, package)
        self.handoff = HandOff(
            version=offer.version,
            path=str(package.path),
            size=package.size,
            md5=package.md5,
            sha256=package.sha256,
            since=time.time(),
            source=dict(offer.source),
            key=offer.package_key,
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
                if sort_key(v) > sort_key(self._installed)
            }
            await self._prune()
            await self._persist()
            state = self._emit(phase=Phase.IDLE, progress=None, error=None)
            await self.on_result(handoff, success=True, message=message)
            return state
        await self._prune()
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
        await self._prune()
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

    async def async_probe(self) -> DeviceIdentity:
        """Check the cloud accepts the device (config flow), return its identity."""
        await self.async_check_cloud()
        return self.identity

    @abstractmethod
    async def async_check_cloud(self) -> None:
        """Log in / register once with the cloud, then disconnect."""

    # ------------------------------------------------------------ kind hooks

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
