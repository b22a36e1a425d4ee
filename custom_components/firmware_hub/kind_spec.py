"""What a device kind tells the Home Assistant layer: `KindSpec`.

Each kind declares one `KindSpec` in its `kinds/<kind>/spec.py`; `registry.KINDS` is
the only list of kinds. The generic Home Assistant layer (config flow, setup,
platforms, actions, diagnostics) reads everything kind-specific from here and never
branches on a kind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeassistant.components.binary_sensor import BinarySensorEntityDescription
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse
import probatio as vol

from .const import Kind
from .core.backend import FirmwareBackend, ShareFile
from .core.models import FirmwareState

if TYPE_CHECKING:
    from homeassistant.components.sensor import SensorEntity

    from .coordinator import FirmwareCoordinator


class OptionsError(ValueError):
    """An options form field the user must correct (`key`: the form error)."""

    def __init__(self, field: str, key: str) -> None:
        """Initialize with the field and its translated error's key."""
        super().__init__(f"{field}: {key}")
        self.field = field
        self.key = key


@dataclass(frozen=True, slots=True)
class BackendContext:
    """What building a backend needs from Home Assistant."""

    hass: HomeAssistant
    data: Mapping[str, Any]
    options: Mapping[str, Any]
    #: None: a config flow validating input (a bridge then only checks the cloud).
    entry_id: str | None
    #: Serves a firmware file to a device that fetches it (None: a config flow).
    share_file: ShareFile | None = None


@dataclass(frozen=True, kw_only=True)
class KindBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A connectivity sensor a kind adds."""

    value_fn: Callable[[FirmwareState], bool | None]
    exists_fn: Callable[[FirmwareState], bool] = lambda _state: True


@dataclass(frozen=True, slots=True)
class KindAction:
    """An action only some kinds take (its handler gets the targeted coordinator)."""

    name: str
    schema: vol.Schema
    handler: Callable[[FirmwareCoordinator, ServiceCall], Awaitable[ServiceResponse]]
    returns_response: bool = False


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """A device a kind's discovery found, offered in the config flow."""

    host: str
    port: int
    label: str
    #: Ids the device may already be configured under (unique ids).
    ids: frozenset[str] = frozenset()
    #: The entry title to use when the user picks this device.
    title: str | None = None


@dataclass(frozen=True, kw_only=True)
class KindSpec:
    """One device kind, as the Home Assistant layer sees it."""

    kind: Kind
    #: The add-device form; its step id is the kind's value.
    schema: vol.Schema
    #: The reconfigure form (an empty secret keeps the stored one).
    reconfigure_schema: vol.Schema
    #: The re-authentication form and what it suggests from the entry's data.
    credentials_schema: vol.Schema
    credentials_suggested: Callable[[Mapping[str, Any]], dict[str, Any]] = (
        lambda _data: {}
    )
    #: Form fields that move an existing entry when its device is added again.
    update_keys: tuple[str, ...] = ()
    #: True when the device is what its configuration says (the bridges): a
    #: reconfigure that changes the address moves the unique id with it.
    configured_identity: bool = False
    #: Entry data never sent back to a form.
    secrets: frozenset[str] = frozenset()
    #: Keys diagnostics redact (besides the common ones).
    redact: frozenset[str] = frozenset()
    #: Build the backend a config entry describes (ValueError: a bad host).
    create_backend: Callable[[BackendContext], Awaitable[FirmwareBackend]]
    #: The options form's fields, given the current options.
    options_fields: Callable[[Mapping[str, Any]], dict[Any, Any]]
    #: The options to store from the options form's input (`OptionsError`: a
    #: field the user must correct).
    options_from_input: Callable[[Mapping[str, Any]], dict[str, Any]]
    #: Sensors the kind adds (ONVIF settings...).
    sensors: Callable[[FirmwareCoordinator], list[SensorEntity]] = lambda _c: []
    #: Connectivity sensors the kind adds.
    binary_sensors: tuple[KindBinarySensorEntityDescription, ...] = ()
    #: Actions only this kind (and maybe others) takes.
    actions: tuple[KindAction, ...] = ()
    #: Devices to offer before the add-device form (None: no discovery).
    discover: Callable[[HomeAssistant], Awaitable[list[DiscoveredDevice]]] | None = None
    #: What the update dialog says while an install of this kind runs (or None).
    release_summary: Callable[[FirmwareState], str | None] = lambda _state: None
    #: Other translation placeholders the kind's texts use (the device's noun...).
    placeholders: Mapping[str, str] = field(default_factory=dict)
