"""Loopback EnOS cloud for the device side of OTA, for tests and manual runs.

Four parts, all on 127.0.0.1:

- ``MosquittoBroker``: a real mosquitto (``/usr/sbin/mosquitto`` or on ``PATH``)
  with a minimal configuration (one listener, anonymous, no persistence).
- ``EnosLoginProxy``: what devices connect to. It reads the MQTT CONNECT packet and
  checks clientId, username and password the way EnOS does for secure mode 2
  (``{cid}|securemode=2,signmethod=hmac{sha256,sha1,md5},timestamp={ms}|``,
  ``{dk}&{pk}``, digest of ``clientId..deviceKey..productKey..timestamp..`` + the
  secret, hex compared case-insensitively). A wrong secret or unknown device gets
  CONNACK 4 (bad user name or password), a disabled device CONNACK 5, a malformed
  clientId CONNACK 2, and the connection is closed; otherwise the bytes are
  forwarded both ways to mosquitto. TLS (a throw-away CA, ``make_test_ca``) on request.
- ``EnosCloud``: the cloud's side of the OTA topics, a paho client on mosquitto. It
  answers ``ota.device.inform``/``progress`` (recording them), answers
  ``ota.device.getversion`` from ``versions``, pushes ``ota.device.upgrade`` offers
  and records their replies. Errors as the EnOS broker gives them: 1220 bad JSON,
  1251 empty payload, 1260 method not matching the topic.
- ``FirmwareFileServer``: aiohttp, serves firmware with Range support and failure
  modes (500 for the first K requests, a connection dropped after N bytes, wrong
  content).

``EnosSimulator`` puts them together. In tests::

    sim = EnosSimulator()
    sim.add_device("pk", "dk", "secret")
    await sim.start()
    ...  # connect a device to sim.host:sim.port
    await sim.restart_broker()  # same ports; logins must be signed anew
    await sim.stop()

From a shell (runs until Ctrl-C)::

    python -m tests.simulators.enos --port 11883 --file-port 18090 --offer 1.1.0

Nothing here imports Home Assistant or the code under test.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
import contextlib
from dataclasses import dataclass, field
import datetime as dt
import hashlib
import hmac
import ipaddress
import itertools
import json
import logging
from pathlib import Path
import re
import shutil
import signal
import socket
import ssl
import struct
import tempfile
from typing import Any, Final

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

_LOGGER = logging.getLogger(__name__)

LOOPBACK: Final = "127.0.0.1"
MOSQUITTO_CANDIDATES: Final = ("/usr/sbin/mosquitto", "mosquitto")

CONNACK_ACCEPTED: Final = 0
CONNACK_UNACCEPTABLE_PROTOCOL: Final = 1
CONNACK_IDENTIFIER_REJECTED: Final = 2
CONNACK_BAD_CREDENTIALS: Final = 4
CONNACK_NOT_AUTHORIZED: Final = 5

CODE_OK: Final = 200
CODE_BAD_JSON: Final = 1220
CODE_EMPTY_PAYLOAD: Final = 1251
CODE_METHOD_MISMATCH: Final = 1260

_SIGN_DIGESTS: Final[Mapping[str, str]] = {
    "hmacsha256": "sha256",
    "hmacsha1": "sha1",
    "hmacmd5": "md5",
}
_CLIENT_ID_RE: Final = re.compile(r"(?P<cid>[^|]{1,64})\|(?P<params>[^|]*)\|")
_OTA_TOPIC_RE: Final = re.compile(
    r"/sys/(?P<pk>[^/]+)/(?P<dk>[^/]+)/ota/device/(?P<name>[a-z_]+)"
)
_METHODS: Final[Mapping[str, str]] = {
    "inform": "ota.device.inform",
    "progress": "ota.device.progress",
    "getversion": "ota.device.getversion",
}
_MAX_PACKET: Final = 256 * 1024
_CHUNK: Final = 256 * 1024
_START_TIMEOUT: Final = 10.0


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str | None:
    """Return the mosquitto executable, or None when it is not installed."""
    for candidate in MOSQUITTO_CANDIDATES:
        if found := shutil.which(candidate):
            return found
    return None


async def _accepts(host: str, port: int) -> bool:
    """Return whether ``host:port`` accepts a TCP connection."""
    try:
        _reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


# ---------------------------------------------------------------------- TLS


@dataclass(frozen=True, slots=True)
class TestCertificates:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """Return a server-side TLS context with the server certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_test_ca(directory: Path, host: str = LOOPBACK) -> TestCertificates:
    """Write a CA certificate and a server certificate (and key) for ``host``."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EnOS test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certs = TestCertificates(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
    )
    certs.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certs


# ---------------------------------------------------------------------- broker


class MosquittoBroker:
    """A mosquitto process listening on ``host:port`` (kept across restarts)."""

    def __init__(self, *, host: str = LOOPBACK, port: int = 0) -> None:
        """Initialize; ``port=0`` picks a free port at the first start."""
        self.host = host
        self.port = port
        self._process: asyncio.subprocess.Process | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def running(self) -> bool:
        """Return whether the process runs."""
        return self._process is not None and self._process.returncode is None

    def _prepare(self) -> tuple[Path, Path]:
        """Write the configuration; return (config, log) paths."""
        assert self._dir is not None
        workdir = Path(self._dir.name)
        config = workdir / "mosquitto.conf"
        log = workdir / "mosquitto.log"
        config.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"log_dest file {log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n",
            encoding="utf-8",
        )
        # mosquitto started as root drops to its own user before writing the log.
        workdir.chmod(0o755)
        log.touch()
        log.chmod(0o666)
        return config, log

    async def start(self) -> None:
        """Start mosquitto and wait until it accepts connections."""
        if self.running:
            return
        executable = find_mosquitto()
        if executable is None:
            raise RuntimeError("mosquitto is not installed")
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="enos-mosquitto-")
        if not self.port:
            self.port = free_port(self.host)
        loop = asyncio.get_running_loop()
        config, log = await loop.run_in_executor(None, self._prepare)
        process = self._process = await asyncio.create_subprocess_exec(
            executable,
            "-c",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        started = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_START_TIMEOUT):
                while process.returncode is None and not started:
                    started = await _accepts(self.host, self.port)
                    if not started:
                        await asyncio.sleep(0.02)
        if not started:
            await self.stop()
            detail = await loop.run_in_executor(None, log.read_text)
            raise RuntimeError(f"mosquitto did not start: {detail}")

    async def stop(self) -> None:
        """Terminate mosquitto (its clients see their connections closed)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def close(self) -> None:
        """Stop and remove the working directory."""
        await self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


# ---------------------------------------------------------------------- login proxy


@dataclass(frozen=True, slots=True)
class ConnectPacket:
    """The fields of an MQTT CONNECT packet the proxy checks."""

    protocol_level: int
    keepalive: int
    client_id: str
    username: str | None
    password: bytes | None


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One CONNECT the proxy saw (the password itself is never kept)."""

    client_id: str
    username: str | None
    cid: str | None
    sign_method: str | None
    timestamp: int | None
    return_code: int

    @property
    def accepted(self) -> bool:
        """Return whether the login was accepted."""
        return self.return_code == CONNACK_ACCEPTED


@dataclass(slots=True)
class EnosDevice:
    """A device registered in the simulated cloud."""

    product_key: str
    device_key: str
    device_secret: str = field(repr=False)
    enabled: bool = True


class MqttPacketError(ValueError):
    """A packet that is not valid MQTT."""


def _read_str(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(data):
        raise MqttPacketError("truncated string")
    (length,) = struct.unpack_from("!H", data, pos)
    end = pos + 2 + length
    if end > len(data):
        raise MqttPacketError("truncated string")
    return data[pos + 2 : end], end


def parse_connect(packet: bytes) -> ConnectPacket:
    """Parse a whole CONNECT packet (fixed header included)."""
    if not packet or packet[0] != 0x10:
        raise MqttPacketError("not a CONNECT packet")
    pos = 1
    while packet[pos] & 0x80:  # skip the remaining length
        pos += 1
    pos += 1
    name, pos = _read_str(packet, pos)
    if name not in (b"MQTT", b"MQIsdp") or pos + 4 > len(packet):
        raise MqttPacketError("bad protocol name")
    level, flags = packet[pos], packet[pos + 1]
    (keepalive,) = struct.unpack_from("!H", packet, pos + 2)
    pos += 4
    client_id, pos = _read_str(packet, pos)
    if flags & 0x04:  # will topic and message
        _topic, pos = _read_str(packet, pos)
        _message, pos = _read_str(packet, pos)
    username = password = None
    if flags & 0x80:
        username, pos = _read_str(packet, pos)
    if flags & 0x40:
        password, pos = _read_str(packet, pos)
    try:
        return ConnectPacket(
            protocol_level=level,
            keepalive=keepalive,
            client_id=client_id.decode(),
            username=None if username is None else username.decode(),
            password=password,
        )
    except UnicodeDecodeError as err:
        raise MqttPacketError("client id or username not UTF-8") from err


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    """Read one whole MQTT packet (fixed header, remaining length, body)."""
    header = await reader.readexactly(1)
    length_bytes = b""
    length = 0
    for shift in range(0, 28, 7):
        byte = await reader.readexactly(1)
        length_bytes += byte
        length |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            break
    else:
        raise MqttPacketError("bad remaining length")
    if length > _MAX_PACKET:
        raise MqttPacketError("packet too large")
    return header + length_bytes + await reader.readexactly(length)


def expected_sign(digest: str, cid: str, device: EnosDevice, timestamp: str) -> str:
    """Return the sign EnOS expects (lower-case hex)."""
    content = (
        f"clientId{cid}deviceKey{device.device_key}"
        f"productKey{device.product_key}timestamp{timestamp}{device.device_secret}"
    )
    return hashlib.new(digest, content.encode(), usedforsecurity=False).hexdigest()


class EnosLoginProxy:
    """Checks each device's CONNECT like EnOS, then pipes it to mosquitto."""

    def __init__(
        self,
        devices: Mapping[tuple[str, str], EnosDevice],
        *,
        upstream_port: int,
        host: str = LOOPBACK,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        max_clock_skew_ms: int | None = None,
    ) -> None:
        """Initialize; ``devices`` is keyed by (product key, device key)."""
        self.devices = devices
        self.upstream_port = upstream_port
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        #: Refuse timestamps further than this from now (None: any timestamp).
        self.max_clock_skew_ms = max_clock_skew_ms
        self.logins: list[LoginAttempt] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def listening(self) -> bool:
        """Return whether the proxy accepts connections."""
        return self._server is not None

    async def start(self) -> None:
        """Listen (on the same port as before after a stop)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._on_client,
            self.host,
            self.port,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # an outage, not a polite TLS shutdown
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def check(self, connect: ConnectPacket) -> LoginAttempt:
        """Return the verdict EnOS would give on this CONNECT."""
        cid = sign_method = timestamp = None

        def verdict(code: int) -> LoginAttempt:
            return LoginAttempt(
                connect.client_id,
                connect.username,
                cid,
                sign_method,
                None if timestamp is None else int(timestamp),
                code,
            )

        if connect.protocol_level != 4:  # EnOS speaks MQTT 3.1.1 only
            return verdict(CONNACK_UNACCEPTABLE_PROTOCOL)
        match = _CLIENT_ID_RE.fullmatch(connect.client_id)
        if match is None:
            return verdict(CONNACK_IDENTIFIER_REJECTED)
        cid = match["cid"]
        params = dict(
            part.partition("=")[::2] for part in match["params"].split(",") if part
        )
        sign_method = params.get("signmethod")
        digest = _SIGN_DIGESTS.get(sign_method or "")
        raw_ts = params.get("timestamp", "")
        if params.get("securemode") != "2" or digest is None or not raw_ts.isdigit():
            return verdict(CONNACK_IDENTIFIER_REJECTED)
        timestamp = raw_ts
        device_key, _, product_key = (connect.username or "").partition("&")
        device = self.devices.get((product_key, device_key))
        if device is None or connect.password is None:
            return verdict(CONNACK_BAD_CREDENTIALS)
        sign = expected_sign(digest, cid, device, timestamp)
        if not hmac.compare_digest(sign.encode(), connect.password.lower()):
            return verdict(CONNACK_BAD_CREDENTIALS)
        if self.max_clock_skew_ms is not None:
            now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
            if abs(now_ms - int(timestamp)) > self.max_clock_skew_ms:
                return verdict(CONNACK_BAD_CREDENTIALS)
        if not device.enabled:
            return verdict(CONNACK_NOT_AUTHORIZED)
        return verdict(CONNACK_ACCEPTED)

    async def _on_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout(10):
                    if self.ssl_context is not None:
                        # Handshake here, not in start_server, so that a failed
                        # handshake is this connection's end, not a loop error.
                        await writer.start_tls(self.ssl_context)
                    packet = await read_packet(reader)
                connect = parse_connect(packet)
            except (
                MqttPacketError,
                asyncio.IncompleteReadError,
                TimeoutError,
                ssl.SSLError,
            ) as err:
                _LOGGER.debug("Proxy: dropping a client: %s", err)
                return
            attempt = self.check(connect)
            self.logins.append(attempt)
            _LOGGER.debug(
                "Proxy: CONNECT %s as %s -> %s",
                attempt.client_id,
                attempt.username,
                attempt.return_code,
            )
            if not attempt.accepted:
                writer.write(bytes((0x20, 0x02, 0x00, attempt.return_code)))
                await writer.drain()
                writer.close()
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(1):
                        await writer.wait_closed()
                return
            try:
                up_reader, upstream = await asyncio.open_connection(
                    LOOPBACK, self.upstream_port
                )
            except OSError as err:
                _LOGGER.debug("Proxy: broker unreachable: %s", err)
                return
            self._writers.add(upstream)
            upstream.write(packet)
            pumps = [
                asyncio.ensure_future(self._pump(reader, upstream)),
                asyncio.ensure_future(self._pump(up_reader, writer)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:
            pass
        finally:
            for side in (writer, upstream):
                if side is not None:
                    self._writers.discard(side)
                    side.transport.abort()  # written data was drained already
            self._tasks.discard(task)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


# ---------------------------------------------------------------------- cloud


@dataclass(frozen=True, slots=True)
class CloudMessage:
    """A device's request (inform, progress, getversion) or push reply."""

    product_key: str
    device_key: str
    method: str
    msg_id: str | None
    params: Mapping[str, Any]
    raw: Mapping[str, Any]


class EnosCloud:
    """The cloud's side of the OTA topics, connected straight to mosquitto."""

    def __init__(self, *, host: str = LOOPBACK, port: int) -> None:
        """Initialize for the broker at ``host:port``."""
        self.host = host
        self.port = port
        #: getversion answers per (product key, device key): lists of firmware objects.
        self.versions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        #: Methods not answered at all (the device's request times out).
        self.silent: set[str] = set()
        #: Reply codes other than 200 per method, e.g. {"ota.device.getversion": 2001}.
        self.reply_codes: dict[str, int] = {}
        self.informs: list[CloudMessage] = []
        self.progress: list[CloudMessage] = []
        self.getversion_requests: list[CloudMessage] = []
        self.upgrade_replies: list[CloudMessage] = []
        self.errors: list[tuple[str, int]] = []
        self._ids = itertools.count(1000)
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []

    @property
    def connected(self) -> bool:
        """Return whether the cloud client is connected."""
        return self._client is not None and self._client.is_connected()

    async def start(self) -> None:
        """Connect to mosquitto and subscribe to the device topics."""
        if self._client is not None:
            return
        loop = self._loop = asyncio.get_running_loop()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"enos-cloud-{next(self._ids)}",
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
        )
        subscribed: asyncio.Future[None] = loop.create_future()

        def on_connect(
            client: mqtt.Client,
            _userdata: Any,
            _flags: mqtt.ConnectFlags,
            reason: ReasonCode,
            _properties: Any,
        ) -> None:
            if reason.is_failure:
                loop.call_soon_threadsafe(_settle, subscribed, f"CONNACK {reason}")
                return
            client.subscribe(
                [
                    (f"/sys/+/+/ota/device/{name}", 1)
                    for name in ("inform", "progress", "getversion", "upgrade_reply")
                ]
            )

        def on_subscribe(*_args: Any) -> None:
            loop.call_soon_threadsafe(_settle, subscribed, None)

        def on_message(
            _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage
        ) -> None:
            loop.call_soon_threadsafe(self._on_message, msg.topic, msg.payload)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        result = await loop.run_in_executor(
            None, client.connect, self.host, self.port, 30
        )
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"cloud cannot connect: {mqtt.error_string(result)}")
        client.loop_start()
        self._client = client
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                await subscribed
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Disconnect and stop the network thread."""
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        await asyncio.get_running_loop().run_in_executor(None, client.loop_stop)

    # ------------------------------------------------------------ pushes

    async def push_upgrade(
        self,
        product_key: str,
        device_key: str,
        offer: Mapping[str, Any] | None = None,
        *,
        raw: bytes | None = None,
        msg_id: str | None = None,
    ) -> str:
        """Push ``ota.device.upgrade`` with ``offer`` as params (or ``raw`` bytes).

        Returns the message id.
        """
        msg_id = msg_id or str(next(self._ids))
        payload = raw
        if payload is None:
            payload = json.dumps(
                {
                    "id": msg_id,
                    "version": "1.0",
                    "method": "ota.device.upgrade",
                    "params": dict(offer or {}),
                }
            ).encode()
        self._publish(f"/sys/{product_key}/{device_key}/ota/device/upgrade", payload)
        return msg_id

    async def wait_for_upgrade_reply(
        self, msg_id: str, wait: float = 5.0
    ) -> CloudMessage:
        """Return the device's reply to the push ``msg_id``."""
        return await self._wait_for(
            lambda: next((m for m in self.upgrade_replies if m.msg_id == msg_id), None),
            wait,
        )

    async def wait_for_inform(
        self, version: str | None = None, *, since: int = 0, wait: float = 5.0
    ) -> CloudMessage:
        """Return the first inform (of ``version``) at index ``since`` or later."""
        return await self._wait_for(
            lambda: next(
                (
                    m
                    for m in self.informs[since:]
                    if version is None or m.params.get("version") == version
                ),
                None,
            ),
            wait,
        )

    async def wait_for_progress(
        self, step: str | int, *, since: int = 0, wait: float = 5.0
    ) -> CloudMessage:
        """Return the first progress report of ``step`` at index ``since`` or later."""
        return await self._wait_for(
            lambda: next(
                (m for m in self.progress[since:] if m.params.get("step") == str(step)),
                None,
            ),
            wait,
        )

    async def _wait_for[T](self, probe: Callable[[], T | None], wait: float) -> T:
        found = probe()
        if found is not None:
            return found
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        entry = (probe, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(wait):
                return await future
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def _wake(self) -> None:
        for probe, future in list(self._waiters):
            if not future.done() and (found := probe()) is not None:
                future.set_result(found)

    # ------------------------------------------------------------ requests

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._client is None:
            raise RuntimeError("cloud not connected")
        self._client.publish(topic, payload, qos=1)

    def _reply(
        self,
        topic: str,
        msg_id: str | None,
        code: int,
        data: Any = None,
        message: str = "",
    ) -> None:
        body: dict[str, Any] = {
            "id": msg_id,
            "code": code,
            "data": {} if data is None else data,
        }
        if message:
            body["message"] = message
        self._publish(topic + "_reply", json.dumps(body).encode())

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self._client is None:
            return  # a message still queued when the cloud stopped
        match = _OTA_TOPIC_RE.fullmatch(topic)
        if match is None:
            return
        pk, dk, name = match["pk"], match["dk"], match["name"]
        if not payload:
            self.errors.append((topic, CODE_EMPTY_PAYLOAD))
            self._reply(topic, None, CODE_EMPTY_PAYLOAD, message="empty payload")
            return
        try:
            doc = json.loads(payload)
            if not isinstance(doc, dict):
                raise TypeError("not an object")  # noqa: TRY301
        except ValueError, TypeError:
            self.errors.append((topic, CODE_BAD_JSON))
            if name != "upgrade_reply":
                self._reply(topic, None, CODE_BAD_JSON, message="bad JSON")
            return
        msg_id = doc.get("id")
        msg_id = None if msg_id is None else str(msg_id)
        params = doc.get("params")
        if name == "upgrade_reply":
            record = CloudMessage(pk, dk, "ota.device.upgrade_reply", msg_id, {}, doc)
            self.upgrade_replies.append(record)
            self._wake()
            return
        method = _METHODS[name]
        if doc.get("method") != method:
            self.errors.append((topic, CODE_METHOD_MISMATCH))
            self._reply(topic, msg_id, CODE_METHOD_MISMATCH, message="method mismatch")
            return
        record = CloudMessage(
            pk, dk, method, msg_id, params if isinstance(params, dict) else {}, doc
        )
        {
            "inform": self.informs,
            "progress": self.progress,
            "getversion": self.getversion_requests,
        }[name].append(record)
        self._wake()
        if method in self.silent:
            return
        if (code := self.reply_codes.get(method, CODE_OK)) != CODE_OK:
            self._reply(topic, msg_id, code, message=f"simulated error {code}")
            return
        data = self.versions.get((pk, dk), []) if name == "getversion" else None
        self._reply(topic, msg_id, CODE_OK, data)


def _settle(future: asyncio.Future[None], error: str | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(RuntimeError(error))


# ---------------------------------------------------------------------- files


@dataclass(slots=True)
class FileFaults:
    """Failure modes of one served file (each counts down as it is used)."""

    #: Answer 500 to this many requests first.
    server_errors: int = 0
    #: Close the connection after this many body bytes ...
    drop_after: int | None = None
    #: ... this many times.
    drops: int = 1
    #: Serve content of the right length but different bytes (None: always).
    corrupt: int | None = 0


@dataclass(frozen=True, slots=True)
class FileRequest:
    """One request the file server saw."""

    name: str
    range: str | None
    status: int
    #: The query string the client sent (a pre-signed URL's signature).
    query: str = ""


class FirmwareFileServer:
    """Serves firmware files over HTTP with Range support and failure modes."""

    def __init__(self, *, host: str = LOOPBACK, port: int = 0) -> None:
        """Initialize; ``port=0`` picks a free port."""
        self.host = host
        self.port = port
        self.files: dict[str, bytes | Path] = {}
        self.faults: dict[str, FileFaults] = {}
        self.requests: list[FileRequest] = []
        #: Names answered with ``302 Location: <target>`` instead of a file.
        self.redirects: dict[str, str] = {}
        #: Devices the HTTP broker authenticates (the simulator shares its own).
        self.devices: dict[tuple[str, str], EnosDevice] = {}
        #: HTTP broker sessions: id → (product key, device key).
        self.sessions: dict[str, tuple[str, str]] = {}
        self._session_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """Return ``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def url(self, name: str) -> str:
        """Return the absolute URL of a served file."""
        return f"{self.base_url}/files/{name}"

    def add(self, name: str, content: bytes | Path) -> str:
        """Serve ``content`` (bytes, or a file streamed from disk) as ``name``."""
        if "/" in name or not name:
            raise ValueError("plain file names only")
        self.files[name] = content
        return self.url(name)

    def fault(self, name: str) -> FileFaults:
        """Return (creating) the failure modes of ``name``."""
        return self.faults.setdefault(name, FileFaults())

    async def start(self) -> None:
        """Start serving."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/files/{name}", self._handle)
        app.router.add_post("/auth/{pk}/{dk}", self._auth)
        app.router.add_get(
            "/multipart/sys/{pk}/{dk}/file/download", self._broker_download
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop serving."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _size(self, content: bytes | Path) -> int:
        return len(content) if isinstance(content, bytes) else content.stat().st_size

    @staticmethod
    def _parse_range(header: str, size: int) -> tuple[int, int] | None:
        """Return (start, end exclusive) of a single ``bytes=`` range, else None."""
        unit, _, spec = header.partition("=")
        if unit.strip() != "bytes" or "," in spec:
            return None
        first, _, last = spec.strip().partition("-")
        try:
            if not first:
                start, end = max(0, size - int(last)), size
            else:
                start = int(first)
                end = min(size, int(last) + 1) if last else size
        except ValueError:
            return None
        if start >= size or start >= end:
            return None
        return start, end

    async def _auth(self, request: web.Request) -> web.Response:
        """``POST /auth/{pk}/{dk}``: the EnOS HTTP broker's device authentication."""
        pk, dk = request.match_info["pk"], request.match_info["dk"]
        device = self.devices.get((pk, dk))
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"code": 1220, "message": "bad json"})
        lifetime = body.get("lifetime") if isinstance(body, dict) else None
        if device is None or not isinstance(lifetime, int):
            return web.json_response({"code": 401, "message": "unknown device"})
        content = (
            f"deviceKey{dk}lifetime{lifetime}productKey{pk}signMethodsha256"
            f"{device.device_secret}"
        )
        expected = hashlib.sha256(content.encode()).hexdigest()
        if str(body.get("sign", "")).lower() != expected:
            return web.json_response({"code": 401, "message": "auth failed"})
        session_id = f"session-{next(self._session_ids)}"
        self.sessions[session_id] = (pk, dk)
        return web.json_response(
            {"code": 200, "message": "", "data": {"sessionId": session_id}}
        )

    async def _broker_download(self, request: web.Request) -> web.StreamResponse:
        """``GET /multipart/sys/{pk}/{dk}/file/download``: a file for a session."""
        owner = self.sessions.get(request.query.get("sessionId", ""))
        if owner != (request.match_info["pk"], request.match_info["dk"]):
            self.requests.append(FileRequest("?", None, 401))
            raise web.HTTPUnauthorized
        return await self._serve(request, request.query.get("fileUri", ""))

    def redirect(self, name: str, location: str) -> str:
        """Answer requests for ``name`` with a redirect to ``location``."""
        self.redirects[name] = location
        return self.url(name)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if (location := self.redirects.get(name)) is not None:
            self.requests.append(
                FileRequest(
                    name, request.headers.get("Range"), 302, request.query_string
                )
            )
            raise web.HTTPFound(location)
        return await self._serve(request, name)

    async def _serve(self, request: web.Request, name: str) -> web.StreamResponse:
        range_header = request.headers.get("Range")
        content = self.files.get(name)
        faults = self.faults.get(name, FileFaults())

        def record(status: int) -> None:
            self.requests.append(
                FileRequest(name, range_header, status, request.query_string)
            )

        if content is None:
            record(404)
            raise web.HTTPNotFound
        if faults.server_errors > 0:
            faults.server_errors -= 1
            record(500)
            raise web.HTTPInternalServerError(text="simulated failure")
        size = self._size(content)
        start, end, status = 0, size, 200
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if range_header is not None:
            parsed = self._parse_range(range_header, size)
            if parsed is None:
                record(416)
                raise web.HTTPRequestRangeNotSatisfiable(
                    headers={"Content-Range": f"bytes */{size}"}
                )
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        record(status)
        drop_at: int | None = None
        if faults.drop_after is not None and faults.drops > 0:
            faults.drops -= 1
            drop_at = faults.drop_after
        corrupt = faults.corrupt is None or faults.corrupt > 0
        if faults.corrupt:
            faults.corrupt -= 1
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = end - start
        await response.prepare(request)
        sent = 0
        async for chunk in self._chunks(content, start, end):
            data = bytes(b ^ 0xFF for b in chunk[:1]) + chunk[1:] if corrupt else chunk
            if drop_at is not None and sent + len(data) >= drop_at:
                await response.write(data[: drop_at - sent])
                if request.transport is not None:
                    request.transport.close()
                raise asyncio.CancelledError  # end the handler; the client sees EOF
            await response.write(data)
            sent += len(data)
        await response.write_eof()
        return response

    async def _chunks(
        self, content: bytes | Path, start: int, end: int
    ) -> AsyncIterator[bytes]:
        if isinstance(content, bytes):
            view = memoryview(content)
            for pos in range(start, end, _CHUNK):
                yield bytes(view[pos : min(end, pos + _CHUNK)])
            return
        loop = asyncio.get_running_loop()
        handle = await loop.run_in_executor(None, content.open, "rb")
        try:
            await loop.run_in_executor(None, handle.seek, start)
            remaining = end - start
            while remaining > 0:
                chunk = await loop.run_in_executor(
                    None, handle.read, min(_CHUNK, remaining)
                )
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await loop.run_in_executor(None, handle.close)


# ---------------------------------------------------------------------- together


class EnosSimulator:
    """Mosquitto + EnOS login proxy + cloud + firmware file server, on loopback."""

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        file_port: int = 0,
        tls: bool = False,
    ) -> None:
        """Initialize; ``port`` is where devices connect (0: a free port)."""
        self.host = host
        self.tls = tls
        self.devices: dict[tuple[str, str], EnosDevice] = {}
        self.broker = MosquittoBroker(host=host)
        self._tmp = tempfile.TemporaryDirectory(prefix="enos-sim-")
        self.certificates = make_test_ca(Path(self._tmp.name), host) if tls else None
        self.proxy = EnosLoginProxy(
            self.devices,
            upstream_port=0,
            host=host,
            port=port,
            ssl_context=self.certificates.server_context()
            if self.certificates
            else None,
        )
        self.cloud = EnosCloud(host=host, port=0)
        self.files = FirmwareFileServer(host=host, port=file_port)
        self.files.devices = self.devices

    @property
    def port(self) -> int:
        """Return the port devices connect to."""
        return self.proxy.port

    @property
    def ca_file(self) -> str | None:
        """Return the CA certificate file that verifies the broker (TLS only)."""
        return str(self.certificates.ca_file) if self.certificates else None

    @property
    def logins(self) -> list[LoginAttempt]:
        """Return every CONNECT the proxy saw."""
        return self.proxy.logins

    def add_device(
        self, product_key: str, device_key: str, device_secret: str
    ) -> EnosDevice:
        """Register a device (its secret is what the proxy checks signs with)."""
        device = EnosDevice(product_key, device_key, device_secret)
        self.devices[(product_key, device_key)] = device
        return device

    async def start(self) -> None:
        """Start everything (the file server stays up across broker restarts)."""
        try:
            await self.files.start()
            await self.start_broker()
        except BaseException:
            await self.stop()
            raise

    async def start_broker(self) -> None:
        """Start mosquitto, connect the cloud, then accept devices (same ports)."""
        await self.broker.start()
        self.proxy.upstream_port = self.cloud.port = self.broker.port
        await self.cloud.start()
        await self.proxy.start()

    async def stop_broker(self) -> None:
        """Refuse devices, drop their connections, stop the cloud and mosquitto."""
        await self.proxy.stop()
        await self.cloud.stop()
        await self.broker.stop()

    async def restart_broker(self) -> None:
        """Stop and start the broker side on the same ports."""
        await self.stop_broker()
        await self.start_broker()

    async def stop(self) -> None:
        """Stop everything."""
        await self.stop_broker()
        await self.broker.close()
        await self.files.stop()
        self._tmp.cleanup()


def firmware_offer(
    version: str, url: str, content: bytes, sign_method: str = "md5"
) -> dict[str, Any]:
    """Return a firmware object as EnOS sends it (getversion entry / push params)."""
    return {
        "version": version,
        "sign": hashlib.new(sign_method, content, usedforsecurity=False).hexdigest(),
        "signMethod": sign_method,
        "fileUrl": url,
        "fileSize": len(content),
    }


def firmware_bytes(version: str, size: int) -> bytes:
    """Return deterministic firmware content of ``size`` bytes for ``version``."""
    seed = hashlib.sha256(version.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


# ---------------------------------------------------------------------- CLI


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulators.enos",
        description="Run a loopback EnOS cloud (MQTT + firmware files) until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=11883, help="device MQTT port")
    parser.add_argument("--file-port", type=int, default=18090)
    parser.add_argument("--tls", action="store_true", help="TLS with a throw-away CA")
    parser.add_argument("--product-key", default="demoProduct")
    parser.add_argument("--device-key", default="demoDevice")
    parser.add_argument("--secret", default="demoSecret")
    parser.add_argument(
        "--offer",
        action="append",
        default=[],
        metavar="VERSION",
        help="a firmware version getversion offers (repeatable)",
    )
    parser.add_argument("--size", type=int, default=1024 * 1024, help="firmware bytes")
    parser.add_argument(
        "--push",
        metavar="VERSION",
        help="push this offered version after the device's first inform",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    sim = EnosSimulator(port=args.port, file_port=args.file_port, tls=args.tls)
    sim.add_device(args.product_key, args.device_key, args.secret)
    await sim.start()
    try:
        offers = {}
        for version in args.offer:
            content = firmware_bytes(version, args.size)
            url = sim.files.add(f"firmware-{version}.bin", content)
            offers[version] = firmware_offer(version, url, content)
        sim.cloud.versions[(args.product_key, args.device_key)] = list(offers.values())
        print(
            json.dumps(
                {
                    "host": sim.host,
                    "port": sim.port,
                    "tls": sim.tls,
                    "ca_file": sim.ca_file,
                    "product_key": args.product_key,
                    "device_key": args.device_key,
                    "device_secret": args.secret,
                    "file_base_url": sim.files.base_url,
                    "offers": list(offers.values()),
                }
            ),
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        print("Serving; press Ctrl-C to stop.", flush=True)
        if args.push:
            push = asyncio.ensure_future(_push_after_inform(sim, args, offers))
            await stop.wait()
            push.cancel()
            await asyncio.gather(push, return_exceptions=True)
        else:
            await stop.wait()
    finally:
        await sim.stop()


async def _push_after_inform(
    sim: EnosSimulator, args: argparse.Namespace, offers: Mapping[str, Any]
) -> None:
    await sim.cloud.wait_for_inform(wait=365 * 24 * 3600)
    msg_id = await sim.cloud.push_upgrade(
        args.product_key, args.device_key, offers[args.push]
    )
    print(f"Pushed {args.push} as message {msg_id}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
