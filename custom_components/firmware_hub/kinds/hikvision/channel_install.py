"""A firmware file installed on a recorder's IP channel camera, through the recorder.

No Home Assistant imports. The recorder fetches the package itself, from a URL:

    check the file → the channel is one the recorder upgrades (isSupportUpgradeChannels)
    → MD5 of the file (executor reads) → share the file (a URL only the recorder may
    fetch, valid while this install runs) → journal the run → POST
    onlineUpgrade/task (URL, channel, name, MD5) → journal the taskID → follow
    status/task/<taskID> while the recorder fetches the file and upgrades the camera
    → stop sharing → poll InputProxy/channels until the channel reports another
    firmware (same serial number when both are known) → verified.

Progress shows on the channel's child device: the task 0-90 %, the camera's
restart 90 %, verified 99 %. A failed task ends in its own error (the recorder's
status word, as for a camera's online upgrade). `follow` takes the journal's run
after a restart: with a taskID it follows the task (read only), without one it
only looks at the channel's firmware.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
import logging
import time
from typing import BinaryIO, Final, NoReturn

from ...core.backend import (
    BackendError,
    DeviceConnectionError,
    InstallError,
    InstallRefusedError,
    JournalWrite,
    ShareFile,
)
from ...core.files import checked_firmware_file, file_md5
from ...core.models import FirmwareState, InstallRun, Phase
from ...core.versions import same_version
from .channels import CHANNEL_KEY, RecorderChannels
from .errors import as_install_error, call, upgrade_failure
from .install import InstallFlow
from .protocol import IsapiClient
from .protocol.channel_upgrade import get_task_status, start_channel_upgrade
from .protocol.channels import InputChannel, get_channels
from .status import REBOOT_START, UPGRADE_RUNNING, VERIFY, span

_LOGGER = logging.getLogger(__name__)

#: The recorder's task (its download of the file and the camera's flash).
TASK_SPAN: Final = (0, 90)
_TASK_DONE: Final = "successful"
_TASK_WAITING: Final = "notUpgrade"


class ChannelInstall:
    """One firmware file install (or its follow-up) on one channel camera."""

    def __init__(
        self,
        flow: InstallFlow,
        client: IsapiClient,
        channels: RecorderChannels,
        *,
        share: ShareFile | None,
        begin: Callable[[InstallRun], Awaitable[None]],
        journal: JournalWrite,
    ) -> None:
        """Initialize over the recorder's client and the backend's state (`flow`)."""
        self._flow = flow
        self._client = client
        self._timing = flow.timing
        self._channels = channels
        self._share = share
        self._begin = begin
        self._journal = journal

    # ------------------------------------------------------------------ state

    def _show(self, key: str, phase: Phase, progress: int | None) -> None:
        """Publish the channel's install phase and progress (if they changed)."""
        state = self._flow.state
        self._flow.publish(
            children=state.with_child(key, phase=phase, progress=progress).children
        )

    async def _fail(self, key: str, err: BackendError) -> NoReturn:
        """Publish the failed channel install (it is over), then raise why."""
        error = as_install_error(err)
        self._show(key, Phase.FAILED, None)
        self._flow.publish(install=None)
        await self._journal(None)
        raise error from err

    async def _succeed(self, key: str, channel: InputChannel) -> FirmwareState:
        """Publish the channel's verified firmware; clear the journal."""
        version = channel.firmware_version
        verified = self._flow.state.with_child(
            key,
            installed_version=version,
            latest_version=version,
            phase=Phase.IDLE,
            progress=None,
        )
        self._flow.publish(children=verified.children, install=None)
        await self._journal(None)
        return self._flow.state

    # ---------------------------------------------------------------- install

    async def install(self, key: str, file: BinaryIO, name: str) -> FirmwareState:
        """Have the recorder install the file on channel `key`'s camera; verify it."""
        child = self._channels.child(key)
        channel_id = key.rpartition(CHANNEL_KEY)[2]
        if child is None or not child.can_install or not channel_id.isdigit():
            raise InstallRefusedError(
                "child_install_not_supported",
                f"the recorder does not upgrade channel {channel_id}",
                name=child.identity.name if child else key,
            )
        if self._share is None:
            raise InstallRefusedError("no_internal_url", "no way to share the file")
        file_name, size = await checked_firmware_file(file, name)
        before = self._flow.state
        self._show(key, Phase.INSTALLING, 0)
        async with AsyncExitStack() as sharing:
            try:
                md5 = await file_md5(file, size)
                url = await sharing.enter_async_context(
                    self._share(file, file_name, size, self._client.host)
                )
            except OSError as err:
                self._flow.restore(before)
                raise InstallRefusedError(
                    "file_unreadable", str(err), error=str(err)
                ) from err
            except InstallRefusedError:
                self._flow.restore(before)
                raise
            run = InstallRun(
                target_version=None,
                started_at=time.time(),
                before_version=child.installed_version,
                serial_number=child.identity.serial_number,
                file_name=file_name,
                child=key,
            )
            await self._begin(run)
            try:
                task_id = await call(
                    start_channel_upgrade(
                        self._client,
                        url=url,
                        channel=int(channel_id),
                        name=file_name,
                        md5=md5,
                    )
                )
                run = replace(run, task_id=task_id)
                await self._journal(run)
                self._flow.stage(install=run)
                await self._follow_task(key, task_id)
            except BackendError as err:
                await self._fail(key, err)
        # The recorder has the file: it is no longer shared.
        try:
            return await self._succeed(key, await self._verify(run, channel_id))
        except BackendError as err:
            await self._fail(key, err)

    async def _tolerate[T](self, read: Awaitable[T]) -> T | None:
        """Await a read; a lost connection is None (asked again until the deadline).

        The recorder is not the device that flashes: a lost answer is the network,
        and the channel camera's upgrade goes on meanwhile (as a camera's flash is
        waited out).
        """
        try:
            return await call(read)
        except DeviceConnectionError as err:
            _LOGGER.debug("No answer from the recorder (%s); asking again", err)
            return None

    async def _follow_task(self, key: str, task_id: str) -> None:
        """Follow the recorder's task until `successful`; raise how it failed."""
        deadline = time.monotonic() + self._timing.flash_timeout
        while True:
            status = await self._tolerate(get_task_status(self._client, task_id))
            if status is not None:  # None: no answer this time, asked again
                if status.status == _TASK_DONE:
                    self._show(key, Phase.REBOOTING, REBOOT_START)
                    return
                if status.status not in UPGRADE_RUNNING | {_TASK_WAITING}:
                    raise upgrade_failure(status.status)
                self._show(key, Phase.INSTALLING, span(status.percent, TASK_SPAN))
            if time.monotonic() >= deadline:
                raise InstallError(
                    "flash_timeout",
                    f"the recorder's task {task_id} did not end within"
                    f" {self._timing.flash_timeout:.0f} s",
                )
            await asyncio.sleep(self._timing.poll_interval)

    async def _verify(self, run: InstallRun, channel_id: str) -> InputChannel:
        """Wait until the channel reports another firmware (the same camera)."""
        deadline = time.monotonic() + self._timing.reboot_timeout
        seen: str | None = None
        while True:
            channel = await self._read_channel(channel_id, tolerant=True)
            if channel is not None and channel.firmware_version:
                seen = channel.firmware_version
                if (
                    run.serial_number
                    and channel.serial_number
                    and channel.serial_number != run.serial_number
                ):
                    raise InstallError(
                        "serial_mismatch",
                        f"another camera answers on channel {channel_id}",
                    )
                if run.before_version is None or not same_version(
                    seen, run.before_version
                ):
                    if run.child is not None:
                        self._show(run.child, Phase.VERIFYING, VERIFY)
                    return channel
            if time.monotonic() >= deadline:
                if seen is None:
                    raise InstallError(
                        "reboot_timeout",
                        f"channel {channel_id} did not report its firmware in time",
                    )
                raise InstallError(
                    "verification_failed",
                    f"channel {channel_id} still runs {seen}",
                    installed=seen,
                    expected="a new version",
                )
            await asyncio.sleep(self._timing.poll_interval)

    async def _read_channel(
        self, channel_id: str, *, tolerant: bool = False
    ) -> InputChannel | None:
        """Read the channel as the recorder lists it (`tolerant`: see `_tolerate`)."""
        read = get_channels(self._client)
        channels = await (self._tolerate(read) if tolerant else call(read))
        return next((c for c in channels or () if c.channel_id == channel_id), None)

    # ---------------------------------------------------------------- follow

    async def follow(self, run: InstallRun) -> FirmwareState:
        """Follow the journal's channel install to its end, read only."""
        key = run.child or ""
        channel_id = key.rpartition(CHANNEL_KEY)[2]
        self._show(key, Phase.INSTALLING, None)
        await self._begin(run)
        try:
            if run.task_id is not None:
                await self._follow_task(key, run.task_id)
                return await self._succeed(key, await self._verify(run, channel_id))
            # Stopped before the recorder named its task: did it take the file?
            channel = await self._read_channel(channel_id)
            installed = channel.firmware_version if channel else None
            if installed and not same_version(installed, run.before_version or ""):
                return await self._succeed(key, await self._verify(run, channel_id))
            raise InstallError(
                "file_install_interrupted",
                f"the install of {run.file_name} on channel {channel_id} did not"
                f" start; the camera runs {installed}",
                file=run.file_name or "-",
                installed=installed or "-",
            )
        except BackendError as err:
            await self._fail(key, err)
