"""WS-Discovery of ONVIF cameras for the config flow.

By default the probe is Home Assistant core's: one WS-Discovery multicast Probe on
every interface (the `WSDiscovery` package's threads, run in the executor).

`DISCOVERY_TARGET` turns it into one directed unicast Probe to ``(host, port)``, which
never sends or joins multicast: the tests point it at the simulator's loopback
responder (they monkeypatch this module attribute), and a development setup on a
machine where multicast is not welcome sets the environment variable
``FIRMWARE_HUB_ONVIF_DISCOVERY=host:port`` before Home Assistant starts
(`scripts/develop` points it at its simulated camera).
"""

from __future__ import annotations

from functools import partial
import os
from typing import Final

from homeassistant.core import HomeAssistant

from ...const import LOGGER
from .protocol import DISCOVERY_PORT, DiscoveredCamera, OnvifError, discover_cameras

ENV_DISCOVERY_TARGET: Final = "FIRMWARE_HUB_ONVIF_DISCOVERY"


def target_from_env(value: str | None) -> tuple[str, int] | None:
    """Parse ``host`` or ``host:port`` (``[v6]:port`` for IPv6); None when unset."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not port:
        return host, DISCOVERY_PORT
    if not port.isdigit():
        LOGGER.warning("%s=%s: the port is not a number", ENV_DISCOVERY_TARGET, value)
        return None
    return host, int(port)


#: None: multicast (Home Assistant core's probe); else a directed unicast probe.
DISCOVERY_TARGET: tuple[str, int] | None = target_from_env(
    os.environ.get(ENV_DISCOVERY_TARGET)
)
#: Seconds to wait for ProbeMatches.
DISCOVERY_TIMEOUT: float = 4.0


async def async_discover(hass: HomeAssistant) -> list[DiscoveredCamera]:
    """Return the ONVIF cameras that answer a probe; none when the probe fails."""
    target = DISCOVERY_TARGET
    probe = partial(
        discover_cameras,
        timeout=DISCOVERY_TIMEOUT,
        address=target[0] if target else None,
        port=target[1] if target else DISCOVERY_PORT,
    )
    try:
        cameras = await hass.async_add_executor_job(probe)
    except OnvifError as err:
        LOGGER.warning("ONVIF discovery failed: %s", err)
        return []
    return [camera for camera in cameras if camera.host]
