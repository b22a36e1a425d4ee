"""The Hikvision install state machine over ISAPI (no Home Assistant imports).

An install never flashes before the camera reports the package download `finish`ed,
never sends a request that changes the camera unless its current status is known
to be idle, and only ends once the camera is back after its reboot and reports the
new firmware version under the same serial number:

    downloadPackage → poll download status until finish → upgradeWithoutDownload
    → poll upgrade status until successful → reboot (when not automatic)
    → wait for the camera to come back → verify deviceInfo's version and serial

`InstallFlow` runs those steps for an install started here and follows them, read
only, for an install found running at setup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import logging
import time
from typing import Unpack

from ...core.backend import (
    BackendError,
    DeviceConnectionError,
    InstallError,
    InstallRefusedError,
    Publish,
)
from ...core.models import FirmwareState, KindFacts, Phase, StateChanges
from ...core.versions import same_version
from .cancel import CancelSwitch, InstallCancelledError, too_late
from .errors import call, download_failure, upgrade_failure
from .protocol import DeviceInfo, IsapiClient, TaskStatus
from .status import (
    DOWNLOAD_FAILURES,
    DOWNLOAD_FINISHED,
    DOWNLOAD_RUNNING,
    DOWNLOAD_SPAN,
    FLASH_SPAN,
    REBOOT_DOWN,
    UPGRADE_IDLE,
    UPGRADE_RUNNING,
    UPGRADE_SUCCESSFUL,
    VERIFY,
    DeviceStatus,
    HikvisionTiming,
    read_status,
    span,
)
from .verify import Expected, verify

_LOGGER = logging.getLogger(__name__)


class InstallFlow:
    """The steps of one install on one camera, publishing every change of state."""

    def __init__(
        self,
        client: IsapiClient,
        timing: HikvisionTiming,
        *,
        get_state: Callable[[], FirmwareState],
        set_state: Callable[[FirmwareState], FirmwareState],
        publish: Publish,
        facts: Callable[[TaskStatus | None], KindFacts | None] | None = None,
        cancel: CancelSwitch | None = None,
    ) -> None:
        """Initialize over the backend's client and state.

        `facts` returns the kind's facts for a download running now (its speed
        and remaining time; None: no download runs); `cancel` is the backend's
        switch through which the user stops a download (None: a switch of its
        own, which no one can reach).
        """
        self._client = client
        self._cancel = cancel or CancelSwitch()
        self._facts_for = facts
        self._timing = timing
        self._get_state = get_state
        self._set_state = set_state
        self._publish = publish

    def _facts(self, download: TaskStatus | None) -> KindFacts | None:
        if self._facts_for is None:
            return self._get_state().facts
        return self._facts_for(download)

    @property
    def timing(self) -> HikvisionTiming:
        """Return how often and how long the install polls."""
        return self._timing

    @property
    def state(self) -> FirmwareState:
        """Return the backend's current state."""
        return self._get_state()

    def publish(self, **changes: Unpack[StateChanges]) -> None:
        """Apply `changes` to the backend's state and publish it if it changed."""
        state = self._get_state()
        new = state.evolve(**changes)
        if new != state:
            self._publish(self._set_state(new))

    def stage(self, **changes: Unpack[StateChanges]) -> None:
        """Apply `changes` without publishing (the next publish shows them)."""
        self._set_state(self._get_state().evolve(**changes))

    def ended(self) -> None:
        """Mark the install over (verified, failed or cancelled): nothing to cancel."""
        self._cancel.reset()

    def restore(self, state: FirmwareState) -> None:
        """Publish `state` again (an install refused before anything was sent)."""
        if state != self._get_state():
            self._publish(self._set_state(state))

    async def read_status(self) -> DeviceStatus:
        """Read the download and the upgrade status (read only)."""
        return await read_status(self._client)

    async def _poll_until[T](
        self,
        read: Callable[[], Awaitable[T | None]],
        limit: float,
        timeout_key: str,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> T:
        """Call `read` every poll interval until it returns something."""
        deadline = time.monotonic() + limit
        while True:
            result = await read()
            if result is not None:
                return result
            if time.monotonic() >= deadline:
                raise InstallError(timeout_key, f"not done within {limit:.0f} s")
            await sleep(self._timing.poll_interval)

    # ---------------------------------------------------------------- download

    def arm_cancel(self) -> None:
        """Let the user cancel this install until its package is complete."""
        self._cancel.arm()

    def cancel_before_flash(self) -> None:
        """Before a flash of a package already complete: honour a pending cancel.

        Nothing is flashed then (the camera keeps the package); otherwise later
        requests are too late.
        """
        switch = self._cancel
        if switch.wanted:
            switch.answer(None)
            switch.disarm(finished=False)
            raise InstallCancelledError
        switch.disarm(finished=True)

    async def download(self, before: TaskStatus) -> None:
        """Start the download (the camera was seen idle) and follow it to `finish`."""
        switch = self._cancel
        switch.arm()
        if switch.wanted:
            # Cancelled before the camera was asked for anything.
            switch.answer(None)
            switch.disarm(finished=False)
            raise InstallCancelledError
        await call(self._client.start_package_download())
        await self.follow_download(started=False, before=before.status)

    async def follow_download(self, *, started: bool, before: str | None) -> None:
        """Follow a download until `finish`.

        Until the camera reports `downloading`, a status it already had before the
        request (`before`) means the download has not started yet; if it does not
        start within `download_start_timeout`, the install fails.
        """
        errors = 0
        start_deadline = time.monotonic() + self._timing.download_start_timeout
        switch = self._cancel

        async def read() -> TaskStatus | None:
            nonlocal errors, started
            if switch.wanted and started:
                # Once the camera downloads: before, a cancel would find nothing.
                return await self._stop_download(switch)
            try:
                status = await call(self._client.get_download_status())
            except DeviceConnectionError:
                errors += 1
                if errors > self._timing.max_download_errors:
                    raise
                return None
            errors = 0
            if status.status == DOWNLOAD_FINISHED:
                self.publish(progress=DOWNLOAD_SPAN[1], facts=self._facts(None))
                return status
            if status.status in DOWNLOAD_RUNNING:
                started = True
                self.publish(
                    progress=span(status.percent, DOWNLOAD_SPAN),
                    facts=self._facts(status),
                )
                return None
            if started or (
                status.status in DOWNLOAD_FAILURES and status.status != before
            ):
                self.stage(facts=self._facts(None))
                raise download_failure(status.status)
            if time.monotonic() >= start_deadline:
                raise InstallError(
                    "download_not_started",
                    f"the camera did not start the download ({status.status})",
                    reason=status.status,
                )
            return None

        async def pause(seconds: float) -> None:
            # Woken by a cancel once the download runs; until then it waits.
            await (switch.wait(seconds) if started else asyncio.sleep(seconds))

        switch.arm()  # again, for a download followed at setup: keeps a request
        finished = False
        try:
            await self._poll_until(
                read, self._timing.download_timeout, "download_timeout", sleep=pause
            )
            finished = True
        finally:
            switch.disarm(finished=finished)

    async def _stop_download(self, switch: CancelSwitch) -> TaskStatus | None:
        """Cancel the download the user wants stopped; raise once it stopped.

        Returns None (the download goes on, the requester is told why) when the
        camera does not cancel, or the `finish`ed status when it completed first.
        """

        async def stopped() -> TaskStatus | None:
            status = await call(self._client.get_download_status())
            return None if status.status in DOWNLOAD_RUNNING else status

        try:
            await call(self._client.cancel_package_download())
            status = await self._poll_until(
                stopped, self._timing.cancel_timeout, "cancel_failed"
            )
        except BackendError as err:
            _LOGGER.warning("The camera did not cancel its download: %s", err)
            switch.answer(
                InstallRefusedError(
                    "cancel_failed", f"the camera did not cancel the download: {err}"
                )
            )
            return None
        if status.status == DOWNLOAD_FINISHED:
            # Complete before the cancel arrived: the install goes on to flash it.
            switch.answer(too_late())
            self.publish(progress=DOWNLOAD_SPAN[1], facts=self._facts(None))
            return status
        self.stage(facts=self._facts(None))
        switch.answer(None)
        raise InstallCancelledError

    # ---------------------------------------------------------------- flash

    async def flash(self) -> bool:
        """Flash the finished package; return True if the camera rebooted itself."""
        upgrade = await call(self._client.get_upgrade_status())
        if upgrade.status in UPGRADE_RUNNING or upgrade.status == UPGRADE_SUCCESSFUL:
            raise InstallError(
                "device_busy",
                f"the camera is already upgrading ({upgrade.status})",
                status=upgrade.status,
            )
        await call(self._client.start_upgrade())
        return await self.follow_flash()

    async def follow_flash(self) -> bool:
        """Follow a flash; return True if the camera rebooted by itself."""
        lost = False

        async def read() -> str | None:
            nonlocal lost
            try:
                status = await call(self._client.get_upgrade_status())
            except DeviceConnectionError as err:
                if not lost:
                    _LOGGER.info("Camera unreachable while flashing (%s); waiting", err)
                lost = True
                return None
            if status.status in UPGRADE_RUNNING:
                self.publish(progress=span(status.percent, FLASH_SPAN))
                return None
            if status.status == UPGRADE_SUCCESSFUL:
                return "flashed"
            if status.status == UPGRADE_IDLE and lost:
                # Back from a reboot it did by itself (rebootAfterUpgrade auto).
                return "rebooted"
            if status.status == UPGRADE_IDLE:
                return None
            raise upgrade_failure(status.status)

        result = await self._poll_until(
            read, self._timing.flash_timeout, "flash_timeout"
        )
        self.publish(progress=FLASH_SPAN[1])
        return result == "rebooted"

    # ---------------------------------------------------------------- reboot

    async def reboot(self) -> None:
        """Reboot after a flash the camera reports `successful` (nothing else runs)."""
        status = await self.read_status()
        if status.busy or status.upgrade.status != UPGRADE_SUCCESSFUL:
            raise InstallError(
                "device_busy",
                f"the camera is not ready to reboot ({status.upgrade.status},"
                f" download {status.download.status})",
                status=status.upgrade.status,
            )
        try:
            await call(self._client.reboot())
        except DeviceConnectionError as err:
            _LOGGER.debug(
                "Reboot request cut short (%s): the camera is going down", err
            )

    async def wait_reachable(self) -> DeviceInfo:
        """Wait until the camera answers again (it is rebooting)."""

        async def read() -> DeviceInfo | None:
            try:
                return await call(self._client.get_device_info())
            except DeviceConnectionError:
                return None

        return await self._poll_until(
            read, self._timing.reboot_timeout, "reboot_timeout"
        )

    async def wait_and_verify(
        self, expected: Expected, *, went_down: bool
    ) -> DeviceInfo:
        """Wait for the camera to come back from its reboot, then verify it."""

        async def read() -> DeviceInfo | None:
            nonlocal went_down
            try:
                info = await call(self._client.get_device_info())
            except DeviceConnectionError:
                if not went_down:
                    went_down = True
                    self.publish(progress=REBOOT_DOWN)
                return None
            if went_down:
                self.publish(phase=Phase.VERIFYING, progress=VERIFY)
                return verify(info, expected)
            if expected.target is not None and same_version(
                info.full_version, expected.target
            ):
                return verify(info, expected)
            return None  # still up: the reboot has not started yet

        return await self._poll_until(
            read, self._timing.reboot_timeout, "reboot_timeout"
        )
