"""A Hikvision install as a transaction: journalled, idle-checked, verified.

`Transaction.install` runs an install started here; `Transaction.follow` follows,
read only, an install found at setup (running on the camera, or recorded in the
journal before a reload or restart). Both end in the same verified final state
(`install` None), or publish a failed one and raise `InstallError`.
No Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import time
from typing import TypedDict

from ...core.backend import (
    BackendError,
    DeviceResponseError,
    InstallError,
    InstallRefusedError,
    JournalWrite,
)
from ...core.models import FirmwareState, InstallRun, Phase
from ...core.versions import same_version
from .errors import call, download_failure, upgrade_failure
from .install import InstallFlow
from .protocol import DeviceInfo, IsapiClient
from .run import CameraRun
from .status import (
    DOWNLOAD_FAILURES,
    DOWNLOAD_FINISHED,
    DOWNLOAD_SPAN,
    FLASH_SPAN,
    REBOOT_START,
    UPGRADE_IDLE,
    UPGRADE_SUCCESSFUL,
    VERIFY,
    DeviceStatus,
    span,
)
from .verify import Expected, verify


@dataclass(slots=True)
class HeldPackage:
    """The version of the finished package the camera holds, when known.

    ISAPI's download status does not name the package's version: only a download
    this integration saw run is known to be for the version offered then. A
    finished package of unknown version is never flashed.
    """

    version: str | None = None


class Transaction(CameraRun):
    """One install on one camera, from the journal's record to the final state."""

    def __init__(
        self,
        flow: InstallFlow,
        client: IsapiClient,
        *,
        begin: Callable[[InstallRun], Awaitable[None]],
        journal: JournalWrite,
        package: HeldPackage,
        manual_reboot: bool,
        online_upgrade: bool,
    ) -> None:
        """Initialize; `begin` journals and shows the run (the backend's)."""
        super().__init__(
            flow, client, begin=begin, journal=journal, online_upgrade=online_upgrade
        )
        self._package = package
        self._manual_reboot = manual_reboot

    # ---------------------------------------------------------------- install

    async def install(self, target: str, device: DeviceInfo | None) -> FirmwareState:
        """Check the camera is idle, then download, flash, reboot and verify."""
        flow = self._flow
        before = flow.state
        # Shown at once; taken back if the camera is not idle (nothing sent then).
        flow.publish(phase=Phase.DOWNLOADING, progress=0, error=None)
        flow.arm_cancel()
        try:
            status = await flow.read_status()
            package_ready = self._check_idle(status, target)
        except BackendError as err:
            self._refuse(err, before)
        run = InstallRun(
            target_version=target,
            started_at=time.time(),
            before_version=device.full_version if device else None,
            serial_number=device.serial_number if device else None,
        )
        await self._begin(run)
        try:
            if package_ready:
                flow.cancel_before_flash()
            else:
                await flow.download(status.download)
                self._package.version = target
            flow.publish(phase=Phase.INSTALLING, progress=FLASH_SPAN[0])
            rebooted = await flow.flash()
            flow.publish(phase=Phase.REBOOTING, progress=REBOOT_START)
            if not rebooted and self._manual_reboot:
                await flow.reboot()
            info = await flow.wait_and_verify(_expected(run), went_down=rebooted)
        except BackendError as err:
            await self._fail(err)
        return await self._succeed(info)

    def _check_idle(self, status: DeviceStatus, target: str) -> bool:
        """Refuse unless the camera is idle; return True if it holds `target`'s package."""
        if status.busy:
            raise InstallRefusedError(
                "device_busy",
                "the camera is already downloading or flashing firmware",
                status=f"{status.download.status}/{status.upgrade.status}",
            )
        if status.upgrade.status == UPGRADE_SUCCESSFUL:
            raise InstallRefusedError(
                "restart_pending", "the camera flashed firmware and waits for a restart"
            )
        if status.download.status != DOWNLOAD_FINISHED:
            return False
        held = self._package.version
        if held is not None and same_version(held, target):
            return True
        raise InstallRefusedError(
            "stale_package",
            "the camera holds a downloaded package of unknown version",
            version=target,
        )

    async def _succeed(self, info: DeviceInfo) -> FirmwareState:
        self._package.version = None  # flashed: no package held any more
        return await super()._succeed(info)

    # ---------------------------------------------------------------- follow

    async def follow_reboot(self, run: InstallRun) -> FirmwareState:
        """Follow the journal's install while the camera does not answer (rebooting)."""
        self._flow.stage(phase=Phase.REBOOTING, progress=REBOOT_START, error=None)
        await self._begin(run)
        return await self._guard(self._follow_reboot(run))

    async def follow(
        self, run: InstallRun | None, info: DeviceInfo
    ) -> FirmwareState | None:
        """Follow an install to its end without sending anything that changes the camera.

        `run` is the journal's marker (None: none); `info` what the camera says now.
        """
        flow = self._flow
        if run is None:
            if not self._online_upgrade:
                return None
            status = await flow.read_status()
            if not status.busy:
                return None
            # Started elsewhere (the camera's web page, its auto-upgrade): the
            # version it installs is unknown, it must differ from the one now.
            run = InstallRun(
                target_version=None,
                started_at=time.time(),
                before_version=info.full_version,
                serial_number=info.serial_number,
            )
            flow.stage(**_running_phase(status), error=None)
            await self._begin(run)
            return await self._guard(self._follow_running(run, info, status))
        # What the camera did with the journal's install is verified first.
        flow.stage(phase=Phase.VERIFYING, progress=VERIFY, error=None)
        await self._begin(run)
        return await self._guard(self._follow_marker(run, info))

    async def _guard(self, following: Awaitable[FirmwareState]) -> FirmwareState:
        try:
            return await following
        except BackendError as err:
            await self._fail(err)

    async def _follow_reboot(self, run: InstallRun) -> FirmwareState:
        info = await self._flow.wait_reachable()
        return await self._follow_marker(run, info, went_down=True)

    async def _follow_marker(
        self, run: InstallRun, info: DeviceInfo, *, went_down: bool = False
    ) -> FirmwareState:
        """Follow the journal's install from what the camera reports now."""
        expected = _expected(run)
        if run.target_version is not None and same_version(
            info.full_version, run.target_version
        ):
            return await self._succeed(verify(info, expected))
        if not self._online_upgrade:
            if went_down:
                return await self._succeed(verify(info, expected))
            raise _interrupted(run, info)
        status = await self._flow.read_status()
        if status.busy:
            return await self._follow_running(run, info, status)
        if went_down:
            return await self._succeed(verify(info, expected))
        if status.upgrade.status == UPGRADE_SUCCESSFUL:
            raise _reboot_required()
        if status.upgrade.status != UPGRADE_IDLE:
            raise upgrade_failure(status.upgrade.status)
        if status.download.status in DOWNLOAD_FAILURES:
            raise download_failure(status.download.status)
        if status.download.status == DOWNLOAD_FINISHED:
            # Our download finished (an install never starts over a finished one).
            self._package.version = run.target_version
        raise _interrupted(run, info)

    async def _follow_running(
        self, run: InstallRun, info: DeviceInfo, status: DeviceStatus
    ) -> FirmwareState:
        """Follow a download or flash the camera runs now to its end."""
        flow = self._flow
        if status.downloading:
            flow.publish(**_running_phase(status))
            await flow.follow_download(started=True, before=None)
            status = await flow.read_status()
            if not status.upgrading:
                # Downloaded, not flashed: the package is for what was offered.
                self._package.version = (
                    run.target_version or await self._offered_version()
                )
                if run.target_version is None:
                    return await self._end_quietly()
                raise _interrupted(run, info)
        flow.publish(**_running_phase(status))
        if not await flow.follow_flash():
            raise _reboot_required()
        flow.publish(phase=Phase.REBOOTING, progress=REBOOT_START)
        return await self._succeed(
            await flow.wait_and_verify(_expected(run), went_down=True)
        )

    async def _offered_version(self) -> str | None:
        try:
            return (await call(self._client.get_upgrade_version())).version
        except DeviceResponseError:
            return None

    async def _end_quietly(self) -> FirmwareState:
        """End a download started elsewhere: nothing of ours to report."""
        self._flow.publish(phase=Phase.IDLE, progress=None, error=None, install=None)
        await self._journal(None)
        return self._flow.state


class _RunningPhase(TypedDict):
    phase: Phase
    progress: int


def _running_phase(status: DeviceStatus) -> _RunningPhase:
    """Return the phase and progress of what the camera runs now."""
    if status.downloading:
        return {
            "phase": Phase.DOWNLOADING,
            "progress": span(status.download.percent, DOWNLOAD_SPAN),
        }
    return {
        "phase": Phase.INSTALLING,
        "progress": span(status.upgrade.percent, FLASH_SPAN),
    }


def _expected(run: InstallRun) -> Expected:
    return Expected(run.target_version, run.before_version, run.serial_number)


def _interrupted(run: InstallRun, info: DeviceInfo) -> InstallError:
    return InstallError(
        "install_interrupted",
        f"the install of {run.target_version} did not complete;"
        f" the camera runs {info.full_version}",
        version=run.target_version or "",
        installed=info.full_version,
    )


def _reboot_required() -> InstallError:
    return InstallError(
        "reboot_required", "the camera flashed the firmware and waits for a restart"
    )
