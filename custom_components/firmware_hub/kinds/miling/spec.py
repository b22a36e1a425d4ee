"""The Miling kind, as the Home Assistant layer sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.const import CONF_HOST
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
)
import probatio as vol

from ...const import (
    CONF_DEVICE_ID,
    CONF_DEVICE_TYPE,
    CONF_HTTP_PORT,
    CONF_MAX_PACKAGE_MB,
    CONF_PROG_VERSION,
    CONF_WS_PORT,
    DEFAULT_MAX_PACKAGE_MB,
    DEFAULT_MILING_HTTP_PORT,
    DEFAULT_MILING_WS_PORT,
    Kind,
)
from ...core.backend import FirmwareBackend
from ...forms import PORT, bridge_fields, bridge_options
from ...kind_spec import BackendContext, KindSpec
from ...storage import bridge_settings
from .backend import MilingBackend
from .fetch import DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT, MIN_IN_FLIGHT

#: Option: the most chunk requests in flight (the download adapts below it).
CONF_MAX_REQUESTS_IN_FLIGHT: Final = "max_requests_in_flight"

SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_WS_PORT, default=DEFAULT_MILING_WS_PORT): PORT,
        vol.Required(CONF_HTTP_PORT, default=DEFAULT_MILING_HTTP_PORT): PORT,
        vol.Required(CONF_DEVICE_ID): str,
        vol.Required(CONF_DEVICE_TYPE): str,
        vol.Required(CONF_PROG_VERSION): str,
        vol.Required(CONF_MAX_PACKAGE_MB, default=DEFAULT_MAX_PACKAGE_MB): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=4096)
        ),
    }
)


async def _create_backend(context: BackendContext) -> FirmwareBackend:
    data = context.data
    return MilingBackend(
        async_get_clientsession(context.hass),
        host=data[CONF_HOST],
        ws_port=data[CONF_WS_PORT],
        http_port=data[CONF_HTTP_PORT],
        device_id=data[CONF_DEVICE_ID],
        device_type=data[CONF_DEVICE_TYPE],
        prog_version=data[CONF_PROG_VERSION],
        max_package_bytes=int(data[CONF_MAX_PACKAGE_MB]) * 1024 * 1024,
        bridge=bridge_settings(context.hass, context.options, context.entry_id),
        max_in_flight=_max_in_flight(context.options),
    )


def _max_in_flight(options: Mapping[str, Any]) -> int:
    """Return the stored bound, clamped to the option's range."""
    value = int(options.get(CONF_MAX_REQUESTS_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT))
    return max(MIN_IN_FLIGHT, min(value, MAX_IN_FLIGHT))


def _options_fields(current: Mapping[str, Any]) -> dict[Any, Any]:
    return {
        **bridge_fields(current),
        vol.Required(
            CONF_MAX_REQUESTS_IN_FLIGHT, default=_max_in_flight(current)
        ): NumberSelector(
            NumberSelectorConfig(
                min=MIN_IN_FLIGHT,
                max=MAX_IN_FLIGHT,
                step=1,
                mode=NumberSelectorMode.BOX,
            )
        ),
    }


def _options(user_input: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **bridge_options(user_input),
        CONF_MAX_REQUESTS_IN_FLIGHT: _max_in_flight(user_input),
    }


SPEC = KindSpec(
    kind=Kind.MILING,
    schema=SCHEMA,
    # Nothing secret to keep: the reconfigure form is the add-device form.
    reconfigure_schema=SCHEMA,
    credentials_schema=vol.Schema({}),
    redact=frozenset({CONF_DEVICE_ID, "deviceID"}),
    configured_identity=True,
    create_backend=_create_backend,
    # The Miling server pushes its upgrade requests: nothing to check periodically.
    options_fields=_options_fields,
    options_from_input=_options,
)
