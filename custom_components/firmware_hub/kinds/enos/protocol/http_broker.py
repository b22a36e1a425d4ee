"""EnOS HTTP broker: device authentication and `enos-connect://` file URLs.

Packages published as `enos-connect://<fileUri>` are fetched through the EnOS HTTP
broker: `POST {broker}/auth/{productKey}/{deviceKey}` with a body signed by the
device secret returns a session id; the file is then
`GET {broker}/multipart/sys/{productKey}/{deviceKey}/file/download?sessionId=…
&fileUri=…&category=ota` (Range supported).

The sign follows EnOS's HTTP connection reference: the parameters concatenated as
name + value in this order, `deviceKey`, `lifetime`, `productKey`, `signMethod`,
followed by the device secret, SHA-256, upper-case hex. The broker answers in the
MQTT reply envelope (`{"code": 200, "data": {"sessionId": …}}`); a non-200 code or
HTTP 401/403 means the credentials were refused.

Wire only, no Home Assistant imports; the caller passes its aiohttp session.
"""

from __future__ import annotations

from collections.abc import Mapping
import hashlib
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from yarl import URL

from .client import EnosAuthError, EnosConnectionError, EnosCredentials, EnosError

SCHEME: Final = "enos-connect://"
#: How long (ms) the broker keeps a session without traffic (its documented default).
DEFAULT_LIFETIME: Final = 300_000
_TIMEOUT: Final = aiohttp.ClientTimeout(total=30)


def http_sign(credentials: EnosCredentials, lifetime: int) -> str:
    """Return the sign of an HTTP authentication request."""
    content = (
        f"deviceKey{credentials.device_key}"
        f"lifetime{lifetime}"
        f"productKey{credentials.product_key}"
        "signMethodsha256"
        f"{credentials.device_secret}"
    )
    return hashlib.sha256(content.encode()).hexdigest().upper()


def file_uri(url: str) -> str | None:
    """Return the file URI of an `enos-connect://` URL, or None for other URLs."""
    if not url.lower().startswith(SCHEME):
        return None
    return url[len(SCHEME) :]


async def open_session(
    session: aiohttp.ClientSession,
    broker_url: str,
    credentials: EnosCredentials,
    *,
    lifetime: int = DEFAULT_LIFETIME,
) -> str:
    """Authenticate the device with the HTTP broker; return the session id."""
    url = URL(broker_url.rstrip("/")) / "auth" / credentials.product_key
    url = url / credentials.device_key
    body = {
        "signMethod": "sha256",
        "sign": http_sign(credentials, lifetime),
        "lifetime": lifetime,
    }
    try:
        async with session.post(url, json=body, timeout=_TIMEOUT) as resp:
            if resp.status in (401, 403):
                raise EnosAuthError(
                    f"HTTP broker refused the device (HTTP {resp.status})"
                )
            if resp.status >= 400:  # noqa: PLR2004
                raise EnosConnectionError(f"HTTP broker answered HTTP {resp.status}")
            doc: Any = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as err:
        raise EnosConnectionError(f"HTTP broker unreachable: {err!r}") from err
    except ValueError as err:
        raise EnosError(f"HTTP broker answered no JSON: {err}") from err
    if not isinstance(doc, Mapping):
        raise EnosError("HTTP broker answered no JSON object")
    if doc.get("code") != 200:  # noqa: PLR2004
        raise EnosAuthError(
            f"HTTP broker refused the device: {doc.get('code')} {doc.get('message')}"
        )
    data = doc.get("data")
    session_id = data.get("sessionId") if isinstance(data, Mapping) else None
    if not isinstance(session_id, str) or not session_id:
        raise EnosError("HTTP broker answered without a sessionId")
    return session_id


def download_url(
    broker_url: str, credentials: EnosCredentials, session_id: str, uri: str
) -> str:
    """Return the download URL of `uri` (from an `enos-connect://` URL)."""
    base = broker_url.rstrip("/")
    return (
        f"{base}/multipart/sys/{quote(credentials.product_key, safe='')}/"
        f"{quote(credentials.device_key, safe='')}/file/download"
        f"?sessionId={quote(session_id, safe='')}&fileUri={quote(uri, safe='')}"
        "&category=ota"
    )
