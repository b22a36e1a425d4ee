"""The ISAPI protocol layer: parsing, typed errors, authentication schemes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
import contextlib
from datetime import UTC, datetime, timedelta
import io
import json
from pathlib import Path
import ssl
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.firmware_hub.kinds.hikvision.protocol import (
    client as isapi_client,
    documents as isapi,
)
from custom_components.firmware_hub.kinds.hikvision.protocol.client import (
    AuthScheme,
    IsapiClient,
    UploadResult,
)
from custom_components.firmware_hub.kinds.hikvision.protocol.documents import (
    decode_response,
    find,
    options,
    parse_device_info,
    parse_xml,
    text,
)
from custom_components.firmware_hub.kinds.hikvision.protocol.errors import (
    IsapiAuthError,
    IsapiAuthSchemeError,
    IsapiConnectionError,
    IsapiError,
    IsapiHttpError,
    IsapiNotSupportedError,
    IsapiParseError,
    IsapiResponseError,
    IsapiTimeoutError,
)
from custom_components.firmware_hub.kinds.hikvision.protocol.upload import (
    UPLOAD_CHUNK_BYTES,
)

from .simulators.isapi import FileMode, IsapiCameraSimulator

FIXTURES = Path(__file__).parent / "fixtures" / "hikvision"
IPC = (FIXTURES / "DS-2CD2346G2-ISU" / "deviceInfo.xml").read_bytes()
NVR = (FIXTURES / "DS-7608NXI-I2" / "deviceInfo.xml").read_bytes()

NOT_SUPPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<ResponseStatus version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<statusCode>4</statusCode>
<statusString>Invalid Operation</statusString>
<subStatusCode>notSupport</subStatusCode>
<description>SW_ONLINE_UPGRADE_SUP not support.</description>
</ResponseStatus>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>
<DeviceInfo><serialNumber>&lol2;</serialNumber></DeviceInfo>"""


def test_namespaces_parse_alike() -> None:
    """hikvision.com, isapi.org and prefixed documents give the same content."""
    ipc = parse_device_info(*decode_response(200, "application/xml", IPC))
    nvr = parse_device_info(*decode_response(200, "application/xml", NVR))
    assert ipc.model == "DS-2CD2346G2-ISU/SL"
    assert ipc.full_version == "V5.7.18 build 240826"
    assert nvr.model == "DS-7608NXI-I2/8P/S"
    assert nvr.device_type == "NVR"
    prefixed = (
        b'<hik:DeviceInfo xmlns:hik="http://www.isapi.org/ver20/XMLSchema">'
        b"<hik:serialNumber>S1</hik:serialNumber>"
        b"<hik:firmwareVersion>V1.0</hik:firmwareVersion></hik:DeviceInfo>"
    )
    info = parse_device_info(*decode_response(200, "application/xml", prefixed))
    assert (info.serial_number, info.firmware_version, info.firmware_build) == (
        "S1",
        "V1.0",
        None,
    )


def test_entities_are_never_expanded() -> None:
    """A document declaring entities is refused, not expanded."""
    with pytest.raises(IsapiParseError):
        decode_response(200, "application/xml", BILLION_LAUGHS)


def test_response_status_errors() -> None:
    """NotSupport is its own error; other statuses carry their codes."""
    with pytest.raises(IsapiNotSupportedError) as err:
        decode_response(403, "application/xml", NOT_SUPPORT)
    assert err.value.status_code == 4
    assert err.value.description == "SW_ONLINE_UPGRADE_SUP not support."
    bad_xml = NOT_SUPPORT.replace(b">4<", b">6<").replace(
        b"notSupport", b"badXmlContent"
    )
    with pytest.raises(IsapiResponseError) as err2:
        decode_response(400, "application/xml", bad_xml)
    assert not isinstance(err2.value, IsapiNotSupportedError)
    assert (err2.value.status_code, err2.value.sub_status_code) == (6, "badXmlContent")
    ok = NOT_SUPPORT.replace(b">4<", b">1<").replace(b"notSupport", b"ok")
    assert decode_response(200, "application/xml", ok)[0] == "ResponseStatus"


def test_json_errors() -> None:
    """JSON answers: ok, an error status, an HTTP error without status."""
    ok = json.dumps({"statusCode": 1, "statusString": "ok"}).encode()
    assert decode_response(200, "application/json", ok) == (
        "",
        {"statusCode": 1, "statusString": "ok"},
    )
    error = json.dumps(
        {
            "statusCode": 4,
            "statusString": "Invalid Operation",
            "subStatusCode": "notSupport",
            "errorCode": 1073741825,
            "errorMsg": "notSupport",
        }
    ).encode()
    with pytest.raises(IsapiNotSupportedError) as err:
        decode_response(200, "application/json", error)
    assert err.value.description == "notSupport"
    with pytest.raises(IsapiHttpError) as http:
        decode_response(500, "application/json", b"{}")
    assert http.value.status == 500
    with pytest.raises(IsapiParseError):
        decode_response(200, "application/json", b"[1, 2]")


def test_http_errors_without_documents() -> None:
    """An HTML error page is an HTTP error; an HTML 200 is not ISAPI."""
    with pytest.raises(IsapiHttpError):
        decode_response(404, "text/html", b"<html>Document Error: Not Found</html")
    with pytest.raises(IsapiHttpError):
        decode_response(502, "text/plain", b"Bad gateway")
    with pytest.raises(IsapiParseError):
        decode_response(200, "text/plain", b"hello")
    with pytest.raises(IsapiHttpError):
        decode_response(404, "application/xml", b"<DeviceInfo/>")


def test_parsers_on_wrong_documents() -> None:
    """Documents of the wrong kind or without the key fields are typed errors."""
    with pytest.raises(IsapiParseError):
        isapi.parse_device_info("OnlineUpgradeStatus", {"status": "x"})
    with pytest.raises(IsapiParseError):
        isapi.parse_device_info("DeviceInfo", {"model": "no serial"})
    with pytest.raises(IsapiParseError):
        isapi.parse_upgrade_status("OnlineUpgradeStatus", {"percent": "5"})
    with pytest.raises(IsapiParseError):
        isapi.parse_upgrade_status("", {"status": "upgrading"})
    with pytest.raises(IsapiParseError):
        isapi.parse_download_status("", {"DownloadPackageStatus": {"progress": 5}})
    assert isapi.parse_download_status(
        "", {"DownloadPackageStatus": {"status": "downloading", "progress": "250"}}
    ) == isapi.TaskStatus("downloading", 100)
    assert isapi.parse_upgrade_status(
        "OnlineUpgradeStatus", {"status": "upgrading", "percent": "1e999"}
    ) == isapi.TaskStatus("upgrading", 0)
    assert isapi.parse_upgrade_version("OnlineUpgradeVersion", None).version is None


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """Real documents with bytes flipped, cut, duplicated or inserted."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 6))):
            if not data:
                break
            pos = draw(st.integers(0, len(data) - 1))
            action = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "dup"]))
            if action == "flip":
                data[pos] = draw(st.integers(0, 255))
            elif action == "cut":
                del data[pos : pos + draw(st.integers(1, 40))]
            elif action == "insert":
                data[pos:pos] = draw(
                    st.sampled_from(
                        [
                            b"<",
                            b">",
                            b"&",
                            b"&amp;",
                            b"<!--",
                            b"]]>",
                            b"\x00",
                            b"\xff\xfe",
                        ]
                    )
                )
            elif action == "truncate":
                del data[pos:]
            else:
                data[pos:pos] = data[pos : pos + draw(st.integers(1, 80))]
        return bytes(data)

    return mutate()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "status",
                    "progress",
                    "statusCode",
                    "subStatusCode",
                    "DownloadPackageStatus",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)

GARBLED = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    _mutations(IPC),
    _mutations(NVR),
    _mutations(NOT_SUPPORT),
    _json_values.map(lambda value: json.dumps(value).encode()),
    st.just(b"[" * 100_000),
    st.just(b"<a>" * 50_000),
    st.just(b'{"statusCode": 1e999, "status": "x", "progress": NaN}'),
)


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    body=GARBLED,
    status=st.sampled_from([200, 200, 400, 401, 403, 404, 500]),
    content_type=st.sampled_from(
        ["application/xml", "application/json", "text/html", ""]
    ),
)
def test_garbled_bodies_give_only_typed_errors(
    body: bytes, status: int, content_type: str
) -> None:
    """Whatever a device sends, the protocol layer raises only IsapiError."""
    try:
        root, content = decode_response(status, content_type, body)
    except IsapiError:
        return
    for parse in (
        isapi.parse_device_info,
        isapi.parse_upgrade_version,
        isapi.parse_download_status,
        isapi.parse_upgrade_status,
    ):
        try:
            parse(root, content)
        except IsapiError:
            continue


# --------------------------------------------------------------- over the network


@pytest.fixture
async def session(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """A plain aiohttp session, as Home Assistant's shared one."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def _client(
    session: aiohttp.ClientSession, sim: IsapiCameraSimulator, **kwargs: Any
) -> IsapiClient:
    options: dict[str, Any] = {
        "host": sim.host,
        "port": sim.port,
        "ssl": False,
        "username": "admin",
        "password": sim.password,
    }
    options.update(kwargs)
    return IsapiClient(session, **options)


@contextlib.asynccontextmanager
async def _plain_server(
    session: aiohttp.ClientSession,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    timeout: float = isapi_client.DEFAULT_TIMEOUT,  # noqa: ASYNC109
) -> AsyncIterator[tuple[IsapiClient, int]]:
    """Serve `handler` for every path on loopback; yield a client for it and the port."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield (
            IsapiClient(
                session,
                host="127.0.0.1",
                port=port,
                ssl=False,
                username="a",
                password="b",
                timeout=timeout,
            ),
            port,
        )
    finally:
        await runner.cleanup()


async def test_digest_nonce_is_reused(
    session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """Against the NVR's domain="::" challenge, only the first request pays a 401."""
    nvr = IsapiCameraSimulator(device="DS-7608NXI-I2")
    await nvr.start()
    try:
        client = _client(session, nvr)
        for _ in range(10):
            info = await client.get_device_info()
        assert info.model == "DS-7608NXI-I2/8P/S"
        assert nvr.unauthorized_count == 1
        assert nvr.request_count == 11
        # A reboot invalidates the nonce: one new challenge, answered, no error.
        await nvr.reboot()
        await nvr.wait_online()
        await client.get_device_info()
        assert nvr.unauthorized_count == 2
    finally:
        await nvr.stop()


def _tls_context(directory: Path) -> ssl.SSLContext:
    """Return a server TLS context with a throw-away self-signed 127.0.0.1 certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def _schemes_sent(sim: IsapiCameraSimulator) -> set[str]:
    return {record.authorization for record in sim.requests}


async def test_basic_auth_over_https(
    session: aiohttp.ClientSession, socket_enabled: None, tmp_path: Path
) -> None:
    """A device that challenges with Basic gets Basic, over HTTPS only."""
    sim = IsapiCameraSimulator(auth_scheme="basic", ssl_context=_tls_context(tmp_path))
    await sim.start()
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False)
        ) as tls_session:
            client = _client(tls_session, sim, ssl=True)
            assert (await client.get_device_info()).firmware_version == "V5.7.18"
            assert (await client.get_upgrade_version()).version == (
                "V5.7.20 build 250110"
            )
            assert client.auth_scheme is AuthScheme.BASIC
            assert _schemes_sent(sim) == {"", "basic"}
            with pytest.raises(IsapiAuthError) as err:
                await _client(
                    tls_session, sim, ssl=True, password="wrong"
                ).get_device_info()
            assert not isinstance(err.value, IsapiAuthSchemeError)
    finally:
        await sim.stop()


async def test_basic_challenge_over_http_sends_no_password(
    session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """Over plain HTTP a Basic challenge is refused: no credentials in clear."""
    sim = IsapiCameraSimulator(auth_scheme="basic")
    await sim.start()
    try:
        client = _client(session, sim)
        for _ in range(2):
            with pytest.raises(IsapiAuthSchemeError):
                await client.get_device_info()
        assert client.auth_scheme is None
        assert sim.request_count == 2
        assert _schemes_sent(sim) == {""}
    finally:
        await sim.stop()


@pytest.mark.parametrize("tls", [False, True])
async def test_no_downgrade_after_digest(
    session: aiohttp.ClientSession, socket_enabled: None, tmp_path: Path, tls: bool
) -> None:
    """Once Digest worked, a Basic challenge (a man in the middle) is refused."""
    sim = IsapiCameraSimulator(ssl_context=_tls_context(tmp_path) if tls else None)
    await sim.start()
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False)
        ) as any_session:
            client = _client(any_session, sim, ssl=tls)
            await client.get_device_info()
            assert client.auth_scheme is AuthScheme.DIGEST
            sim.auth_scheme = "basic"
            with pytest.raises(IsapiAuthSchemeError):
                await client.get_device_info()
            assert client.auth_scheme is AuthScheme.DIGEST
        assert "basic" not in _schemes_sent(sim)
        assert sim.requests[-1].status == 401
    finally:
        await sim.stop()


async def test_wrong_password(
    session: aiohttp.ClientSession, camera: IsapiCameraSimulator
) -> None:
    """Refused credentials raise IsapiAuthError after one retry, not a loop."""
    with pytest.raises(IsapiAuthError):
        await _client(session, camera, password="wrong").get_device_info()
    assert camera.unauthorized_count == 2


async def test_connection_errors(
    session: aiohttp.ClientSession, camera: IsapiCameraSimulator
) -> None:
    """Refused connections and silent servers raise connection/timeout errors."""
    client = _client(session, camera)
    await camera.go_offline()
    with pytest.raises(IsapiConnectionError):
        await client.get_device_info()

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    async with _plain_server(session, slow, timeout=0.2) as (silent, port):
        with pytest.raises(IsapiTimeoutError):
            await silent.get_device_info()
        assert port > 0


async def test_oversized_body(
    session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """A body larger than any ISAPI document is refused, not buffered."""

    async def huge(_request: web.Request) -> web.Response:
        return web.Response(
            body=b"<a>" + b"x" * (isapi_client.MAX_BODY_BYTES + 10) + b"</a>"
        )

    async with _plain_server(session, huge) as (client, _port):
        with pytest.raises(IsapiParseError):
            await client.get_device_info()


async def test_expired_nonce_is_renewed(
    session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """An expired nonce gets a stale=TRUE challenge, answered once, no auth error."""
    sim = IsapiCameraSimulator(nonce_lifetime=0.05)
    await sim.start()
    try:
        client = _client(session, sim)
        await client.get_device_info()
        await asyncio.sleep(0.1)
        sim.reset_stats()
        await client.get_device_info()
        assert sim.unauthorized_count == 1
        assert sim.request_count == 2
    finally:
        await sim.stop()


async def test_body_arriving_in_pieces(
    session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """A document sent in several TCP writes is read whole, not cut at the first."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        await response.prepare(request)
        for start in range(0, len(NVR), 200):
            await response.write(NVR[start : start + 200])
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async with _plain_server(session, trickle) as (client, _port):
        info = await client.get_device_info()
    assert info.model == "DS-7608NXI-I2/8P/S"
    assert info.device_type == "NVR"


async def test_unchanged_device_info_is_reused(
    session: aiohttp.ClientSession, camera: IsapiCameraSimulator
) -> None:
    """Polls read the camera every time; an unchanged answer is not parsed again."""
    client = _client(session, camera)
    first = await client.get_device_info()
    assert await client.get_device_info() is first
    camera.firmware_version = "V5.7.20"
    changed = await client.get_device_info()
    assert changed is not first
    assert changed.firmware_version == "V5.7.20"
    assert await client.get_device_info() is changed
    # Four answered reads (the first request also met the Digest challenge).
    answered = (
        camera.count("GET", "/ISAPI/System/deviceInfo") - camera.unauthorized_count
    )
    assert answered == 4


# --------------------------------------------------------------- firmware files


def test_download_status_fields() -> None:
    """The reference's download status: sizes, speed and the time left are read."""
    status = isapi.parse_download_status(
        "",
        {
            "DownloadPackageStatus": {
                "status": "downloading",
                "total": 78.4,
                "remain": 40.2,
                "speed": 4.2,
                "remainTime": 9,
                "progress": 48,
            }
        },
    )
    assert status == isapi.TaskStatus("downloading", 48, 78.4, 40.2, 4.2, 9)
    garbled = isapi.parse_download_status(
        "", {"status": "pause", "speed": "NaN", "remainTime": "-5", "total": "x"}
    )
    assert garbled == isapi.TaskStatus("pause", 0, None, None, None, 0)


def test_upgrade_progress_document() -> None:
    """`upgradeStatus` (a file being flashed): upgrading and percent."""
    assert isapi.parse_upgrade_progress(
        "upgradeStatus", {"upgrading": "true", "percent": "42"}
    ) == isapi.UpgradeProgress(upgrading=True, percent=42)
    with pytest.raises(IsapiParseError):
        isapi.parse_upgrade_progress("upgradeStatus", {"percent": "42"})
    with pytest.raises(IsapiParseError):
        isapi.parse_upgrade_progress("ResponseStatus", {"upgrading": "true"})


class _CountingFile(io.FileIO):
    """A firmware file that records every read."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "rb")
        self.reads: list[int] = []

    def read(self, size: int = -1, /) -> bytes:
        self.reads.append(size)
        return super().read(size)


async def test_upload_streams_the_file_in_pieces(
    session: aiohttp.ClientSession, camera: IsapiCameraSimulator, tmp_path: Path
) -> None:
    """The file goes out in bounded reads, never whole; progress counts bytes."""
    path = tmp_path / "digicap.dav"
    path.write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    client = _client(session, camera)
    await client.get_device_info()  # as the install does: Digest known up front
    sent: list[tuple[int, int]] = []
    with _CountingFile(path) as file:
        result = await client.upload_firmware(
            file, progress=lambda done, total: sent.append((done, total))
        )
        reads = file.reads
    assert result is UploadResult.ACCEPTED
    assert max(reads) <= UPLOAD_CHUNK_BYTES
    assert -1 not in reads
    assert sent[-1] == (path.stat().st_size, path.stat().st_size)
    assert len(sent) >= path.stat().st_size // UPLOAD_CHUNK_BYTES
    (received,) = camera.received_files
    assert received.size == path.stat().st_size
    assert received.content_type == "application/octet-stream"
    # Sent once: no challenge made it go out twice.
    assert [r.status for r in camera.requests if r.method == "PUT"] == [200]


class _ShrinkingFile(io.FileIO):
    """A firmware file cut short while it is sent (another program truncated it)."""

    def read(self, size: int = -1, /) -> bytes:
        return super().read(size) if self.tell() < 100_000 else b""


async def test_upload_of_a_file_that_ends_early(
    session: aiohttp.ClientSession, camera: IsapiCameraSimulator, tmp_path: Path
) -> None:
    """A file that ends before its size: OSError, not a file the camera accepted."""
    path = tmp_path / "digicap.dav"
    path.write_bytes(b"\x01" * 300_000)
    client = _client(session, camera)
    await client.get_device_info()
    with _ShrinkingFile(path, "rb") as file, pytest.raises(OSError, match="ended"):
        await client.upload_firmware(file)
    assert camera.received_files == []  # the camera never got a whole file


async def test_upload_after_a_reboot_starts_over_with_a_fresh_nonce(
    session: aiohttp.ClientSession, camera: IsapiCameraSimulator, tmp_path: Path
) -> None:
    """A stale nonce: the device challenges, the file is sent again from its start."""
    path = tmp_path / "digicap.dav"
    path.write_bytes(b"\x5a" * 300_000)
    client = _client(session, camera)
    await client.get_device_info()
    await camera.reboot()  # every nonce the client holds goes stale
    await camera.wait_online()
    camera.reset_stats()
    with path.open("rb") as file:
        assert await client.upload_firmware(file) is UploadResult.ACCEPTED
    assert [r.status for r in camera.requests] == [401, 200]
    assert camera.received_files[-1].size == 300_000


@pytest.mark.parametrize(
    ("mode", "result"),
    [
        (FileMode.REBOOT_REQUIRED, UploadResult.REBOOT_REQUIRED),
        (FileMode.DROP, UploadResult.DROPPED),
    ],
)
async def test_upload_answers(
    session: aiohttp.ClientSession,
    camera: IsapiCameraSimulator,
    tmp_path: Path,
    mode: FileMode,
    result: UploadResult,
) -> None:
    """A "Reboot Required" answer, and a connection closed once the file is in, are accepted."""
    path = tmp_path / "digicap.dav"
    path.write_bytes(b"\x01" * 100_000)
    camera.file_mode = mode
    with path.open("rb") as file:
        assert await _client(session, camera).upload_firmware(file) is result


async def test_upload_refused(
    session: aiohttp.ClientSession, camera: IsapiCameraSimulator, tmp_path: Path
) -> None:
    """A package for another model: the typed ResponseStatus error, its code kept."""
    path = tmp_path / "digicap.dav"
    path.write_bytes(b"\x01" * 1000)
    camera.file_mode = FileMode.MISMATCH
    with path.open("rb") as file, pytest.raises(IsapiResponseError) as err:
        await _client(session, camera).upload_firmware(file)
    assert err.value.sub_status_code == "badDevType"
    assert err.value.description == "upgrade packet mismatch"


async def test_version_check_now_or_cached(
    session: aiohttp.ClientSession, camera: IsapiCameraSimulator
) -> None:
    """The user's check asks the camera to check now; the periodic one does not."""
    client = _client(session, camera)
    await client.get_upgrade_version()
    await client.get_upgrade_version(check_now=True)
    queries = [r.query for r in camera.requests if r.path.endswith("/version")]
    assert queries[-2:] == ["", "check=true"]


def test_capability_choices_are_read() -> None:
    """`opt` (a capability's choices) is kept; every other attribute is dropped."""
    root, caps = parse_xml(
        '<OnlineUpgradeCap xmlns="http://www.isapi.org/ver20/XMLSchema" version="2.0">'
        '<firmwareNum max="1"/>'
        '<rebootAfterUpgrade opt="auto,manual">auto</rebootAfterUpgrade>'
        "<ManualDownloadPackage>"
        '<supportOperation opt="start, cancel,pause">start</supportOperation>'
        "</ManualDownloadPackage>"
        "</OnlineUpgradeCap>"
    )
    assert root == "OnlineUpgradeCap"
    assert caps["firmwareNum"] is None
    assert text(find(caps, "rebootAfterUpgrade")) == "auto"
    operation = find(caps, "supportOperation")
    assert options(operation) == {"start", "cancel", "pause"}
    assert text(operation) == "start"
    assert options(caps["firmwareNum"]) == frozenset()
    assert options({"@opt": 3}) == frozenset()
