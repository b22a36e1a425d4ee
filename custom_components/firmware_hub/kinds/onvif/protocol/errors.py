"""ONVIF errors: every failure the protocol layer raises is an `OnvifError`.

`OnvifAuthError` (a fault the library's `is_auth_error` recognises, HTTP 401/403),
`OnvifConnectionError` (refused, reset, HTTP error without a SOAP answer) and its
`OnvifTimeoutError`, `OnvifFaultError` (any other SOAP fault, with its subcodes),
`OnvifNotSupportedError` (the camera lacks the service or the setting),
`OnvifParseError` (not an ONVIF answer), `OnvifUploadError` (the firmware upload's
HTTP status). `translate_error` maps what onvif-zeep-async, zeep and aiohttp raise.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp
from onvif import exceptions as onvif_exceptions, util as onvif_util  # type: ignore[import-untyped]
from zeep.exceptions import Error as ZeepError, Fault, TransportError

_AUTH_HTTP_STATUSES: Final = frozenset({401, 403})


class OnvifError(Exception):
    """Base class of every error the ONVIF client raises."""


class OnvifConnectionError(OnvifError):
    """The camera could not be reached, or answered HTTP without SOAP."""


class OnvifTimeoutError(OnvifConnectionError):
    """The camera did not answer in time."""


class OnvifAuthError(OnvifError):
    """The camera refused the credentials (or the WS-Security timestamp)."""


class OnvifNotSupportedError(OnvifError):
    """The camera lacks the service or setting asked for."""


class OnvifParseError(OnvifError):
    """The camera answered something that is not the expected ONVIF document."""


class OnvifFaultError(OnvifError):
    """A SOAP fault other than an authentication failure."""

    def __init__(
        self,
        operation: str,
        *,
        code: str | None,
        subcodes: tuple[str, ...],
        reason: str | None,
    ) -> None:
        """Initialize from the fault's code, subcodes (local names) and reason."""
        detail = "/".join(subcodes) or code or "no code"
        super().__init__(f"{operation}: SOAP fault {detail}: {reason or 'no reason'}")
        self.operation = operation
        self.code = code
        self.subcodes = subcodes
        self.reason = reason

    @property
    def subcode(self) -> str | None:
        """The most specific subcode, e.g. ``ConfigModify`` or ``ActionNotSupported``."""
        return self.subcodes[-1] if self.subcodes else None


class OnvifUploadError(OnvifError):
    """The firmware upload was answered with an HTTP error status."""

    def __init__(self, status: int, body: str) -> None:
        """Initialize with the HTTP status and the start of the answer."""
        super().__init__(f"firmware upload refused: HTTP {status} {body}".strip())
        self.status = status
        self.body = body


def local_name(value: Any) -> str:
    """Return the local part of a QName (lxml QName, ``{ns}name`` or ``p:name``)."""
    text = str(getattr(value, "localname", None) or value)
    return text.rpartition("}")[2].rpartition(":")[2]


def _fault_error(fault: Fault, operation: str) -> OnvifFaultError:
    subcodes = tuple(local_name(code) for code in fault.subcodes or ())
    return OnvifFaultError(
        operation,
        code=local_name(fault.code) if fault.code else None,
        subcodes=subcodes,
        reason=fault.message or None,
    )


def _soap_error(err: Fault | TransportError, operation: str) -> OnvifError:
    if isinstance(err, Fault):
        if onvif_util.is_auth_error(err):
            return OnvifAuthError(
                f"{operation}: {onvif_util.stringify_onvif_error(err)}"
            )
        return _fault_error(err, operation)
    if err.status_code in _AUTH_HTTP_STATUSES:
        return OnvifAuthError(f"{operation}: HTTP {err.status_code}")
    if err.status_code == 200:  # noqa: PLR2004 - a 200 answer zeep could not parse
        return OnvifParseError(f"{operation}: {err.message}")
    return OnvifConnectionError(f"{operation}: HTTP {err.status_code}")


#: Exception types (checked in order) → the typed error they become.
_ERROR_TYPES: Final[
    tuple[tuple[tuple[type[BaseException], ...], type[OnvifError]], ...]
] = (
    ((onvif_exceptions.ONVIFAuthError,), OnvifAuthError),
    ((TimeoutError, onvif_exceptions.ONVIFTimeoutError), OnvifTimeoutError),
    ((aiohttp.ClientError, OSError), OnvifConnectionError),
    ((ZeepError,), OnvifParseError),
    ((onvif_exceptions.ONVIFError,), OnvifError),
    # What zeep and the library raise on answers that are SOAP but not the expected
    # document (an empty Body, a missing element, a number that is not one).
    ((AttributeError, TypeError, LookupError, ValueError), OnvifParseError),
)


def translate_error(err: BaseException, operation: str) -> OnvifError | None:
    """Map a library, zeep or aiohttp exception to a typed error (None: a bug)."""
    if isinstance(err, OnvifError):
        return err
    if isinstance(err, (Fault, TransportError)):
        return _soap_error(err, operation)
    for types, error_type in _ERROR_TYPES:
        if isinstance(err, types):
            return error_type(f"{operation}: {type(err).__name__} {err}".strip())
    return None
