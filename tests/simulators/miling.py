"""Loopback Miling upgrade server (seed 003), for tests and manual runs.

Two aiohttp servers on loopback ports, as the real cloud has:

- ``ws://host:ws_port/DevRegister``: records every 1010 registration and answers
  1011 (Status ``register_status``); ``push_upgrade()`` sends a 1012 and awaits the
  device's 1013.
- ``POST http://host:http_port/download``: answers 1014 with 1015 chunks of the
  pushed files, with an MD5 ``Check`` (upper case, like the seed's example).

Failure modes are plain attributes a test sets at any time (see ``__init__``), the
random ones drawn from a ``random.Random(seed)``. The simulator parses messages
itself (it does not import the protocol layer it is testing) and never imports
Home Assistant.

In tests::

    sim = MilingServerSimulator()
    await sim.start()
    ...  # connect to sim.ws_url / sim.http_port
    await sim.stop()

From a shell (runs until Ctrl-C)::

    python -m tests.simulators.miling --ws-port 16007 --http-port 16008

and push an upgrade to a registered device with
``curl -d '{"DeviceId":"10001","Size":100000}' http://127.0.0.1:16008/sim/push``
(``GET /sim/state`` shows the counters).
"""

import argparse
import asyncio
import base64
from collections import Counter
import contextlib
from dataclasses import dataclass
from enum import StrEnum
import hashlib
import ipaddress
import json
import logging
import random
import signal
from typing import TYPE_CHECKING, Any, Final
import zlib

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from collections.abc import Container, Sequence

__all__ = [
    "ChecksumOf",
    "CorruptMd5",
    "MilingServerSimulator",
    "Registration",
    "UpgradeAnswer",
    "main",
]

_LOGGER = logging.getLogger(__name__)

MAX_CHUNK: Final = 2048
_WS_PATH: Final = "/DevRegister"
_DOWNLOAD_PATH: Final = "/download"


class CorruptMd5(StrEnum):
    """When the simulator sends a wrong ``Check``."""

    NEVER = "never"
    ONCE = "once"
    """The first answer for each range is corrupt, later ones are right."""
    ALWAYS = "always"


class ChecksumOf(StrEnum):
    """Which bytes ``Check`` covers (the seed does not say)."""

    RAW = "raw"
    """MD5 of the chunk's bytes."""
    BASE64 = "base64"
    """MD5 of the base64 text sent in ``FileChunk``."""


@dataclass(frozen=True, slots=True)
class Registration:
    """One 1010 the server received."""

    device_id: str
    device_type: str
    prog_version: str


@dataclass(frozen=True, slots=True)
class UpgradeAnswer:
    """One 1013 the server received."""

    device_id: str
    status: int


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _dumps(code: int, params: dict[str, Any]) -> str:
    return json.dumps({"ProtocolCode": code, "Parameters": params})


class MilingServerSimulator:
    """A Miling upgrade server on two loopback ports, driven by tests.

    Failure modes (set at any time):

    - ``register_status``: 1011 Status (non-zero refuses); ``reply_to_register``
      False leaves 1010 unanswered; ``register_reply_device_id`` answers with
      another DeviceId (as in the seed's example); ``ws_preamble``: frames sent
      before every 1011 (malformed JSON, unknown codes, ...).
    - ``corrupt_md5`` (``CorruptMd5``), ``checksum_of`` (``ChecksumOf``),
      ``lower_case_check``.
    - ``file_missing``: Status 1 for every request; ``status2_fraction``: Status 2
      on that fraction of requests; ``drop_fraction``: that fraction of responses
      is cut half-way and the connection closed; ``status2_requests`` /
      ``drop_requests``: the download requests with these numbers (0-based, in
      arrival order) get Status 2 / are cut; ``delay``: seconds before each HTTP
      answer.
    - ``echo_actual_end``: a range past the end of the file is answered with the
      bytes there are and End = the last byte sent (default: End echoed).
    - ``reply_override``: fields merged into every 1015 ``Parameters`` (type
      mismatches, wrong echoes); ``raw_reply``: bytes sent instead of the 1015;
      ``http_status``: HTTP status of every download answer; ``chunked_reply``:
      answers without Content-Length (chunked transfer encoding);
      ``gzip_padding``: every 1015 is padded with that many spaces (still valid
      JSON) and sent gzip-compressed (``Content-Encoding: gzip``) whatever the
      request accepts: a decompression bomb (61 MiB of padding is a ~61 KB body).

    Observations: ``registrations``, ``upgrade_answers``, ``requests_served``
    (Status 0 answers sent whole), ``http_requests``, ``range_requests`` (a
    ``Counter`` of (Start, End)), ``ws_connections``, ``ws_frames`` (every frame
    received), ``accept_encodings`` (the Accept-Encoding of every download
    request), ``bodies_sent`` (the length on the wire of every 1015 body),
    ``max_concurrent`` (the most download requests handled at once),
    ``concurrency`` (for each download request, in arrival order, how many were
    being handled when it arrived, itself included).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        ws_port: int = 0,
        http_port: int = 0,
        seed: int = 0,
    ) -> None:
        """Set up the (not yet started) server; port 0 picks free ports."""
        if not _is_loopback(host):
            raise ValueError(f"the simulator listens on loopback only, not {host!r}")
        self.host = host
        self.ws_port = ws_port
        self.http_port = http_port
        self.rng = random.Random(seed)

        self.register_status = 0
        self.reply_to_register = True
        self.register_reply_device_id: str | None = None
        self.ws_preamble: list[str | bytes] = []
        self.corrupt_md5 = CorruptMd5.NEVER
        self.checksum_of = ChecksumOf.RAW
        self.lower_case_check = False
        self.file_missing = False
        self.status2_fraction = 0.0
        self.drop_fraction = 0.0
        self.status2_requests: Container[int] = frozenset()
        self.drop_requests: Container[int] = frozenset()
        self.delay = 0.0
        self.echo_actual_end = False
        self.reply_override: dict[str, Any] = {}
        self.raw_reply: bytes | None = None
        self.http_status = 200
        self.chunked_reply = False
        self.gzip_padding: int | None = None

        self.files: dict[str, bytes] = {}
        self.registrations: list[Registration] = []
        self.upgrade_answers: list[UpgradeAnswer] = []
        self.requests_served = 0
        self.http_requests = 0
        self.range_requests: Counter[tuple[int, int]] = Counter()
        self.ws_connections = 0
        self.ws_frames: list[str | bytes] = []
        self.accept_encodings: list[str | None] = []
        self.bodies_sent: list[int] = []
        self.max_concurrent = 0
        self.concurrency: list[int] = []
        self._active = 0

        self._corrupted: set[tuple[str, int, int]] = set()
        self._bomb: tuple[int, bytes, Any] | None = None
        self._sockets: dict[web.WebSocketResponse, str | None] = {}
        self._requests: dict[web.WebSocketResponse, web.Request] = {}
        self._changed = asyncio.Condition()
        self._ws_runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._http_runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def ws_url(self) -> str:
        """Return ``ws://host:ws_port/DevRegister``."""
        return f"ws://{self.host}:{self.ws_port}{_WS_PATH}"

    @property
    def download_url(self) -> str:
        """Return ``http://host:http_port/download``."""
        return f"http://{self.host}:{self.http_port}{_DOWNLOAD_PATH}"

    @property
    def connected_devices(self) -> list[str]:
        """Return the DeviceIds registered on currently open sockets."""
        return [device for device in self._sockets.values() if device is not None]

    async def start(self) -> None:
        """Listen on both ports (the chosen ports are stored when 0 was given)."""
        if self._ws_runner is not None:
            raise RuntimeError("simulator already started")
        ws_app = web.Application()
        ws_app.router.add_get(_WS_PATH, self._handle_ws)
        http_app = web.Application()
        http_app.router.add_post(_DOWNLOAD_PATH, self._handle_download)
        http_app.router.add_post("/sim/push", self._handle_push)
        http_app.router.add_get("/sim/state", self._handle_state)
        try:
            self._ws_runner, self.ws_port = await self._listen(ws_app, self.ws_port)
            self._http_runner, self.http_port = await self._listen(
                http_app, self.http_port
            )
        except BaseException:
            await self.stop()
            raise

    async def _listen(
        self, app: web.Application, port: int
    ) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner, site.port

    async def stop(self) -> None:
        """Stop listening, then close every socket.

        The listeners close first: a device told "going away" (1001) reconnects at
        once, and an accept racing the listener's close trips asyncio's
        ``Server._attach`` assertion. Tests still stop their clients before this.
        """
        for listening in (self._ws_runner, self._http_runner):
            if listening is not None:
                for site in list(listening.sites):
                    await site.stop()
        await self.close_sockets(code=1001)
        handlers = list(self._handlers)
        for task in handlers:  # slow (delayed) answers in flight
            task.cancel()
        if handlers:
            await asyncio.wait(handlers)
        for attr in ("_ws_runner", "_http_runner"):
            runner: web.AppRunner | None = getattr(self, attr)
            setattr(self, attr, None)
            if runner is not None:
                if runner.server is not None:
                    for connection in runner.server.connections:
                        connection.force_close()
                await runner.cleanup()

    async def close_sockets(self, code: int = 1000) -> None:
        """Close every open WebSocket from the server side."""
        sockets = list(self._sockets)
        await asyncio.gather(
            *(ws.close(code=code) for ws in sockets), return_exceptions=True
        )

    def drop_sockets(self) -> None:
        """Cut every open WebSocket's TCP connection without a close frame."""
        for ws in list(self._sockets):
            request = self._requests.get(ws)
            if request is not None and request.transport is not None:
                request.transport.abort()

    # ---------------------------------------------------------------- helpers

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` is true (checked after every event)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_registrations(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until ``count`` registrations in total were received."""
        await self.wait_for(lambda: len(self.registrations) >= count, timeout)

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame, as is, on every open socket."""
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)

    async def push_upgrade(
        self,
        device_id: str,
        file_name: str,
        data: bytes,
        prog_version: str,
        device_type: str,
        load_condition: int = 0,
        *,
        file_size: int | None = None,
        wait_reply: bool = True,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> UpgradeAnswer | None:
        """Serve ``data`` as ``file_name``, send 1012 to ``device_id``'s sockets.

        ``file_size`` overrides the FileSize announced (oversize tests). Returns
        the device's 1013 (None when ``wait_reply`` is False).
        """
        sockets = [ws for ws, dev in self._sockets.items() if dev == device_id]
        if not sockets:
            raise RuntimeError(f"device {device_id!r} is not connected")
        self.files[file_name] = data
        answered = len([a for a in self.upgrade_answers if a.device_id == device_id])
        frame = _dumps(
            1012,
            {
                "FileName": file_name,
                "FileSize": len(data) if file_size is None else file_size,
                "DeviceId": device_id,
                "DeviceType": device_type,
                "ProgVersion": prog_version,
                "LoadCondition": load_condition,
            },
        )
        for ws in sockets:
            await ws.send_str(frame)
        if not wait_reply:
            return None

        def replied() -> bool:
            return (
                len([a for a in self.upgrade_answers if a.device_id == device_id])
                > answered
            )

        await self.wait_for(replied, timeout)
        return [a for a in self.upgrade_answers if a.device_id == device_id][-1]

    def reset_stats(self) -> None:
        """Forget the HTTP counters (registrations and answers are kept)."""
        self.requests_served = 0
        self.http_requests = 0
        self.range_requests.clear()
        self.concurrency.clear()

    # ---------------------------------------------------------------- WebSocket

    async def _handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        self._sockets[ws] = None
        self._requests[ws] = request
        self.ws_connections += 1
        await self._notify()
        try:
            async for msg in ws:
                if msg.type in {WSMsgType.TEXT, WSMsgType.BINARY}:
                    self.ws_frames.append(msg.data)
                    await self._on_frame(ws, msg.data)
        finally:
            self._sockets.pop(ws, None)
            self._requests.pop(ws, None)
            await self._notify()
        return ws

    async def _on_frame(self, ws: web.WebSocketResponse, data: str | bytes) -> None:
        try:
            doc = json.loads(data)
            code = doc["ProtocolCode"]
            params = doc["Parameters"]
            device_id = params["DeviceId"]
        except ValueError, TypeError, KeyError:
            _LOGGER.debug("ignoring frame %r", data)
            return
        if code == 1010:
            self.registrations.append(
                Registration(
                    device_id, params.get("DeviceType"), params.get("ProgVersion")
                )
            )
            if self.register_status == 0:
                self._sockets[ws] = device_id
            await self._notify()
            if not self.reply_to_register:
                return
            for frame in self.ws_preamble:
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
            reply_id = self.register_reply_device_id or device_id
            await ws.send_str(
                _dumps(1011, {"DeviceId": reply_id, "Status": self.register_status})
            )
        elif code == 1013:
            self.upgrade_answers.append(UpgradeAnswer(device_id, params.get("Status")))
            await self._notify()

    # ---------------------------------------------------------------- download

    def _answer(self, params: dict[str, Any]) -> web.Response:
        params.update(self.reply_override)
        body = (
            self.raw_reply
            if self.raw_reply is not None
            else _dumps(1015, params).encode()
        )
        headers = {}
        if self.gzip_padding is not None:
            body = self._gzip_bomb(self.gzip_padding, body)
            headers["Content-Encoding"] = "gzip"
        self.bodies_sent.append(len(body))
        return web.Response(
            body=body,
            status=self.http_status,
            content_type="application/json",
            headers=headers,
        )

    def _gzip_bomb(self, padding: int, body: bytes) -> bytes:
        """Return ``padding`` spaces then ``body``, gzip-compressed.

        The padding is compressed once; each answer continues a copy of that
        compressor, so a 61 MiB bomb costs milliseconds per request.
        """
        if self._bomb is None or self._bomb[0] != padding:
            compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
            head = b"".join(
                compressor.compress(b" " * min(1 << 20, padding - offset))
                for offset in range(0, padding, 1 << 20)
            )
            self._bomb = (padding, head, compressor)
        _size, head, compressor = self._bomb
        tail = compressor.copy()
        return head + tail.compress(body) + tail.flush()

    async def _send_chunked(
        self, request: web.Request, answer: web.Response
    ) -> web.StreamResponse:
        body = answer.body
        assert isinstance(body, bytes)
        response = web.StreamResponse(
            status=answer.status, headers={"Content-Type": "application/json"}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        for offset in range(0, len(body), 1024):
            await response.write(body[offset : offset + 1024])
        await response.write_eof()
        return response

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._active += 1
        self.max_concurrent = max(self.max_concurrent, self._active)
        self.concurrency.append(self._active)
        try:
            answer = await self._download(request)
            if self.chunked_reply and isinstance(answer, web.Response):
                return await self._send_chunked(request, answer)
            return answer
        finally:
            self._active -= 1
            self._handlers.discard(task)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        number = self.http_requests
        self.http_requests += 1
        self.accept_encodings.append(request.headers.get("Accept-Encoding"))
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            doc = json.loads(await request.read())
            params = doc["Parameters"]
            name, start, end = params["FileName"], params["Start"], params["End"]
            valid = (
                doc["ProtocolCode"] == 1014
                and isinstance(name, str)
                and isinstance(start, int)
                and isinstance(end, int)
                and 0 <= start <= end
            )
        except ValueError, TypeError, KeyError:
            valid = False
        if not valid:
            return self._answer({"Status": 2})
        self.range_requests[start, end] += 1
        echo = {"FileName": name, "Start": start, "End": end}
        data = self.files.get(name)
        if self.file_missing or data is None:
            return self._answer({"Status": 1, **echo})
        if (
            end - start + 1 > MAX_CHUNK
            or start >= len(data)
            or (end >= len(data) and not self.echo_actual_end)
            or self.rng.random() < self.status2_fraction
            or number in self.status2_requests
        ):
            return self._answer({"Status": 2, **echo})
        chunk = data[start : end + 1]
        text = base64.b64encode(chunk).decode()
        if self.echo_actual_end:
            echo["End"] = start + len(chunk) - 1
        covered = chunk if self.checksum_of is ChecksumOf.RAW else text.encode()
        check = hashlib.md5(covered).hexdigest()
        key = (name, start, end)
        if self.corrupt_md5 is CorruptMd5.ALWAYS or (
            self.corrupt_md5 is CorruptMd5.ONCE and key not in self._corrupted
        ):
            self._corrupted.add(key)
            check = hashlib.md5(covered + b"corrupt").hexdigest()
        check = check.lower() if self.lower_case_check else check.upper()
        answer = self._answer({"Status": 0, **echo, "Check": check, "FileChunk": text})
        if self.rng.random() < self.drop_fraction or number in self.drop_requests:
            return await self._drop(request, answer)
        self.requests_served += 1
        return answer

    @staticmethod
    async def _drop(request: web.Request, answer: web.Response) -> web.StreamResponse:
        """Send the headers and half the body, then cut the connection."""
        body = answer.body
        assert isinstance(body, bytes)
        response = web.StreamResponse(
            status=answer.status, headers={"Content-Type": "application/json"}
        )
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        assert request.transport is not None
        request.transport.abort()
        return response

    # ---------------------------------------------------------------- control

    async def _handle_push(self, request: web.Request) -> web.Response:
        """``POST /sim/push``: push a generated package to a registered device."""
        try:
            params = json.loads(await request.read())
            device_id = str(params["DeviceId"])
            size = int(params.get("Size", 65536))
        except ValueError, TypeError, KeyError:
            return web.json_response({"error": "need DeviceId (and Size)"}, status=400)
        registered = [r for r in self.registrations if r.device_id == device_id]
        device_type = params.get("DeviceType") or (
            registered[-1].device_type if registered else "TS"
        )
        data = random.Random(size).randbytes(size)
        try:
            answer = await self.push_upgrade(
                device_id,
                str(params.get("FileName", "updateImage")),
                data,
                str(params.get("ProgVersion", "1.0.1")),
                str(device_type),
                int(params.get("LoadCondition", 0)),
                file_size=params.get("FileSize"),
            )
        except RuntimeError as err:
            return web.json_response({"error": str(err)}, status=404)
        except TimeoutError:
            return web.json_response({"error": "no 1013 reply"}, status=504)
        assert answer is not None
        return web.json_response(
            {"Status": answer.status, "md5": hashlib.md5(data).hexdigest()}
        )

    async def _handle_state(self, request: web.Request) -> web.Response:
        """``GET /sim/state[?since=N]``: counters and registrations.

        ``in_flight_seen``: over the download requests from number N on, how many
        there were, and the sum and the highest of their ``concurrency``.
        """
        try:
            since = max(0, int(request.query.get("since", "0")))
        except ValueError:
            return web.json_response({"error": "since must be a number"}, status=400)
        seen = self.concurrency[since:]
        return web.json_response(
            {
                "registrations": [
                    {
                        "DeviceId": r.device_id,
                        "DeviceType": r.device_type,
                        "ProgVersion": r.prog_version,
                    }
                    for r in self.registrations[-20:]
                ],
                "connected": self.connected_devices,
                "upgrade_answers": [
                    {"DeviceId": a.device_id, "Status": a.status}
                    for a in self.upgrade_answers[-20:]
                ],
                "http_requests": self.http_requests,
                "requests_served": self.requests_served,
                "in_flight_seen": {
                    "count": len(seen),
                    "sum": sum(seen),
                    "max": max(seen, default=0),
                },
                "files": {name: len(data) for name, data in self.files.items()},
            }
        )


# ---------------------------------------------------------------------- CLI


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulators.miling",
        description="Run a loopback Miling upgrade server until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ws-port", type=int, default=16007)
    parser.add_argument("--http-port", type=int, default=16008)
    parser.add_argument("--register-status", type=int, default=0)
    parser.add_argument(
        "--corrupt-md5", choices=[m.value for m in CorruptMd5], default="never"
    )
    parser.add_argument(
        "--checksum-of", choices=[m.value for m in ChecksumOf], default="raw"
    )
    parser.add_argument("--status2-fraction", type=float, default=0.0)
    parser.add_argument("--drop-fraction", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0, help="s per request")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    sim = MilingServerSimulator(
        host=args.host, ws_port=args.ws_port, http_port=args.http_port, seed=args.seed
    )
    sim.register_status = args.register_status
    sim.corrupt_md5 = CorruptMd5(args.corrupt_md5)
    sim.checksum_of = ChecksumOf(args.checksum_of)
    sim.status2_fraction = args.status2_fraction
    sim.drop_fraction = args.drop_fraction
    sim.delay = args.delay
    await sim.start()
    try:
        print(f"WebSocket {sim.ws_url}", flush=True)
        print(f"Download  {sim.download_url}", flush=True)
        print(
            f'Push: curl -d \'{{"DeviceId":"10001","Size":100000}}\' '
            f"http://{sim.host}:{sim.http_port}/sim/push",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        print("Stopping.", flush=True)
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: run the server until Ctrl-C."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
