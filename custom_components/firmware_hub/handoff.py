"""The bridges' side of the coordinator: hand-off events, results and timeouts.

A bridge (EnOS, Miling) downloads and verifies a package, then hands it to the real
device through `firmware_hub_install_requested`; the install ends when
`report_install_result` arrives or the hand-off times out.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from homeassistant.core import CALLBACK_TYPE, callback
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .core.backend import InstallError, InstallRefusedError
from .core.bridge import BridgeBackend
from .errors import validation_error
from .outcomes import fire_install_requested, install_failed, install_succeeded

if TYPE_CHECKING:
    from .coordinator import FirmwareCoordinator


class HandoffTracker:
    """Follows a bridge's pending hand-off for its coordinator."""

    def __init__(
        self, coordinator: FirmwareCoordinator, backend: BridgeBackend
    ) -> None:
        """Attach to the bridge: pushes (offers, connection) arrive as new states."""
        self._coordinator = coordinator
        self._backend = backend
        self._unsub: CALLBACK_TYPE | None = None
        backend.attach(coordinator.async_set_updated_data)
        entry, hass = coordinator.config_entry, coordinator.hass
        backend.on_auth_failed = lambda: entry.async_start_reauth(hass)
        # A hand-off pending from before a restart keeps its deadline.
        self.schedule_timeout()

    @property
    def timeout(self) -> float:
        """Return how long (seconds) the device has to report after a hand-off."""
        return self._backend.handoff_timeout

    @property
    def pending(self) -> tuple[float, float] | None:
        """Return when the pending hand-off happened and its deadline (Unix times)."""
        handoff, deadline = self._backend.handoff, self._backend.handoff_deadline
        if handoff is None or deadline is None:
            return None
        return handoff.since, deadline

    @callback
    def handed_off(self) -> bool:
        """After an install returned: announce a hand-off, if there is one."""
        handoff = self._backend.handoff
        if handoff is None:
            return False
        fire_install_requested(self._coordinator, handoff)
        self.schedule_timeout()
        return True

    async def async_report_result(
        self, success: bool, version: str | None, message: str | None
    ) -> None:
        """Take the real device's result for the package handed to it."""
        backend, coordinator = self._backend, self._coordinator
        handoff = backend.handoff
        try:
            final = await backend.async_report_result(success, version, message)
        except InstallRefusedError as err:
            raise validation_error(err) from err
        except InstallError as err:
            # The report itself worked: the device failed; tell automations.
            self.cancel_timeout()
            coordinator.async_set_updated_data(backend.state)
            install_failed(coordinator, handoff.version if handoff else version, err)
            return
        self.cancel_timeout()
        coordinator.async_set_updated_data(final)
        install_succeeded(coordinator, final.installed_version)

    def schedule_timeout(self) -> None:
        """Fail the pending hand-off when the device does not report in time."""
        self.cancel_timeout()
        deadline = self._backend.handoff_deadline
        if deadline is not None:
            self._unsub = async_track_point_in_utc_time(
                self._coordinator.hass,
                self._timed_out,
                dt_util.utc_from_timestamp(deadline),
            )

    def cancel_timeout(self) -> None:
        """Stop waiting for the hand-off's deadline."""
        if self._unsub is not None:
            self._unsub()
            self._unsub = None

    @callback
    def _timed_out(self, _now: datetime) -> None:
        self._unsub = None
        coordinator = self._coordinator
        coordinator.config_entry.async_create_background_task(
            coordinator.hass, self._async_expire(), "firmware_hub hand-off timeout"
        )

    async def _async_expire(self) -> None:
        handoff = self._backend.handoff
        if handoff is None:
            return
        try:
            await self._backend.async_handoff_expired()
        except InstallError as err:
            self._coordinator.async_set_updated_data(self._backend.state)
            install_failed(self._coordinator, handoff.version, err)
