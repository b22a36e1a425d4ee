"""Protocol errors as backend errors: the Hikvision kind's one mapping.

No Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Awaitable

from ...core.backend import (
    BackendError,
    DeviceAuthError,
    DeviceConnectionError,
    DeviceResponseError,
    InstallError,
)
from .protocol import (
    IsapiAuthError,
    IsapiAuthSchemeError,
    IsapiConnectionError,
    IsapiError,
    IsapiHttpError,
    IsapiParseError,
    IsapiResponseError,
)


class InsecureAuthError(DeviceAuthError):
    """The device asks for an authentication scheme that would expose the password."""

    key = "insecure_auth"


async def call[T](coro: Awaitable[T]) -> T:
    """Await a protocol call, turning protocol errors into backend errors."""
    try:
        return await coro
    except IsapiAuthSchemeError as err:
        raise InsecureAuthError(str(err)) from err
    except IsapiAuthError as err:
        raise DeviceAuthError(str(err)) from err
    except IsapiConnectionError as err:
        raise DeviceConnectionError(str(err)) from err
    except IsapiError as err:
        raise DeviceResponseError(str(err)) from err


def as_install_error(err: BackendError) -> InstallError:
    """Return the install step error a backend error means mid-install."""
    if isinstance(err, InstallError):
        return err
    if isinstance(err, InsecureAuthError):
        return InstallError(err.key, str(err))
    if isinstance(err, DeviceAuthError):
        return InstallError("install_auth_failed", str(err))
    if isinstance(err, DeviceConnectionError):
        return InstallError("device_lost", str(err))
    if isinstance(err.__cause__, (IsapiResponseError, IsapiParseError, IsapiHttpError)):
        return InstallError("device_refused", str(err), reason=str(err.__cause__))
    return InstallError("device_refused", str(err), reason=str(err))
