"""EnOS download policy: the user's allowed hosts, the package cap, redaction.

The backend is driven directly (mosquitto, the EnOS cloud and file servers on
loopback) with the options the Home Assistant layer passes it:
`allowed_download_hosts` and `max_package_bytes`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
import socket

import aiohttp
from homeassistant.core import HomeAssistant
import pytest

from custom_components.firmware_hub.core.bridge import BridgeSettings, MemoryPersistence
from custom_components.firmware_hub.core.packages import PackageStore, RetryPolicy
from custom_components.firmware_hub.kinds.enos.backend import (
    EnosBackend,
    EnosBridgeTiming,
)
from custom_components.firmware_hub.kinds.enos.protocol.client import EnosTiming
from custom_components.firmware_hub.kinds.enos.protocol.downloads import (
    parse_host_list,
    redact_text,
    redact_url,
)
from custom_components.firmware_hub.kinds.enos.protocol.signing import EnosCredentials

from .helpers import unload_all, wait_until
from .simulators.enos import EnosSimulator, firmware_bytes, firmware_offer

PK = "pkPolicy"
DK = "devPolicy"
SECRET = "P0licy-Secret"
V2 = firmware_bytes("2.0.0", 100 * 1024 + 7)
TIMING = EnosBridgeTiming(
    protocol=EnosTiming(
        connect_timeout=3, request_timeout=3, reconnect_min=0.05, reconnect_max=0.3
    ),
    download=RetryPolicy(attempts=2, backoff=0.01, timeout=3),
    progress_interval=0,
    first_connect_retry=0.05,
)


@pytest.fixture
async def sim(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncGenerator[EnosSimulator]:
    """EnOS on loopback (plain TCP) with the device registered."""
    simulator = EnosSimulator()
    simulator.add_device(PK, DK, SECRET)
    await simulator.start()
    yield simulator
    await unload_all(hass)  # clients stop before the simulator
    await simulator.stop()


@asynccontextmanager
async def _backend(
    hass: HomeAssistant,
    sim: EnosSimulator,
    tmp_path: Path,
    *,
    file_base_url: str | None = None,
    allowed: str | None = None,
    max_bytes: int = 64 * 1024 * 1024,
) -> AsyncIterator[EnosBackend]:
    # Its own session (Home Assistant's test session cannot resolve names), on
    # IPv4: the test sandbox allows connections to 127.0.0.1 only.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(family=socket.AF_INET)
    )
    backend = EnosBackend(
        session,
        host=sim.host,
        port=sim.port,
        tls=False,
        credentials=EnosCredentials(PK, DK, SECRET),
        installed_version="1.0.0",
        file_base_url=file_base_url,
        http_broker_url=None,
        ca_file=None,
        bridge=BridgeSettings(
            store=PackageStore(tmp_path / "packages"),
            persistence=MemoryPersistence(),
            handoff_timeout=60,
            auto_download=False,
        ),
        timing=TIMING,
        allowed_download_hosts=allowed,
        max_package_bytes=max_bytes,
    )
    await backend.async_restore()
    run = asyncio.get_running_loop().create_task(backend.async_run())
    try:
        await wait_until(hass, lambda: backend.state.connected)
        yield backend
    finally:
        await backend.async_close()  # the client before the servers
        await run
        await session.close()


async def _install(hass: HomeAssistant, backend: EnosBackend) -> Path:
    await wait_until(hass, lambda: backend.state.latest_version == "2.0.0")
    await backend.async_install("2.0.0", lambda _state: None)
    assert backend.handoff is not None
    return Path(backend.handoff.path)


async def test_a_listed_name_may_resolve_to_loopback(
    hass: HomeAssistant, sim: EnosSimulator, tmp_path: Path
) -> None:
    """`localhost` as file base (loopback) is fetched from once the user lists it.

    Every hop counts: the redirect to the same listed host is followed.
    """
    base = f"http://localhost:{sim.files.port}/files"
    sim.files.redirect("fw.bin", "/files/fw-real.bin")
    sim.files.add("fw-real.bin", V2)
    async with _backend(
        hass, sim, tmp_path, file_base_url=base, allowed="LOCALHOST."
    ) as backend:
        await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", "fw.bin", V2))
        path = await _install(hass, backend)
        assert path.read_bytes() == V2
    assert [r.name for r in sim.files.requests] == ["fw.bin", "fw-real.bin"]


async def test_a_listed_address_is_allowed(
    hass: HomeAssistant, sim: EnosSimulator, tmp_path: Path
) -> None:
    """A name resolving to an address the user listed is fetched from."""
    base = f"http://localhost:{sim.files.port}/files"
    sim.files.add("fw.bin", V2)
    async with _backend(
        hass, sim, tmp_path, file_base_url=base, allowed="127.0.0.1, ::1"
    ) as backend:
        await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", "fw.bin", V2))
        assert (await _install(hass, backend)).read_bytes() == V2
    assert [r.status for r in sim.files.requests] == [200]


async def test_max_package_bytes_option(
    hass: HomeAssistant, sim: EnosSimulator, tmp_path: Path
) -> None:
    """A cap below the announced size: the push is refused and nothing fetched."""
    url = sim.files.add("fw.bin", V2)
    async with _backend(hass, sim, tmp_path, max_bytes=100 * 1024) as backend:
        msg_id = await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", url, V2))
        reply = await sim.cloud.wait_for_upgrade_reply(msg_id)
        assert reply.raw["code"] == 2000
        message = await sim.cloud.wait_for_progress(-2)
        assert message.params["desc"] == "package larger than the device accepts"
        assert backend.state.latest_version == "1.0.0"
    assert sim.files.requests == []


def test_parse_host_list() -> None:
    """Names and addresses, normalized; URLs, paths and ports are refused."""
    assert parse_host_list(" Files.Example.com., 10.0.0.5 ,[fd00::1],, ") == {
        "files.example.com",
        "10.0.0.5",
        "fd00::1",
    }
    assert parse_host_list(None) == frozenset()
    for bad in ("http://x", "host:8080", "a/b", "two words"):
        with pytest.raises(ValueError, match=r"\w"):
            parse_host_list(f"ok.example, {bad}")


def test_redaction() -> None:
    """Query strings and session ids are taken out of URLs and texts."""
    assert redact_url("https://cdn/x.bin?sig=abc#frag") == "https://cdn/x.bin?…"
    assert redact_url("https://cdn/x.bin") == "https://cdn/x.bin"
    text = redact_text(
        "GET http://b/file/download?sessionId=s-1&fileUri=x failed; sessionId=s-2"
    )
    assert "s-1" not in text
    assert "s-2" not in text
    assert "http://b/file/download?…" in text
