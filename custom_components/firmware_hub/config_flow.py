"""Config flow: pick a device kind, then its connection; reauth, reconfigure, options.

Everything kind-specific (forms, secrets, how to build the backend that validates
the input, discovery, options) comes from the kind's `KindSpec` in `registry.KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import (
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
import probatio as vol

from .const import CONF_KIND, DOMAIN, LOGGER, Kind
from .coordinator import FirmwareHubConfigEntry
from .core.backend import BackendError
from .core.models import DeviceIdentity
from .errors import form_error
from .forms import install_queue_field, install_queue_option
from .kind_spec import BackendContext, DiscoveredDevice, KindSpec, OptionsError
from .registry import KINDS

#: The discovery step's choice, and its value for "enter the address".
CONF_DEVICE = "device"
MANUAL_ENTRY = "manual"


class FirmwareHubConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a device: pick its kind, then its connection."""

    VERSION = 1
    MINOR_VERSION = 1

    #: Devices the kind's discovery found, by choice value (None: not probed yet).
    _found: dict[str, DiscoveredDevice] | None = None
    #: The device picked from the discovery list.
    _picked: DiscoveredDevice | None = None
    #: The kind being added.
    _kind: Kind | None = None

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
            step_id="user", menu_options=[kind.value for kind in KINDS]
        )

    # One step per kind of the menu: each shows its kind's form.

    async def async_step_hikvision(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add a Hikvision camera or recorder."""
        return await self._async_step_kind(Kind.HIKVISION, user_input)

    async def async_step_onvif(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add an ONVIF camera (first offering the ones discovery finds)."""
        return await self._async_step_kind(Kind.ONVIF, user_input)

    async def async_step_enos(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add a device whose firmware is published on EnOS (Home Assistant as agent)."""
        return await self._async_step_kind(Kind.ENOS, user_input)

    async def async_step_miling(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add a device upgraded through the Miling cloud (Home Assistant as bridge)."""
        return await self._async_step_kind(Kind.MILING, user_input)

    async def _async_step_kind(
        self, kind: Kind, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """Show a kind's form; create the entry once the device validates.

        A device already configured aborts, taking the form's `update_keys` (its
        new address) into the existing entry.
        """
        spec = KINDS[kind]
        self._kind = kind
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {CONF_KIND: kind.value, **user_input}
            identity = await self._async_validate(data, errors)
            if identity is not None:
                await self.async_set_unique_id(identity.unique_id)
                self._abort_if_unique_id_configured(
                    updates={key: user_input[key] for key in spec.update_keys}
                )
                picked = self._picked
                same = picked is not None and picked.host == user_input.get(CONF_HOST)
                title = (picked.title if picked and same else None) or identity.name
                return self.async_create_entry(title=title, data=data)
        elif spec.discover is not None and self._found is None:
            self._found = await self._async_discover(spec)
            if self._found:
                return await self.async_step_pick_device()
        picked = self._picked
        suggested = user_input or (
            {CONF_HOST: picked.host, CONF_PORT: picked.port} if picked else None
        )
        return self.async_show_form(
            step_id=kind.value,
            data_schema=self.add_suggested_values_to_schema(spec.schema, suggested),
            errors=errors,
        )

    async def async_step_pick_device(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer the devices discovery found, and manual entry."""
        found = self._found or {}
        if user_input is not None and self._kind is not None:
            self._picked = found.get(user_input[CONF_DEVICE])
            return await self._async_step_kind(self._kind, None)
        options = [
            SelectOptionDict(value=value, label=device.label)
            for value, device in found.items()
        ]
        options.append(SelectOptionDict(value=MANUAL_ENTRY, label=MANUAL_ENTRY))
        return self.async_show_form(
            step_id="pick_device",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_DEVICE): SelectSelector(
                        SelectSelectorConfig(
                            options=options,
                            translation_key="pick_device",
                            mode=SelectSelectorMode.LIST,
                        )
                    )
                }
            ),
        )

    async def _async_discover(self, spec: KindSpec) -> dict[str, DiscoveredDevice]:
        """Run the kind's discovery; leave out the devices already configured."""
        assert spec.discover is not None  # noqa: S101 - checked by the caller
        configured_hosts: set[tuple[str, int]] = set()
        configured_ids: set[str | None] = set()
        for entry in self._async_current_entries(include_ignore=False):
            if entry.data.get(CONF_KIND) == spec.kind:
                configured_hosts.add((entry.data[CONF_HOST], entry.data[CONF_PORT]))
                configured_ids.add(entry.unique_id)
        return {
            f"{device.host}:{device.port}": device
            for device in await spec.discover(self.hass)
            if (device.host, device.port) not in configured_hosts
            and not device.ids & configured_ids
        }

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
        spec = KINDS[Kind(entry.data[CONF_KIND])]
        errors: dict[str, str] = {}
        if user_input is not None and _refuse_while_installing(entry, errors):
            identity = await self._async_validate(
                {**entry.data, **user_input}, errors, entry.options
            )
            if identity is not None:
                await self.async_set_unique_id(identity.unique_id)
                self._abort_if_unique_id_mismatch(reason="wrong_device")
                return self.async_update_reload_and_abort(
                    entry, data_updates=user_input
                )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(
                spec.credentials_schema,
                user_input or spec.credentials_suggested(entry.data),
            ),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change how the device is reached (address, ports, credentials...)."""
        entry = self._get_reconfigure_entry()
        spec = KINDS[Kind(entry.data[CONF_KIND])]
        errors: dict[str, str] = {}
        if user_input is not None and _refuse_while_installing(entry, errors):
            changes = {key: value for key, value in user_input.items() if value != ""}
            identity = await self._async_validate(
                {**entry.data, **changes}, errors, entry.options
            )
            if identity is not None:
                await self.async_set_unique_id(identity.unique_id)
                if spec.configured_identity:
                    # The device is what its configuration says: the id follows,
                    # unless another entry already has it.
                    if identity.unique_id != entry.unique_id:
                        self._abort_if_unique_id_configured()
                        _move_device(self.hass, entry, identity.unique_id)
                    return self.async_update_reload_and_abort(
                        entry, unique_id=identity.unique_id, data_updates=changes
                    )
                self._abort_if_unique_id_mismatch(reason="wrong_device")
                return self.async_update_reload_and_abort(entry, data_updates=changes)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                spec.reconfigure_schema,
                {
                    key: value
                    for key, value in (user_input or entry.data).items()
                    if key not in spec.secrets
                },
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
        spec = KINDS[Kind(data[CONF_KIND])]
        try:
            backend = await spec.create_backend(
                BackendContext(self.hass, data, options or {}, None)
            )
        except ValueError:
            # Not a host name or address (a URL, a path, spaces...).
            errors[CONF_HOST] = "invalid_host"
            return None
        try:
            return await backend.async_probe()
        except BackendError as err:
            errors["base"] = form_error(err)
        except Exception:  # noqa: BLE001 - the form must always come back
            LOGGER.exception("Unexpected error while probing the device")
            errors["base"] = "unknown"
        finally:
            await backend.async_close()
        return None


def _move_device(
    hass: HomeAssistant, entry: FirmwareHubConfigEntry, unique_id: str
) -> None:
    """Move the device and its entities to a new unique id (reconfigure).

    The device keeps its registry entry, area, name and automations: its
    identifier and its entities' unique ids follow the entry's new unique id.
    """
    old = entry.unique_id or ""
    devices = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(devices, entry.entry_id):
        devices.async_update_device(device.id, new_identifiers={(DOMAIN, unique_id)})
    entities = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(entities, entry.entry_id):
        entities.async_update_entity(
            entity.entity_id,
            new_unique_id=unique_id + entity.unique_id.removeprefix(old),
        )


def _refuse_while_installing(
    entry: FirmwareHubConfigEntry, errors: dict[str, str]
) -> bool:
    """Return False (with the form error) when a reload would cut an install short.

    Saving reloads the entry; an install running on the device must end first.
    The form comes back with what the user typed.
    """
    runtime = getattr(entry, "runtime_data", None)
    if runtime is not None and runtime.coordinator.installing:
        errors["base"] = "install_in_progress"
        return False
    return True


class OptionsFlowHandler(OptionsFlowWithReload):
    """How often to look for firmware; for the bridges, download and hand-off."""

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show and store the options."""
        entry = self.config_entry
        spec = KINDS[Kind(entry.data[CONF_KIND])]
        errors: dict[str, str] = {}
        if user_input is not None and _refuse_while_installing(entry, errors):
            try:
                options = spec.options_from_input(user_input)
            except OptionsError as err:
                errors[err.field] = err.key
            else:
                return self.async_create_entry(
                    data={**options, **install_queue_option(user_input)}
                )
        schema = vol.Schema(
            {
                **spec.options_fields(entry.options),
                **install_queue_field(entry.options),
            }
        )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
            description_placeholders={"name": entry.title},
        )
