"""Service actions, registered once in `async_setup`.

The generic actions follow what a device can do (`report_install_result` for the
bridges, `install_firmware_file` for devices that take a file); the actions only
some kinds take come from their `KindSpec`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
import os
from pathlib import Path
import stat
from typing import Any, BinaryIO

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
    service as service_helpers,
)
import probatio as vol

from .const import DOMAIN
from .coordinator import FirmwareCoordinator, FirmwareHubConfigEntry
from .core.models import ChildDevice
from .file_share import local_base_url
from .kind_spec import KindAction
from .registry import KINDS
from .rollout import (
    CANCEL_QUEUED_INSTALLS_SCHEMA,
    INSTALL_UPDATES_SCHEMA,
    SERVICE_CANCEL_QUEUED_INSTALLS,
    SERVICE_INSTALL_UPDATES,
    async_cancel_queued_installs,
    async_install_updates,
)

ATTR_DEVICE_ID = "device_id"
ATTR_SUCCESS = "success"
ATTR_VERSION = "version"
ATTR_MESSAGE = "message"
ATTR_PATH = "path"

SERVICE_REPORT_INSTALL_RESULT = "report_install_result"
SERVICE_INSTALL_FIRMWARE_FILE = "install_firmware_file"
SERVICE_CANCEL_INSTALL = "cancel_install"
SERVICE_GET_RELEASE_NOTES = "get_release_notes"

#: One device: a `device_id` field, or `target: device_id:` (which passes a list).
_ONE_DEVICE = vol.All(cv.ensure_list, vol.Length(min=1, max=1), [cv.string])

INSTALL_FIRMWARE_FILE_SCHEMA = vol.All(
    vol.Schema(
        {
            # A device, or one of its entities (a child's update entity...).
            vol.Exclusive(ATTR_DEVICE_ID, "target"): _ONE_DEVICE,
            vol.Exclusive(ATTR_ENTITY_ID, "target"): vol.All(
                cv.ensure_list, vol.Length(min=1, max=1), [cv.entity_id]
            ),
            vol.Required(ATTR_PATH): cv.string,
        }
    ),
    cv.has_at_least_one_key(ATTR_DEVICE_ID, ATTR_ENTITY_ID),
)

REPORT_INSTALL_RESULT_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): _ONE_DEVICE,
        vol.Required(ATTR_SUCCESS): cv.boolean,
        vol.Optional(ATTR_VERSION): cv.string,
        vol.Optional(ATTR_MESSAGE): cv.string,
    }
)


def _target(call: ServiceCall) -> tuple[FirmwareCoordinator, dr.BaseDeviceEntry]:
    """Return the targeted device (or the device of the targeted entity), loaded."""
    if ATTR_DEVICE_ID in call.data:
        device_id: str = call.data[ATTR_DEVICE_ID][0]
    else:
        entity_id: str = call.data[ATTR_ENTITY_ID][0]
        entity = er.async_get(call.hass).async_get(entity_id)
        device_id = entity.device_id if entity and entity.device_id else entity_id
    device = dr.async_get(call.hass).async_get(device_id)
    entry: FirmwareHubConfigEntry | None = (
        call.hass.config_entries.async_get_entry(device.config_entry_id)
        if device is not None
        else None
    )
    if (
        device is None
        or entry is None
        or entry.domain != DOMAIN
        or not hasattr(entry, "runtime_data")
    ):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="device_not_found",
            translation_placeholders={"device_id": device_id},
        )
    return entry.runtime_data.coordinator, device


def _coordinator(
    call: ServiceCall, takes: Callable[[FirmwareCoordinator], bool]
) -> FirmwareCoordinator:
    """Return the coordinator of the targeted device, if its device takes the action."""
    coordinator, _device = _target(call)
    if not takes(coordinator):
        raise _not_for_kind(call, coordinator)
    return coordinator


def _not_for_kind(
    call: ServiceCall, coordinator: FirmwareCoordinator
) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="action_not_for_kind",
        translation_placeholders={
            "action": call.service,
            "kind": coordinator.kind.value,
        },
    )


def _child(
    coordinator: FirmwareCoordinator, device: dr.BaseDeviceEntry
) -> ChildDevice | None:
    """Return the child `device` is (None: the entry's own device)."""
    ids = {unique_id for domain, unique_id in device.identifiers if domain == DOMAIN}
    return next(
        (c for c in coordinator.data.children if c.identity.unique_id in ids), None
    )


async def _report_install_result(call: ServiceCall) -> None:
    """Take the real device's result for a package handed to it."""
    coordinator = _coordinator(call, lambda c: c.handoffs is not None)
    assert coordinator.handoffs is not None  # noqa: S101 - checked above
    await coordinator.handoffs.async_report_result(
        call.data[ATTR_SUCCESS],
        call.data.get(ATTR_VERSION),
        call.data.get(ATTR_MESSAGE),
    )


def open_firmware_file(hass: HomeAssistant, path: Path) -> tuple[BinaryIO, str]:
    """Open a firmware file once, where Home Assistant may read (executor).

    The path is opened without following a final symlink, and the check applies to
    where the OPEN file really is (`/proc/self/fd`), so that nothing can swap the
    file between the check and the upload: the caller streams from this same
    file. Raises `ServiceValidationError` (the file stays closed) when the file is
    outside the allowed directories, not a regular file or empty.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise _file_error("firmware_file_invalid", path) from err
    real = str(Path(f"/proc/self/fd/{fd}").readlink())
    problem = _file_problem(hass, real, os.fstat(fd))
    if problem is not None:
        os.close(fd)
        raise _file_error(problem, path)
    return os.fdopen(fd, "rb"), Path(real).name


def _file_problem(hass: HomeAssistant, real: str, info: os.stat_result) -> str | None:
    """Return why an opened file cannot be installed, or None."""
    if not hass.config.is_allowed_path(real):
        return "path_not_allowed"
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return "firmware_file_invalid"
    return None


def _file_error(key: str, path: Path) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders={"path": str(path)},
    )


async def _install_firmware_file(call: ServiceCall) -> None:
    """Upload a firmware file from an allowed directory and verify the new version.

    A child device (a recorder's channel camera) takes the file through its
    parent, which fetches it from Home Assistant's local URL (`file_share`).
    """
    coordinator, device = _target(call)
    hass = call.hass
    child = _child(coordinator, device)
    if child is None and not coordinator.backend.can_install_file:
        raise _not_for_kind(call, coordinator)
    if child is not None:
        if not child.can_install:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="child_install_not_supported",
                translation_placeholders={"name": child.identity.name},
            )
        local_base_url(hass)  # the parent must be able to fetch the file
    # Relative paths are relative to the configuration directory.
    path = Path(hass.config.path(call.data[ATTR_PATH]))
    file, name = await hass.async_add_executor_job(open_firmware_file, hass, path)
    try:
        await coordinator.async_install_file(
            file, name, child=child.key if child else None
        )
    finally:
        await hass.async_add_executor_job(file.close)


def _kind_action(
    action: KindAction,
) -> Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]]:
    """Return the handler of an action only some kinds take."""
    kinds = frozenset(spec.kind for spec in KINDS.values() if action in spec.actions)

    async def handle(call: ServiceCall) -> ServiceResponse:
        coordinator = _coordinator(call, lambda c: c.kind in kinds)
        return await action.handler(coordinator, call)

    return handle


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_REPORT_INSTALL_RESULT,
        _report_install_result,
        schema=REPORT_INSTALL_RESULT_SCHEMA,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_INSTALL_FIRMWARE_FILE,
        _install_firmware_file,
        schema=INSTALL_FIRMWARE_FILE_SCHEMA,
    )
    service_helpers.async_register_platform_entity_service(
        hass,
        DOMAIN,
        SERVICE_GET_RELEASE_NOTES,
        entity_domain=UPDATE_DOMAIN,
        schema=None,
        func="async_get_release_notes",
        supports_response=SupportsResponse.ONLY,
    )
    service_helpers.async_register_platform_entity_service(
        hass,
        DOMAIN,
        SERVICE_CANCEL_INSTALL,
        entity_domain=UPDATE_DOMAIN,
        schema=None,
        func="async_cancel_install",
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_INSTALL_UPDATES,
        async_install_updates,
        schema=INSTALL_UPDATES_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_CANCEL_QUEUED_INSTALLS,
        async_cancel_queued_installs,
        schema=CANCEL_QUEUED_INSTALLS_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    registered: set[str] = set()
    for spec in KINDS.values():
        for action in spec.actions:
            if action.name in registered:
                continue
            registered.add(action.name)
            hass.services.async_register(
                DOMAIN,
                action.name,
                _kind_action(action),
                schema=action.schema,
                supports_response=(
                    SupportsResponse.OPTIONAL
                    if action.returns_response
                    else SupportsResponse.NONE
                ),
            )
