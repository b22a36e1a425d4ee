"""A recorder's online-upgrade task for its IP channel cameras (the NVR simulator's).

A mixin of ``IsapiNvrSimulator``. ``POST /ISAPI/System/onlineUpgrade/task?format=json``
with ``{"PackageDescription": {"URL", "channel", "name", "MD5"}}`` answers a
``taskID`` (ISAPI guide §10.1.2.7); the recorder then FETCHES the URL itself, as a
real one downloads the package, with its own HTTP client, and checks the MD5 of
what it got. ``GET /ISAPI/System/onlineUpgrade/status/task/<taskID>`` (§10.1.2.5)
reports ``upgrading`` while it fetches, then one ``percent`` step per poll, then
``successful``; the channel's camera then runs the version in the package's name
(``..._V5.7.22_build250301...``) or ``channel_next_version``.

Faults: a package whose MD5 differs (``corrupt_package``: damaged on the way) ends in ``packageTypeMismatch``; a URL that
does not answer 200 in ``netUnreachable``; ``task_failure`` ends the task in that
status at half way; ``task_refused`` answers the POST with statusCode 4
notSupport (as does a recorder without ``isSupportUpgradeChannels``);
``channel_keeps_version`` leaves the camera on its old firmware after
``successful``, ``channel_stays_offline`` lists it offline from then on. Nothing here imports Home Assistant.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import hashlib
import json
import re
import secrets
from typing import TYPE_CHECKING, Any, Final

import aiohttp

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from aiohttp import web

    from .isapi_nvr import NvrChannel

TASK_PATH: Final = "/ISAPI/System/onlineUpgrade/task"
TASK_STATUS_PREFIX: Final = "/ISAPI/System/onlineUpgrade/status/task/"
_VERSION_IN_NAME: Final = re.compile(
    r"V(\d+(?:\.\d+)+)[ _]?build[ _]?(\d+)", re.IGNORECASE
)
_HALF_WAY: Final = 50


@dataclass
class FetchedPackage:
    """What the recorder got when it fetched a task's package URL."""

    url: str
    status: int
    size: int
    md5: str


@dataclass
class ChannelTask:
    """One upgrade task the recorder runs for one channel."""

    task_id: str
    channel_id: str
    url: str
    name: str
    md5: str
    status: str = "upgrading"
    percent: int = 0
    polls: int = 0
    fetched: bool = False


class ChannelTaskMixin:
    """The task API of ``IsapiNvrSimulator``."""

    channels: dict[str, NvrChannel]
    upgrade_channels: bool
    upgrade_steps: int

    if TYPE_CHECKING:

        def _json(self, payload: dict[str, Any], status: int = 200) -> Any: ...
        def _json_error(self, sub_code: str, http_status: int) -> Any: ...
        def _xml(self, root: str, inner: str, status: int = 200) -> Any: ...
        def _not_found(self, path: str) -> Any: ...
        def _event(self, name: str) -> None: ...
        def _spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def _init_channel_tasks(self) -> None:
        #: Answer the task POST with statusCode 4 notSupport.
        self.task_refused = False
        #: A status the task ends in at half way (``writeFlashError``...).
        self.task_failure: str | None = None
        #: The firmware a channel runs after a task whose file name carries none.
        self.channel_next_version = "V5.7.22 build 250301"
        #: Keep the channel's old firmware after a successful task.
        self.channel_keeps_version = False
        #: The camera does not come back after a successful task (listed offline).
        self.channel_stays_offline = False
        #: The package arrives damaged (its MD5 differs from the task's).
        self.corrupt_package = False
        #: Every task body the recorder accepted or refused, as sent.
        self.task_bodies: list[dict[str, Any]] = []
        self.tasks: dict[str, ChannelTask] = {}
        #: Every fetch of a package URL the recorder made.
        self.fetched_packages: list[FetchedPackage] = []

    async def _read_task_body(self, request: web.Request) -> None:
        """Keep a POSTed task's JSON body for the (synchronous) handler."""
        if request.method == "POST" and request.path == TASK_PATH:
            try:
                request["task_body"] = json.loads(await request.read())
            except ValueError:
                request["task_body"] = None

    def _post_task(self, request: web.Request) -> Any:
        """``POST .../onlineUpgrade/task?format=json``: accept, then fetch the URL."""
        body = request.get("task_body")
        self.task_bodies.append(body if isinstance(body, dict) else {})
        if self.task_refused or not self.upgrade_channels:
            return self._json_error("notSupport", 403)
        package = body.get("PackageDescription") if isinstance(body, dict) else None
        if not isinstance(package, dict) or not package.get("URL"):
            return self._json_error("badParameters", 400)
        channel_id = str(package.get("channel"))
        if channel_id not in self.channels:
            return self._json_error("invalidChannel", 400)
        task = ChannelTask(
            task_id=secrets.token_hex(8),
            channel_id=channel_id,
            url=str(package["URL"]),
            name=str(package.get("name") or ""),
            md5=str(package.get("MD5") or "").lower(),
        )
        self.tasks[task.task_id] = task
        self._event("channel_task_started")
        self._spawn(self._fetch_package(task))
        return self._json(
            {
                "statusCode": 1,
                "statusString": "OK",
                "subStatusCode": "ok",
                "taskID": task.task_id,
            }
        )

    async def _fetch_package(self, task: ChannelTask) -> None:
        """Download the package as the recorder would, and check its MD5."""
        digest = hashlib.md5()
        size = 0
        status = 0
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(task.url) as response,
            ):
                status = response.status
                async for chunk in response.content.iter_chunked(64 * 1024):
                    digest.update(chunk)
                    size += len(chunk)
        except aiohttp.ClientError:
            status = 0
        if self.corrupt_package:
            digest.update(b"\0")
        self.fetched_packages.append(
            FetchedPackage(task.url, status, size, digest.hexdigest())
        )
        task.fetched = True
        if status != 200:
            task.status = "netUnreachable"
        elif digest.hexdigest() != task.md5:
            task.status = "packageTypeMismatch"
        self._event("channel_package_fetched")

    def _get_task_status(self, task_id: str) -> Any:
        """``GET .../status/task/<taskID>``: one step per poll once fetched."""
        task = self.tasks.get(task_id)
        if task is None:
            return self._not_found(TASK_STATUS_PREFIX + task_id)
        if task.fetched and task.status == "upgrading":
            task.polls += 1
            percent = min(100, task.polls * 100 // self.upgrade_steps)
            if self.task_failure is not None and percent >= _HALF_WAY:
                task.status = self.task_failure
            elif percent >= 100:
                task.status, task.percent = "successful", 100
                self._flash_channel(task)
            else:
                task.percent = percent
        return self._xml(
            "OnlineUpgradeStatus",
            f"<status>{task.status}</status>\n<percent>{task.percent}</percent>\n"
            f"<taskID>{task.task_id}</taskID>\n",
        )

    def _flash_channel(self, task: ChannelTask) -> None:
        """The channel's camera runs the package now (unless told to keep its own)."""
        self._event("channel_flashed")
        channel = self.channels[task.channel_id]
        if self.channel_stays_offline:
            self.channels[task.channel_id] = replace(channel, online=False)
            return
        if self.channel_keeps_version:
            return
        match = _VERSION_IN_NAME.search(task.name)
        version = (
            f"V{match.group(1)} build {match.group(2)}"
            if match
            else self.channel_next_version
        )
        self.channels[task.channel_id] = replace(channel, firmware_version=version)
