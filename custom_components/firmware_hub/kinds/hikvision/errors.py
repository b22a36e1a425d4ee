"""Protocol errors as backend errors: the Hikvision kind's one mapping.

No Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Final

from ...core.backend import (
    BackendError,
    DeviceAuthError,
    DeviceConnectionError,
    DeviceFailureError,
    DeviceResponseError,
    InstallError,
)
from .protocol import (
    IsapiAuthError,
    IsapiAuthSchemeError,
    IsapiConnectionError,
    IsapiError,
    IsapiHttpError,
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
    # The camera's answer (a ResponseStatus code...) stays in the log text and the
    # diagnostics; the user reads a sentence.
    cause = err.__cause__
    code = (
        cause.sub_status_code or str(cause.status_code)
        if isinstance(cause, IsapiResponseError)
        else str(cause or err)
    )
    return InstallError("camera_refused_request", str(err), code=code)


#: The camera's download states that end a download: each its own message (the
#: error key) and its own repair issue (what to do).
DOWNLOAD_FAILURE_KEYS: Final = {
    "downloadFailed": ("camera_download_failed", "install_camera_download_failed"),
    "incorrectPackage": (
        "camera_package_incorrect",
        "install_camera_package_incorrect",
    ),
    "hdOperationFailed": ("camera_storage_failed", "install_camera_storage_failed"),
}
#: The camera's upgrade states that end a flash, each its own message and repair.
UPGRADE_FAILURE_KEYS: Final = {
    "languageMismatch": (
        "camera_language_mismatch",
        "install_camera_language_mismatch",
    ),
    "writeFlashError": (
        "camera_flash_write_error",
        "install_camera_flash_write_error",
    ),
    "packageTypeMismatch": (
        "camera_package_type_mismatch",
        "install_camera_package_type_mismatch",
    ),
    "packageVersionMismatch": (
        "camera_package_version_mismatch",
        "install_camera_package_version_mismatch",
    ),
    "netUnreachable": (
        "camera_network_unreachable",
        "install_camera_network_unreachable",
    ),
    "unknownError": (
        "camera_upgrade_unknown_error",
        "install_camera_upgrade_unknown_error",
    ),
    "engineVersionMismatch": (
        "camera_engine_version_mismatch",
        "install_camera_engine_version_mismatch",
    ),
}
#: A state Hikvision's guide does not list (a newer firmware's word).
_UNKNOWN_DOWNLOAD_STATE: Final = (
    "camera_download_state_unknown",
    "install_camera_download_state_unknown",
)
_UNKNOWN_UPGRADE_STATE: Final = (
    "camera_upgrade_state_unknown",
    "install_camera_upgrade_state_unknown",
)
#: Sub status codes (and descriptions) of a firmware file for another device.
_FILE_MISMATCH: Final = ("baddevtype", "mismatch", "badfirmware", "invalidpackage")


def download_failure(status: str) -> DeviceFailureError:
    """Return the error of a download the camera ended in `status`.

    The user reads a sentence (the key's translation); the camera's own word stays
    in the log text and the `code` placeholder (diagnostics, automations).
    """
    key, repair = DOWNLOAD_FAILURE_KEYS.get(status, _UNKNOWN_DOWNLOAD_STATE)
    return DeviceFailureError(
        key, repair, f"the camera's download ended in {status}", code=status
    )


def upgrade_failure(status: str) -> DeviceFailureError:
    """Return the error of a flash the camera ended in `status`."""
    key, repair = UPGRADE_FAILURE_KEYS.get(status, _UNKNOWN_UPGRADE_STATE)
    return DeviceFailureError(
        key, repair, f"the camera's upgrade ended in {status}", code=status
    )


def file_refused(
    err: IsapiResponseError | IsapiHttpError, file_name: str
) -> InstallError:
    """Return the error of a firmware file the camera refused (nothing flashed)."""
    if isinstance(err, IsapiHttpError):
        return InstallError(
            "firmware_file_refused",
            f"the camera refused {file_name}: {err}",
            file=file_name,
            code=str(err.status),
        )
    words = " ".join(
        part or "" for part in (err.sub_status_code, err.description, err.status_string)
    ).lower()
    key = (
        "firmware_file_mismatch"
        if any(word in words for word in _FILE_MISMATCH)
        else "firmware_file_refused"
    )
    return InstallError(
        key,
        f"the camera refused {file_name}: {err}",
        file=file_name,
        code=err.sub_status_code or str(err.status_code),
    )
