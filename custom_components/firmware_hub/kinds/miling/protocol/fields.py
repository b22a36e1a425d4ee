"""Field checks shared by the message codecs (wire only)."""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any

from .errors import MilingFieldError


def check_str(field: str, value: object) -> None:
    """Raise unless `value` is a string."""
    if not isinstance(value, str):
        raise MilingFieldError(field, f"expected a string, got {type(value).__name__}")


def check_int(field: str, value: object, minimum: int | None = None) -> None:
    """Raise unless `value` is an int (not a bool) of at least `minimum`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise MilingFieldError(
            field, f"expected an integer, got {type(value).__name__}"
        )
    if minimum is not None and value < minimum:
        raise MilingFieldError(field, f"{value} is below {minimum}")


def get(params: Mapping[str, Any], field: str) -> Any:
    """Return `params[field]`; raise when it is missing."""
    try:
        return params[field]
    except KeyError:
        raise MilingFieldError(field, "missing") from None


def as_int(field: str, value: Any) -> Any:
    """Read an integral float (`4096.0`) as an int; leave other values to checks."""
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise MilingFieldError(field, f"expected an integer, got {value!r}")
        return int(value)
    return value


def int_field(params: Mapping[str, Any], field: str) -> Any:
    """Return a required integer field (integral floats read as ints)."""
    return as_int(field, get(params, field))


def opt_int_field(params: Mapping[str, Any], field: str) -> Any:
    """Return an optional integer field, None when absent."""
    value = params.get(field)
    return None if value is None else as_int(field, value)
