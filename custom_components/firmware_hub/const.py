"""Constants of the Firmware Hub integration (the public contract's names)."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
import logging
from typing import Final

DOMAIN: Final = "firmware_hub"
LOGGER = logging.getLogger(__package__)


class Kind(StrEnum):
    """The device families, one per config flow menu option."""

    HIKVISION = "hikvision"
    ONVIF = "onvif"
    ENOS = "enos"
    MILING = "miling"


CONF_KIND: Final = "kind"
CONF_CHECK_INTERVAL: Final = "check_interval_minutes"
CONF_AUTO_DOWNLOAD: Final = "auto_download"

DEFAULT_CHECK_INTERVAL: Final = 360
MIN_CHECK_INTERVAL: Final = 15
MAX_CHECK_INTERVAL: Final = 7 * 24 * 60

DEFAULT_HIKVISION_PORT: Final = 80
DEFAULT_HIKVISION_USERNAME: Final = "admin"

#: How often a polling device is read (availability, installed version). The
#: firmware check itself runs every `check_interval_minutes`.
POLL_INTERVAL: Final = timedelta(seconds=60)

EVENT_UPGRADE_FINISHED: Final = "firmware_hub_upgrade_finished"
EVENT_ROLLOUT_FINISHED: Final = "firmware_hub_rollout_finished"

#: How many installs run at once across all Firmware Hub devices (the install
#: queue): "Update all" must not take the whole site down at the same moment.
CONF_MAX_CONCURRENT_INSTALLS: Final = "max_concurrent_installs"
DEFAULT_MAX_CONCURRENT_INSTALLS: Final = 2
MAX_CONCURRENT_INSTALLS: Final = 32
EVENT_INSTALL_REQUESTED: Final = "firmware_hub_install_requested"

# Bridge kinds (EnOS, Miling).
CONF_HANDOFF_TIMEOUT: Final = "handoff_timeout_minutes"
DEFAULT_HANDOFF_TIMEOUT: Final = 60
DEFAULT_AUTO_DOWNLOAD: Final = True

# Miling.
CONF_WS_PORT: Final = "ws_port"
CONF_HTTP_PORT: Final = "http_port"
CONF_DEVICE_ID: Final = "device_id"
CONF_DEVICE_TYPE: Final = "device_type"
CONF_PROG_VERSION: Final = "prog_version"
CONF_MAX_PACKAGE_MB: Final = "max_package_mb"
DEFAULT_MILING_WS_PORT: Final = 6007
DEFAULT_MILING_HTTP_PORT: Final = 6008
DEFAULT_MAX_PACKAGE_MB: Final = 64

# EnOS.
CONF_TLS: Final = "tls"
CONF_PRODUCT_KEY: Final = "product_key"
CONF_DEVICE_KEY: Final = "device_key"
CONF_DEVICE_SECRET: Final = "device_secret"  # noqa: S105 - a config key, not a secret
CONF_SIGN_METHOD: Final = "sign_method"
CONF_FIRMWARE_VERSION: Final = "firmware_version"
CONF_FILE_BASE_URL: Final = "file_base_url"
CONF_CA_FILE: Final = "ca_file"
CONF_HTTP_BROKER_URL: Final = "http_broker_url"
CONF_ALLOWED_DOWNLOAD_HOSTS: Final = "allowed_download_hosts"
DEFAULT_ENOS_PORT: Final = 18883
SIGN_METHODS: Final = ("sha256", "sha1", "md5")

# ONVIF.
DEFAULT_ONVIF_PORT: Final = 80
