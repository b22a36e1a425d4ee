"""Form pieces the kinds' config and options forms share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import CONF_PASSWORD
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio as vol

from .const import (
    CONF_AUTO_DOWNLOAD,
    CONF_CHECK_INTERVAL,
    CONF_HANDOFF_TIMEOUT,
    CONF_MAX_CONCURRENT_INSTALLS,
    DEFAULT_AUTO_DOWNLOAD,
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_HANDOFF_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_INSTALLS,
    MAX_CHECK_INTERVAL,
    MAX_CONCURRENT_INSTALLS,
    MIN_CHECK_INTERVAL,
)

PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
PORT = vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))

#: Re-authentication of the cameras: user name and password.
CREDENTIALS_SCHEMA = vol.Schema(
    {
        vol.Required("username"): str,
        vol.Required(CONF_PASSWORD): PASSWORD,
    }
)


def minutes(low: int, high: int) -> NumberSelector:
    """Return a number box in minutes."""
    return NumberSelector(
        NumberSelectorConfig(
            min=low,
            max=high,
            step=1,
            mode=NumberSelectorMode.BOX,
            unit_of_measurement="min",
        )
    )


def check_interval_field(current: Mapping[str, Any]) -> dict[Any, Any]:
    """Return the option field: how often to look for new firmware."""
    return {
        vol.Required(
            CONF_CHECK_INTERVAL,
            default=current.get(CONF_CHECK_INTERVAL, DEFAULT_CHECK_INTERVAL),
        ): minutes(MIN_CHECK_INTERVAL, MAX_CHECK_INTERVAL)
    }


def check_interval_option(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the stored check interval from the options form."""
    return {CONF_CHECK_INTERVAL: int(user_input[CONF_CHECK_INTERVAL])}


def bridge_fields(current: Mapping[str, Any]) -> dict[Any, Any]:
    """Return the bridges' option fields: automatic download, hand-off timeout."""
    return {
        vol.Required(
            CONF_AUTO_DOWNLOAD,
            default=current.get(CONF_AUTO_DOWNLOAD, DEFAULT_AUTO_DOWNLOAD),
        ): bool,
        vol.Required(
            CONF_HANDOFF_TIMEOUT,
            default=current.get(CONF_HANDOFF_TIMEOUT, DEFAULT_HANDOFF_TIMEOUT),
        ): minutes(1, MAX_CHECK_INTERVAL),
    }


def bridge_options(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the stored bridge options from the options form."""
    return {
        CONF_AUTO_DOWNLOAD: bool(user_input[CONF_AUTO_DOWNLOAD]),
        CONF_HANDOFF_TIMEOUT: int(user_input[CONF_HANDOFF_TIMEOUT]),
    }


def optional_text_options(
    user_input: Mapping[str, Any], keys: tuple[str, ...]
) -> dict[str, Any]:
    """Return the optional text options the user filled in."""
    return {key: user_input[key] for key in keys if user_input.get(key)}


def optional_text_fields(
    current: Mapping[str, Any], keys: tuple[str, ...]
) -> dict[Any, Any]:
    """Return optional text fields suggesting the current values."""
    return {
        vol.Optional(key, description={"suggested_value": current.get(key)}): str
        for key in keys
    }


def install_queue_field(current: Mapping[str, Any]) -> dict[Any, Any]:
    """Return the option every kind has: how many installs run at once (site-wide)."""
    return {
        vol.Required(
            CONF_MAX_CONCURRENT_INSTALLS,
            default=current.get(
                CONF_MAX_CONCURRENT_INSTALLS, DEFAULT_MAX_CONCURRENT_INSTALLS
            ),
        ): NumberSelector(
            NumberSelectorConfig(
                min=1, max=MAX_CONCURRENT_INSTALLS, step=1, mode=NumberSelectorMode.BOX
            )
        )
    }


def install_queue_option(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the stored install limit from the options form."""
    return {CONF_MAX_CONCURRENT_INSTALLS: int(user_input[CONF_MAX_CONCURRENT_INSTALLS])}
