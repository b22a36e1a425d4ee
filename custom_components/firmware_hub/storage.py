"""What Firmware Hub keeps on disk for an entry: the install journal, bridge state.

- `InstallJournal`: the marker of the install running on a device, written before the
  first request that can start a flash and removed once the outcome is known, so
  that an install outlives a reload or a restart (`.storage/firmware_hub.installs`).
- `StorePersistence`: a bridge's offers, packages and pending hand-off
  (`.storage/firmware_hub.<entry_id>`); packages live in `<config>/firmware_hub/<entry_id>/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util.hass_dict import HassKey

from .const import (
    CONF_AUTO_DOWNLOAD,
    CONF_HANDOFF_TIMEOUT,
    DEFAULT_AUTO_DOWNLOAD,
    DEFAULT_HANDOFF_TIMEOUT,
    DOMAIN,
)
from .core.bridge import BridgeSettings, MemoryPersistence, Persistence
from .core.models import DeviceIdentity, InstallRun
from .core.packages import PackageStore

STORAGE_VERSION = 1
_JOURNAL: HassKey[InstallJournal] = HassKey(f"{DOMAIN}_install_journal")


class InstallJournal:
    """The running install of every entry, in one store written before each flash."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Initialize (`async_load` reads what a previous run left)."""
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.installs"
        )
        self._runs: dict[str, dict[str, Any]] = {}

    @classmethod
    async def async_get(cls, hass: HomeAssistant) -> InstallJournal:
        """Return the journal, loaded on first use."""
        if (journal := hass.data.get(_JOURNAL)) is None:
            journal = cls(hass)
            hass.data[_JOURNAL] = journal
            journal._runs = dict((await journal._store.async_load()) or {})
        return journal

    def run(self, entry_id: str) -> InstallRun | None:
        """Return the install an entry had running, if any."""
        record = self._runs.get(entry_id)
        return InstallRun.from_dict(record["run"]) if record else None

    def identity(self, entry_id: str) -> DeviceIdentity | None:
        """Return the device the install ran on (setup while it is unreachable)."""
        record = self._runs.get(entry_id)
        if not record or not record.get("identity"):
            return None
        return DeviceIdentity(**record["identity"])

    async def async_write(
        self, entry_id: str, run: InstallRun | None, identity: DeviceIdentity
    ) -> None:
        """Record (or with None, remove) an entry's running install, on disk now."""
        if run is None:
            if self._runs.pop(entry_id, None) is None:
                return
        else:
            self._runs[entry_id] = {
                "run": run.as_dict(),
                "identity": {
                    "unique_id": identity.unique_id,
                    "manufacturer": identity.manufacturer,
                    "model": identity.model,
                    "name": identity.name,
                    "serial_number": identity.serial_number,
                    "mac_address": identity.mac_address,
                    "hw_version": identity.hw_version,
                },
            }
        await self._store.async_save(dict(self._runs))

    async def async_forget(self, entry_id: str) -> None:
        """Remove an entry's marker (entry removed)."""
        if self._runs.pop(entry_id, None) is not None:
            await self._store.async_save(dict(self._runs))


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


def package_dir(hass: HomeAssistant, entry_id: str) -> Path:
    """Return where an entry's packages live: `<config>/firmware_hub/<entry_id>/`."""
    return Path(hass.config.path(DOMAIN, entry_id))


def bridge_settings(
    hass: HomeAssistant, options: Mapping[str, Any], entry_id: str | None
) -> BridgeSettings:
    """Return a bridge's settings; without an entry (a config flow) nothing persists."""
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


async def async_remove_entry_data(hass: HomeAssistant, entry_id: str) -> None:
    """Forget everything kept for a removed entry."""
    await (await InstallJournal.async_get(hass)).async_forget(entry_id)
    await StorePersistence(hass, entry_id).async_remove()
    await PackageStore(package_dir(hass, entry_id)).remove_all()
