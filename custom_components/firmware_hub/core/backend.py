"""The firmware lifecycle every device kind implements. No Home Assistant imports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, BinaryIO, ClassVar, Unpack

from .models import DeviceIdentity, FirmwareState, InstallRun, StateChanges

#: Receives every new state while an install runs (progress, phase changes).
Publish = Callable[[FirmwareState], None]

#: Persists the running install (the install journal); None clears it.
JournalWrite = Callable[[InstallRun | None], Awaitable[None]]


#: Serves an open file over HTTP, only to one host, while the context is open:
#: `share(file, name, size, host)` yields the URL the host fetches it from.
ShareFile = Callable[[BinaryIO, str, int, str], AbstractAsyncContextManager[str]]


async def _no_journal(_run: InstallRun | None) -> None:
    """Keep nothing (a backend outside Home Assistant: tests, benchmarks)."""


class BackendError(Exception):
    """Base of the errors backends raise; `key` names a translated message."""

    key: str = "device_error"

    def __init__(self, message: str, **placeholders: str) -> None:
        """Initialize with a log message and the translation placeholders."""
        super().__init__(message)
        self.placeholders: dict[str, str] = placeholders


class DeviceAuthError(BackendError):
    """The device refused the credentials: the user must re-authenticate."""

    key = "invalid_auth"


class DeviceConnectionError(BackendError):
    """The device could not be reached or did not answer in time."""

    key = "cannot_connect"


class CloudAuthError(DeviceAuthError):
    """The cloud refused the device's credentials (bridges)."""

    key = "cloud_invalid_auth"


class CloudConnectionError(DeviceConnectionError):
    """The cloud could not be reached (bridges)."""

    key = "cloud_cannot_connect"


class DeviceResponseError(BackendError):
    """The device answered, but not with what the protocol promises."""

    key = "unexpected_response"


class InstallError(BackendError):
    """An install failed; `key` says at which step (download, flash, verify...)."""

    #: The repair issue (translation key) the failure raises; None: no repair.
    repair_key: str | None = None

    def __init__(self, key: str, message: str, **placeholders: str) -> None:
        """Initialize with the translation key of the failed step."""
        super().__init__(message, **placeholders)
        self.key = key


class InstallRefusedError(InstallError):
    """An install refused before anything was sent to the device."""


class DeviceFailureError(InstallError):
    """The device ended the install in a failure state the user has to act on.

    Its own repair issue says what to do (another package, the device's storage
    or network...), not only to retry.
    """

    def __init__(
        self, key: str, repair_key: str, message: str, **placeholders: str
    ) -> None:
        """Initialize with the failure's key and its repair issue's key."""
        super().__init__(key, message, **placeholders)
        self.repair_key = repair_key


class InvalidRequestError(BackendError):
    """A request the device cannot take, refused before anything was sent.

    The caller's mistake (a value outside the device's range, a setting it does not
    have): the Home Assistant layer raises it as a `ServiceValidationError`.
    """

    def __init__(self, key: str, message: str, **placeholders: str) -> None:
        """Initialize with the translation key of what is wrong."""
        super().__init__(message, **placeholders)
        self.key = key


class FirmwareBackend(ABC):
    """One device's firmware lifecycle over its protocol."""

    kind: ClassVar[str]
    #: What the kind can do: decides which entities exist.
    can_install: ClassVar[bool] = True
    can_check: ClassVar[bool] = True
    can_restart: ClassVar[bool] = False
    #: Whether the device is polled (else its state is pushed).
    polls: ClassVar[bool] = True
    #: Whether offers come with a change log (the update entity's release notes).
    has_release_notes: ClassVar[bool] = True
    #: Whether the user can pick one of several offered versions.
    specific_version: ClassVar[bool] = False
    #: Whether the device takes a firmware file (the install_firmware_file action).
    can_install_file: ClassVar[bool] = False

    def __init__(self) -> None:
        """Start from an empty state."""
        self._state = FirmwareState()
        #: Where the running install is recorded; set by the Home Assistant layer.
        self.journal: JournalWrite = _no_journal

    @property
    def state(self) -> FirmwareState:
        """Return the latest known state."""
        return self._state

    def _set_state(self, state: FirmwareState) -> FirmwareState:
        self._state = state
        return state

    def _publish_changes(
        self, publish: Publish, **changes: Unpack[StateChanges]
    ) -> FirmwareState:
        """Apply `changes` to the state; publish the new state if it changed.

        The one progress publisher of the installs (every step, every percent).
        """
        state = self._state
        new = state.evolve(**changes)
        if new != state:
            publish(self._set_state(new))
        return new

    async def _begin_install(self, run: InstallRun, publish: Publish) -> None:
        """Record the install, then show it; call before anything can start a flash.

        The journal is written first: if Home Assistant stops or the entry reloads
        from here on, setup finds the marker and follows the install to its end.
        """
        await self.journal(run)
        publish(self._set_state(self._state.evolve(install=run)))

    @abstractmethod
    async def async_probe(self) -> DeviceIdentity:
        """Identify the device and read its initial state (setup and config flow)."""

    @abstractmethod
    async def async_refresh(self, *, check: bool) -> FirmwareState:
        """Read the device's state; with `check`, also look for new firmware."""

    async def async_check(self) -> FirmwareState:
        """Look for new firmware now (the user pressed "Check for update")."""
        return await self.async_refresh(check=True)

    @abstractmethod
    async def async_install(
        self, version: str | None, publish: Publish
    ) -> FirmwareState:
        """Install `version` (None: the latest), publishing every step.

        Returns the final state; raises `InstallError` after publishing a failed state.
        """

    async def async_follow(
        self, run: InstallRun | None, publish: Publish
    ) -> FirmwareState | None:
        """Follow an install already running on the device to its outcome (setup).

        `run` is the journal's marker of an install this integration started before
        a reload or restart (None: no marker). A kind whose device can flash by
        itself also looks at the device. Returns None when no install runs, else the
        final, verified state; raises `InstallError` (after publishing a failed
        state) when the install failed. Nothing is sent that changes the device.
        """
        return None

    async def async_restart(self) -> None:
        """Restart the device."""
        raise DeviceResponseError(f"{self.kind} devices cannot be restarted")

    async def async_install_file(
        self, file: BinaryIO, name: str, publish: Publish
    ) -> FirmwareState:
        """Install the firmware in `file` (open, named `name`), publishing every step.

        The Home Assistant layer opened the file once and checked where it really
        is; the backend streams from that same open file and never opens a path.

        Returns the final state; raises `InstallError` after publishing a failed state.
        """
        raise InstallRefusedError(
            "not_supported", f"{self.kind} devices take no firmware file"
        )

    async def async_cancel_install(self) -> None:
        """Cancel the running install where the device can stop it safely.

        Returns once the device stopped (the install then ends as cancelled);
        raises `InstallRefusedError` saying why not (the install goes on).
        """
        raise InstallRefusedError(
            "cancel_not_supported", f"{self.kind} installs cannot be cancelled"
        )

    async def async_install_child_file(
        self, child: str, file: BinaryIO, name: str, publish: Publish
    ) -> FirmwareState:
        """Install the firmware in `file` on a child device, through this device.

        `child` is the `ChildDevice.key` of a child whose `can_install` is True;
        progress shows on that child. Returns the final state; raises
        `InstallError` after publishing a failed state.
        """
        raise InstallRefusedError(
            "child_install_not_supported",
            f"{self.kind} devices install nothing on their children",
            name=child,
        )

    def diagnostics(self) -> Mapping[str, Any]:
        """Return protocol documents worth seeing in diagnostics (not yet redacted)."""
        return {}

    async def async_close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (unload, reconfigure).

        Backends on Home Assistant's shared aiohttp session hold nothing to release;
        those with their own connections (MQTT, WebSocket, SOAP) close them here.
        """
