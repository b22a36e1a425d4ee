"""The registry of device kinds: the only list of kinds in the integration."""

from __future__ import annotations

from typing import Final

from .const import Kind
from .kind_spec import KindSpec
from .kinds.enos.spec import SPEC as ENOS
from .kinds.hikvision.spec import SPEC as HIKVISION
from .kinds.miling.spec import SPEC as MILING
from .kinds.onvif.spec import SPEC as ONVIF

KINDS: Final[dict[Kind, KindSpec]] = {
    spec.kind: spec for spec in (HIKVISION, ONVIF, ENOS, MILING)
}
