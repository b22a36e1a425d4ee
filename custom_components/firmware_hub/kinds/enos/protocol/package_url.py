"""From an offer's `fileUrl` to the http(s) URL a package is fetched from.

`fileUrl` forms (`reference/enos.md`): absolute `http(s)://…`; a path relative to
the configured file base URL; `enos-connect://<fileUri>`, fetched through the EnOS
HTTP broker (a session is opened first). Any other scheme is refused. Whether the
resulting host may be fetched at all is `downloads.DownloadPolicy`'s call.

Wire only, no Home Assistant imports.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import aiohttp

from . import http_broker
from .errors import EnosError, EnosUrlRefusedError
from .signing import EnosCredentials


def resolve_url(file_url: str, file_base_url: str | None) -> str:
    """Return an absolute http(s) URL for a plain (not enos-connect) fileUrl."""
    scheme = urlsplit(file_url).scheme.lower()
    if scheme in ("http", "https"):
        return file_url
    if scheme:
        raise EnosUrlRefusedError(f"unsupported package URL scheme {scheme!r}")
    if not file_base_url:
        raise EnosError("relative package URL and no file base URL configured")
    # "//host/x" stays a path below the base: a relative URL never names a host.
    return urljoin(file_base_url.rstrip("/") + "/", file_url.lstrip("/"))


async def package_url(
    session: aiohttp.ClientSession,
    file_url: str,
    *,
    file_base_url: str | None,
    http_broker_url: str | None,
    credentials: EnosCredentials,
) -> str:
    """Return the URL to download; for enos-connect://, open a broker session.

    The result may carry a session id: show it only through `downloads.redact_url`.
    """
    if (uri := http_broker.file_uri(file_url)) is None:
        return resolve_url(file_url, file_base_url)
    if not http_broker_url:
        raise EnosError(
            "enos-connect:// package and no EnOS HTTP broker URL in the options"
        )
    session_id = await http_broker.open_session(session, http_broker_url, credentials)
    return http_broker.download_url(http_broker_url, credentials, session_id, uri)
