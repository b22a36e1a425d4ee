"""Cancelling the camera's package download: the user's request and its answer.

Only a download can be cancelled: the camera then drops the partial package and
keeps running its firmware. A flash is never interrupted (a camera stopped while
writing its flash may not start again), so once the download has finished and the
flash is about to start, a request is refused.

The install owns the decision: `CancelSwitch.request` only asks; the install's
download loop, which alone decides whether the flash starts, sends the camera's
cancel and answers. No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from ...core.backend import InstallError, InstallRefusedError

#: The operation `ManualDownloadPackage/supportOperation` lists when the camera
#: can cancel a download.
CANCEL_OPERATION: Final = "cancel"


class InstallCancelledError(InstallError):
    """The user cancelled the install before the flash (a download is stopped)."""

    def __init__(self) -> None:
        """Initialize with the fixed key and message."""
        super().__init__(
            "download_cancelled",
            "cancelled before the flash; the camera keeps its firmware",
        )


class CancelSwitch:
    """A request to stop the running download, and the install's answer to it."""

    def __init__(self) -> None:
        """Start with no download running."""
        #: Whether the camera can cancel a download (its capabilities say so).
        self.supported = False
        #: True while an install follows a download it may still cancel.
        self.armed = False
        #: True once a download finished: the flash that follows is never stopped.
        self._flashing = False
        self._wanted = asyncio.Event()
        self._answer: asyncio.Future[None] | None = None

    @property
    def wanted(self) -> bool:
        """Return True if the user asked to cancel and has not been answered."""
        return self._wanted.is_set()

    async def request(self) -> None:
        """Ask the running download to stop; return once the camera dropped it.

        Raises `InstallRefusedError` when no download can be cancelled now, or why
        the camera did not cancel (the install then goes on).
        """
        if not self.supported:
            raise InstallRefusedError(
                "cancel_not_supported", "the camera cannot cancel a download"
            )
        if not self.armed and self._flashing:
            raise too_late()
        if not self.armed:
            raise InstallRefusedError(
                "cancel_not_possible",
                "no firmware download runs that can be cancelled",
            )
        if self._answer is None or self._answer.done():
            self._answer = asyncio.get_running_loop().create_future()
            self._wanted.set()
        await asyncio.shield(self._answer)

    def reset(self) -> None:
        """Forget the ended install: the next request finds nothing to cancel."""
        self.disarm(finished=False)
        self._flashing = False

    def arm(self) -> None:
        """Let the user cancel the download that starts now (if supported)."""
        self.armed = self.supported
        self._flashing = False

    async def wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less if cancelling is asked meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wanted.wait()

    def answer(self, error: BaseException | None = None) -> None:
        """Tell the requester the outcome (None: cancelled); nothing is wanted after."""
        self._wanted.clear()
        answer, self._answer = self._answer, None
        if answer is None or answer.done():
            return
        if error is None:
            answer.set_result(None)
        else:
            answer.set_exception(error)

    def disarm(self, *, finished: bool) -> None:
        """End the download: refuse later requests and answer a pending one.

        `finished`: the package is complete and the flash starts now (a request
        that came meanwhile is too late); otherwise the install ended.
        """
        self.armed = False
        self._flashing = finished
        if not self.wanted:
            return
        if finished:
            self.answer(too_late())
        else:
            self.answer(
                InstallRefusedError(
                    "cancel_not_possible", "the install ended before it was cancelled"
                )
            )


def too_late() -> InstallRefusedError:
    """Return the answer to a request that came once the download finished."""
    return InstallRefusedError(
        "cancel_too_late",
        "the download has finished and the camera flashes the firmware now",
    )
