"""Service actions, registered once in `async_setup`."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
import probatio as vol

from .const import DOMAIN, Kind
from .coordinator import FirmwareCoordinator, FirmwareHubConfigEntry

ATTR_DEVICE_ID = "device_id"
ATTR_SUCCESS = "success"
ATTR_VERSION = "version"
ATTR_MESSAGE = "message"

SERVICE_REPORT_INSTALL_RESULT = "report_install_result"

BRIDGE_KINDS = frozenset({Kind.ENOS, Kind.MILING})

REPORT_INSTALL_RESULT_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): cv.string,
        vol.Required(ATTR_SUCCESS): cv.boolean,
        vol.Optional(ATTR_VERSION): cv.string,
        vol.Optional(ATTR_MESSAGE): cv.string,
    }
)


def _coordinator(call: ServiceCall, kinds: frozenset[Kind]) -> FirmwareCoordinator:
    """Return the coordinator of the targeted device, if it is of one of `kinds`."""
    device_id: str = call.data[ATTR_DEVICE_ID]
    device = dr.async_get(call.hass).async_get(device_id)
    entries: list[FirmwareHubConfigEntry] = [
        entry
        for entry in call.hass.config_entries.async_loaded_entries(DOMAIN)
        if device is not None and entry.entry_id in device.config_entries
    ]
    if not entries:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="device_not_found",
            translation_placeholders={"device_id": device_id},
        )
    coordinator = entries[0].runtime_data.coordinator
    if coordinator.kind not in kinds:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="action_not_for_kind",
            translation_placeholders={
                "action": call.service,
                "kind": coordinator.kind.value,
            },
        )
    return coordinator


async def _report_install_result(call: ServiceCall) -> None:
    """Take the real device's result for a package handed to it."""
    coordinator = _coordinator(call, BRIDGE_KINDS)
    await coordinator.async_report_result(
        call.data[ATTR_SUCCESS],
        call.data.get(ATTR_VERSION),
        call.data.get(ATTR_MESSAGE),
    )


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_REPORT_INSTALL_RESULT,
        _report_install_result,
        schema=REPORT_INSTALL_RESULT_SCHEMA,
    )
