"""Backend errors → what the user sees: one table for the whole integration.

Backends raise `BackendError`s carrying a translation key (`err.key`) and
placeholders; this module turns them into Home Assistant's translated exceptions,
config flow form errors and repair issues (the pattern of `reolink/util.py`).
"""

from __future__ import annotations

from typing import Final

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import DOMAIN
from .core.backend import (
    BackendError,
    DeviceAuthError,
    DeviceConnectionError,
    DeviceResponseError,
)

#: Error keys the config flow shows as they are (they have a `config.error` text).
_FORM_KEYS: Final = frozenset(
    {
        "invalid_auth",
        "insecure_auth",
        "cannot_connect",
        "cloud_invalid_auth",
        "cloud_cannot_connect",
        "registration_refused",
    }
)
#: Otherwise the form error follows the error's class.
_FORM_BY_CLASS: Final[tuple[tuple[type[BackendError], str], ...]] = (
    (DeviceAuthError, "invalid_auth"),
    (DeviceConnectionError, "cannot_connect"),
    (DeviceResponseError, "unsupported_device"),
)


def form_error(err: BackendError) -> str:
    """Return the config flow's error key for a failed validation."""
    if err.key in _FORM_KEYS:
        return err.key
    for error_class, key in _FORM_BY_CLASS:
        if isinstance(err, error_class):
            return key
    return "unknown"


def translated_error(err: BackendError) -> HomeAssistantError:
    """Return the translated Home Assistant error for a backend error."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=err.key,
        translation_placeholders={"error": str(err), **err.placeholders},
    )


def validation_error(err: BackendError) -> ServiceValidationError:
    """Return the translated error for a request refused before anything was sent."""
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=err.key,
        translation_placeholders={"error": str(err), **err.placeholders},
    )


def install_in_progress() -> HomeAssistantError:
    """Return the error for a request refused because an install runs."""
    return HomeAssistantError(
        translation_domain=DOMAIN, translation_key="install_in_progress"
    )
