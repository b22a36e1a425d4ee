"""Miling bridge: WebSocket registration and upgrade requests, chunked download.

Home Assistant registers as the device (1010) on every (re)connect, answers the
server's upgrade requests (1012 → 1013) at once after validating them, fetches the
package in ≤2048-byte MD5-checked chunks (1014 → 1015) with several requests in flight
(fewer when the server reports load), and hands the assembled package to the real
device. On the device's success it registers again with the new ProgVersion.

No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
import hashlib
import logging
import random
from typing import Any, Final

import aiohttp

from ...core.backend import BackendError, DeviceConnectionError, DeviceResponseError
from ...core.bridge import BridgeBackend, BridgeOffer, BridgeSettings, HandOff
from ...core.models import DeviceIdentity, FirmwareState
from ...core.packages import IntegrityError, Package, PackageError, PartialFile
from .protocol.client import (
    Backoff,
    ChunkChecksumError,
    ChunkClient,
    ChunkError,
    ChunkHttpError,
    ChunkMissingError,
    Message,
    MilingClient,
    MilingConnectionError,
    MilingError,
    MilingProtocolError,
    MilingRegistrationRefusedError,
    UpgradeRequest,
    UpgradeStatus,
    chunk_ranges,
    is_plain_file_name,
    register_once,
)

_LOGGER = logging.getLogger(__name__)

MANUFACTURER: Final = "Miling"
#: Requests in flight when the server is idle (LoadCondition 0); halved per level.
MAX_IN_FLIGHT: Final = 16
#: Chunks between two checkpoints of the partial download (≈ 1 MiB).
CHECKPOINT_EVERY: Final = 512


class RegistrationRefusedError(BackendError):
    """The server answered 1011 with a non-zero Status."""

    key = "registration_refused"


@dataclass(frozen=True, slots=True)
class MilingTiming:
    """Retry behaviour of chunk downloads (tests shorten it)."""

    attempts: int = 10  # per chunk, for retryable errors (Status 2 is routine)
    backoff: float = 0.5
    max_backoff: float = 10.0
    request_timeout: float = 10.0
    #: Reconnect delays of the WebSocket (capped, with jitter).
    reconnect: Backoff = field(default_factory=Backoff)


DEFAULT_TIMING = MilingTiming()


def in_flight(load_condition: int) -> int:
    """Return how many chunk requests to keep in flight for a server load level."""
    return max(1, MAX_IN_FLIGHT >> max(0, min(load_condition, 4)))


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
    ) -> None:
        """Initialize; nothing connects until `async_run`."""
        super().__init__(installed_version=prog_version, settings=bridge)
        self._host = host
        self._ws_port = ws_port
        self._device_id = device_id
        self._device_type = device_type
        self.max_package_bytes = max_package_bytes
        self._timing = timing or DEFAULT_TIMING
        self._chunks = ChunkClient(
            session,
            host=host,
            http_port=http_port,
            device_id=device_id,
            timeout=self._timing.request_timeout,
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
            raise DeviceConnectionError(str(err)) from err
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
        await self._reply(status)
        if status != UpgradeStatus.ACCEPTED:
            return
        await self.async_offer(
            BridgeOffer(
                version=request.prog_version,
                size=request.file_size,
                source={
                    "file_name": request.file_name,
                    "load_condition": request.load_condition,
                },
            ),
            replace=True,
        )

    # ------------------------------------------------------------ download

    async def download(
        self, offer: BridgeOffer, progress: Callable[[int, int | None], None]
    ) -> Package:
        """Fetch every missing chunk, several in flight, and assemble the file."""
        file_name = str(offer.source["file_name"])
        size = int(offer.size or 0)
        key = hashlib.sha256(
            f"{file_name}\0{size}\0{offer.version}".encode()
        ).hexdigest()
        partial = await self.store.open_partial(key[:32], size)
        todo = [r for r in chunk_ranges(size) if not partial.covered(r[0], r[1] + 1)]
        progress(partial.bytes_done, size)
        try:
            await self._fetch_all(
                file_name,
                size,
                todo,
                partial,
                progress,
                in_flight(int(offer.source.get("load_condition", 0))),
            )
        except ChunkMissingError as err:
            await partial.discard()
            raise DeviceResponseError(f"the server no longer has {file_name}") from err
        except ChunkChecksumError as err:
            await partial.discard()
            raise IntegrityError(
                f"chunk {err.start}-{err.end} keeps failing its MD5"
            ) from err
        except BaseException:
            await partial.close()  # keep finished chunks for a resume
            raise
        return await partial.complete()

    async def _fetch_all(
        self,
        file_name: str,
        size: int,
        todo: list[tuple[int, int]],
        partial: PartialFile,
        progress: Callable[[int, int | None], None],
        workers_wanted: int,
    ) -> None:
        queue = iter(todo)
        written = 0

        async def worker() -> None:
            nonlocal written
            for start, end in queue:
                data = await self._fetch_chunk(file_name, size, start, end)
                await partial.write(start, data)
                written += 1
                if written % CHECKPOINT_EVERY == 0:
                    await partial.checkpoint()
                progress(partial.bytes_done, size)

        loop = asyncio.get_running_loop()
        workers = [
            loop.create_task(worker())
            for _ in range(min(workers_wanted, max(1, len(todo))))
        ]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    async def _fetch_chunk(
        self, file_name: str, size: int, start: int, end: int
    ) -> bytes:
        """Fetch one chunk, retrying what can be retried."""
        timing = self._timing
        for attempt in range(1, timing.attempts + 1):
            try:
                return await self._chunks.fetch_chunk(
                    file_name, start, end, file_size=size
                )
            except ChunkMissingError:
                raise
            except ChunkHttpError as err:
                if not err.retryable or attempt == timing.attempts:
                    raise _as_package_error(err) from err
            except (ChunkError, MilingConnectionError) as err:
                if attempt == timing.attempts:
                    if isinstance(err, ChunkChecksumError):
                        raise
                    raise _as_package_error(err) from err
            delay = min(timing.max_backoff, timing.backoff * 2 ** (attempt - 1))
            await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311
        raise AssertionError("unreachable")  # pragma: no cover

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


def _as_package_error(err: Exception) -> PackageError:
    return PackageError(f"chunk download failed: {err}")
