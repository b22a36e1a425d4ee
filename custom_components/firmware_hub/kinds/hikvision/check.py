"""The camera's online check: is there newer firmware, and what changed in it.

The camera asks Hikvision's server itself (`onlineUpgrade/version`, cached by the
camera; `?check=true` asks now); this reads its answer into the state, the change
log as Markdown. No Home Assistant imports.
"""

from __future__ import annotations

from datetime import UTC, datetime
import logging
from typing import Any, Final

from ...core.backend import DeviceResponseError
from ...core.models import FirmwareOffer, FirmwareState, Phase
from ...core.versions import is_newer
from .errors import call
from .protocol import DeviceInfo, IsapiClient, IsapiNotSupportedError, UpgradeVersion

_LOGGER = logging.getLogger(__name__)

#: What the user reads when the camera could not run its online check.
CHECK_FAILED: Final = (
    "the camera could not get an answer from Hikvision's upgrade server;"
    " the last known offer is kept"
)

#: Lines of a change log that are list items already.
_LIST_MARKERS: Final = ("- ", "* ", "+ ")


def markdown_notes(changelog: str | None) -> str | None:
    """Return a change log as Markdown that keeps its line breaks.

    Home Assistant renders release notes as Markdown, which joins single line
    breaks into one paragraph: a change log of several lines becomes a list.
    """
    if changelog is None:
        return None
    lines = [line.strip() for line in changelog.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else None
    return "\n".join(
        line if line.startswith(_LIST_MARKERS) else f"- {line}" for line in lines
    )


def utc_now() -> datetime:
    """Return the time of a check."""
    return datetime.now(UTC)


async def server_connected(client: IsapiClient) -> bool | None:
    """Return whether the camera reaches Hikvision's upgrade server (None: unsaid)."""
    try:
        return await call(client.get_upgrade_server_connected())
    except DeviceResponseError as err:
        _LOGGER.debug("Upgrade server status unavailable: %s", err)
        return None


async def check_offer(
    client: IsapiClient,
    state: FirmwareState,
    info: DeviceInfo,
    *,
    now: bool,
    documents: dict[str, Any],
) -> FirmwareState:
    """Read the camera's online check into `state` (its answer into `documents`).

    Without `now`, the camera's cached answer; with it, the camera asks
    Hikvision's server now (the user's "Check for update").
    """
    try:
        offer: UpgradeVersion = await call(client.get_upgrade_version(check_now=now))
    except DeviceResponseError as err:
        if not isinstance(err.__cause__, IsapiNotSupportedError):
            # The camera could not ask its server (deviceError, busy...): keep
            # the last offer and say so (the code stays in the log and the
            # diagnostics); the camera itself is fine.
            _LOGGER.warning("%s: firmware check failed: %s", info.model, err)
            documents["version_error"] = str(err)
            return state.evolve(error=CHECK_FAILED)
        # The capability document may claim support; the answer is the truth.
        _LOGGER.info(
            "%s answers notSupport to the online version check: "
            "firmware updates are not available through Home Assistant",
            info.model,
        )
        documents["version"] = {"notSupport": str(err)}
        return state.evolve(
            phase=Phase.UNSUPPORTED,
            latest_version=info.full_version,
            release_notes=None,
            offers=(),
            error=None,
            last_check=utc_now(),
        )
    documents["version"] = offer.raw
    installed = info.full_version
    if offer.version and is_newer(offer.version, installed):
        latest, notes = offer.version, markdown_notes(offer.changelog)
        offers: tuple[FirmwareOffer, ...] = (FirmwareOffer(latest, notes),)
    else:
        latest, notes, offers = installed, None, ()
    return state.evolve(
        phase=Phase.IDLE,
        latest_version=latest,
        release_notes=notes,
        offers=offers,
        error=None,
        progress=None,
        last_check=utc_now(),
    )
