"""EnOS HTTP broker: device authentication and `enos-connect://` file URLs.

Packages published as `enos-connect://<fileUri>` are fetched through the EnOS HTTP
broker: `POST {broker}/auth/{productKey}/{deviceKey}` with a body signed by the
device secret returns a session id; the file is then
`GET {broker}/multipart/sys/{productKey}/{deviceKey}/file/download?sessionId=…
&fileUri=…&category=ota` (Range supported).

The sign is `signing.http_sign`. The broker answers in the
MQTT reply envelope (`{"code": 200, "data": {"sessionId": …}}`); a non-200 code or
HTTP 401/403 means the credentials were refused.

The session id is a credential: it is never logged nor put in an error text (the
download URL goes through `downloads.redact_url` wherever it could be shown).

Wire only, no Home Assistant imports; the caller passes its aiohttp session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from yarl import URL

from .errors import EnosAuthError, EnosConnectionError, EnosError
from .signing import EnosCredentials, http_sign

SCHEME: Final = "enos-connect://"
#: How long (ms) the broker keeps a session without traffic (its documented default).
DEFAULT_LIFETIME: Final = 300_000
_TIMEOUT: Final = aiohttp.ClientTimeout(total=30)


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
        async with session.post(
            url, json=body, timeout=_TIMEOUT, allow_redirects=False
        ) as resp:
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
