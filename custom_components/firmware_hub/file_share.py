"""Firmware files Home Assistant serves to a device that fetches them itself.

A recorder upgrades its channel cameras from a package URL: Home Assistant serves
the open file at `/api/firmware_hub/firmware/{token}`, without authentication (the
recorder has no Home Assistant credentials), so the share is narrow:

- the token is `secrets.token_urlsafe(32)`, made for one install and revoked when
  it ends (`async_share_file` is a context manager);
- only the device's own address may fetch it; any other address, an unknown or a
  revoked token all get the same 404 (nothing says whether a token exists);
- the file is streamed from the install's open file in 64 KiB executor reads at
  their offsets (no path comes from the network, nothing is read whole);
- the URL's base is Home Assistant's local URL (never the external or cloud URL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
import logging
import secrets
import socket
from typing import BinaryIO, Final

from aiohttp import hdrs, web
from aiohttp.helpers import content_disposition_header
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN
from .core.backend import InstallRefusedError, ShareFile
from .core.files import READ_CHUNK_BYTES, read_at

_LOGGER = logging.getLogger(__name__)

SHARE_PATH: Final = "/api/firmware_hub/firmware/{token}"
_SHARES: HassKey[dict[str, _Share]] = HassKey(f"{DOMAIN}_file_shares")

type _Address = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class _Share:
    """One shared file: what is served, and to whom."""

    file: BinaryIO
    name: str
    size: int
    start: int
    hosts: frozenset[_Address]


class FirmwareFileView(HomeAssistantView):
    """Serves a shared firmware file to the one device it is shared with."""

    url = SHARE_PATH
    name = "api:firmware_hub:firmware"
    requires_auth = False

    async def get(self, request: web.Request, token: str) -> web.StreamResponse:
        """Stream the file, or 404 (unknown token, revoked, another address)."""
        hass = request.app[KEY_HASS]
        share = _find(hass.data.get(_SHARES, {}), token)
        if share is None or _address(request.remote) not in share.hosts:
            _LOGGER.debug("Refused a firmware file request from %s", request.remote)
            raise web.HTTPNotFound
        response = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: "application/octet-stream",
                # Quoted: a file name may hold any character but "/" and NUL.
                hdrs.CONTENT_DISPOSITION: content_disposition_header(
                    "attachment", filename=share.name
                ),
            }
        )
        response.content_length = share.size
        await response.prepare(request)
        sent = 0
        while sent < share.size:
            chunk = await hass.async_add_executor_job(
                read_at,
                share.file,
                share.start + sent,
                min(READ_CHUNK_BYTES, share.size - sent),
            )
            if not chunk:
                break  # the file shrank: the device sees a short body
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
        return response


def _find(shares: dict[str, _Share], token: str) -> _Share | None:
    """Return the share of `token`, comparing every token in constant time."""
    found = None
    for known, share in shares.items():
        if secrets.compare_digest(known.encode(), token.encode()):
            found = share
    return found


def _address(value: str | None) -> _Address | None:
    """Return a peer's address (an IPv4-mapped IPv6 address as IPv4), or None."""
    try:
        address = ip_address(value or "")
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def local_base_url(hass: HomeAssistant) -> str:
    """Return Home Assistant's local URL, or raise why there is none."""
    try:
        return get_url(hass, allow_external=False, allow_cloud=False)
    except NoURLAvailableError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="no_internal_url"
        ) from err


async def _addresses(hass: HomeAssistant, host: str) -> frozenset[_Address]:
    """Return the addresses `host` (an address or a name) stands for."""
    if (address := _address(host)) is not None:
        return frozenset({address})
    try:
        infos = await hass.loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as err:
        raise InstallRefusedError(
            "cannot_connect", f"cannot resolve {host}: {err}"
        ) from err
    return frozenset(
        address for info in infos if (address := _address(str(info[4][0])))
    )


def async_setup_file_share(hass: HomeAssistant) -> None:
    """Serve shared files (`async_setup`: once, before any install)."""
    hass.data[_SHARES] = {}
    hass.http.register_view(FirmwareFileView)


def async_file_sharer(hass: HomeAssistant) -> ShareFile:
    """Return the backends' way to share a file with one device."""

    @asynccontextmanager
    async def share(
        file: BinaryIO, name: str, size: int, host: str
    ) -> AsyncIterator[str]:
        try:
            base = local_base_url(hass)
        except ServiceValidationError as err:
            raise InstallRefusedError(
                "no_internal_url", "Home Assistant has no local URL"
            ) from err
        hosts = await _addresses(hass, host)
        start = await hass.async_add_executor_job(file.tell)
        shares = hass.data[_SHARES]
        token = secrets.token_urlsafe(32)
        shares[token] = _Share(file, name, size, start, hosts)
        try:
            yield base.rstrip("/") + SHARE_PATH.format(token=token)
        finally:
            del shares[token]

    return share
