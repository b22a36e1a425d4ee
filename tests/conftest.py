"""Fixtures shared by all tests.

The first import makes `custom_components.firmware_hub` resolve to this repository
before pytest-homeassistant-custom-component's own `custom_components` package can
shadow it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

from homeassistant.core import HomeAssistant
import pytest

from custom_components.firmware_hub.const import DOMAIN
from custom_components.firmware_hub.kinds.hikvision import backend as hikvision
from custom_components.firmware_hub.kinds.onvif import discovery as onvif_discovery

from .helpers import Recorder
from .simulators.isapi import IsapiCameraSimulator

assert DOMAIN == "firmware_hub"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load integrations from custom_components in every test."""


@pytest.fixture
async def camera(socket_enabled: None) -> AsyncGenerator[IsapiCameraSimulator]:
    """A Hikvision IP camera (DS-2CD2346G2-ISU, hikvision.com namespace)."""
    sim = IsapiCameraSimulator(device="DS-2CD2346G2-ISU")
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture(autouse=True)
def no_deprecated_calls(caplog: pytest.LogCaptureFixture) -> Generator[None]:
    """Fail a test in which the integration used an API Home Assistant deprecated.

    Home Assistant logs (for custom integrations) what would raise in core: e.g.
    `DeviceEntry.config_entries`, which stops working in 2027.10.
    """
    yield
    reports = [
        record.getMessage()
        for record in caplog.get_records("call")
        if record.name == "homeassistant.helpers.frame"
        and "firmware_hub" in record.getMessage()
    ]
    assert not reports


@pytest.fixture(autouse=True)
def fast_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll the simulators every 10 ms instead of every 2 s; short timeouts."""
    monkeypatch.setattr(
        hikvision,
        "DEFAULT_TIMING",
        hikvision.HikvisionTiming(
            poll_interval=0.01,
            download_timeout=5,
            flash_timeout=5,
            reboot_timeout=5,
            cancel_timeout=0.5,
        ),
    )


@pytest.fixture(autouse=True)
def no_multicast_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never multicast: the ONVIF flow's probe goes to a silent loopback port.

    (UDP 9, discard: nothing answers, the probe times out in 0.2 s.) Tests that
    discover point it at a simulator's unicast responder.
    """
    monkeypatch.setattr(onvif_discovery, "DISCOVERY_TARGET", ("127.0.0.1", 9))
    monkeypatch.setattr(onvif_discovery, "DISCOVERY_TIMEOUT", 0.2)


@pytest.fixture
async def recorder(hass: HomeAssistant) -> AsyncGenerator[Recorder]:
    """Record the state changes of the test's entities."""
    rec = Recorder(hass)
    yield rec
    rec.unsub()
