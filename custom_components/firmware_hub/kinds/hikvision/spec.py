"""The Hikvision kind, as the Home Assistant layer sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_SSL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    EntityCategory,
)
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import probatio as vol

from ...const import DEFAULT_HIKVISION_PORT, DEFAULT_HIKVISION_USERNAME, Kind
from ...core.backend import FirmwareBackend
from ...core.models import FirmwareState, Phase
from ...forms import (
    CREDENTIALS_SCHEMA,
    PASSWORD,
    PORT,
    check_interval_field,
    check_interval_option,
)
from ...kind_spec import BackendContext, KindBinarySensorEntityDescription, KindSpec
from .backend import HikvisionBackend, HikvisionFacts
from .protocol.client import IsapiClient

SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_HIKVISION_PORT): PORT,
        vol.Required(CONF_SSL, default=False): bool,
        vol.Required(CONF_VERIFY_SSL, default=False): bool,
        vol.Required(CONF_USERNAME, default=DEFAULT_HIKVISION_USERNAME): str,
        vol.Required(CONF_PASSWORD): PASSWORD,
    }
)


async def _create_backend(context: BackendContext) -> FirmwareBackend:
    data = context.data
    session = async_get_clientsession(context.hass, verify_ssl=data[CONF_VERIFY_SSL])
    client = IsapiClient(
        session,
        host=data[CONF_HOST],
        port=data[CONF_PORT],
        ssl=data[CONF_SSL],
        username=data[CONF_USERNAME],
        password=data[CONF_PASSWORD],
    )
    return HikvisionBackend(client, share=context.share_file)


def _online_upgrade(state: FirmwareState) -> bool:
    return isinstance(state.facts, HikvisionFacts) and state.facts.online_upgrade


def _release_summary(state: FirmwareState) -> str | None:
    """Say how the camera's own download goes (speed, time left, paused)."""
    facts = state.facts
    if not isinstance(facts, HikvisionFacts) or state.phase is not Phase.DOWNLOADING:
        return None
    if facts.download_paused:
        return "The camera paused its download."
    if facts.download_speed is None:
        return None
    left = (
        f", about {facts.remaining_seconds} s left"
        if facts.remaining_seconds is not None
        else ""
    )
    return f"The camera downloads at {facts.download_speed:g} MB/s{left}."


def _username(data: Mapping[str, Any]) -> dict[str, Any]:
    return {CONF_USERNAME: data[CONF_USERNAME]}


SPEC = KindSpec(
    kind=Kind.HIKVISION,
    schema=SCHEMA,
    reconfigure_schema=SCHEMA.extend({vol.Optional(CONF_PASSWORD): PASSWORD}),
    credentials_schema=CREDENTIALS_SCHEMA,
    credentials_suggested=_username,
    update_keys=(CONF_HOST, CONF_PORT, CONF_SSL, CONF_VERIFY_SSL),
    secrets=frozenset({CONF_PASSWORD}),
    # A recorder's channel cameras: their addresses.
    redact=frozenset({"ip_address", "ipAddress"}),
    create_backend=_create_backend,
    release_summary=_release_summary,
    options_fields=check_interval_field,
    options_from_input=check_interval_option,
    binary_sensors=(
        KindBinarySensorEntityDescription(
            key="upgrade_server",
            translation_key="upgrade_server",
            device_class=BinarySensorDeviceClass.CONNECTIVITY,
            entity_category=EntityCategory.DIAGNOSTIC,
            value_fn=lambda state: state.connected,
            exists_fn=_online_upgrade,
        ),
    ),
)
