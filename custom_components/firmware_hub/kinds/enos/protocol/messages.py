"""EnOS OTA messages: topics, methods, steps, envelopes and their codecs.

Requests `{"id", "version": "1.0", "method", "params"}` on `/sys/{pk}/{dk}/<topic>`,
replies `{"id", "code", "data", "message"}` on `<topic>_reply` (`reference/enos.md`,
seed 001). Pure functions, no I/O, no Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import json
import logging
from typing import Any, Final

from .errors import EnosPayloadError

_LOGGER = logging.getLogger(__name__)

#: Firmware checksum algorithms EnOS uses in offers (`signMethod`), with hex lengths.
OFFER_SIGN_METHODS: Final[Mapping[str, int]] = {"md5": 32, "sha256": 64}

PROTOCOL_VERSION: Final = "1.0"
CODE_SUCCESS: Final = 200
#: User error codes are >= 2000; this one answers a push the device cannot use.
CODE_INVALID_REQUEST: Final = 2000

#: Progress steps (`ota.device.progress`): 0..100, or a failure below 0.
STEP_DONE: Final = 100
STEP_UPGRADE_FAILED: Final = -1
STEP_DOWNLOAD_FAILED: Final = -2
STEP_VERIFY_FAILED: Final = -3
STEP_BURN_FAILED: Final = -4
STEP_IGNORED: Final = -5

TOPIC_INFORM: Final = "ota/device/inform"
TOPIC_UPGRADE: Final = "ota/device/upgrade"
TOPIC_PROGRESS: Final = "ota/device/progress"
TOPIC_GETVERSION: Final = "ota/device/getversion"
REPLY_SUFFIX: Final = "_reply"

METHOD_INFORM: Final = "ota.device.inform"
METHOD_UPGRADE: Final = "ota.device.upgrade"
METHOD_PROGRESS: Final = "ota.device.progress"
METHOD_GETVERSION: Final = "ota.device.getversion"

#: The `_reply` topics of the requests a device sends.
REQUEST_TOPICS: Final = (TOPIC_INFORM, TOPIC_PROGRESS, TOPIC_GETVERSION)


@dataclass(frozen=True, slots=True)
class EnosFirmware:
    """One firmware the cloud offers (an upgrade push or a getversion entry)."""

    version: str
    file_url: str
    file_size: int
    #: Hex checksum of the file, lower case.
    sign: str
    #: `md5` or `sha256`.
    sign_method: str
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EnosReply:
    """A reply envelope."""

    msg_id: str
    code: int
    data: Any
    message: str | None


def _msg_id(value: Any) -> str | None:
    """Return a message id (string or Long on the wire) as a string."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as err:
        raise EnosPayloadError(f"{what}: invalid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise EnosPayloadError(f"{what}: not a JSON object")
    return doc


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise EnosPayloadError(f"offer without {key}")
    return value.strip()


def _size(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise EnosPayloadError(f"offer with an invalid fileSize: {value!r}")
    return value


def parse_offer(doc: Any) -> EnosFirmware:
    """Read one firmware object (`version`, `sign`, `signMethod`, `fileUrl`, `fileSize`)."""
    if not isinstance(doc, Mapping):
        raise EnosPayloadError("offer is not an object")
    sign_method = _text(doc, "signMethod").lower()
    if sign_method not in OFFER_SIGN_METHODS:
        raise EnosPayloadError(f"offer with an unsupported signMethod {sign_method!r}")
    sign = _text(doc, "sign").lower()
    if len(sign) != OFFER_SIGN_METHODS[sign_method] or any(
        c not in "0123456789abcdef" for c in sign
    ):
        raise EnosPayloadError(f"offer whose sign is not a {sign_method} hex digest")
    return EnosFirmware(
        version=_text(doc, "version"),
        file_url=_text(doc, "fileUrl"),
        file_size=_size(doc.get("fileSize")),
        sign=sign,
        sign_method=sign_method,
        raw=dict(doc),
    )


def parse_offer_list(data: Any) -> list[EnosFirmware]:
    """Read a getversion reply's `data`: a list of firmware objects.

    No data means no offer; entries that cannot be used are skipped with a warning.
    """
    if data is None:
        return []
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        raise EnosPayloadError("getversion data is not a list")
    offers: list[EnosFirmware] = []
    for entry in data:
        try:
            offers.append(parse_offer(entry))
        except EnosPayloadError as err:
            _LOGGER.warning("Skipping an unusable firmware offer: %s", err)
    return offers


def parse_reply(payload: bytes) -> EnosReply:
    """Read a reply envelope `{"id", "code", "data", "message"}`."""
    doc = _json_object(payload, "reply")
    msg_id = _msg_id(doc.get("id"))
    code = doc.get("code")
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        code = int(code)
    if msg_id is None or not isinstance(code, int) or isinstance(code, bool):
        raise EnosPayloadError("reply without id or code")
    message = doc.get("message")
    return EnosReply(
        msg_id=msg_id,
        code=code,
        data=doc.get("data"),
        message=message if isinstance(message, str) else None,
    )


def parse_upgrade_push(payload: bytes) -> tuple[str | None, EnosFirmware]:
    """Read an `ota.device.upgrade` push into (message id, offer).

    Raises `EnosPayloadError` carrying the message id when it could be read, so the
    device can still answer with an error code.
    """
    doc = _json_object(payload, "upgrade push")
    msg_id = _msg_id(doc.get("id"))
    method = doc.get("method")
    if method is not None and method != METHOD_UPGRADE:
        raise EnosPayloadError(f"upgrade push with method {method!r}", msg_id=msg_id)
    try:
        return msg_id, parse_offer(doc.get("params"))
    except EnosPayloadError as err:
        raise EnosPayloadError(f"upgrade push: {err}", msg_id=msg_id) from err


def build_request(msg_id: str, method: str, params: Mapping[str, Any]) -> bytes:
    """Return a request envelope."""
    return json.dumps(
        {
            "id": msg_id,
            "version": PROTOCOL_VERSION,
            "method": method,
            "params": dict(params),
        },
        separators=(",", ":"),
    ).encode()


def build_reply(
    msg_id: str | None, code: int, message: str = "", data: Any = None
) -> bytes:
    """Return a reply envelope (`data` defaults to `{}`)."""
    body: dict[str, Any] = {} if msg_id is None else {"id": msg_id}
    body |= {"code": code, "data": {} if data is None else data}
    if message:
        body["message"] = message
    return json.dumps(body, separators=(",", ":")).encode()


def device_topic(product_key: str, device_key: str, suffix: str) -> str:
    """Return `/sys/{pk}/{dk}/{suffix}`."""
    return f"/sys/{product_key}/{device_key}/{suffix}"


def progress_params(step: int, desc: str = "") -> dict[str, str]:
    """Return the params of `ota.device.progress`: 0..100, or a failure below 0."""
    if step > STEP_DONE:
        raise ValueError(f"progress step {step} above 100")
    return {"step": str(step), "desc": desc}
