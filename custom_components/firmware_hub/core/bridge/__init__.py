"""Bridge kinds (EnOS, Miling): Home Assistant as a device's agent towards a cloud.

- `models`: offers (keyed by version, size, checksums and origin), hand-offs,
  settings, the typed facts a bridge adds to the state.
- `offers`: the books: offers, verified packages, background downloads, pruning.
- `backend`: the install: re-check, hand-off, the device's result.

Offers, verified packages and a pending hand-off survive a Home Assistant restart
through a `Persistence` the Home Assistant layer provides. No Home Assistant imports.
"""

from __future__ import annotations

from .backend import BridgeBackend
from .models import (
    FAILED_OFFER_RETRY,
    BridgeFacts,
    BridgeOffer,
    BridgeSettings,
    HandOff,
    MemoryPersistence,
    Persistence,
)

__all__ = [
    "FAILED_OFFER_RETRY",
    "BridgeBackend",
    "BridgeFacts",
    "BridgeOffer",
    "BridgeSettings",
    "HandOff",
    "MemoryPersistence",
    "Persistence",
]
