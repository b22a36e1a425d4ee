"""The ONVIF firmware file install, and following one after a reload or restart.

No Home Assistant imports. An install is a transaction recorded in the install
journal before anything can start a flash:

    check the file (not empty) → GetDeviceInformation (the version and serial number
    before) → journal the run → StartFirmwareUpgrade → the UploadUri must be the
    camera's own host (http/https), else refused before any upload → journal the
    deadline (ExpectedDownTime + margin) → wait UploadDelay → POST the file to the
    UploadUri → journal the deadline again (counted from the end of the upload) →
    poll until the camera answers → verify: same serial number, another firmware
    version.

`async_follow` takes the journal's run after a reload or restart and does the last
two steps only: it waits within the run's deadline for the camera to answer and
verifies it as above, sending nothing but GetDeviceInformation.
"""

from __future__ import annotations

from abc import abstractmethod
import asyncio
from dataclasses import dataclass, replace
import time
from typing import TYPE_CHECKING, BinaryIO, Final
from urllib.parse import urlsplit

from ...core.backend import (
    BackendError,
    DeviceConnectionError,
    FirmwareBackend,
    InstallError,
    InstallRefusedError,
    Publish,
)
from ...core.files import checked_firmware_file
from ...core.models import FirmwareState, InstallRun, Phase
from .errors import call, install_error
from .protocol import (
    DeviceInformation,
    OnvifClient,
    OnvifConnectionError,
    OnvifUploadError,
    upload_firmware,
)

if TYPE_CHECKING:
    import aiohttp

# Install progress: upload 0-70 %, reboot 75-95 %, verification 99 %.
_UPLOAD_SPAN: Final = 70
_REBOOT_START: Final = 75
_REBOOT_END: Final = 95
_VERIFY: Final = 99
_UPLOAD_SCHEMES: Final = frozenset({"http", "https"})


@dataclass(frozen=True, slots=True)
class OnvifTiming:
    """How the firmware install waits (seconds)."""

    poll_interval: float = 2.0
    #: How long past the camera's ExpectedDownTime to wait for it to come back.
    reboot_timeout: float = 10 * 60


#: The timing backends use unless given one (tests shorten it).
DEFAULT_TIMING = OnvifTiming()


class OnvifFileInstall(FirmwareBackend):
    """The firmware file install of an ONVIF camera (the base of `OnvifBackend`)."""

    _client: OnvifClient
    _session: aiohttp.ClientSession
    _timing: OnvifTiming
    #: Whether the next refresh must read the settings (new firmware, an outage).
    _settings_stale: bool

    @abstractmethod
    async def _read_info(self) -> DeviceInformation:
        """GetDeviceInformation (backend errors)."""

    async def async_install_file(
        self, file: BinaryIO, name: str, publish: Publish
    ) -> FirmwareState:
        """Install an open firmware file `file` named `name`, publishing every step.

        The file is streamed from where it stands (in the executor); the caller
        opened it and closes it. Returns the final, verified state; raises
        `InstallError` after publishing a failed state (`InstallRefusedError`: no
        upload started, the journal cleared).
        """
        file_name, _size = await checked_firmware_file(file, name)
        self._publish_changes(publish, phase=Phase.INSTALLING, progress=0, error=None)
        try:
            return await self._run_install(file, file_name, publish)
        except InstallRefusedError:
            # The journal may hold the run already: nothing to follow after all.
            await self.journal(None)
            self._publish_changes(
                publish, phase=Phase.IDLE, progress=None, install=None
            )
            raise
        except BackendError as err:
            error = self._failed(err, publish)
            if error is err:
                raise
            raise error from err

    async def _run_install(
        self, file: BinaryIO, file_name: str, publish: Publish
    ) -> FirmwareState:
        before = await self._read_info()
        run = InstallRun(
            target_version=None,
            started_at=time.time(),
            before_version=before.firmware_version,
            serial_number=before.serial_number,
            file_name=file_name,
        )
        await self._begin_install(run, publish)
        ticket = await call(self._client.start_firmware_upgrade())
        self._check_upload_uri(ticket.upload_uri)
        down = ticket.expected_down_time or 0.0
        run = await self._set_deadline(run, ticket.upload_delay + down, publish)
        if ticket.upload_delay > 0:
            await asyncio.sleep(ticket.upload_delay)
        await self._upload(ticket.upload_uri, file, publish)
        run = await self._set_deadline(run, down, publish)
        self._publish_changes(publish, phase=Phase.REBOOTING, progress=_REBOOT_START)
        return await self._await_new_firmware(run, down, publish)

    def _check_upload_uri(self, uri: str) -> None:
        """Refuse an UploadUri that is not http(s) on the camera's own host."""
        url = urlsplit(uri)
        host = self._client.host.strip("[]").lower()
        if url.scheme.lower() not in _UPLOAD_SCHEMES or url.hostname != host:
            raise InstallRefusedError(
                "upload_uri_foreign",
                f"the camera asked for the upload at {uri}, not at {host}",
                upload_host=url.hostname or "-",
                host=host,
            )

    async def _set_deadline(
        self, run: InstallRun, seconds: float, publish: Publish
    ) -> InstallRun:
        """Journal (then show) when the camera must answer again at the latest."""
        run = replace(run, deadline=time.time() + seconds + self._timing.reboot_timeout)
        await self.journal(run)
        self._publish_changes(publish, install=run)
        return run

    async def _upload(self, uri: str, file: BinaryIO, publish: Publish) -> None:
        def progress(sent: int, total: int) -> None:
            self._publish_changes(
                publish, progress=_UPLOAD_SPAN * sent // max(total, 1)
            )

        try:
            await upload_firmware(self._session, uri, file, progress=progress)
        except OnvifUploadError as err:
            raise InstallError(
                "upload_refused",
                str(err),
                status=str(err.status),
                reason=err.body or "-",
            ) from err
        except OnvifConnectionError as err:
            raise InstallError("device_lost", str(err), error=str(err)) from err
        except OSError as err:
            raise InstallError("file_unreadable", str(err), error=str(err)) from err

    async def async_follow(
        self, run: InstallRun | None, publish: Publish
    ) -> FirmwareState | None:
        """Follow the journal's install to its end: wait for the camera, verify.

        Sends nothing but GetDeviceInformation. Without a marker there is nothing
        to follow (ONVIF cameras do not flash by themselves): None.
        """
        if run is None:
            return None
        self._publish_changes(
            publish,
            phase=Phase.REBOOTING,
            progress=_REBOOT_START,
            error=None,
            install=run,
        )
        try:
            return await self._await_new_firmware(run, 0.0, publish)
        except BackendError as err:
            error = self._failed(err, publish)
            if error is err:
                raise
            raise error from err

    async def _await_new_firmware(
        self, run: InstallRun, expected_down: float, publish: Publish
    ) -> FirmwareState:
        """Poll until the camera answers with another firmware version; verify it.

        The camera may keep answering with the old version while it flashes: only
        an answer after it was unreachable, or the run's deadline, ends the wait
        with the old version.
        """
        deadline = run.deadline or run.started_at + self._timing.reboot_timeout
        start = time.monotonic()
        end = start + max(0.0, deadline - time.time())
        went_down = False
        while True:
            try:
                info: DeviceInformation | None = await self._read_info()
            except DeviceConnectionError:
                went_down = True
                info = None
            past = time.monotonic() >= end
            if info is not None and (
                info.firmware_version != run.before_version or went_down or past
            ):
                return self._verified(run, info, publish)
            if info is None and past:
                raise InstallError(
                    "reboot_timeout",
                    f"the camera did not answer within {end - start:.0f} s",
                )
            elapsed = time.monotonic() - start
            share = min(1.0, elapsed / expected_down) if expected_down > 0 else 1.0
            self._publish_changes(
                publish,
                progress=_REBOOT_START + int((_REBOOT_END - _REBOOT_START) * share),
            )
            await asyncio.sleep(self._timing.poll_interval)

    def _verified(
        self, run: InstallRun, info: DeviceInformation, publish: Publish
    ) -> FirmwareState:
        """Return the final state if the camera that answered runs new firmware."""
        if run.serial_number and info.serial_number != run.serial_number:
            raise InstallError(
                "serial_mismatch",
                "the device that answered after the install has another serial "
                "number than the camera that was flashed",
            )
        if info.firmware_version == run.before_version:
            raise InstallError(
                "verification_failed",
                f"the camera came back with {run.before_version}, not the firmware "
                f"of {run.file_name}",
                installed=run.before_version or "-",
                expected=run.file_name or "-",
            )
        self._publish_changes(publish, phase=Phase.VERIFYING, progress=_VERIFY)
        self._settings_stale = True  # new firmware: read the settings again
        return self._set_state(
            self._state.evolve(
                installed_version=info.firmware_version,
                latest_version=info.firmware_version,
                phase=Phase.IDLE,
                progress=None,
                error=None,
                install=None,
            )
        )

    def _failed(self, err: BackendError, publish: Publish) -> InstallError:
        """Publish the failed state; return the install error to raise."""
        error = install_error(err)
        self._publish_changes(
            publish,
            phase=Phase.FAILED,
            progress=None,
            error=str(error),
            install=None,
        )
        return error
