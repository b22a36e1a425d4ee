"""The EnOS bridge end to end against mosquitto, the login proxy and the cloud."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from datetime import timedelta
import hashlib
import json
import logging
from pathlib import Path
import socket
from typing import Any

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN, SERVICE_INSTALL
from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_USER
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.firmware_hub.const import (
    CONF_AUTO_DOWNLOAD,
    CONF_CA_FILE,
    CONF_CHECK_INTERVAL,
    CONF_HANDOFF_TIMEOUT,
    CONF_KIND,
    DOMAIN,
    EVENT_INSTALL_REQUESTED,
    EVENT_UPGRADE_FINISHED,
)
from custom_components.firmware_hub.core.bridge import BridgeFacts
from custom_components.firmware_hub.core.packages import RetryPolicy
from custom_components.firmware_hub.kinds.enos import backend as enos_backend
from custom_components.firmware_hub.kinds.enos.protocol.client import EnosTiming

from .helpers import unload_all, wait_until as _until
from .simulators.enos import EnosSimulator, firmware_bytes, firmware_offer

PK = "pk1a2b3c"
DK = "dev0042"
SECRET = "S3cr3t-D3vice-Key-42"
UPDATE = "update.enos_dev0042_firmware"
STATUS = "sensor.enos_dev0042_firmware_status"
CLOUD = "binary_sensor.enos_dev0042_cloud_connection"
CHECK = "button.enos_dev0042_check_for_update"
V2 = firmware_bytes("2.0.0", 200 * 1024 + 5)
V3 = firmware_bytes("3.0.0", 150 * 1024 + 3)


@pytest.fixture(autouse=True)
def fast_enos(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect and retry in milliseconds; report every progress step."""
    monkeypatch.setattr(
        enos_backend,
        "DEFAULT_TIMING",
        enos_backend.EnosBridgeTiming(
            protocol=EnosTiming(
                connect_timeout=3,
                request_timeout=3,
                reconnect_min=0.05,
                reconnect_max=0.3,
                misc_interval=0.2,
            ),
            download=RetryPolicy(attempts=3, backoff=0.01, timeout=3),
            progress_interval=0,
            first_connect_retry=0.05,
        ),
    )


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    """No log line of any test may carry the device secret."""
    caplog.set_level(logging.DEBUG)
    yield
    assert SECRET not in caplog.text


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


def _data(sim: EnosSimulator, **overrides: Any) -> dict[str, Any]:
    return {
        "host": sim.host,
        "port": sim.port,
        "tls": False,
        "product_key": PK,
        "device_key": DK,
        "device_secret": SECRET,
        "sign_method": "sha256",
        "firmware_version": "1.0.0",
        "file_base_url": sim.files.base_url,
        **overrides,
    }


async def _setup(
    hass: HomeAssistant, sim: EnosSimulator, **options: Any
) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"EnOS {DK}",
        unique_id=f"{PK}/{DK}",
        data={CONF_KIND: "enos", **_data(sim)},
        options=options,
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await _until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    return entry


async def _install(hass: HomeAssistant, version: str | None = None) -> None:
    data: dict[str, Any] = {ATTR_ENTITY_ID: UPDATE}
    if version:
        data["version"] = version
    await hass.services.async_call(UPDATE_DOMAIN, SERVICE_INSTALL, data, blocking=True)


async def _report(hass: HomeAssistant, entry: MockConfigEntry, **data: Any) -> None:
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, f"{PK}/{DK}"), entry.entry_id
    )
    assert device is not None
    await hass.services.async_call(
        DOMAIN, "report_install_result", {"device_id": device.id, **data}, blocking=True
    )


def _offer_ready(hass: HomeAssistant, version: str) -> Callable[[], bool]:
    """Return a condition: `version` is offered and downloaded in the background."""

    def ready() -> bool:
        state = hass.states.get(UPDATE)
        entries = hass.config_entries.async_loaded_entries(DOMAIN)
        return (
            state is not None
            and state.attributes.get("latest_version") == version
            and bool(entries)
            and isinstance(
                facts := entries[0].runtime_data.coordinator.data.facts, BridgeFacts
            )
            and version in facts.ready_versions
        )

    return ready


def _steps(sim: EnosSimulator, since: int = 0) -> list[int]:
    return [int(m.params["step"]) for m in sim.cloud.progress[since:]]


def _files(hass: HomeAssistant, entry: MockConfigEntry) -> list[str]:
    root = Path(hass.config.path(DOMAIN, entry.entry_id))
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# ------------------------------------------------------------------ config flow


async def _enos_form(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "enos"}
    )
    assert result["step_id"] == "enos"
    return str(result["flow_id"])


@pytest.mark.parametrize("sign_method", ["sha256", "sha1", "md5"])
async def test_flow_sign_methods(
    hass: HomeAssistant, sim: EnosSimulator, sign_method: str
) -> None:
    """Each sign method logs in; the entry is keyed by product/device key."""
    flow_id = await _enos_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _data(sim, sign_method=sign_method)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"EnOS {DK}"
    assert result["result"].unique_id == f"{PK}/{DK}"
    assert sim.logins[-1].accepted
    await hass.async_block_till_done()
    flow_id = await _enos_form(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _data(sim))
    assert result["reason"] == "already_configured"


async def test_flow_errors(hass: HomeAssistant, sim: EnosSimulator) -> None:
    """A wrong secret is invalid_auth; no broker is cannot_connect."""
    flow_id = await _enos_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _data(sim, device_secret="wrong")
    )
    assert result["errors"] == {"base": "cloud_invalid_auth"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await hass.config_entries.flow.async_configure(
        flow_id, _data(sim, port=port)
    )
    assert result["errors"] == {"base": "cloud_cannot_connect"}


async def test_reauth_reconfigure_options(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """The secret changes in EnOS: reauth; reconfigure keeps an empty secret."""
    entry = await _setup(hass, sim)
    sim.devices[(PK, DK)].device_secret = "N3w-secret-99"
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"device_secret": "still-wrong"}
    )
    assert result["errors"] == {"base": "cloud_invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"device_secret": "N3w-secret-99"}
    )
    assert result["reason"] == "reauth_successful"
    assert entry.data["device_secret"] == "N3w-secret-99"
    await hass.async_block_till_done()

    result = await entry.start_reconfigure_flow(hass)
    form = _data(sim, device_secret="", sign_method="md5")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["sign_method"] == "md5"
    assert entry.data["device_secret"] == "N3w-secret-99"
    await hass.async_block_till_done()

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_CHECK_INTERVAL: 30,
            CONF_AUTO_DOWNLOAD: False,
            CONF_HANDOFF_TIMEOUT: 90,
            CONF_CA_FILE: "/etc/ssl/enos-ca.pem",
        },
    )
    assert entry.options[CONF_CA_FILE] == "/etc/ssl/enos-ca.pem"
    assert entry.options[CONF_HANDOFF_TIMEOUT] == 90
    await hass.async_block_till_done()
    sim.devices[(PK, DK)].device_secret = SECRET  # leave the fixture as found
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_secret_refused_later_starts_reauth(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """A secret revoked in EnOS while running: reauth, not a reconnect loop."""
    await _setup(hass, sim)
    sim.devices[(PK, DK)].device_secret = "rotated"
    logins = len(sim.logins)
    await sim.restart_broker()
    await _until(
        hass,
        lambda: any(
            flow["context"]["source"] == SOURCE_REAUTH
            for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        ),
    )
    await asyncio.sleep(0.3)
    assert len(sim.logins) - logins <= 2
    assert hass.states.get(CLOUD).state == STATE_OFF


# ------------------------------------------------------------------ the bridge


async def test_inform_push_install_report(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """Inform on connect; a push is an update; install → steps → hand-off → 100."""
    entry = await _setup(hass, sim)
    await sim.cloud.wait_for_inform("1.0.0")
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)

    url = sim.files.add("fw-2.0.0.bin", V2)
    msg_id = await sim.cloud.push_upgrade(
        PK, DK, firmware_offer("2.0.0", url, V2, "sha256")
    )
    reply = await sim.cloud.wait_for_upgrade_reply(msg_id)
    assert reply.raw["code"] == 200
    await _until(hass, _offer_ready(hass, "2.0.0"))
    assert hass.states.get(UPDATE).state == STATE_ON

    await _install(hass)
    assert hass.states.get(STATUS).state == "waiting_for_device"
    assert hass.states.get(UPDATE).attributes["in_progress"] is True
    event = requested[0].data
    assert Path(event["path"]).read_bytes() == V2
    assert event["sha256"] == hashlib.sha256(V2).hexdigest()
    assert event["md5"] == hashlib.md5(V2).hexdigest()
    assert event["size"] == len(V2)
    await sim.cloud.wait_for_progress(90)
    steps = _steps(sim)
    assert steps == sorted(steps)
    assert steps[-1] == 90
    assert all(0 <= step <= 90 for step in steps)

    informs = len(sim.cloud.informs)
    await _report(hass, entry, success=True, version="2.0.0")
    await sim.cloud.wait_for_progress(100)
    await sim.cloud.wait_for_inform("2.0.0", since=informs)
    state = hass.states.get(UPDATE)
    assert state.attributes["installed_version"] == "2.0.0"
    assert state.attributes["in_progress"] is False
    assert finished[-1].data["success"] is True


async def test_getversion_specific_version(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """The version list has two entries; the user installs the older one by name."""
    entry = await _setup(hass, sim, **{CONF_AUTO_DOWNLOAD: False})
    sim.cloud.versions[(PK, DK)] = [
        firmware_offer("2.0.0", "/files/fw-2.bin", V2, "md5"),
        firmware_offer("3.0.0", sim.files.add("fw-3.bin", V3), V3, "sha256"),
    ]
    sim.files.add("fw-2.bin", V2)
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: CHECK}, blocking=True
    )
    state = hass.states.get(UPDATE)
    assert state.attributes["latest_version"] == "3.0.0"
    assert sim.files.requests == []  # auto download off
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass, "9.9.9")
    assert err.value.translation_key == "version_not_offered"
    await _install(hass, "2.0.0")  # relative URL, resolved on the file base URL
    assert Path(requested[0].data["path"]).read_bytes() == V2
    assert requested[0].data["version"] == "2.0.0"
    assert sim.files.requests[-1].name == "fw-2.bin"
    await _report(hass, entry, success=True, version="2.0.0")
    assert hass.states.get(UPDATE).attributes["latest_version"] == "3.0.0"


async def test_checksum_mismatch(hass: HomeAssistant, sim: EnosSimulator) -> None:
    """Wrong content: step -3, an error, no hand-off event and no file kept."""
    entry = await _setup(hass, sim, **{CONF_AUTO_DOWNLOAD: False})
    url = sim.files.add("bad.bin", V2)
    sim.files.fault("bad.bin").corrupt = None
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", url, V2, "md5"))
    await _until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "checksum_mismatch"
    await sim.cloud.wait_for_progress(-3)
    assert requested == []
    assert _files(hass, entry) == []
    assert hass.states.get(STATUS).state == "failed"


async def test_download_failure_after_retries(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """A file server that keeps failing: step -2 after the retries."""
    await _setup(hass, sim, **{CONF_AUTO_DOWNLOAD: False})
    url = sim.files.add("flaky.bin", V2)
    sim.files.fault("flaky.bin").server_errors = 10
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", url, V2, "md5"))
    await _until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "download_failed"
    await sim.cloud.wait_for_progress(-2)
    assert len(sim.files.requests) == 3


async def test_dropped_connection_resumes(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """The file server drops mid-body: resumed with Range, not restarted."""
    await _setup(hass, sim, **{CONF_AUTO_DOWNLOAD: False})
    url = sim.files.add("drop.bin", V2)
    sim.files.fault("drop.bin").drop_after = 100_000
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", url, V2, "sha256"))
    await _until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    await _install(hass)
    assert Path(requested[0].data["path"]).read_bytes() == V2
    ranges = [request.range for request in sim.files.requests]
    assert ranges[0] is None
    assert ranges[1] is not None
    assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= 100_000


async def test_enos_connect_through_the_http_broker(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """enos-connect:// packages come through the HTTP broker's signed session."""
    entry = await _setup(hass, sim, **{CONF_AUTO_DOWNLOAD: False})
    sim.files.add("pkg-2.bin", V2)
    offer = firmware_offer("2.0.0", "enos-connect://pkg-2.bin", V2, "sha256")
    await sim.cloud.push_upgrade(PK, DK, offer)
    await _until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    # Without the broker URL (an option), it is refused clearly: step -2.
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    assert err.value.translation_key == "download_failed"
    await sim.cloud.wait_for_progress(-2)

    hass.config_entries.async_update_entry(
        entry,
        options={CONF_AUTO_DOWNLOAD: False, "http_broker_url": sim.files.base_url},
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await _until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    await _until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    requested = async_capture_events(hass, EVENT_INSTALL_REQUESTED)
    await _install(hass)
    assert Path(requested[0].data["path"]).read_bytes() == V2
    assert sim.files.sessions
    assert sim.files.requests[-1].name == "pkg-2.bin"


async def test_enos_connect_refused_by_the_broker(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """A broker that refuses the device's sign: -2, nothing handed off."""
    entry = await _setup(
        hass, sim, **{CONF_AUTO_DOWNLOAD: False, "http_broker_url": sim.files.base_url}
    )
    sim.files.devices = {}  # the broker does not know the device
    offer = firmware_offer("2.0.0", "enos-connect://pkg-2.bin", V2, "sha256")
    await sim.cloud.push_upgrade(PK, DK, offer)
    await _until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    with pytest.raises(HomeAssistantError):
        await _install(hass)
    await sim.cloud.wait_for_progress(-2)
    assert _files(hass, entry) == []


async def test_malformed_push(hass: HomeAssistant, sim: EnosSimulator) -> None:
    """A push missing its fields gets an error reply >= 2000, not a crash."""
    await _setup(hass, sim)
    msg_id = await sim.cloud.push_upgrade(PK, DK, {"version": "2.0.0"})
    reply = await sim.cloud.wait_for_upgrade_reply(msg_id)
    assert reply.raw["code"] >= 2000
    assert hass.states.get(CLOUD).state == STATE_ON
    assert hass.states.get(UPDATE).state == STATE_OFF


async def test_broker_restart(hass: HomeAssistant, sim: EnosSimulator) -> None:
    """The broker restarts: cloud off, then back with a new sign and a re-inform."""
    await _setup(hass, sim)
    logins = len(sim.logins)
    informs = len(sim.cloud.informs)
    await sim.stop_broker()
    await _until(hass, lambda: hass.states.get(CLOUD).state == STATE_OFF)
    assert hass.states.get(CHECK).state == STATE_UNAVAILABLE
    assert hass.states.get(UPDATE).state != STATE_UNAVAILABLE
    await sim.start_broker()
    await _until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    await sim.cloud.wait_for_inform("1.0.0", since=informs)
    new = [login for login in sim.logins[logins:] if login.accepted]
    assert new
    assert new[-1].timestamp != sim.logins[logins - 1].timestamp
    assert hass.states.get(CHECK).state != STATE_UNAVAILABLE
    # Subscriptions were renewed: a push after the restart is answered.
    url = sim.files.add("after.bin", V2)
    msg_id = await sim.cloud.push_upgrade(
        PK, DK, firmware_offer("2.0.0", url, V2, "md5")
    )
    assert (await sim.cloud.wait_for_upgrade_reply(msg_id)).raw["code"] == 200


async def test_restart_while_waiting_then_result(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """Home Assistant restarts while the device flashes; the result still arrives."""
    entry = await _setup(hass, sim)
    url = sim.files.add("fw.bin", V2)
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", url, V2, "md5"))
    await _until(hass, _offer_ready(hass, "2.0.0"))
    await _install(hass)
    since = len(sim.cloud.progress)
    assert await hass.config_entries.async_reload(entry.entry_id)
    assert hass.states.get(STATUS).state == "waiting_for_device"
    # Reported at once, maybe before the new login completed: it is kept until
    # the connection is up.
    await _report(hass, entry, success=False, message="flash write error")
    message = await sim.cloud.wait_for_progress(-4, since=since)
    assert message.params["desc"] == "flash write error"
    assert hass.states.get(STATUS).state == "failed"


async def test_handoff_timeout(hass: HomeAssistant, sim: EnosSimulator) -> None:
    """No result in time: step -1 and a failure event."""
    entry = await _setup(hass, sim)
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    url = sim.files.add("fw.bin", V2)
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", url, V2, "md5"))
    await _until(hass, _offer_ready(hass, "2.0.0"))
    coordinator = entry.runtime_data.coordinator
    coordinator.backend.handoff_timeout = 0.05
    await _install(hass)
    await sim.cloud.wait_for_progress(-1)
    await _until(hass, lambda: bool(finished))
    assert finished[0].data["error"] == "handoff_timeout"


async def test_diagnostics_without_secret(
    hass: HomeAssistant, sim: EnosSimulator, hass_client: ClientSessionGenerator
) -> None:
    """Diagnostics carry the bridge state but not the device secret."""
    entry = await _setup(hass, sim)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diagnostics)
    assert SECRET not in text
    assert diagnostics["entry"]["data"]["device_secret"] == "**REDACTED**"
    assert diagnostics["state"]["connected"] is True


async def test_version_list_keeps_pushed_offers(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """A version list that lacks a pushed offer does not erase the push."""
    await _setup(hass, sim, **{CONF_AUTO_DOWNLOAD: False})
    url = sim.files.add("pushed.bin", V2)
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", url, V2, "md5"))
    await _until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    sim.cloud.versions[(PK, DK)] = []
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: CHECK}, blocking=True
    )
    assert hass.states.get(UPDATE).attributes["latest_version"] == "2.0.0"


async def test_adding_a_device_reports_nothing_and_warns_nothing(
    hass: HomeAssistant, sim: EnosSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The config flow's cloud check only logs in: no inform, no warning."""
    flow_id = await _enos_form(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _data(sim))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    await _until(hass, lambda: hass.states.get(CLOUD).state == STATE_ON)
    # Only the entry's own connection reports the version (the flow's did not):
    # its inform, then its version request, which EnOS answers after the inform.
    await _until(hass, lambda: bool(sim.cloud.getversion_requests))
    assert len(sim.cloud.informs) == 1
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("custom_components.firmware_hub")
        and record.levelno >= logging.WARNING
    ]
    assert warnings == []


async def test_getversion_at_every_check_interval(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """A check tick that fires a moment before the check is due still asks.

    (It used to skip the tick, asking only every second interval.)
    """
    entry = await _setup(hass, sim, check_interval_minutes=15)
    coordinator = entry.runtime_data.coordinator
    for _ in range(3):
        asked = len(sim.cloud.getversion_requests)
        coordinator.next_check = dt_util.utcnow() + timedelta(seconds=1)
        await coordinator.async_refresh()
        await _until(
            hass, lambda asked=asked: len(sim.cloud.getversion_requests) > asked
        )
        assert coordinator.next_check > dt_util.utcnow() + timedelta(minutes=14)
