"""Errors of the EnOS wire layer (no Home Assistant imports)."""

from __future__ import annotations


class EnosError(Exception):
    """Base class of every error the EnOS client raises."""


class EnosConnectionError(EnosError):
    """The broker could not be reached, or the connection is gone."""


class EnosTimeoutError(EnosConnectionError):
    """The broker (or the cloud behind it) did not answer in time."""


class EnosAuthError(EnosError):
    """The broker refused the device's credentials (CONNACK 4 or 5)."""


class EnosPayloadError(EnosError):
    """A message that is not what EnOS specifies (bad JSON, fields missing)."""

    def __init__(self, message: str, *, msg_id: str | None = None) -> None:
        """Initialize with the message id when it could be read."""
        super().__init__(message)
        self.msg_id = msg_id


class EnosReplyError(EnosError):
    """The cloud answered a request with a code other than 200."""

    def __init__(self, method: str, code: int, message: str | None) -> None:
        """Initialize with the reply's code and message."""
        super().__init__(f"{method}: code {code} ({message or 'no message'})")
        self.code = code
        self.message = message


class EnosUrlRefusedError(EnosError):
    """A package URL (or a redirect hop) the download policy does not allow."""
