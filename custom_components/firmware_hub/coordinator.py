"""One coordinator per config entry: it wraps the device's backend.

Polling reads the device every `POLL_INTERVAL`; the firmware check (which makes the
device ask its vendor's server) runs every `check_interval_minutes` or when the user
presses "Check for update". Installs run one at a time per device under a lock and
publish every step with `async_set_updated_data`; while one runs, polling does not
touch the device (it may be rebooting) and entities stay available.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
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
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from .backends.base import (
    BackendError,
    DeviceAuthError,
    FirmwareBackend,
    InstallError,
    InstallRefusedError,
)
from .backends.hikvision import HikvisionBackend
from .const import (
    CONF_CHECK_INTERVAL,
    CONF_KIND,
    DEFAULT_CHECK_INTERVAL,
    DOMAIN,
    EVENT_UPGRADE_FINISHED,
    LOGGER,
    POLL_INTERVAL,
    Kind,
)
from .models import DeviceIdentity, FirmwareState, Phase
from .protocols.isapi import IsapiClient

type FirmwareHubConfigEntry = ConfigEntry[FirmwareHubData]


@dataclass(slots=True)
class FirmwareHubData:
    """What a loaded config entry holds."""

    coordinator: FirmwareCoordinator
    identity: DeviceIdentity


def create_backend(hass: HomeAssistant, data: dict[str, Any]) -> FirmwareBackend:
    """Build the backend a config entry's data describes."""
    kind = Kind(data[CONF_KIND])
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
    raise ValueError(f"unsupported kind {kind}")  # config flow never creates one


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
            update_interval=POLL_INTERVAL,
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
        """Install firmware; one install at a time per device."""
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
                self.async_set_updated_data(self.backend.state)
                self._fire_finished(target, success=False, error=err.key)
                self._create_repair(err)
                raise translated_error(err) from err
            ir.async_delete_issue(self.hass, DOMAIN, self._repair_id)
            self.async_set_updated_data(final)
            if device_id := self.device_id:
                dr.async_get(self.hass).async_update_device(
                    device_id, sw_version=final.installed_version
                )
            self._fire_finished(final.installed_version, success=True, error=None)

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
        elif err.key == "reboot_timeout":
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                self._repair_id,
                translation_key="install_reboot_timeout",
                **common,
            )
