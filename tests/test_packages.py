"""The package store: verified streaming downloads and resumable chunked files."""

from __future__ import annotations

from collections.abc import AsyncGenerator
import errno
import hashlib
import json
import os
from pathlib import Path

import aiohttp
from aiohttp import web
import pytest

from custom_components.firmware_hub.core.packages import (
    DownloadError,
    Expected,
    InsufficientSpaceError,
    IntegrityError,
    PackageStore,
    RetryPolicy,
    StorageError,
    download_owner,
)

DATA = os.urandom(3 * 1024 * 1024 + 123)
FAST = RetryPolicy(attempts=3, backoff=0.01, timeout=2)


class FileServer:
    """An HTTP server for one file, with Range support and failure modes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.drop_after: int | None = None  # close the connection after N bytes, once
        self.errors = 0  # answer 500 to the next N requests
        self.ignore_range = False
        self.ranges: list[str | None] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.ranges.append(request.headers.get("Range"))
        if self.errors:
            self.errors -= 1
            return web.Response(status=500)
        start = 0
        if (header := request.headers.get("Range")) and not self.ignore_range:
            start = int(header.removeprefix("bytes=").rstrip("-"))
        body = self.data[start:]
        response = web.StreamResponse(status=206 if start else 200)
        response.content_length = len(body)
        if start:
            response.headers["Content-Range"] = (
                f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"
            )
        await response.prepare(request)
        if self.drop_after is not None:
            cut, self.drop_after = self.drop_after, None
            await response.write(body[:cut])
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(body)
        await response.write_eof()
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/fw.bin", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/fw.bin"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def server(socket_enabled: None) -> AsyncGenerator[FileServer]:
    """A file server for DATA."""
    srv = FileServer(DATA)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def session(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as client:
        yield client


def _expected(**overrides: object) -> Expected:
    values: dict[str, object] = {
        "size": len(DATA),
        "md5": hashlib.md5(DATA).hexdigest().upper(),
        "sha256": hashlib.sha256(DATA).hexdigest(),
    }
    values.update(overrides)
    return Expected(**values)  # type: ignore[arg-type]


def _files(root: Path) -> list[str]:
    return sorted(path.name for path in root.iterdir()) if root.exists() else []


async def test_download_verified(
    tmp_path: Path, server: FileServer, session: aiohttp.ClientSession
) -> None:
    """A good download is kept under its own hash, equal to the source."""
    store = PackageStore(tmp_path / "entry")
    seen: list[tuple[int, int | None]] = []
    package = await store.download(
        session, server.url, _expected(), progress=lambda d, t: seen.append((d, t))
    )
    assert package.path.read_bytes() == DATA
    assert package.sha256 == hashlib.sha256(DATA).hexdigest()
    assert package.path.name == f"package-{package.sha256[:16]}.bin"
    assert _files(tmp_path / "entry") == [package.path.name]
    assert seen[-1] == (len(DATA), len(DATA))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


async def test_checksum_mismatch_leaves_nothing(
    tmp_path: Path, server: FileServer, session: aiohttp.ClientSession
) -> None:
    """A wrong MD5, SHA-256 or size: IntegrityError and no file at all."""
    store = PackageStore(tmp_path)
    for expected in (
        _expected(md5="0" * 32),
        _expected(sha256="f" * 64),
        _expected(size=len(DATA) + 1),
        _expected(size=len(DATA) - 1),
    ):
        with pytest.raises(IntegrityError):
            await store.download(session, server.url, expected, retry=FAST)
        assert _files(tmp_path) == []


async def test_dropped_connection_resumes_with_range(
    tmp_path: Path, server: FileServer, session: aiohttp.ClientSession
) -> None:
    """A connection dropped mid-body resumes where it stopped, not from zero."""
    server.drop_after = 1024 * 1024
    package = await PackageStore(tmp_path).download(
        session, server.url, _expected(), retry=FAST
    )
    assert package.path.read_bytes() == DATA
    assert server.ranges[0] is None
    assert server.ranges[1] is not None
    resumed_at = int(server.ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 1024 * 1024


async def test_range_ignored_restarts_cleanly(
    tmp_path: Path, server: FileServer, session: aiohttp.ClientSession
) -> None:
    """A server that ignores Range sends everything again: the file is still exact."""
    server.drop_after = 512 * 1024
    server.ignore_range = True
    package = await PackageStore(tmp_path).download(
        session, server.url, _expected(), retry=FAST
    )
    assert package.path.read_bytes() == DATA


async def test_server_errors_retried_then_fail(
    tmp_path: Path, server: FileServer, session: aiohttp.ClientSession
) -> None:
    """5xx answers are retried; too many of them fail with DownloadError."""
    server.errors = 2
    package = await PackageStore(tmp_path).download(
        session, server.url, _expected(), retry=FAST
    )
    assert package.size == len(DATA)
    server.errors = 10
    with pytest.raises(DownloadError):
        await PackageStore(tmp_path / "b").download(
            session, server.url, _expected(), retry=FAST
        )
    assert _files(tmp_path / "b") == []


async def test_not_found_is_final(
    tmp_path: Path, server: FileServer, session: aiohttp.ClientSession
) -> None:
    """A 404 is not retried."""
    with pytest.raises(DownloadError):
        await PackageStore(tmp_path).download(
            session, server.url.replace("fw.bin", "nope.bin"), _expected(), retry=FAST
        )
    assert server.ranges == []


async def test_no_space(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """A package larger than the free space is refused before any request."""
    with pytest.raises(InsufficientSpaceError):
        await PackageStore(tmp_path).download(
            session, "http://127.0.0.1:9/never", Expected(size=1 << 60), retry=FAST
        )


async def test_partial_file_resumes_and_completes(tmp_path: Path) -> None:
    """Chunks written at offsets survive a close/reopen; holes are refused."""
    store = PackageStore(tmp_path)
    data = os.urandom(10_000)
    chunks = [
        (start, data[start : start + 2048]) for start in range(0, len(data), 2048)
    ]
    partial = await store.open_partial("offer1", len(data))
    for start, chunk in chunks[::2]:
        await partial.write(start, chunk)
    with pytest.raises(IntegrityError):
        await partial.complete()
    await partial.close()

    partial = await store.open_partial("offer1", len(data))
    for start, chunk in chunks:
        assert partial.covered(start, start + len(chunk)) == (start % 4096 == 0)
    assert partial.bytes_done == sum(len(chunk) for _, chunk in chunks[::2])
    assert partial.covered(4096, 6144)
    assert not partial.covered(2048, 4096)
    assert partial.missing() == 2048
    for start, chunk in reversed(chunks[1::2]):
        await partial.write(start, chunk)
    await partial.write(0, chunks[0][1])  # written twice: counted once
    assert partial.bytes_done == len(data)
    assert partial.covered(0, len(data))
    assert partial.missing() is None
    package = await partial.complete()
    assert package.path.read_bytes() == data
    assert package.md5 == hashlib.md5(data).hexdigest()
    assert _files(tmp_path) == [package.path.name]


async def test_partial_file_guards(tmp_path: Path) -> None:
    """Unsafe names, out-of-range chunks and a corrupt state file are handled."""
    store = PackageStore(tmp_path)
    with pytest.raises(ValueError, match="unsafe"):
        await store.open_partial("../etc", 10)
    partial = await store.open_partial("x", 10)
    with pytest.raises(IntegrityError):
        await partial.write(8, b"abc")
    await partial.write(0, b"0123")
    await partial.close()
    partial.paths[1].write_text("{not json")
    partial = await store.open_partial("x", 10)
    assert partial.bytes_done == 0
    assert partial.missing() == 0
    await partial.discard()
    assert _files(tmp_path) == []


async def test_prune(
    tmp_path: Path, server: FileServer, session: aiohttp.ClientSession
) -> None:
    """Pruning keeps only what is asked for; remove_all deletes the directory."""
    store = PackageStore(tmp_path / "entry")
    package = await store.download(session, server.url, _expected())
    partial = await store.open_partial("old", 100)
    await partial.write(0, b"x" * 10)
    await partial.close()
    await store.prune(keep=[])
    assert len(_files(tmp_path / "entry")) == 2  # the partial download stays
    package = await store.download(session, server.url, _expected())
    await store.prune(keep=[package.path], owners=())
    assert _files(tmp_path / "entry") == [package.path.name]
    await store.remove_all()
    assert not (tmp_path / "entry").exists()
    await PackageStore(tmp_path / "none").prune()


async def test_partial_file_short_writes_and_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Short positional writes are continued; the state names the owning offer."""
    store = PackageStore(tmp_path)
    data = os.urandom(5000)
    real = os.pwrite
    monkeypatch.setattr(
        os, "pwrite", lambda fd, buf, at: real(fd, bytes(buf[:100]), at)
    )
    token = download_owner.set("offer-a")
    try:
        partial = await store.open_partial("short", len(data))
    finally:
        download_owner.reset(token)
    await partial.write(0, data[:2048])
    await partial.close()
    state = json.loads(partial.paths[1].read_text())
    assert state["owner"] == "offer-a"
    await store.prune(owners={"offer-a"})
    assert partial.path.read_bytes()[:2048] == data[:2048]
    await store.prune(owners={"offer-b"})
    assert _files(tmp_path) == []


async def test_prune_spares_running_downloads(tmp_path: Path) -> None:
    """Pruning never deletes the files of a download that is running."""
    store = PackageStore(tmp_path)
    partial = await store.open_partial("running", 100)
    await partial.write(0, b"x" * 10)
    await partial.checkpoint()
    (tmp_path / ".download-leftover.part").write_bytes(b"y")
    await store.prune(owners=())
    assert _files(tmp_path) == sorted(path.name for path in partial.paths)
    await partial.discard()
    assert _files(tmp_path) == []


async def test_write_errors_become_package_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk error is a StorageError, a file system that cannot reserve is fine."""
    store = PackageStore(tmp_path)

    def unsupported(_fd: int, _offset: int, _size: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    partial = await store.open_partial("eio", 10)

    def broken(_fd: int, _data: bytes, _offset: int) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "pwrite", broken)
    with pytest.raises(StorageError, match="Input/output error"):
        await partial.write(0, b"abc")
    await partial.discard()
