"""What a Hikvision install and a firmware-file install share: how a run ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

from ...core.backend import (
    BackendError,
    DeviceConnectionError,
    InstallError,
    InstallRefusedError,
    JournalWrite,
)
from ...core.models import FirmwareState, InstallRun, Phase
from .cancel import InstallCancelledError
from .errors import as_install_error
from .install import InstallFlow
from .protocol import DeviceInfo, IsapiClient


class CameraRun:
    """One run on one camera (an online install, a file install, or its follow-up)."""

    def __init__(
        self,
        flow: InstallFlow,
        client: IsapiClient,
        *,
        begin: Callable[[InstallRun], Awaitable[None]],
        journal: JournalWrite,
        online_upgrade: bool,
    ) -> None:
        """Initialize; `begin` journals and shows the run (the backend's)."""
        self._flow = flow
        self._client = client
        self._begin = begin
        self._journal = journal
        self._online_upgrade = online_upgrade
        #: The camera as verified at the end (None until then).
        self.device: DeviceInfo | None = None

    def _refuse(self, err: BackendError, before: FirmwareState) -> NoReturn:
        """Refuse the install (nothing was sent): show `before` again, say why.

        The camera could not be read (or is busy) before anything that changes
        it was sent: an `InstallRefusedError`, no failure to report.
        """
        self._flow.restore(before)
        self._flow.ended()
        if isinstance(err, InstallRefusedError):
            raise err
        refused = (
            InstallError("cannot_connect", str(err))
            if isinstance(err, DeviceConnectionError)
            else as_install_error(err)
        )
        raise InstallRefusedError(
            refused.key, str(err), **refused.placeholders
        ) from err

    async def _fail(self, err: BackendError) -> NoReturn:
        """Publish the failed state (the install is over), then raise why."""
        error = as_install_error(err)
        self._flow.ended()
        if isinstance(error, InstallCancelledError):
            # The user's choice: the camera runs its firmware, nothing failed.
            self._flow.publish(
                phase=Phase.IDLE, progress=None, error=None, install=None
            )
        else:
            self._flow.publish(
                phase=Phase.FAILED, progress=None, error=str(error), install=None
            )
        await self._journal(None)
        raise error from err

    async def _succeed(self, info: DeviceInfo) -> FirmwareState:
        """Publish the verified camera (the install is over); clear the journal."""
        self.device = info
        self._flow.ended()
        self._flow.publish(
            installed_version=info.full_version,
            latest_version=info.full_version,
            release_notes=None,
            offers=(),
            phase=Phase.IDLE,
            progress=None,
            error=None,
            install=None,
        )
        await self._journal(None)
        return self._flow.state
