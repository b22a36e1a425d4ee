"""What the loopback HTTP device simulators share: going offline and back.

"Offline" means connection refused at once (the listening socket is closed and open
keep-alive connections are dropped), on the same port, as a rebooting device.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
import logging
import time
from typing import Any

from aiohttp import web

_LOGGER = logging.getLogger(__name__)


class LoopbackDevice:
    """Online/offline switching for a simulator served by an aiohttp ``AppRunner``.

    Subclasses set these attributes in ``__init__`` and create ``_runner`` when they
    start.
    """

    host: str
    port: int
    events: list[tuple[float, str]]
    _runner: web.AppRunner | None
    _site: web.TCPSite | None
    _online: asyncio.Event
    _ready: asyncio.Event
    _tasks: set[asyncio.Task[None]]

    @property
    def url(self) -> str:
        """Return ``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def is_online(self) -> bool:
        """Whether the simulator is accepting connections."""
        return self._online.is_set()

    async def go_offline(self) -> None:
        """Close the listening socket and all open connections (same port kept)."""
        if self._runner is None:
            raise RuntimeError("simulator not started")
        if self.is_online:
            await self._close_listener(self._runner)
            self._event("went_offline")

    async def go_online(self) -> None:
        """Listen again on the same port."""
        if self._runner is None:
            raise RuntimeError("simulator not started")
        if not self.is_online:
            await self._open_listener()
            self._ready.set()
            self._event("came_online")

    async def wait_online(self) -> None:
        """Return once the device accepts connections and no outage is pending.

        An outage the device has announced (its answer to a reboot, an upgrade that
        reboots by itself...) counts from that answer: this waits for its end even
        if it has not started yet.
        """
        await self._ready.wait()

    async def _open_listener(self) -> None:
        """Bind the TCP site on ``host:port`` and mark the device online."""
        if self._runner is None:
            raise RuntimeError("simulator not started")
        if self._site is None:
            site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
            await site.start()
            self._site = site
            self.port = site.port
        self._online.set()

    async def _close_listener(self, runner: web.AppRunner) -> None:
        """Close the listening socket and force-close every open connection."""
        self._online.clear()
        self._ready.clear()
        site, self._site = self._site, None
        if site is not None:
            await site.stop()
        if runner.server is not None:
            for connection in runner.server.connections:
                connection.force_close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a background task that ``stop()`` cancels."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _event(self, name: str) -> None:
        """Record a lifecycle event."""
        self.events.append((time.monotonic(), name))
        _LOGGER.debug("%s %s", self.url, name)
