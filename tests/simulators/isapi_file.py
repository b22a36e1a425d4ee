"""The firmware file upload of the ISAPI simulator (``PUT /ISAPI/System/updateFirmware``).

A mixin of ``IsapiCameraSimulator``: it receives the file as a stream (hashing it,
never holding it whole), answers as the device's ``file_mode`` says, and reports
the flash in ``GET /ISAPI/System/upgradeStatus`` (``upgrading``, ``percent``), one
step per poll. Nothing here imports Home Assistant.

Shapes, from public sources (no capture of a device's own answer is public):
the body is the raw ``digicap.dav`` as ``application/octet-stream`` (devices
answer 400 "Invalid XML Content" to application/xml; curl guides use
``-T digicap.dav -H "Content-Type: application/octet-stream"`` and then
``PUT /ISAPI/System/reboot``); a connection error after the upload is the device
restarting; a file for another model shows "upgrade packet mismatch" (here a
statusCode 6 ``badDevType`` ResponseStatus, ISAPI's sub status for a device type
mismatch); ``upgradeStatus`` (ISAPI guide 10.1.5.2) holds ``upgrading`` and
``percent``; statusCode 7 is ISAPI's "Reboot Required".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
import hashlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from aiohttp import web

PATH_UPDATE_FIRMWARE: Final = "/ISAPI/System/updateFirmware"
PATH_UPGRADE_STATUS: Final = "/ISAPI/System/upgradeStatus"
OCTET_STREAM: Final = "application/octet-stream"


class FileMode(StrEnum):
    """How the simulated device takes a firmware file."""

    ACCEPT = "accept"
    """statusCode 1; flashes (upgradeStatus upgrading), then reboots by itself."""
    REBOOT_REQUIRED = "rebootRequired"
    """statusCode 7 "Reboot Required": flashed, waits for ``PUT /ISAPI/System/reboot``."""
    DROP = "drop"
    """Closes the connection once the file is in, and reboots into it (no answer)."""
    MISMATCH = "mismatch"
    """400, statusCode 6 badDevType "upgrade packet mismatch": nothing flashed."""
    DEVICE_ERROR = "deviceError"
    """500, statusCode 3 deviceError: nothing flashed."""


@dataclass
class ReceivedFile:
    """A firmware file the simulator received."""

    size: int
    md5: str
    content_type: str
    largest_chunk: int


class FirmwareFileMixin:
    """``updateFirmware`` and ``upgradeStatus`` for ``IsapiCameraSimulator``."""

    upgrade_steps: int
    _flashed_version: str | None

    def _init_firmware_file(self) -> None:
        #: How the device takes the next file.
        self.file_mode = FileMode.ACCEPT
        #: The version the file carries (what the device runs after the reboot).
        self.file_version = "V5.7.22 build 250301"
        #: Status polls an accepted file waits before its flash starts (a slow device).
        self.file_flash_delay = 0
        self._file_start_in = 0
        #: Whether the device restarts by itself once it flashed an accepted file.
        self.file_self_reboot = True
        #: Whether ``/ISAPI/System/upgradeStatus`` exists (404 notSupport if not).
        self.upgrade_status_supported = True
        #: Every firmware file received (sizes and digests, never the bytes).
        self.received_files: list[ReceivedFile] = []
        self._file_upgrading = False
        self._file_start_in = 0
        self._file_polls = 0
        self._file_percent = 0

    if TYPE_CHECKING:  # what the simulator provides

        def _xml(self, root: str, inner: str, status: int = 200) -> Any: ...
        def _response_status(
            self,
            url: str,
            *,
            http_status: int,
            code: int,
            string: str,
            sub_code: str,
            description: str | None = None,
        ) -> Any: ...
        def _not_found(self, path: str) -> Any: ...
        def _event(self, name: str) -> None: ...
        async def reboot(self) -> None: ...

    def begin_file_upgrade(self) -> None:
        """Start flashing a file, as if one had just been uploaded."""
        self._file_upgrading = True
        self._file_polls = 0
        self._file_percent = 0
        self._event("file_upgrade_started")

    @property
    def file_upgrading(self) -> bool:
        """Whether the device flashes a firmware file now."""
        return self._file_upgrading

    @staticmethod
    async def _discard_body(request: web.Request) -> None:
        """Read and drop a body refused (401) before it was looked at."""
        async for _chunk in request.content.iter_any():
            pass

    async def _receive_firmware(self, request: web.Request) -> tuple[Any, bool]:
        """Stream the file in; return (reply, whether to drop the connection)."""
        digest = hashlib.md5()
        size = largest = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
            largest = max(largest, len(chunk))
        content_type = request.headers.get("Content-Type", "")
        self.received_files.append(
            ReceivedFile(size, digest.hexdigest(), content_type, largest)
        )
        self._event("file_received")
        if not content_type.startswith(OCTET_STREAM):
            return self._error(
                request.path, 400, 6, "Invalid XML Content", "badXmlContent"
            ), False
        if self._file_upgrading:
            return self._error(
                request.path, 403, 4, "Invalid Operation", "upgrading"
            ), False
        if self.file_mode is FileMode.MISMATCH:
            reply = self._error(
                request.path,
                400,
                6,
                "Invalid Content",
                "badDevType",
                "upgrade packet mismatch",
            )
            return reply, False
        if self.file_mode is FileMode.DEVICE_ERROR:
            return self._error(
                request.path, 500, 3, "Device Error", "deviceError"
            ), False
        if self.file_mode is FileMode.DROP:
            self._flashed_version = self.file_version
            return None, True
        if self.file_mode is FileMode.REBOOT_REQUIRED:
            self._flashed_version = self.file_version
            self._event("file_flashed")
            return self._error(
                request.path, 200, 7, "Reboot Required", "rebootRequired"
            ), False
        reply = self._error(request.path, 200, 1, "OK", "ok")
        if not self.upgrade_status_supported:
            # Nothing to follow: flashed before answering, then restarts.
            self._flashed_version = self.file_version
            self._event("file_flashed")
            reply.after = self.reboot
            return reply, False
        if self.file_flash_delay > 0:
            self._file_start_in = self.file_flash_delay
        else:
            self.begin_file_upgrade()
        return reply, False

    def _error(
        self,
        url: str,
        http_status: int,
        code: int,
        string: str,
        sub_code: str,
        description: str | None = None,
    ) -> Any:
        return self._response_status(
            url,
            http_status=http_status,
            code=code,
            string=string,
            sub_code=sub_code,
            description=description,
        )

    def _get_file_upgrade_status(self, request: web.Request) -> Any:
        """``GET /ISAPI/System/upgradeStatus``: one step per poll while flashing."""
        if not self.upgrade_status_supported:
            return self._not_found(request.path)
        after: Callable[[], Coroutine[Any, Any, None]] | None = None
        if self._file_start_in > 0:
            self._file_start_in -= 1
            if self._file_start_in == 0:
                self.begin_file_upgrade()
        elif self._file_upgrading:
            self._file_polls += 1
            self._file_percent = min(100, self._file_polls * 100 // self.upgrade_steps)
            if self._file_percent >= 100:
                self._file_upgrading = False
                self._flashed_version = self.file_version
                self._event("file_flashed")
                if self.file_self_reboot:
                    after = self.reboot  # answer "not upgrading, 100", then reboot
        upgrading = "true" if self._file_upgrading else "false"
        reply = self._xml(
            "upgradeStatus",
            f"<upgrading>{upgrading}</upgrading>\n<percent>{self._file_percent}</percent>\n",
        )
        reply.after = after
        return reply

    def _reset_file_upgrade(self) -> None:
        """What a reboot does to a flash."""
        self._file_upgrading = False
        self._file_start_in = 0
        self._file_polls = 0
        self._file_percent = 0
