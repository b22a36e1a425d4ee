"""The shared bridge's package safety, driven through the EnOS kind.

Packages are exactly what is offered (a corrected offer is fetched anew, the stored
package is checked again at hand-off), disk errors end as failures the cloud is
told about, and disk use stays bounded (pruning, stale files, backoff).
"""

from __future__ import annotations

import asyncio
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
from custom_components.firmware_hub.core.bridge import BridgeFacts, offers
from custom_components.firmware_hub.core.packages import RetryPolicy
from custom_components.firmware_hub.core.retry import Backoff
from custom_components.firmware_hub.kinds.enos import backend as enos_backend
from custom_components.firmware_hub.kinds.enos.protocol.client import EnosTiming

from .helpers import unload_all, wait_until
from .simulators.enos import EnosSimulator, firmware_bytes, firmware_offer
from .test_enos import fast_enos  # noqa: F401 - the same short timings

PK = "pkSafe01"
DK = "devSafe"
SECRET = "S4fe-D3vice-Key"
UPDATE = "update.enos_devsafe_firmware"
STATUS = "sensor.enos_devsafe_firmware_status"
CLOUD = "binary_sensor.enos_devsafe_cloud_connection"
CHECK = "button.enos_devsafe_check_for_update"
#: The package first offered, and the corrected one for the same version.
OLD = firmware_bytes("2.0.0", 204805)
NEW = firmware_bytes("2.0.0-fixed", 204815)
V3 = firmware_bytes("3.0.0", 150 * 1024 + 3)


def _timing(download: RetryPolicy) -> enos_backend.EnosBridgeTiming:
    return enos_backend.EnosBridgeTiming(
        protocol=EnosTiming(
            connect_timeout=3,
            request_timeout=3,
            reconnect_min=0.05,
            reconnect_max=0.3,
            misc_interval=0.2,
        ),
        download=download,
        progress_interval=0,
        first_connect_retry=0.05,
    )


@pytest.fixture
async def sim(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncGenerator[EnosSimulator]:
    """EnOS on loopback with the device registered; clients stop before it."""
    simulator = EnosSimulator()
    simulator.add_device(PK, DK, SECRET)
    await simulator.start()
    yield simulator
    await unload_all(hass)
    await simulator.stop()


def _entry(sim: EnosSimulator, **options: Any) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"EnOS {DK}",
        unique_id=f"{PK}/{DK}",
        data={
            CONF_KIND: "enos",
            "host": sim.host,
            "port": sim.port,
            "tls": False,
            "product_key": PK,
            "device_key": DK,
            "device_secret": SECRET,
            "sign_method": "sha256",
            "firmware_version": "1.0.0",
            "file_base_url": sim.files.base_url,
        },
        options=options,
    )


async def _setup(
    hass: HomeAssistant, sim: EnosSimulator, **options: Any
) -> MockConfigEntry:
    entry = _entry(sim, **options)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    return entry


async def _install(hass: HomeAssistant) -> None:
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: UPDATE}, blocking=True
    )


def _facts(entry: MockConfigEntry) -> BridgeFacts:
    facts = entry.runtime_data.coordinator.data.facts
    assert isinstance(facts, BridgeFacts)
    return facts


def _root(hass: HomeAssistant, entry: MockConfigEntry) -> Path:
    return Path(hass.config.path(DOMAIN, entry.entry_id))


def _files(hass: HomeAssistant, entry: MockConfigEntry) -> list[str]:
    root = _root(hass, entry)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _package_name(content: bytes) -> str:
    return f"package-{hashlib.sha256(content).hexdigest()[:16]}.bin"


def _requests(sim: EnosSimulator, name: str) -> int:
    return sum(request.name == name for request in sim.files.requests)


async def _push(sim: EnosSimulator, name: str, content: bytes, version: str) -> None:
    url = sim.files.add(name, content)
    msg_id = await sim.cloud.push_upgrade(
        PK, DK, firmware_offer(version, url, content, "sha256")
    )
    await sim.cloud.wait_for_upgrade_reply(msg_id)


# ------------------------------------------------------------ a package is the offer


async def test_corrected_offer_replaces_ready_package(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """Same version, another file: the old package is deleted, the new one fetched."""
    entry = await _setup(hass, sim)
    await _push(sim, "fw-old.bin", OLD, "2.0.0")
    await wait_until(hass, lambda: _facts(entry).ready_versions == ("2.0.0",))
    assert _files(hass, entry) == [_package_name(OLD)]

    await _push(sim, "fw-new.bin", NEW, "2.0.0")
    await wait_until(hass, lambda: _files(hass, entry) == [_package_name(NEW)])
    await wait_until(hass, lambda: _facts(entry).ready_versions == ("2.0.0",))
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _install(hass)
    event = requested[0].data
    assert event["size"] == len(NEW) == 204815
    assert event["sha256"] == hashlib.sha256(NEW).hexdigest()
    assert Path(event["path"]).read_bytes() == NEW
    assert _requests(sim, "fw-new.bin") == 1
    await sim.cloud.wait_for_progress(90)


async def test_corrected_offer_cancels_stale_download(
    hass: HomeAssistant, sim: EnosSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install waiting on a stale download follows the corrected offer."""
    monkeypatch.setattr(
        enos_backend,
        "DEFAULT_TIMING",
        _timing(RetryPolicy(attempts=1000, backoff=0.05, max_backoff=0.05, timeout=3)),
    )
    entry = await _setup(hass, sim, **{CONF_AUTO_DOWNLOAD: False})
    sim.files.add("fw-old.bin", OLD)
    sim.files.fault("fw-old.bin").server_errors = 1_000_000  # it never completes
    await _push(sim, "fw-old.bin", OLD, "2.0.0")
    await wait_until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    install = asyncio.get_running_loop().create_task(_install(hass))
    async with asyncio.timeout(10):  # not wait_until: it would wait for the install
        while _requests(sim, "fw-old.bin") < 2:
            await asyncio.sleep(0.01)

    await _push(sim, "fw-new.bin", NEW, "2.0.0")
    await install
    stale = _requests(sim, "fw-old.bin")
    assert Path(requested[0].data["path"]).read_bytes() == NEW
    assert requested[0].data["size"] == len(NEW)
    assert _files(hass, entry) == [_package_name(NEW)]
    assert _requests(sim, "fw-old.bin") == stale  # the stale download stopped
    assert "-2" not in [m.params["step"] for m in sim.cloud.progress]


async def test_handoff_rechecks_the_stored_package(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """A stored package that no longer matches the offer is refused and deleted."""
    entry = await _setup(hass, sim)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _push(sim, "fw.bin", NEW, "2.0.0")
    await wait_until(hass, lambda: _facts(entry).ready_versions == ("2.0.0",))
    package = _root(hass, entry) / _package_name(NEW)
    package.write_bytes(OLD[: len(NEW)])  # same size, other bytes

    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "checksum_mismatch"
    await sim.cloud.wait_for_progress(-3)
    assert requested == []
    assert finished[-1].data["success"] is False
    assert not package.exists()
    assert _facts(entry).ready_versions == ()
    assert hass.states.get(STATUS).state == "failed"


# ------------------------------------------------------------ disk errors


@pytest.mark.parametrize(
    ("failure", "key"),
    [
        (OSError(errno.EIO, "Input/output error"), "package_storage_failed"),
        (OSError(errno.ENOSPC, "No space left on device"), "insufficient_space"),
        (0, "package_storage_failed"),  # the disk takes nothing, again and again
    ],
)
async def test_write_error_fails_the_install(
    hass: HomeAssistant,
    sim: EnosSimulator,
    monkeypatch: pytest.MonkeyPatch,
    failure: OSError | int,
    key: str,
) -> None:
    """A failing write: failed (not stuck downloading), -2, a failure event, no file."""
    entry = await _setup(hass, sim, **{CONF_AUTO_DOWNLOAD: False})
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await _push(sim, "fw.bin", NEW, "2.0.0")
    await wait_until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)

    def pwrite(_fd: int, _data: bytes, _offset: int) -> int:
        if isinstance(failure, OSError):
            raise failure
        return failure

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    monkeypatch.undo()
    assert err.value.translation_key == key
    await sim.cloud.wait_for_progress(-2)
    assert hass.states.get(STATUS).state == "failed"
    assert hass.states.get(UPDATE).attributes["in_progress"] is False
    assert finished[-1].data == finished[-1].data | {"success": False, "error": key}
    assert _files(hass, entry) == []


async def test_short_writes_are_completed(
    hass: HomeAssistant, sim: EnosSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that writes a few bytes per call still gets the whole package."""
    await _setup(hass, sim, **{CONF_AUTO_DOWNLOAD: False})
    await _push(sim, "fw.bin", NEW, "2.0.0")
    await wait_until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    real = os.pwrite
    calls: list[int] = []

    def short(fd: int, data: bytes, offset: int) -> int:
        calls.append(len(data))
        return real(fd, bytes(data[:777]), offset)

    monkeypatch.setattr(os, "pwrite", short)
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _install(hass)
    monkeypatch.undo()
    assert Path(requested[0].data["path"]).read_bytes() == NEW
    assert len(calls) >= len(NEW) // 777


async def test_full_disk_fails_before_downloading(
    hass: HomeAssistant, sim: EnosSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room for the announced size: refused before the first byte is fetched."""
    entry = await _setup(hass, sim, **{CONF_AUTO_DOWNLOAD: False})
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    await _push(sim, "fw.bin", NEW, "2.0.0")
    await wait_until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    sizes: list[int] = []

    def fallocate(_fd: int, _offset: int, size: int) -> None:
        sizes.append(size)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "insufficient_space"
    assert sizes == [len(NEW)]
    assert sim.files.requests == []
    message = await sim.cloud.wait_for_progress(-2)
    # The cloud gets the fixed text: nothing about the machine's disks.
    assert message.params["desc"] == "download failed"
    assert finished[-1].data["success"] is False
    assert hass.states.get(STATUS).state == "failed"
    assert _files(hass, entry) == []


# ------------------------------------------------------------ bounded disk use


async def test_withdrawn_offer_is_pruned(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """A version the cloud no longer lists loses its package."""
    entry = await _setup(hass, sim)
    sim.cloud.versions[(PK, DK)] = [
        firmware_offer("2.0.0", sim.files.add("fw-2.bin", NEW), NEW, "sha256")
    ]
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: CHECK}, blocking=True
    )
    await wait_until(hass, lambda: _facts(entry).ready_versions == ("2.0.0",))
    sim.cloud.versions[(PK, DK)] = [
        firmware_offer("3.0.0", sim.files.add("fw-3.bin", V3), V3, "sha256")
    ]
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: CHECK}, blocking=True
    )
    await wait_until(hass, lambda: _facts(entry).ready_versions == ("3.0.0",))
    assert _files(hass, entry) == [_package_name(V3)]


async def test_stale_files_removed_at_startup(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """Interrupted downloads and packages nobody knows are deleted at setup."""
    entry = _entry(sim, **{CONF_AUTO_DOWNLOAD: False})
    root = _root(hass, entry)
    root.mkdir(parents=True)
    stale = [
        ".download-0123456789abcdef.part",
        ".chunks-gone.part",
        ".chunks-gone.part.json",
        ".chunks-gone.part.json.tmp",
        "package-0123456789abcdef.bin",
    ]
    for name in stale:
        (root / name).write_bytes(b"x" * 100)
    (root / ".chunks-gone.part.json").write_text('{"size": 100, "owner": "gone"}')
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert _files(hass, entry) == []


async def test_failed_offer_waits_for_its_backoff(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """After a failed download, checks and reconnects do not fetch it again."""
    await _setup(hass, sim)
    sim.files.add("fw.bin", NEW)
    sim.files.fault("fw.bin").server_errors = 3
    await _push(sim, "fw.bin", NEW, "2.0.0")
    await sim.cloud.wait_for_progress(-2)
    await wait_until(hass, lambda: hass.states.get(STATUS).state == "failed")
    assert _requests(sim, "fw.bin") == 3

    informs = len(sim.cloud.informs)
    await sim.restart_broker()
    await sim.cloud.wait_for_inform("1.0.0", since=informs)
    await wait_until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: CHECK}, blocking=True
    )
    assert _requests(sim, "fw.bin") == 3
    # The user asks: that is not held back.
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _install(hass)
    assert Path(requested[0].data["path"]).read_bytes() == NEW
    assert _requests(sim, "fw.bin") == 4


async def test_failed_offer_is_retried_after_backoff(
    hass: HomeAssistant, sim: EnosSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the backoff ran out, the failed offer is fetched again by itself."""
    monkeypatch.setattr(offers, "FAILED_OFFER_RETRY", Backoff(initial=0.2))
    entry = await _setup(hass, sim)
    sim.files.add("fw.bin", NEW)
    sim.files.fault("fw.bin").server_errors = 3
    await _push(sim, "fw.bin", NEW, "2.0.0")
    await sim.cloud.wait_for_progress(-2)
    await wait_until(hass, lambda: _facts(entry).ready_versions == ("2.0.0",))
    assert _requests(sim, "fw.bin") == 4
    assert hass.states.get(STATUS).state == "idle"
    assert entry.runtime_data.coordinator.data.connected is True


async def test_restored_packages_are_checked_against_the_offer(
    hass: HomeAssistant, sim: EnosSimulator, hass_storage: dict[str, Any]
) -> None:
    """Packages saved by an older version: only the one matching the offer stays."""
    entry = _entry(sim, **{CONF_AUTO_DOWNLOAD: False})
    root = _root(hass, entry)
    root.mkdir(parents=True)
    stale, good = root / _package_name(OLD), root / _package_name(NEW)
    stale.write_bytes(OLD)
    good.write_bytes(NEW)
    url = sim.files.add("fw-new.bin", NEW)
    # The cloud still lists it (asked at every connect).
    sim.cloud.versions[(PK, DK)] = [firmware_offer("2.0.0", url, NEW, "sha256")]

    def saved(path: Path, content: bytes) -> dict[str, Any]:
        return {
            "version": "2.0.0",
            "path": str(path),
            "size": len(content),
            "md5": hashlib.md5(content).hexdigest(),
            "sha256": hashlib.sha256(content).hexdigest(),
        }

    hass_storage[f"{DOMAIN}.{entry.entry_id}"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{entry.entry_id}",
        "data": {
            "configured_version": "1.0.0",
            "installed_version": "1.0.0",
            "offers": [
                {
                    "version": "2.0.0",
                    "size": len(NEW),
                    "md5": None,
                    "sha256": hashlib.sha256(NEW).hexdigest(),
                    "release_notes": None,
                    "source": {"file_url": url, "sign_method": "sha256"},
                },
                {"not": "an offer"},
            ],
            "ready": [saved(stale, OLD), saved(good, NEW), {"path": "nothing"}],
            "handoff": None,
        },
    }
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert _facts(entry).ready_versions == ("2.0.0",)
    assert _files(hass, entry) == [good.name]
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await wait_until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    await _install(hass)
    assert Path(requested[0].data["path"]).read_bytes() == NEW
    assert sim.files.requests == []
