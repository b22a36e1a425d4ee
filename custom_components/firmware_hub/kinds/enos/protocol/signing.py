"""EnOS device login (secure mode 2) and HTTP broker signs.

Facts from `reference/enos.md`: clientId `{cid}|securemode=2,signmethod=hmac{m},
timestamp={ms}|`, username `{deviceKey}&{productKey}`, password = digest (not an
HMAC, despite the names) of `clientId{cid}deviceKey{dk}productKey{pk}timestamp{ms}
{secret}`. A fresh timestamp and sign are computed for every connection attempt.

Nothing here logs the device secret or a sign. No Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import hashlib
from typing import Final

#: Sign methods as configured → the name on the wire (`signmethod=` in the clientId).
SIGN_METHODS: Final[Mapping[str, str]] = {
    "sha256": "hmacsha256",
    "sha1": "hmacsha1",
    "md5": "hmacmd5",
}
_MAX_CID_LENGTH: Final = 64


@dataclass(frozen=True, slots=True)
class EnosCredentials:
    """A static device's identity (secure mode 2)."""

    product_key: str
    device_key: str
    device_secret: str = field(repr=False)
    sign_method: str = "sha256"
    #: The id before `|` in the clientId (at most 64 characters); the device key if unset.
    client_cid: str | None = None

    def __post_init__(self) -> None:
        """Refuse what EnOS would refuse anyway."""
        if self.sign_method not in SIGN_METHODS:
            raise ValueError(f"unsupported sign method {self.sign_method!r}")
        if not self.product_key or not self.device_key:
            raise ValueError("product key and device key are required")
        if len(self.cid) > _MAX_CID_LENGTH:
            raise ValueError("client id longer than 64 characters")

    @property
    def cid(self) -> str:
        """Return the id used in the clientId and in the sign."""
        return self.client_cid or self.device_key


@dataclass(frozen=True, slots=True)
class LoginFields:
    """The CONNECT fields of one connection attempt."""

    client_id: str
    username: str
    password: str = field(repr=False)
    timestamp: int


def compute_sign(
    credentials: EnosCredentials, timestamp: int, *, cid: str | None = None
) -> str:
    """Return the login password: a digest of the sorted parameters and the secret.

    sha256 and sha1 in upper-case hex (as the EnOS documentation says), md5 in
    lower-case hex (as the SDKs send it); EnOS compares the hex case-insensitively.
    """
    content = (
        f"clientId{cid or credentials.cid}"
        f"deviceKey{credentials.device_key}"
        f"productKey{credentials.product_key}"
        f"timestamp{timestamp}"
        f"{credentials.device_secret}"
    ).encode()
    if credentials.sign_method == "sha256":
        return hashlib.sha256(content).hexdigest().upper()
    if credentials.sign_method == "sha1":
        return hashlib.sha1(content, usedforsecurity=False).hexdigest().upper()
    return hashlib.md5(content, usedforsecurity=False).hexdigest()


def sign_login(credentials: EnosCredentials, timestamp: int) -> LoginFields:
    """Return clientId, username and password for a connection at `timestamp` (ms)."""
    method = SIGN_METHODS[credentials.sign_method]
    return LoginFields(
        client_id=(
            f"{credentials.cid}|securemode=2,signmethod={method},timestamp={timestamp}|"
        ),
        username=f"{credentials.device_key}&{credentials.product_key}",
        password=compute_sign(credentials, timestamp),
        timestamp=timestamp,
    )


def http_sign(credentials: EnosCredentials, lifetime: int) -> str:
    """Return the sign of an HTTP broker authentication request.

    The parameters concatenated as name + value in this order, `deviceKey`,
    `lifetime`, `productKey`, `signMethod`, then the device secret; SHA-256,
    upper-case hex.
    """
    content = (
        f"deviceKey{credentials.device_key}"
        f"lifetime{lifetime}"
        f"productKey{credentials.product_key}"
        "signMethodsha256"
        f"{credentials.device_secret}"
    )
    return hashlib.sha256(content.encode()).hexdigest().upper()
