"""ONVIF settings sensors: one set per video encoder configuration, and imaging.

Created at setup from what the camera reported then (`OnvifFacts` in the state):
its encoder configurations (resolution, codec, fps, bitrate, GOV length) and each
video source's imaging settings (a value the camera does not report gets no sensor).
Encoder sensors are named after the Name of the configuration's first media profile
(``MainStream bitrate``; the Bosch names its profiles ``Profile_L1S1``...), which is
what video software shows, else after the profile's token; the tokens of the profile
and the configuration are attributes. Imaging sensors carry the video source only when
the camera has several; a value whose range (imaging GetOptions) has integral bounds
is shown as a whole number (``128``, not ``128.0``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import EntityCategory, UnitOfDataRate
from homeassistant.helpers.typing import StateType

from ...coordinator import FirmwareCoordinator
from ...entity import FirmwareHubEntity
from .facts import EncoderFacts, OnvifFacts, SourceImaging
from .protocol import ImagingSettings, Range

ENCODERS = "encoders"
IMAGING = "imaging"
#: Imaging values shown as sensors (the settings and the levels of WDR and BLC).
IMAGING_VALUES: Final = tuple(f.name for f in fields(ImagingSettings))
ATTR_PROFILE_TOKEN: Final = "profile_token"  # noqa: S105 - a field name
ATTR_ENCODER_TOKEN: Final = "encoder_configuration_token"  # noqa: S105
ATTR_VIDEO_SOURCE_TOKEN: Final = "video_source_token"  # noqa: S105


def _facts(coordinator: FirmwareCoordinator) -> OnvifFacts:
    facts = coordinator.data.facts
    return facts if isinstance(facts, OnvifFacts) else OnvifFacts()


def _number(value: Any) -> StateType:
    return value if isinstance(value, (int, float)) else None


def _integral(allowed: Range | None) -> bool | None:
    """Return whether a range has integral bounds (None: no range known)."""
    if allowed is None:
        return None
    return float(allowed.minimum).is_integer() and float(allowed.maximum).is_integer()


def _text(value: Any) -> StateType:
    return value if isinstance(value, str) else None


def _choice(options: list[str]) -> Callable[[Any], StateType]:
    def value_fn(value: Any) -> StateType:
        if not isinstance(value, str):
            return None
        choice = value.lower()
        return choice if choice in options else None

    return value_fn


@dataclass(frozen=True, kw_only=True)
class OnvifSensorEntityDescription(SensorEntityDescription):
    """A value of one encoder configuration or video source."""

    field: str
    value_fn: Callable[[Any], StateType] = _number


_CODECS = ["h264", "jpeg", "mpeg4"]
_ON_OFF = ["on", "off"]
_IR_CUT_FILTER = ["on", "off", "auto"]
_EXPOSURE = ["auto", "manual"]

ENCODER_SENSORS: tuple[OnvifSensorEntityDescription, ...] = (
    OnvifSensorEntityDescription(
        key="resolution",
        translation_key="encoder_resolution",
        field="resolution",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=_text,
    ),
    OnvifSensorEntityDescription(
        key="codec",
        translation_key="encoder_codec",
        field="codec",
        device_class=SensorDeviceClass.ENUM,
        options=_CODECS,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=_choice(_CODECS),
    ),
    OnvifSensorEntityDescription(
        key="fps",
        translation_key="encoder_fps",
        field="fps",
        native_unit_of_measurement="fps",
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
    OnvifSensorEntityDescription(
        key="bitrate",
        translation_key="encoder_bitrate",
        field="bitrate_kbps",
        device_class=SensorDeviceClass.DATA_RATE,
        native_unit_of_measurement=UnitOfDataRate.KILOBITS_PER_SECOND,
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
    OnvifSensorEntityDescription(
        key="gov_length",
        translation_key="encoder_gov_length",
        field="gov_length",
        native_unit_of_measurement="frames",
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
)

IMAGING_SENSORS: Mapping[str, OnvifSensorEntityDescription] = {
    description.field: description
    for description in (
        OnvifSensorEntityDescription(
            key="brightness",
            translation_key="brightness",
            field="brightness",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        OnvifSensorEntityDescription(
            key="contrast",
            translation_key="contrast",
            field="contrast",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        OnvifSensorEntityDescription(
            key="saturation",
            translation_key="saturation",
            field="saturation",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        OnvifSensorEntityDescription(
            key="sharpness",
            translation_key="sharpness",
            field="sharpness",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        OnvifSensorEntityDescription(
            key="ir_cut_filter",
            translation_key="ir_cut_filter",
            field="ir_cut_filter",
            device_class=SensorDeviceClass.ENUM,
            options=_IR_CUT_FILTER,
            entity_category=EntityCategory.DIAGNOSTIC,
            value_fn=_choice(_IR_CUT_FILTER),
        ),
        OnvifSensorEntityDescription(
            key="wide_dynamic_range",
            translation_key="wide_dynamic_range",
            field="wide_dynamic_range",
            device_class=SensorDeviceClass.ENUM,
            options=_ON_OFF,
            entity_category=EntityCategory.DIAGNOSTIC,
            value_fn=_choice(_ON_OFF),
        ),
        OnvifSensorEntityDescription(
            key="wide_dynamic_range_level",
            translation_key="wide_dynamic_range_level",
            field="wide_dynamic_range_level",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        OnvifSensorEntityDescription(
            key="backlight_compensation",
            translation_key="backlight_compensation",
            field="backlight_compensation",
            device_class=SensorDeviceClass.ENUM,
            options=_ON_OFF,
            entity_category=EntityCategory.DIAGNOSTIC,
            value_fn=_choice(_ON_OFF),
        ),
        OnvifSensorEntityDescription(
            key="backlight_compensation_level",
            translation_key="backlight_compensation_level",
            field="backlight_compensation_level",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        OnvifSensorEntityDescription(
            key="exposure_mode",
            translation_key="exposure_mode",
            field="exposure_mode",
            device_class=SensorDeviceClass.ENUM,
            options=_EXPOSURE,
            entity_category=EntityCategory.DIAGNOSTIC,
            value_fn=_choice(_EXPOSURE),
        ),
    )
}


def onvif_sensors(coordinator: FirmwareCoordinator) -> list[SensorEntity]:
    """Return the sensors of the encoders and imaging values the camera reported."""
    facts = _facts(coordinator)
    sensors: list[SensorEntity] = []
    for encoder in facts.encoders:
        placeholders = {"encoder": encoder.label or encoder.token}
        sensors.extend(
            OnvifSettingSensor(
                coordinator, description, ENCODERS, encoder.token, placeholders
            )
            for description in ENCODER_SENSORS
        )
    several = len(facts.imaging) > 1
    for item in facts.imaging:
        reported = item.settings.reported()
        for field in IMAGING_VALUES:
            if field not in reported:
                continue
            description = IMAGING_SENSORS[field]
            named: dict[str, str] = {}
            if several:
                description = _of_source(description)
                named["source"] = item.source
            sensors.append(OnvifImagingSensor(coordinator, description, item, named))
    return sensors


def _of_source(
    description: OnvifSensorEntityDescription,
) -> OnvifSensorEntityDescription:
    """Return the same sensor, named after its video source (several sources)."""
    return OnvifSensorEntityDescription(
        key=description.key,
        translation_key=f"source_{description.translation_key}",
        field=description.field,
        device_class=description.device_class,
        options=description.options,
        native_unit_of_measurement=description.native_unit_of_measurement,
        entity_category=description.entity_category,
        value_fn=description.value_fn,
    )


class OnvifSettingSensor(FirmwareHubEntity, SensorEntity):
    """One setting of an encoder configuration or a video source."""

    entity_description: OnvifSensorEntityDescription

    def __init__(
        self,
        coordinator: FirmwareCoordinator,
        description: OnvifSensorEntityDescription,
        group: str,
        token: str,
        placeholders: dict[str, str],
    ) -> None:
        """Initialize for the encoder or video source `token`."""
        super().__init__(coordinator, description)
        self._group = group
        self._token = token
        prefix = "encoder" if group == ENCODERS else "imaging"
        self._attr_unique_id = (
            f"{coordinator.identity.unique_id}_{prefix}_{token}_{description.key}"
        )
        self._attr_translation_placeholders = placeholders

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the tokens the camera knows the encoder or video source by."""
        if self._group != ENCODERS:
            return {ATTR_VIDEO_SOURCE_TOKEN: self._token}
        encoder = _facts(self.coordinator).encoder(self._token)
        return {
            ATTR_PROFILE_TOKEN: encoder.profile_token if encoder else None,
            ATTR_ENCODER_TOKEN: self._token,
        }

    def _values(self) -> EncoderFacts | ImagingSettings | None:
        facts = _facts(self.coordinator)
        if self._group == ENCODERS:
            return facts.encoder(self._token)
        return facts.imaging_of(self._token)

    @property
    def available(self) -> bool:
        """Return whether the camera still reports this encoder or video source."""
        return super().available and self._values() is not None

    @property
    def native_value(self) -> StateType:
        """Return the setting's value."""
        values = self._values()
        value = getattr(values, self.entity_description.field, None)
        return self.entity_description.value_fn(value)


class OnvifImagingSensor(OnvifSettingSensor):
    """An imaging value, shown as a whole number where the camera's range is integral.

    The display precision follows the range: 0 for integral bounds, else 1; without
    a range (the camera has no imaging options) a whole value is still shown whole.
    """

    def __init__(
        self,
        coordinator: FirmwareCoordinator,
        description: OnvifSensorEntityDescription,
        item: SourceImaging,
        placeholders: dict[str, str],
    ) -> None:
        """Initialize for a value of video source `item`, with its range."""
        super().__init__(coordinator, description, IMAGING, item.source, placeholders)
        self._integral = _integral(item.range_of(description.field))
        if self._integral is not None:
            self._attr_suggested_display_precision = 0 if self._integral else 1

    @property
    def native_value(self) -> StateType:
        """Return the value, as an int when it is whole and its range integral."""
        value = super().native_value
        if (
            isinstance(value, float)
            and self._integral is not False
            and value.is_integer()
        ):
            return int(value)
        return value
