"""The Miling bridge end to end: config flow, offers, chunked download, hand-off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import hashlib
import json
import logging
import os
from pathlib import Path
import socket
from typing import Any

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN, SERVICE_INSTALL
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.firmware_hub.const import (
    CONF_AUTO_DOWNLOAD,
    CONF_CHECK_INTERVAL,
    CONF_HANDOFF_TIMEOUT,
    CONF_KIND,
    CONF_MAX_CONCURRENT_INSTALLS,
    DOMAIN,
    EVENT_INSTALL_REQUESTED,
    EVENT_UPGRADE_FINISHED,
)
from custom_components.firmware_hub.core.bridge import BridgeFacts
from custom_components.firmware_hub.core.retry import Backoff
from custom_components.firmware_hub.kinds.miling import (
    backend as miling_backend,
    fetch as miling_fetch,
)
from custom_components.firmware_hub.kinds.miling.spec import CONF_MAX_REQUESTS_IN_FLIGHT

from .helpers import unload_all, wait_until as _until
from .simulators.miling import (
    CorruptMd5,
    MilingServerSimulator,
    Registration,
    UpgradeAnswer,
)

DEVICE_ID = "10001"
DEVICE_TYPE = "TS"
UPDATE = "update.ts_10001_firmware"
STATUS = "sensor.ts_10001_firmware_status"
CLOUD = "binary_sensor.ts_10001_cloud_connection"
PACKAGE = os.urandom(300 * 1024 + 77)
TOTAL_CHUNKS = -(-len(PACKAGE) // 2048)


@pytest.fixture(autouse=True)
def fast_miling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry chunks and reconnect in milliseconds, not seconds."""
    monkeypatch.setattr(
        miling_backend,
        "DEFAULT_TIMING",
        miling_backend.MilingTiming(
            fetch=miling_fetch.FetchTiming(
                attempts=10, retry=Backoff(initial=0.001, maximum=0.01)
            ),
            request_timeout=3,
            reconnect=Backoff(first=0.01, initial=0.02, maximum=0.1),
            stable_after=1,
        ),
    )


@pytest.fixture
async def server(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncGenerator[MilingServerSimulator]:
    """A Miling upgrade server on loopback; its clients stop before it does."""
    sim = MilingServerSimulator()
    await sim.start()
    yield sim
    await unload_all(hass)
    await sim.stop()


def _data(sim: MilingServerSimulator, **overrides: Any) -> dict[str, Any]:
    return {
        "host": sim.host,
        "ws_port": sim.ws_port,
        "http_port": sim.http_port,
        "device_id": DEVICE_ID,
        "device_type": DEVICE_TYPE,
        "prog_version": "200200",
        "max_package_mb": 64,
        **overrides,
    }


def _entry(sim: MilingServerSimulator, **options: Any) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"{DEVICE_TYPE} {DEVICE_ID}",
        unique_id=f"{sim.host}/{DEVICE_ID}",
        data={CONF_KIND: "miling", **_data(sim)},
        options=options,
    )


async def _setup(
    hass: HomeAssistant, sim: MilingServerSimulator, **options: Any
) -> MockConfigEntry:
    entry = _entry(sim, **options)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await _until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    return entry


def _package_files(hass: HomeAssistant, entry: MockConfigEntry) -> list[str]:
    root = Path(hass.config.path(DOMAIN, entry.entry_id))
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


async def _push(sim: MilingServerSimulator, **kwargs: Any) -> int:
    args: dict[str, Any] = {
        "device_id": DEVICE_ID,
        "file_name": "updateImage",
        "data": PACKAGE,
        "prog_version": "200300",
        "device_type": DEVICE_TYPE,
    }
    args.update(kwargs)
    answer = await sim.push_upgrade(**args)
    assert answer is not None
    return answer.status


def _ready(hass: HomeAssistant) -> bool:
    """Return True once 200300 is offered and its package downloaded and verified.

    (Offered alone is not enough: the background download starts a moment later,
    and an install pressed then meets an entity in progress.)
    """
    entries = hass.config_entries.async_loaded_entries(DOMAIN)
    facts = entries[0].runtime_data.coordinator.data.facts if entries else None
    return (
        hass.states.get(STATUS).state == "idle"
        and hass.states.get(UPDATE).attributes.get("latest_version") == "200300"
        and isinstance(facts, BridgeFacts)
        and "200300" in facts.ready_versions
    )


async def _report(hass: HomeAssistant, entry: MockConfigEntry, **data: Any) -> None:
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, entry.unique_id or ""), entry.entry_id
    )
    assert device is not None
    await hass.services.async_call(
        DOMAIN,
        "report_install_result",
        {"device_id": device.id, **data},
        blocking=True,
    )


# ------------------------------------------------------------------ config flow


async def _miling_form(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "miling"}
    )
    assert result["step_id"] == "miling"
    return str(result["flow_id"])


async def test_flow_registration(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """Refused, then accepted: the entry is created after a real registration."""
    flow_id = await _miling_form(hass)
    server.register_status = 3
    result = await hass.config_entries.flow.async_configure(flow_id, _data(server))
    assert result["errors"] == {"base": "registration_refused"}
    server.register_status = 0
    result = await hass.config_entries.flow.async_configure(flow_id, _data(server))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "TS 10001"
    assert result["result"].unique_id == f"127.0.0.1/{DEVICE_ID}"
    assert server.registrations[-1].prog_version == "200200"
    await hass.async_block_till_done()

    flow_id = await _miling_form(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _data(server))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_flow_server_down(hass: HomeAssistant, socket_enabled: None) -> None:
    """Nothing listens: cannot_connect."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    flow_id = await _miling_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            "host": "127.0.0.1",
            "ws_port": port,
            "http_port": port,
            "device_id": DEVICE_ID,
            "device_type": DEVICE_TYPE,
            "prog_version": "1",
            "max_package_mb": 64,
        },
    )
    assert result["errors"] == {"base": "cloud_cannot_connect"}


async def test_reconfigure_and_options(
    hass: HomeAssistant,
    server: MilingServerSimulator,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    """Reconfigure moves to another server (the unique id follows); bridge options."""
    entry = await _setup(hass, server)
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, entry.unique_id), entry.entry_id
    )
    assert device is not None
    update_entity = entity_registry.async_get(UPDATE)
    assert update_entity is not None
    other = MilingServerSimulator()
    await other.start()
    try:
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {**_data(other), "host": "localhost"}
        )
        assert result["reason"] == "reconfigure_successful"
        assert entry.data["ws_port"] == other.ws_port
        assert entry.data["host"] == "localhost"
        assert entry.unique_id == f"localhost/{entry.data['device_id']}"
        await hass.async_block_till_done()
        await _until(hass, lambda: len(other.registrations) >= 2)
        # The same device and entities, under the new unique id.
        moved = device_registry.async_get(device.id)
        assert moved is not None
        assert moved.identifiers == {(DOMAIN, entry.unique_id)}
        moved_entity = entity_registry.async_get(UPDATE)
        assert moved_entity is not None
        assert moved_entity.id == update_entity.id
        assert moved_entity.unique_id.startswith(f"{entry.unique_id}_")
        assert hass.states.get(UPDATE) is not None

        result = await hass.config_entries.options.async_init(entry.entry_id)
        # The Miling server pushes its upgrade requests: no check interval.
        assert CONF_CHECK_INTERVAL not in {
            str(key) for key in result["data_schema"].schema
        }
        result = await hass.config_entries.options.async_configure(
            result["flow_id"],
            {
                CONF_AUTO_DOWNLOAD: False,
                CONF_HANDOFF_TIMEOUT: 5,
                CONF_MAX_CONCURRENT_INSTALLS: 3,
            },
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert entry.options == {
            CONF_AUTO_DOWNLOAD: False,
            CONF_HANDOFF_TIMEOUT: 5,
            CONF_MAX_CONCURRENT_INSTALLS: 3,
            CONF_MAX_REQUESTS_IN_FLIGHT: 32,  # the default
        }
        await hass.async_block_till_done()
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await unload_all(hass)
        await other.stop()


# ------------------------------------------------------------------ the bridge


async def test_push_download_install_report(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """Push → 0 → download → hand-off → result → registration with the new version."""
    entry = await _setup(hass, server)
    assert server.registrations[-1].prog_version == "200200"
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)

    assert await _push(server) == 0
    await _until(hass, lambda: _ready(hass))
    state = hass.states.get(UPDATE)
    assert state.state == STATE_ON
    assert state.attributes["installed_version"] == "200200"

    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
    )
    # Home Assistant resets its own progress flag when install returns; ours stays.
    state = hass.states.get(UPDATE)
    assert state.attributes["in_progress"] is True
    # The dialog says why it waits, and until when.
    assert state.attributes["release_summary"].startswith("Handed to the device at ")
    assert " until " in state.attributes["release_summary"]
    assert hass.states.get(STATUS).state == "waiting_for_device"
    assert len(requested) == 1
    event = requested[0].data
    assert Path(event["path"]).read_bytes() == PACKAGE
    assert event["size"] == len(PACKAGE)
    assert event["md5"] == hashlib.md5(PACKAGE).hexdigest()
    assert event["sha256"] == hashlib.sha256(PACKAGE).hexdigest()
    assert event["version"] == "200300"
    assert event["kind"] == "miling"
    assert event["entry_id"] == entry.entry_id
    assert server.requests_served == -(-len(PACKAGE) // 2048)

    registrations = len(server.registrations)
    await _report(hass, entry, success=True, version="200300")
    await _until(hass, lambda: len(server.registrations) > registrations)
    assert server.registrations[-1].prog_version == "200300"
    state = hass.states.get(UPDATE)
    assert state.state == STATE_OFF
    assert state.attributes["installed_version"] == "200300"
    assert state.attributes["in_progress"] is False
    assert [e.data["success"] for e in finished] == [True]
    assert finished[0].data["version"] == "200300"
    assert _package_files(hass, entry) == []

    with pytest.raises(ServiceValidationError) as err:
        await _report(hass, entry, success=True)
    assert err.value.translation_key == "no_pending_install"


@pytest.mark.parametrize(
    ("push", "status"),
    [
        ({"device_type": "TX"}, -1),
        ({"file_name": "../../etc/passwd"}, -1),
        ({"file_name": "a/b"}, -1),
        ({"file_size": 65 * 1024 * 1024}, -2),
    ],
)
async def test_refused_requests(
    hass: HomeAssistant,
    server: MilingServerSimulator,
    push: dict[str, Any],
    status: int,
) -> None:
    """Mismatched type, unsafe names and oversize packages are refused; nothing fetched."""
    entry = await _setup(hass, server)
    assert await _push(server, **push) == status
    await hass.async_block_till_done()
    assert server.http_requests == 0
    assert hass.states.get(UPDATE).state == STATE_OFF
    assert _package_files(hass, entry) == []
    assert not Path(hass.config.path("etc")).exists()


async def test_corrupt_md5_once_is_refetched(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """A chunk whose MD5 fails once is fetched again; the file is exact."""
    await _setup(hass, server)
    server.corrupt_md5 = CorruptMd5.ONCE
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _push(server)
    await _until(hass, lambda: _ready(hass))
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
    )
    assert Path(requested[0].data["path"]).read_bytes() == PACKAGE
    assert all(count == 2 for count in server.range_requests.values())


async def test_corrupt_md5_always_fails(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """A chunk that never passes its MD5 fails the download: no event, no file."""
    entry = await _setup(hass, server, **{CONF_AUTO_DOWNLOAD: False})
    server.corrupt_md5 = CorruptMd5.ALWAYS
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await _push(server)
    await _until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    assert server.http_requests == 0  # auto_download off: nothing until Install
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
        )
    assert err.value.translation_key == "checksum_mismatch"
    assert requested == []
    assert finished[0].data["error"] == "checksum_mismatch"
    assert hass.states.get(STATUS).state == "failed"
    assert _package_files(hass, entry) == []


async def test_status_2_and_dropped_connections(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """10 % Status 2 and dropped responses: completes, finished chunks fetched once."""
    await _setup(hass, server)
    server.status2_fraction = 0.1
    server.drop_fraction = 0.05
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _push(server)
    await _until(hass, lambda: _ready(hass))
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
    )
    assert Path(requested[0].data["path"]).read_bytes() == PACKAGE
    assert server.requests_served == -(-len(PACKAGE) // 2048)
    assert sum(server.range_requests.values()) > server.requests_served


@pytest.mark.parametrize(
    ("load_condition", "expected", "delay"), [(0, 32, 0.1), (4, 2, 0.03)]
)
async def test_load_condition_limits_requests_in_flight(
    hass: HomeAssistant,
    server: MilingServerSimulator,
    load_condition: int,
    expected: int,
    delay: float,
) -> None:
    """An idle server gets up to 32 chunk requests at once, a loaded one 32 >> 4.

    The idle server answers in 100 ms: the window grows with the throughput, which
    grows with it as long as the round trip, not the test machine's CPU, is what
    limits it (at 30 ms, a machine busy with other work stopped the growth at 30).
    """
    await _setup(hass, server)
    server.delay = delay
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _push(server, load_condition=load_condition)
    await _until(hass, lambda: _ready(hass) and server.requests_served == TOTAL_CHUNKS)
    await _install(hass)
    assert Path(requested[0].data["path"]).read_bytes() == PACKAGE
    assert max(server.concurrency[:2]) <= 2  # it starts small
    assert server.max_concurrent == expected


async def test_rising_load_condition_mid_download(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """The same offer pushed again with LoadCondition 5 caps the running download."""
    await _setup(hass, server)
    server.delay = 0.03
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _push(server)
    await _until(hass, lambda: server.http_requests >= 40)
    assert await _push(server, load_condition=5) == 0  # answered after the cap
    seen = server.http_requests
    await _until(hass, lambda: _ready(hass) and server.requests_served == TOTAL_CHUNKS)
    await _install(hass)
    assert Path(requested[0].data["path"]).read_bytes() == PACKAGE
    assert server.max_concurrent > 8
    # Up to 32 requests sent before the cap may still arrive; then one at a time.
    assert max(server.concurrency[seen + 32 :]) == 1


async def test_max_requests_in_flight_option(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """The option (default 32, 1..64) reaches the download: never more in flight."""
    entry = await _setup(hass, server)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = result["data_schema"].schema
    key = next(k for k in schema if str(k) == CONF_MAX_REQUESTS_IN_FLIGHT)
    assert key.default() == 32
    answers = {
        CONF_AUTO_DOWNLOAD: True,
        CONF_HANDOFF_TIMEOUT: 30,
        CONF_MAX_CONCURRENT_INSTALLS: 2,
    }
    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(
            result["flow_id"], {**answers, CONF_MAX_REQUESTS_IN_FLIGHT: 65}
        )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**answers, CONF_MAX_REQUESTS_IN_FLIGHT: 4}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_MAX_REQUESTS_IN_FLIGHT] == 4
    await hass.async_block_till_done()  # the entry reloads with it
    await _until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    key = next(k for k in result["data_schema"].schema if str(k) == key)
    assert key.default() == 4
    hass.config_entries.options.async_abort(result["flow_id"])

    server.delay = 0.03
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _push(server)
    await _until(hass, lambda: _ready(hass) and server.requests_served == TOTAL_CHUNKS)
    await _install(hass)
    assert Path(requested[0].data["path"]).read_bytes() == PACKAGE
    assert server.max_concurrent == 4


async def test_missing_file_is_final(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """Status 1 (file missing) fails at once, without retries."""
    entry = await _setup(hass, server, **{CONF_AUTO_DOWNLOAD: False})
    server.file_missing = True
    await _push(server)
    await _until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
        )
    assert err.value.translation_key == "download_failed"
    assert _package_files(hass, entry) == []


async def _interrupt_download(
    hass: HomeAssistant, server: MilingServerSimulator, entry: MockConfigEntry
) -> dict[int, str]:
    """Push, let a third of the chunks arrive, unload; return the saved MD5 ledger.

    The partial file, its range state and its MD5 ledger stay on disk.
    """
    server.delay = 0.01
    await _push(server)
    await _until(hass, lambda: server.requests_served >= TOTAL_CHUNKS // 3)
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert server.requests_served < TOTAL_CHUNKS
    server.delay = 0
    server.reset_stats()
    names = _package_files(hass, entry)
    assert [n for n in names if n.endswith(".part.md5.json")] == [_partial(entry)[1]]
    ledger = json.loads(_root(hass, entry).joinpath(_partial(entry)[1]).read_text())
    assert ledger["size"] == len(PACKAGE)
    md5 = {int(start): value for start, value in ledger["md5"].items()}
    # Chunks still in flight or waiting for their batched write are not kept
    # (how many depends on the window): a good share is.
    assert TOTAL_CHUNKS // 8 <= len(md5) < TOTAL_CHUNKS
    for start, value in md5.items():
        assert hashlib.md5(PACKAGE[start : start + 2048]).hexdigest() == value
    return md5


def _root(hass: HomeAssistant, entry: MockConfigEntry) -> Path:
    return Path(hass.config.path(DOMAIN, entry.entry_id))


def _partial(entry: MockConfigEntry) -> tuple[str, str]:
    """Return the names of the partial data file and of its MD5 ledger."""
    key = miling_fetch.partial_key("updateImage", len(PACKAGE), "200300")
    return f".chunks-{key}.part", f".chunks-{key}.part.md5.json"


def _downloaded(hass: HomeAssistant, entry: MockConfigEntry) -> bool:
    """Return whether the resumed download finished (the package is on disk)."""
    names = _package_files(hass, entry)
    return _ready(hass) and any(name.startswith("package-") for name in names)


async def _install(hass: HomeAssistant) -> None:
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
    )


async def test_restart_mid_download_resumes(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """Home Assistant stopping mid-download keeps finished chunks; it resumes.

    Before resuming, a sample of the finished chunks is fetched again and matches
    the recorded MD5s; the rest is fetched once; the handed-off file is exact.
    """
    entry = await _setup(hass, server)
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    done = await _interrupt_download(hass, server, entry)
    await hass.config_entries.async_setup(entry.entry_id)
    await _until(hass, lambda: _downloaded(hass, entry))
    await _install(hass)
    assert Path(requested[0].data["path"]).read_bytes() == PACKAGE
    resampled = [start for start, _end in server.range_requests if start in done]
    assert 1 <= len(resampled) <= miling_fetch.RESUME_SAMPLE
    # Every chunk not finished before was fetched once (in-flight ones included).
    assert server.requests_served <= TOTAL_CHUNKS - len(done) + len(resampled)
    assert not [n for n in _package_files(hass, entry) if n.startswith(".chunks-")]


async def test_resume_after_the_source_changed_starts_again(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """The server's file changed while Home Assistant was down: no mixed package.

    Reproduced on the old code: the old bytes of the first third followed by the
    new bytes were handed off as verified.
    """
    entry = await _setup(hass, server)
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _interrupt_download(hass, server, entry)
    changed = os.urandom(len(PACKAGE))
    server.files["updateImage"] = changed  # same name, size and version
    await hass.config_entries.async_setup(entry.entry_id)
    await _until(hass, lambda: _downloaded(hass, entry))
    await _install(hass)
    event = requested[0].data
    assert Path(event["path"]).read_bytes() == changed
    assert event["md5"] == hashlib.md5(changed).hexdigest()
    # Everything was fetched again from the first byte.
    assert all((start, end) in server.range_requests for start, end in _ranges())
    assert server.requests_served >= TOTAL_CHUNKS
    assert not [n for n in _package_files(hass, entry) if n.startswith(".chunks-")]


async def test_resume_refetches_chunks_damaged_on_disk(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """A finished chunk whose bytes on disk lost their MD5 is fetched again."""
    entry = await _setup(hass, server)
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    done = await _interrupt_download(hass, server, entry)
    damaged = min(done)
    data_file = _root(hass, entry) / _partial(entry)[0]
    with data_file.open("r+b") as handle:
        handle.seek(damaged + 5)
        handle.write(b"\xff\x00\xff")
    await hass.config_entries.async_setup(entry.entry_id)
    await _until(hass, lambda: _downloaded(hass, entry))
    await _install(hass)
    assert Path(requested[0].data["path"]).read_bytes() == PACKAGE
    assert server.range_requests[damaged, damaged + 2047] == 1
    assert server.requests_served < TOTAL_CHUNKS  # the intact chunks were kept


async def test_compressed_chunks_fail_the_download(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """A server answering with gzip bombs: refused uncompressed, not retried."""
    entry = await _setup(hass, server, **{CONF_AUTO_DOWNLOAD: False})
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await _push(server)
    await _until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    server.gzip_padding = 61 * 1024 * 1024
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "download_failed"
    assert finished[0].data["error"] == "download_failed"
    assert hass.states.get(STATUS).state == "failed"
    assert set(server.accept_encodings) == {"identity"}
    # The window's first requests at most: a compressed answer is final.
    assert server.http_requests <= miling_fetch.INITIAL_IN_FLIGHT
    assert max(server.bodies_sent) < 64 * 1024
    assert not [n for n in _package_files(hass, entry) if n.startswith("package-")]


def _ranges() -> list[tuple[int, int]]:
    return [
        (start, min(start + 2048, len(PACKAGE)) - 1)
        for start in range(0, len(PACKAGE), 2048)
    ]


async def test_reconnect_and_reregister(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """The server closes the socket: reconnect and register again, quickly."""
    await _setup(hass, server)
    registrations = len(server.registrations)
    await server.close_sockets()
    await _until(hass, lambda: len(server.registrations) > registrations, timeout=5)
    await _until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    assert server.registrations[-1].prog_version == "200200"


async def test_refused_on_reconnect(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """The server refuses the device after a reconnect: cloud connection off."""
    await _setup(hass, server)
    registrations = len(server.registrations)
    server.register_status = 5
    await server.close_sockets()
    await _until(hass, lambda: len(server.registrations) > registrations)
    await _until(hass, lambda: hass.states.get(CLOUD).state == STATE_OFF)
    assert server.registrations[-1] == Registration(DEVICE_ID, DEVICE_TYPE, "200200")
    assert server.connected_devices == []


async def test_upgrade_request_for_another_device(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """A 1012 naming another DeviceId is answered -1; nothing is fetched."""
    entry = await _setup(hass, server)
    server.files["updateImage"] = PACKAGE
    await server.send_raw(
        '{"ProtocolCode":1012,"Parameters":{"FileName":"updateImage",'
        f'"FileSize":{len(PACKAGE)},"DeviceId":"99999","DeviceType":"TS",'
        '"ProgVersion":"200300","LoadCondition":0}}'
    )
    await server.wait_for(lambda: len(server.upgrade_answers) == 1)
    await hass.async_block_till_done()
    assert server.upgrade_answers[-1] == UpgradeAnswer(DEVICE_ID, -1)
    assert server.http_requests == 0
    assert hass.states.get(UPDATE).state == STATE_OFF
    assert _package_files(hass, entry) == []


async def test_garbage_on_the_socket(
    hass: HomeAssistant,
    server: MilingServerSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Malformed JSON and unknown codes are logged; the connection stays up."""
    await _setup(hass, server)
    connections = server.ws_connections
    with caplog.at_level(logging.WARNING):
        await server.send_raw("{not json")
        await server.send_raw('{"ProtocolCode": 9999, "Parameters": {}}')
        await server.send_raw('{"ProtocolCode": 1012, "Parameters": {"FileName": 5}}')
        await _until(hass, lambda: len(server.upgrade_answers) == 1)
    assert server.upgrade_answers[-1].status == -1
    assert server.ws_connections == connections
    assert hass.states.get(CLOUD).state == STATE_ON
    assert "9999" in caplog.text


async def test_device_reports_failure(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """A failure from the device: failed state and event; no new registration."""
    entry = await _setup(hass, server)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await _push(server)
    await _until(hass, lambda: _ready(hass))
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
    )
    with pytest.raises(ServiceValidationError) as err:
        await _report(hass, entry, success=True, version="999")
    assert err.value.translation_key == "version_mismatch"
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, entry.unique_id or ""), entry.entry_id
    )
    assert device is not None
    # As `target: device_id:` sends it: a list of one.
    await hass.services.async_call(
        DOMAIN,
        "report_install_result",
        {"device_id": [device.id], "success": False, "message": "flash write error"},
        blocking=True,
    )
    assert finished[-1].data["success"] is False
    assert finished[-1].data["error"] == "device_reported_failure"
    assert hass.states.get(STATUS).state == "failed"
    assert hass.states.get(UPDATE).attributes["installed_version"] == "200200"


async def test_handoff_survives_restart_then_times_out(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """A pending hand-off survives a reload; without a result it times out."""
    entry = await _setup(hass, server)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await _push(server)
    await _until(hass, lambda: _ready(hass))
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(STATUS).state == "waiting_for_device"
    assert hass.states.get(UPDATE).attributes["in_progress"] is True
    with pytest.raises(HomeAssistantError) as err:
        await entry.runtime_data.coordinator.async_install(None)
    assert err.value.translation_key == "waiting_for_device"

    backend = entry.runtime_data.coordinator.backend
    backend.handoff_timeout = 0.05
    handoffs = entry.runtime_data.coordinator.handoffs
    assert handoffs is not None
    handoffs.schedule_timeout()
    await _until(hass, lambda: bool(finished))
    assert finished[0].data["error"] == "handoff_timeout"
    assert hass.states.get(STATUS).state == "failed"


async def test_action_validation(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """report_install_result needs a Firmware Hub bridge device."""
    assert await async_setup_component(hass, DOMAIN, {})
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "report_install_result",
            {"device_id": "nope", "success": True},
            blocking=True,
        )
    assert err.value.translation_key == "device_not_found"


async def _rollout(hass: HomeAssistant) -> asyncio.Task[Any]:
    return hass.async_create_task(
        hass.services.async_call(
            DOMAIN, "install_updates", {}, blocking=True, return_response=True
        )
    )


async def test_rollout_waits_for_the_devices_result(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """A bridge counts as installed once the device reported its result."""
    entry = await _setup(hass, server)
    await _push(server)
    await _until(hass, lambda: _ready(hass))
    rollout = await _rollout(hass)
    # Not `_until`: it lets Home Assistant settle, which would wait for the rollout.
    async with asyncio.timeout(10):
        while hass.states.get(STATUS).state != "waiting_for_device":
            await asyncio.sleep(0.01)
    assert not rollout.done()
    await _report(hass, entry, success=True, version="200300")
    summary = await rollout
    assert summary is not None
    assert [line["result"] for line in summary["devices"]] == ["installed"]
    assert summary["devices"][0]["to_version"] == "200300"


async def test_rollout_counts_a_missing_result_as_failed(
    hass: HomeAssistant, server: MilingServerSimulator
) -> None:
    """No result before the hand-off timeout: the rollout says failed."""
    entry = await _setup(hass, server)
    await _push(server)
    await _until(hass, lambda: _ready(hass))
    backend = entry.runtime_data.coordinator.backend
    backend.handoff_timeout = 0.2
    summary = await (await _rollout(hass))
    assert summary is not None
    assert [(line["result"], line["error"]) for line in summary["devices"]] == [
        ("failed", "handoff_timeout")
    ]


async def test_file_install_refused_by_kinds_without_it(
    hass: HomeAssistant, server: MilingServerSimulator, tmp_path: Path
) -> None:
    """A kind that takes no firmware file refuses it: no event, nothing sent."""
    entry = await _setup(hass, server)
    firmware = tmp_path / "firmware.bin"
    firmware.write_bytes(b"firmware")
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    coordinator = entry.runtime_data.coordinator
    assert not coordinator.backend.can_install_file
    with firmware.open("rb") as file, pytest.raises(HomeAssistantError) as err:
        await coordinator.async_install_file(file, firmware.name)
    assert err.value.translation_key == "not_supported"
    await hass.async_block_till_done()
    assert finished == []
