"""Connection listeners of the EnOS client: called on the loop, awaitables as tasks.

No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from functools import partial
import inspect
import logging
from typing import Any

from .errors import EnosError

_LOGGER = logging.getLogger(__name__)


class Listeners:
    """Who hears about (re)connects and lost connections; their running tasks."""

    def __init__(self) -> None:
        """Start without listeners."""
        self._tasks: set[asyncio.Future[Any]] = set()
        self._on_connected: list[Callable[[], object]] = []
        self._on_disconnected: list[Callable[[EnosError], object]] = []

    def add_connected_listener(
        self, callback: Callable[[], object]
    ) -> Callable[[], None]:
        """Call `callback()` after every successful (re)connect; return a remover.

        The callback may return an awaitable (run as a task), e.g. to re-inform.
        """
        self._on_connected.append(callback)
        return partial(self._remove, self._on_connected, callback)

    def add_disconnected_listener(
        self, callback: Callable[[EnosError], object]
    ) -> Callable[[], None]:
        """Call `callback(error)` when the connection is lost; return a remover.

        `EnosConnectionError`: reconnecting in the background. `EnosAuthError`: the
        credentials were refused on reconnect and the client gave up. Not called for
        `disconnect()`.
        """
        self._on_disconnected.append(callback)
        return partial(self._remove, self._on_disconnected, callback)

    @staticmethod
    def _remove(callbacks: list[Any], callback: object) -> None:
        with contextlib.suppress(ValueError):
            callbacks.remove(callback)

    def _notify_connected(self) -> None:
        for callback in list(self._on_connected):
            self._invoke(callback)

    def _notify_disconnected(self, error: EnosError) -> None:
        for callback in list(self._on_disconnected):
            self._invoke(callback, error)

    def _invoke(self, callback: Callable[..., object], *args: Any) -> None:
        """Call a callback (on the loop); run what it returns if awaitable; log errors."""
        try:
            result = callback(*args)
        except Exception:
            _LOGGER.exception("Error in EnOS callback %r", callback)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            _LOGGER.error("Error in EnOS callback task: %s", err, exc_info=err)

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
