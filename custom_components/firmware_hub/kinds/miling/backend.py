"""Miling bridge: WebSocket registration and upgrade requests, chunked download.

Home Assistant registers as the device (1010) on every (re)connect, answers the
server's upgrade requests (1012 → 1013) at once after validating them, fetches the
package in ≤2048-byte MD5-checked chunks (1014 → 1015) with an adaptive number of
requests in flight (up to `max_in_flight`; fewer when the server reports load or
struggles), and hands the assembled package to the real
device. On the device's success it registers again with the new ProgVersion.

No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
import logging
from typing import Any, Final

import aiohttp

from ...core.backend import BackendError, CloudConnectionError, DeviceResponseError
from ...core.bridge import BridgeBackend, BridgeOffer, BridgeSettings, HandOff
from ...core.models import DeviceIdentity, FirmwareState
from ...core.packages import Package
from ...core.retry import Backoff
from .fetch import DEFAULT_MAX_IN_FLIGHT, ChunkDownloader, FetchTiming
from .protocol.chunks import ChunkClient
from .protocol.client import (
    RECONNECT_BACKOFF,
    STABLE_AFTER,
    MilingClient,
    register_once,
)
from .protocol.errors import (
    MilingConnectionError,
    MilingError,
    MilingProtocolError,
    MilingRegistrationRefusedError,
)
from .protocol.messages import (
    Message,
    UpgradeRequest,
    UpgradeStatus,
    is_plain_file_name,
)

_LOGGER = logging.getLogger(__name__)

MANUFACTURER: Final = "Miling"


class RegistrationRefusedError(BackendError):
    """The server answered 1011 with a non-zero Status."""

    key = "registration_refused"


@dataclass(frozen=True, slots=True)
class MilingTiming:
    """Retry and reconnect behaviour (tests shorten it)."""

    fetch: FetchTiming = field(default_factory=FetchTiming)
    request_timeout: float = 10.0
    #: Reconnect delays of the WebSocket (capped, with jitter).
    reconnect: Backoff = RECONNECT_BACKOFF
    #: A connection shorter than this (seconds) counts as a failed attempt.
    stable_after: float = STABLE_AFTER


DEFAULT_TIMING = MilingTiming()


class MilingBackend(BridgeBackend):
    """A device upgraded through the Miling cloud, with Home Assistant as its agent."""

    kind = "miling"
    can_check = False  # the server pushes; there is nothing to ask for

    def __init__(  # noqa: PLR0913 - connection, identity and bridge settings
        self,
        session: aiohttp.ClientSession,
        *,
        host: str,
        ws_port: int,
        http_port: int,
        device_id: str,
        device_type: str,
        prog_version: str,
        max_package_bytes: int,
        bridge: BridgeSettings,
        timing: MilingTiming | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        """Initialize; nothing connects until `async_run`."""
        super().__init__(installed_version=prog_version, settings=bridge)
        self._host = host
        self._ws_port = ws_port
        self._device_id = device_id
        self._device_type = device_type
        self.max_package_bytes = max_package_bytes
        self._timing = timing or DEFAULT_TIMING
        self._downloader = ChunkDownloader(
            ChunkClient(
                session,
                host=host,
                http_port=http_port,
                device_id=device_id,
                timeout=self._timing.request_timeout,
            ),
            self.store,
            self._timing.fetch,
            max_in_flight=max_in_flight,
        )
        self._client = MilingClient(
            host=host,
            ws_port=ws_port,
            on_connected=self._on_connected,
            on_message=self._on_message,
            on_invalid=self._on_invalid,
            on_disconnected=self._on_disconnected,
            request_timeout=self._timing.request_timeout,
            backoff=self._timing.reconnect,
            stable_after=self._timing.stable_after,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ connection

    @property
    def identity(self) -> DeviceIdentity:
        """Return the device as configured: `{host}/{device_id}`."""
        return DeviceIdentity(
            unique_id=f"{self._host}/{self._device_id}",
            manufacturer=MANUFACTURER,
            model=self._device_type,
            name=f"{self._device_type} {self._device_id}",
            serial_number=self._device_id,
        )

    async def async_check_cloud(self) -> None:
        """Register once: the server must know and accept the device."""
        try:
            await register_once(
                self._host,
                self._ws_port,
                self._device_id,
                self._device_type,
                self._installed,
                request_timeout=self._timing.request_timeout,
            )
        except MilingRegistrationRefusedError as err:
            raise RegistrationRefusedError(
                f"registration refused with Status {err.status}", status=str(err.status)
            ) from err
        except MilingConnectionError as err:
            raise CloudConnectionError(str(err)) from err
        except MilingError as err:
            raise DeviceResponseError(str(err)) from err

    async def async_run(self) -> None:
        """Stay connected (reconnecting with backoff) until closed."""
        await self._client.run()

    async def async_refresh(self, *, check: bool) -> FirmwareState:
        """Return the pushed state (Miling has nothing to poll)."""
        return self.state

    async def _on_connected(self) -> None:
        """Register with the version the device runs now (every reconnect)."""
        try:
            await self._client.register(
                self._device_id, self._device_type, self._installed
            )
        except MilingRegistrationRefusedError as err:
            _LOGGER.error(  # noqa: TRY400 - a refusal, not a crash: no traceback
                "The Miling server refused device %s (Status %s)",
                self._device_id,
                err.status,
            )
            return
        except MilingConnectionError as err:
            _LOGGER.debug("Registration interrupted: %s", err)
            return
        self.set_connected(True)

    def _on_disconnected(self) -> None:
        self.set_connected(False)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_message(self, message: Message) -> None:
        # 1011 replies are matched to their 1010 by the client itself.
        if isinstance(message, UpgradeRequest):
            self._spawn(self._handle_upgrade_request(message))

    def _on_invalid(self, frame: str | bytes, err: MilingProtocolError) -> None:
        """Answer a malformed 1012 with -1 (other unusable frames are only logged)."""
        if getattr(err, "code", None) == UpgradeRequest.CODE:
            self._spawn(self._reply(int(UpgradeStatus.PACKAGE_MISMATCH)))

    async def _reply(self, status: int) -> None:
        try:
            await self._client.reply_upgrade(self._device_id, status)
        except MilingConnectionError as err:
            _LOGGER.warning("Could not answer the upgrade request: %s", err)

    # ------------------------------------------------------------ offers

    def validate(self, request: UpgradeRequest) -> int:
        """Return the 1013 Status for an upgrade request."""
        if request.device_id != self._device_id:
            _LOGGER.warning(
                "Upgrade request for device %s, not ours", request.device_id
            )
            return int(UpgradeStatus.PACKAGE_MISMATCH)
        if request.device_type != self._device_type:
            _LOGGER.warning(
                "Upgrade request for device type %s, this device is %s",
                request.device_type,
                self._device_type,
            )
            return int(UpgradeStatus.PACKAGE_MISMATCH)
        if not is_plain_file_name(request.file_name) or request.file_size <= 0:
            _LOGGER.warning("Upgrade request with an unusable FileName or FileSize")
            return int(UpgradeStatus.PACKAGE_MISMATCH)
        if request.file_size > self.max_package_bytes:
            _LOGGER.warning(
                "Upgrade package of %d bytes exceeds the %d-byte limit",
                request.file_size,
                self.max_package_bytes,
            )
            return int(UpgradeStatus.TOO_LARGE)
        return int(UpgradeStatus.ACCEPTED)

    async def _handle_upgrade_request(self, request: UpgradeRequest) -> None:
        status = self.validate(request)
        if status == UpgradeStatus.ACCEPTED:
            # The server's load now: caps the requests in flight at once, also
            # those of a download of this offer that is running.
            self._downloader.set_load_condition(request.load_condition)
        await self._reply(status)
        if status != UpgradeStatus.ACCEPTED:
            return
        await self.async_offer(
            BridgeOffer(
                version=request.prog_version,
                size=request.file_size,
                # What identifies the package; LoadCondition is only a hint
                # about the server's load, kept apart so that a re-push under
                # another load is the same offer.
                source={"file_name": request.file_name},
            ),
            replace=True,
        )

    # ------------------------------------------------------------ download

    async def download(
        self, offer: BridgeOffer, progress: Callable[[int, int | None], None]
    ) -> Package:
        """Fetch every missing chunk, several in flight, and assemble the file."""
        return await self._downloader.download(
            str(offer.source["file_name"]),
            int(offer.size or 0),
            offer.version,
            progress=progress,
        )

    # ------------------------------------------------------------ result

    async def on_result(
        self,
        handoff: HandOff,
        *,
        success: bool,
        message: str | None,
        timed_out: bool = False,
    ) -> None:
        """Register again with the new version (the protocol's proof of success)."""
        if not success:
            _LOGGER.info(
                "Device reported a failed install: %s", message or "no message"
            )
            return
        if self._client.connected:
            try:
                await self._client.register(
                    self._device_id, self._device_type, self._installed
                )
            except MilingError as err:
                _LOGGER.warning("Re-registration after the install failed: %s", err)

    async def async_close(self) -> None:
        """Disconnect and stop background work."""
        await self._client.close()
        for task in list(self._tasks):
            task.cancel()
        await super().async_close()
