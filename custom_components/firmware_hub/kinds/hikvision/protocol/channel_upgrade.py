"""A recorder's upgrade of one IP channel camera: the online-upgrade task (wire only).

`POST /ISAPI/System/onlineUpgrade/task?format=json` with a `PackageDescription`
(the package's `URL`, the recorder's `channel` number, the package `name` and its
`MD5`) answers a `taskID`; `GET /ISAPI/System/onlineUpgrade/status/task/<taskID>`
answers an `OnlineUpgradeStatus` (status, percent). Shapes: Hikvision's ISAPI guide
(`reference/hikvision/isapi-online-upgrade.md`, §10.1.2.5 and §10.1.2.7). No Home
Assistant imports.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from aiohttp import hdrs, payload

from .client import IsapiClient
from .documents import TaskStatus, parse_upgrade_status, text
from .errors import IsapiParseError

PATH_UPGRADE_TASK: Final = "/ISAPI/System/onlineUpgrade/task"
PATH_TASK_STATUS: Final = "/ISAPI/System/onlineUpgrade/status/task/"


async def start_channel_upgrade(
    client: IsapiClient, *, url: str, channel: int, name: str, md5: str
) -> str:
    """Ask the recorder to upgrade `channel` from the package at `url`.

    Returns the task's id. A refusal (statusCode other than 1, notSupport...)
    raises `IsapiResponseError`; an answer without a task id `IsapiParseError`.
    """
    body = {
        "PackageDescription": {"URL": url, "channel": channel, "name": name, "MD5": md5}
    }
    _root, content = await client.request(
        hdrs.METH_POST,
        PATH_UPGRADE_TASK,
        params={"format": "json"},
        data=payload.JsonPayload(body),
    )
    task_id = text(content.get("taskID")) if isinstance(content, dict) else None
    if not task_id:
        raise IsapiParseError("the upgrade task was accepted without a taskID")
    return task_id


async def get_task_status(client: IsapiClient, task_id: str) -> TaskStatus:
    """Read an upgrade task's status (`notUpgrade`, `upgrading`, `successful`...)."""
    return parse_upgrade_status(
        *await client.request(hdrs.METH_GET, PATH_TASK_STATUS + quote(task_id, safe=""))
    )
