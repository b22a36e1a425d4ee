"""A Hikvision firmware file install, and following one after a restart.

No Home Assistant imports. Works on every camera, with or without online upgrade:

    check the file (not empty) → deviceInfo (the version and serial number before)
    → refuse if /ISAPI/System/upgradeStatus says the camera flashes already
    → journal the run → PUT /ISAPI/System/updateFirmware (the file streamed,
    progress = bytes sent) → follow upgradeStatus while the camera flashes →
    reboot when the camera says so (statusCode 7) or stays up once flashed →
    wait until it answers again → verify: same serial number, another version.

A refused file (a package for another model, any ResponseStatus error) ends the
install there: a failed state and a translated error, nothing else sent. A
connection that drops once the whole file went out is the reboot starting.
`follow` takes the journal's run after a reload or restart and only reads.
"""

from __future__ import annotations

import asyncio
import time
from typing import BinaryIO, Final

from ...core.backend import (
    BackendError,
    DeviceConnectionError,
    DeviceResponseError,
    InstallError,
    InstallRefusedError,
)
from ...core.files import checked_firmware_file
from ...core.models import FirmwareState, InstallRun, Phase
from ...core.versions import same_version
from .errors import call, file_refused
from .protocol import (
    DeviceInfo,
    IsapiClient,
    IsapiHttpError,
    IsapiNotSupportedError,
    IsapiResponseError,
    UpgradeProgress,
    UploadResult,
)
from .run import CameraRun
from .status import span
from .verify import Expected, verify

# Progress of a file install: upload 0-60 %, flash 60-90 %, reboot 90-95 %,
# verification 99 %.
UPLOAD_SPAN: Final = (0, 60)
FILE_FLASH_SPAN: Final = (60, 90)
REBOOT_START: Final = 90
VERIFY: Final = 99


class FileInstall(CameraRun):
    """One firmware file install (or follow-up) on one camera."""

    # ---------------------------------------------------------------- install

    async def install(self, file: BinaryIO, name: str) -> FirmwareState:
        """Upload `file`, follow the flash and the reboot, verify the camera."""
        flow = self._flow
        file_name, _size = await checked_firmware_file(file, name)
        before = flow.state
        flow.publish(phase=Phase.INSTALLING, progress=0, error=None)
        try:
            info = await call(self._client.get_device_info())
            await self._refuse_if_flashing()
        except BackendError as err:
            self._refuse(err, before)
        run = InstallRun(
            target_version=None,
            started_at=time.time(),
            before_version=info.full_version,
            serial_number=info.serial_number,
            file_name=file_name,
        )
        await self._begin(run)
        try:
            result = await self._upload(file, file_name)
            went_down = result is UploadResult.DROPPED
            if not went_down:
                went_down = await self._follow_flash()
            flow.publish(phase=Phase.REBOOTING, progress=REBOOT_START)
            if not went_down:
                went_down = await self._reboot(
                    now=result is UploadResult.REBOOT_REQUIRED
                )
            info = await flow.wait_and_verify(_expected(run), went_down=went_down)
        except BackendError as err:
            await self._fail(err)
        return await self._succeed(info)

    async def _refuse_if_flashing(self) -> None:
        """Refuse while the camera flashes a file or runs an online upgrade."""
        if self._online_upgrade:
            try:
                status = await self._flow.read_status()
            except DeviceResponseError as err:
                if not isinstance(err.__cause__, IsapiNotSupportedError):
                    raise
            else:
                if status.busy:
                    raise InstallRefusedError(
                        "device_busy",
                        "the camera runs an online upgrade",
                        status=f"{status.download.status}/{status.upgrade.status}",
                    )
        if await self.flashing():
            raise InstallRefusedError(
                "device_busy",
                "the camera is flashing firmware already",
                status="upgrading",
            )

    async def flashing(self) -> bool:
        """Return True while upgradeStatus says the camera flashes (read only)."""
        return await file_flashing(self._client)

    async def _upload_progress(self) -> UpgradeProgress | None:
        return await upload_progress(self._client)

    async def _upload(self, file: BinaryIO, file_name: str) -> UploadResult:
        def progress(sent: int, total: int) -> None:
            self._flow.publish(progress=span(100 * sent // max(total, 1), UPLOAD_SPAN))

        try:
            result = await call(self._client.upload_firmware(file, progress=progress))
        except DeviceResponseError as err:
            cause = err.__cause__
            if isinstance(cause, (IsapiResponseError, IsapiHttpError)):
                raise file_refused(cause, file_name) from err
            raise
        except OSError as err:
            raise InstallError("file_unreadable", str(err), error=str(err)) from err
        self._flow.publish(progress=UPLOAD_SPAN[1])
        return result

    async def _follow_flash(self) -> bool:
        """Follow upgradeStatus until the camera stops flashing; True if it went down."""
        flow = self._flow
        deadline = time.monotonic() + flow.timing.flash_timeout
        while True:
            try:
                progress = await self._upload_progress()
            except DeviceConnectionError:
                return True  # the camera went away: it reboots
            if progress is None or not progress.upgrading:
                return False
            flow.publish(progress=span(progress.percent, FILE_FLASH_SPAN))
            if time.monotonic() >= deadline:
                raise InstallError(
                    "flash_timeout",
                    f"still flashing after {flow.timing.flash_timeout:.0f} s",
                )
            await asyncio.sleep(flow.timing.poll_interval)

    async def _reboot(self, *, now: bool) -> bool:
        """Reboot a camera that stays up after flashing; True if it went down.

        Never while it says it flashes: a flash that starts late is followed first.
        """
        flow = self._flow
        grace = flow.timing.self_reboot_grace
        deadline = time.monotonic() + (0.0 if now else grace)
        while time.monotonic() < deadline:
            try:
                progress = await self._upload_progress()
                if progress is None:
                    await call(self._client.get_device_info())
            except DeviceConnectionError:
                return True  # it reboots by itself
            if progress is not None and progress.upgrading:
                if await self._follow_flash():
                    return True
                deadline = time.monotonic() + grace
            await asyncio.sleep(flow.timing.poll_interval)
        try:
            await call(self._client.reboot())
        except DeviceConnectionError:
            return True  # cut short: the camera is going down
        return False

    # ---------------------------------------------------------------- follow

    async def follow(self, run: InstallRun) -> FirmwareState:
        """Follow the journal's file install to its end, sending nothing that changes."""
        flow = self._flow
        flow.stage(phase=Phase.REBOOTING, progress=REBOOT_START, error=None)
        await self._begin(run)
        try:
            return await self._succeed(await self._follow(run))
        except BackendError as err:
            await self._fail(err)

    async def _follow(self, run: InstallRun) -> DeviceInfo:
        flow = self._flow
        expected = _expected(run)
        try:
            info = await call(self._client.get_device_info())
        except DeviceConnectionError:
            info = await flow.wait_reachable()
            flow.publish(phase=Phase.VERIFYING, progress=VERIFY)
            return verify(info, expected)
        if run.before_version is None or not same_version(
            info.full_version, run.before_version
        ):
            flow.publish(phase=Phase.VERIFYING, progress=VERIFY)
            return verify(info, expected)
        progress = await self._upload_progress()
        if progress is not None and progress.upgrading:
            flow.publish(
                phase=Phase.INSTALLING,
                progress=span(progress.percent, FILE_FLASH_SPAN),
            )
            went_down = await self._follow_flash()
            flow.publish(phase=Phase.REBOOTING, progress=REBOOT_START)
            return await flow.wait_and_verify(expected, went_down=went_down)
        raise InstallError(
            "file_install_interrupted",
            f"the install of {run.file_name} did not complete;"
            f" the camera runs {info.full_version}",
            file=run.file_name or "-",
            installed=info.full_version,
        )


async def upload_progress(client: IsapiClient) -> UpgradeProgress | None:
    """Read upgradeStatus (None: the camera does not report it)."""
    try:
        return await call(client.get_upload_progress())
    except DeviceResponseError:
        return None


async def file_flashing(client: IsapiClient) -> bool:
    """Return True while upgradeStatus says the camera flashes a file (read only)."""
    progress = await upload_progress(client)
    return progress is not None and progress.upgrading


def _expected(run: InstallRun) -> Expected:
    return Expected(None, run.before_version, run.serial_number)
