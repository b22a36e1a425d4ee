"""One queue for the installs of all Firmware Hub devices.

Home Assistant's "Update all" starts every install at once; for cameras that is
every camera downloading and rebooting at the same moment. Installs therefore wait
here for one of `limit` slots, in the order they were asked for. An install
waiting for its turn shows `queued` (and `in_progress`) and can be cancelled with
`firmware_hub.cancel_queued_installs`.

The limit is the `max_concurrent_installs` option: each entry has it (default 2),
and the smallest value among the loaded entries applies, so that lowering it on
any device protects the whole site.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util.hass_dict import HassKey

from .const import CONF_MAX_CONCURRENT_INSTALLS, DEFAULT_MAX_CONCURRENT_INSTALLS, DOMAIN
from .core.models import Phase

if TYPE_CHECKING:
    from .coordinator import FirmwareCoordinator

_QUEUE: HassKey[InstallQueue] = HassKey(f"{DOMAIN}_install_queue")


class QueuedInstallCancelledError(Exception):
    """A queued install was cancelled before it started."""


@dataclass(eq=False, slots=True)
class _Waiter:
    entry_id: str
    ready: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class InstallQueue:
    """Slots for installs across entries; FIFO among the waiting ones."""

    def __init__(self, limit: Callable[[], int]) -> None:
        """Initialize with the function that returns the current limit."""
        self._limit = limit
        self._running: set[str] = set()
        self._waiting: deque[_Waiter] = deque()

    @classmethod
    def get(cls, hass: HomeAssistant) -> InstallQueue:
        """Return the integration's queue."""
        if (queue := hass.data.get(_QUEUE)) is None:
            queue = cls(lambda: current_limit(hass))
            hass.data[_QUEUE] = queue
        return queue

    @property
    def running(self) -> frozenset[str]:
        """Return the entries installing now."""
        return frozenset(self._running)

    def must_wait(self) -> bool:
        """Return True when a new install would have to wait for its turn."""
        return bool(self._waiting) or len(self._running) >= self._limit()

    @asynccontextmanager
    async def slot(self, entry_id: str) -> AsyncIterator[None]:
        """Hold an install slot for `entry_id` (waiting for one if needed).

        Raises `QueuedInstallCancelledError` if cancelled while waiting.
        """
        if self.must_wait():
            waiter = _Waiter(entry_id)
            self._waiting.append(waiter)
            try:
                await waiter.ready  # resolved by `_wake`, which hands the slot over
            except BaseException:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
                elif _handed_over(waiter.ready):
                    # Cancelled just as the slot was handed over: give it back.
                    self._running.discard(entry_id)
                    self._wake()
                raise
        else:
            self._running.add(entry_id)
        try:
            yield
        finally:
            self._running.discard(entry_id)
            self._wake()

    def cancel(self, entry_ids: set[str] | None = None) -> int:
        """Cancel the waiting installs (of `entry_ids`, or all); return how many."""
        cancelled = 0
        for waiter in list(self._waiting):
            if entry_ids is None or waiter.entry_id in entry_ids:
                self._waiting.remove(waiter)
                if not waiter.ready.done():
                    waiter.ready.set_exception(QueuedInstallCancelledError())
                    cancelled += 1
        return cancelled

    def _wake(self) -> None:
        """Hand free slots to the waiting installs, oldest first."""
        while self._waiting and len(self._running) < self._limit():
            waiter = self._waiting.popleft()
            if waiter.ready.done():  # the waiting task went away
                continue
            self._running.add(waiter.entry_id)
            waiter.ready.set_result(None)


@asynccontextmanager
async def install_slot(coordinator: FirmwareCoordinator) -> AsyncIterator[None]:
    """Wait for a device's turn in the queue, showing `queued` meanwhile.

    A queued install cancelled by `cancel_queued_installs` shows the state from
    before again and raises the translated `install_cancelled`.
    """
    queue = InstallQueue.get(coordinator.hass)
    if queue.must_wait():
        coordinator.async_set_updated_data(
            coordinator.data.evolve(phase=Phase.QUEUED, progress=None)
        )
    try:
        async with queue.slot(coordinator.config_entry.entry_id):
            yield
    except QueuedInstallCancelledError as err:
        coordinator.async_set_updated_data(coordinator.backend.state)
        raise HomeAssistantError(
            translation_domain=DOMAIN, translation_key="install_cancelled"
        ) from err


def _handed_over(ready: asyncio.Future[None]) -> bool:
    return ready.done() and not ready.cancelled() and ready.exception() is None


def current_limit(hass: HomeAssistant) -> int:
    """Return the smallest `max_concurrent_installs` of the loaded entries."""
    limits = [
        int(
            entry.options.get(
                CONF_MAX_CONCURRENT_INSTALLS, DEFAULT_MAX_CONCURRENT_INSTALLS
            )
        )
        for entry in hass.config_entries.async_loaded_entries(DOMAIN)
    ]
    return max(1, min(limits, default=DEFAULT_MAX_CONCURRENT_INSTALLS))
