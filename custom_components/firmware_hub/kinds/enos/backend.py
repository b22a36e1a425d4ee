"""EnOS bridge: Home Assistant as the device side of EnOS cloud OTA over MQTT.

On every (re)connect the installed version is reported (`ota.device.inform`);
pushed offers (`ota.device.upgrade`) are answered at once (200, or ≥ 2000 for a
malformed one) and `ota.device.getversion` is asked at each check. An install
downloads the package (absolute URL, a path relative to `file_base_url`, or an
`enos-connect://` file through the EnOS HTTP broker),
verifies size and checksum while streaming, reports throttled progress steps and
hands the package to the real device; its result becomes step 100 plus an inform
of the new version, or a failure step (-1 upgrade failed, -2 download failed,
-3 verification failed, -4 burning failed).

Safety: package URLs are fetched only from allowed hosts (`protocol.downloads`),
redirects are followed by hand and checked, offers larger than `max_package_bytes`
are refused, and what goes back to the cloud is a fixed text per failure (nothing a
URL returned). A URL's query string (pre-signed URLs, HTTP broker session ids) is
kept in memory only: never persisted, shown in the state or logged.

No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
import logging
import time
from typing import Any, Final

import aiohttp

from ...core.backend import CloudAuthError, CloudConnectionError
from ...core.bridge import BridgeBackend, BridgeOffer, BridgeSettings, HandOff
from ...core.models import DeviceIdentity, FirmwareState
from ...core.packages import Package, RetryPolicy
from ...core.retry import Backoff
from .fetch import DEFAULT_MAX_PACKAGE_BYTES, PackageSource
from .protocol.client import EnosClient, EnosTiming
from .protocol.downloads import redact_text
from .protocol.errors import (
    EnosAuthError,
    EnosConnectionError,
    EnosError,
    EnosPayloadError,
)
from .protocol.messages import (
    CODE_INVALID_REQUEST,
    CODE_SUCCESS,
    METHOD_PROGRESS,
    STEP_BURN_FAILED,
    STEP_DONE,
    STEP_DOWNLOAD_FAILED,
    STEP_UPGRADE_FAILED,
    STEP_VERIFY_FAILED,
    TOPIC_PROGRESS,
    EnosFirmware as EnosOffer,
    progress_params,
)
from .protocol.signing import EnosCredentials

_LOGGER = logging.getLogger(__name__)

MANUFACTURER: Final = "EnOS"

#: Download progress is reported as steps 0..90; 100 only once the device succeeded.
DOWNLOAD_STEPS: Final = 90

#: What the cloud is told on failure: fixed texts, nothing a URL returned.
DESC_DOWNLOAD_FAILED: Final = "download failed"
DESC_VERIFY_FAILED: Final = "package verification failed"
DESC_TOO_LARGE: Final = "package larger than the device accepts"
DESC_DEVICE_FAILED: Final = "the device reported a failure"
DESC_TIMED_OUT: Final = "the device reported no result in time"
DESC_INVALID_PUSH: Final = "invalid upgrade request"


@dataclass(frozen=True, slots=True)
class EnosBridgeTiming:
    """Pacing of the EnOS bridge (tests shorten it)."""

    protocol: EnosTiming = field(default_factory=EnosTiming)
    download: RetryPolicy = field(default_factory=RetryPolicy)
    #: Progress reports: at most one per this many seconds, or per 10 steps.
    progress_interval: float = 2.0
    first_connect_retry: float = 5.0
    first_connect_retry_max: float = 300.0


DEFAULT_TIMING = EnosBridgeTiming()


class EnosBackend(BridgeBackend):
    """A device whose firmware is published on EnOS, with Home Assistant as agent."""

    kind = "enos"
    can_check = True  # ota.device.getversion
    specific_version = True  # getversion lists several versions

    def __init__(  # noqa: PLR0913 - connection, identity and bridge settings
        self,
        session: aiohttp.ClientSession,
        *,
        host: str,
        port: int,
        tls: bool,
        credentials: EnosCredentials,
        installed_version: str,
        file_base_url: str | None,
        http_broker_url: str | None,
        ca_file: str | None,
        bridge: BridgeSettings,
        timing: EnosBridgeTiming | None = None,
        allowed_download_hosts: str | None = None,
        max_package_bytes: int = DEFAULT_MAX_PACKAGE_BYTES,
        own_addresses: Iterable[str] = (),
    ) -> None:
        """Initialize; nothing connects until `async_run`.

        `allowed_download_hosts`: the user's comma-separated list (ValueError when
        an entry is not a host); `own_addresses`: Home Assistant's addresses.
        """
        super().__init__(installed_version=installed_version, settings=bridge)
        self._credentials = credentials
        self._timing = timing or DEFAULT_TIMING
        self._packages = PackageSource(
            session,
            credentials,
            broker_host=host,
            file_base_url=file_base_url,
            http_broker_url=http_broker_url,
            allowed_download_hosts=allowed_download_hosts,
            max_package_bytes=max_package_bytes,
            own_addresses=own_addresses,
        )
        self._client = EnosClient(
            host,
            port,
            credentials,
            tls=tls,
            ca_file=ca_file or None,
            timing=self._timing.protocol,
        )
        self._client.add_connected_listener(self._on_connected)
        self._client.add_disconnected_listener(self._on_disconnected)
        self._client.set_upgrade_handler(self._on_upgrade)
        self._tasks: set[asyncio.Task[Any]] = set()
        #: True while the config flow only checks the login.
        self._validating = False
        self._closed = asyncio.Event()
        self._last_step = (-1, 0.0)
        #: Outcome steps (100, failures) to send once connected again.
        self._unsent: list[tuple[int, str]] = []

    @property
    def identity(self) -> DeviceIdentity:
        """Return the device as configured: `{product_key}/{device_key}`."""
        creds = self._credentials
        return DeviceIdentity(
            unique_id=f"{creds.product_key}/{creds.device_key}",
            manufacturer=MANUFACTURER,
            model=creds.product_key,
            name=f"EnOS {creds.device_key}",
            serial_number=creds.device_key,
        )

    # ------------------------------------------------------------ connection

    async def async_check_cloud(self) -> None:
        """Log in once (config flow): the cloud must accept the device's sign.

        A validation connection reports nothing: no inform, no version request.
        """
        self._validating = True
        try:
            await self._client.connect()
        except EnosAuthError as err:
            raise CloudAuthError(str(err)) from err
        except EnosConnectionError as err:
            raise CloudConnectionError(str(err)) from err
        finally:
            await self._client.disconnect()
            self._validating = False

    async def async_run(self) -> None:
        """Log in (retrying until it works), then let the client reconnect."""
        delays = Backoff(
            initial=self._timing.first_connect_retry,
            maximum=self._timing.first_connect_retry_max,
            jitter=0.5,
        ).delays()
        while not self._closed.is_set():
            try:
                await self._client.connect()
            except EnosAuthError as err:
                _LOGGER.error("EnOS refused the device's credentials: %s", err)  # noqa: TRY400
                self._auth_failed()
                return
            except EnosError as err:
                delay = next(delays)
                _LOGGER.info("EnOS unreachable (%s); retrying in %.0f s", err, delay)
                await asyncio.sleep(delay)
                continue
            break
        await self._closed.wait()

    def _auth_failed(self) -> None:
        self.set_connected(False)
        if self.on_auth_failed is not None:
            self.on_auth_failed()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_connected(self) -> None:
        """Report the installed version on every connect (EnOS requires it)."""
        if self._validating:
            return
        self.set_connected(True)
        try:
            await self._client.inform(self._installed)
        except EnosError as err:
            _LOGGER.warning("Could not report the firmware version to EnOS: %s", err)
        unsent, self._unsent = self._unsent, []
        for step, desc in unsent:
            self._report(step, desc)
        # Learn the offers now rather than one check interval after (re)connecting.
        await self.async_refresh(check=True)

    def _on_disconnected(self, err: EnosError) -> None:
        if isinstance(err, EnosAuthError):
            _LOGGER.error("EnOS refused the device's credentials on reconnect")
            self._auth_failed()
            return
        _LOGGER.info("Connection to EnOS lost (%s); reconnecting", err)
        self.set_connected(False)

    def _on_upgrade(
        self, msg_id: str | None, offer: EnosOffer | EnosPayloadError
    ) -> None:
        """Answer a push at once; take a valid offer."""
        if isinstance(offer, EnosPayloadError):
            _LOGGER.warning("Malformed upgrade push from EnOS refused: %s", offer)
            self._client.reply_upgrade(
                msg_id, CODE_INVALID_REQUEST, f"{DESC_INVALID_PUSH}: {offer}"
            )
            return
        if not self._packages.fits(offer):
            self._client.reply_upgrade(msg_id, CODE_INVALID_REQUEST, DESC_TOO_LARGE)
            self._report(STEP_DOWNLOAD_FAILED, DESC_TOO_LARGE)
            return
        self._client.reply_upgrade(msg_id, CODE_SUCCESS)
        self._spawn(self.async_offer(self._packages.take(offer, msg_id)))

    async def async_refresh(self, *, check: bool) -> FirmwareState:
        """Ask EnOS which versions it offers (`getversion`)."""
        if not check:
            return self.state
        if not self._client.connected:
            return self._set_state(self.state.evolve(error="not connected to EnOS"))
        try:
            offers = await self._client.get_versions()
        except EnosError as err:
            _LOGGER.warning("EnOS getversion failed: %s", err)
            return self._set_state(
                self.state.evolve(error=f"getversion failed: {redact_text(str(err))}")
            )
        await self.async_set_offers(
            [
                self._packages.take(offer)
                for offer in offers
                if self._packages.fits(offer)
            ],
            keep=lambda offer: "msg_id" in offer.source,
        )
        return self._set_state(self.state.evolve(error=None))

    # ------------------------------------------------------------ download

    async def download(
        self, offer: BridgeOffer, progress: Callable[[int, int | None], None]
    ) -> Package:
        """Stream the package, verifying size and checksum on the way."""
        self._last_step = (-1, 0.0)
        return await self._packages.fetch(
            self.store, offer, progress, self._timing.download
        )

    def on_progress(self, offer: BridgeOffer, percent: int) -> None:
        """Report download progress as increasing steps 0..90, throttled."""
        step = percent * DOWNLOAD_STEPS // 100
        last_step, last_time = self._last_step
        now = time.monotonic()
        if step <= last_step or (
            step - last_step < 10  # noqa: PLR2004
            and now - last_time < self._timing.progress_interval
        ):
            return
        self._last_step = (step, now)
        self._report(step, f"downloading {offer.version}")

    def _report(self, step: int, desc: str) -> None:
        """Send a progress step; results wait for the next connection if need be."""
        if self._client.connected:
            try:
                self._client.send(
                    TOPIC_PROGRESS, METHOD_PROGRESS, progress_params(step, desc)
                )
            except EnosError as err:
                _LOGGER.debug("Progress report not sent: %s", err)
            else:
                return
        if step == STEP_DONE or step < 0:
            # An outcome must reach EnOS (e.g. reported right after a restart,
            # before the login completed); download steps are only informative.
            self._unsent.append((step, desc))

    async def on_download_failed(
        self, offer: BridgeOffer, err: Exception, *, checksum: bool
    ) -> None:
        """Tell EnOS the download (-2) or its verification (-3) failed.

        Fixed texts only: what a URL returned (size, checksum, an error page) or
        where it pointed is never sent back to the cloud.
        """
        if checksum:
            self._report(STEP_VERIFY_FAILED, DESC_VERIFY_FAILED)
        else:
            self._report(STEP_DOWNLOAD_FAILED, DESC_DOWNLOAD_FAILED)

    async def on_handed_off(self, offer: BridgeOffer) -> None:
        """Report the verified package as handed to the device."""
        self._report(DOWNLOAD_STEPS, f"{offer.version} handed to the device")

    async def on_result(
        self,
        handoff: HandOff,
        *,
        success: bool,
        message: str | None,
        timed_out: bool = False,
    ) -> None:
        """Step 100 and an inform of the new version, or a failure step."""
        if success:
            self._report(STEP_DONE, f"{handoff.version} installed")
            if self._client.connected:
                try:
                    await self._client.inform(self._installed)
                except EnosError as err:
                    _LOGGER.warning("Could not report the new version: %s", err)
            return
        if timed_out:
            self._report(STEP_UPGRADE_FAILED, DESC_TIMED_OUT)
        else:  # the device's own words (report_install_result), not a URL's
            self._report(
                STEP_BURN_FAILED, redact_text(message or DESC_DEVICE_FAILED)[:200]
            )

    def diagnostics(self) -> Mapping[str, Any]:
        """Return the MQTT connection's health (no secrets, no query strings)."""
        error = self._client.last_error
        return {
            "mqtt_connected": self._client.connected,
            "mqtt_reconnecting": self._client.reconnecting,
            "mqtt_last_error": redact_text(str(error)) if error else None,
            "max_package_bytes": self._packages.max_package_bytes,
        }

    async def async_close(self) -> None:
        """Disconnect and stop background work."""
        self._closed.set()
        await self._client.disconnect()
        for task in list(self._tasks):
            task.cancel()
        await super().async_close()
