"""The EnOS kind, as the Home Assistant layer sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components import network
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
import probatio as vol

from ...const import (
    CONF_ALLOWED_DOWNLOAD_HOSTS,
    CONF_CA_FILE,
    CONF_DEVICE_KEY,
    CONF_DEVICE_SECRET,
    CONF_FILE_BASE_URL,
    CONF_FIRMWARE_VERSION,
    CONF_HTTP_BROKER_URL,
    CONF_MAX_PACKAGE_MB,
    CONF_PRODUCT_KEY,
    CONF_SIGN_METHOD,
    CONF_TLS,
    DEFAULT_ENOS_PORT,
    DEFAULT_MAX_PACKAGE_MB,
    SIGN_METHODS,
    Kind,
)
from ...core.backend import FirmwareBackend
from ...forms import (
    PASSWORD,
    PORT,
    bridge_fields,
    bridge_options,
    check_interval_field,
    check_interval_option,
    optional_text_fields,
    optional_text_options,
)
from ...kind_spec import BackendContext, KindSpec, OptionsError
from ...storage import bridge_settings
from .backend import EnosBackend
from .protocol.downloads import parse_host_list
from .protocol.signing import EnosCredentials

SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_ENOS_PORT): PORT,
        vol.Required(CONF_TLS, default=True): bool,
        vol.Required(CONF_PRODUCT_KEY): str,
        vol.Required(CONF_DEVICE_KEY): str,
        vol.Required(CONF_DEVICE_SECRET): PASSWORD,
        vol.Required(CONF_SIGN_METHOD, default="sha256"): SelectSelector(
            SelectSelectorConfig(
                options=list(SIGN_METHODS),
                translation_key=CONF_SIGN_METHOD,
                mode=SelectSelectorMode.DROPDOWN,
            )
        ),
        vol.Required(CONF_FIRMWARE_VERSION): str,
        vol.Optional(CONF_FILE_BASE_URL): str,
    }
)

#: The options only EnOS has (free text, kept only when filled in).
_TEXT_OPTIONS = (CONF_CA_FILE, CONF_HTTP_BROKER_URL)


async def _create_backend(context: BackendContext) -> FirmwareBackend:
    data, options, hass = context.data, context.options, context.hass
    # Home Assistant's own addresses: a cloud must not aim it at itself.
    own: list[str] = []
    if "network" in hass.config.components:
        own = [str(ip) for ip in await network.async_get_enabled_source_ips(hass)]
    return EnosBackend(
        async_get_clientsession(context.hass),
        host=data[CONF_HOST],
        port=data[CONF_PORT],
        tls=data[CONF_TLS],
        credentials=EnosCredentials(
            data[CONF_PRODUCT_KEY],
            data[CONF_DEVICE_KEY],
            data[CONF_DEVICE_SECRET],
            data[CONF_SIGN_METHOD],
        ),
        installed_version=data[CONF_FIRMWARE_VERSION],
        file_base_url=data.get(CONF_FILE_BASE_URL),
        ca_file=options.get(CONF_CA_FILE),
        http_broker_url=options.get(CONF_HTTP_BROKER_URL),
        bridge=bridge_settings(context.hass, options, context.entry_id),
        allowed_download_hosts=options.get(CONF_ALLOWED_DOWNLOAD_HOSTS),
        max_package_bytes=int(options.get(CONF_MAX_PACKAGE_MB, DEFAULT_MAX_PACKAGE_MB))
        * 1024
        * 1024,
        own_addresses=own,
    )


def _options_fields(current: Mapping[str, Any]) -> dict[Any, Any]:
    return {
        **check_interval_field(current),
        **bridge_fields(current),
        **optional_text_fields(current, _TEXT_OPTIONS),
        vol.Required(
            CONF_MAX_PACKAGE_MB,
            default=current.get(CONF_MAX_PACKAGE_MB, DEFAULT_MAX_PACKAGE_MB),
        ): NumberSelector(
            NumberSelectorConfig(
                min=1,
                max=4096,
                step=1,
                mode=NumberSelectorMode.BOX,
                unit_of_measurement="MiB",
            )
        ),
        vol.Optional(
            CONF_ALLOWED_DOWNLOAD_HOSTS,
            description={"suggested_value": current.get(CONF_ALLOWED_DOWNLOAD_HOSTS)},
        ): str,
    }


def _options(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the EnOS options; the download hosts must be host names or addresses."""
    try:
        hosts = parse_host_list(user_input.get(CONF_ALLOWED_DOWNLOAD_HOSTS))
    except ValueError as err:
        raise OptionsError(
            CONF_ALLOWED_DOWNLOAD_HOSTS, "invalid_download_hosts"
        ) from err
    options = {
        **check_interval_option(user_input),
        **bridge_options(user_input),
        **optional_text_options(user_input, _TEXT_OPTIONS),
        CONF_MAX_PACKAGE_MB: int(user_input[CONF_MAX_PACKAGE_MB]),
    }
    if hosts:
        options[CONF_ALLOWED_DOWNLOAD_HOSTS] = ", ".join(sorted(hosts))
    return options


SPEC = KindSpec(
    kind=Kind.ENOS,
    schema=SCHEMA,
    reconfigure_schema=SCHEMA.extend({vol.Optional(CONF_DEVICE_SECRET): PASSWORD}),
    credentials_schema=vol.Schema({vol.Required(CONF_DEVICE_SECRET): PASSWORD}),
    secrets=frozenset({CONF_DEVICE_SECRET}),
    redact=frozenset({CONF_PRODUCT_KEY, CONF_DEVICE_KEY}),
    configured_identity=True,
    create_backend=_create_backend,
    options_fields=_options_fields,
    options_from_input=_options,
)
