"""Retry delays shared by every kind: exponential, capped, with jitter.

One implementation for the reconnect loops (EnOS MQTT, Miling WebSocket), the
package download retries and the bridges' retry of a failed offer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import random

_RANDOM = random.Random()  # noqa: S311 - jitter, not security


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between attempts: `initial` doubling (by `factor`) up to `maximum`.

    `jitter` takes up to that share off each wait, so that devices that lost the
    same server do not come back in step; `first` (when set) makes the first wait
    random in [0, first), spreading reconnects after a server restart.
    """

    initial: float = 1.0
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.0
    first: float | None = None

    def delay(self, attempt: int) -> float:
        """Return the wait before attempt `attempt` (1-based: the first retry)."""
        if attempt <= 1 and self.first is not None:
            return _RANDOM.random() * self.first
        exponent = max(0, attempt - (2 if self.first is not None else 1))
        base = self.maximum
        if exponent < 64:  # noqa: PLR2004 - beyond, the cap decides anyway
            base = min(self.maximum, self.initial * self.factor**exponent)
        return base * (1.0 - self.jitter * _RANDOM.random())

    def delays(self) -> Iterator[float]:
        """Yield the waits before each successive attempt, forever."""
        attempt = 1
        while True:
            yield self.delay(attempt)
            attempt += 1
