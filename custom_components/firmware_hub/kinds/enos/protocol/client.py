"""EnOS cloud OTA over MQTT 3.1.1, as the device side: login, messages, typed errors.

Wire only, no Home Assistant imports. Facts from `reference/enos.md` and seed 001:

- Login (secure mode 2): clientId `{cid}|securemode=2,signmethod=hmac{m},timestamp={ms}|`,
  username `{deviceKey}&{productKey}`, password = digest (not an HMAC, despite the
  names) of `clientId{cid}deviceKey{dk}productKey{pk}timestamp{ms}{secret}`. A fresh
  timestamp and sign are computed for every connection attempt.
- Requests `{"id", "version": "1.0", "method", "params"}` on `/sys/{pk}/{dk}/<topic>`,
  replies `{"id", "code", "data", "message"}` on `<topic>_reply`; the `_reply` topics
  and the downstream `ota/device/upgrade` push are subscribed on every connect.

The MQTT client is paho-mqtt 2.x (callback API v2) driven from the asyncio loop the
way Home Assistant core's MQTT client does it: the blocking connect (TCP, TLS
handshake) runs in an executor, the socket is then read and written through
`loop.add_reader` / `loop.add_writer` (paho's socket callbacks), and a timer calls
`loop_misc` about once a second for keepalive. Each connection attempt uses a new
paho client, since the client id carries the timestamp. Once connected, a lost
connection is re-established in the background with exponential backoff and jitter;
refused credentials (CONNACK 4 or 5) stop that loop and surface as `EnosAuthError`.

Nothing here logs the device secret or the login password (the sign).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
import contextlib
from dataclasses import dataclass, field
from functools import partial
import hashlib
import inspect
import itertools
import json
import logging
import random
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike
    from paho.mqtt.properties import Properties

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT_TLS: Final = 18883
DEFAULT_PORT_TCP: Final = 11883

#: Sign methods as configured → the name on the wire (`signmethod=` in the clientId).
SIGN_METHODS: Final[Mapping[str, str]] = {
    "sha256": "hmacsha256",
    "sha1": "hmacsha1",
    "md5": "hmacmd5",
}
#: Firmware checksum algorithms EnOS uses in offers (`signMethod`), with hex lengths.
OFFER_SIGN_METHODS: Final[Mapping[str, int]] = {"md5": 32, "sha256": 64}

PROTOCOL_VERSION: Final = "1.0"
CODE_SUCCESS: Final = 200
#: User error codes are >= 2000; this one answers a push the device cannot use.
CODE_INVALID_REQUEST: Final = 2000

STEP_DONE: Final = 100
STEP_UPGRADE_FAILED: Final = -1
STEP_DOWNLOAD_FAILED: Final = -2
STEP_VERIFY_FAILED: Final = -3
STEP_BURN_FAILED: Final = -4
STEP_IGNORED: Final = -5

TOPIC_INFORM: Final = "ota/device/inform"
TOPIC_UPGRADE: Final = "ota/device/upgrade"
TOPIC_PROGRESS: Final = "ota/device/progress"
TOPIC_GETVERSION: Final = "ota/device/getversion"
REPLY_SUFFIX: Final = "_reply"

METHOD_INFORM: Final = "ota.device.inform"
METHOD_UPGRADE: Final = "ota.device.upgrade"
METHOD_PROGRESS: Final = "ota.device.progress"
METHOD_GETVERSION: Final = "ota.device.getversion"

#: The `_reply` topics of the requests this client sends.
REQUEST_TOPICS: Final = (TOPIC_INFORM, TOPIC_PROGRESS, TOPIC_GETVERSION)

_MAX_CID_LENGTH: Final = 64
_MAX_BACKOFF_EXPONENT: Final = 30
_CLOSE_GRACE: Final = 1.0
_RANDOM: Final = random.SystemRandom()


class EnosError(Exception):
    """Base class of every error the EnOS client raises."""


class EnosConnectionError(EnosError):
    """The broker could not be reached, or the connection is gone."""


class EnosTimeoutError(EnosConnectionError):
    """The broker (or the cloud behind it) did not answer in time."""


class EnosAuthError(EnosError):
    """The broker refused the device's credentials (CONNACK 4 or 5)."""


class EnosPayloadError(EnosError):
    """A message that is not what EnOS specifies (bad JSON, fields missing)."""

    def __init__(self, message: str, *, msg_id: str | None = None) -> None:
        """Initialize with the message id when it could be read."""
        super().__init__(message)
        self.msg_id = msg_id


class EnosReplyError(EnosError):
    """The cloud answered a request with a code other than 200."""

    def __init__(self, method: str, code: int, message: str | None) -> None:
        """Initialize with the reply's code and message."""
        super().__init__(f"{method}: code {code} ({message or 'no message'})")
        self.code = code
        self.message = message


# ---------------------------------------------------------------------- login


@dataclass(frozen=True, slots=True)
class EnosCredentials:
    """A static device's identity (secure mode 2)."""

    product_key: str
    device_key: str
    device_secret: str = field(repr=False)
    sign_method: str = "sha256"
    #: The id before `|` in the clientId (at most 64 characters); the device key if unset.
    client_cid: str | None = None

    def __post_init__(self) -> None:
        """Refuse what EnOS would refuse anyway."""
        if self.sign_method not in SIGN_METHODS:
            raise ValueError(f"unsupported sign method {self.sign_method!r}")
        if not self.product_key or not self.device_key:
            raise ValueError("product key and device key are required")
        if len(self.cid) > _MAX_CID_LENGTH:
            raise ValueError("client id longer than 64 characters")

    @property
    def cid(self) -> str:
        """Return the id used in the clientId and in the sign."""
        return self.client_cid or self.device_key


@dataclass(frozen=True, slots=True)
class LoginFields:
    """The CONNECT fields of one connection attempt."""

    client_id: str
    username: str
    password: str = field(repr=False)
    timestamp: int


def compute_sign(
    credentials: EnosCredentials, timestamp: int, *, cid: str | None = None
) -> str:
    """Return the login password: a digest of the sorted parameters and the secret.

    sha256 and sha1 in upper-case hex (as the EnOS documentation says), md5 in
    lower-case hex (as the SDKs send it); EnOS compares the hex case-insensitively.
    """
    content = (
        f"clientId{cid or credentials.cid}"
        f"deviceKey{credentials.device_key}"
        f"productKey{credentials.product_key}"
        f"timestamp{timestamp}"
        f"{credentials.device_secret}"
    ).encode()
    if credentials.sign_method == "sha256":
        return hashlib.sha256(content).hexdigest().upper()
    if credentials.sign_method == "sha1":
        return hashlib.sha1(content, usedforsecurity=False).hexdigest().upper()
    return hashlib.md5(content, usedforsecurity=False).hexdigest()


def sign_login(credentials: EnosCredentials, timestamp: int) -> LoginFields:
    """Return clientId, username and password for a connection at `timestamp` (ms)."""
    method = SIGN_METHODS[credentials.sign_method]
    return LoginFields(
        client_id=(
            f"{credentials.cid}|securemode=2,signmethod={method},timestamp={timestamp}|"
        ),
        username=f"{credentials.device_key}&{credentials.product_key}",
        password=compute_sign(credentials, timestamp),
        timestamp=timestamp,
    )


# ---------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class FirmwareOffer:
    """One firmware the cloud offers (an upgrade push or a getversion entry)."""

    version: str
    file_url: str
    file_size: int
    #: Hex checksum of the file, lower case.
    sign: str
    #: `md5` or `sha256`.
    sign_method: str
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Return the offer in wire form (extra fields kept); `parse_offer` reads it."""
        return {
            **self.raw,
            "version": self.version,
            "sign": self.sign,
            "signMethod": self.sign_method,
            "fileUrl": self.file_url,
            "fileSize": self.file_size,
        }


@dataclass(frozen=True, slots=True)
class EnosReply:
    """A reply envelope."""

    msg_id: str
    code: int
    data: Any
    message: str | None


def _msg_id(value: Any) -> str | None:
    """Return a message id (string or Long on the wire) as a string."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as err:
        raise EnosPayloadError(f"{what}: invalid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise EnosPayloadError(f"{what}: not a JSON object")
    return doc


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise EnosPayloadError(f"offer without {key}")
    return value.strip()


def _size(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise EnosPayloadError(f"offer with an invalid fileSize: {value!r}")
    return value


def parse_offer(doc: Any) -> FirmwareOffer:
    """Read one firmware object (`version`, `sign`, `signMethod`, `fileUrl`, `fileSize`)."""
    if not isinstance(doc, Mapping):
        raise EnosPayloadError("offer is not an object")
    sign_method = _text(doc, "signMethod").lower()
    if sign_method not in OFFER_SIGN_METHODS:
        raise EnosPayloadError(f"offer with an unsupported signMethod {sign_method!r}")
    sign = _text(doc, "sign").lower()
    if len(sign) != OFFER_SIGN_METHODS[sign_method] or any(
        c not in "0123456789abcdef" for c in sign
    ):
        raise EnosPayloadError(f"offer whose sign is not a {sign_method} hex digest")
    return FirmwareOffer(
        version=_text(doc, "version"),
        file_url=_text(doc, "fileUrl"),
        file_size=_size(doc.get("fileSize")),
        sign=sign,
        sign_method=sign_method,
        raw=dict(doc),
    )


def parse_offer_list(data: Any) -> list[FirmwareOffer]:
    """Read a getversion reply's `data`: a list of firmware objects.

    No data means no offer; entries that cannot be used are skipped with a warning.
    """
    if data is None:
        return []
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        raise EnosPayloadError("getversion data is not a list")
    offers: list[FirmwareOffer] = []
    for entry in data:
        try:
            offers.append(parse_offer(entry))
        except EnosPayloadError as err:
            _LOGGER.warning("Skipping an unusable firmware offer: %s", err)
    return offers


def parse_reply(payload: bytes) -> EnosReply:
    """Read a reply envelope `{"id", "code", "data", "message"}`."""
    doc = _json_object(payload, "reply")
    msg_id = _msg_id(doc.get("id"))
    code = doc.get("code")
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        code = int(code)
    if msg_id is None or not isinstance(code, int) or isinstance(code, bool):
        raise EnosPayloadError("reply without id or code")
    message = doc.get("message")
    return EnosReply(
        msg_id=msg_id,
        code=code,
        data=doc.get("data"),
        message=message if isinstance(message, str) else None,
    )


def parse_upgrade_push(payload: bytes) -> tuple[str | None, FirmwareOffer]:
    """Read an `ota.device.upgrade` push into (message id, offer).

    Raises `EnosPayloadError` carrying the message id when it could be read, so the
    device can still answer with an error code.
    """
    doc = _json_object(payload, "upgrade push")
    msg_id = _msg_id(doc.get("id"))
    method = doc.get("method")
    if method is not None and method != METHOD_UPGRADE:
        raise EnosPayloadError(f"upgrade push with method {method!r}", msg_id=msg_id)
    try:
        return msg_id, parse_offer(doc.get("params"))
    except EnosPayloadError as err:
        raise EnosPayloadError(f"upgrade push: {err}", msg_id=msg_id) from err


def build_request(msg_id: str, method: str, params: Mapping[str, Any]) -> bytes:
    """Return a request envelope."""
    return json.dumps(
        {
            "id": msg_id,
            "version": PROTOCOL_VERSION,
            "method": method,
            "params": dict(params),
        },
        separators=(",", ":"),
    ).encode()


def build_reply(
    msg_id: str | None, code: int, message: str = "", data: Any = None
) -> bytes:
    """Return a reply envelope (`data` defaults to `{}`)."""
    body: dict[str, Any] = {} if msg_id is None else {"id": msg_id}
    body |= {"code": code, "data": {} if data is None else data}
    if message:
        body["message"] = message
    return json.dumps(body, separators=(",", ":")).encode()


def device_topic(product_key: str, device_key: str, suffix: str) -> str:
    """Return `/sys/{pk}/{dk}/{suffix}`."""
    return f"/sys/{product_key}/{device_key}/{suffix}"


# ---------------------------------------------------------------------- client


@dataclass(frozen=True, slots=True)
class EnosTiming:
    """Timeouts and reconnect pacing (seconds)."""

    connect_timeout: float = 10.0
    request_timeout: float = 10.0
    keepalive: int = 60
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    #: Up to this fraction of each reconnect delay is taken off at random.
    reconnect_jitter: float = 0.5
    misc_interval: float = 1.0


DEFAULT_TIMING: Final = EnosTiming()

type UpgradeHandler = Callable[[str | None, FirmwareOffer | EnosPayloadError], object]
"""Called with (message id, offer) for a push, or (id, error) for a malformed one.

May return an awaitable; it then runs as a task the client owns.
"""


class EnosClient:
    """One EnOS device's MQTT connection and OTA messages."""

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
        self.host = host
        self.port = port
        self._credentials = credentials
        self._tls = tls
        self._ca_file = ca_file
        self._timing = timing
        self._pk = credentials.product_key
        self._dk = credentials.device_key

        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._mqttc: mqtt.Client | None = None
        self._connected = False
        self._closing = False
        self._last_timestamp = 0
        self._last_error: EnosError | None = None
        self._ids = itertools.count(1)

        self._connack: asyncio.Future[None] | None = None
        self._acks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._pending: dict[tuple[str, str], asyncio.Future[EnosReply]] = {}
        self._misc_timers: dict[mqtt.Client, asyncio.TimerHandle] = {}
        self._closed_sockets: dict[mqtt.Client, asyncio.Future[None]] = {}
        self._reconnect_task: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self._tasks: set[asyncio.Future[Any]] = set()

        self._on_connected: list[Callable[[], object]] = []
        self._on_disconnected: list[Callable[[EnosError], object]] = []
        self._upgrade_handler: UpgradeHandler | None = None

    # ------------------------------------------------------------ state and hooks

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

    def set_upgrade_handler(self, handler: UpgradeHandler | None) -> None:
        """Set the handler of `ota.device.upgrade` pushes (see `UpgradeHandler`).

        The handler answers with `reply_upgrade` (200 at once, or an error code >=
        2000 for a push it cannot use).
        """
        self._upgrade_handler = handler

    # ------------------------------------------------------------ connect / close

    async def connect(self) -> None:
        """Log in and subscribe; from then on, reconnect in the background.

        Raises `EnosAuthError` when the broker refuses the credentials,
        `EnosConnectionError` (`EnosTimeoutError`) when it cannot be reached.
        """
        async with self._connect_lock:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
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
                if self._connected and client.socket() is not None:
                    closed = self._socket_closed_future(client)
                    client.disconnect()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_CLOSE_GRACE):
                            await closed
                    self._closed_sockets.pop(client, None)
                self._hard_close(client)
            self._mqttc = None
            self._set_disconnected(EnosConnectionError("client closed"))
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
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

    def _make_ssl_context(self) -> ssl.SSLContext:
        """Return a context that verifies the broker (runs in an executor: file I/O)."""
        return ssl.create_default_context(cafile=self._ca_file)

    def _new_client(self, login: LoginFields) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=login.client_id,
            clean_session=True,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
        )
        client.username_pw_set(login.username, login.password)
        client.connect_timeout = self._timing.connect_timeout
        if self._ssl_context is not None:
            client.tls_set_context(self._ssl_context)
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    async def _connect_once(self) -> None:
        """Make one connection attempt with a fresh timestamp and sign."""
        loop = self._running_loop()
        if self._tls and self._ssl_context is None:
            try:
                self._ssl_context = await loop.run_in_executor(
                    None, self._make_ssl_context
                )
            except (OSError, ValueError) as err:  # missing or unreadable CA file
                raise EnosConnectionError(f"TLS setup failed: {err}") from err
        login = sign_login(self._credentials, self._next_timestamp())
        client = self._new_client(login)
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
            if connect_call.done():
                self._hard_close(client)
            else:  # the executor still connects: close what it opens
                connect_call.add_done_callback(lambda _: self._hard_close(client))
            raise
        except EnosError:
            self._hard_close(client)
            raise
        self._connected = True
        self._last_error = None
        _LOGGER.info(
            "Connected to EnOS %s:%s as %s", self.host, self.port, login.username
        )
        for callback in list(self._on_connected):
            self._invoke(callback)

    async def _wait[T](self, future: asyncio.Future[T], what: str) -> T:
        try:
            async with asyncio.timeout(self._timing.connect_timeout):
                return await future
        except TimeoutError as err:
            raise EnosTimeoutError(
                f"{self.host}:{self.port}: no {what} in {self._timing.connect_timeout} s"
            ) from err

    def subscriptions(self) -> list[str]:
        """Return the topics subscribed on every connect."""
        return [
            *(
                device_topic(self._pk, self._dk, topic + REPLY_SUFFIX)
                for topic in REQUEST_TOPICS
            ),
            device_topic(self._pk, self._dk, TOPIC_UPGRADE),
        ]

    async def _subscribe(self, client: mqtt.Client) -> None:
        topics = self.subscriptions()
        result, mid = client.subscribe([(topic, 1) for topic in topics])
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise EnosConnectionError(f"subscribe failed: {mqtt.error_string(result)}")
        future: asyncio.Future[list[ReasonCode]] = self._running_loop().create_future()
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

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise EnosConnectionError("not connected")
        return self._loop

    def _schedule_reconnect(self) -> None:
        if self._closing or self.reconnecting:
            return
        self._reconnect_task = self._running_loop().create_task(
            self._reconnect_loop(), name=f"enos reconnect {self._pk}/{self._dk}"
        )

    def backoff_delay(self, attempt: int) -> float:
        """Return the wait before reconnect attempt `attempt` (0-based)."""
        timing = self._timing
        base = min(
            timing.reconnect_max,
            timing.reconnect_min * (1 << min(attempt, _MAX_BACKOFF_EXPONENT)),
        )
        return base * (1 - timing.reconnect_jitter * _RANDOM.random())

    async def _reconnect_loop(self) -> None:
        attempt = 0
        refused: EnosAuthError | None = None
        while refused is None:
            delay = self.backoff_delay(attempt)
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
        for callback in list(self._on_disconnected):
            self._invoke(callback, refused)

    def _set_disconnected(self, error: EnosConnectionError) -> bool:
        """Fail everything waiting on the connection; return whether it was up."""
        for ack in self._acks.values():
            if not ack.done():
                ack.set_exception(error)
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(error)
        was_connected, self._connected = self._connected, False
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(error)
        return was_connected

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
        for callback in list(self._on_disconnected):
            self._invoke(callback, error)
        self._schedule_reconnect()

    def _hard_close(self, client: mqtt.Client) -> None:
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
        loop = self._running_loop()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(sock)
        with contextlib.suppress(ValueError, OSError):
            loop.remove_writer(sock)
        sock.close()

    def _socket_closed_future(self, client: mqtt.Client) -> asyncio.Future[None]:
        future = self._running_loop().create_future()
        self._closed_sockets[client] = future
        return future

    # ------------------------------------------------------------ paho callbacks

    def _in_loop(self, func: Callable[..., None], *args: Any) -> None:
        """Run `func` now on the loop thread, or hand it to the loop from another."""
        if threading.get_ident() == self._loop_thread:
            func(*args)
        else:  # paho calls socket callbacks from the executor while connecting
            self._running_loop().call_soon_threadsafe(func, *args)

    def _on_socket_open(
        self, client: mqtt.Client, _userdata: Any, sock: SocketLike
    ) -> None:
        self._in_loop(self._async_socket_open, client, sock)

    def _async_socket_open(self, client: mqtt.Client, sock: SocketLike) -> None:
        loop = self._running_loop()
        loop.add_reader(sock, self._on_readable, client)
        self._misc_timers[client] = loop.call_later(
            self._timing.misc_interval, self._misc, client
        )
        self._on_readable(client)

    def _on_socket_close(
        self, client: mqtt.Client, _userdata: Any, sock: SocketLike
    ) -> None:
        self._in_loop(self._async_socket_close, client, sock)

    def _async_socket_close(self, client: mqtt.Client, sock: SocketLike) -> None:
        loop = self._running_loop()
        if sock.fileno() >= 0:
            loop.remove_reader(sock)
            loop.remove_writer(sock)
        if (timer := self._misc_timers.pop(client, None)) is not None:
            timer.cancel()
        if (closed := self._closed_sockets.pop(client, None)) is not None:
            closed.set_result(None)
        self._connection_lost(client, EnosConnectionError("connection closed"))

    def _on_socket_register_write(
        self, client: mqtt.Client, _userdata: Any, sock: SocketLike
    ) -> None:
        self._in_loop(self._async_register_write, client, sock)

    def _async_register_write(self, client: mqtt.Client, sock: SocketLike) -> None:
        if sock.fileno() >= 0:
            self._running_loop().add_writer(sock, self._on_writable, client)

    def _on_socket_unregister_write(
        self, _client: mqtt.Client, _userdata: Any, sock: SocketLike
    ) -> None:
        self._in_loop(self._async_unregister_write, sock)

    def _async_unregister_write(self, sock: SocketLike) -> None:
        if sock.fileno() >= 0:
            self._running_loop().remove_writer(sock)

    def _on_readable(self, client: mqtt.Client) -> None:
        result = client.loop_read()
        # TLS may hold whole packets already decrypted, which select() cannot see.
        while result == MQTTErrorCode.MQTT_ERR_SUCCESS:
            sock = client.socket()
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                break
            result = client.loop_read()

    def _on_writable(self, client: mqtt.Client) -> None:
        client.loop_write()

    def _misc(self, client: mqtt.Client) -> None:
        self._misc_timers.pop(client, None)
        if client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._misc_timers[client] = self._running_loop().call_later(
                self._timing.misc_interval, self._misc, client
            )

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
        # MQTT 3.1.1 CONNACK 4 and 5, as paho names them in MQTT 5 terms.
        if reason_code.value in (134, 135):
            future.set_exception(
                EnosAuthError(
                    f"{self.host}:{self.port} refused the login: {reason_code}"
                )
            )
        else:
            future.set_exception(
                EnosConnectionError(
                    f"{self.host}:{self.port} refused the connection: {reason_code}"
                )
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
        if client is not self._mqttc:
            return
        topic = message.topic
        if topic == device_topic(self._pk, self._dk, TOPIC_UPGRADE):
            self._handle_upgrade(message.payload)
        else:  # only the `_reply` topics are subscribed besides
            self._handle_reply(topic, message.payload)

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
        result: FirmwareOffer | EnosPayloadError
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

    def _invoke(self, callback: Callable[..., object], *args: Any) -> None:
        """Call a user callback; run what it returns if awaitable; log its errors."""
        try:
            result = callback(*args)
        except Exception:
            _LOGGER.exception("Error in EnOS callback %r", callback)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result, loop=self._running_loop())
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            _LOGGER.error("Error in EnOS callback task: %s", err, exc_info=err)

    # ------------------------------------------------------------ messages

    def _publish(self, topic: str, payload: bytes) -> None:
        client = self._mqttc
        if not self._connected or client is None:
            raise EnosConnectionError(f"not connected to {self.host}:{self.port}")
        info = client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise EnosConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")

    def send(self, topic: str, method: str, params: Mapping[str, Any]) -> None:
        """Publish a request on `/sys/{pk}/{dk}/{topic}` without waiting for a reply."""
        msg_id = str(next(self._ids))
        self._publish(
            device_topic(self._pk, self._dk, topic),
            build_request(msg_id, method, params),
        )

    async def request(
        self,
        topic: str,
        method: str,
        params: Mapping[str, Any],
    ) -> EnosReply:
        """Send a request on `/sys/{pk}/{dk}/{topic}` and wait for its reply.

        Raises `EnosReplyError` for a code other than 200, `EnosTimeoutError` when no
        reply comes within the timing's request timeout, and
        `EnosConnectionError` when not connected or the connection drops meanwhile.
        """
        msg_id = str(next(self._ids))
        full_topic = device_topic(self._pk, self._dk, topic)
        key = (full_topic + REPLY_SUFFIX, msg_id)
        waiter: asyncio.Future[EnosReply] = self._running_loop().create_future()
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

    async def inform(self, version: str, *, wait_reply: bool = True) -> None:
        """Report the installed firmware version (`ota.device.inform`)."""
        params = {"version": version}
        if wait_reply:
            await self.request(TOPIC_INFORM, METHOD_INFORM, params)
        else:
            self.send(TOPIC_INFORM, METHOD_INFORM, params)

    async def get_versions(self) -> list[FirmwareOffer]:
        """Ask the cloud which firmware it offers (`ota.device.getversion`)."""
        reply = await self.request(TOPIC_GETVERSION, METHOD_GETVERSION, {})
        return parse_offer_list(reply.data)

    async def report_progress(
        self, step: int, desc: str = "", *, wait_reply: bool = True
    ) -> None:
        """Report upgrade progress (`ota.device.progress`): 0..100, or a failure < 0."""
        if step > STEP_DONE:
            raise ValueError(f"progress step {step} above 100")
        params = {"step": str(step), "desc": desc}
        if wait_reply:
            await self.request(TOPIC_PROGRESS, METHOD_PROGRESS, params)
        else:
            self.send(TOPIC_PROGRESS, METHOD_PROGRESS, params)

    def reply_upgrade(
        self, msg_id: str | None, code: int = CODE_SUCCESS, message: str = ""
    ) -> None:
        """Answer an upgrade push: 200 accepted, >= 2000 refused (with a message)."""
        self._publish(
            device_topic(self._pk, self._dk, TOPIC_UPGRADE + REPLY_SUFFIX),
            build_reply(msg_id, code, message),
        )
