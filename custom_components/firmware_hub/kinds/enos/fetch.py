"""Where an EnOS package comes from, and whether it may be fetched at all.

Offers larger than `max_package_bytes` are refused (their real bytes are capped
too: the store aborts a download that exceeds the announced size). A URL's query
string (pre-signed URLs) is kept in memory only: the persisted offer holds the URL
without it, so it never reaches the stored state, the diagnostics or a log. The
package is fetched through `protocol.downloads.guarded_session`: allowed hosts
only, redirects followed by hand and checked, query strings out of error texts.

No Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Iterable
import logging
from typing import Final

import aiohttp

from ...core.bridge import BridgeOffer
from ...core.packages import (
    DownloadError,
    Expected,
    Package,
    PackageError,
    PackageStore,
    Progress,
    RetryPolicy,
)
from .protocol.downloads import DownloadPolicy, guarded_session, redact_text
from .protocol.errors import EnosError, EnosUrlRefusedError
from .protocol.messages import EnosFirmware as EnosOffer
from .protocol.package_url import package_url
from .protocol.signing import EnosCredentials

_LOGGER = logging.getLogger(__name__)

DEFAULT_MAX_PACKAGE_BYTES: Final = 64 * 1024 * 1024


def _without_query(url: str) -> str:
    return url.split("#", 1)[0].split("?", 1)[0]


def to_bridge_offer(offer: EnosOffer, msg_id: str | None = None) -> BridgeOffer:
    """Return the bridge's view of an EnOS firmware object.

    The URL is kept without its query; a URL that had one is marked `signed`.
    """
    url = _without_query(offer.file_url)
    return BridgeOffer(
        version=offer.version,
        size=offer.file_size,
        md5=offer.sign if offer.sign_method == "md5" else None,
        sha256=offer.sign if offer.sign_method == "sha256" else None,
        source={"file_url": url, "sign_method": offer.sign_method}
        | ({"signed": True} if url != offer.file_url else {})
        | ({"msg_id": msg_id} if msg_id else {}),
    )


class PackageSource:
    """Turns offers into verified packages for one EnOS device."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: EnosCredentials,
        *,
        broker_host: str,
        file_base_url: str | None,
        http_broker_url: str | None,
        allowed_download_hosts: str | None,
        max_package_bytes: int,
        own_addresses: Iterable[str] = (),
    ) -> None:
        """Initialize (ValueError: an allowed download host is not a host)."""
        self._session = session
        self._credentials = credentials
        self._file_base_url = file_base_url or None
        self._http_broker_url = http_broker_url or None
        self.max_package_bytes = max_package_bytes
        self.policy = DownloadPolicy.for_device(
            urls=(self._file_base_url, self._http_broker_url),
            hosts=(broker_host,),
            allowed=allowed_download_hosts,
            own_addresses=own_addresses,
        )
        #: Full URLs of `signed` offers, by (version, checksum).
        self._signed_urls: dict[tuple[str, str], str] = {}

    def fits(self, offer: EnosOffer) -> bool:
        """Return whether the announced size is within `max_package_bytes`."""
        if offer.file_size <= self.max_package_bytes:
            return True
        _LOGGER.warning(
            "EnOS offers %s of %d bytes, more than the %d bytes allowed; refused",
            offer.version,
            offer.file_size,
            self.max_package_bytes,
        )
        return False

    def take(self, offer: EnosOffer, msg_id: str | None = None) -> BridgeOffer:
        """Return the bridge offer; remember a signed URL in memory."""
        bridge_offer = to_bridge_offer(offer, msg_id)
        if bridge_offer.source.get("signed"):
            self._signed_urls[(offer.version, offer.sign)] = offer.file_url
        return bridge_offer

    def _file_url(self, offer: BridgeOffer) -> str:
        if not offer.source.get("signed"):
            return str(offer.source["file_url"])
        key = (offer.version, offer.md5 or offer.sha256 or "")
        if (url := self._signed_urls.get(key)) is None:
            raise DownloadError(
                "the package's signed URL was not kept across a restart; "
                "waiting for EnOS to offer it again"
            )
        return url

    async def fetch(
        self,
        store: PackageStore,
        offer: BridgeOffer,
        progress: Progress,
        retry: RetryPolicy,
    ) -> Package:
        """Download and verify the offer's package; errors carry no query string."""
        if offer.size is None or offer.size > self.max_package_bytes:
            raise DownloadError("package larger than the configured maximum")
        try:
            url = await package_url(
                self._session,
                self._file_url(offer),
                file_base_url=self._file_base_url,
                http_broker_url=self._http_broker_url,
                credentials=self._credentials,
            )
            async with guarded_session(self._session, self.policy) as session:
                return await store.download(
                    session,
                    url,
                    Expected(size=offer.size, md5=offer.md5, sha256=offer.sha256),
                    progress=progress,
                    retry=retry,
                )
        except EnosUrlRefusedError as err:
            _LOGGER.warning("Package download for %s refused: %s", offer.version, err)
            raise DownloadError(str(err)) from None
        except EnosError as err:
            raise DownloadError(f"EnOS: {redact_text(str(err))}") from None
        except PackageError as err:
            raise type(err)(redact_text(str(err))) from None
