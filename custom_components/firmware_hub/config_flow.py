"""Config flow: a menu of device kinds, each validated against the real device."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import (
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_SSL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio as vol

from .const import (
    CONF_ALLOWED_DOWNLOAD_HOSTS,
    CONF_AUTO_DOWNLOAD,
    CONF_CA_FILE,
    CONF_CHECK_INTERVAL,
    CONF_DEVICE_ID,
    CONF_DEVICE_KEY,
    CONF_DEVICE_SECRET,
    CONF_DEVICE_TYPE,
    CONF_FILE_BASE_URL,
    CONF_FIRMWARE_VERSION,
    CONF_HANDOFF_TIMEOUT,
    CONF_HTTP_BROKER_URL,
    CONF_HTTP_PORT,
    CONF_KIND,
    CONF_MAX_PACKAGE_MB,
    CONF_PRODUCT_KEY,
    CONF_PROG_VERSION,
    CONF_SIGN_METHOD,
    CONF_TLS,
    CONF_WS_PORT,
    DEFAULT_AUTO_DOWNLOAD,
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_ENOS_PORT,
    DEFAULT_HANDOFF_TIMEOUT,
    DEFAULT_HIKVISION_PORT,
    DEFAULT_HIKVISION_USERNAME,
    DEFAULT_MAX_PACKAGE_MB,
    DEFAULT_MILING_HTTP_PORT,
    DEFAULT_MILING_WS_PORT,
    DEFAULT_ONVIF_PORT,
    DOMAIN,
    LOGGER,
    MAX_CHECK_INTERVAL,
    MIN_CHECK_INTERVAL,
    SIGN_METHODS,
    Kind,
)
from .coordinator import FirmwareHubConfigEntry, create_backend
from .core.backend import DeviceAuthError, DeviceConnectionError, DeviceResponseError
from .core.models import DeviceIdentity
from .kinds.enos.protocol.downloads import parse_host_list
from .kinds.miling.backend import RegistrationRefusedError
from .kinds.onvif.discovery import async_discover
from .kinds.onvif.protocol.client import DiscoveredCamera

_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_PORT = vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))

HIKVISION_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_HIKVISION_PORT): _PORT,
        vol.Required(CONF_SSL, default=False): bool,
        vol.Required(CONF_VERIFY_SSL, default=False): bool,
        vol.Required(CONF_USERNAME, default=DEFAULT_HIKVISION_USERNAME): str,
        vol.Required(CONF_PASSWORD): _PASSWORD,
    }
)

CREDENTIALS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_USERNAME): str,
        vol.Required(CONF_PASSWORD): _PASSWORD,
    }
)

MILING_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_WS_PORT, default=DEFAULT_MILING_WS_PORT): _PORT,
        vol.Required(CONF_HTTP_PORT, default=DEFAULT_MILING_HTTP_PORT): _PORT,
        vol.Required(CONF_DEVICE_ID): str,
        vol.Required(CONF_DEVICE_TYPE): str,
        vol.Required(CONF_PROG_VERSION): str,
        vol.Required(CONF_MAX_PACKAGE_MB, default=DEFAULT_MAX_PACKAGE_MB): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=4096)
        ),
    }
)

#: The connection form of each kind (the reconfigure step shows the same).
KIND_SCHEMAS = {Kind.HIKVISION: HIKVISION_SCHEMA, Kind.MILING: MILING_SCHEMA}

#: Reconfigure: an empty password keeps the stored one.
HIKVISION_RECONFIGURE_SCHEMA = HIKVISION_SCHEMA.extend(
    {vol.Optional(CONF_PASSWORD): _PASSWORD}
)

ENOS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_ENOS_PORT): _PORT,
        vol.Required(CONF_TLS, default=True): bool,
        vol.Required(CONF_PRODUCT_KEY): str,
        vol.Required(CONF_DEVICE_KEY): str,
        vol.Required(CONF_DEVICE_SECRET): _PASSWORD,
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

#: Reconfigure: an empty device secret keeps the stored one.
ENOS_RECONFIGURE_SCHEMA = ENOS_SCHEMA.extend(
    {vol.Optional(CONF_DEVICE_SECRET): _PASSWORD}
)

ENOS_CREDENTIALS_SCHEMA = vol.Schema({vol.Required(CONF_DEVICE_SECRET): _PASSWORD})

#: Secrets: never suggested back from a stored entry.
_SECRETS = (CONF_PASSWORD, CONF_DEVICE_SECRET)

KIND_SCHEMAS[Kind.ENOS] = ENOS_SCHEMA
#: Reconfigure forms where an empty secret keeps the stored one.
RECONFIGURE_SCHEMAS = {
    Kind.HIKVISION: HIKVISION_RECONFIGURE_SCHEMA,
    Kind.ENOS: ENOS_RECONFIGURE_SCHEMA,
}

ONVIF_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_ONVIF_PORT): _PORT,
        vol.Required(CONF_USERNAME): str,
        vol.Required(CONF_PASSWORD): _PASSWORD,
    }
)
KIND_SCHEMAS[Kind.ONVIF] = ONVIF_SCHEMA
RECONFIGURE_SCHEMAS[Kind.ONVIF] = ONVIF_SCHEMA.extend(
    {vol.Optional(CONF_PASSWORD): _PASSWORD}
)
#: The discovery step's choice, and its value for "enter the address".
CONF_CAMERA = "camera"
MANUAL_ENTRY = "manual"


class FirmwareHubConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a device: pick its kind, then its connection."""

    VERSION = 1
    MINOR_VERSION = 1

    #: ONVIF cameras WS-Discovery found, by choice value (None: not probed yet).
    _onvif_found: dict[str, DiscoveredCamera] | None = None
    #: The camera picked from the discovery list.
    _onvif_picked: DiscoveredCamera | None = None

    @staticmethod
    @callback
    def async_get_options_flow(
        config_entry: FirmwareHubConfigEntry,
    ) -> OptionsFlowHandler:
        """Return the options flow."""
        return OptionsFlowHandler()

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask which kind of device to add."""
        return self.async_show_menu(
            step_id="user", menu_options=[kind.value for kind in Kind]
        )

    async def async_step_hikvision(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add a Hikvision camera or recorder."""
        return await self._async_step_device(
            Kind.HIKVISION,
            HIKVISION_SCHEMA,
            user_input,
            update_keys=(CONF_HOST, CONF_PORT, CONF_SSL, CONF_VERIFY_SSL),
        )

    async def _async_step_device(
        self,
        kind: Kind,
        schema: vol.Schema,
        user_input: dict[str, Any] | None,
        update_keys: tuple[str, ...] = (),
    ) -> ConfigFlowResult:
        """Show a kind's form; create the entry once the device validates.

        A device already configured aborts, taking the `update_keys` typed (its
        new address) into the existing entry.
        """
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {CONF_KIND: kind.value, **user_input}
            identity = await self._async_validate(data, errors)
            if identity is not None:
                await self.async_set_unique_id(identity.unique_id)
                self._abort_if_unique_id_configured(
                    updates={key: user_input[key] for key in update_keys}
                )
                return self.async_create_entry(title=identity.name, data=data)
        return self.async_show_form(
            step_id=kind.value,
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_onvif(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add an ONVIF camera; first offer the ones WS-Discovery finds."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {CONF_KIND: Kind.ONVIF.value, **user_input}
            identity = await self._async_validate(data, errors)
            if identity is not None:
                await self.async_set_unique_id(identity.unique_id)
                self._abort_if_unique_id_configured(
                    updates={key: user_input[key] for key in (CONF_HOST, CONF_PORT)}
                )
                picked = self._onvif_picked
                same = picked is not None and picked.host == user_input[CONF_HOST]
                title = (picked.name if picked and same else None) or identity.name
                return self.async_create_entry(title=title, data=data)
        elif self._onvif_found is None:
            self._onvif_found = await self._async_discover_onvif()
            if self._onvif_found:
                return await self.async_step_onvif_discovery()
        picked = self._onvif_picked
        suggested = user_input or (
            {CONF_HOST: picked.host, CONF_PORT: picked.port} if picked else None
        )
        return self.async_show_form(
            step_id=Kind.ONVIF.value,
            data_schema=self.add_suggested_values_to_schema(ONVIF_SCHEMA, suggested),
            errors=errors,
        )

    async def async_step_onvif_discovery(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer the ONVIF cameras found on the network, and manual entry."""
        found = self._onvif_found or {}
        if user_input is not None:
            self._onvif_picked = found.get(user_input[CONF_CAMERA])
            return await self.async_step_onvif()
        options = [
            SelectOptionDict(
                value=value,
                label=f"{camera.name or camera.hardware or camera.host} "
                f"({camera.host}:{camera.port})",
            )
            for value, camera in found.items()
        ]
        options.append(SelectOptionDict(value=MANUAL_ENTRY, label=MANUAL_ENTRY))
        return self.async_show_form(
            step_id="onvif_discovery",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_CAMERA): SelectSelector(
                        SelectSelectorConfig(
                            options=options,
                            translation_key="onvif_camera",
                            mode=SelectSelectorMode.LIST,
                        )
                    )
                }
            ),
        )

    async def _async_discover_onvif(self) -> dict[str, DiscoveredCamera]:
        """Probe for ONVIF cameras; leave out the ones already configured."""
        configured_hosts: set[tuple[str, int]] = set()
        configured_ids: set[str | None] = set()
        for entry in self._async_current_entries(include_ignore=False):
            if entry.data.get(CONF_KIND) == Kind.ONVIF:
                configured_hosts.add((entry.data[CONF_HOST], entry.data[CONF_PORT]))
                configured_ids.add(entry.unique_id)
        return {
            f"{camera.host}:{camera.port}": camera
            for camera in await async_discover(self.hass)
            if (camera.host, camera.port) not in configured_hosts
            and (camera.mac_address is None or camera.mac_address not in configured_ids)
        }

    async def async_step_enos(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add a device whose firmware is published on EnOS (Home Assistant as agent)."""
        return await self._async_step_device(Kind.ENOS, ENOS_SCHEMA, user_input)

    async def async_step_miling(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add a device upgraded through the Miling cloud (Home Assistant as bridge)."""
        return await self._async_step_device(Kind.MILING, MILING_SCHEMA, user_input)

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """Start re-authentication: the device refused the stored credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for new credentials and check them on the device."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            identity = await self._async_validate(
                {**entry.data, **user_input}, errors, entry.options
            )
            if identity is not None:
                await self.async_set_unique_id(identity.unique_id)
                self._abort_if_unique_id_mismatch(reason="wrong_device")
                return self.async_update_reload_and_abort(
                    entry, data_updates=user_input
                )
        if entry.data[CONF_KIND] == Kind.ENOS:
            schema = ENOS_CREDENTIALS_SCHEMA
            suggested = user_input or {}
        else:
            schema = CREDENTIALS_SCHEMA
            suggested = user_input or {CONF_USERNAME: entry.data[CONF_USERNAME]}
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change how the device is reached (address, ports, credentials...)."""
        entry = self._get_reconfigure_entry()
        kind = Kind(entry.data[CONF_KIND])
        schema = RECONFIGURE_SCHEMAS.get(kind) or KIND_SCHEMAS[kind]
        errors: dict[str, str] = {}
        if user_input is not None:
            changes = {key: value for key, value in user_input.items() if value != ""}
            identity = await self._async_validate(
                {**entry.data, **changes}, errors, entry.options
            )
            if identity is not None:
                await self.async_set_unique_id(identity.unique_id)
                self._abort_if_unique_id_mismatch(reason="wrong_device")
                return self.async_update_reload_and_abort(entry, data_updates=changes)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                schema, _without_password(user_input or dict(entry.data))
            ),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def _async_validate(
        self,
        data: dict[str, Any],
        errors: dict[str, str],
        options: Mapping[str, Any] | None = None,
    ) -> DeviceIdentity | None:
        """Probe the device; fill `errors` and return None when that fails.

        `options` are the entry's (reauth, reconfigure): an EnOS CA file applies.
        """
        try:
            backend = create_backend(self.hass, data, options)
        except ValueError:
            # Not a host name or address (a URL, a path, spaces...).
            errors[CONF_HOST] = "invalid_host"
            return None
        try:
            return await backend.async_probe()
        except DeviceAuthError:
            errors["base"] = "invalid_auth"
        except RegistrationRefusedError:
            errors["base"] = "registration_refused"
        except DeviceConnectionError:
            errors["base"] = "cannot_connect"
        except DeviceResponseError:
            errors["base"] = "unsupported_device"
        except Exception:  # noqa: BLE001 - the form must always come back
            LOGGER.exception("Unexpected error while probing the device")
            errors["base"] = "unknown"
        finally:
            await backend.async_close()
        return None


class OptionsFlowHandler(OptionsFlowWithReload):
    """How often to look for firmware; for the bridges, download and hand-off."""

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show and store the options."""
        bridge = self.config_entry.data[CONF_KIND] in (Kind.ENOS, Kind.MILING)
        errors: dict[str, str] = {}
        if user_input is not None:
            options: dict[str, Any] = {
                CONF_CHECK_INTERVAL: int(user_input[CONF_CHECK_INTERVAL])
            }
            if bridge:
                options[CONF_AUTO_DOWNLOAD] = bool(user_input[CONF_AUTO_DOWNLOAD])
                options[CONF_HANDOFF_TIMEOUT] = int(user_input[CONF_HANDOFF_TIMEOUT])
            for key in (CONF_CA_FILE, CONF_HTTP_BROKER_URL):
                if user_input.get(key):
                    options[key] = user_input[key]
            if self.config_entry.data[CONF_KIND] == Kind.ENOS:
                _enos_download_options(user_input, options, errors)
            if not errors:
                return self.async_create_entry(data=options)
        current = {**self.config_entry.options, **(user_input or {})}
        fields: dict[Any, Any] = {
            vol.Required(
                CONF_CHECK_INTERVAL,
                default=current.get(CONF_CHECK_INTERVAL, DEFAULT_CHECK_INTERVAL),
            ): _minutes(MIN_CHECK_INTERVAL, MAX_CHECK_INTERVAL),
        }
        if bridge:
            fields[
                vol.Required(
                    CONF_AUTO_DOWNLOAD,
                    default=current.get(CONF_AUTO_DOWNLOAD, DEFAULT_AUTO_DOWNLOAD),
                )
            ] = bool
            fields[
                vol.Required(
                    CONF_HANDOFF_TIMEOUT,
                    default=current.get(CONF_HANDOFF_TIMEOUT, DEFAULT_HANDOFF_TIMEOUT),
                )
            ] = _minutes(1, MAX_CHECK_INTERVAL)
        if self.config_entry.data[CONF_KIND] == Kind.ENOS:
            for key in (CONF_CA_FILE, CONF_HTTP_BROKER_URL):
                fields[
                    vol.Optional(key, description={"suggested_value": current.get(key)})
                ] = str
            fields |= _enos_download_fields(current)
        return self.async_show_form(
            step_id="init", data_schema=vol.Schema(fields), errors=errors
        )


def _enos_download_options(
    user_input: Mapping[str, Any], options: dict[str, Any], errors: dict[str, str]
) -> None:
    """Read the EnOS package limits (largest package, allowed download hosts)."""
    options[CONF_MAX_PACKAGE_MB] = int(user_input[CONF_MAX_PACKAGE_MB])
    try:
        hosts = parse_host_list(user_input.get(CONF_ALLOWED_DOWNLOAD_HOSTS))
    except ValueError:
        errors[CONF_ALLOWED_DOWNLOAD_HOSTS] = "invalid_download_hosts"
        return
    if hosts:
        options[CONF_ALLOWED_DOWNLOAD_HOSTS] = ", ".join(sorted(hosts))


def _enos_download_fields(current: Mapping[str, Any]) -> dict[Any, Any]:
    """Return the EnOS package-limit fields of the options form."""
    return {
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


def _minutes(low: int, high: int) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=low,
            max=high,
            step=1,
            mode=NumberSelectorMode.BOX,
            unit_of_measurement="min",
        )
    )


def _without_password(values: Mapping[str, Any]) -> dict[str, Any]:
    """Suggest the stored connection, but never send a stored secret to a form."""
    return {key: value for key, value in values.items() if key not in _SECRETS}
