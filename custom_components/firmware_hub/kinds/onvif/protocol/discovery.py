"""WS-Discovery of ONVIF cameras (NetworkVideoTransmitter). Blocking: use an executor.

Without an address it is Home Assistant core's WS-Discovery multicast probe
(`WSDiscovery` threads). With an address it sends one directed SOAP-over-UDP Probe to
that address from a single unicast socket and reads the ProbeMatches (message
building and parsing from the `WSDiscovery` package): `WSDiscovery.start()` itself
would bind UDP 3702 on every interface and join the multicast group (IGMP reports on
the network), which a directed probe must not do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import socket
import time
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from wsdiscovery import (  # type: ignore[import-untyped]
    QName,
    WSDiscovery,
    actions as wsd_actions,
    message as wsd_message,
)

from .errors import OnvifConnectionError
from .messages import normalize_mac

DISCOVERY_PORT: Final = 3702
DISCOVERY_TIMEOUT: Final = 4.0
NS_NETWORK: Final = "http://www.onvif.org/ver10/network/wsdl"
SCOPE_NAME: Final = "onvif://www.onvif.org/name/"
SCOPE_HARDWARE: Final = "onvif://www.onvif.org/hardware/"
SCOPE_MAC: Final = "onvif://www.onvif.org/mac/"


@dataclass(frozen=True, slots=True)
class DiscoveredCamera:
    """A WS-Discovery ProbeMatch."""

    endpoint_reference: str
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...]
    """Scope URIs (the WSDiscovery parser already turns ``%20`` into spaces)."""
    host: str | None
    """Host of the first HTTP(S) XAddr."""
    port: int
    name: str | None
    """From the ``onvif://www.onvif.org/name/`` scope, unquoted."""
    hardware: str | None
    """From the ``onvif://www.onvif.org/hardware/`` scope, unquoted."""
    mac_address: str | None
    """From an ``onvif://www.onvif.org/MAC/`` scope, if the camera sends one."""


def _scope_value(scopes: Iterable[str], prefix: str) -> str | None:
    for scope in scopes:
        if scope.lower().startswith(prefix.lower()):
            value = unquote(scope[len(prefix) :]).strip().strip("/")
            if value:
                return value
    return None


def parse_discovered(
    endpoint_reference: str, xaddrs: Iterable[str], scopes: Iterable[str]
) -> DiscoveredCamera:
    """Build a `DiscoveredCamera` from a ProbeMatch's EPR, XAddrs and scopes."""
    addresses = tuple(x for x in xaddrs if x)
    scope_list = tuple(s for s in scopes if s)
    host: str | None = None
    port = 80
    for xaddr in addresses:
        url = urlsplit(xaddr)
        if url.scheme in {"http", "https"} and url.hostname:
            host = url.hostname
            port = url.port or (443 if url.scheme == "https" else 80)
            break
    return DiscoveredCamera(
        endpoint_reference=endpoint_reference,
        xaddrs=addresses,
        scopes=scope_list,
        host=host,
        port=port,
        name=_scope_value(scope_list, SCOPE_NAME),
        hardware=_scope_value(scope_list, SCOPE_HARDWARE),
        mac_address=normalize_mac(_scope_value(scope_list, SCOPE_MAC)),
    )


def _from_match(match: Any) -> DiscoveredCamera:
    return parse_discovered(
        str(match.getEPR()),
        [str(x) for x in match.getXAddrs() or ()],
        [str(scope.getValue()) for scope in match.getScopes() or ()],
    )


def _nvt_type() -> Any:
    return QName(NS_NETWORK, "NetworkVideoTransmitter", "dn")


def _multicast_probe(timeout: float) -> list[Any]:
    """Home Assistant core's probe: WSDiscovery threads, multicast on every interface."""
    discovery = WSDiscovery(ttl=4, relates_to=True)
    try:
        discovery.start()
        return list(discovery.searchServices(types=[_nvt_type()], timeout=timeout))
    finally:
        discovery.stop()


def _unicast_probe(address: str, port: int, timeout: float) -> list[Any]:
    """Send one Probe to ``address:port`` over unicast UDP; return its ProbeMatches."""
    probe = wsd_actions.constructProbe([_nvt_type()], [])
    payload = wsd_message.createSOAPMessage(probe).encode()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    matches: dict[str, Any] = {}
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, (address, port))
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                data, peer = sock.recvfrom(0xFFFF)
            except TimeoutError:
                break
            answer = wsd_message.parseSOAPMessage(data, peer[0])
            if (
                answer is None
                or answer.getAction() != wsd_actions.NS_ACTION_PROBE_MATCH
                or answer.getRelatesTo() != probe.getMessageId()
            ):
                continue
            for match in answer.getProbeResolveMatches():
                matches[str(match.getEPR())] = match
            break  # a directed probe has one responder, which answers once
    return list(matches.values())


def discover_cameras(
    *,
    timeout: float = DISCOVERY_TIMEOUT,
    address: str | None = None,
    port: int = DISCOVERY_PORT,
) -> list[DiscoveredCamera]:
    """Find ONVIF cameras (NetworkVideoTransmitter) by WS-Discovery. Blocking.

    ``address`` sends a directed unicast probe to ``address:port`` instead of the
    multicast probe (never multicast then). Raises `OnvifConnectionError` when the
    socket fails.
    """
    try:
        if address is None:
            found = _multicast_probe(timeout)
        else:
            found = _unicast_probe(address, port, timeout)
    except OSError as err:
        raise OnvifConnectionError(f"WS-Discovery: {err}") from err
    cameras: dict[str, DiscoveredCamera] = {}
    for match in found:
        camera = _from_match(match)
        cameras.setdefault(camera.endpoint_reference, camera)
    return list(cameras.values())
