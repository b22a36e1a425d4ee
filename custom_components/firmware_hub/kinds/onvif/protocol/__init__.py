"""The ONVIF wire protocol (no Home Assistant imports).

Split by concern: `errors` (typed errors), `models` (typed values), `messages`
(reading answers), `changes` (building Set requests), `client` (`OnvifClient`, the
SOAP calls), `upload` (the firmware upload over HTTP), `discovery` (WS-Discovery).
The names users of the protocol need are re-exported here.
"""

from .client import OnvifClient
from .discovery import DISCOVERY_PORT, DiscoveredCamera, discover_cameras
from .errors import (
    OnvifAuthError,
    OnvifConnectionError,
    OnvifError,
    OnvifFaultError,
    OnvifNotSupportedError,
    OnvifParseError,
    OnvifTimeoutError,
    OnvifUploadError,
)
from .models import (
    DeviceInformation,
    EncoderChanges,
    EncodingOptions,
    FirmwareUpgradeTicket,
    ImagingOptions,
    ImagingSettings,
    MediaProfile,
    NetworkInterface,
    Range,
    Resolution,
    VideoEncoderConfiguration,
    VideoEncoderOptions,
)
from .upload import upload_firmware

__all__ = [
    "DISCOVERY_PORT",
    "DeviceInformation",
    "DiscoveredCamera",
    "EncoderChanges",
    "EncodingOptions",
    "FirmwareUpgradeTicket",
    "ImagingOptions",
    "ImagingSettings",
    "MediaProfile",
    "NetworkInterface",
    "OnvifAuthError",
    "OnvifClient",
    "OnvifConnectionError",
    "OnvifError",
    "OnvifFaultError",
    "OnvifNotSupportedError",
    "OnvifParseError",
    "OnvifTimeoutError",
    "OnvifUploadError",
    "Range",
    "Resolution",
    "VideoEncoderConfiguration",
    "VideoEncoderOptions",
    "discover_cameras",
    "upload_firmware",
]
