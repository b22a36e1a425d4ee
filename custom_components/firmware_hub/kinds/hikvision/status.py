"""What a Hikvision camera's online upgrade reports, and how an install reads it.

The status words of ISAPI's `downloadPackage/status` and `onlineUpgrade/status`,
the share of the install's progress each step takes, and how often and how long an
install polls. No Home Assistant imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .errors import DOWNLOAD_FAILURE_KEYS, call
from .protocol import IsapiClient, TaskStatus

DOWNLOAD_FINISHED: Final = "finish"
DOWNLOAD_PAUSED: Final = "pause"
DOWNLOAD_RUNNING: Final = frozenset({"downloading", DOWNLOAD_PAUSED})
DOWNLOAD_FAILURES: Final = frozenset(DOWNLOAD_FAILURE_KEYS)
UPGRADE_SUCCESSFUL: Final = "successful"
UPGRADE_RUNNING: Final = frozenset({"upgrading", "waitManualTrigger"})
UPGRADE_IDLE: Final = "notUpgrade"

# Progress shown while installing: download 0-45 %, flash 45-90 %, reboot 90-95 %,
# verification 99 %.
DOWNLOAD_SPAN: Final = (0, 45)
FLASH_SPAN: Final = (45, 90)
REBOOT_START: Final = 90
REBOOT_DOWN: Final = 95
VERIFY: Final = 99


@dataclass(frozen=True, slots=True)
class HikvisionTiming:
    """How often and how long the install polls (seconds)."""

    poll_interval: float = 2.0
    #: How long the camera may take to report a download it was asked to start.
    download_start_timeout: float = 60.0
    download_timeout: float = 30 * 60
    flash_timeout: float = 30 * 60
    reboot_timeout: float = 10 * 60
    #: How long a camera asked to cancel its download may take to stop it.
    cancel_timeout: float = 60.0
    #: Connection errors in a row tolerated while downloading (the camera is busy).
    max_download_errors: int = 5
    #: A camera that took a firmware file (statusCode 1) and stopped flashing
    #: usually reboots by itself; after this long it is asked to.
    self_reboot_grace: float = 20.0


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What the camera's online upgrade is doing now."""

    download: TaskStatus
    upgrade: TaskStatus

    @property
    def downloading(self) -> bool:
        """Return True while a package download runs (or is paused)."""
        return self.download.status in DOWNLOAD_RUNNING

    @property
    def upgrading(self) -> bool:
        """Return True while the camera flashes (or waits to)."""
        return self.upgrade.status in UPGRADE_RUNNING

    @property
    def busy(self) -> bool:
        """Return True while the camera downloads or flashes."""
        return self.downloading or self.upgrading


def span(percent: int, bounds: tuple[int, int]) -> int:
    """Map a step's 0-100 % onto its share of the install's progress."""
    low, high = bounds
    return low + (high - low) * max(0, min(100, percent)) // 100


async def read_status(client: IsapiClient) -> DeviceStatus:
    """Read the download and the upgrade status (read only)."""
    download = await call(client.get_download_status())
    upgrade = await call(client.get_upgrade_status())
    return DeviceStatus(download, upgrade)
