"""paho-mqtt 2.x driven from an asyncio loop, the way Home Assistant's MQTT does it.

The blocking connect (TCP, TLS handshake) runs in an executor; the socket is then
read and written through `loop.add_reader` / `loop.add_writer` (paho's socket
callbacks), and a timer calls `loop_misc` about once a second for keepalive. Each
connection attempt uses a new paho client (the EnOS client id carries a timestamp).

No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from functools import partial
import ssl
import threading
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from .signing import LoginFields

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike


def new_paho_client(
    login: LoginFields, *, connect_timeout: float, ssl_context: ssl.SSLContext | None
) -> mqtt.Client:
    """Return an MQTT 3.1.1 clean-session client for one connection attempt."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=login.client_id,
        clean_session=True,
        protocol=MQTTProtocolVersion.MQTTv311,
        reconnect_on_failure=False,
    )
    client.username_pw_set(login.username, login.password)
    client.connect_timeout = connect_timeout
    if ssl_context is not None:
        client.tls_set_context(ssl_context)
    return client


async def tls_context(
    loop: asyncio.AbstractEventLoop, ca_file: str | None
) -> ssl.SSLContext:
    """Return a context that verifies the broker (built in the executor: file I/O)."""
    return await loop.run_in_executor(
        None, partial(ssl.create_default_context, cafile=ca_file)
    )


class LoopDriver:
    """Reads, writes and ticks paho clients on one asyncio loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        misc_interval: float,
        on_closed: Callable[[mqtt.Client], None],
    ) -> None:
        """Drive clients on `loop`; `on_closed(client)` when a socket closes."""
        self.loop = self._loop = loop
        self._thread = threading.get_ident()
        self._misc_interval = misc_interval
        self._on_closed = on_closed
        self._misc_timers: dict[mqtt.Client, asyncio.TimerHandle] = {}
        self._closed_sockets: dict[mqtt.Client, asyncio.Future[None]] = {}

    def attach(self, client: mqtt.Client) -> None:
        """Take over `client`'s socket callbacks."""
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write

    async def close(self, client: mqtt.Client, *, graceful: bool, grace: float) -> None:
        """Retire `client`; when `graceful`, send DISCONNECT and wait up to `grace` s."""
        if graceful and client.socket() is not None:
            closed = self._loop.create_future()
            self._closed_sockets[client] = closed
            client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await closed
            self._closed_sockets.pop(client, None)
        self.hard_close(client)

    def hard_close(self, client: mqtt.Client) -> None:
        """Retire a client: drop its socket without an MQTT DISCONNECT, if open.

        Its callbacks are detached too: paho's `__del__` closes the socket it still
        holds and would call them, from whatever thread collects it.
        """
        if (timer := self._misc_timers.pop(client, None)) is not None:
            timer.cancel()
        client.on_socket_open = client.on_socket_close = None
        client.on_socket_register_write = client.on_socket_unregister_write = None
        client.on_connect = client.on_disconnect = None
        client.on_subscribe = client.on_message = None
        sock = client.socket()
        if sock is None:
            return
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)
        sock.close()

    # ------------------------------------------------------------ paho callbacks

    def _in_loop(self, func: Callable[..., None], *args: Any) -> None:
        """Run `func` now on the loop thread, or hand it to the loop from another."""
        if threading.get_ident() == self._thread:
            func(*args)
        else:  # paho calls socket callbacks from the executor while connecting
            self._loop.call_soon_threadsafe(func, *args)

    def _on_socket_open(
        self, client: mqtt.Client, _userdata: Any, sock: SocketLike
    ) -> None:
        self._in_loop(self._async_socket_open, client, sock)

    def _async_socket_open(self, client: mqtt.Client, sock: SocketLike) -> None:
        self._loop.add_reader(sock, self._on_readable, client)
        self._misc_timers[client] = self._loop.call_later(
            self._misc_interval, self._misc, client
        )
        self._on_readable(client)

    def _on_socket_close(
        self, client: mqtt.Client, _userdata: Any, sock: SocketLike
    ) -> None:
        self._in_loop(self._async_socket_close, client, sock)

    def _async_socket_close(self, client: mqtt.Client, sock: SocketLike) -> None:
        if sock.fileno() >= 0:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        if (timer := self._misc_timers.pop(client, None)) is not None:
            timer.cancel()
        if (closed := self._closed_sockets.pop(client, None)) is not None:
            closed.set_result(None)
        self._on_closed(client)

    def _on_socket_register_write(
        self, client: mqtt.Client, _userdata: Any, sock: SocketLike
    ) -> None:
        self._in_loop(self._async_register_write, client, sock)

    def _async_register_write(self, client: mqtt.Client, sock: SocketLike) -> None:
        if sock.fileno() >= 0:
            self._loop.add_writer(sock, self._on_writable, client)

    def _on_socket_unregister_write(
        self, _client: mqtt.Client, _userdata: Any, sock: SocketLike
    ) -> None:
        self._in_loop(self._async_unregister_write, sock)

    def _async_unregister_write(self, sock: SocketLike) -> None:
        if sock.fileno() >= 0:
            self._loop.remove_writer(sock)

    @staticmethod
    def _on_readable(client: mqtt.Client) -> None:
        result = client.loop_read()
        # TLS may hold whole packets already decrypted, which select() cannot see.
        while result == MQTTErrorCode.MQTT_ERR_SUCCESS:
            sock = client.socket()
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                break
            result = client.loop_read()

    @staticmethod
    def _on_writable(client: mqtt.Client) -> None:
        client.loop_write()

    def _misc(self, client: mqtt.Client) -> None:
        self._misc_timers.pop(client, None)
        if client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._misc_timers[client] = self._loop.call_later(
                self._misc_interval, self._misc, client
            )
