"""Hikvision online upgrade: the camera checks, downloads and flashes by itself.

The backend reads the camera (deviceInfo, the online-upgrade documents) and runs its
online check (`check`); installs are `transaction.Transaction`s over the steps of
`install.InstallFlow`: journalled before the first request that can start a flash,
every device-changing request preceded by a status that says the camera is idle,
and an install found running at setup followed (read only) to its verified end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
import logging
from typing import Any, BinaryIO, Final

from ...core.backend import (
    DeviceConnectionError,
    DeviceResponseError,
    FirmwareBackend,
    InstallRefusedError,
    Publish,
    ShareFile,
)
from ...core.models import DeviceIdentity, FirmwareState, InstallRun, Phase
from ...core.versions import is_newer, same_version
from .cancel import CANCEL_OPERATION, CancelSwitch
from .channel_install import ChannelInstall
from .channels import RecorderChannels
from .check import check_offer, markdown_notes, server_connected, utc_now
from .errors import call
from .facts import HikvisionFacts
from .file_install import FileInstall, file_flashing
from .install import InstallFlow
from .protocol import (
    DeviceInfo,
    IsapiClient,
    IsapiHttpError,
    IsapiNotSupportedError,
    IsapiResponseError,
    TaskStatus,
    find,
    options,
    text,
)
from .status import DOWNLOAD_PAUSED, DeviceStatus, HikvisionTiming, read_status
from .transaction import HeldPackage, Transaction

__all__ = [
    "DEFAULT_TIMING",
    "HikvisionBackend",
    "HikvisionFacts",
    "HikvisionTiming",
    "markdown_notes",
]

_LOGGER = logging.getLogger(__name__)

MANUFACTURER: Final = "Hikvision"

#: The timing backends use unless given one (tests shorten it).
DEFAULT_TIMING = HikvisionTiming()


class HikvisionBackend(FirmwareBackend):
    """A Hikvision camera or recorder that upgrades itself from Hikvision's server."""

    kind = "hikvision"
    can_restart = True
    can_install_file = True

    def __init__(
        self,
        client: IsapiClient,
        timing: HikvisionTiming | None = None,
        *,
        share: ShareFile | None = None,
    ) -> None:
        """Initialize over an ISAPI client; `share` serves files to a recorder."""
        super().__init__()
        self._client = client
        self._share = share
        self._timing = timing or DEFAULT_TIMING
        self._device: DeviceInfo | None = None
        self._online_upgrade = True
        self._reboot_after_upgrade = "manual"
        self._documents: dict[str, Any] = {}
        #: The finished package the camera holds, when its version is known.
        self._package = HeldPackage()
        #: A recorder's IP channel cameras (child devices).
        self._channels = RecorderChannels(client, MANUFACTURER)
        #: How the user stops a running package download (`cancel_install`).
        self._cancel = CancelSwitch()

    async def async_probe(self) -> DeviceIdentity:
        """Read deviceInfo and the online-upgrade capability."""
        info = await self._read_device_info()
        try:
            caps = await call(self._client.get_upgrade_capabilities())
        except DeviceResponseError as err:
            if not isinstance(err.__cause__, (IsapiResponseError, IsapiHttpError)):
                raise
            _LOGGER.debug("%s: no online upgrade capability (%s)", info.model, err)
            self._online_upgrade = False
            self._documents["capabilities"] = None
        else:
            self._documents["capabilities"] = dict(caps)
            self._channels.read_capabilities(caps)
            manual = find(caps, "ManualDownloadPackage")
            self._cancel.supported = CANCEL_OPERATION in options(
                find(manual, "supportOperation")
            )
            mode = text(find(caps, "rebootAfterUpgrade"))
            self._reboot_after_upgrade = "auto" if mode == "auto" else "manual"
        self._set_state(self._state.evolve(facts=self._facts()))
        return DeviceIdentity(
            unique_id=info.serial_number,
            manufacturer=MANUFACTURER,
            model=info.model,
            name=info.name,
            serial_number=info.serial_number,
            mac_address=info.mac_address,
            hw_version=info.hardware_version,
        )

    def _facts(self, download: TaskStatus | None = None) -> HikvisionFacts:
        """Return the facts; with a running `download`, its speed and time left."""
        paused = download is not None and download.status == DOWNLOAD_PAUSED
        return HikvisionFacts(
            online_upgrade=self._online_upgrade,
            reboot_after_upgrade=self._reboot_after_upgrade,
            download_speed=None if download is None or paused else download.speed_mb,
            remaining_seconds=(
                None if download is None or paused else download.remaining_seconds
            ),
            download_paused=paused,
        )

    async def _read_device_info(self) -> DeviceInfo:
        info = await call(self._client.get_device_info())
        self._device = info
        return info

    async def async_check(self) -> FirmwareState:
        """Make the camera ask Hikvision's server now (`version?check=true`)."""
        return await self.async_refresh(check=True, now=True)

    async def async_refresh(self, *, check: bool, now: bool = False) -> FirmwareState:
        """Poll the camera: one request (deviceInfo); a recorder adds its channels.

        With `check`, also read whether the camera reaches its upgrade server and
        read its online check's answer (the camera's cached one); with `now` too,
        the camera asks Hikvision's server now (the user's "Check for update").
        """
        info = await self._read_device_info()
        state = self._state.evolve(
            installed_version=info.full_version,
            facts=self._facts(),
            children=await self._channels.async_read(info),
        )
        if not self._online_upgrade:
            return self._set_state(
                state.evolve(
                    phase=Phase.UNSUPPORTED,
                    latest_version=info.full_version,
                    progress=None,
                    connected=None,
                    last_check=utc_now() if check else state.last_check,
                )
            )
        if not check:
            # Keep the last check's offer; a finished upgrade must not look pending.
            latest = state.latest_version
            if latest is None or not is_newer(latest, info.full_version):
                state = state.evolve(latest_version=info.full_version)
            return self._set_state(state)
        state = state.evolve(connected=await server_connected(self._client))
        return self._set_state(
            await check_offer(
                self._client, state, info, now=now, documents=self._documents
            )
        )

    async def async_restart(self) -> None:
        """Reboot the camera, unless it is downloading or flashing firmware."""
        if self._online_upgrade:
            status = await self._status_for_restart()
            if status is not None and status.busy:
                raise InstallRefusedError(
                    "device_busy",
                    "the camera is downloading or flashing firmware",
                    status=f"{status.download.status}/{status.upgrade.status}",
                )
        if await file_flashing(self._client):
            raise InstallRefusedError(
                "device_busy",
                "the camera is flashing a firmware file",
                status="upgrading",
            )
        await call(self._client.reboot())
        self._package.version = None  # a reboot clears the camera's package

    async def _status_for_restart(self) -> DeviceStatus | None:
        try:
            return await read_status(self._client)
        except DeviceResponseError as err:
            if isinstance(err.__cause__, IsapiNotSupportedError):
                return None  # no online upgrade task can be running
            raise

    def diagnostics(self) -> Mapping[str, Any]:
        """Return deviceInfo and the online-upgrade documents as the camera sent them."""
        return {
            "device_info": dict(self._device.raw) if self._device else None,
            "reboot_after_upgrade": self._reboot_after_upgrade,
            "online_upgrade": self._online_upgrade,
            "auth_scheme": self._client.auth_scheme,
            "can_cancel_download": self._cancel.supported,
            **self._documents,
            **self._channels.diagnostics(),
        }

    # ------------------------------------------------------------------ install

    def _flow(self, publish: Publish) -> InstallFlow:
        return InstallFlow(
            self._client,
            self._timing,
            get_state=lambda: self._state,
            set_state=self._set_state,
            publish=publish,
            facts=self._facts,
            cancel=self._cancel,
        )

    def _begin_for(self, publish: Publish) -> Callable[[InstallRun], Awaitable[None]]:
        async def begin(run: InstallRun) -> None:
            await self._begin_install(run, publish)

        return begin

    def _file_install(self, publish: Publish) -> FileInstall:
        return FileInstall(
            self._flow(publish),
            self._client,
            begin=self._begin_for(publish),
            journal=self.journal,
            online_upgrade=self._online_upgrade,
        )

    async def async_install_file(
        self, file: BinaryIO, name: str, publish: Publish
    ) -> FirmwareState:
        """Upload a firmware file, follow the flash and reboot, verify the camera."""
        install = self._file_install(publish)
        try:
            return await install.install(file, name)
        finally:
            self._device = install.device or self._device

    async def async_install_child_file(
        self, child: str, file: BinaryIO, name: str, publish: Publish
    ) -> FirmwareState:
        """Have the recorder install a firmware file on an IP channel camera."""
        return await self._channel_install(publish).install(child, file, name)

    def _channel_install(self, publish: Publish) -> ChannelInstall:
        return ChannelInstall(
            self._flow(publish),
            self._client,
            self._channels,
            share=self._share,
            begin=self._begin_for(publish),
            journal=self.journal,
        )

    def _transaction(self, publish: Publish) -> Transaction:
        return Transaction(
            self._flow(publish),
            self._client,
            begin=self._begin_for(publish),
            journal=self.journal,
            package=self._package,
            manual_reboot=self._reboot_after_upgrade == "manual",
            online_upgrade=self._online_upgrade,
        )

    async def async_install(
        self, version: str | None, publish: Publish
    ) -> FirmwareState:
        """Download, flash, reboot and verify; publish every step."""
        target = self._install_target(version)
        transaction = self._transaction(publish)
        try:
            return await transaction.install(target, self._device)
        finally:
            self._device = transaction.device or self._device

    async def async_cancel_install(self) -> None:
        """Stop the camera's package download (never a flash); see `cancel`."""
        await self._cancel.request()

    def _install_target(self, version: str | None) -> str:
        state = self._state
        if not self._online_upgrade or state.phase is Phase.UNSUPPORTED:
            raise InstallRefusedError(
                "not_supported", "the device has no online upgrade"
            )
        if not state.update_available or state.latest_version is None:
            raise InstallRefusedError("no_update", "no newer firmware is offered")
        if version is not None and not same_version(version, state.latest_version):
            raise InstallRefusedError(
                "version_not_offered",
                f"version {version} is not offered",
                version=version,
            )
        return state.latest_version

    async def async_follow(
        self, run: InstallRun | None, publish: Publish
    ) -> FirmwareState | None:
        """Follow an install the camera runs (or the journal says ran), read only."""
        if run is not None and run.child is not None:
            return await self._channel_install(publish).follow(run)
        if run is not None and run.file_name is not None:
            install = self._file_install(publish)
            try:
                return await install.follow(run)
            finally:
                self._device = install.device or self._device
        transaction = self._transaction(publish)
        try:
            try:
                info = await self._read_device_info()
            except DeviceConnectionError:
                if run is None:
                    raise
                # Away in the middle of the journal's install: it reboots.
                return await transaction.follow_reboot(run)
            return await transaction.follow(run, info)
        finally:
            self._device = transaction.device or self._device
