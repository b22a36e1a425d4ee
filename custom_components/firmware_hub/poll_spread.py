"""Where in the poll interval each entry polls: a stable, spread offset.

Home Assistant's `DataUpdateCoordinator` schedules the next refresh at
`int(loop.time()) + random fraction (0.05-0.5 s) + interval`: the whole second is
truncated, so entries set up together poll together, within the same half second
of every interval, for as long as Home Assistant runs (1,000 cameras: 1,000
requests and state writes inside 0.45 s of each minute, then nothing). Here each
entry polls at its own phase of the interval, derived from its entry id: stable
across restarts and reloads, and uniformly spread over the whole interval.

Pure functions of (entry id, interval, loop time); no Home Assistant imports.
"""

from __future__ import annotations

import hashlib
import math

_SPAN = float(1 << 64)


def poll_phase(entry_id: str) -> float:
    """Return the entry's fraction of the poll interval, in [0, 1), stable."""
    digest = hashlib.blake2b(entry_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest) / _SPAN


def next_poll(now: float, interval: float, phase: float) -> float:
    """Return the first loop time at the entry's phase at least half an interval ahead.

    In steady state (a poll that fired on its phase and took less than half an
    interval) the next one is exactly one interval later; a refresh at another time
    (setup, a manual refresh) waits between half and one and a half intervals.
    """
    offset = phase * interval
    earliest = now + interval / 2
    periods = math.ceil((earliest - offset) / interval)
    return periods * interval + offset
