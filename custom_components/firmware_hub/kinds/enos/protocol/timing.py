"""EnOS connection timing: timeouts and reconnect pacing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ....core.retry import Backoff


@dataclass(frozen=True, slots=True)
class EnosTiming:
    """Timeouts and reconnect pacing (seconds)."""

    connect_timeout: float = 10.0
    request_timeout: float = 10.0
    keepalive: int = 60
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    #: Up to this fraction of each reconnect delay is taken off at random.
    reconnect_jitter: float = 0.5
    misc_interval: float = 1.0

    @property
    def reconnect_backoff(self) -> Backoff:
        """Return the waits between reconnect attempts."""
        return Backoff(
            initial=self.reconnect_min,
            maximum=self.reconnect_max,
            jitter=self.reconnect_jitter,
        )


DEFAULT_TIMING: Final = EnosTiming()
