"""Service actions, registered once in `async_setup`."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
import probatio as vol

from .const import DOMAIN, Kind
from .coordinator import FirmwareCoordinator, FirmwareHubConfigEntry
from .kinds.onvif.backend import (
    IMAGING_FIELDS,
    STREAM_FIELDS,
    ImagingRequest,
    OnvifBackend,
    StreamRequest,
)

ATTR_DEVICE_ID = "device_id"
ATTR_SUCCESS = "success"
ATTR_VERSION = "version"
ATTR_MESSAGE = "message"

SERVICE_REPORT_INSTALL_RESULT = "report_install_result"

BRIDGE_KINDS = frozenset({Kind.ENOS, Kind.MILING})

# ONVIF: apply settings (response {applied, verified, mismatches}), install a file.
SERVICE_APPLY_STREAM_SETTINGS = "apply_stream_settings"
SERVICE_APPLY_IMAGING_SETTINGS = "apply_imaging_settings"
SERVICE_INSTALL_FIRMWARE_FILE = "install_firmware_file"
ATTR_PROFILE_TOKEN = "profile_token"  # noqa: S105 - a field name
ATTR_PATH = "path"
ONVIF_KINDS = frozenset({Kind.ONVIF})
#: Kinds whose backend takes a firmware file (`can_install_file`).
FILE_INSTALL_KINDS = frozenset({Kind.ONVIF})

_POSITIVE_INT = vol.All(vol.Coerce(int), vol.Range(min=1))
#: One device: a `device_id` field, or `target: device_id:` (which passes a list).
_ONE_DEVICE = vol.All(cv.ensure_list, vol.Length(min=1, max=1), [cv.string])

APPLY_STREAM_SETTINGS_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): _ONE_DEVICE,
        vol.Optional(ATTR_PROFILE_TOKEN): cv.string,
        vol.Optional("resolution"): cv.string,
        vol.Optional("codec"): cv.string,
        vol.Optional("fps"): _POSITIVE_INT,
        vol.Optional("bitrate_kbps"): _POSITIVE_INT,
        vol.Optional("gov_length"): _POSITIVE_INT,
    }
)


def _mode(*modes: str) -> vol.All[str]:
    return vol.All(cv.string, vol.Lower, vol.In(modes))


APPLY_IMAGING_SETTINGS_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): _ONE_DEVICE,
        vol.Optional(ATTR_PROFILE_TOKEN): cv.string,
        vol.Optional("brightness"): vol.Coerce(float),
        vol.Optional("contrast"): vol.Coerce(float),
        vol.Optional("saturation"): vol.Coerce(float),
        vol.Optional("sharpness"): vol.Coerce(float),
        vol.Optional("ir_cut_filter"): _mode("on", "off", "auto"),
        vol.Optional("wide_dynamic_range"): _mode("on", "off"),
        vol.Optional("backlight_compensation"): _mode("on", "off"),
        vol.Optional("exposure_mode"): _mode("auto", "manual"),
    }
)

INSTALL_FIRMWARE_FILE_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): _ONE_DEVICE,
        vol.Required(ATTR_PATH): cv.string,
    }
)

REPORT_INSTALL_RESULT_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): _ONE_DEVICE,
        vol.Required(ATTR_SUCCESS): cv.boolean,
        vol.Optional(ATTR_VERSION): cv.string,
        vol.Optional(ATTR_MESSAGE): cv.string,
    }
)


def _coordinator(call: ServiceCall, kinds: frozenset[Kind]) -> FirmwareCoordinator:
    """Return the coordinator of the targeted device, if it is of one of `kinds`."""
    device_id: str = call.data[ATTR_DEVICE_ID][0]
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


def _onvif(coordinator: FirmwareCoordinator) -> OnvifBackend:
    """Return the ONVIF backend of a coordinator `_coordinator` checked the kind of."""
    return cast("OnvifBackend", coordinator.backend)


async def _apply_stream_settings(call: ServiceCall) -> ServiceResponse:
    """Apply video encoder settings; return what the camera reports back."""
    coordinator = _coordinator(call, ONVIF_KINDS)
    backend = _onvif(coordinator)
    request = StreamRequest(
        profile_token=call.data.get(ATTR_PROFILE_TOKEN),
        **{name: call.data.get(name) for name in STREAM_FIELDS},
    )
    result = await coordinator.async_device_action(
        lambda: backend.async_apply_stream_settings(request)
    )
    return result.as_response()


async def _apply_imaging_settings(call: ServiceCall) -> ServiceResponse:
    """Apply imaging settings; return what the camera reports back."""
    coordinator = _coordinator(call, ONVIF_KINDS)
    backend = _onvif(coordinator)
    request = ImagingRequest(
        profile_token=call.data.get(ATTR_PROFILE_TOKEN),
        **{name: call.data.get(name) for name in IMAGING_FIELDS},
    )
    result = await coordinator.async_device_action(
        lambda: backend.async_apply_imaging_settings(request)
    )
    return result.as_response()


async def _install_firmware_file(call: ServiceCall) -> None:
    """Upload a firmware file from an allowed directory and verify the new version."""
    coordinator = _coordinator(call, FILE_INSTALL_KINDS)
    hass = call.hass
    # Relative paths are relative to the configuration directory.
    path = Path(hass.config.path(call.data[ATTR_PATH]))

    def check() -> tuple[Path, str | None]:
        if not hass.config.is_allowed_path(str(path)):
            return path, "path_not_allowed"
        resolved = path.resolve()
        if not resolved.is_file() or resolved.stat().st_size == 0:
            return path, "firmware_file_invalid"
        return resolved, None

    resolved, problem = await hass.async_add_executor_job(check)
    if problem is not None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=problem,
            translation_placeholders={"path": str(path)},
        )
    await coordinator.async_install_file(resolved)


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
        SERVICE_APPLY_STREAM_SETTINGS,
        _apply_stream_settings,
        schema=APPLY_STREAM_SETTINGS_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_APPLY_IMAGING_SETTINGS,
        _apply_imaging_settings,
        schema=APPLY_IMAGING_SETTINGS_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_INSTALL_FIRMWARE_FILE,
        _install_firmware_file,
        schema=INSTALL_FIRMWARE_FILE_SCHEMA,
    )
