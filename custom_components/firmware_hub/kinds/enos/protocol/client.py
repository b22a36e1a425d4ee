"""EnOS cloud OTA over MQTT 3.1.1, as the device side: the client.

Wire only, no Home Assistant imports. The connection (signed login, reconnects) is
`connection.MqttConnection`; this adds the OTA requests and their replies and the
`ota/device/upgrade` pushes. The `_reply` topics and the push topic are subscribed
on every connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
import itertools
import logging
from typing import Any

from .connection import MqttConnection
from .errors import (
    EnosConnectionError,
    EnosPayloadError,
    EnosReplyError,
    EnosTimeoutError,
)
from .messages import (
    CODE_SUCCESS,
    METHOD_GETVERSION,
    METHOD_INFORM,
    REPLY_SUFFIX,
    REQUEST_TOPICS,
    TOPIC_GETVERSION,
    TOPIC_INFORM,
    TOPIC_UPGRADE,
    EnosFirmware,
    EnosReply,
    build_reply,
    build_request,
    device_topic,
    parse_offer_list,
    parse_reply,
    parse_upgrade_push,
)
from .signing import EnosCredentials
from .timing import DEFAULT_TIMING, EnosTiming

__all__ = ["DEFAULT_TIMING", "EnosClient", "EnosCredentials", "EnosTiming"]

_LOGGER = logging.getLogger(__name__)

type UpgradeHandler = Callable[[str | None, EnosFirmware | EnosPayloadError], object]
"""Called with (message id, offer) for a push, or (id, error) for a malformed one.

It may return an awaitable, run as a task.
"""


class EnosClient(MqttConnection):
    """One EnOS device: inform, getversion, progress, and upgrade pushes."""

    def __init__(
        self,
        host: str,
        port: int,
        credentials: EnosCredentials,
        *,
        tls: bool = True,
        ca_file: str | None = None,
        timing: EnosTiming = DEFAULT_TIMING,
    ) -> None:
        """Initialize; no I/O until `connect`."""
        super().__init__(
            host, port, credentials, tls=tls, ca_file=ca_file, timing=timing
        )
        self._ids = itertools.count(1)
        self._pending: dict[tuple[str, str], asyncio.Future[EnosReply]] = {}
        self._upgrade_handler: UpgradeHandler | None = None

    def _fail_waiters(self, error: EnosConnectionError) -> None:
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(error)

    def set_upgrade_handler(self, handler: UpgradeHandler | None) -> None:
        """Set the handler of `ota.device.upgrade` pushes (see `UpgradeHandler`).

        The handler answers with `reply_upgrade` (200 at once, or an error code >=
        2000 for a push it cannot use).
        """
        self._upgrade_handler = handler

    def subscriptions(self) -> list[str]:
        """Return the topics subscribed on every connect."""
        return [
            *(
                device_topic(self._pk, self._dk, topic + REPLY_SUFFIX)
                for topic in REQUEST_TOPICS
            ),
            device_topic(self._pk, self._dk, TOPIC_UPGRADE),
        ]

    def _handle_message(self, topic: str, payload: bytes) -> None:
        if topic == device_topic(self._pk, self._dk, TOPIC_UPGRADE):
            self._handle_upgrade(payload)
        else:  # only the `_reply` topics are subscribed besides
            self._handle_reply(topic, payload)

    def _handle_reply(self, topic: str, payload: bytes) -> None:
        try:
            reply = parse_reply(payload)
        except EnosPayloadError as err:
            _LOGGER.warning("Ignoring a malformed reply on %s: %s", topic, err)
            return
        waiter = self._pending.get((topic, reply.msg_id))
        if waiter is None or waiter.done():
            _LOGGER.debug("Ignoring an unexpected reply %s on %s", reply.msg_id, topic)
            return
        waiter.set_result(reply)

    def _handle_upgrade(self, payload: bytes) -> None:
        result: EnosFirmware | EnosPayloadError
        try:
            msg_id, result = parse_upgrade_push(payload)
        except EnosPayloadError as err:
            _LOGGER.warning("Malformed upgrade push %s: %s", err.msg_id, err)
            msg_id, result = err.msg_id, err
        else:
            _LOGGER.debug("Upgrade push %s: version %s", msg_id, result.version)
        if self._upgrade_handler is None:
            _LOGGER.warning("No handler for the upgrade push %s", msg_id)
            return
        self._invoke(self._upgrade_handler, msg_id, result)

    def send(self, topic: str, method: str, params: Mapping[str, Any]) -> None:
        """Publish a request on `/sys/{pk}/{dk}/{topic}` without waiting for a reply."""
        msg_id = str(next(self._ids))
        self._publish(
            device_topic(self._pk, self._dk, topic),
            build_request(msg_id, method, params),
        )

    async def request(
        self, topic: str, method: str, params: Mapping[str, Any]
    ) -> EnosReply:
        """Send a request on `/sys/{pk}/{dk}/{topic}` and wait for its reply.

        Raises `EnosReplyError` for a code other than 200, `EnosTimeoutError` when no
        reply comes within the timing's request timeout, and
        `EnosConnectionError` when not connected or the connection drops meanwhile.
        """
        msg_id = str(next(self._ids))
        full_topic = device_topic(self._pk, self._dk, topic)
        key = (full_topic + REPLY_SUFFIX, msg_id)
        waiter: asyncio.Future[EnosReply] = self._running_driver().loop.create_future()
        self._pending[key] = waiter
        limit = self._timing.request_timeout
        try:
            self._publish(full_topic, build_request(msg_id, method, params))
            async with asyncio.timeout(limit):
                reply = await waiter
        except TimeoutError as err:
            raise EnosTimeoutError(f"{method}: no reply in {limit} s") from err
        finally:
            self._pending.pop(key, None)
        if reply.code != CODE_SUCCESS:
            raise EnosReplyError(method, reply.code, reply.message)
        return reply

    async def inform(self, version: str) -> None:
        """Report the installed firmware version (`ota.device.inform`)."""
        await self.request(TOPIC_INFORM, METHOD_INFORM, {"version": version})

    async def get_versions(self) -> list[EnosFirmware]:
        """Ask the cloud which firmware it offers (`ota.device.getversion`)."""
        reply = await self.request(TOPIC_GETVERSION, METHOD_GETVERSION, {})
        return parse_offer_list(reply.data)

    def reply_upgrade(
        self, msg_id: str | None, code: int = CODE_SUCCESS, message: str = ""
    ) -> None:
        """Answer an upgrade push: 200 accepted, >= 2000 refused (with a message)."""
        self._publish(
            device_topic(self._pk, self._dk, TOPIC_UPGRADE + REPLY_SUFFIX),
            build_reply(msg_id, code, message),
        )
