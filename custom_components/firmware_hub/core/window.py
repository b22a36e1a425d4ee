"""How many requests to keep in flight: an adaptive window (no Home Assistant imports).

A download of many small ranges is decided by how many requests are in flight: one
at a time, every round trip is idle time; too many, and a busy server answers
slower or refuses. `AdaptiveWindow` is a counting semaphore whose limit follows what
the server's answers say. Time is cut in rounds: a round ends when the first request
started in it completes (about one round trip). Each round's throughput is the
answers it received over its duration.

- Slow start: from `initial`, the window doubles every round while the round's
  throughput grows with it (by a quarter at least); after two rounds in a row
  without that growth it keeps the window.
- Probing: the throughput is measured over `PROBE_ROUNDS` rounds at the window, then
  over as many at a window a quarter larger; the larger window stays when it brought
  at least half its proportional gain, else the window goes back. So it grows while
  throughput grows, and settles where more in flight only adds latency.
- Status 2 (`Outcome.BUSY`): a round whose share of busy answers exceeds what a
  healthy server shows (`BUSY_TOLERANCE`) shrinks the window by that share (at
  least one); a rare busy answer is retried without shrinking.
- An error or a timeout (`Outcome.FAILED`) halves the window at once, once per round
  trip (requests in flight together fail together and count once).
- The load hint (`set_load`, Miling's LoadCondition) caps the window at `maximum`
  halved per level; a rising hint shrinks the window at once, a falling one starts
  a slow start again.

The window never exceeds `maximum` (nor the cap) nor drops below one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from enum import Enum, auto
import time
from typing import Final

#: Share of busy answers a healthy server may show without a shrink.
BUSY_TOLERANCE: Final = 0.1
#: Fewest answers the busy share is taken over (and at least one window's worth).
BUSY_SAMPLE: Final = 8
#: Growth of a round's throughput that keeps a slow start going (window doubled).
SLOW_START_GAIN: Final = 1.25
#: Rounds in a row without that growth that end a slow start (one may be noise).
SLOW_START_STALLS: Final = 2
#: Rounds measured at a window before a probe, and at the probed window.
PROBE_ROUNDS: Final = 4
#: Load levels beyond this all mean "one at a time".
_MAX_LEVEL: Final = 16

type Ticket = tuple[int, float]
"""A granted slot: (sequence number, start time)."""


class Outcome(Enum):
    """What a request's answer says about the server."""

    OK = auto()
    """Answered as asked."""
    BUSY = auto()
    """Refused for now (Miling Status 2): counts toward the busy share."""
    FAILED = auto()
    """An error or a timeout: half the window (once per round trip)."""
    NEUTRAL = auto()
    """Nothing learned (cancelled): the slot is only given back."""


class AdaptiveWindow:
    """A semaphore whose limit follows the server's answers (see the module doc)."""

    def __init__(
        self,
        maximum: int,
        *,
        initial: int = 2,
        load: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Allow at most `maximum` in flight; start with `initial` (or fewer)."""
        if maximum < 1:
            raise ValueError("maximum must be at least 1")
        self.maximum = maximum
        self._clock = clock
        self._limit = max(1, min(initial, maximum))
        self._in_flight = 0
        self._closed: BaseException | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._slow_start = True
        self._threshold = maximum  # slow start ends here (half the window at trouble)
        self._troubled = False  # shrunk, and no clean sample of answers since
        self._recovering = False  # slow start back to the threshold after trouble
        self._started = 0  # sequence number of the next request
        self._cut_mark = 0  # failures of requests started before this cut nothing
        self._round_mark = 0  # the round ends when a request >= this completes
        self._round_began = clock()
        self._round_ok = 0
        self._round_busy = 0
        self._round_failed = False
        self._sample_ok = 0  # answers the busy share is taken over
        self._sample_busy = 0
        self._last_rate = 0.0  # the throughput before the last doubling
        self._stalls = 0  # slow start rounds in a row without growth
        # Probing: the rounds measured so far at this window, their answers and time.
        self._epoch_rounds = 0
        self._epoch_ok = 0
        self._epoch_time = 0.0
        self._probe_from: tuple[int, float] | None = None  # (window, its throughput)
        #: The highest limit reached (diagnostics).
        self._load = max(0, min(load, _MAX_LEVEL))
        self._cap = max(1, maximum >> self._load)
        self._limit = min(self._limit, self._cap)
        self.peak = self._limit

    @property
    def limit(self) -> int:
        """Return how many requests may be in flight now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Return how many slots are taken."""
        return self._in_flight

    def set_load(self, level: int) -> None:
        """Take the server's load hint (0 idle): the cap is `maximum` >> level."""
        level = max(0, min(level, _MAX_LEVEL))
        rise = level - self._load
        self._load = level
        self._cap = max(1, self.maximum >> level)
        if rise > 0:
            self._shrink(self._limit >> rise)
        elif rise < 0:
            self._slow_start = True  # room again: find it fast
            self._recovering = False
            self._threshold = self.maximum
            self._last_rate = 0.0
            self._probe_from = None
            self._reset_epoch()
            self._wake()

    def close(self, error: BaseException) -> None:
        """Stop: every waiting and later `acquire` raises `error`."""
        self._closed = error
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    async def acquire(self) -> Ticket:
        """Wait for a slot; return the ticket to hand back to `release`."""
        if self._closed is not None:
            raise self._closed
        if self._waiters or self._in_flight >= self._limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # the slot is counted for us when we are woken
            except asyncio.CancelledError:
                granted = (
                    waiter.done()
                    and not waiter.cancelled()
                    and waiter.exception() is None
                )
                if granted:
                    self._in_flight -= 1  # granted, but we no longer want it
                    self._wake()
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        else:
            self._in_flight += 1
        sequence = self._started
        self._started += 1
        return sequence, self._clock()

    def release(self, ticket: Ticket, outcome: Outcome) -> None:
        """Give a slot back and learn from its answer."""
        sequence, _started = ticket
        self._in_flight -= 1
        if outcome is Outcome.OK:
            self._round_ok += 1
        elif outcome is Outcome.BUSY:
            self._round_busy += 1
        elif outcome is Outcome.FAILED:
            self._round_failed = True
            if sequence >= self._cut_mark:
                self._cut_mark = self._started
                self._shrink(self._limit // 2)
        if sequence >= self._round_mark:
            self._end_round()
        self._wake()

    def _shrink(self, value: int) -> None:
        """Trouble: a smaller window; then slow start back to half the one before."""
        if not self._troubled:  # the first shrink of an episode sets the target
            self._troubled = True
            self._threshold = max(1, self._limit // 2)
        self._probe_from = None
        self._reset_epoch()
        self._set_limit(value)
        self._slow_start = self._recovering = self._limit < self._threshold
        self._last_rate = 0.0

    def _set_limit(self, value: int) -> None:
        self._limit = max(1, min(value, self._cap))
        self.peak = max(self.peak, self._limit)

    def _reset_epoch(self) -> None:
        self._epoch_rounds = self._epoch_ok = 0
        self._epoch_time = 0.0

    def _end_round(self) -> None:
        now = self._clock()
        ok, busy, elapsed = self._round_ok, self._round_busy, now - self._round_began
        failed = self._round_failed
        self._round_mark = self._started
        self._round_began = now
        self._round_ok = self._round_busy = 0
        self._round_failed = False
        if failed or ok + busy == 0:
            return
        self._sample_ok += ok
        self._sample_busy += busy
        answers = self._sample_ok + self._sample_busy
        if answers >= max(BUSY_SAMPLE, self._limit):
            share = self._sample_busy / answers
            self._sample_ok = self._sample_busy = 0
            if share > BUSY_TOLERANCE:
                self._shrink(min(self._limit - 1, int(self._limit * (1.0 - share))))
                return
            self._troubled = False
        if elapsed <= 0 or busy:
            return
        if self._slow_start:
            # Back to half the window before trouble: that much was fine. Beyond
            # (or at the start), only while the throughput keeps up.
            rate = ok / elapsed
            grew = self._recovering or rate >= self._last_rate * SLOW_START_GAIN
            self._stalls = 0 if grew else self._stalls + 1
            if grew:
                self._set_limit(min(self._limit * 2, self._threshold))
                self._last_rate = rate
            if self._stalls >= SLOW_START_STALLS or self._limit >= min(
                self._threshold, self._cap
            ):
                self._slow_start = self._recovering = False
            return
        self._probe(ok, elapsed)

    def _probe(self, ok: int, elapsed: float) -> None:
        """Measure the window; try a larger one; keep it if throughput grew."""
        self._epoch_rounds += 1
        self._epoch_ok += ok
        self._epoch_time += elapsed
        if self._epoch_rounds < PROBE_ROUNDS:
            return
        rate = self._epoch_ok / self._epoch_time
        self._reset_epoch()
        if self._probe_from is not None:
            window, before = self._probe_from
            self._probe_from = None
            gain = (self._limit - window) / window
            if rate < before * (1.0 + gain / 2):
                self._set_limit(window)  # it did not pay: back to the smaller one
                return
        if self._limit < self._cap:
            self._probe_from = (self._limit, rate)
            self._set_limit(self._limit + max(1, self._limit // 4))

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)
