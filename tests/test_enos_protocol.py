"""The EnOS protocol layer against a real mosquitto behind the EnOS login check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
import hashlib
import json
import logging
from pathlib import Path
import threading
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest

from custom_components.firmware_hub.core.retry import Backoff
from custom_components.firmware_hub.kinds.enos.protocol import messages as enos
from custom_components.firmware_hub.kinds.enos.protocol.client import (
    EnosClient,
    EnosTiming,
)
from custom_components.firmware_hub.kinds.enos.protocol.errors import (
    EnosAuthError,
    EnosConnectionError,
    EnosError,
    EnosPayloadError,
    EnosReplyError,
    EnosTimeoutError,
)
from custom_components.firmware_hub.kinds.enos.protocol.messages import (
    CODE_INVALID_REQUEST,
    METHOD_INFORM,
    METHOD_PROGRESS,
    TOPIC_INFORM,
    TOPIC_PROGRESS,
    EnosFirmware,
    parse_offer,
    parse_offer_list,
    parse_reply,
    parse_upgrade_push,
    progress_params,
)
from custom_components.firmware_hub.kinds.enos.protocol.signing import (
    SIGN_METHODS,
    EnosCredentials,
    compute_sign,
    sign_login,
)

from .simulators.enos import EnosSimulator, firmware_bytes, firmware_offer

PK = "prodKey42"
DK = "devKey7"
SECRET = "Dev1ceSecret-Never-Logged"

FAST = EnosTiming(
    connect_timeout=2.0,
    request_timeout=1.0,
    keepalive=10,
    reconnect_min=0.02,
    reconnect_max=0.1,
    reconnect_jitter=0.5,
    misc_interval=0.05,
)


def is_up(device: EnosClient) -> bool:
    """Return `device.connected` (a call, so that type checkers do not narrow it)."""
    return device.connected


async def until(predicate: Callable[[], bool], wait: float = 5.0) -> None:
    """Wait until `predicate()` holds."""
    async with asyncio.timeout(wait):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def no_secrets_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    """Capture everything at DEBUG; no log line may carry the secret or a sign."""
    caplog.set_level(logging.DEBUG)
    signs: list[str] = []
    yield signs
    records = [
        *caplog.get_records("setup"),
        *caplog.get_records("call"),
        *caplog.records,  # teardown
    ]
    text = "\n".join(logging.Formatter().format(record) for record in records)
    assert SECRET not in text
    for sign in signs:
        assert sign.lower() not in text.lower()


@pytest.fixture
async def sim(socket_enabled: None) -> AsyncGenerator[EnosSimulator]:
    """A loopback EnOS (plain TCP) with one registered device."""
    simulator = EnosSimulator()
    simulator.add_device(PK, DK, SECRET)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def tls_sim(socket_enabled: None) -> AsyncGenerator[EnosSimulator]:
    """A loopback EnOS behind TLS with a throw-away CA."""
    simulator = EnosSimulator(tls=True)
    simulator.add_device(PK, DK, SECRET)
    await simulator.start()
    yield simulator
    await simulator.stop()


def make_client(
    sim: EnosSimulator,
    *,
    secret: str = SECRET,
    sign_method: str = "sha256",
    tls: bool = False,
    ca_file: str | None = None,
    timing: EnosTiming = FAST,
) -> EnosClient:
    """Return a client for the simulator's device."""
    return EnosClient(
        sim.host,
        sim.port,
        EnosCredentials(PK, DK, secret, sign_method),
        tls=tls,
        ca_file=ca_file,
        timing=timing,
    )


@pytest.fixture
async def client(
    sim: EnosSimulator, no_secrets_in_logs: list[str]
) -> AsyncGenerator[EnosClient]:
    """A connected client (sha256)."""
    device = make_client(sim)
    await device.connect()
    yield device
    await device.disconnect()
    creds = EnosCredentials(PK, DK, SECRET)
    no_secrets_in_logs.extend(
        compute_sign(creds, login.timestamp)
        for login in sim.logins
        if login.timestamp is not None
    )


def offer_doc(version: str = "2.0.0", **changes: Any) -> dict[str, Any]:
    """Return a firmware object as EnOS sends it."""
    content = firmware_bytes(version, 4096)
    doc = firmware_offer(version, f"/ota/{version}.bin", content)
    doc.update(changes)
    return doc


def offer_wire(offer: EnosFirmware) -> dict[str, Any]:
    """Return an offer in wire form (extra fields kept); `parse_offer` reads it."""
    return {
        **offer.raw,
        "version": offer.version,
        "sign": offer.sign,
        "signMethod": offer.sign_method,
        "fileUrl": offer.file_url,
        "fileSize": offer.file_size,
    }


# ---------------------------------------------------------------------- signing


@pytest.mark.parametrize(
    ("method", "wire", "digest", "upper"),
    [
        ("sha256", "hmacsha256", hashlib.sha256, True),
        ("sha1", "hmacsha1", hashlib.sha1, True),
        ("md5", "hmacmd5", hashlib.md5, False),
    ],
)
def test_sign_login(method: str, wire: str, digest: Any, upper: bool) -> None:
    """ClientId, username and password exactly as enos.md describes them."""
    creds = EnosCredentials(PK, DK, SECRET, method)
    login = sign_login(creds, 1700000000123)
    assert login.client_id == (
        f"{DK}|securemode=2,signmethod={wire},timestamp=1700000000123|"
    )
    assert login.username == f"{DK}&{PK}"
    content = f"clientId{DK}deviceKey{DK}productKey{PK}timestamp1700000000123{SECRET}"
    expected = digest(content.encode()).hexdigest()
    assert login.password == (expected.upper() if upper else expected)
    assert login.timestamp == 1700000000123
    assert SECRET not in repr(creds)
    assert login.password not in repr(login)
    other = EnosCredentials(PK, DK, SECRET, method, client_cid="gateway-1")
    assert sign_login(other, 1).client_id.startswith("gateway-1|")
    assert compute_sign(other, 1) != compute_sign(creds, 1)


def test_credentials_are_checked() -> None:
    """Unsupported sign methods, missing keys and long client ids are refused."""
    with pytest.raises(ValueError, match="sign method"):
        EnosCredentials(PK, DK, SECRET, "hmacsha256")
    with pytest.raises(ValueError, match="required"):
        EnosCredentials("", DK, SECRET)
    with pytest.raises(ValueError, match="64"):
        EnosCredentials(PK, DK, SECRET, client_cid="x" * 65)


def test_backoff_grows_with_jitter_and_cap() -> None:
    """Reconnect delays double from the minimum, stay under the cap, and vary."""
    timing = EnosTiming(reconnect_min=1, reconnect_max=60, reconnect_jitter=0.5)
    backoff = timing.reconnect_backoff
    assert backoff == Backoff(initial=1, maximum=60, jitter=0.5)
    for attempt, base in ((1, 1), (2, 2), (4, 8), (11, 60), (501, 60)):
        delay = backoff.delay(attempt)
        assert base / 2 <= delay <= base
    assert len({backoff.delay(5) for _ in range(20)}) > 1


# ---------------------------------------------------------------------- parsing


def test_parse_offer() -> None:
    """Offers are normalized; what cannot be verified or fetched is refused."""
    doc = offer_doc(sign="ABCDEF" + "0" * 26, signMethod="MD5", fileSize="4096")
    doc["isDiff"] = False
    offer = parse_offer(doc)
    assert offer == EnosFirmware(
        version="2.0.0",
        file_url="/ota/2.0.0.bin",
        file_size=4096,
        sign="abcdef" + "0" * 26,
        sign_method="md5",
    )
    assert parse_offer(offer_wire(offer)) == offer
    assert offer_wire(offer)["isDiff"] is False
    numbers = offer_doc(fileSize=float(2**33), signMethod="sha256", sign="a" * 64)
    numbers["version"] = 3
    big = parse_offer(numbers)
    assert (big.version, big.file_size) == ("3", 2**33)
    bad: Any
    for bad in (
        [],
        offer_doc(version=""),
        offer_doc(fileUrl=None),
        offer_doc(fileSize=0),
        offer_doc(fileSize=True),
        offer_doc(fileSize="12x"),
        offer_doc(signMethod="crc32"),
        offer_doc(sign="abc"),
        offer_doc(sign="z" * 32),
    ):
        with pytest.raises(EnosPayloadError):
            parse_offer(bad)


def test_parse_offer_list() -> None:
    """No data is no offer; a single object is one; bad entries are skipped."""
    assert parse_offer_list(None) == []
    assert [o.version for o in parse_offer_list(offer_doc("1.1"))] == ["1.1"]
    offers = parse_offer_list([offer_doc("1.1"), {"version": "x"}, offer_doc("1.2")])
    assert [o.version for o in offers] == ["1.1", "1.2"]
    with pytest.raises(EnosPayloadError):
        parse_offer_list("nope")


def test_parse_reply_and_push() -> None:
    """Envelopes: ids as string or Long, codes as numbers or digits."""
    reply = parse_reply(b'{"id": 12, "code": "200", "data": [], "message": "ok"}')
    assert (reply.msg_id, reply.code, reply.data, reply.message) == (
        "12",
        200,
        [],
        "ok",
    )
    assert parse_reply(b'{"id": "3", "code": 2001}').message is None
    for bad in (b"[1]", b"{", b'{"code": 200}', b'{"id": "1", "code": true}'):
        with pytest.raises(EnosPayloadError):
            parse_reply(bad)

    push = json.dumps(
        {"id": "9", "method": "ota.device.upgrade", "params": offer_doc()}
    ).encode()
    msg_id, offer = parse_upgrade_push(push)
    assert (msg_id, offer.version) == ("9", "2.0.0")
    with pytest.raises(EnosPayloadError) as err:
        parse_upgrade_push(b'{"id": "5", "method": "ota.device.other", "params": {}}')
    assert err.value.msg_id == "5"
    with pytest.raises(EnosPayloadError) as err:
        parse_upgrade_push(b'{"id": 6, "params": {"version": "1"}}')
    assert err.value.msg_id == "6"
    with pytest.raises(EnosPayloadError) as err:
        parse_upgrade_push(b"\xff")
    assert err.value.msg_id is None
    assert json.loads(enos.build_reply(None, 2000, "bad")) == {
        "code": 2000,
        "data": {},
        "message": "bad",
    }


# ---------------------------------------------------------------------- connect


@pytest.mark.parametrize("method", ["sha256", "sha1", "md5"])
async def test_connect_with_each_sign_method(
    sim: EnosSimulator,
    method: str,
    no_secrets_in_logs: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The simulated EnOS accepts the login signed with every method."""
    device = make_client(sim, sign_method=method)
    connected: list[bool] = []
    remove = device.add_connected_listener(lambda: connected.append(True))
    await device.connect()
    await device.connect()  # already connected: nothing to do
    assert device.connected
    assert device.last_error is None
    assert connected == [True]
    (login,) = sim.logins
    assert login.accepted
    assert login.sign_method == SIGN_METHODS[method]
    assert login.username == f"{DK}&{PK}"
    assert device.subscriptions() == [
        f"/sys/{PK}/{DK}/ota/device/inform_reply",
        f"/sys/{PK}/{DK}/ota/device/progress_reply",
        f"/sys/{PK}/{DK}/ota/device/getversion_reply",
        f"/sys/{PK}/{DK}/ota/device/upgrade",
    ]
    assert f"client id {login.client_id}" in caplog.text  # logged, the sign not
    await asyncio.sleep(0.15)  # a few keepalive (loop_misc) ticks
    assert device.connected
    remove()
    remove()
    await device.disconnect()
    assert not is_up(device)
    assert not device.reconnecting
    no_secrets_in_logs.append(
        compute_sign(EnosCredentials(PK, DK, SECRET, method), login.timestamp or 0)
    )
    await device.disconnect()  # twice is harmless


async def test_wrong_secret_is_an_auth_error(
    sim: EnosSimulator, no_secrets_in_logs: list[str]
) -> None:
    """CONNACK 4 (bad user name or password) → EnosAuthError, no retry loop."""
    device = make_client(sim, secret="not-the-secret")
    with pytest.raises(EnosAuthError, match="refused the login"):
        await device.connect()
    assert not device.connected
    assert not device.reconnecting
    assert isinstance(device.last_error, EnosAuthError)
    await asyncio.sleep(0.1)
    assert [login.return_code for login in sim.logins] == [4]
    no_secrets_in_logs.append("not-the-secret")
    await device.disconnect()


async def test_disabled_device_is_an_auth_error(sim: EnosSimulator) -> None:
    """CONNACK 5 (not authorized) → EnosAuthError as well."""
    sim.devices[(PK, DK)].enabled = False
    with pytest.raises(EnosAuthError):
        await make_client(sim).connect()
    assert [login.return_code for login in sim.logins] == [5]


async def test_other_connack_refusal_is_a_connection_error(
    sim: EnosSimulator,
) -> None:
    """A clientId EnOS cannot read (CONNACK 2) is not an auth error."""
    device = EnosClient(
        sim.host,
        sim.port,
        EnosCredentials(PK, DK, SECRET, client_cid="bad|cid"),
        tls=False,
        timing=FAST,
    )
    with pytest.raises(EnosConnectionError) as err:
        await device.connect()
    assert not isinstance(err.value, EnosAuthError)
    assert sim.logins[-1].return_code == 2


async def test_connection_refused(socket_enabled: None) -> None:
    """Nothing listening → EnosConnectionError."""
    device = EnosClient(
        "127.0.0.1", 1, EnosCredentials(PK, DK, SECRET), tls=False, timing=FAST
    )
    with pytest.raises(EnosConnectionError, match="cannot connect"):
        await device.connect()
    assert isinstance(device.last_error, EnosConnectionError)
    with pytest.raises(EnosConnectionError, match="not connected"):
        await device.inform("1.0")


async def test_no_connack_is_a_timeout(socket_enabled: None) -> None:
    """A server that accepts TCP but never answers the CONNECT → EnosTimeoutError."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(
        _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    timing = EnosTiming(connect_timeout=0.3, request_timeout=0.3)
    device = EnosClient(
        "127.0.0.1", port, EnosCredentials(PK, DK, SECRET), tls=False, timing=timing
    )
    try:
        with pytest.raises(EnosTimeoutError, match="CONNACK"):
            await device.connect()
        # Cancelled while waiting for the CONNACK: the socket is dropped.
        task = asyncio.ensure_future(device.connect())
        await until(lambda: len(accepted) == 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not device.connected
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_tls_verifies_the_broker(
    tls_sim: EnosSimulator, no_secrets_in_logs: list[str]
) -> None:
    """TLS with the CA given connects; the system trust store rejects the test CA."""
    assert tls_sim.ca_file is not None
    device = make_client(tls_sim, tls=True, ca_file=tls_sim.ca_file)
    await device.connect()
    await device.inform("1.0.0")
    await device.disconnect()

    untrusted = make_client(tls_sim, tls=True)
    with pytest.raises(EnosConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusted.connect()
    plain = make_client(tls_sim, tls=False)  # TLS port, plain TCP client
    with pytest.raises(EnosConnectionError):
        await plain.connect()
    no_secrets_in_logs.extend(
        compute_sign(EnosCredentials(PK, DK, SECRET), login.timestamp)
        for login in tls_sim.logins
        if login.timestamp is not None
    )


# ---------------------------------------------------------------------- messages


async def test_inform_reaches_the_cloud(client: EnosClient, sim: EnosSimulator) -> None:
    """An inform is `ota.device.inform` with the version; the reply is awaited."""
    await client.inform("1.0.0")
    (inform,) = sim.cloud.informs
    assert (inform.product_key, inform.device_key) == (PK, DK)
    assert inform.params == {"version": "1.0.0"}
    assert inform.raw["version"] == "1.0"
    client.send(TOPIC_INFORM, METHOD_INFORM, {"version": "1.0.1"})
    await sim.cloud.wait_for_inform("1.0.1", since=1)


async def test_get_versions(client: EnosClient, sim: EnosSimulator) -> None:
    """The getversion reply becomes typed offers (unusable entries skipped)."""
    assert await client.get_versions() == []
    content = firmware_bytes("2.0.0", 5000)
    url = sim.files.add("fw-2.0.0.bin", content)
    sim.cloud.versions[(PK, DK)] = [
        firmware_offer("2.0.0", url, content),
        firmware_offer("2.1.0", "/ota/2.1.0.bin", content, "sha256"),
        {"version": "broken"},
    ]
    offers = await client.get_versions()
    assert [(o.version, o.sign_method, o.file_size) for o in offers] == [
        ("2.0.0", "md5", 5000),
        ("2.1.0", "sha256", 5000),
    ]
    assert offers[0].file_url == url
    assert offers[0].sign == hashlib.md5(content).hexdigest()
    assert offers[1].sign == hashlib.sha256(content).hexdigest()
    assert sim.cloud.getversion_requests[-1].params == {}


async def test_error_reply_and_timeout(client: EnosClient, sim: EnosSimulator) -> None:
    """A code other than 200 → EnosReplyError; no reply → EnosTimeoutError."""
    sim.cloud.reply_codes["ota.device.getversion"] = 2001
    with pytest.raises(EnosReplyError) as err:
        await client.get_versions()
    assert (err.value.code, err.value.message) == (2001, "simulated error 2001")

    sim.cloud.silent.add("ota.device.getversion")
    with pytest.raises(EnosTimeoutError, match="no reply"):
        await client.get_versions()
    assert client.connected  # a lost reply does not drop the connection


async def test_progress(client: EnosClient, sim: EnosSimulator) -> None:
    """Progress steps go out as strings with their description."""
    await client.request(TOPIC_PROGRESS, METHOD_PROGRESS, progress_params(0, "start"))
    await client.request(
        TOPIC_PROGRESS,
        METHOD_PROGRESS,
        progress_params(enos.STEP_VERIFY_FAILED, "md5 mismatch"),
    )
    client.send(TOPIC_PROGRESS, METHOD_PROGRESS, progress_params(100))
    await sim.cloud.wait_for_progress(100)
    assert [m.params for m in sim.cloud.progress] == [
        {"step": "0", "desc": "start"},
        {"step": "-3", "desc": "md5 mismatch"},
        {"step": "100", "desc": ""},
    ]
    assert {m.method for m in sim.cloud.progress} == {"ota.device.progress"}
    with pytest.raises(ValueError, match="above 100"):
        progress_params(101)


async def test_pushed_offer_is_handled_and_answered(
    client: EnosClient, sim: EnosSimulator
) -> None:
    """A push reaches the handler as an offer; reply_upgrade answers it."""
    received: list[tuple[str | None, EnosFirmware | EnosPayloadError]] = []
    client.set_upgrade_handler(lambda msg_id, offer: received.append((msg_id, offer)))
    msg_id = await sim.cloud.push_upgrade(PK, DK, offer_doc("3.0.0"))
    await until(lambda: bool(received))
    ((got_id, offer),) = received
    assert got_id == msg_id
    assert isinstance(offer, EnosFirmware)
    assert (offer.version, offer.file_url, offer.file_size) == (
        "3.0.0",
        "/ota/3.0.0.bin",
        4096,
    )
    client.reply_upgrade(got_id)
    reply = await sim.cloud.wait_for_upgrade_reply(msg_id)
    assert reply.raw == {"id": msg_id, "code": 200, "data": {}}


async def test_async_handler_runs_as_a_task(
    client: EnosClient, sim: EnosSimulator
) -> None:
    """A coroutine handler is run by the client; its errors are logged."""
    done = asyncio.Event()

    async def handler(msg_id: str | None, offer: Any) -> None:
        client.reply_upgrade(msg_id)
        done.set()
        raise RuntimeError("handler bug")

    client.set_upgrade_handler(handler)
    msg_id = await sim.cloud.push_upgrade(PK, DK, offer_doc())
    await done.wait()
    await sim.cloud.wait_for_upgrade_reply(msg_id)
    await until(lambda: not client._tasks)


async def test_malformed_push_gets_a_typed_error(
    client: EnosClient, sim: EnosSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad JSON, a wrong method or bad params reach the handler as EnosPayloadError."""
    received: list[tuple[str | None, Any]] = []

    def handler(msg_id: str | None, result: EnosFirmware | EnosPayloadError) -> None:
        received.append((msg_id, result))
        if isinstance(result, EnosPayloadError):
            client.reply_upgrade(msg_id, CODE_INVALID_REQUEST, str(result))

    client.set_upgrade_handler(handler)
    bad_params = await sim.cloud.push_upgrade(PK, DK, offer_doc(fileSize=-1))
    reply = await sim.cloud.wait_for_upgrade_reply(bad_params)
    assert reply.raw["code"] == CODE_INVALID_REQUEST
    assert "fileSize" in reply.raw["message"]
    await sim.cloud.push_upgrade(PK, DK, raw=b"{not json")
    await until(lambda: len(received) == 2)
    assert received[0][0] == bad_params
    assert isinstance(received[0][1], EnosPayloadError)
    assert received[1][0] is None
    assert isinstance(received[1][1], EnosPayloadError)
    assert "Malformed upgrade push" in caplog.text
    assert client.connected

    # A handler that raises is logged; the client carries on.
    client.set_upgrade_handler(lambda *_: 1 / 0)
    await sim.cloud.push_upgrade(PK, DK, offer_doc())
    await until(lambda: "Error in EnOS callback" in caplog.text)
    # Without a handler a push is only logged.
    client.set_upgrade_handler(None)
    await sim.cloud.push_upgrade(PK, DK, offer_doc())
    await until(lambda: "No handler for the upgrade push" in caplog.text)
    await client.inform("1.0.0")


async def test_unexpected_messages_are_ignored(
    client: EnosClient, sim: EnosSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Malformed or unknown replies do not disturb pending requests."""
    assert sim.cloud._client is not None
    base = f"/sys/{PK}/{DK}/ota/device/"
    sim.cloud._client.publish(base + "getversion_reply", b"garbage", qos=1)
    sim.cloud._client.publish(
        base + "getversion_reply", b'{"id": "999", "code": 200}', qos=1
    )
    await until(lambda: "unexpected reply 999" in caplog.text)
    assert "malformed reply" in caplog.text
    assert await client.get_versions() == []


# ---------------------------------------------------------------------- reconnect


async def test_broker_restart_reconnects_with_a_new_sign(
    sim: EnosSimulator, no_secrets_in_logs: list[str]
) -> None:
    """Reconnect with a fresh timestamp and sign, re-subscribe, fire the hook again."""
    device = make_client(sim, sign_method="sha1")
    events: list[str | EnosError] = []

    async def on_connected() -> None:
        events.append("connected")
        await device.inform("1.0.0")

    device.add_connected_listener(on_connected)
    device.add_disconnected_listener(events.append)
    await device.connect()
    await sim.cloud.wait_for_inform("1.0.0")

    await sim.stop_broker()
    await until(lambda: not device.connected)
    with pytest.raises(EnosConnectionError, match="not connected"):
        await device.get_versions()
    await asyncio.sleep(0.2)  # a few refused reconnect attempts
    assert device.reconnecting
    informs = len(sim.cloud.informs)
    await sim.start_broker()
    await sim.cloud.wait_for_inform("1.0.0", since=informs)  # re-informed

    assert events[0] == "connected"
    assert isinstance(events[1], EnosConnectionError)
    assert events[2] == "connected"
    first, second = sim.logins[0], sim.logins[-1]
    assert second.accepted
    assert second.timestamp is not None
    assert first.timestamp is not None
    assert second.timestamp > first.timestamp
    assert second.client_id != first.client_id
    creds = EnosCredentials(PK, DK, SECRET, "sha1")
    assert compute_sign(creds, second.timestamp) != compute_sign(creds, first.timestamp)
    # Re-subscribed: replies and pushes arrive on the new connection.
    sim.cloud.versions[(PK, DK)] = [offer_doc("4.0.0")]
    assert [o.version for o in await device.get_versions()] == ["4.0.0"]
    pushed: list[Any] = []
    device.set_upgrade_handler(lambda *args: pushed.append(args))
    await sim.cloud.push_upgrade(PK, DK, offer_doc())
    await until(lambda: bool(pushed))
    await device.disconnect()
    no_secrets_in_logs.extend(
        compute_sign(creds, login.timestamp)
        for login in sim.logins
        if login.timestamp is not None
    )


async def test_lost_connection_fails_pending_requests(
    client: EnosClient, sim: EnosSimulator
) -> None:
    """A request waiting for its reply fails at once when the connection drops."""
    sim.cloud.silent.add("ota.device.getversion")
    pending = asyncio.ensure_future(client.get_versions())
    await sim.cloud._wait_for(lambda: sim.cloud.getversion_requests or None, 2)
    await sim.restart_broker()
    with pytest.raises(EnosConnectionError) as err:
        await pending
    assert not isinstance(err.value, EnosTimeoutError)
    await until(lambda: client.connected)


async def test_refused_on_reconnect_stops_retrying(
    client: EnosClient, sim: EnosSimulator
) -> None:
    """A secret revoked in the cloud: EnosAuthError to the hook, no retry loop."""
    errors: list[EnosError] = []
    client.add_disconnected_listener(errors.append)
    sim.devices[(PK, DK)].device_secret = "rotated"
    await sim.restart_broker()
    await until(lambda: any(isinstance(e, EnosAuthError) for e in errors))
    assert isinstance(client.last_error, EnosAuthError)
    assert not client.reconnecting
    refused = len(sim.logins)
    await asyncio.sleep(0.2)
    assert len(sim.logins) == refused  # no further attempts


async def test_disconnect_while_reconnecting(sim: EnosSimulator) -> None:
    """disconnect() stops the reconnect loop; connect() starts over."""
    device = make_client(sim)
    await device.connect()
    await sim.stop_broker()
    await until(lambda: device.reconnecting)
    await device.disconnect()
    assert not device.reconnecting
    await sim.start_broker()
    await device.connect()
    assert device.connected
    await device.disconnect()


async def test_cancelled_while_the_executor_connects(
    sim: EnosSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling connect() while paho still connects closes what it opened."""
    release = threading.Event()
    real_connect = mqtt.Client.connect

    def held_connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        release.wait(5)
        return real_connect(self, *args, **kwargs)

    monkeypatch.setattr(mqtt.Client, "connect", held_connect)
    device = make_client(sim)
    task = asyncio.ensure_future(device.connect())
    await asyncio.sleep(0.05)  # the task now waits for the executor
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()

    def socket_closed() -> bool:
        paho = device._mqttc
        sock = None if paho is None else paho.socket()
        return sock is not None and sock.fileno() == -1

    await until(socket_closed)  # the executor finished; its socket was closed
    assert device._driver is not None
    assert not device._driver._misc_timers
    assert not device.connected
    await device.connect()
    assert is_up(device)
    await device.disconnect()


async def test_requests_need_a_connection() -> None:
    """Requests before connect() fail with EnosConnectionError, without I/O."""
    device = EnosClient("127.0.0.1", 1, EnosCredentials(PK, DK, SECRET))
    with pytest.raises(EnosConnectionError, match="not connected"):
        await device.get_versions()
    with pytest.raises(EnosConnectionError, match="not connected"):
        device.reply_upgrade("1")
    await device.disconnect()


async def test_disconnect_cancels_hook_tasks(sim: EnosSimulator) -> None:
    """Tasks started by hooks do not outlive the client."""
    device = make_client(sim)
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    device.add_connected_listener(forever)
    await device.connect()
    await started.wait()
    await device.disconnect()
    assert not device._tasks


# ---------------------------------------------------------------------- file server


async def test_file_server_ranges_and_faults(sim: EnosSimulator) -> None:
    """The simulator's firmware server: Range, 500s, dropped bodies, wrong bytes."""
    content = firmware_bytes("9.9.9", 1_000_000)
    url = sim.files.add("fw.bin", content)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Accept-Ranges"] == "bytes"
            assert await resp.read() == content
        async with session.get(url, headers={"Range": "bytes=1000-"}) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == "bytes 1000-999999/1000000"
            assert await resp.read() == content[1000:]
        async with session.get(url, headers={"Range": "bytes=-10"}) as resp:
            assert await resp.read() == content[-10:]
        async with session.get(url, headers={"Range": "bytes=5-9"}) as resp:
            assert await resp.read() == content[5:10]
        async with session.get(url, headers={"Range": "bytes=2000000-"}) as resp:
            assert resp.status == 416

        sim.files.fault("fw.bin").server_errors = 2
        statuses = []
        for _ in range(3):
            async with session.get(url) as resp:
                statuses.append(resp.status)
        assert statuses == [500, 500, 200]

        sim.files.fault("fw.bin").drop_after = 300_000
        async with session.get(url) as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        async with session.get(url, headers={"Range": "bytes=300000-"}) as resp:
            assert await resp.read() == content[300_000:]  # dropped only once

        sim.files.fault("fw.bin").corrupt = 1
        async with session.get(url) as resp:
            body = await resp.read()
        assert len(body) == len(content)
        assert body != content
        async with session.get(url) as resp:
            assert await resp.read() == content

        disk = sim.files.add("disk.bin", Path(__file__))
        async with session.get(disk, headers={"Range": "bytes=3-10"}) as resp:
            assert await resp.read() == b"The EnOS"
        async with session.get(sim.files.url("missing.bin")) as resp:
            assert resp.status == 404
    assert [r.status for r in sim.files.requests][:6] == [200, 206, 206, 206, 416, 500]
