"""One coordinator per config entry: it wraps the device's backend.

Polling reads the device every `POLL_INTERVAL`, each entry at its own stable phase of
the interval (`poll_spread`), so entries set up together do not poll together; the
firmware check (which makes the device ask its vendor's server) runs every
`check_interval_minutes` or when the user presses "Check for update".

One lock per device serialises everything that talks to it: installs, actions,
restart, the check and polls (a poll is skipped while the lock is held, so it never
overwrites what an action is writing). An install is a transaction: it runs as the
entry's background task (a reload or Home Assistant stopping cancels it, and nothing
more is sent to the device), the backend records it in the install journal before
the first request that can start a flash, and setup follows a recorded install (or
one the device runs by itself) to its outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, BinaryIO

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from .const import (
    CONF_CHECK_INTERVAL,
    CONF_KIND,
    DEFAULT_CHECK_INTERVAL,
    DOMAIN,
    LOGGER,
    POLL_INTERVAL,
    Kind,
)
from .core.backend import (
    BackendError,
    DeviceAuthError,
    FirmwareBackend,
    InstallError,
    InstallRefusedError,
    InvalidRequestError,
)
from .core.bridge import BridgeBackend
from .core.models import DeviceIdentity, FirmwareState, InstallRun, Phase
from .errors import install_in_progress, translated_error, validation_error
from .handoff import HandoffTracker
from .install_queue import InstallQueue, install_slot
from .outcomes import install_failed, install_succeeded, update_sw_version
from .poll_spread import next_poll, poll_phase
from .storage import InstallJournal

type FirmwareHubConfigEntry = ConfigEntry[FirmwareHubData]
#: Runs an install, publishing every state: the backend's call.
type _Install = Callable[
    [Callable[[FirmwareState], None]], Coroutine[Any, Any, FirmwareState]
]


@dataclass(slots=True)
class FirmwareHubData:
    """What a loaded config entry holds."""

    coordinator: FirmwareCoordinator
    identity: DeviceIdentity


class FirmwareCoordinator(DataUpdateCoordinator[FirmwareState]):
    """Keeps one device's `FirmwareState` and runs its checks and installs."""

    config_entry: FirmwareHubConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FirmwareHubConfigEntry,
        backend: FirmwareBackend,
        identity: DeviceIdentity,
        journal: InstallJournal,
    ) -> None:
        """Initialize with a probed backend."""
        minutes = entry.options.get(CONF_CHECK_INTERVAL, DEFAULT_CHECK_INTERVAL)
        self.check_interval = timedelta(minutes=minutes)
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            # Polling kinds read the device every minute; the bridges are pushed
            # to and only poll to ask for versions, at the check interval.
            update_interval=(
                POLL_INTERVAL
                if backend.polls
                else (self.check_interval if backend.can_check else None)
            ),
            # FirmwareState compares by value: an unchanged poll writes no state.
            always_update=False,
        )
        self.backend = backend
        self.identity = identity
        #: Where in the poll interval this entry polls (see `poll_spread`).
        self.poll_phase = poll_phase(entry.entry_id)
        self._random_microsecond = self._microsecond
        self.kind = Kind(entry.data[CONF_KIND])
        self._journal = journal
        self._lock = asyncio.Lock()
        self._installing = False
        #: Setup's look for (and follow-up of) an install already running.
        self.follow_task: asyncio.Task[None] | None = None
        #: When the next firmware check is due (setup has just checked).
        self.next_check = dt_util.utcnow() + self.check_interval
        backend.journal = self._async_write_journal
        self.handoffs = (
            HandoffTracker(self, backend)
            if isinstance(backend, BridgeBackend)
            else None
        )

    @property
    def installing(self) -> bool:
        """Return True while an install runs (or is followed after a restart)."""
        return self._installing

    async def _async_write_journal(self, run: InstallRun | None) -> None:
        await self._journal.async_write(self.config_entry.entry_id, run, self.identity)

    # ------------------------------------------------------------------ polls

    @callback
    def _schedule_refresh(self) -> None:
        """Schedule the next poll at this entry's phase of the interval.

        The base class fires at `int(loop.time()) + _microsecond + interval`; the
        offset it adds is set so that this lands on `next_poll`. A server's
        Retry-After keeps the base class's timing.
        """
        interval = self._update_interval_seconds
        if interval is None or self._retry_after is not None:
            self._microsecond = self._random_microsecond
        else:
            now = self.hass.loop.time()
            self._microsecond = (
                next_poll(now, interval, self.poll_phase) - int(now) - interval
            )
        super()._schedule_refresh()

    async def _async_update_data(self) -> FirmwareState:
        if self._lock.locked():
            # An install, action or check talks to the device: do not interleave.
            return self.data
        # A tick that fires a moment early must not skip a whole check interval.
        tolerance = (self.update_interval or POLL_INTERVAL) / 2
        check = dt_util.utcnow() + tolerance >= self.next_check
        try:
            async with self._lock:
                state = await self.backend.async_refresh(check=check)
        except DeviceAuthError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="invalid_auth"
            ) from err
        except BackendError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="update_failed",
                translation_placeholders={"error": str(err)},
            ) from err
        if check:
            self.next_check = dt_util.utcnow() + self.check_interval
        # A firmware upgraded outside Home Assistant shows without a restart.
        update_sw_version(self.hass, self.device_id, state.installed_version)
        return state

    async def async_check(self) -> None:
        """Look for new firmware now (the check button)."""
        self._refuse_while_installing()
        async with self._lock:
            previous = self.data
            self.async_set_updated_data(previous.evolve(phase=Phase.CHECKING))
            try:
                state = await self.backend.async_check()
            except BackendError as err:
                self.async_set_updated_data(previous)
                raise translated_error(err) from err
        self.next_check = dt_util.utcnow() + self.check_interval
        self.async_set_updated_data(state)
        if state.error:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="check_failed",
                translation_placeholders={"error": state.error},
            )

    # --------------------------------------------------------------- installs

    async def async_install(self, version: str | None) -> None:
        """Install firmware; one install at a time per device.

        For the bridge kinds this returns once the package is handed to the device:
        the state stays `waiting_for_device` (and `in_progress`) until the device's
        result arrives or the hand-off times out.
        """
        target = version or self.data.latest_version
        await self._async_run_install(
            target, lambda publish: self.backend.async_install(version, publish)
        )

    async def async_install_file(
        self, file: BinaryIO, name: str, *, child: str | None = None
    ) -> None:
        """Install a firmware file already opened (`install_firmware_file`).

        The sibling of `async_install` for devices that take an uploaded file: the
        same lock, progress, events and repairs. Returns once the device runs the
        new firmware (verified) or raises why not; a failure event carries no
        version. With `child` (a `ChildDevice.key`), the file goes to that child
        through this device; events and repairs are the child's.
        """
        backend = self.backend
        await self._async_run_install(
            None,
            lambda publish: (
                backend.async_install_child_file(child, file, name, publish)
                if child
                else backend.async_install_file(file, name, publish)
            ),
            child,
        )

    async def _async_run_install(
        self,
        target: str | None,
        install: _Install,
        child: str | None = None,
    ) -> None:
        """Run an install (on `child`, if given) as the entry's task and wait for it.

        The task belongs to the entry, not to the caller: an action call that goes
        away does not cut the install short; unloading the entry (reload, Home
        Assistant stopping) cancels it, and nothing more is sent to the device.
        """
        self._refuse_while_installing()
        self._installing = True
        task = self.config_entry.async_create_background_task(
            self.hass,
            self._async_install_task(target, install, child),
            f"{DOMAIN} {self.config_entry.title} install",
        )
        await asyncio.shield(task)

    async def _async_install_task(
        self,
        target: str | None,
        install: _Install,
        child: str | None,
    ) -> None:
        try:
            async with self._lock, install_slot(self):
                try:
                    final = await install(self.async_set_updated_data)
                except InstallRefusedError as err:
                    # Nothing that changes the device was sent: no failure to
                    # report, and no install to follow.
                    await self._async_write_journal(None)
                    raise translated_error(err) from err
                except InstallError as err:
                    await self._async_failed(target, err, child)
                    raise translated_error(err) from err
                await self._async_ended(final)
                if self.handoffs is not None and self.handoffs.handed_off():
                    return
                self._succeeded(final, child)
        finally:
            self._installing = False

    def async_cancel_queued(self) -> bool:
        """Cancel this device's install if it waits in the queue; True if it did."""
        queue = InstallQueue.get(self.hass)
        return queue.cancel({self.config_entry.entry_id}) > 0

    async def async_cancel_install(self) -> None:
        """Cancel this device's install (`firmware_hub.cancel_install`).

        A queued install leaves the queue; a running one stops where the device
        can stop safely (a download), and never once it flashes.
        """
        if self.async_cancel_queued():
            return
        if not self._installing:
            raise validation_error(
                InstallRefusedError("nothing_to_cancel", "no install runs")
            )
        try:
            await self.backend.async_cancel_install()
        except InstallRefusedError as err:
            raise validation_error(err) from err

    def async_follow(self, run: InstallRun | None, *, reload: bool) -> None:
        """Follow an install already running on the device (setup), in the background.

        `run` is the journal's marker; the backend also looks at the device. With
        `reload` (setup had to start without reaching the device), the entry is
        reloaded once the install ended, to read the device afresh.
        """
        # With a marker, the install is known to run; without, only once the
        # device shows one (a quick look must not refuse the user's requests).
        self._installing = run is not None
        if run is not None and run.child is None:
            self.async_set_updated_data(
                self.data.evolve(install=run, phase=Phase.INSTALLING, progress=None)
            )
        self.follow_task = self.config_entry.async_create_background_task(
            self.hass,
            self._async_follow(run, reload=reload),
            f"{DOMAIN} {self.config_entry.title} follow install",
        )

    async def _async_follow(self, run: InstallRun | None, *, reload: bool) -> None:
        child = run.child if run else None
        try:
            async with self._lock:
                try:
                    final = await self.backend.async_follow(run, self._publish_follow)
                except InstallError as err:
                    target = run.target_version if run else None
                    await self._async_failed(target, err, child)
                except BackendError as err:
                    # The device could not be read: polls show it unavailable; a
                    # journaled install is followed again at the next setup.
                    LOGGER.info(
                        "Could not look for an install running on %s: %s",
                        self.config_entry.title,
                        err,
                    )
                else:
                    if final is not None:
                        await self._async_ended(final)
                        self._succeeded(final, child)
                    elif run is not None:
                        idle = self.backend.state.evolve(install=None, phase=Phase.IDLE)
                        await self._async_ended(idle)
        finally:
            self._installing = False
        if reload:
            self.hass.config_entries.async_schedule_reload(self.config_entry.entry_id)

    async def _async_ended(self, state: FirmwareState) -> None:
        """Clear the journal's marker (the install is over) and show `state`."""
        await self._async_write_journal(None)
        self.async_set_updated_data(state)

    async def _async_failed(
        self, target: str | None, err: InstallError, key: str | None
    ) -> None:
        """End a failed install (on child `key`); report it (event, repair)."""
        await self._async_ended(self.backend.state)
        install_failed(self, target, err, self.data.child(key))

    def _succeeded(self, final: FirmwareState, key: str | None) -> None:
        """Report a verified install (on child `key`: the child's new firmware)."""
        child = self.data.child(key)
        install_succeeded(self, (child or final).installed_version, child)

    def _publish_follow(self, state: FirmwareState) -> None:
        """Publish a followed install's state; from the first, requests are refused."""
        if state.in_progress:
            self._installing = True
        self.async_set_updated_data(state)

    # ---------------------------------------------------------------- actions

    async def async_device_action[T](self, action: Callable[[], Awaitable[T]]) -> T:
        """Run an action that changes the device (apply settings), not mid-install.

        A request the device cannot take (`InvalidRequestError`: nothing was sent) is
        the caller's mistake, a `ServiceValidationError`; refused credentials start
        re-authentication. The backend's new state (read back) is published.
        """
        self._refuse_while_installing()
        async with self._lock:
            try:
                result = await action()
            except InvalidRequestError as err:
                raise validation_error(err) from err
            except DeviceAuthError as err:
                self.config_entry.async_start_reauth(self.hass)
                raise translated_error(err) from err
            except BackendError as err:
                raise translated_error(err) from err
        self.async_set_updated_data(self.backend.state)
        return result

    async def async_restart(self) -> None:
        """Restart the device; entities are unavailable until it answers again."""
        self._refuse_while_installing()
        async with self._lock:
            try:
                await self.backend.async_restart()
            except InstallRefusedError as err:
                raise validation_error(err) from err
            except BackendError as err:
                raise translated_error(err) from err
        self.async_set_update_error(
            UpdateFailed(translation_domain=DOMAIN, translation_key="restarting")
        )

    def _refuse_while_installing(self) -> None:
        if self._installing:
            raise install_in_progress()

    async def async_shutdown(self) -> None:
        """Stop timers (entry unloaded)."""
        if self.handoffs is not None:
            self.handoffs.cancel_timeout()
        await super().async_shutdown()

    @property
    def device_id(self) -> str | None:
        """Return the device registry id of this entry's device."""
        device = dr.async_get(self.hass).async_get_device_by_identifier(
            (DOMAIN, self.identity.unique_id), self.config_entry.entry_id
        )
        return device.id if device else None
