"""What a camera back from its reboot must report: the same serial, a new firmware.

No Home Assistant imports.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.backend import InstallError
from ...core.versions import same_version
from .protocol import DeviceInfo


@dataclass(frozen=True, slots=True)
class Expected:
    """What the camera that comes back must report."""

    #: The version it must run (None: any version other than `before`).
    target: str | None
    before: str | None
    serial_number: str | None


def verify(info: DeviceInfo, expected: Expected) -> DeviceInfo:
    """Return `info` if it is the same camera running the new firmware, else raise."""
    if expected.serial_number and info.serial_number != expected.serial_number:
        raise InstallError(
            "serial_mismatch",
            "another device answers at the camera's address after the reboot",
        )
    if expected.target is not None:
        if same_version(info.full_version, expected.target):
            return info
        raise InstallError(
            "verification_failed",
            f"the camera came back with {info.full_version}, not {expected.target}",
            installed=info.full_version,
            expected=expected.target,
        )
    if expected.before is not None and same_version(info.full_version, expected.before):
        raise InstallError(
            "verification_failed",
            f"the camera came back with its old firmware {info.full_version}",
            installed=info.full_version,
            expected="a new version",
        )
    return info
