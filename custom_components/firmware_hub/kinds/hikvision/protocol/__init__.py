"""Hikvision ISAPI, wire only (no Home Assistant imports).

`errors` holds the typed errors, `documents` the sans-I/O decoding of answers,
`client` the HTTP(S) client with its authentication, `upload` the streamed
firmware file body.
"""

from .client import AuthScheme, IsapiClient, UploadResult
from .documents import (
    DeviceInfo,
    TaskStatus,
    UpgradeProgress,
    UpgradeVersion,
    find,
    options,
    text,
)
from .errors import (
    IsapiAuthError,
    IsapiAuthSchemeError,
    IsapiConnectionError,
    IsapiError,
    IsapiHttpError,
    IsapiNotSupportedError,
    IsapiParseError,
    IsapiResponseError,
    IsapiTimeoutError,
)

__all__ = [
    "AuthScheme",
    "DeviceInfo",
    "IsapiAuthError",
    "IsapiAuthSchemeError",
    "IsapiClient",
    "IsapiConnectionError",
    "IsapiError",
    "IsapiHttpError",
    "IsapiNotSupportedError",
    "IsapiParseError",
    "IsapiResponseError",
    "IsapiTimeoutError",
    "TaskStatus",
    "UpgradeProgress",
    "UpgradeVersion",
    "UploadResult",
    "find",
    "options",
    "text",
]
