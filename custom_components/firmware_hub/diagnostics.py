"""Diagnostics: the state and the device's raw documents, with secrets redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant

from .coordinator import FirmwareHubConfigEntry
from .registry import KINDS

#: Credentials, addresses and what identifies the physical device, for every
#: kind; each kind adds its own secrets and identifiers.
TO_REDACT = {
    CONF_PASSWORD,
    CONF_USERNAME,
    CONF_HOST,
    "unique_id",
    "serial_number",
    "serialNumber",
    "mac_address",
    "macAddress",
    "device_id",
    # A child device's key is made from its parent's unique id.
    "key",
}.union(*(spec.secrets | spec.redact for spec in KINDS.values()))


def _lists(value: Any) -> Any:
    """Return `value` with tuples as lists: redaction only looks into lists."""
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(item) for item in value]
    return value


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: FirmwareHubConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    coordinator = entry.runtime_data.coordinator
    return async_redact_data(
        {
            "entry": {
                "title": entry.title,
                "unique_id": entry.unique_id,
                "data": dict(entry.data),
                "options": dict(entry.options),
            },
            "identity": asdict(entry.runtime_data.identity),
            "state": _lists(asdict(coordinator.data)),
            "installing": coordinator.installing,
            "next_check": coordinator.next_check,
            "last_update_success": coordinator.last_update_success,
            "device": coordinator.backend.diagnostics(),
        },
        TO_REDACT,
    )
