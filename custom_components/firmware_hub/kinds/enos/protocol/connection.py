"""One MQTT 3.1.1 connection to EnOS: signed login, subscribe, reconnect.

Wire only, no Home Assistant imports. Every connection attempt signs a fresh
timestamp (`signing`) and uses a new paho client (`transport`). Once connected, a
lost connection is re-established in the background with exponential backoff and
jitter (`core.retry.Backoff`); refused credentials (CONNACK 4 or 5) stop that loop
and surface as `EnosAuthError`. `EnosClient` adds the OTA messages on top.

Nothing here logs the device secret or the login password (the sign).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
import contextlib
from functools import partial
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from .errors import EnosAuthError, EnosConnectionError, EnosError, EnosTimeoutError
from .listeners import Listeners
from .signing import EnosCredentials, sign_login
from .timing import DEFAULT_TIMING, EnosTiming
from .transport import LoopDriver, new_paho_client, tls_context

if TYPE_CHECKING:
    from paho.mqtt.properties import Properties

_LOGGER = logging.getLogger(__name__)

_CLOSE_GRACE: Final = 1.0
#: CONNACK 4 and 5 (MQTT 3.1.1), as paho names them in MQTT 5 terms.
_AUTH_REFUSED: Final = frozenset({134, 135})


class MqttConnection(Listeners, ABC):
    """The connection under `EnosClient`: login, subscriptions, reconnects."""

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
        super().__init__()
        self.host = host
        self.port = port
        self._credentials = credentials
        self._tls = tls
        self._ca_file = ca_file
        self._timing = timing
        self._pk = credentials.product_key
        self._dk = credentials.device_key
        self._driver: LoopDriver | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._mqttc: mqtt.Client | None = None
        self._connected = False
        self._closing = False
        self._last_timestamp = 0
        self._last_error: EnosError | None = None
        self._connack: asyncio.Future[None] | None = None
        self._acks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._reconnect_task: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()

    @abstractmethod
    def subscriptions(self) -> list[str]:
        """Return the topics subscribed on every connect."""

    @abstractmethod
    def _handle_message(self, topic: str, payload: bytes) -> None:
        """Handle a message on a subscribed topic."""

    @abstractmethod
    def _fail_waiters(self, error: EnosConnectionError) -> None:
        """Fail what waits for an answer on the connection that is gone."""

    @property
    def connected(self) -> bool:
        """Return whether the device is logged in and subscribed."""
        return self._connected

    @property
    def last_error(self) -> EnosError | None:
        """Return why the last connection attempt failed or the connection was lost."""
        return self._last_error

    @property
    def reconnecting(self) -> bool:
        """Return whether a background reconnect is under way."""
        return self._reconnect_task is not None and not self._reconnect_task.done()

    # ------------------------------------------------------------ connect / close

    async def connect(self) -> None:
        """Log in and subscribe; from then on, reconnect in the background.

        Raises `EnosAuthError` when the broker refuses the credentials,
        `EnosConnectionError` (`EnosTimeoutError`) when it cannot be reached.
        """
        async with self._connect_lock:
            loop = asyncio.get_running_loop()
            if self._driver is None or self._driver.loop is not loop:
                self._driver = LoopDriver(
                    loop, self._timing.misc_interval, self._socket_closed
                )
            self._closing = False
            if self._connected:
                return
            await self._cancel_reconnect()
            try:
                await self._connect_once()
            except EnosError as err:
                self._last_error = err
                raise

    async def disconnect(self) -> None:
        """Close the connection and stop reconnecting."""
        self._closing = True
        await self._cancel_reconnect()
        async with self._connect_lock:
            client = self._mqttc
            if client is not None:
                await self._running_driver().close(
                    client, graceful=self._connected, grace=_CLOSE_GRACE
                )
            self._mqttc = None
            self._set_disconnected(EnosConnectionError("client closed"))
            await self._cancel_tasks()
        _LOGGER.debug("Disconnected from %s:%s", self.host, self.port)

    async def _cancel_reconnect(self) -> None:
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _next_timestamp(self) -> int:
        """Return epoch milliseconds, strictly increasing per client."""
        self._last_timestamp = max(int(time.time() * 1000), self._last_timestamp + 1)
        return self._last_timestamp

    async def _connect_once(self) -> None:
        """Make one connection attempt with a fresh timestamp and sign."""
        driver = self._running_driver()
        loop = driver.loop
        if self._tls and self._ssl_context is None:
            try:
                self._ssl_context = await tls_context(loop, self._ca_file)
            except (OSError, ValueError) as err:  # missing or unreadable CA file
                raise EnosConnectionError(f"TLS setup failed: {err}") from err
        login = sign_login(self._credentials, self._next_timestamp())
        client = new_paho_client(
            login,
            connect_timeout=self._timing.connect_timeout,
            ssl_context=self._ssl_context,
        )
        driver.attach(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._mqttc = client
        self._connack = loop.create_future()
        _LOGGER.debug(
            "Connecting to %s:%s (%s) as %s, client id %s",
            self.host,
            self.port,
            "TLS" if self._tls else "TCP",
            login.username,
            login.client_id,
        )
        connect_call = loop.run_in_executor(
            None,
            partial(client.connect, self.host, self.port, self._timing.keepalive),
        )
        try:
            try:  # paho raises on failure; the CONNECT is queued on success
                await asyncio.shield(connect_call)
            except (OSError, ValueError) as err:  # refused, DNS, TLS verification
                raise EnosConnectionError(
                    f"cannot connect to {self.host}:{self.port}: {err}"
                ) from err
            await self._wait(self._connack, "CONNACK")
            await self._subscribe(client)
        except asyncio.CancelledError:
            # The executor may still connect: close what it opens, and take its
            # error (a refused connect) so that it is not reported as unhandled.
            connect_call.add_done_callback(partial(_abandon, driver, client))
            raise
        except EnosError:
            driver.hard_close(client)
            raise
        self._connected = True
        self._last_error = None
        _LOGGER.info(
            "Connected to EnOS %s:%s as %s", self.host, self.port, login.username
        )
        self._notify_connected()

    async def _wait[T](self, future: asyncio.Future[T], what: str) -> T:
        try:
            async with asyncio.timeout(self._timing.connect_timeout):
                return await future
        except TimeoutError as err:
            raise EnosTimeoutError(
                f"{self.host}:{self.port}: no {what} in {self._timing.connect_timeout} s"
            ) from err

    async def _subscribe(self, client: mqtt.Client) -> None:
        topics = self.subscriptions()
        result, mid = client.subscribe([(topic, 1) for topic in topics])
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise EnosConnectionError(f"subscribe failed: {mqtt.error_string(result)}")
        future: asyncio.Future[list[ReasonCode]] = (
            self._running_driver().loop.create_future()
        )
        self._acks[mid] = future
        try:
            granted = await self._wait(future, "SUBACK")
        finally:
            self._acks.pop(mid, None)
        refused = [
            t for t, code in zip(topics, granted, strict=False) if code.is_failure
        ]
        if refused:
            _LOGGER.warning("The broker refused subscriptions to %s", refused)

    def _running_driver(self) -> LoopDriver:
        if self._driver is None:
            raise EnosConnectionError("not connected")
        return self._driver

    def _schedule_reconnect(self) -> None:
        if self._closing or self.reconnecting:
            return
        self._reconnect_task = self._running_driver().loop.create_task(
            self._reconnect_loop(), name=f"enos reconnect {self._pk}/{self._dk}"
        )

    async def _reconnect_loop(self) -> None:
        refused: EnosAuthError | None = None
        delays = self._timing.reconnect_backoff.delays()
        attempt = 0
        while refused is None:
            delay = next(delays)
            attempt += 1
            _LOGGER.debug(
                "Reconnecting to %s:%s in %.2f s", self.host, self.port, delay
            )
            await asyncio.sleep(delay)
            try:
                async with self._connect_lock:
                    await self._connect_once()
            except EnosAuthError as err:
                refused = err
            except EnosConnectionError as err:
                self._last_error = err
                _LOGGER.debug("Reconnect attempt %s failed: %s", attempt, err)
            else:
                return
        self._last_error = refused
        _LOGGER.error(
            "EnOS %s:%s refused the device's credentials; not retrying: %s",
            self.host,
            self.port,
            refused,
        )
        self._notify_disconnected(refused)

    def _set_disconnected(self, error: EnosConnectionError) -> bool:
        """Fail everything waiting on the connection; return whether it was up."""
        for ack in self._acks.values():
            if not ack.done():
                ack.set_exception(error)
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(error)
        was_connected, self._connected = self._connected, False
        self._fail_waiters(error)
        return was_connected

    def _socket_closed(self, client: mqtt.Client) -> None:
        self._connection_lost(client, EnosConnectionError("connection closed"))

    def _connection_lost(self, client: mqtt.Client, error: EnosConnectionError) -> None:
        if client is not self._mqttc:
            return
        if not self._set_disconnected(error) or self._closing:
            return
        self._last_error = error
        _LOGGER.info(
            "Lost the connection to EnOS %s:%s (%s); reconnecting",
            self.host,
            self.port,
            error,
        )
        self._notify_disconnected(error)
        self._schedule_reconnect()

    # ------------------------------------------------------------ paho callbacks

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        future = self._connack
        if client is not self._mqttc or future is None or future.done():
            return
        if not reason_code.is_failure:
            future.set_result(None)
            return
        where = f"{self.host}:{self.port}"
        future.set_exception(
            EnosAuthError(f"{where} refused the login: {reason_code}")
            if reason_code.value in _AUTH_REFUSED
            else EnosConnectionError(f"{where} refused the connection: {reason_code}")
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._connection_lost(
            client, EnosConnectionError(f"disconnected: {reason_code}")
        )

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        future = self._acks.get(mid)
        if future is not None and not future.done():
            future.set_result(reason_codes)

    def _on_message(
        self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        if client is self._mqttc:
            self._handle_message(message.topic, message.payload)

    # ------------------------------------------------------------ messages

    def _publish(self, topic: str, payload: bytes) -> None:
        client = self._mqttc
        if not self._connected or client is None:
            raise EnosConnectionError(f"not connected to {self.host}:{self.port}")
        info = client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise EnosConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")


def _abandon(
    driver: LoopDriver, client: mqtt.Client, connect_call: asyncio.Future[Any]
) -> None:
    """Retire the client of a cancelled attempt once its connect call ended."""
    if not connect_call.cancelled():
        connect_call.exception()
    driver.hard_close(client)
