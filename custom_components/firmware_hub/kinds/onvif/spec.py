"""The ONVIF kind, as the Home Assistant layer sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import probatio as vol
from yarl import URL

from ...const import DEFAULT_ONVIF_PORT, Kind
from ...coordinator import FirmwareCoordinator
from ...core.backend import FirmwareBackend
from ...forms import (
    CREDENTIALS_SCHEMA,
    PASSWORD,
    PORT,
    check_interval_field,
    check_interval_option,
)
from ...kind_spec import BackendContext, DiscoveredDevice, KindAction, KindSpec
from .backend import (
    IMAGING_FIELDS,
    STREAM_FIELDS,
    ImagingRequest,
    OnvifBackend,
    StreamRequest,
)
from .discovery import async_discover
from .protocol.client import OnvifClient
from .sensors import onvif_sensors

SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_ONVIF_PORT): PORT,
        vol.Required(CONF_USERNAME): str,
        vol.Required(CONF_PASSWORD): PASSWORD,
    }
)

ATTR_DEVICE_ID = "device_id"
ATTR_PROFILE_TOKEN = "profile_token"  # noqa: S105 - a field name
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


async def _create_backend(context: BackendContext) -> FirmwareBackend:
    data = context.data
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
        async_get_clientsession(context.hass),
    )


def _onvif(coordinator: FirmwareCoordinator) -> OnvifBackend:
    """Return the backend of a coordinator the action dispatcher checked the kind of."""
    return cast("OnvifBackend", coordinator.backend)


async def _apply_stream_settings(
    coordinator: FirmwareCoordinator, call: ServiceCall
) -> ServiceResponse:
    """Apply video encoder settings; return what the camera reports back."""
    backend = _onvif(coordinator)
    request = StreamRequest(
        profile_token=call.data.get(ATTR_PROFILE_TOKEN),
        **{name: call.data.get(name) for name in STREAM_FIELDS},
    )
    result = await coordinator.async_device_action(
        lambda: backend.async_apply_stream_settings(request)
    )
    return result.as_response()


async def _apply_imaging_settings(
    coordinator: FirmwareCoordinator, call: ServiceCall
) -> ServiceResponse:
    """Apply imaging settings; return what the camera reports back."""
    backend = _onvif(coordinator)
    request = ImagingRequest(
        profile_token=call.data.get(ATTR_PROFILE_TOKEN),
        **{name: call.data.get(name) for name in IMAGING_FIELDS},
    )
    result = await coordinator.async_device_action(
        lambda: backend.async_apply_imaging_settings(request)
    )
    return result.as_response()


async def _discover(hass: HomeAssistant) -> list[DiscoveredDevice]:
    """Return the cameras WS-Discovery finds, as the config flow offers them."""
    return [
        DiscoveredDevice(
            host=camera.host,
            port=camera.port,
            label=f"{camera.name or camera.hardware or camera.host} "
            f"({camera.host}:{camera.port})",
            ids=frozenset({camera.mac_address} if camera.mac_address else ()),
            title=camera.name,
        )
        for camera in await async_discover(hass)
        if camera.host
    ]


def _username(data: Mapping[str, Any]) -> dict[str, Any]:
    return {CONF_USERNAME: data[CONF_USERNAME]}


SPEC = KindSpec(
    kind=Kind.ONVIF,
    schema=SCHEMA,
    reconfigure_schema=SCHEMA.extend({vol.Optional(CONF_PASSWORD): PASSWORD}),
    credentials_schema=CREDENTIALS_SCHEMA,
    credentials_suggested=_username,
    update_keys=(CONF_HOST, CONF_PORT),
    secrets=frozenset({CONF_PASSWORD}),
    redact=frozenset({"mac_address", "macAddress"}),
    create_backend=_create_backend,
    options_fields=check_interval_field,
    options_from_input=check_interval_option,
    sensors=onvif_sensors,
    actions=(
        KindAction(
            "apply_stream_settings",
            APPLY_STREAM_SETTINGS_SCHEMA,
            _apply_stream_settings,
            returns_response=True,
        ),
        KindAction(
            "apply_imaging_settings",
            APPLY_IMAGING_SETTINGS_SCHEMA,
            _apply_imaging_settings,
            returns_response=True,
        ),
    ),
    discover=_discover,
)
