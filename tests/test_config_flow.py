"""Config flow: menu, the hikvision step, reauth, reconfigure, options."""

from __future__ import annotations

from collections.abc import AsyncGenerator
import socket
from unittest.mock import patch

from aiohttp import web
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.firmware_hub.const import CONF_CHECK_INTERVAL, CONF_KIND, DOMAIN

from .helpers import hikvision_entry, hikvision_input, setup_entry
from .simulators.isapi import IsapiCameraSimulator


async def _hikvision_form(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["hikvision", "onvif", "enos", "miling"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "hikvision"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hikvision"
    return str(result["flow_id"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def web_server(
    request: pytest.FixtureRequest, socket_enabled: None
) -> AsyncGenerator[tuple[str, int]]:
    """An HTTP server that is not a camera: 404 on /ISAPI, or a login page everywhere."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>Router login</body></html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/" if request.param == "404" else "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield "127.0.0.1", port
    await runner.cleanup()


async def test_create_entry(hass: HomeAssistant, camera: IsapiCameraSimulator) -> None:
    """A reachable camera with the right password becomes an entry."""
    flow_id = await _hikvision_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, hikvision_input(camera)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "CAMERA 1"
    assert result["result"].unique_id == camera.serial_number
    assert result["data"] == {CONF_KIND: "hikvision", **hikvision_input(camera)}


async def test_invalid_auth_then_success(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """A wrong password keeps the form (with what was typed) and says why."""
    flow_id = await _hikvision_form(hass)
    wrong = hikvision_input(camera, password="wrong")
    result = await hass.config_entries.flow.async_configure(flow_id, wrong)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    suggested = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description
    }
    assert suggested[CONF_HOST] == camera.host
    assert suggested[CONF_PORT] == camera.port
    result = await hass.config_entries.flow.async_configure(
        flow_id, hikvision_input(camera)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_cannot_connect(hass: HomeAssistant, socket_enabled: None) -> None:
    """Nothing listens on the port."""
    flow_id = await _hikvision_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            CONF_HOST: "127.0.0.1",
            CONF_PORT: _free_port(),
            "ssl": False,
            "verify_ssl": False,
            CONF_USERNAME: "admin",
            CONF_PASSWORD: "x",
        },
    )
    assert result["errors"] == {"base": "cannot_connect"}


@pytest.mark.parametrize("web_server", ["404", "html"], indirect=True)
async def test_not_an_isapi_server(
    hass: HomeAssistant, web_server: tuple[str, int]
) -> None:
    """An HTTP server that is not ISAPI (HTML page, 404 on /ISAPI) is unsupported."""
    host, port = web_server
    flow_id = await _hikvision_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            CONF_HOST: host,
            CONF_PORT: port,
            "ssl": False,
            "verify_ssl": False,
            CONF_USERNAME: "admin",
            CONF_PASSWORD: "x",
        },
    )
    assert result["errors"] == {"base": "unsupported_device"}


async def test_invalid_host(hass: HomeAssistant) -> None:
    """A URL typed as host is refused before anything is sent."""
    flow_id = await _hikvision_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            CONF_HOST: "http://192.0.2.1/",
            CONF_PORT: 80,
            "ssl": False,
            "verify_ssl": False,
            CONF_USERNAME: "admin",
            CONF_PASSWORD: "x",
        },
    )
    assert result["errors"] == {CONF_HOST: "invalid_host"}


async def test_unknown_error(hass: HomeAssistant, camera: IsapiCameraSimulator) -> None:
    """An unexpected exception in the HTTP library gives `unknown`, not a crash."""
    flow_id = await _hikvision_form(hass)
    with patch("aiohttp.ClientSession._request", side_effect=RuntimeError("boom")):
        result = await hass.config_entries.flow.async_configure(
            flow_id, hikvision_input(camera)
        )
    assert result["errors"] == {"base": "unknown"}


async def test_already_configured_updates_address(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """The same camera twice aborts, and the entry takes the address typed."""
    entry = hikvision_entry(camera)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_HOST: "localhost"}
    )
    flow_id = await _hikvision_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, hikvision_input(camera)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == camera.host


async def test_reauth(hass: HomeAssistant, camera: IsapiCameraSimulator) -> None:
    """The password changed on the camera: reauth stores the new one."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    camera.password = "N3w-password"
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: "still-wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: "N3w-password"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_PASSWORD] == "N3w-password"
    await hass.async_block_till_done()


async def test_reauth_other_device(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Credentials that open a different device at that address are refused."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    camera.serial_number = "DS-OTHER0000000000000"
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: camera.password}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_device"


async def test_reconfigure(hass: HomeAssistant, camera: IsapiCameraSimulator) -> None:
    """The camera moved to another port; an empty password keeps the stored one."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    old_port = camera.port
    await camera.stop()
    moved = IsapiCameraSimulator(device="DS-2CD2346G2-ISU", password=camera.password)
    await moved.start()
    try:
        result = await entry.start_reconfigure_flow(hass)
        assert result["step_id"] == "reconfigure"
        form = hikvision_input(moved, password="")
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {**form, CONF_PORT: old_port}
        )
        assert result["errors"] == {"base": "cannot_connect"}
        result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert entry.data[CONF_PORT] == moved.port
        assert entry.data[CONF_PASSWORD] == camera.password
        await hass.async_block_till_done()
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await moved.stop()
        await camera.start()


async def test_reconfigure_other_device(
    hass: HomeAssistant, camera: IsapiCameraSimulator
) -> None:
    """Reconfiguring to an address where another camera answers is refused."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    other = IsapiCameraSimulator(device="DS-7608NXI-I2", password=camera.password)
    await other.start()
    try:
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], hikvision_input(other)
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "wrong_device"
        assert entry.data[CONF_PORT] == camera.port
    finally:
        await other.stop()


async def test_options(hass: HomeAssistant, camera: IsapiCameraSimulator) -> None:
    """The check interval and the install limit are options; saving reloads."""
    entry = hikvision_entry(camera)
    await setup_entry(hass, entry)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_CHECK_INTERVAL: 60}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # The install limit keeps its default when the form leaves it alone.
    assert entry.options == {CONF_CHECK_INTERVAL: 60, "max_concurrent_installs": 2}
    await hass.async_block_till_done()
    coordinator = entry.runtime_data.coordinator
    assert coordinator.check_interval.total_seconds() == 3600
