"""One coordinator per config entry: it wraps the device's backend.

Polling reads the device every `POLL_INTERVAL`; the firmware check (which makes the
device ask its vendor's server) runs every `check_interval_minutes` or when the user
presses "Check for update". Installs run one at a time per device under a lock and
publish every step with `async_set_updated_data`; while one runs, polling does not
touch the device (it may be rebooting) and entities stay available.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_SSL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    HomeAssistantError,
    ServiceValidationError,
)
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util
from yarl import URL

from .const import (
    CONF_AUTO_DOWNLOAD,
    CONF_CA_FILE,
    CONF_CHECK_INTERVAL,
    CONF_DEVICE_ID,
    CONF_DEVICE_KEY,
    CONF_DEVICE_SECRET,
    CONF_DEVICE_TYPE,
    CONF_FILE_BASE_URL,
    CONF_FIRMWARE_VERSION,
    CONF_HANDOFF_TIMEOUT,
    CONF_HTTP_BROKER_URL,
    CONF_HTTP_PORT,
    CONF_KIND,
    CONF_MAX_PACKAGE_MB,
    CONF_PRODUCT_KEY,
    CONF_PROG_VERSION,
    CONF_SIGN_METHOD,
    CONF_TLS,
    CONF_WS_PORT,
    DEFAULT_AUTO_DOWNLOAD,
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_HANDOFF_TIMEOUT,
    DOMAIN,
    EVENT_INSTALL_REQUESTED,
    EVENT_UPGRADE_FINISHED,
    LOGGER,
    POLL_INTERVAL,
    Kind,
)
from .core.backend import (
    BackendError,
    DeviceAuthError,
    FirmwareBackend,
    InstallError,
    InstallRefusedError,
    InvalidRequestError,
)
from .core.bridge import (
    BridgeBackend,
    BridgeSettings,
    HandOff,
    MemoryPersistence,
    Persistence,
)
from .core.models import DeviceIdentity, FirmwareState, Phase
from .core.packages import PackageStore
from .kinds.enos.backend import EnosBackend
from .kinds.enos.protocol.client import EnosCredentials
from .kinds.hikvision.backend import HikvisionBackend
from .kinds.hikvision.protocol.client import IsapiClient
from .kinds.miling.backend import MilingBackend
from .kinds.onvif.backend import OnvifBackend
from .kinds.onvif.protocol.client import OnvifClient

type FirmwareHubConfigEntry = ConfigEntry[FirmwareHubData]

STORAGE_VERSION = 1


class StorePersistence:
    """A bridge's persistent state in `.storage/firmware_hub.<entry_id>`."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Initialize the store of one config entry."""
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}"
        )

    async def async_load(self) -> dict[str, Any] | None:
        """Return the saved data, or None."""
        return await self._store.async_load()

    async def async_save(self, data: dict[str, Any]) -> None:
        """Save `data`."""
        await self._store.async_save(data)

    async def async_remove(self) -> None:
        """Delete the stored data (entry removed)."""
        await self._store.async_remove()


@dataclass(slots=True)
class FirmwareHubData:
    """What a loaded config entry holds."""

    coordinator: FirmwareCoordinator
    identity: DeviceIdentity


def create_backend(
    hass: HomeAssistant,
    data: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
    entry_id: str | None = None,
) -> FirmwareBackend:
    """Build the backend a config entry's data describes.

    Without `entry_id` (a config flow validating input) a bridge gets throw-away
    persistence: it only checks the cloud, it never downloads.
    """
    kind = Kind(data[CONF_KIND])
    options = options or {}
    if kind is Kind.HIKVISION:
        session = async_get_clientsession(hass, verify_ssl=data[CONF_VERIFY_SSL])
        client = IsapiClient(
            session,
            host=data[CONF_HOST],
            port=data[CONF_PORT],
            ssl=data[CONF_SSL],
            username=data[CONF_USERNAME],
            password=data[CONF_PASSWORD],
        )
        return HikvisionBackend(client)
    if kind is Kind.MILING:
        return MilingBackend(
            async_get_clientsession(hass),
            host=data[CONF_HOST],
            ws_port=data[CONF_WS_PORT],
            http_port=data[CONF_HTTP_PORT],
            device_id=data[CONF_DEVICE_ID],
            device_type=data[CONF_DEVICE_TYPE],
            prog_version=data[CONF_PROG_VERSION],
            max_package_bytes=int(data[CONF_MAX_PACKAGE_MB]) * 1024 * 1024,
            bridge=_bridge_settings(hass, options, entry_id),
        )
    if kind is Kind.ENOS:
        return EnosBackend(
            async_get_clientsession(hass),
            host=data[CONF_HOST],
            port=data[CONF_PORT],
            tls=data[CONF_TLS],
            credentials=EnosCredentials(
                data[CONF_PRODUCT_KEY],
                data[CONF_DEVICE_KEY],
                data[CONF_DEVICE_SECRET],
                data[CONF_SIGN_METHOD],
            ),
            installed_version=data[CONF_FIRMWARE_VERSION],
            file_base_url=data.get(CONF_FILE_BASE_URL),
            ca_file=options.get(CONF_CA_FILE),
            http_broker_url=options.get(CONF_HTTP_BROKER_URL),
            bridge=_bridge_settings(hass, options, entry_id),
        )
    if kind is Kind.ONVIF:
        # onvif-zeep-async builds its own aiohttp sessions for SOAP (one client per
        # entry, closed on unload); Home Assistant's carries the firmware upload.
        # ValueError: not a host name or address (a URL, spaces...).
        URL.build(scheme="http", host=data[CONF_HOST], port=data[CONF_PORT])
        return OnvifBackend(
            OnvifClient(
                host=data[CONF_HOST],
                port=data[CONF_PORT],
                username=data[CONF_USERNAME],
                password=data[CONF_PASSWORD],
            ),
            async_get_clientsession(hass),
        )
    raise ValueError(f"unsupported kind {kind}")  # config flow never creates one


def package_dir(hass: HomeAssistant, entry_id: str) -> Path:
    """Return where an entry's packages live: `<config>/firmware_hub/<entry_id>/`."""
    return Path(hass.config.path(DOMAIN, entry_id))


def _bridge_settings(
    hass: HomeAssistant, options: Mapping[str, Any], entry_id: str | None
) -> BridgeSettings:
    persistence: Persistence = (
        StorePersistence(hass, entry_id) if entry_id else MemoryPersistence()
    )
    return BridgeSettings(
        store=PackageStore(package_dir(hass, entry_id or "probe")),
        persistence=persistence,
        handoff_timeout=60.0
        * options.get(CONF_HANDOFF_TIMEOUT, DEFAULT_HANDOFF_TIMEOUT),
        auto_download=options.get(CONF_AUTO_DOWNLOAD, DEFAULT_AUTO_DOWNLOAD),
    )


def translated_error(err: BackendError) -> HomeAssistantError:
    """Return the translated Home Assistant error for a backend error."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=err.key,
        translation_placeholders={"error": str(err), **err.placeholders},
    )


class FirmwareCoordinator(DataUpdateCoordinator[FirmwareState]):
    """Keeps one device's `FirmwareState` and runs its checks and installs."""

    config_entry: FirmwareHubConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FirmwareHubConfigEntry,
        backend: FirmwareBackend,
        identity: DeviceIdentity,
    ) -> None:
        """Initialize with a probed backend."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            # Polling kinds read the device every minute; the bridges are pushed
            # to and only poll to ask for versions, at the check interval.
            update_interval=(
                POLL_INTERVAL
                if backend.polls
                else (
                    timedelta(
                        minutes=entry.options.get(
                            CONF_CHECK_INTERVAL, DEFAULT_CHECK_INTERVAL
                        )
                    )
                    if backend.can_check
                    else None
                )
            ),
            # FirmwareState compares by value: an unchanged poll writes no state.
            always_update=False,
        )
        self.backend = backend
        self.identity = identity
        self.kind = Kind(entry.data[CONF_KIND])
        self._install_lock = asyncio.Lock()
        minutes = entry.options.get(CONF_CHECK_INTERVAL, DEFAULT_CHECK_INTERVAL)
        self.check_interval = timedelta(minutes=minutes)
        #: When the next firmware check is due (setup has just checked).
        self.next_check = dt_util.utcnow() + self.check_interval
        self._handoff_unsub: CALLBACK_TYPE | None = None
        if isinstance(backend, BridgeBackend):
            # Pushes (offers, connection changes) arrive as new states.
            backend.attach(self.async_set_updated_data)
            backend.on_auth_failed = lambda: entry.async_start_reauth(hass)
            # A hand-off pending from before a restart keeps its deadline.
            self._schedule_handoff_timeout()

    @property
    def installing(self) -> bool:
        """Return True while an install runs."""
        return self._install_lock.locked()

    async def _async_update_data(self) -> FirmwareState:
        if self.installing:
            return self.backend.state
        check = dt_util.utcnow() >= self.next_check
        try:
            state = await self.backend.async_refresh(check=check)
        except DeviceAuthError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="invalid_auth"
            ) from err
        except BackendError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="update_failed",
                translation_placeholders={"error": str(err)},
            ) from err
        if check:
            self.next_check = dt_util.utcnow() + self.check_interval
        return state

    async def async_check(self) -> None:
        """Look for new firmware now (the check button)."""
        self._refuse_while_installing()
        previous = self.data
        self.async_set_updated_data(previous.evolve(phase=Phase.CHECKING))
        try:
            state = await self.backend.async_refresh(check=True)
        except BackendError as err:
            self.async_set_updated_data(previous)
            raise translated_error(err) from err
        self.next_check = dt_util.utcnow() + self.check_interval
        self.async_set_updated_data(state)
        if state.error:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="check_failed",
                translation_placeholders={"error": state.error},
            )

    async def async_install(self, version: str | None) -> None:
        """Install firmware; one install at a time per device.

        For the bridge kinds this returns once the package is handed to the device:
        the state stays `waiting_for_device` (and `in_progress`) until the device's
        result arrives or the hand-off times out.
        """
        self._refuse_while_installing()
        async with self._install_lock:
            target = version or self.data.latest_version
            try:
                final = await self.backend.async_install(
                    version, self.async_set_updated_data
                )
            except InstallRefusedError as err:
                # Nothing was sent to the device: no failure to report.
                raise translated_error(err) from err
            except InstallError as err:
                self._install_failed(target, err)
                raise translated_error(err) from err
            self.async_set_updated_data(final)
            if isinstance(self.backend, BridgeBackend) and self.backend.handoff:
                self._fire_install_requested(self.backend.handoff)
                self._schedule_handoff_timeout()
                return
            self._install_succeeded(final)

    async def async_install_file(self, path: Path) -> None:
        """Install a firmware file (`install_firmware_file`); one install at a time.

        The sibling of `async_install` for devices that take an uploaded file: the
        same lock, progress, events and repair issues. Returns once the device runs
        the new firmware (verified) or raises why not.
        """
        self._refuse_while_installing()
        async with self._install_lock:
            try:
                final = await self.backend.async_install_file(
                    path, self.async_set_updated_data
                )
            except InstallRefusedError as err:
                raise translated_error(err) from err
            except InstallError as err:
                # The file's version is unknown: the event carries none.
                self._install_failed(None, err)
                raise translated_error(err) from err
            self.async_set_updated_data(final)
            self._install_succeeded(final)

    async def async_device_action[T](self, action: Callable[[], Awaitable[T]]) -> T:
        """Run an action that changes the device (apply settings), not mid-install.

        A request the device cannot take (`InvalidRequestError`: nothing was sent) is
        the caller's mistake, a `ServiceValidationError`; refused credentials start
        re-authentication. The backend's new state (read back) is published.
        """
        self._refuse_while_installing()
        try:
            result = await action()
        except InvalidRequestError as err:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key=err.key,
                translation_placeholders={"error": str(err), **err.placeholders},
            ) from err
        except DeviceAuthError as err:
            self.config_entry.async_start_reauth(self.hass)
            raise translated_error(err) from err
        except BackendError as err:
            raise translated_error(err) from err
        self.async_set_updated_data(self.backend.state)
        return result

    def _install_failed(self, version: str | None, err: InstallError) -> None:
        self.async_set_updated_data(self.backend.state)
        self._fire_finished(version, success=False, error=err.key)
        self._create_repair(err)

    def _install_succeeded(self, final: FirmwareState) -> None:
        ir.async_delete_issue(self.hass, DOMAIN, self._repair_id)
        if device_id := self.device_id:
            dr.async_get(self.hass).async_update_device(
                device_id, sw_version=final.installed_version
            )
        self._fire_finished(final.installed_version, success=True, error=None)

    # ---------------------------------------------------------------- bridges

    def _bridge(self) -> BridgeBackend:
        if not isinstance(self.backend, BridgeBackend):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="action_not_for_kind",
                translation_placeholders={
                    "action": "report_install_result",
                    "kind": self.kind.value,
                },
            )
        return self.backend

    async def async_report_result(
        self, success: bool, version: str | None, message: str | None
    ) -> None:
        """Take the real device's result for the package handed to it."""
        backend = self._bridge()
        handoff = backend.handoff
        try:
            final = await backend.async_report_result(success, version, message)
        except InstallRefusedError as err:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key=err.key,
                translation_placeholders={"error": str(err), **err.placeholders},
            ) from err
        except InstallError as err:
            # The report itself worked: the device failed; tell automations.
            self._cancel_handoff_timeout()
            self._install_failed(handoff.version if handoff else version, err)
            return
        self._cancel_handoff_timeout()
        self.async_set_updated_data(final)
        self._install_succeeded(final)

    def _fire_install_requested(self, handoff: HandOff) -> None:
        self.hass.bus.async_fire(
            EVENT_INSTALL_REQUESTED,
            {
                "device_id": self.device_id,
                "entry_id": self.config_entry.entry_id,
                "kind": self.kind.value,
                "version": handoff.version,
                "path": handoff.path,
                "size": handoff.size,
                "md5": handoff.md5,
                "sha256": handoff.sha256,
            },
        )

    def _schedule_handoff_timeout(self) -> None:
        """Fail the pending hand-off when the device does not report in time."""
        self._cancel_handoff_timeout()
        if not isinstance(self.backend, BridgeBackend):
            return
        deadline = self.backend.handoff_deadline
        if deadline is not None:
            self._handoff_unsub = async_track_point_in_utc_time(
                self.hass, self._handoff_timed_out, dt_util.utc_from_timestamp(deadline)
            )

    def _cancel_handoff_timeout(self) -> None:
        if self._handoff_unsub is not None:
            self._handoff_unsub()
            self._handoff_unsub = None

    @callback
    def _handoff_timed_out(self, _now: datetime) -> None:
        self._handoff_unsub = None
        self.config_entry.async_create_background_task(
            self.hass, self._async_expire_handoff(), "firmware_hub hand-off timeout"
        )

    async def _async_expire_handoff(self) -> None:
        backend = self._bridge()
        handoff = backend.handoff
        if handoff is None:
            return
        try:
            await backend.async_handoff_expired()
        except InstallError as err:
            self._install_failed(handoff.version, err)

    async def async_shutdown(self) -> None:
        """Stop timers (entry unloaded)."""
        self._cancel_handoff_timeout()
        await super().async_shutdown()

    async def async_restart(self) -> None:
        """Restart the device; entities are unavailable until it answers again."""
        self._refuse_while_installing()
        try:
            await self.backend.async_restart()
        except BackendError as err:
            raise translated_error(err) from err
        self.async_set_update_error(
            UpdateFailed(translation_domain=DOMAIN, translation_key="restarting")
        )

    def _refuse_while_installing(self) -> None:
        if self.installing:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="install_in_progress"
            )

    @property
    def device_id(self) -> str | None:
        """Return the device registry id of this entry's device."""
        device = dr.async_get(self.hass).async_get_device_by_identifier(
            (DOMAIN, self.identity.unique_id), self.config_entry.entry_id
        )
        return device.id if device else None

    @callback
    def _fire_finished(
        self, version: str | None, *, success: bool, error: str | None
    ) -> None:
        self.hass.bus.async_fire(
            EVENT_UPGRADE_FINISHED,
            {
                "device_id": self.device_id,
                "entry_id": self.config_entry.entry_id,
                "kind": self.kind.value,
                "version": version,
                "success": success,
                "error": error,
            },
        )

    @property
    def _repair_id(self) -> str:
        return f"install_failed_{self.config_entry.entry_id}"

    def _create_repair(self, err: InstallError) -> None:
        """Raise a repair issue when the device needs the user's eyes after an install.

        A failed download or a refused flash leaves the old firmware running: the
        failure event and the error are enough. A device that flashed but does not
        come back with the new firmware is something the user must look at.
        """
        common: dict[str, Any] = {
            "is_fixable": False,
            "is_persistent": True,
            "severity": ir.IssueSeverity.ERROR,
            "translation_placeholders": {
                "name": self.config_entry.title,
                "error": str(err),
            },
        }
        if err.key == "verification_failed":
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                self._repair_id,
                translation_key="install_verification_failed",
                **common,
            )
        elif err.key == "serial_mismatch":
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                self._repair_id,
                translation_key="install_serial_mismatch",
                **common,
            )
        elif err.key == "reboot_timeout":
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                self._repair_id,
                translation_key="install_reboot_timeout",
                **common,
            )
