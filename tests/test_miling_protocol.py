"""Miling protocol layer: codecs, the WebSocket client and the chunk fetcher."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator, Awaitable, Callable
import hashlib
import json
import logging
import os
import tracemalloc
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest
from websockets.exceptions import InvalidStatus, InvalidURI

from custom_components.firmware_hub.core.retry import Backoff
from custom_components.firmware_hub.kinds.miling.protocol import (
    chunks as miling_chunks,
    client as miling,
)
from custom_components.firmware_hub.kinds.miling.protocol.chunks import (
    ChunkClient,
    chunk_ranges,
    md5_matches,
)
from custom_components.firmware_hub.kinds.miling.protocol.client import (
    MilingClient,
    register_once,
)
from custom_components.firmware_hub.kinds.miling.protocol.errors import (
    ChunkChecksumError,
    ChunkEncodingError,
    ChunkHttpError,
    ChunkMissingError,
    ChunkReplyError,
    ChunkServerError,
    MilingConnectionError,
    MilingDecodeError,
    MilingError,
    MilingFieldError,
    MilingNotConnectedError,
    MilingProtocolError,
    MilingRegistrationRefusedError,
    MilingTimeoutError,
    UnexpectedMessageError,
    UnknownProtocolCodeError,
)
from custom_components.firmware_hub.kinds.miling.protocol.messages import (
    ChunkReply,
    ChunkRequest,
    Message,
    Register,
    RegisterReply,
    UpgradeReply,
    UpgradeRequest,
    UpgradeStatus,
    decode_message,
    encode_message,
    is_plain_file_name,
)

from .simulators.miling import (
    ChecksumOf,
    CorruptMd5,
    MilingServerSimulator,
    Registration,
)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No Home Assistant instance: these tests exercise the wire layer alone."""


# The seed's six examples, as printed (whitespace included).
SEED = {
    1010: """{
    "ProtocolCode":1010,
    "Parameters":{
        "DeviceId":"10001",
        "DeviceType":"TS",
        "ProgVersion":"200200"
    }
}""",
    1011: """{"ProtocolCode":1011,"Parameters":{"DeviceId":"10010","Status":0}}""",
    1012: """{
    "ProtocolCode":1012,
    "Parameters":{
        "FileName":"updateImage",
        "FileSize":4096,
        "DeviceId":"10010",
        "DeviceType":"TX",
        "ProgVersion":"1.0.0",
        "LoadCondition":0
    }
}""",
    1013: """{"ProtocolCode":1013,"Parameters":{"DeviceId":"10010","Status":0}}""",
    1014: """{"ProtocolCode":1014,"Parameters":{"DeviceId":"10010",
        "FileName":"updateImage","Start":0,"End":2047}}""",
    1015: """{"ProtocolCode":1015,"Parameters":{"Status":0,"FileName":"updateImage",
        "Start":0,"End":2047,"Check":"1BC29B36F623BA82AAF6724FD3B16718",
        "FileChunk":"AAAA"}}""",
}

DECODED: dict[int, Message] = {
    1010: Register("10001", "TS", "200200"),
    1011: RegisterReply("10010", 0),
    1012: UpgradeRequest("updateImage", 4096, "10010", "TX", "1.0.0", 0),
    1013: UpgradeReply("10010", 0),
    1014: ChunkRequest("10010", "updateImage", 0, 2047),
    1015: ChunkReply(
        0, "updateImage", 0, 2047, "1BC29B36F623BA82AAF6724FD3B16718", "AAAA"
    ),
}

REGISTRATION = Registration("10001", "TS", "200200")
FAST = Backoff(first=0.01, initial=0.02, factor=2.0, maximum=0.05)


# ------------------------------------------------------------------- codecs


@pytest.mark.parametrize("code", sorted(SEED))
def test_seed_examples_round_trip(code: int) -> None:
    """The seed's examples decode; encoding gives back the same keys in order."""
    message = decode_message(SEED[code])
    assert message == DECODED[code]
    assert code == message.CODE
    encoded = encode_message(message)
    assert " " not in encoded
    assert list(json.loads(encoded)) == ["ProtocolCode", "Parameters"]
    assert list(json.loads(encoded)["Parameters"].items()) == list(
        json.loads(SEED[code])["Parameters"].items()
    )
    assert decode_message(encoded.encode()) == message


def test_error_replies_may_omit_fields() -> None:
    """Status 1/2 replies need only Status; encoding leaves absent fields out."""
    reply = decode_message(b'{"ProtocolCode":1015,"Parameters":{"Status":1}}')
    assert reply == ChunkReply(1)
    assert encode_message(reply) == '{"ProtocolCode":1015,"Parameters":{"Status":1}}'
    assert RegisterReply("1", 0).ok
    assert not RegisterReply("1", 3).ok


def test_integral_floats_are_ints() -> None:
    """4096.0 reads as 4096 (servers serialising doubles); 4096.5 does not."""
    doc = json.loads(SEED[1012])
    doc["Parameters"]["FileSize"] = 4096.0
    doc["ProtocolCode"] = 1012.0
    message = decode_message(json.dumps(doc))
    assert isinstance(message, UpgradeRequest)
    assert message.file_size == 4096
    assert type(message.file_size) is int
    doc["Parameters"]["FileSize"] = 4096.5
    with pytest.raises(MilingFieldError) as err:
        decode_message(json.dumps(doc))
    assert err.value.field == "FileSize"
    # The backend may still answer a malformed 1012: code and parameters are kept.
    assert err.value.code == 1012
    assert err.value.parameters is not None
    assert err.value.parameters["DeviceId"] == "10010"


def _with(code: int, **changes: Any) -> str:
    doc = json.loads(SEED[code])
    for key, value in changes.items():
        if value is _DELETE:
            del doc["Parameters"][key]
        else:
            doc["Parameters"][key] = value
    return json.dumps(doc)


_DELETE = object()


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", MilingDecodeError),
        (b"\xff\xfe{", MilingDecodeError),
        ("not json", MilingDecodeError),
        ("[1010]", MilingDecodeError),
        ('"text"', MilingDecodeError),
        ("[" * 100_000 + "]" * 100_000, MilingDecodeError),
        ('{"ProtocolCode":1e999999,"Parameters":{}}', MilingFieldError),
        ('{"ProtocolCode":NaN,"Parameters":{}}', MilingDecodeError),
        (
            '{"ProtocolCode":1011,"Parameters":{"DeviceId":"1","Status":Infinity}}',
            MilingDecodeError,
        ),
        ('{"ProtocolCode":1' + "0" * 5000 + ',"Parameters":{}}', MilingDecodeError),
        ('{"Parameters":{}}', MilingFieldError),
        ('{"ProtocolCode":"1010","Parameters":{}}', MilingFieldError),
        ('{"ProtocolCode":true,"Parameters":{}}', MilingFieldError),
        ('{"ProtocolCode":1010.5,"Parameters":{}}', MilingFieldError),
        ('{"ProtocolCode":1099,"Parameters":{}}', UnknownProtocolCodeError),
        ('{"ProtocolCode":1010}', MilingFieldError),
        ('{"ProtocolCode":1010,"Parameters":[]}', MilingFieldError),
        (_with(1010, DeviceId=_DELETE), MilingFieldError),
        (_with(1010, DeviceId=10001), MilingFieldError),
        (_with(1010, ProgVersion=None), MilingFieldError),
        (_with(1011, Status=False), MilingFieldError),
        (_with(1011, Status="0"), MilingFieldError),
        (_with(1012, FileSize=-1), MilingFieldError),
        (_with(1012, FileSize="4096"), MilingFieldError),
        (_with(1012, FileSize=7).replace("7", "1e999"), MilingFieldError),
        (_with(1012, FileSize=1e999), MilingDecodeError),  # "Infinity"
        (_with(1012, LoadCondition=True), MilingFieldError),
        (_with(1012, FileName=["a"]), MilingFieldError),
        (_with(1013, Status=None), MilingFieldError),
        (_with(1014, End=2048), MilingFieldError),
        (_with(1014, Start=10, End=9), MilingFieldError),
        (_with(1014, Start=-1), MilingFieldError),
        (_with(1015, Status=3), MilingFieldError),
        (_with(1015, Check=_DELETE), MilingFieldError),
        (_with(1015, Start=_DELETE), MilingFieldError),
        (_with(1015, FileChunk=5), MilingFieldError),
        (_with(1015, End=-1), MilingFieldError),
    ],
    ids=lambda value: value[:60] if isinstance(value, (str, bytes)) else None,
)
def test_malformed_messages(raw: str | bytes, error: type[MilingProtocolError]) -> None:
    """Every malformed message is a typed protocol error."""
    with pytest.raises(error):
        decode_message(raw)


def test_unknown_code_and_field_errors() -> None:
    """Errors carry what was wrong."""
    with pytest.raises(UnknownProtocolCodeError) as unknown:
        decode_message('{"ProtocolCode":42,"Parameters":{}}')
    assert unknown.value.code == 42
    with pytest.raises(MilingFieldError) as field:
        decode_message(_with(1011, Status=True))
    assert field.value.field == "Status"
    assert "bool" in str(field.value)
    with pytest.raises(MilingFieldError):
        ChunkRequest("1", "f", 0, 2048)  # local construction validates too


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """Seed messages with bytes flipped, cut, duplicated or inserted."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 5))):
            if not data:
                break
            pos = draw(st.integers(0, len(data) - 1))
            action = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
            if action == "flip":
                data[pos] = draw(st.integers(0, 255))
            elif action == "cut":
                del data[pos : pos + draw(st.integers(1, 20))]
            elif action == "insert":
                data[pos:pos] = draw(
                    st.sampled_from(
                        [b"-", b"1", b".5", b"e999", b'"', b"true", b"null", b"NaN"]
                    )
                )
            else:
                data[pos:pos] = data[pos : pos + draw(st.integers(1, 30))]
        return bytes(data)

    return mutate()


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=10)
)
_FIELDS = [
    "DeviceId",
    "DeviceType",
    "ProgVersion",
    "Status",
    "FileName",
    "FileSize",
    "LoadCondition",
    "Start",
    "End",
    "Check",
    "FileChunk",
]


@st.composite
def _structured(draw: st.DrawFn) -> bytes:
    """Well-formed JSON with plausible keys and values of every type."""
    params = draw(
        st.dictionaries(
            st.sampled_from(_FIELDS),
            _SCALARS | st.lists(_SCALARS, max_size=2),
            max_size=len(_FIELDS),
        )
    )
    code = draw(
        st.sampled_from([1010, 1011, 1012, 1013, 1014, 1015])
        | st.sampled_from([0, -1, 1016, 1010.0, "1010", True, None])
    )
    doc: Any = {"ProtocolCode": code, "Parameters": params}
    if draw(st.integers(0, 9)) == 0:
        doc = draw(st.sampled_from([params, [doc], code, {"Parameters": params}]))
    return json.dumps(doc).encode()


MALFORMED = st.one_of(
    _structured(),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    *(_mutations(text.encode()) for text in SEED.values()),
)


@settings(
    max_examples=800,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=MALFORMED)
def test_malformed_input_gives_only_typed_errors(raw: bytes) -> None:
    """Whatever arrives, the decoder returns a message or raises a protocol error.

    A message it accepts re-encodes to JSON that decodes to the same message.
    """
    try:
        message = decode_message(raw)
    except MilingProtocolError:
        return
    assert decode_message(encode_message(message)) == message


_ints = st.integers(0, 2**40)
_text = st.text(max_size=30)


@settings(max_examples=150, deadline=None)
@given(
    message=st.one_of(
        st.builds(Register, _text, _text, _text),
        st.builds(RegisterReply, _text, st.integers(-(2**40), 2**40)),
        st.builds(UpgradeRequest, _text, _ints, _text, _text, _text, _ints),
        st.builds(UpgradeReply, _text, st.integers(-5, 5)),
        _ints.flatmap(
            lambda start: st.builds(
                ChunkRequest,
                _text,
                _text,
                st.just(start),
                st.integers(start, start + 2047),
            )
        ),
        st.builds(
            ChunkReply,
            st.sampled_from([0, 1, 2]),
            _text,
            _ints,
            _ints,
            _text,
            _text,
        ),
    )
)
def test_valid_messages_round_trip(message: Message) -> None:
    """Every valid message survives encode → decode."""
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("updateImage", True),
        ("fw_v1.2.3.bin", True),
        ("固件.bin", True),
        ("a" * 255, True),
        ("a" * 256, False),
        ("é" * 128, False),
        ("", False),
        (".", False),
        ("..", False),
        ("../../etc/passwd", False),
        ("a..b", False),
        ("dir/file", False),
        ("/abs", False),
        ("dir\\file", False),
        ("C:\\x", False),
        ("nul\x00byte", False),
        ("line\nbreak", False),
        ("del\x7f", False),
        ("rtl\u202eexe.bin", False),
        ("sep\u2028x", False),
        ("\ud800", False),
        (None, False),
        (42, False),
    ],
)
def test_plain_file_names(name: object, plain: bool) -> None:
    """Only plain file names pass."""
    assert is_plain_file_name(name) is plain


def test_chunk_ranges() -> None:
    """Ranges are End-inclusive, at most 2048 bytes, and cover the file exactly."""
    assert chunk_ranges(0) == []
    assert chunk_ranges(1) == [(0, 0)]
    assert chunk_ranges(2048) == [(0, 2047)]
    assert chunk_ranges(2049) == [(0, 2047), (2048, 2048)]
    assert chunk_ranges(10, 4) == [(0, 3), (4, 7), (8, 9)]
    ranges = chunk_ranges(16 * 1024 * 1024)
    assert len(ranges) == 8192
    assert ranges[-1] == (16 * 1024 * 1024 - 2048, 16 * 1024 * 1024 - 1)
    for bad in (0, 2049):
        with pytest.raises(ValueError, match="chunk_size"):
            chunk_ranges(10, bad)
    with pytest.raises(ValueError, match="negative"):
        chunk_ranges(-1)


def test_md5_readings() -> None:
    """Check may cover the raw bytes or the base64 text, in either case."""
    data = b"\x00\x01firmware"
    text = base64.b64encode(data).decode()
    raw_md5 = hashlib.md5(data).hexdigest()
    text_md5 = hashlib.md5(text.encode()).hexdigest()
    assert md5_matches(raw_md5.upper(), data, text)
    assert md5_matches(f" {text_md5} ", data, text)
    assert not md5_matches("0" * 32, data, text)
    assert not md5_matches("0" * 32, data, "é")


def test_backoff_and_uri() -> None:
    """Delays start small, grow and stay capped; IPv6 hosts are bracketed."""
    delays = Backoff(first=1, initial=2, factor=2, maximum=10).delays()
    first = next(delays)
    assert 0 <= first < 1
    assert [next(delays) for _ in range(5)] == [2, 4, 8, 10, 10]
    assert miling.build_ws_uri("::1", 6007) == "ws://[::1]:6007/DevRegister"
    with pytest.raises(ValueError, match="host"):
        miling.build_ws_uri("")


def test_reconnect_classification() -> None:
    """Network and handshake errors are retried; a bad URI or a bug is not."""
    assert miling._retry_connect(OSError()) is None
    assert miling._retry_connect(TimeoutError()) is None
    response = type("R", (), {"status_code": 404})()
    assert miling._retry_connect(InvalidStatus(response)) is None
    uri_error = InvalidURI("x", "bad")
    assert miling._retry_connect(uri_error) is uri_error
    bug = KeyError("x")
    assert miling._retry_connect(bug) is bug


def test_retryable_flags() -> None:
    """Callers decide retries from `retryable`."""
    where: dict[str, Any] = {"file_name": "f", "start": 0, "end": 1}
    assert not ChunkMissingError("x", **where).retryable
    assert ChunkServerError("x", **where).retryable
    assert ChunkChecksumError("x", **where).retryable
    assert ChunkReplyError("x", **where).retryable
    assert isinstance(ChunkReplyError("x", **where), MilingProtocolError)
    assert ChunkHttpError(503, **where).retryable
    assert ChunkHttpError(429, **where).retryable
    assert not ChunkHttpError(404, **where).retryable
    assert MilingTimeoutError().retryable
    assert not MilingRegistrationRefusedError(1).retryable


# --------------------------------------------------------------- over the network


@pytest.fixture
async def sim(socket_enabled: None) -> AsyncGenerator[MilingServerSimulator]:
    """A Miling server on two free loopback ports."""
    server = MilingServerSimulator()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def session(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """A plain aiohttp session, as Home Assistant's shared one."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:  # noqa: ASYNC109
    """Poll until `predicate()` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


class Device:
    """A minimal bridge: registers on connect, answers 1012 with `answer`."""

    def __init__(self, sim: MilingServerSimulator, **kwargs: Any) -> None:
        self.messages: list[Message] = []
        self.invalid: list[tuple[str | bytes, MilingProtocolError]] = []
        self.registered: list[RegisterReply] = []
        self.register_errors: list[Exception] = []
        self.disconnects = 0
        self.answer = 0
        self.client = MilingClient(
            host=sim.host,
            ws_port=sim.ws_port,
            on_connected=kwargs.pop("on_connected", self._connected),
            on_message=kwargs.pop("on_message", self._message),
            on_invalid=lambda frame, err: self.invalid.append((frame, err)),
            on_disconnected=self._disconnected,
            backoff=kwargs.pop("backoff", FAST),
            stable_after=kwargs.pop("stable_after", 0.5),
            **kwargs,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def _connected(self) -> None:
        try:
            self.registered.append(await self.client.register("10001", "TS", "200200"))
        except MilingError as err:
            self.register_errors.append(err)

    def _message(self, message: Message) -> None:
        self.messages.append(message)
        if isinstance(message, UpgradeRequest):
            task = asyncio.get_running_loop().create_task(
                self.client.reply_upgrade(message.device_id, self.answer)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _disconnected(self) -> None:
        self.disconnects += 1


@pytest.fixture
async def device_factory(
    sim: MilingServerSimulator,
) -> AsyncGenerator[Callable[..., Awaitable[Device]]]:
    """Start devices against the simulator; close them afterwards."""
    devices: list[Device] = []

    async def make(**kwargs: Any) -> Device:
        device = Device(sim, **kwargs)
        devices.append(device)
        device.client.start()
        return device

    yield make
    for device in devices:
        await device.client.close()


async def test_register_push_and_reply(
    sim: MilingServerSimulator, device_factory: Callable[..., Awaitable[Device]]
) -> None:
    """Register on connect; a 1012 reaches the hook; its 1013 reaches the server."""
    device = await device_factory()
    await sim.wait_registrations(1)
    await until(lambda: bool(device.registered))
    assert device.client.connected
    assert sim.registrations[0] == REGISTRATION
    assert sim.connected_devices == ["10001"]
    answer = await sim.push_upgrade("10001", "updateImage", b"x" * 10, "1.0.1", "TS", 2)
    assert answer is not None
    assert answer.status == 0
    request = device.messages[-1]
    assert request == UpgradeRequest("updateImage", 10, "10001", "TS", "1.0.1", 2)
    device.answer = -2
    answer = await sim.push_upgrade(
        "10001", "big", b"", "1.0.2", "TS", file_size=10**12
    )
    assert answer is not None
    assert answer.status == -2
    assert (
        sim.ws_frames[-1]
        == '{"ProtocolCode":1013,"Parameters":{"DeviceId":"10001","Status":-2}}'
    )
    with pytest.raises(RuntimeError):
        await sim.push_upgrade("other", "f", b"", "1", "TS")


async def test_registration_refused(
    sim: MilingServerSimulator, device_factory: Callable[..., Awaitable[Device]]
) -> None:
    """A non-zero 1011 Status is a typed refusal; the socket stays up."""
    sim.register_status = 5
    device = await device_factory()
    await until(lambda: bool(device.register_errors))
    error = device.register_errors[0]
    assert isinstance(error, MilingRegistrationRefusedError)
    assert error.status == 5
    assert device.client.connected
    with pytest.raises(MilingRegistrationRefusedError):
        await register_once(sim.host, sim.ws_port, "10001", "TS", "1")


async def test_register_once(sim: MilingServerSimulator) -> None:
    """The config flow's check: junk before the reply is skipped."""
    sim.ws_preamble = ["junk", '{"ProtocolCode":1099,"Parameters":{}}', SEED[1012]]
    sim.register_reply_device_id = "10010"  # as in the seed's example
    reply = await register_once(sim.host, sim.ws_port, "10001", "TS", "200200")
    assert reply == RegisterReply("10010", 0)
    assert sim.registrations == [REGISTRATION]
    sim.reply_to_register = False
    with pytest.raises(MilingTimeoutError):
        await register_once(
            sim.host, sim.ws_port, "10001", "TS", "1", request_timeout=0.1
        )


async def test_register_once_connection_errors(
    sim: MilingServerSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody listening, or a server that hangs up before the reply."""
    original = sim._on_frame

    async def hang_up(ws: Any, data: str | bytes) -> None:
        await original(ws, data)
        await ws.close()

    sim.reply_to_register = False
    monkeypatch.setattr(sim, "_on_frame", hang_up)
    with pytest.raises(MilingConnectionError, match="closed before"):
        await register_once(sim.host, sim.ws_port, "10001", "TS", "1")
    port = sim.ws_port
    await sim.stop()
    with pytest.raises(MilingConnectionError):
        await register_once(sim.host, port, "10001", "TS", "1")


async def test_invalid_frames_keep_the_connection(
    sim: MilingServerSimulator,
    device_factory: Callable[..., Awaitable[Device]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Malformed JSON, unknown codes, wrong types and 1014s are logged, not fatal."""
    device = await device_factory()
    await until(lambda: bool(device.registered))
    frames: list[str | bytes] = [
        "{not json",
        b"\xff\xfe",
        '{"ProtocolCode":1099,"Parameters":{}}',
        _with(1012, FileSize="4096"),
        SEED[1014],
        "[]",
    ]
    with caplog.at_level(logging.WARNING, logger=miling.__name__):
        for frame in frames:
            await sim.send_raw(frame)
        await sim.send_raw(_with(1012, DeviceId="10001").encode())  # binary, valid
        await until(lambda: len(device.messages) == 2)
    assert [frame for frame, _err in device.invalid] == frames
    kinds = [type(err) for _frame, err in device.invalid]
    assert kinds == [
        MilingDecodeError,
        MilingDecodeError,
        UnknownProtocolCodeError,
        MilingFieldError,
        UnexpectedMessageError,
        MilingDecodeError,
    ]
    assert caplog.text.count("ignoring invalid frame") == len(frames)
    assert isinstance(device.messages[-1], UpgradeRequest)
    assert device.client.connections == 1
    assert device.client.connected


@pytest.mark.parametrize("stable_after", [0.0, 0.5])
async def test_server_closes_socket_reconnects_and_registers(
    sim: MilingServerSimulator,
    device_factory: Callable[..., Awaitable[Device]],
    stable_after: float,
) -> None:
    """A socket closed by the server is reopened and registered again, quickly.

    A connection that lived long enough reconnects at once, a short-lived one
    after a (short, here) backoff delay.
    """
    device = await device_factory(backoff=FAST, stable_after=stable_after)
    await until(lambda: len(device.registered) == 1)
    loop = asyncio.get_running_loop()
    for round_ in range(2, 5):
        started = loop.time()
        await sim.close_sockets()
        await sim.wait_registrations(round_, timeout=2)
        assert loop.time() - started < 1.0
    await until(lambda: len(device.registered) == 4)
    assert device.disconnects == 3
    assert device.client.connections == 4
    assert device.client.connected


async def test_reconnects_when_the_server_comes_back(
    socket_enabled: None,
) -> None:
    """Started while the server is down, the client connects once it is up."""
    probe = MilingServerSimulator()
    await probe.start()
    ws_port, http_port = probe.ws_port, probe.http_port
    await probe.stop()
    device = Device(probe)
    device.client.start()
    try:
        await asyncio.sleep(0.1)  # a few refused attempts
        assert not device.client.connected
        sim = MilingServerSimulator(ws_port=ws_port, http_port=http_port)
        await sim.start()
        try:
            await sim.wait_registrations(1, timeout=2)
            await until(lambda: device.client.connected)
        finally:
            await sim.stop()
        await until(lambda: not device.client.connected)
    finally:
        await device.client.close()
    assert device.client.last_error is None


async def test_register_failures(
    sim: MilingServerSimulator, device_factory: Callable[..., Awaitable[Device]]
) -> None:
    """Not connected, no reply in time, connection lost while waiting."""
    idle = MilingClient(host=sim.host, ws_port=sim.ws_port, request_timeout=0.1)
    with pytest.raises(MilingNotConnectedError):
        await idle.register("10001", "TS", "1")
    await idle.close()  # never started: nothing to do

    sim.reply_to_register = False

    async def nothing() -> None:
        return None

    device = await device_factory(on_connected=nothing, request_timeout=0.1)
    await until(lambda: device.client.connected)
    with pytest.raises(MilingTimeoutError):
        await device.client.register("10001", "TS", "1")
    device.client._request_timeout = 5
    waiting = asyncio.get_running_loop().create_task(
        device.client.register("10001", "TS", "1")
    )
    await sim.wait_registrations(2)
    await sim.close_sockets()
    with pytest.raises(MilingConnectionError):
        await waiting
    with pytest.raises(RuntimeError):
        device.client.start()


async def test_register_reply_matching(
    sim: MilingServerSimulator, device_factory: Callable[..., Awaitable[Device]]
) -> None:
    """A 1011 answers the waiter with its DeviceId, else the oldest one."""

    async def nothing() -> None:
        return None

    device = await device_factory(on_connected=nothing)
    await until(lambda: device.client.connected)
    first = await device.client.register("A", "TS", "1")
    assert first.device_id == "A"
    sim.register_reply_device_id = "B"
    both = await asyncio.gather(
        device.client.register("A", "TS", "1"), device.client.register("B", "TS", "1")
    )
    assert {reply.device_id for reply in both} == {"B"}
    # An unsolicited 1011 only reaches on_message.
    await sim.send_raw(SEED[1011])
    await until(lambda: RegisterReply("10010", 0) in device.messages)


async def test_hook_failures_are_contained(
    sim: MilingServerSimulator,
    device_factory: Callable[..., Awaitable[Device]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Exceptions in hooks are logged; the connection and later messages go on."""

    async def broken_connected() -> None:
        raise RuntimeError("boom on connect")

    calls: list[Message] = []

    def broken_message(message: Message) -> None:
        calls.append(message)
        raise RuntimeError("boom on message")

    device = await device_factory(
        on_connected=broken_connected, on_message=broken_message
    )
    await until(lambda: device.client.connected)
    await sim.send_raw(SEED[1011])
    await sim.send_raw(SEED[1011])
    await until(lambda: len(calls) == 2)
    failures = [r for r in caplog.records if r.exc_info]
    assert {str(r.exc_info[1]) for r in failures if r.exc_info} == {
        "boom on connect",
        "boom on message",
    }
    assert device.client.connected


async def test_client_without_hooks(sim: MilingServerSimulator) -> None:
    """Hooks are optional; a connection cut without a close frame is reopened."""
    client = MilingClient(
        host=sim.host, ws_port=sim.ws_port, backoff=FAST, stable_after=0.5
    )
    client.start()
    try:
        await until(lambda: client.connected)
        await client.register("10001", "TS", "1")
        await sim.send_raw("junk")
        await sim.send_raw(SEED[1012])
        await until(lambda: len(sim.ws_frames) == 1)
        sim.drop_sockets()
        await sim.wait_for(lambda: sim.ws_connections == 2)
        await until(lambda: client.connected)
        await client.reply_upgrade("10001", UpgradeStatus.TOO_LARGE)
        await until(lambda: len(sim.upgrade_answers) == 1)
        assert sim.upgrade_answers[0].status == -2
        # A socket closed under the client's feet: the send fails, typed.
        ws = client._ws
        assert ws is not None
        await ws.close()
        await until(lambda: not client.connected)
        client._ws = ws
        with pytest.raises(MilingConnectionError):
            await client.reply_upgrade("10001", 0)
        client._ws = None
    finally:
        await client.close()


async def test_run_in_a_task_of_the_callers(sim: MilingServerSimulator) -> None:
    """run() may be owned by the caller; close() ends it."""
    client = MilingClient(host=sim.host, ws_port=sim.ws_port)
    task = asyncio.get_running_loop().create_task(client.run())
    await until(lambda: client.connected)
    with pytest.raises(RuntimeError):
        client.start()
    with pytest.raises(RuntimeError):
        await client.run()
    await client.close()
    assert task.done()
    assert not client.connected


async def test_close_cancels_a_pending_hook(sim: MilingServerSimulator) -> None:
    """close() cancels an on_connected hook still running and waits for it."""
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    client = MilingClient(host=sim.host, ws_port=sim.ws_port, on_connected=forever)
    client.start()
    await started.wait()
    await client.close()
    assert cancelled.is_set()
    assert not client._hook_tasks


async def test_close_during_backoff(socket_enabled: None) -> None:
    """close() stops a client waiting to reconnect, at once."""
    probe = MilingServerSimulator()
    await probe.start()
    port = probe.ws_port
    await probe.stop()
    client = MilingClient(
        host="127.0.0.1", ws_port=port, backoff=Backoff(first=5, initial=5)
    )
    client.start()
    await asyncio.sleep(0.05)
    async with asyncio.timeout(1):
        await client.close()
        await client.close()
    assert not client.connected


async def test_fatal_connect_error_stops(socket_enabled: None) -> None:
    """An error the iterator treats as fatal ends the client with last_error."""
    probe = MilingServerSimulator()
    await probe.start()
    port = probe.ws_port
    await probe.stop()
    client = MilingClient(host="127.0.0.1", ws_port=port)
    client._connect_options["process_exception"] = lambda exc: exc
    client.start()
    await until(lambda: client.last_error is not None)
    assert isinstance(client.last_error, OSError)
    await client.close()


# --------------------------------------------------------------------- chunks


@pytest.fixture
def chunks(sim: MilingServerSimulator, session: aiohttp.ClientSession) -> ChunkClient:
    """A chunk client for device 10001 against the simulator."""
    return ChunkClient(
        session, host=sim.host, http_port=sim.http_port, device_id="10001", timeout=2
    )


PACKAGE = os.urandom(3 * 2048 + 100)


async def _fetch_all(client: ChunkClient, data: bytes, name: str = "pkg") -> bytes:
    parts = await asyncio.gather(
        *(
            client.fetch_chunk(name, start, end, file_size=len(data))
            for start, end in chunk_ranges(len(data))
        )
    )
    return b"".join(parts)


@pytest.mark.parametrize(
    ("checksum_of", "lower_case", "chunked"),
    [
        (ChecksumOf.RAW, False, False),
        (ChecksumOf.BASE64, True, False),
        (ChecksumOf.RAW, True, True),
    ],
)
async def test_fetch_file(
    sim: MilingServerSimulator,
    chunks: ChunkClient,
    checksum_of: ChecksumOf,
    lower_case: bool,
    chunked: bool,
) -> None:
    """Chunks fetched concurrently reassemble the file, under both MD5 readings."""
    sim.files["pkg"] = PACKAGE
    sim.checksum_of = checksum_of
    sim.lower_case_check = lower_case
    sim.chunked_reply = chunked
    assert await _fetch_all(chunks, PACKAGE) == PACKAGE
    assert sim.requests_served == 4
    assert set(sim.range_requests.values()) == {1}
    assert chunks.url == sim.download_url
    body = json.loads(encoded_request(chunks, "pkg", 2048, 4095))
    assert body == {
        "ProtocolCode": 1014,
        "Parameters": {
            "DeviceId": "10001",
            "FileName": "pkg",
            "Start": 2048,
            "End": 4095,
        },
    }


def encoded_request(client: ChunkClient, name: str, start: int, end: int) -> bytes:
    """The 1014 body the client sends (its fast encoder against the codec)."""
    body = client._body(name, start, end)
    assert decode_message(body) == ChunkRequest("10001", name, start, end)
    return body


async def test_corrupt_md5(sim: MilingServerSimulator, chunks: ChunkClient) -> None:
    """A wrong Check fails that chunk; once → the retry succeeds; always → never."""
    sim.files["pkg"] = PACKAGE
    sim.corrupt_md5 = CorruptMd5.ONCE
    with pytest.raises(ChunkChecksumError) as err:
        await chunks.fetch_chunk("pkg", 0, 2047)
    assert err.value.retryable
    assert (err.value.file_name, err.value.start, err.value.end) == ("pkg", 0, 2047)
    assert await chunks.fetch_chunk("pkg", 0, 2047) == PACKAGE[:2048]
    sim.corrupt_md5 = CorruptMd5.ALWAYS
    for _ in range(3):
        with pytest.raises(ChunkChecksumError):
            await chunks.fetch_chunk("pkg", 0, 2047)
    assert sim.range_requests[0, 2047] == 5


async def test_status_errors(sim: MilingServerSimulator, chunks: ChunkClient) -> None:
    """Status 1 is final, Status 2 retryable; unknown files are Status 1."""
    with pytest.raises(ChunkMissingError) as missing:
        await chunks.fetch_chunk("nothing", 0, 9)
    assert not missing.value.retryable
    sim.files["pkg"] = PACKAGE
    sim.file_missing = True
    with pytest.raises(ChunkMissingError):
        await chunks.fetch_chunk("pkg", 0, 9)
    sim.file_missing = False
    sim.status2_fraction = 1.0
    with pytest.raises(ChunkServerError) as server:
        await chunks.fetch_chunk("pkg", 0, 9)
    assert server.value.retryable
    sim.status2_fraction = 0.3
    data = bytearray()
    for start, end in chunk_ranges(len(PACKAGE)):
        for _attempt in range(50):
            try:
                data += await chunks.fetch_chunk("pkg", start, end)
                break
            except ChunkServerError:
                continue
    assert bytes(data) == PACKAGE


async def test_dropped_and_slow_responses(
    sim: MilingServerSimulator, session: aiohttp.ClientSession, chunks: ChunkClient
) -> None:
    """A cut connection and a silent server are connection/timeout errors."""
    sim.files["pkg"] = PACKAGE
    sim.drop_fraction = 1.0
    with pytest.raises(MilingConnectionError) as dropped:
        await chunks.fetch_chunk("pkg", 0, 2047)
    assert dropped.value.retryable
    sim.drop_fraction = 0.0
    assert await chunks.fetch_chunk("pkg", 0, 2047) == PACKAGE[:2048]
    sim.delay = 0.3
    impatient = ChunkClient(
        session, host=sim.host, http_port=sim.http_port, device_id="1", timeout=0.05
    )
    with pytest.raises(MilingTimeoutError):
        await impatient.fetch_chunk("pkg", 0, 9)
    sim.delay = 0.0
    port = sim.http_port
    await sim.stop()
    gone = ChunkClient(session, host="127.0.0.1", http_port=port, device_id="1")
    with pytest.raises(MilingConnectionError):
        await gone.fetch_chunk("pkg", 0, 9)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"Start": "0"}, "Start: expected an integer"),
        ({"FileName": "other"}, "FileName 'other'"),
        ({"Start": 1}, "Start 1"),
        ({"End": 99}, "End 99"),
        ({"FileChunk": "A"}, "not base64"),
        ({"FileChunk": base64.b64encode(b"short").decode()}, "5 bytes, expected 10"),
        ({"Check": None}, "Check: missing"),
        ({"Status": 7}, "unknown Status"),
    ],
)
async def test_bad_replies(
    sim: MilingServerSimulator,
    chunks: ChunkClient,
    override: dict[str, Any],
    match: str,
) -> None:
    """Replies that do not answer the request are ChunkReplyError."""
    sim.files["pkg"] = PACKAGE
    sim.reply_override = override
    with pytest.raises(ChunkReplyError, match=match):
        await chunks.fetch_chunk("pkg", 0, 9)


async def test_raw_and_http_errors(
    sim: MilingServerSimulator, chunks: ChunkClient
) -> None:
    """Bodies that are not a 1015, HTTP errors, oversized bodies."""
    sim.files["pkg"] = PACKAGE
    sim.raw_reply = b"<html>oops</html>"
    with pytest.raises(ChunkReplyError, match="invalid JSON"):
        await chunks.fetch_chunk("pkg", 0, 9)
    sim.raw_reply = SEED[1011].encode()
    with pytest.raises(ChunkReplyError, match="expected 1015, got 1011"):
        await chunks.fetch_chunk("pkg", 0, 9)
    sim.raw_reply = b"Bad gateway"
    sim.http_status = 502
    with pytest.raises(ChunkHttpError) as bad_gateway:
        await chunks.fetch_chunk("pkg", 0, 9)
    assert bad_gateway.value.status == 502
    assert bad_gateway.value.retryable
    sim.http_status = 404
    with pytest.raises(ChunkHttpError) as not_found:
        await chunks.fetch_chunk("pkg", 0, 9)
    assert not not_found.value.retryable
    sim.http_status = 500
    sim.raw_reply = b'{"ProtocolCode":1015,"Parameters":{"Status":2}}'
    with pytest.raises(ChunkServerError):
        await chunks.fetch_chunk("pkg", 0, 9)
    sim.http_status = 200
    for chunked in (False, True):
        sim.chunked_reply = chunked
        sim.raw_reply = b" " * (miling_chunks.MAX_REPLY_BYTES + 1)
        with pytest.raises(ChunkReplyError, match="too large"):
            await chunks.fetch_chunk("pkg", 0, 9)


async def test_short_final_chunk(
    sim: MilingServerSimulator, chunks: ChunkClient
) -> None:
    """Past the end of the file: shorter data, End echoed or really sent."""
    sim.files["small"] = PACKAGE[:1000]
    sim.echo_actual_end = True
    assert await chunks.fetch_chunk("small", 0, 2047, file_size=1000) == PACKAGE[:1000]
    with pytest.raises(ChunkReplyError, match="1000 bytes, expected 2048"):
        await chunks.fetch_chunk("small", 0, 2047)
    sim.reply_override = {"End": 2047}
    assert await chunks.fetch_chunk("small", 0, 2047, file_size=1000) == PACKAGE[:1000]
    with pytest.raises(MilingFieldError):
        await chunks.fetch_chunk("small", 0, 2048)


async def test_many_file_names(sim: MilingServerSimulator, chunks: ChunkClient) -> None:
    """The per-file body cache stays small."""
    for index in range(20):
        sim.files[f"f{index}"] = bytes([index]) * 4
        assert await chunks.fetch_chunk(f"f{index}", 1, 2) == bytes([index]) * 2
    assert len(chunks._prefixes) <= 17


async def test_compressed_reply_is_refused_not_inflated(
    sim: MilingServerSimulator, chunks: ChunkClient
) -> None:
    """A 61 KB gzip body that inflates to 61 MiB is refused as it arrives.

    Chunks are asked for uncompressed; the bomb is never inflated in memory and
    is not asked for again (a server that compresses once compresses again).
    """
    sim.files["pkg"] = PACKAGE
    sim.gzip_padding = 61 * 1024 * 1024
    sim._gzip_bomb(sim.gzip_padding, b"")  # build the bomb before measuring
    tracemalloc.start()
    try:
        with pytest.raises(ChunkEncodingError) as err:
            await chunks.fetch_chunk("pkg", 0, 2047)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not err.value.retryable
    assert sim.bodies_sent[-1] < 64 * 1024  # what the server sent: a small body
    assert peak < 4 * 1024 * 1024  # what we held: far from 61 MiB
    assert sim.accept_encodings == ["identity"]  # what the server was told
    sim.gzip_padding = None
    assert await chunks.fetch_chunk("pkg", 0, 2047) == PACKAGE[:2048]
