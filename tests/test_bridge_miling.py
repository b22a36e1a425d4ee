"""The shared bridge's package safety, driven through the Miling kind.

A corrected upgrade request for the same version is fetched anew (the stale
download stops, its partial file goes), disk errors end as failures, and only the
current offer's partial download survives a restart.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN, SERVICE_INSTALL
from homeassistant.const import ATTR_ENTITY_ID, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.firmware_hub.const import (
    CONF_AUTO_DOWNLOAD,
    CONF_KIND,
    DOMAIN,
    EVENT_INSTALL_REQUESTED,
    EVENT_UPGRADE_FINISHED,
)
from custom_components.firmware_hub.core.bridge import BridgeFacts

from .helpers import wait_until
from .simulators.miling import MilingServerSimulator
from .test_miling import fast_miling  # noqa: F401 - the same short timings

DEVICE_ID = "20002"
DEVICE_TYPE = "TS"
UPDATE = "update.ts_20002_firmware"
STATUS = "sensor.ts_20002_firmware_status"
CLOUD = "binary_sensor.ts_20002_cloud_connection"
#: The package first announced, and the corrected one (same name and version).
OLD = os.urandom(307277)
NEW = os.urandom(308277)
CHUNKS = -(-len(OLD) // 2048)


@pytest.fixture
async def server(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncGenerator[MilingServerSimulator]:
    """A Miling upgrade server on loopback; clients stop before it."""
    sim = MilingServerSimulator()
    await sim.start()
    yield sim
    for entry in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_unload(entry.entry_id)
    await sim.stop()


async def _setup(
    hass: HomeAssistant, sim: MilingServerSimulator, **options: Any
) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"{DEVICE_TYPE} {DEVICE_ID}",
        unique_id=f"{sim.host}/{DEVICE_ID}",
        data={
            CONF_KIND: "miling",
            "host": sim.host,
            "ws_port": sim.ws_port,
            "http_port": sim.http_port,
            "device_id": DEVICE_ID,
            "device_type": DEVICE_TYPE,
            "prog_version": "200200",
            "max_package_mb": 64,
        },
        options=options,
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    return entry


async def _push(sim: MilingServerSimulator, data: bytes) -> None:
    answer = await sim.push_upgrade(
        device_id=DEVICE_ID,
        file_name="updateImage",
        data=data,
        prog_version="200300",
        device_type=DEVICE_TYPE,
    )
    assert answer is not None
    assert answer.status == 0


async def _install(hass: HomeAssistant) -> None:
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
    )


def _ready(entry: MockConfigEntry) -> bool:
    facts = entry.runtime_data.coordinator.data.facts
    assert isinstance(facts, BridgeFacts)
    return facts.ready_versions == ("200300",)


def _root(hass: HomeAssistant, entry: MockConfigEntry) -> Path:
    return Path(hass.config.path(DOMAIN, entry.entry_id))


def _files(hass: HomeAssistant, entry: MockConfigEntry) -> list[str]:
    root = _root(hass, entry)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _package_name(content: bytes) -> str:
    return f"package-{hashlib.sha256(content).hexdigest()[:16]}.bin"


async def test_corrected_request_replaces_ready_package(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """308277 bytes announced after 307277: the device gets the 308277 bytes."""
    entry = await _setup(hass, server)
    await _push(server, OLD)
    await wait_until(hass, lambda: _ready(entry))
    assert _files(hass, entry) == [_package_name(OLD)]

    await _push(server, NEW)
    await wait_until(hass, lambda: _files(hass, entry) == [_package_name(NEW)])
    await wait_until(hass, lambda: _ready(entry))
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _install(hass)
    assert requested[0].data["size"] == len(NEW) == 308277
    assert Path(requested[0].data["path"]).read_bytes() == NEW


async def test_corrected_request_stops_stale_download(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """A correction mid-download: the stale chunks stop and their file goes."""
    entry = await _setup(hass, server)
    server.delay = 0.01
    await _push(server, OLD)
    await wait_until(hass, lambda: server.requests_served >= CHUNKS // 4)
    server.delay = 0
    await _push(server, NEW)
    await wait_until(hass, lambda: _ready(entry))
    assert _files(hass, entry) == [_package_name(NEW)]
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _install(hass)
    assert Path(requested[0].data["path"]).read_bytes() == NEW


async def test_disk_error_fails_the_install(
    hass: HomeAssistant, server: MilingServerSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk that cannot be written: failed, a failure event, no package kept."""
    entry = await _setup(hass, server, **{CONF_AUTO_DOWNLOAD: False})
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await _push(server, NEW)
    await wait_until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)

    def pwrite(_fd: int, _data: bytes, _offset: int) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    monkeypatch.undo()
    assert err.value.translation_key == "package_storage_failed"
    assert hass.states.get(STATUS).state == "failed"
    assert hass.states.get(UPDATE).attributes["in_progress"] is False
    assert finished[-1].data["success"] is False
    assert not any(name.startswith("package-") for name in _files(hass, entry))


async def test_restart_keeps_only_the_current_partial(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """After a restart the offer's partial download resumes; a stale one is gone."""
    entry = await _setup(hass, server)
    server.delay = 0.01
    await _push(server, NEW)
    await wait_until(hass, lambda: server.requests_served >= CHUNKS // 3)
    assert await hass.config_entries.async_unload(entry.entry_id)
    served = server.requests_served
    root = _root(hass, entry)
    (root / ".chunks-stale.part").write_bytes(b"\0" * 4096)
    (root / ".chunks-stale.part.json").write_text(
        '{"size": 4096, "done": [[0, 2048]], "owner": "an offer long gone"}'
    )
    server.delay = 0
    await hass.config_entries.async_setup(entry.entry_id)
    await wait_until(hass, lambda: _ready(entry))
    assert _files(hass, entry) == [_package_name(NEW)]
    # The finished chunks were kept: about the rest was fetched, not everything.
    assert server.requests_served - served <= -(-len(NEW) // 2048) - CHUNKS // 3 + 16
