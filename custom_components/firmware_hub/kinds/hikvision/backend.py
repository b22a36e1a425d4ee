"""Hikvision online upgrade: the camera checks, downloads and flashes by itself.

Install is a state machine over ISAPI that never flashes before the camera reports
the package download `finish`ed, and only ends once the camera is back after its
reboot and reports the new firmware version:

    downloadPackage → poll download status until finish → upgradeWithoutDownload
    → poll upgrade status until successful → reboot (when not automatic)
    → wait for the camera to come back → verify deviceInfo's firmware version
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
import logging
import time
from typing import Any, Final

from ...core.backend import (
    BackendError,
    DeviceAuthError,
    DeviceConnectionError,
    DeviceResponseError,
    FirmwareBackend,
    InstallError,
    InstallRefusedError,
    Publish,
)
from ...core.models import DeviceIdentity, FirmwareOffer, FirmwareState, Phase
from ...core.versions import is_newer, same_version
from .protocol.client import (
    DeviceInfo,
    IsapiAuthError,
    IsapiClient,
    IsapiConnectionError,
    IsapiError,
    IsapiHttpError,
    IsapiNotSupportedError,
    IsapiParseError,
    IsapiResponseError,
    TaskStatus,
    UpgradeVersion,
    find,
    text,
)

_LOGGER = logging.getLogger(__name__)

MANUFACTURER: Final = "Hikvision"

DOWNLOAD_FINISHED: Final = "finish"
DOWNLOAD_FAILURES: Final = frozenset(
    {"downloadFailed", "incorrectPackage", "hdOperationFailed"}
)
UPGRADE_SUCCESSFUL: Final = "successful"
UPGRADE_RUNNING: Final = frozenset({"upgrading", "waitManualTrigger"})
UPGRADE_IDLE: Final = "notUpgrade"

# Progress shown while installing: download 0-45 %, flash 45-90 %, reboot 90-95 %,
# verification 99 %.
_DOWNLOAD_SPAN: Final = (0, 45)
_FLASH_SPAN: Final = (45, 90)
_REBOOT_START: Final = 90
_REBOOT_DOWN: Final = 95
_VERIFY: Final = 99


@dataclass(frozen=True, slots=True)
class HikvisionTiming:
    """How often and how long the install polls (seconds)."""

    poll_interval: float = 2.0
    download_timeout: float = 30 * 60
    flash_timeout: float = 30 * 60
    reboot_timeout: float = 10 * 60
    #: Connection errors in a row tolerated while downloading (the camera is busy).
    max_download_errors: int = 5


#: The timing backends use unless given one (tests shorten it).
DEFAULT_TIMING = HikvisionTiming()


def _span(percent: int, span: tuple[int, int]) -> int:
    low, high = span
    return low + (high - low) * max(0, min(100, percent)) // 100


class HikvisionBackend(FirmwareBackend):
    """A Hikvision camera or recorder that upgrades itself from Hikvision's server."""

    kind = "hikvision"
    can_restart = True

    def __init__(
        self, client: IsapiClient, timing: HikvisionTiming | None = None
    ) -> None:
        """Initialize over an ISAPI client."""
        super().__init__()
        self._client = client
        self._timing = timing or DEFAULT_TIMING
        self._device: DeviceInfo | None = None
        self._online_upgrade = True
        self._reboot_after_upgrade = "manual"
        self._documents: dict[str, Any] = {}

    async def _call[T](self, coro: Awaitable[T]) -> T:
        """Await a protocol call, turning protocol errors into backend errors."""
        try:
            return await coro
        except IsapiAuthError as err:
            raise DeviceAuthError(str(err)) from err
        except IsapiConnectionError as err:
            raise DeviceConnectionError(str(err)) from err
        except IsapiError as err:
            raise DeviceResponseError(str(err)) from err

    async def async_probe(self) -> DeviceIdentity:
        """Read deviceInfo and the online-upgrade capability; check once."""
        info = await self._read_device_info()
        try:
            caps = await self._call(self._client.get_upgrade_capabilities())
        except DeviceResponseError as err:
            if not isinstance(err.__cause__, (IsapiResponseError, IsapiHttpError)):
                raise
            _LOGGER.debug("%s: no online upgrade capability (%s)", info.model, err)
            self._online_upgrade = False
            self._documents["capabilities"] = None
        else:
            self._documents["capabilities"] = dict(caps)
            mode = text(find(caps, "rebootAfterUpgrade"))
            self._reboot_after_upgrade = "auto" if mode == "auto" else "manual"
        return DeviceIdentity(
            unique_id=info.serial_number,
            manufacturer=MANUFACTURER,
            model=info.model,
            name=info.name,
            serial_number=info.serial_number,
            mac_address=info.mac_address,
            hw_version=info.hardware_version,
        )

    async def _read_device_info(self) -> DeviceInfo:
        info = await self._call(self._client.get_device_info())
        self._device = info
        return info

    async def async_refresh(self, *, check: bool) -> FirmwareState:
        """Poll the camera: one request (deviceInfo).

        With `check`, also read whether the camera reaches its upgrade server and
        run its online check (which makes it ask Hikvision's server).
        """
        info = await self._read_device_info()
        state = self._state.evolve(installed_version=info.full_version)
        details = {
            **state.details,
            "reboot_after_upgrade": self._reboot_after_upgrade,
            "online_upgrade": self._online_upgrade,
        }
        if not self._online_upgrade:
            details["upgrade_server_connected"] = None
            return self._set_state(
                state.evolve(
                    phase=Phase.UNSUPPORTED,
                    latest_version=info.full_version,
                    progress=None,
                    last_check=_now() if check else state.last_check,
                    details=details,
                )
            )
        if not check:
            # Keep the last check's offer; a finished upgrade must not look pending.
            latest = state.latest_version
            if latest is None or not is_newer(latest, info.full_version):
                state = state.evolve(latest_version=info.full_version)
            return self._set_state(state.evolve(details=details))
        details["upgrade_server_connected"] = await self._server_connected()
        return self._set_state(await self._check(state.evolve(details=details), info))

    async def _server_connected(self) -> bool | None:
        try:
            return await self._call(self._client.get_upgrade_server_connected())
        except DeviceResponseError as err:
            _LOGGER.debug("Upgrade server status unavailable: %s", err)
            return None

    async def _check(self, state: FirmwareState, info: DeviceInfo) -> FirmwareState:
        try:
            offer: UpgradeVersion = await self._call(self._client.get_upgrade_version())
        except DeviceResponseError as err:
            if not isinstance(err.__cause__, IsapiNotSupportedError):
                # The camera could not ask its server (deviceError, busy...): keep
                # the last offer and say so; the camera itself is fine.
                _LOGGER.warning("%s: firmware check failed: %s", info.model, err)
                return state.evolve(error=f"check failed: {err}")
            # The capability document may claim support; the answer is the truth.
            _LOGGER.info(
                "%s answers notSupport to the online version check: "
                "firmware updates are not available through Home Assistant",
                info.model,
            )
            self._documents["version"] = {"notSupport": str(err)}
            return state.evolve(
                phase=Phase.UNSUPPORTED,
                latest_version=info.full_version,
                release_notes=None,
                offers=(),
                error=None,
                last_check=_now(),
            )
        self._documents["version"] = offer.raw
        installed = info.full_version
        if offer.version and is_newer(offer.version, installed):
            latest, notes = offer.version, offer.changelog
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
            last_check=_now(),
        )

    async def async_restart(self) -> None:
        """Reboot the camera."""
        await self._call(self._client.reboot())

    def diagnostics(self) -> Mapping[str, Any]:
        """Return deviceInfo and the online-upgrade documents as the camera sent them."""
        return {
            "device_info": dict(self._device.raw) if self._device else None,
            "reboot_after_upgrade": self._reboot_after_upgrade,
            "online_upgrade": self._online_upgrade,
            **self._documents,
        }

    # ------------------------------------------------------------------ install

    async def async_install(
        self, version: str | None, publish: Publish
    ) -> FirmwareState:
        """Download, flash, reboot and verify; publish every step."""
        target = self._install_target(version)
        step = _Step(self, publish)
        try:
            step.publish(phase=Phase.DOWNLOADING, progress=0, error=None)
            await self._download(step)
            step.publish(phase=Phase.INSTALLING, progress=_FLASH_SPAN[0])
            rebooted = await self._flash(step)
            step.publish(phase=Phase.REBOOTING, progress=_REBOOT_START)
            info = await self._reboot_and_verify(step, target, rebooted=rebooted)
        except BackendError as err:
            error = err if isinstance(err, InstallError) else _as_install_error(err)
            step.publish(phase=Phase.FAILED, progress=None, error=str(error))
            raise error from err
        return self._set_state(
            self._state.evolve(
                installed_version=info.full_version,
                latest_version=info.full_version,
                release_notes=None,
                offers=(),
                phase=Phase.IDLE,
                progress=None,
                error=None,
            )
        )

    def _install_target(self, version: str | None) -> str:
        state = self._state
        if not self._online_upgrade or state.phase is Phase.UNSUPPORTED:
            raise InstallRefusedError(
                "not_supported", "the device has no online upgrade"
            )
        if not state.update_available or state.latest_version is None:
            raise InstallRefusedError("no_update", "no newer firmware is offered")
        if version is not None and not same_version(version, state.latest_version):
            raise InstallRefusedError(
                "version_not_offered",
                f"version {version} is not offered",
                version=version,
            )
        return state.latest_version

    async def _poll_until[T](
        self, read: Callable[[], Awaitable[T | None]], limit: float, timeout_key: str
    ) -> T:
        """Call `read` every poll interval until it returns something."""
        deadline = time.monotonic() + limit
        while True:
            result = await read()
            if result is not None:
                return result
            if time.monotonic() >= deadline:
                raise InstallError(timeout_key, f"not done within {limit:.0f} s")
            await asyncio.sleep(self._timing.poll_interval)

    async def _download(self, step: _Step) -> None:
        await self._call(self._client.start_package_download())
        errors = 0

        async def read() -> TaskStatus | None:
            nonlocal errors
            try:
                status = await self._call(self._client.get_download_status())
            except DeviceConnectionError:
                errors += 1
                if errors > self._timing.max_download_errors:
                    raise
                return None
            errors = 0
            if status.status in DOWNLOAD_FAILURES:
                raise InstallError(
                    "download_failed",
                    f"the camera's download ended in {status.status}",
                    reason=status.status,
                )
            step.publish(progress=_span(status.percent, _DOWNLOAD_SPAN))
            return status if status.status == DOWNLOAD_FINISHED else None

        await self._poll_until(read, self._timing.download_timeout, "download_timeout")

    async def _flash(self, step: _Step) -> bool:
        """Start the flash and follow it; return True if the camera rebooted itself."""
        await self._call(self._client.start_upgrade())
        lost = False

        async def read() -> str | None:
            nonlocal lost
            try:
                status = await self._call(self._client.get_upgrade_status())
            except DeviceConnectionError as err:
                if not lost:
                    _LOGGER.info("Camera unreachable while flashing (%s); waiting", err)
                lost = True
                step.publish(details_update={"device_reachable": False})
                return None
            if lost:
                step.publish(details_update={"device_reachable": True})
            if status.status in UPGRADE_RUNNING:
                step.publish(progress=_span(status.percent, _FLASH_SPAN))
                return None
            if status.status == UPGRADE_SUCCESSFUL:
                return "flashed"
            if status.status == UPGRADE_IDLE and lost:
                # Back from a reboot it did by itself (rebootAfterUpgrade auto).
                return "rebooted"
            if status.status == UPGRADE_IDLE:
                return None
            raise InstallError(
                "flash_failed",
                f"the camera's upgrade ended in {status.status}",
                reason=status.status,
            )

        result = await self._poll_until(
            read, self._timing.flash_timeout, "flash_timeout"
        )
        step.publish(progress=_FLASH_SPAN[1])
        return result == "rebooted"

    async def _reboot_and_verify(
        self, step: _Step, target: str, *, rebooted: bool
    ) -> DeviceInfo:
        if not rebooted and self._reboot_after_upgrade == "manual":
            try:
                await self._call(self._client.reboot())
            except DeviceConnectionError as err:
                _LOGGER.debug(
                    "Reboot request cut short (%s): the camera is going down", err
                )
        went_down = rebooted

        async def read() -> DeviceInfo | None:
            nonlocal went_down
            try:
                info = await self._read_device_info()
            except DeviceConnectionError:
                if not went_down:
                    went_down = True
                    step.publish(progress=_REBOOT_DOWN)
                return None
            if went_down:
                step.publish(phase=Phase.VERIFYING, progress=_VERIFY)
            if same_version(info.full_version, target):
                return info
            if went_down:
                raise InstallError(
                    "verification_failed",
                    f"the camera came back with {info.full_version}, not {target}",
                    installed=info.full_version,
                    expected=target,
                )
            return None  # still up: the reboot has not started yet

        return await self._poll_until(
            read, self._timing.reboot_timeout, "reboot_timeout"
        )


class _Step:
    """Publishes install progress as new states of the backend."""

    def __init__(self, backend: HikvisionBackend, publish: Publish) -> None:
        self._backend = backend
        self._publish = publish

    def publish(
        self, *, details_update: Mapping[str, Any] | None = None, **changes: Any
    ) -> None:
        state = self._backend.state
        if details_update:
            changes["details"] = {**state.details, **details_update}
        new = state.evolve(**changes)
        if new != state:
            self._publish(self._backend._set_state(new))  # noqa: SLF001


def _as_install_error(err: BackendError) -> InstallError:
    if isinstance(err, DeviceAuthError):
        return InstallError("install_auth_failed", str(err))
    if isinstance(err, DeviceConnectionError):
        return InstallError("device_lost", str(err))
    if isinstance(err.__cause__, (IsapiResponseError, IsapiParseError, IsapiHttpError)):
        return InstallError("device_refused", str(err), reason=str(err.__cause__))
    return InstallError("device_refused", str(err), reason=str(err))


def _now() -> datetime:
    return datetime.now(UTC)
