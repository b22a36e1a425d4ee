"""Many simulated Hikvision cameras in a process of their own, driven over stdin.

The 200-camera benchmark runs the simulators here rather than in Home Assistant's
process, so that the simulators' CPU time does not show up as Home Assistant's
event-loop stalls. Usage::

    python -m benchmarks.isapi_farm --count 200 [--device DS-2CD2346G2-ISU]

Every camera listens on a free loopback port. Once all of them listen, one JSON line
goes to stdout: ``{"cameras": [{"port", "serial", "username", "password"}, ...]}``.
Then each line read from stdin is a command answered by one JSON line:

- ``stats``: ``{"requests": N, "unauthorized": M}`` summed over the cameras;
- ``reset``: forget the recorded requests, ``{"ok": true}``.

End of input (or ``stop``) stops the cameras and exits, so the farm never outlives
the benchmark that started it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
import json
import sys
from typing import Any

from tests.simulators.isapi import IsapiCameraSimulator, start_many


def _answer(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def _serve(count: int, device: str) -> None:
    cameras: list[IsapiCameraSimulator] = await start_many(
        count, host="127.0.0.1", device=device
    )
    try:
        _answer(
            {
                "cameras": [
                    {
                        "port": sim.port,
                        "serial": sim.serial_number,
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
                _answer(
                    {
                        "requests": sum(sim.request_count for sim in cameras),
                        "unauthorized": sum(sim.unauthorized_count for sim in cameras),
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
    parser = argparse.ArgumentParser(prog="python -m benchmarks.isapi_farm")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--device", default="DS-2CD2346G2-ISU")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.count, args.device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
