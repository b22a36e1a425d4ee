"""Where EnOS may send Home Assistant for a package: the download policy.

A cloud-supplied `fileUrl` (and every redirect hop) is fetched only over http(s)
and only from an allowed host: the hosts of the device's own settings (broker,
file base URL, HTTP broker) and those the user lists (`allowed_download_hosts`).
A configured host *name* is resolved before each request; when it resolves to a
loopback, link-local, private or unique-local address, or one of Home Assistant's
own, it is refused unless the user listed that name or address. An address typed
in the settings (e.g. `192.168.1.20` as the broker) counts as listed.

Not covered: DNS rebinding between the check and aiohttp's own resolution.

Redirects are never followed by aiohttp: `guarded_session` wraps the caller's
session (same connector) with a middleware that checks each request, follows at
most `MAX_REDIRECTS` hops itself (checking each), and strips query strings from
the errors it raises, so that pre-signed URLs and HTTP broker session ids never
end up in a log or an error text. `redact_url` / `redact_text` do the same for
text built elsewhere.

Wire only, no Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable
import contextlib
from dataclasses import dataclass, field
import ipaddress
import re
import socket
from typing import Final

import aiohttp
from aiohttp import hdrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .errors import EnosUrlRefusedError

MAX_REDIRECTS: Final = 5
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_SCHEMES: Final = frozenset({"http", "https"})
_HOST_RE: Final = re.compile(r"[a-z0-9._:-]{1,253}")
_QUERY_RE: Final = re.compile(
    r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s'\"?#<>]*)[?#][^\s'\"<>)]*"
)
_SESSION_RE: Final = re.compile(r"(?i)(sessionId=)[^&\s'\"<>)]+")

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def normalize_host(value: str) -> str:
    """Return a host name or address in comparable form (lower case, no brackets)."""
    host = value.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def url_host(url: str | None) -> str | None:
    """Return the normalized host of `url`, or None."""
    if not url:
        return None
    with contextlib.suppress(ValueError):
        if host := URL(url).host:
            return normalize_host(host)
    return None


def parse_host_list(text: str | None) -> frozenset[str]:
    """Read `allowed_download_hosts`: host names or addresses, comma separated.

    Raises ValueError naming the first entry that is not a bare host (a URL, a
    path, a port, spaces inside).
    """
    hosts: set[str] = set()
    for raw in (text or "").split(","):
        if not raw.strip():
            continue
        host = normalize_host(raw)
        if not _HOST_RE.fullmatch(host) or (":" in host and not _address(host)):
            raise ValueError(raw.strip())
        hosts.add(host)
    return frozenset(hosts)


def _address(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_local(address: IPAddress) -> bool:
    """Loopback, link-local, private / unique-local, and other non-public ranges."""
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )


def _own_addresses() -> set[IPAddress]:
    """Return the addresses this host's name resolves to (executor)."""
    found: set[IPAddress] = set()
    # Best effort (a resolver may refuse the host's own name): HA passes its own.
    with contextlib.suppress(Exception):
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None):
            if (address := _address(str(sockaddr[0]))) is not None:
                found.add(address)
    return found


@dataclass(slots=True)
class DownloadPolicy:
    """Which hosts a cloud-supplied URL may point at."""

    #: Hosts from the device's settings (broker, file base URL, HTTP broker).
    configured: frozenset[str]
    #: Hosts the user listed: allowed whatever they resolve to.
    listed: frozenset[str] = frozenset()
    #: Home Assistant's own addresses (besides what its host name resolves to).
    own_addresses: frozenset[str] = frozenset()
    _own: set[IPAddress] | None = field(default=None, repr=False)

    @classmethod
    def for_device(
        cls,
        *,
        urls: Iterable[str | None],
        hosts: Iterable[str],
        allowed: str | None,
        own_addresses: Iterable[str] = (),
    ) -> DownloadPolicy:
        """Build the policy from the settings (`allowed`: the user's list)."""
        configured = {normalize_host(host) for host in hosts if host}
        configured |= {host for url in urls if (host := url_host(url))}
        return cls(
            frozenset(configured),
            parse_host_list(allowed),
            frozenset(normalize_host(a) for a in own_addresses),
        )

    async def _own_set(self) -> set[IPAddress]:
        if self._own is None:
            own = await asyncio.get_running_loop().run_in_executor(None, _own_addresses)
            own |= {a for h in self.own_addresses if (a := _address(h)) is not None}
            self._own = own
        return self._own

    async def check(self, url: URL) -> None:
        """Refuse (`EnosUrlRefusedError`) a URL this device may not fetch."""
        if url.scheme.lower() not in _SCHEMES or not url.host:
            raise EnosUrlRefusedError("package URL is not http(s)")
        host = normalize_host(url.host)
        if host in self.listed:
            return
        if host not in self.configured:
            raise EnosUrlRefusedError(
                f"package host {host} is not allowed (see allowed download hosts)"
            )
        if _address(host) is not None:
            return  # an address typed in the settings
        own = await self._own_set()
        for address in await _resolve(host, url.port):
            if (_is_local(address) or address in own) and (
                str(address) not in self.listed
            ):
                raise EnosUrlRefusedError(
                    f"package host {host} resolves to a local address"
                )


async def _resolve(host: str, port: int | None) -> set[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )
    except OSError as err:
        raise EnosUrlRefusedError(f"package host {host} cannot be resolved") from err
    return {a for *_, sockaddr in infos if (a := _address(str(sockaddr[0])))}


def redact_url(url: str | URL) -> str:
    """Return `url` without its query and fragment (pre-signed parts, session ids)."""
    text = str(url)
    with contextlib.suppress(ValueError):
        parsed = URL(text)
        if parsed.query_string or parsed.fragment:
            return str(parsed.with_query(None).with_fragment(None)) + "?…"
        return text
    return _QUERY_RE.sub(r"\1?…", text)


def redact_text(text: str) -> str:
    """Return `text` with URL query strings and session ids taken out."""
    return _SESSION_RE.sub(r"\1…", _QUERY_RE.sub(r"\1?…", text))


class _Guard:
    """The middleware: check every request, follow redirects by hand."""

    def __init__(self, policy: DownloadPolicy) -> None:
        self.policy = policy
        self.session: aiohttp.ClientSession | None = None

    async def __call__(
        self,
        req: aiohttp.ClientRequest,
        handler: aiohttp.ClientHandlerType,
    ) -> aiohttp.ClientResponse:
        await self.policy.check(req.url)
        resp = await _sanitized(handler(req), req.url)
        headers = {
            name: req.headers[name]
            for name in (hdrs.RANGE, hdrs.ACCEPT_ENCODING)
            if name in req.headers
        }
        hops = 0
        while resp.status in _REDIRECT_STATUSES:
            location = resp.headers.get(hdrs.LOCATION)
            resp.release()
            hops += 1
            if location is None or hops > MAX_REDIRECTS:
                raise EnosUrlRefusedError(
                    f"package URL redirected more than {MAX_REDIRECTS} times"
                    if location
                    else "package URL redirected nowhere"
                )
            try:
                target = resp.url.join(URL(location))
            except ValueError as err:
                raise EnosUrlRefusedError("package URL redirected to no URL") from err
            await self.policy.check(target)
            assert self.session is not None  # noqa: S101 - set before any request
            resp = await _sanitized(
                self.session.get(
                    target, headers=headers, allow_redirects=False, middlewares=()
                ),
                target,
            )
        if resp.status >= 500:  # noqa: PLR2004 - the caller's raise_for_status
            resp.release()
            raise aiohttp.ClientResponseError(
                _request_info(resp.url),
                (),
                status=resp.status,
                message=resp.reason or "",
            )
        return resp


async def _sanitized(
    request: Awaitable[aiohttp.ClientResponse], url: URL
) -> aiohttp.ClientResponse:
    try:
        return await request
    except aiohttp.ClientResponseError as err:
        raise aiohttp.ClientResponseError(
            _request_info(url), (), status=err.status, message=err.message
        ) from None
    except aiohttp.InvalidURL:
        raise aiohttp.InvalidURL(redact_url(url)) from None


def _request_info(url: URL) -> aiohttp.RequestInfo:
    clean = URL(redact_url(url))
    return aiohttp.RequestInfo(
        clean, hdrs.METH_GET, CIMultiDictProxy(CIMultiDict()), clean
    )


@contextlib.asynccontextmanager
async def guarded_session(
    session: aiohttp.ClientSession, policy: DownloadPolicy
) -> AsyncIterator[aiohttp.ClientSession]:
    """Yield a session on `session`'s connection pool that obeys `policy`."""
    guard = _Guard(policy)
    async with aiohttp.ClientSession(
        connector=session.connector,
        connector_owner=False,
        headers=session.headers,
        cookie_jar=aiohttp.DummyCookieJar(),
        middlewares=(guard,),
    ) as guarded:
        guard.session = guarded
        yield guarded
