"""The Miling download's adaptive window, seen from the server: requests in flight.

Every assertion is on what the simulator observed (`concurrency`: how many download
requests it was handling when each one arrived, in arrival order), never on timing.
The simulator answers after `DELAY` so that requests sent together are in flight
together; the scripted failures hit request numbers, not moments.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
import os
from pathlib import Path

import aiohttp
import pytest

from custom_components.firmware_hub.core.packages import PackageStore
from custom_components.firmware_hub.core.retry import Backoff
from custom_components.firmware_hub.core.window import AdaptiveWindow, Outcome
from custom_components.firmware_hub.kinds.miling.fetch import (
    DEFAULT_MAX_IN_FLIGHT,
    ChunkDownloader,
    FetchTiming,
)
from custom_components.firmware_hub.kinds.miling.protocol.chunks import ChunkClient
from custom_components.firmware_hub.kinds.miling.protocol.errors import ChunkReplyError

from .simulators.miling import MilingServerSimulator

PACKAGE = os.urandom(300 * 1024 + 77)
NAME = "updateImage"
DELAY = 0.03
"""Seconds the simulator holds every answer: requests sent together overlap."""
FAST = FetchTiming(attempts=10, retry=Backoff(initial=0.001, maximum=0.01))


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No Home Assistant instance: the downloader against the simulator."""


@pytest.fixture
async def sim(socket_enabled: None) -> AsyncGenerator[MilingServerSimulator]:
    """A Miling server serving PACKAGE, every answer after DELAY."""
    server = MilingServerSimulator()
    server.files[NAME] = PACKAGE
    server.delay = DELAY
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def session(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """A plain aiohttp session, as Home Assistant's shared one."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


type Make = Callable[..., ChunkDownloader]


@pytest.fixture
def make(
    sim: MilingServerSimulator, session: aiohttp.ClientSession, tmp_path: Path
) -> Make:
    """Build a downloader for the simulator, storing under tmp_path."""

    def build(**kwargs: int) -> ChunkDownloader:
        chunks = ChunkClient(
            session, host=sim.host, http_port=sim.http_port, device_id="10001"
        )
        return ChunkDownloader(chunks, PackageStore(tmp_path), FAST, **kwargs)

    return build


async def _download(downloader: ChunkDownloader) -> bytes:
    package = await downloader.download(
        NAME, len(PACKAGE), "200300", progress=lambda _done, _total: None
    )
    return package.path.read_bytes()


@pytest.mark.parametrize("maximum", [None, 8])
async def test_grows_from_two_to_the_maximum(
    sim: MilingServerSimulator, make: Make, maximum: int | None
) -> None:
    """A healthy server: two at first, then up to the maximum, never beyond.

    Towards 32 the server answers in 100 ms: the throughput, which the window
    follows, then grows with the window even on a machine busy with other work
    (at 30 ms a loaded machine's CPU, not the round trip, capped it at 31).
    """
    if maximum is None:
        sim.delay = 0.1
    downloader = make() if maximum is None else make(max_in_flight=maximum)
    assert await _download(downloader) == PACKAGE
    expected = DEFAULT_MAX_IN_FLIGHT if maximum is None else maximum
    assert max(sim.concurrency[:2]) <= 2
    assert sim.max_concurrent == expected
    assert sim.requests_served == len(sim.concurrency)  # nothing failed


async def test_status_2_shrinks_the_window(
    sim: MilingServerSimulator, make: Make
) -> None:
    """A run of Status 2 answers takes the window down to one; it grows back."""
    sim.status2_requests = range(40, 88)
    assert await _download(make(max_in_flight=8)) == PACKAGE
    assert max(sim.concurrency[:40]) == 8
    assert max(sim.concurrency[72:88]) == 1
    assert max(sim.concurrency[88:]) >= 4


async def test_errors_halve_the_window(sim: MilingServerSimulator, make: Make) -> None:
    """Cut connections halve the window once for the requests in flight together."""
    sim.drop_requests = range(40, 48)
    assert await _download(make(max_in_flight=8)) == PACKAGE
    assert max(sim.concurrency[:40]) == 8
    assert max(sim.concurrency[48:52]) <= 4
    assert max(sim.concurrency[48:52]) >= 2


async def test_rising_load_condition_shrinks_the_window(
    sim: MilingServerSimulator, make: Make
) -> None:
    """A LoadCondition rising mid-download caps the window at once (8 >> 3 = 1).

    When it falls again the window grows again.
    """
    downloader = make(max_in_flight=8)
    task = asyncio.get_running_loop().create_task(_download(downloader))

    async def served(count: int) -> int:
        async with asyncio.timeout(10):
            while sim.http_requests < count:  # poll the server's count
                await asyncio.sleep(0.005)
        return sim.http_requests

    risen = await served(40)
    downloader.set_load_condition(3)
    downloader.set_load_condition(3)  # the same hint again changes nothing
    fallen = await served(risen + 24)
    downloader.set_load_condition(0)
    assert await task == PACKAGE
    assert max(sim.concurrency[:risen]) == 8
    # Requests already sent may still arrive; none after them joins them.
    assert max(sim.concurrency[risen + 8 : fallen]) == 1
    assert max(sim.concurrency[fallen:]) > 1


async def test_load_condition_before_the_download(
    sim: MilingServerSimulator, make: Make
) -> None:
    """The hint of the offer applies from the first request: 32 >> 4 = 2."""
    downloader = make()
    downloader.set_load_condition(4)
    assert await _download(downloader) == PACKAGE
    assert sim.max_concurrent == 2


def test_maximum_is_bounded(make: Make) -> None:
    """The option's range is 1..64."""
    for wrong in (0, 65):
        with pytest.raises(ValueError, match="max_in_flight"):
            make(max_in_flight=wrong)
    with pytest.raises(ValueError, match="maximum"):
        AdaptiveWindow(0)


async def test_window_slots() -> None:
    """Waiters get slots in order; a cancelled waiter passes a granted slot on."""
    ticks = iter(range(100))
    window = AdaptiveWindow(4, initial=1, clock=lambda: float(next(ticks)))
    first = await window.acquire()
    waiting = [asyncio.ensure_future(window.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    assert window.in_flight == 1
    waiting[0].cancel()  # cancelled while still waiting
    await asyncio.sleep(0)
    window.release(first, Outcome.NEUTRAL)  # granted to waiting[1]
    waiting[1].cancel()  # granted, but cancelled before it ran: passed on
    await asyncio.sleep(0)
    assert waiting[0].cancelled()
    assert waiting[1].cancelled()
    third = await waiting[2]
    assert window.in_flight == 1
    window.release(third, Outcome.OK)
    assert window.in_flight == 0
    assert window.limit == 2  # a round with an answer and no trouble: doubled
    held = [await window.acquire(), await window.acquire()]
    late = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0)
    window.close(ValueError("stop"))
    with pytest.raises(ValueError, match="stop"):
        await late
    with pytest.raises(ValueError, match="stop"):
        await window.acquire()
    for ticket in held:
        window.release(ticket, Outcome.NEUTRAL)
    assert window.in_flight == 0


async def test_large_download_checkpoints(
    sim: MilingServerSimulator, make: Make
) -> None:
    """More than a checkpoint's worth of chunks, answered at once: all exact."""
    big = os.urandom(600 * 2048 + 5)
    sim.files[NAME] = big
    sim.delay = 0
    package = await make().download(
        NAME, len(big), "200300", progress=lambda _done, _total: None
    )
    assert package.path.read_bytes() == big
    assert sim.requests_served == 601


async def test_unusual_but_valid_replies(
    sim: MilingServerSimulator, session: aiohttp.ClientSession
) -> None:
    """Integral floats take the codec's path and are accepted; a list is refused."""
    chunks = ChunkClient(
        session, host=sim.host, http_port=sim.http_port, device_id="10001"
    )
    sim.delay = 0
    sim.reply_override = {"Start": 0.0, "End": 2047.0}
    assert await chunks.fetch_chunk(NAME, 0, 2047) == PACKAGE[:2048]
    sim.reply_override = {}
    sim.raw_reply = b'{"ProtocolCode":1015,"Parameters":[]}'
    with pytest.raises(ChunkReplyError):
        await chunks.fetch_chunk(NAME, 0, 2047)
