"""Firmware Hub: firmware of cameras and IoT devices, visible and upgradeable."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryError,
    ConfigEntryNotReady,
)
from homeassistant.helpers import config_validation as cv, issue_registry as ir
from homeassistant.helpers.typing import ConfigType

from .const import CONF_KIND, DOMAIN, Kind
from .coordinator import (
    FirmwareCoordinator,
    FirmwareHubConfigEntry,
    FirmwareHubData,
    StorePersistence,
    create_backend,
    package_dir,
)
from .core.backend import BackendError, DeviceAuthError, FirmwareBackend
from .core.bridge import BridgeBackend
from .core.models import DeviceIdentity, FirmwareState
from .core.packages import PackageStore
from .services import async_setup_services

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.SENSOR,
    Platform.UPDATE,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions (devices are configured through the UI only)."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: FirmwareHubConfigEntry) -> bool:
    """Probe the device (or restore the bridge), then set up its entities."""
    backend = create_backend(hass, entry.data, entry.options, entry.entry_id)
    if isinstance(backend, BridgeBackend):
        # A bridge works from its configuration and what it stored: a cloud that
        # is down must not hide the device or lose a pending hand-off.
        await backend.async_restore()
        identity = backend.identity
        state = backend.state
    else:
        identity, state = await _async_probe(backend, entry)
    coordinator = FirmwareCoordinator(hass, entry, backend, identity)
    coordinator.async_set_updated_data(state)
    entry.runtime_data = FirmwareHubData(coordinator=coordinator, identity=identity)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if isinstance(backend, BridgeBackend):
        entry.async_create_background_task(
            hass, backend.async_run(), f"{DOMAIN} {entry.title} cloud connection"
        )
        backend.resume()
    return True


async def _async_probe(
    backend: FirmwareBackend, entry: FirmwareHubConfigEntry
) -> tuple[DeviceIdentity, FirmwareState]:
    """Identify a polled device and read its state, or raise why setup must wait."""
    try:
        identity = await backend.async_probe()
        state = await backend.async_refresh(check=True)
    except DeviceAuthError as err:
        await backend.async_close()
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_auth"
        ) from err
    except BackendError as err:
        await backend.async_close()
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="setup_failed",
            translation_placeholders={"error": str(err)},
        ) from err
    if entry.unique_id is not None and identity.unique_id != entry.unique_id:
        await backend.async_close()
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="wrong_device",
            translation_placeholders={"name": entry.title},
        )
    return identity, state


async def async_unload_entry(
    hass: HomeAssistant, entry: FirmwareHubConfigEntry
) -> bool:
    """Unload the entities and release the device's connections."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.coordinator.backend.async_close()
    return unloaded


async def async_remove_entry(
    hass: HomeAssistant, entry: FirmwareHubConfigEntry
) -> None:
    """Forget the entry's repair issues, stored state and packages."""
    ir.async_delete_issue(hass, DOMAIN, f"install_failed_{entry.entry_id}")
    if entry.data[CONF_KIND] in (Kind.ENOS, Kind.MILING):
        await StorePersistence(hass, entry.entry_id).async_remove()
        await PackageStore(package_dir(hass, entry.entry_id)).remove_all()
