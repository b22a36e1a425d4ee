"""The typed errors of the ISAPI client (wire only, no Home Assistant imports)."""

from __future__ import annotations


class IsapiError(Exception):
    """Base class of every error the ISAPI client raises."""


class IsapiConnectionError(IsapiError):
    """The device could not be reached (refused, reset, DNS, TLS)."""


class IsapiTimeoutError(IsapiConnectionError):
    """The device did not answer in time."""


class IsapiAuthError(IsapiError):
    """The device refused the credentials."""


class IsapiAuthSchemeError(IsapiAuthError):
    """The device asked for an authentication scheme the client will not use.

    Basic over plain HTTP (the password would travel in clear), or any change of
    scheme after the client authenticated (a downgrade a man in the middle asks for).
    No credentials were sent with that scheme.
    """


class IsapiParseError(IsapiError):
    """The device answered something that is not a valid ISAPI document."""


class IsapiHttpError(IsapiError):
    """An HTTP error status without an ISAPI `ResponseStatus` body."""

    def __init__(self, status: int) -> None:
        """Initialize with the HTTP status."""
        super().__init__(f"HTTP {status}")
        self.status = status


class IsapiResponseError(IsapiError):
    """The device answered with a `ResponseStatus` that is not OK."""

    def __init__(
        self,
        *,
        http_status: int,
        status_code: int | None,
        sub_status_code: str | None,
        status_string: str | None = None,
        description: str | None = None,
    ) -> None:
        """Initialize from the ResponseStatus fields."""
        super().__init__(
            f"statusCode={status_code} subStatusCode={sub_status_code}"
            f" ({description or status_string or 'no description'})"
        )
        self.http_status = http_status
        self.status_code = status_code
        self.sub_status_code = sub_status_code
        self.status_string = status_string
        self.description = description


class IsapiNotSupportedError(IsapiResponseError):
    """`subStatusCode` notSupport: the device does not offer this function."""
