"""Many simulated ONVIF cameras in a process of their own, driven over stdin.

The many-cameras ONVIF benchmark runs the simulators here rather than in Home
Assistant's process, so that their CPU time (SOAP parsing, digest checks) does not
show up as Home Assistant's. Usage::

    python -m benchmarks.onvif_farm --count 50

Every camera (the Bosch FLEXIDOME capture, each with its own MAC address) listens on
a free loopback port. Once all of them listen, one JSON line goes to stdout:
``{"cameras": [{"port", "mac", "username", "password"}, ...]}``. Then each line read
from stdin is a command answered by one JSON line:

- ``stats``: ``{"calls": N, "faults": M, "operations": {name: count}}`` summed over
  the cameras;
- ``reset``: forget the recorded calls, ``{"ok": true}``.

End of input (or ``stop``) stops the cameras and exits, so the farm never outlives
the benchmark that started it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Sequence
import json
import sys
from typing import Any

from tests.simulators.onvif import OnvifCameraSimulator


def _answer(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def mac_of(number: int) -> str:
    """Return the MAC address of camera ``number`` (Bosch's OUI)."""
    return f"00:07:5f:{(number >> 16) & 255:02x}:{(number >> 8) & 255:02x}:{number & 255:02x}"


async def _serve(count: int) -> None:
    cameras = [OnvifCameraSimulator(mac_address=mac_of(n)) for n in range(count)]
    await asyncio.gather(*(sim.start() for sim in cameras))
    try:
        _answer(
            {
                "cameras": [
                    {
                        "port": sim.port,
                        "mac": sim.mac_address,
                        "username": sim.username,
                        "password": sim.password,
                    }
                    for sim in cameras
                ]
            }
        )
        while True:
            command = (await asyncio.to_thread(sys.stdin.readline)).strip()
            if command in {"", "stop"}:
                return
            if command == "stats":
                operations: Counter[str] = Counter()
                for sim in cameras:
                    operations.update(sim.calls)
                _answer(
                    {
                        "calls": sum(operations.values()),
                        "faults": sum(
                            1
                            for sim in cameras
                            for call in sim.soap_calls
                            if call.fault
                        ),
                        "operations": dict(operations),
                    }
                )
            elif command == "reset":
                for sim in cameras:
                    sim.reset_stats()
                _answer({"ok": True})
            else:
                _answer({"error": f"unknown command {command!r}"})
    finally:
        await asyncio.gather(*(sim.stop() for sim in cameras))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the farm until stdin ends."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onvif_farm")
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
