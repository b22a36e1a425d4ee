"""ONVIF protocol errors → backend errors (the lifecycle's typed, translated errors)."""

from __future__ import annotations

from collections.abc import Awaitable

from ...core.backend import (
    BackendError,
    DeviceAuthError,
    DeviceConnectionError,
    DeviceResponseError,
    InstallError,
)
from .protocol import OnvifAuthError, OnvifConnectionError, OnvifError


class SettingsRefusedError(DeviceResponseError):
    """The camera answered a Set with a SOAP fault (ConfigModify...)."""

    key = "settings_refused"


def backend_error(err: OnvifError) -> BackendError:
    """Return the backend error a protocol error stands for."""
    if isinstance(err, OnvifAuthError):
        return DeviceAuthError(str(err))
    if isinstance(err, OnvifConnectionError):
        return DeviceConnectionError(str(err))
    return DeviceResponseError(str(err))


def install_error(err: BackendError) -> InstallError:
    """Return the install error a backend error met during an install stands for."""
    if isinstance(err, InstallError):
        return err
    if isinstance(err, DeviceAuthError):
        return InstallError("install_auth_failed", str(err))
    if isinstance(err, DeviceConnectionError):
        return InstallError("device_lost", str(err), error=str(err))
    return InstallError("device_refused", str(err), reason=str(err.__cause__ or err))


async def call[T](coro: Awaitable[T]) -> T:
    """Await a protocol call, turning protocol errors into backend errors."""
    try:
        return await coro
    except OnvifError as err:
        raise backend_error(err) from err
