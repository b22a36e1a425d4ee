"""The Miling WebSocket (1010 → 1011, 1012 → 1013): `MilingClient` and `register_once`.

Wire only, no Home Assistant imports. `ws://host:6007/DevRegister`, JSON text frames:
the device registers (1010 → 1011) on every (re)connect; the server pushes upgrade
requests (1012) the device answers (1013: 0 accepted, -1 package mismatch, -2 too
large).

`MilingClient` keeps the WebSocket up with `websockets`' reconnecting
`async for websocket in connect(...)` iterator (websockets ≥ 17, as the manifest
requires). Reconnect delays come from the shared `Backoff` (capped, 30 s by
default, the first one random to spread devices after a server restart). A server
that accepts and then closes at once is reconnected after the same backoff, never
in a busy loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
import contextlib
import logging
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException
from yarl import URL

from ....core.retry import Backoff
from .errors import (
    MilingConnectionError,
    MilingNotConnectedError,
    MilingProtocolError,
    MilingRegistrationRefusedError,
    MilingTimeoutError,
    UnexpectedMessageError,
)
from .messages import (
    DEFAULT_TIMEOUT,
    DEFAULT_WS_PORT,
    WS_PATH,
    Message,
    Register,
    RegisterReply,
    UpgradeReply,
    UpgradeRequest,
    decode_message,
    encode_message,
)

_LOGGER = logging.getLogger(__name__)

#: Socket messages are a few hundred bytes; anything larger closes the connection.
MAX_WS_MESSAGE_BYTES: Final = 64 * 1024
#: Reconnect delays: the first random in [0, 1) s, then 2 s growing to 30 s.
RECONNECT_BACKOFF: Final = Backoff(initial=2.0, maximum=30.0, factor=1.618, first=1.0)
#: A connection that lived less than this (seconds) counts as a failed attempt.
STABLE_AFTER: Final = 10.0


def build_ws_uri(host: str, ws_port: int = DEFAULT_WS_PORT, path: str = WS_PATH) -> str:
    """Return `ws://host:port/DevRegister` (IPv6 hosts bracketed)."""
    if not host:
        raise ValueError("host must not be empty")
    return str(URL.build(scheme="ws", host=host, port=ws_port, path=path))


def _retry_connect(exc: Exception) -> Exception | None:
    """Reconnect after network and handshake errors; a bad URI is fatal."""
    if isinstance(exc, InvalidURI):
        return exc
    if isinstance(exc, (OSError, TimeoutError, WebSocketException)):
        return None
    return exc


type ConnectedHook = Callable[[], Coroutine[Any, Any, None]]
type MessageHook = Callable[[Message], None]
type InvalidHook = Callable[[str | bytes, MilingProtocolError], None]
type DisconnectedHook = Callable[[], None]


class MilingClient:
    """The device side of the Miling WebSocket, kept connected until `close()`.

    Hooks:
    - `on_connected()` (a coroutine function) runs as a task after every
      (re)connect, typically to `register()`; it is cancelled if the connection drops.
    - `on_message(message)` gets every valid 1011 and 1012, in order, from the
      receive loop: keep it short (start tasks for anything that waits).
    - `on_invalid(frame, error)` gets every frame that is not a valid 1011/1012;
      it is also logged and the connection is kept.
    - `on_disconnected()` runs when an established connection ends.
    Exceptions raised by hooks are logged and do not affect the connection.
    """

    def __init__(  # noqa: PLR0913  # keyword-only hooks and tuning
        self,
        *,
        host: str,
        ws_port: int = DEFAULT_WS_PORT,
        path: str = WS_PATH,
        on_connected: ConnectedHook | None = None,
        on_message: MessageHook | None = None,
        on_invalid: InvalidHook | None = None,
        on_disconnected: DisconnectedHook | None = None,
        backoff: Backoff = RECONNECT_BACKOFF,
        stable_after: float = STABLE_AFTER,
        request_timeout: float = DEFAULT_TIMEOUT,
        open_timeout: float = DEFAULT_TIMEOUT,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 5.0,
    ) -> None:
        """Initialize; nothing connects until `start()`."""
        self.uri = build_ws_uri(host, ws_port, path)
        self._on_connected = on_connected
        self._on_message = on_message
        self._on_invalid = on_invalid
        self._on_disconnected = on_disconnected
        self.backoff = backoff
        self.stable_after = stable_after
        self._request_timeout = request_timeout
        self._connect_options: dict[str, Any] = {
            "open_timeout": open_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_size": MAX_WS_MESSAGE_BYTES,
            "compression": None,
            "proxy": None,
            "process_exception": _retry_connect,
            "reconnect_delays": backoff.delays,
        }
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._waiters: list[tuple[str, asyncio.Future[RegisterReply]]] = []
        self.connections = 0
        """How many connections were established so far."""
        self.last_error: Exception | None = None
        """The fatal error that stopped reconnecting, if any."""

    @property
    def connected(self) -> bool:
        """Return whether the WebSocket is open right now."""
        return self._ws is not None

    def start(self) -> None:
        """Start `run()` in a task of its own."""
        if self._task is not None:
            raise RuntimeError("client already started")
        self._task = asyncio.get_running_loop().create_task(
            self.run(), name=f"miling {self.uri}"
        )

    async def run(self) -> None:
        """Connect and reconnect until `close()` (which cancels this coroutine).

        For callers that own the task, e.g. Home Assistant's
        `entry.async_create_background_task(hass, client.run(), name)`; returns
        early only after a fatal error (`last_error`).
        """
        task = asyncio.current_task()
        if self._task is None:
            self._task = task
        elif self._task is not task:
            raise RuntimeError("client already started")
        self._closing = False
        await self._run()

    async def close(self) -> None:
        """Disconnect and stop reconnecting."""
        self._closing = True
        task, self._task = self._task, None
        ws = self._ws
        if ws is not None:  # a clean close (1000) rather than 1011 from cancelling
            await ws.close()
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        if self._hook_tasks:
            await asyncio.wait(self._hook_tasks)

    async def send(self, message: Message) -> None:
        """Send one message on the socket."""
        ws = self._ws
        if ws is None:
            raise MilingNotConnectedError(f"{self.uri}: not connected")
        try:
            await ws.send(encode_message(message))
        except ConnectionClosed as err:
            raise MilingConnectionError(f"{self.uri}: {err}") from err

    async def register(
        self,
        device_id: str,
        device_type: str,
        prog_version: str,
    ) -> RegisterReply:
        """Send 1010 and wait for the 1011 reply.

        Raises `MilingRegistrationRefusedError` for a non-zero Status,
        `MilingTimeoutError`, `MilingConnectionError` (also when the connection
        drops while waiting), each after at most `request_timeout` seconds.
        """
        message = Register(device_id, device_type, prog_version)
        future: asyncio.Future[RegisterReply] = (
            asyncio.get_running_loop().create_future()
        )
        waiter = (device_id, future)
        self._waiters.append(waiter)
        try:
            await self.send(message)
            async with asyncio.timeout(self._request_timeout):
                reply = await future
        except TimeoutError as err:
            raise MilingTimeoutError(f"{self.uri}: no 1011 reply") from err
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        if not reply.ok:
            raise MilingRegistrationRefusedError(reply.status)
        return reply

    async def reply_upgrade(self, device_id: str, status: int) -> None:
        """Send the 1013 answer to an upgrade request."""
        await self.send(UpgradeReply(device_id, int(status)))

    # ----------------------------------------------------------------- internals

    async def _run(self) -> None:
        short_lived: Iterator[float] | None = None
        loop = asyncio.get_running_loop()
        try:
            async for ws in connect(self.uri, **self._connect_options):
                started = loop.time()
                await self._serve(ws)
                if self._closing:
                    return
                if loop.time() - started >= self.stable_after:
                    short_lived = None
                    continue
                if short_lived is None:
                    short_lived = self.backoff.delays()
                delay = next(short_lived)
                _LOGGER.debug(
                    "%s closed early; reconnecting in %.2f s", self.uri, delay
                )
                await asyncio.sleep(delay)
        except Exception as err:  # noqa: BLE001  # the iterator's fatal errors
            self.last_error = err
            _LOGGER.error("%s: giving up reconnecting: %r", self.uri, err)  # noqa: TRY400

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.connections += 1
        _LOGGER.debug("%s connected", self.uri)
        if self._on_connected is not None:
            task = asyncio.get_running_loop().create_task(
                self._run_hook(self._on_connected), name=f"miling connected {self.uri}"
            )
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)
        try:
            async for frame in ws:
                self._dispatch(frame)
        except ConnectionClosed as err:
            _LOGGER.debug("%s connection lost: %s", self.uri, err)
        finally:
            self._ws = None
            for task in list(self._hook_tasks):
                task.cancel()
            lost = MilingConnectionError(f"{self.uri}: connection closed")
            for future in [f for _i, f in self._waiters if not f.done()]:
                future.set_exception(lost)
            _LOGGER.debug("%s disconnected", self.uri)
            if self._on_disconnected is not None:
                self._call(self._on_disconnected)

    async def _run_hook(self, hook: ConnectedHook) -> None:
        try:
            await hook()
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("%s: on_connected failed", self.uri)

    def _call(self, hook: Callable[..., None], *args: Any) -> None:
        try:
            hook(*args)
        except Exception:
            _LOGGER.exception("%s: hook %s failed", self.uri, hook)

    def _dispatch(self, frame: str | bytes) -> None:
        try:
            message = decode_message(frame)
            if not isinstance(message, (RegisterReply, UpgradeRequest)):
                raise UnexpectedMessageError(
                    f"{int(message.CODE)} is not sent by a server on the socket"
                )
        except MilingProtocolError as err:
            _LOGGER.warning(
                "%s: ignoring invalid frame (%s): %.200r", self.uri, err, frame
            )
            if self._on_invalid is not None:
                self._call(self._on_invalid, frame, err)
            return
        if isinstance(message, RegisterReply):
            self._resolve(message)
        if self._on_message is not None:
            self._call(self._on_message, message)

    def _resolve(self, reply: RegisterReply) -> None:
        """Answer the waiter for this DeviceId, else the oldest.

        The seed's example replies with another DeviceId than it registered.
        """
        pending = [(i, f) for i, f in self._waiters if not f.done()]
        if not pending:
            return
        future = next((f for i, f in pending if i == reply.device_id), pending[0][1])
        future.set_result(reply)


async def register_once(
    host: str,
    ws_port: int,
    device_id: str,
    device_type: str,
    prog_version: str,
    *,
    path: str = WS_PATH,
    request_timeout: float = DEFAULT_TIMEOUT,
) -> RegisterReply:
    """Connect, register once and disconnect: a config flow's validation.

    The whole exchange is bounded by `request_timeout`; invalid frames before the
    1011 are skipped. Raises
    `MilingRegistrationRefusedError`, `MilingTimeoutError`, `MilingConnectionError`.
    """
    uri = build_ws_uri(host, ws_port, path)
    request = encode_message(Register(device_id, device_type, prog_version))
    try:
        async with (
            asyncio.timeout(request_timeout),
            connect(
                uri,
                open_timeout=None,
                close_timeout=1.0,
                max_size=MAX_WS_MESSAGE_BYTES,
                compression=None,
                proxy=None,
            ) as ws,
        ):
            await ws.send(request)
            reply = await _first_register_reply(ws)
    except TimeoutError as err:
        raise MilingTimeoutError(
            f"{uri}: no 1011 reply in {request_timeout} s"
        ) from err
    except (OSError, WebSocketException) as err:
        raise MilingConnectionError(f"{uri}: {type(err).__name__}: {err}") from err
    if not reply.ok:
        raise MilingRegistrationRefusedError(reply.status)
    return reply


async def _first_register_reply(ws: ClientConnection) -> RegisterReply:
    async for frame in ws:
        try:
            message = decode_message(frame)
        except MilingProtocolError as err:
            _LOGGER.warning("register_once: ignoring invalid frame (%s)", err)
            continue
        if isinstance(message, RegisterReply):
            return message
    raise MilingConnectionError("connection closed before the 1011 reply")
