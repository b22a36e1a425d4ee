"""EnOS safety: where the cloud may send Home Assistant, and what it is told back.

Driven through the integration against mosquitto, the EnOS login proxy, the cloud
and two file servers: the configured one (127.0.0.1) and an "internal" one on
127.0.0.2 that no setting names. Each test asserts what the servers were asked and
what the cloud was told.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
import json
import logging
from typing import Any

from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
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
    CONF_ALLOWED_DOWNLOAD_HOSTS,
    CONF_AUTO_DOWNLOAD,
    CONF_KIND,
    CONF_MAX_PACKAGE_MB,
    DOMAIN,
    EVENT_UPGRADE_FINISHED,
)

from .helpers import unload_all, wait_until
from .simulators.enos import (
    EnosSimulator,
    FirmwareFileServer,
    firmware_bytes,
    firmware_offer,
)
from .test_enos import (
    DK,
    PK,
    SECRET,
    STATUS,
    UPDATE,
    V2,
    _data,
    _files,
    _install,
    _offer_ready,
    _setup,
    fast_enos,  # noqa: F401 - the same short timings
)

INTERNAL = "127.0.0.2"
SECRET_PAGE = firmware_bytes("router admin page", 4321)
SIGNATURE = "X-Signature=S1gn3dP4rtN3v3rL0gged"
DOWNLOAD_FAILED = "download failed"
VERIFY_FAILED = "package verification failed"


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


@pytest.fixture
async def internal(socket_enabled: None) -> AsyncGenerator[FirmwareFileServer]:
    """A server on the LAN that no setting names (127.0.0.2), with a secret page."""
    server = FirmwareFileServer(host=INTERNAL)
    server.add("admin", SECRET_PAGE)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every log line at DEBUG."""
    caplog.set_level(logging.DEBUG)
    return caplog


def _our_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Return what the integration and Home Assistant logged (not the simulators)."""
    return "\n".join(
        logging.Formatter().format(record)
        for record in caplog.records
        if not record.name.startswith("tests.")
    )


def _state(hass: HomeAssistant) -> Any:
    return hass.config_entries.async_loaded_entries(DOMAIN)[0].runtime_data.coordinator


def _descs(sim: EnosSimulator) -> dict[int, str]:
    """Return what the cloud was told per failure step."""
    return {
        int(m.params["step"]): m.params["desc"]
        for m in sim.cloud.progress
        if int(m.params["step"]) < 0
    }


async def _connected(
    hass: HomeAssistant, sim: EnosSimulator, **options: Any
) -> MockConfigEntry:
    """Set the device up; return once the version check on connect is answered.

    (A push racing that answer would start a second download of the offer.)
    """
    entry = await _setup(hass, sim, **options)
    await wait_until(hass, lambda: _state(hass).data.last_check is not None)
    return entry


async def _failed(hass: HomeAssistant) -> None:
    await wait_until(hass, lambda: hass.states.get(STATUS).state == "failed")


# ------------------------------------------------------------------ hosts


async def test_unlisted_host_is_never_asked(
    hass: HomeAssistant, sim: EnosSimulator, internal: FirmwareFileServer
) -> None:
    """An absolute fileUrl on a host no setting names: no request, -2, fixed text."""
    await _connected(hass, sim)
    offer = firmware_offer("2.0.0", internal.url("admin"), SECRET_PAGE, "md5")
    await sim.cloud.push_upgrade(PK, DK, offer)
    await sim.cloud.wait_for_progress(-2)
    await _failed(hass)
    assert internal.requests == []
    assert sim.files.requests == []
    assert _descs(sim) == {-2: DOWNLOAD_FAILED}
    assert "not allowed" in (_state(hass).data.error or "")


@pytest.mark.parametrize(
    "file_url", ["file:///etc/hostname", "ftp://127.0.0.1/fw.bin", "gopher://x/1"]
)
async def test_other_schemes_are_refused(
    hass: HomeAssistant, sim: EnosSimulator, file_url: str
) -> None:
    """Only http(s), relative paths and enos-connect:// are fetched."""
    await _connected(hass, sim)
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", file_url, V2))
    await sim.cloud.wait_for_progress(-2)
    await _failed(hass)
    assert sim.files.requests == []
    assert _descs(sim) == {-2: DOWNLOAD_FAILED}


async def test_configured_name_resolving_to_loopback_is_refused(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """A file base URL whose name resolves to loopback: refused unless listed."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"EnOS {DK}",
        unique_id=f"{PK}/{DK}",
        data={
            CONF_KIND: "enos",
            **_data(sim, file_base_url=f"http://localhost:{sim.files.port}"),
        },
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await wait_until(hass, lambda: _state(hass).data.last_check is not None)
    sim.files.add("fw.bin", V2)
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", "/files/fw.bin", V2))
    await sim.cloud.wait_for_progress(-2)
    await _failed(hass)
    assert sim.files.requests == []
    assert "local address" in (_state(hass).data.error or "")


# ------------------------------------------------------------------ redirects


async def test_redirect_to_an_unlisted_host_is_not_followed(
    hass: HomeAssistant, sim: EnosSimulator, internal: FirmwareFileServer
) -> None:
    """A redirect hop is checked like the first URL: the LAN server is not asked."""
    await _connected(hass, sim)
    url = sim.files.redirect("fw.bin", internal.url("admin"))
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", url, SECRET_PAGE))
    await sim.cloud.wait_for_progress(-2)
    await _failed(hass)
    assert [(r.name, r.status) for r in sim.files.requests] == [("fw.bin", 302)]
    assert internal.requests == []
    assert _descs(sim) == {-2: DOWNLOAD_FAILED}


async def test_redirects_are_followed_by_hand(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """Relative and absolute hops on an allowed host are followed and verified."""
    await _connected(hass, sim)
    sim.files.add("fw.bin", V2)
    sim.files.redirect("hop2", sim.files.url("fw.bin"))
    url = sim.files.redirect("hop1", "/files/hop2")
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", url, V2, "sha256"))
    await wait_until(hass, _offer_ready(hass, "2.0.0"))
    assert [(r.name, r.status) for r in sim.files.requests] == [
        ("hop1", 302),
        ("hop2", 302),
        ("fw.bin", 200),
    ]


async def test_too_many_redirects(hass: HomeAssistant, sim: EnosSimulator) -> None:
    """After five hops the sixth redirect is refused, not followed."""
    await _connected(hass, sim)
    sim.files.add("fw.bin", V2)
    for hop in range(6):
        sim.files.redirect(f"r{hop}", f"/files/r{hop + 1}")
    sim.files.redirect("r6", "/files/fw.bin")
    offer = firmware_offer("2.0.0", sim.files.url("r0"), V2)
    await sim.cloud.push_upgrade(PK, DK, offer)
    await sim.cloud.wait_for_progress(-2)
    await _failed(hass)
    assert [r.name for r in sim.files.requests] == [f"r{hop}" for hop in range(6)]
    assert "redirected more than 5 times" in (_state(hass).data.error or "")


# ------------------------------------------------------------------ sizes and texts


async def test_verification_failure_tells_the_cloud_nothing_fetched(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """Step -3 carries a fixed text: not the size or MD5 of what the URL returned."""
    await _connected(hass, sim)
    sim.files.add("page", SECRET_PAGE)
    offer = firmware_offer("2.0.0", sim.files.url("page"), V2, "md5")
    offer["fileSize"] = len(SECRET_PAGE)  # the size fits; the checksum does not
    await sim.cloud.push_upgrade(PK, DK, offer)
    await sim.cloud.wait_for_progress(-3)
    await _failed(hass)
    assert _descs(sim) == {-3: VERIFY_FAILED}
    cloud_text = json.dumps([m.params for m in sim.cloud.progress])
    assert str(len(SECRET_PAGE)) not in cloud_text
    assert "md5" not in cloud_text.lower()


async def test_oversized_offer_is_refused(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """Announced above the 64 MiB default: the push is refused, nothing fetched."""
    await _connected(hass, sim)
    url = sim.files.add("huge.bin", V2)
    offer = firmware_offer("2.0.0", url, V2)
    offer["fileSize"] = 64 * 1024 * 1024 + 1
    msg_id = await sim.cloud.push_upgrade(PK, DK, offer)
    reply = await sim.cloud.wait_for_upgrade_reply(msg_id)
    assert reply.raw["code"] == 2000
    assert reply.raw["message"] == "package larger than the device accepts"
    await sim.cloud.wait_for_progress(-2)
    # Listed by getversion: not offered either.
    sim.cloud.versions[(PK, DK)] = [offer]
    await hass.services.async_call(
        "button",
        "press",
        {"entity_id": "button.enos_dev0042_check_for_update"},
        blocking=True,
    )
    assert hass.states.get(UPDATE).state == STATE_OFF
    assert sim.files.requests == []


async def test_more_bytes_than_announced_are_not_kept(
    hass: HomeAssistant, sim: EnosSimulator
) -> None:
    """A server sending more than announced: aborted, -3, nothing on disk."""
    entry = await _connected(hass, sim)
    big = firmware_bytes("2.0.0", 3 * 1024 * 1024)
    url = sim.files.add("big.bin", big)
    offer = firmware_offer("2.0.0", url, V2)  # announces 200 KiB
    await sim.cloud.push_upgrade(PK, DK, offer)
    await sim.cloud.wait_for_progress(-3)
    await _failed(hass)
    assert _descs(sim) == {-3: VERIFY_FAILED}
    assert _files(hass, entry) == []
    assert [r.status for r in sim.files.requests] == [200]


# ------------------------------------------------------------------ secrets


async def test_session_id_never_leaves_the_protocol(
    hass: HomeAssistant,
    sim: EnosSimulator,
    hass_client: ClientSessionGenerator,
    logs: pytest.LogCaptureFixture,
) -> None:
    """HTTP broker downloads failing with 500: no session id in any output."""
    entry = await _connected(
        hass, sim, **{CONF_AUTO_DOWNLOAD: False, "http_broker_url": sim.files.base_url}
    )
    sim.files.add("pkg-2.bin", V2)
    sim.files.fault("pkg-2.bin").server_errors = 10
    finished = async_capture_events(hass, EVENT_UPGRADE_FINISHED)
    offer = firmware_offer("2.0.0", "enos-connect://pkg-2.bin", V2, "sha256")
    await sim.cloud.push_upgrade(PK, DK, offer)
    await wait_until(hass, lambda: hass.states.get(UPDATE).state == STATE_ON)
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass)
    await sim.cloud.wait_for_progress(-2)
    assert sim.files.sessions  # sessions were opened and used ...
    assert [r.status for r in sim.files.requests] == [500, 500, 500]
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    outputs = {
        "logs": _our_logs(logs),
        "error": str(err.value) + repr(err.value.translation_placeholders),
        "state": repr(_state(hass).data),
        "events": repr([event.data for event in finished]),
        "diagnostics": json.dumps(diagnostics),
        "cloud": json.dumps([m.params for m in sim.cloud.progress]),
    }
    for session_id in sim.files.sessions:  # ... and appear nowhere
        for where, text in outputs.items():
            assert session_id not in text, where
    assert "sessionId" not in outputs["logs"]
    assert _descs(sim) == {-2: DOWNLOAD_FAILED}


async def test_signed_url_is_used_but_never_shown(
    hass: HomeAssistant,
    sim: EnosSimulator,
    hass_client: ClientSessionGenerator,
    hass_storage: dict[str, Any],
    logs: pytest.LogCaptureFixture,
) -> None:
    """A pre-signed fileUrl: fetched with its query, which is stored and shown nowhere."""
    entry = await _connected(hass, sim)
    url = sim.files.add("fw.bin", V2) + "?" + SIGNATURE
    await sim.cloud.push_upgrade(PK, DK, firmware_offer("2.0.0", url, V2, "sha256"))
    await wait_until(hass, _offer_ready(hass, "2.0.0"))
    assert [r.query for r in sim.files.requests] == [SIGNATURE]
    await _install(hass)
    await hass.async_block_till_done()
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["state"]["facts"]["handoff"]["source"]["signed"] is True
    assert diagnostics["device"]["mqtt_connected"] is True
    assert diagnostics["device"]["max_package_bytes"] == 64 * 1024 * 1024
    signature = SIGNATURE.split("=")[1]
    assert signature not in _our_logs(logs)
    assert signature not in json.dumps(diagnostics)
    assert signature not in json.dumps(hass_storage, default=str)
    assert signature not in repr(_state(hass).data)


# ------------------------------------------------------------------ options


async def test_options_download_limits(hass: HomeAssistant, sim: EnosSimulator) -> None:
    """The options hold the package cap and the allowed hosts, checked and normalized."""
    entry = await _connected(hass, sim)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert CONF_MAX_PACKAGE_MB in result["data_schema"].schema
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_MAX_PACKAGE_MB: 128,
            CONF_ALLOWED_DOWNLOAD_HOSTS: "cdn.example, http://x/",
        },
    )
    assert result["errors"] == {CONF_ALLOWED_DOWNLOAD_HOSTS: "invalid_download_hosts"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_MAX_PACKAGE_MB: 128,
            CONF_ALLOWED_DOWNLOAD_HOSTS: " CDN.example., 10.0.0.5",
        },
    )
    assert entry.options[CONF_MAX_PACKAGE_MB] == 128
    assert entry.options[CONF_ALLOWED_DOWNLOAD_HOSTS] == "10.0.0.5, cdn.example"
    await hass.async_block_till_done()
