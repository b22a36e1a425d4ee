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

from .children import async_track_child_devices
from .const import CONF_KIND, DOMAIN, Kind
from .coordinator import FirmwareCoordinator, FirmwareHubConfigEntry, FirmwareHubData
from .core.backend import (
    BackendError,
    DeviceAuthError,
    DeviceConnectionError,
    FirmwareBackend,
)
from .core.bridge import BridgeBackend
from .core.models import DeviceIdentity, FirmwareState, Phase
from .file_share import async_file_sharer, async_setup_file_share
from .kind_spec import BackendContext
from .outcomes import repair_id
from .registry import KINDS
from .services import async_setup_services
from .storage import InstallJournal, async_remove_entry_data

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
    async_setup_file_share(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: FirmwareHubConfigEntry) -> bool:
    """Probe the device (or restore the bridge), then set up its entities.

    An install recorded in the journal (or one the device runs by itself) is
    followed to its end before anything else may talk to the device.
    """
    spec = KINDS[Kind(entry.data[CONF_KIND])]
    backend = await spec.create_backend(
        BackendContext(
            hass,
            entry.data,
            entry.options,
            entry.entry_id,
            share_file=async_file_sharer(hass),
        )
    )
    journal = await InstallJournal.async_get(hass)
    run = journal.run(entry.entry_id)
    degraded = False
    if isinstance(backend, BridgeBackend):
        # A bridge works from its configuration and what it stored: a cloud that
        # is down must not hide the device or lose a pending hand-off.
        await backend.async_restore()
        identity = backend.identity
        state = backend.state
    else:
        probed = await _async_probe(backend, entry, journal.identity(entry.entry_id))
        identity, state, degraded = probed
    coordinator = FirmwareCoordinator(hass, entry, backend, identity, journal)
    coordinator.async_set_updated_data(state)
    entry.runtime_data = FirmwareHubData(coordinator=coordinator, identity=identity)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if not degraded:
        # A setup from the journal has not read the device's children (nor will
        # the install it follows): it reloads afterwards and tracks them then.
        async_track_child_devices(hass, entry)
    if isinstance(backend, BridgeBackend):
        entry.async_create_background_task(
            hass, backend.async_run(), f"{DOMAIN} {entry.title} cloud connection"
        )
        backend.resume()
    elif backend.polls:
        coordinator.async_follow(run, reload=degraded)
    return True


async def _async_probe(
    backend: FirmwareBackend,
    entry: FirmwareHubConfigEntry,
    journaled: DeviceIdentity | None,
) -> tuple[DeviceIdentity, FirmwareState, bool]:
    """Identify a polled device and read its state, or raise why setup must wait.

    A device that does not answer while the journal says it is being flashed (it
    reboots) is set up from the journal, so that the install is followed: the
    third value is True then.
    """
    try:
        identity = await backend.async_probe()
        state = await backend.async_refresh(check=True)
    except DeviceAuthError as err:
        await backend.async_close()
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_auth"
        ) from err
    except DeviceConnectionError as err:
        if journaled is not None:
            return journaled, FirmwareState(phase=Phase.REBOOTING), True
        await backend.async_close()
        raise _not_ready(err) from err
    except BackendError as err:
        await backend.async_close()
        raise _not_ready(err) from err
    if entry.unique_id is not None and identity.unique_id != entry.unique_id:
        await backend.async_close()
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="wrong_device",
            translation_placeholders={"name": entry.title},
        )
    return identity, state, False


def _not_ready(err: BackendError) -> ConfigEntryNotReady:
    return ConfigEntryNotReady(
        translation_domain=DOMAIN,
        translation_key="setup_failed",
        translation_placeholders={"error": str(err)},
    )


async def async_unload_entry(
    hass: HomeAssistant, entry: FirmwareHubConfigEntry
) -> bool:
    """Unload the entities and release the device's connections.

    A running install is the entry's background task: unloading cancels it, so
    nothing more reaches the device; its journal marker stays for the next setup.
    """
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.coordinator.backend.async_close()
    return unloaded


async def async_remove_entry(
    hass: HomeAssistant, entry: FirmwareHubConfigEntry
) -> None:
    """Forget the entry's repair issues, journal, stored state and packages."""
    issues = ir.async_get(hass).issues
    prefix = repair_id(entry.entry_id)
    for domain, issue_id in list(issues):
        if domain == DOMAIN and issue_id.startswith(prefix):
            ir.async_delete_issue(hass, DOMAIN, issue_id)
    await async_remove_entry_data(hass, entry.entry_id)
