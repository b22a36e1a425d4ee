"""What an install's outcome changes in Home Assistant: events, repairs, registry.

Shared by installs started here, installs followed after a restart and the
bridges' hand-off results, so that every path ends the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, issue_registry as ir

from .const import DOMAIN, EVENT_INSTALL_REQUESTED, EVENT_UPGRADE_FINISHED
from .core.backend import InstallError
from .core.bridge import HandOff
from .core.models import ChildDevice
from .errors import translated_error

if TYPE_CHECKING:
    from .coordinator import FirmwareCoordinator


def repair_id(entry_id: str, child: ChildDevice | None = None) -> str:
    """Return the id of an entry's (or one of its children's) install repair issue."""
    return f"install_failed_{entry_id}" + (f"_{child.key}" if child else "")


def _device_id(
    coordinator: FirmwareCoordinator, child: ChildDevice | None
) -> str | None:
    """Return the device registry id of the entry's device, or of its child."""
    if child is None:
        return coordinator.device_id
    device = dr.async_get(coordinator.hass).async_get_device_by_identifier(
        (DOMAIN, child.identity.unique_id), coordinator.config_entry.entry_id
    )
    return device.id if device else None


@callback
def fire_finished(
    coordinator: FirmwareCoordinator,
    version: str | None,
    *,
    success: bool,
    error: str | None,
    message: str | None = None,
    child: ChildDevice | None = None,
) -> None:
    """Fire `firmware_hub_upgrade_finished` (for `child`: its device id).

    `error` is the failure's key (for automations), `message` its sentence (for
    notifications; Home Assistant translates exceptions into English).
    """
    coordinator.hass.bus.async_fire(
        EVENT_UPGRADE_FINISHED,
        {
            "device_id": _device_id(coordinator, child),
            "entry_id": coordinator.config_entry.entry_id,
            "kind": coordinator.kind.value,
            "version": version,
            "success": success,
            "error": error,
            "message": message,
        },
    )


@callback
def fire_install_requested(coordinator: FirmwareCoordinator, handoff: HandOff) -> None:
    """Fire `firmware_hub_install_requested`: a verified package awaits the device."""
    coordinator.hass.bus.async_fire(
        EVENT_INSTALL_REQUESTED,
        {
            "device_id": coordinator.device_id,
            "entry_id": coordinator.config_entry.entry_id,
            "kind": coordinator.kind.value,
            "version": handoff.version,
            "path": handoff.path,
            "size": handoff.size,
            "md5": handoff.md5,
            "sha256": handoff.sha256,
        },
    )


@callback
def install_succeeded(
    coordinator: FirmwareCoordinator,
    version: str | None,
    child: ChildDevice | None = None,
) -> None:
    """Clear the repair, show the new version on the device, tell automations."""
    ir.async_delete_issue(
        coordinator.hass, DOMAIN, repair_id(coordinator.config_entry.entry_id, child)
    )
    update_sw_version(coordinator.hass, _device_id(coordinator, child), version)
    fire_finished(coordinator, version, success=True, error=None, child=child)


@callback
def install_failed(
    coordinator: FirmwareCoordinator,
    version: str | None,
    err: InstallError,
    child: ChildDevice | None = None,
) -> None:
    """Tell automations; raise a repair when the device needs the user's eyes."""
    message = str(translated_error(err))
    fire_finished(
        coordinator,
        version,
        success=False,
        error=err.key,
        message=message,
        child=child,
    )
    hass, entry = coordinator.hass, coordinator.config_entry
    common: dict[str, Any] = {
        "is_fixable": False,
        "is_persistent": True,
        "severity": ir.IssueSeverity.ERROR,
        "translation_placeholders": {
            "name": child.identity.name if child else entry.title,
            "error": str(err),
        },
    }
    issue_id = repair_id(entry.entry_id, child)
    # A failure the device reports in its own words needs the user (another
    # package, its storage, its network...): a repair that says what to do.
    if err.repair_key is not None:
        ir.async_create_issue(
            hass, DOMAIN, issue_id, translation_key=err.repair_key, **common
        )
    # A timeout, a lost connection or a cancel leave the old firmware running:
    # the failure event and the error are enough. These need the user's eyes:
    elif err.key == "verification_failed":
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            translation_key="install_verification_failed",
            **common,
        )
    elif err.key == "reboot_timeout":
        ir.async_create_issue(
            hass, DOMAIN, issue_id, translation_key="install_reboot_timeout", **common
        )
    elif err.key == "serial_mismatch":
        ir.async_create_issue(
            hass, DOMAIN, issue_id, translation_key="install_serial_mismatch", **common
        )


@callback
def update_sw_version(
    hass: HomeAssistant, device_id: str | None, version: str | None
) -> None:
    """Keep the device registry's firmware version what the device reports."""
    if device_id is None or version is None:
        return
    registry = dr.async_get(hass)
    device = registry.async_get(device_id)
    if isinstance(device, dr.DeviceEntry) and device.sw_version != version:
        registry.async_update_device(device_id, sw_version=version)
