"""What a Hikvision camera adds to the shared state (no Home Assistant imports)."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.models import KindFacts


@dataclass(frozen=True, slots=True)
class HikvisionFacts(KindFacts):
    """What a Hikvision camera adds to the state."""

    #: Whether the camera upgrades itself from Hikvision's server (ISAPI online upgrade).
    online_upgrade: bool
    #: Whether it reboots by itself after flashing (`auto`) or must be told (`manual`).
    reboot_after_upgrade: str = "manual"
    #: While the camera downloads a package: its speed (MB/s, as the camera says)
    #: and the seconds it expects the download still takes (None: not said).
    download_speed: float | None = None
    remaining_seconds: int | None = None
    #: Whether the camera's download is paused (by its web page, or the camera).
    download_paused: bool = False
