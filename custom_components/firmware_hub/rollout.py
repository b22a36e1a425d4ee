"""Fleet upgrades: the staged rollout behind `firmware_hub.install_updates`.

The devices with an update on offer (all of them, or the targeted devices, areas and
labels, optionally of some kinds only) are installed in stages: first `canary`
devices one at a time, each verified, then the rest `max_parallel` at a time (and
never more than the install queue's limit). With `stop_on_failure`, the first
failure starts nothing more. A bridge's install counts once the device reported
its result (or the hand-off timed out). The summary is the action's response and
the data of `firmware_hub_rollout_finished`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.core import Event, HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv, target as target_helpers
import probatio as vol

from .const import DOMAIN, EVENT_ROLLOUT_FINISHED, EVENT_UPGRADE_FINISHED
from .coordinator import FirmwareCoordinator, FirmwareHubConfigEntry
from .registry import KINDS

SERVICE_INSTALL_UPDATES: Final = "install_updates"
SERVICE_CANCEL_QUEUED_INSTALLS: Final = "cancel_queued_installs"

INSTALLED: Final = "installed"
FAILED: Final = "failed"
SKIPPED: Final = "skipped"
NOT_STARTED: Final = "not_started"
RESULTS: Final = (INSTALLED, FAILED, SKIPPED, NOT_STARTED)

#: How long past a bridge's hand-off timeout its result is awaited at most.
RESULT_GRACE: Final = 60.0

INSTALL_UPDATES_SCHEMA = vol.Schema(
    {
        **cv.TARGET_SERVICE_FIELDS,
        vol.Optional("max_parallel", default=1): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=64)
        ),
        vol.Optional("canary", default=1): vol.All(
            vol.Coerce(int), vol.Range(min=0, max=64)
        ),
        vol.Optional("stop_on_failure", default=True): cv.boolean,
        vol.Optional("kinds"): vol.All(
            cv.ensure_list, [vol.In([kind.value for kind in KINDS])]
        ),
        vol.Optional("dry_run", default=False): cv.boolean,
    }
)

CANCEL_QUEUED_INSTALLS_SCHEMA = vol.Schema({**cv.TARGET_SERVICE_FIELDS})


@dataclass(slots=True)
class DeviceResult:
    """One device's line in the rollout summary."""

    coordinator: FirmwareCoordinator
    device_id: str
    name: str
    from_version: str | None
    to_version: str | None
    result: str = NOT_STARTED
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the line as the response shows it."""
        return {
            "device_id": self.device_id,
            "name": self.name,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "result": self.result,
            "error": self.error,
        }


def _targeted(call: ServiceCall) -> dict[str, FirmwareCoordinator]:
    """Return the targeted Firmware Hub devices (all of them without a target)."""
    coordinators: dict[str, FirmwareCoordinator] = {}
    entries: list[FirmwareHubConfigEntry] = (
        call.hass.config_entries.async_loaded_entries(DOMAIN)
    )
    for entry in entries:
        coordinator = entry.runtime_data.coordinator
        if (device_id := coordinator.device_id) is not None:
            coordinators[device_id] = coordinator
    selection = target_helpers.TargetSelection(call.data)
    if not selection.has_any_target:
        return coordinators
    selected = target_helpers.async_extract_referenced_entity_ids(call.hass, selection)
    return {
        device_id: coordinator
        for device_id, coordinator in coordinators.items()
        if device_id in selected.referenced_devices
    }


def _plan(call: ServiceCall) -> list[DeviceResult]:
    """Return every targeted device, the ones to install left `not_started`."""
    kinds = set(call.data.get("kinds") or [kind.value for kind in KINDS])
    plan: list[DeviceResult] = []
    for device_id, coordinator in _targeted(call).items():
        if coordinator.kind.value not in kinds:
            continue
        state = coordinator.data
        line = DeviceResult(
            coordinator,
            device_id,
            coordinator.config_entry.title,
            state.installed_version,
            state.latest_version,
        )
        if coordinator.installing:
            line.result, line.error = SKIPPED, "install_in_progress"
        elif not coordinator.backend.can_install or not state.update_available:
            line.result, line.error, line.to_version = SKIPPED, "no_update", None
        plan.append(line)
    return sorted(plan, key=lambda line: (line.name.lower(), line.device_id))


async def _install_one(hass: HomeAssistant, line: DeviceResult) -> None:
    """Install the offered firmware on one device; record how it went."""
    coordinator = line.coordinator
    entry_id = coordinator.config_entry.entry_id
    outcome: asyncio.Future[Event[Any]] = hass.loop.create_future()

    @callback
    def _finished(event: Event[Any]) -> None:
        if event.data.get("entry_id") == entry_id and not outcome.done():
            outcome.set_result(event)

    unsub = hass.bus.async_listen(EVENT_UPGRADE_FINISHED, _finished)
    try:
        await coordinator.async_install(None)
        if coordinator.handoffs is not None and not outcome.done():
            # A bridge handed the package off: the device reports the result.
            timeout = coordinator.handoffs.timeout + RESULT_GRACE
            async with asyncio.timeout(timeout):
                await asyncio.shield(outcome)
    except HomeAssistantError as err:
        line.result, line.error = FAILED, err.translation_key or str(err)
        return
    except TimeoutError:
        line.result, line.error = FAILED, "handoff_timeout"
        return
    finally:
        unsub()
    event = outcome.result() if outcome.done() else None
    if event is not None and not event.data["success"]:
        line.result, line.error = FAILED, event.data.get("error")
    else:
        line.result = INSTALLED
        line.to_version = coordinator.data.installed_version


async def _run(
    hass: HomeAssistant, lines: list[DeviceResult], parallel: int, stop: bool
) -> bool:
    """Install `lines`, `parallel` at a time; return False once one failed."""
    semaphore = asyncio.Semaphore(parallel)
    failed = asyncio.Event()

    async def one(line: DeviceResult) -> None:
        async with semaphore:
            if stop and failed.is_set():
                return  # stays not_started
            await _install_one(hass, line)
            if line.result == FAILED:
                failed.set()

    await asyncio.gather(*(one(line) for line in lines))
    return not failed.is_set()


async def async_install_updates(call: ServiceCall) -> dict[str, Any]:
    """Run a staged rollout; return (and announce) the summary."""
    hass = call.hass
    plan = _plan(call)
    todo = [line for line in plan if line.result == NOT_STARTED]
    dry_run: bool = call.data["dry_run"]
    stop: bool = call.data["stop_on_failure"]
    if not dry_run and todo:
        canaries, rest = todo[: call.data["canary"]], todo[call.data["canary"] :]
        healthy = await _run(hass, canaries, 1, stop)
        if healthy or not stop:
            await _run(hass, rest, call.data["max_parallel"], stop)
    summary = {
        "dry_run": dry_run,
        "devices": [line.as_dict() for line in plan],
        "totals": {
            result: sum(1 for line in plan if line.result == result)
            for result in RESULTS
        },
    }
    hass.bus.async_fire(EVENT_ROLLOUT_FINISHED, summary)
    return summary


async def async_cancel_queued_installs(call: ServiceCall) -> dict[str, Any]:
    """Cancel the installs waiting in the queue (of the targeted devices, or all)."""
    cancelled = [
        device_id
        for device_id, coordinator in _targeted(call).items()
        if coordinator.async_cancel_queued()
    ]
    return {"cancelled": sorted(cancelled)}
