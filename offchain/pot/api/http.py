"""A small HTTP/1.1 client on asyncio streams, one per replica, whose connections cannot leak.

Why not httpx: the committee client asks every replica at once and abandons the slower ones
when enough have answered. With httpcore 1.0.9 a request cancelled while the pool hands it a
connection leaves that connection in the pool for good (encode/httpcore#1093); a worker ended
up holding all 100 slots to the two slower replicas and, with one replica down, had no quorum.

Here every connection belongs to exactly one request at a time. A request that ends in any way
other than a complete response (cancelled, timed out, reset, malformed) aborts its socket in a
``finally`` with no ``await`` in between, so cancellation cannot skip it; only a connection
whose response was read to the end goes back to the idle list. The number of sockets to one
replica is bounded by ``max_connections`` at every instant.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

#: responses larger than this are refused (the biggest API answer, an order list, is far smaller)
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
#: idle connections older than this are not reused: uvicorn closes them after 5 s, and a request
#: written into a connection the server is closing is lost
IDLE_REUSE_S = 4.0


class HttpError(Exception):
    """No complete response: connection refused or reset, timeout, malformed answer, no free slot."""


class Busy(HttpError):
    """Every connection to the replica is in use (``try_acquire`` only)."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


class _Conn:
    __slots__ = ("reader", "writer", "idle_since", "owner")

    def __init__(self, owner: HttpReplica, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.owner = owner
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        owner._sockets += 1

    def abort(self) -> None:
        # synchronous: safe inside a finally that a cancellation is unwinding
        if self.owner is not None:
            self.owner._sockets -= 1
            self.owner = None
            self.writer.transport.abort()


class HttpReplica:
    """One replica's API endpoint: at most ``max_connections`` sockets, keep-alive reuse."""

    def __init__(self, url: str, *, max_connections: int = 4) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"replica URL must be http(s)://host[:port], got {url!r}")
        self.url = url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self.prefix = parts.path
        self.max_connections = max_connections
        self._idle: list[_Conn] = []
        self._in_use = 0
        self._waiters: list[asyncio.Future] = []
        self._queued: set[asyncio.Task] = set()
        self._sockets = 0
        self._closed = False

    # -- slots ---------------------------------------------------------------------------------

    @property
    def in_use(self) -> int:
        """Connections held by requests now."""
        return self._in_use

    @property
    def open_connections(self) -> int:
        """Sockets open to this replica now (in use or idle): never above ``max_connections``."""
        return self._sockets

    @property
    def busy(self) -> bool:
        """A new request would have to wait for a connection."""
        return self._in_use + len(self._waiters) >= self.max_connections

    def waiting(self, task: asyncio.Task) -> bool:
        """``task`` is still queued for a connection (nothing of it reached the replica yet)."""
        return task in self._queued

    async def _acquire(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        while self._in_use >= self.max_connections:
            fut = loop.create_future()
            self._waiters.append(fut)
            self._queued.add(task)
            try:
                await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
            except BaseException as exc:
                if fut in self._waiters:
                    self._waiters.remove(fut)
                elif fut.done() and not fut.cancelled():
                    self._wake_one()  # woken, but leaving: the free slot goes to the next waiter
                if isinstance(exc, TimeoutError):
                    raise HttpError(f"{self.url}: all {self.max_connections} connections busy") from None
                raise
            finally:
                self._queued.discard(task)
        self._in_use += 1

    def _release(self) -> None:
        self._in_use -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.pop(0)
            if not fut.done():
                fut.set_result(None)
                return

    # -- requests ------------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: bytes | None = None, headers: Mapping[str, str] | None = None,
                      timeout: float = 10.0, wait_for_slot: bool = True) -> HttpResponse:
        """One request with an overall deadline of ``timeout`` seconds (waiting for a slot, connecting,
        sending and reading all count). ``wait_for_slot=False``: ``Busy`` at once when no slot is free."""
        if self._closed:
            raise HttpError(f"{self.url}: client closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not wait_for_slot and self.busy:
            raise Busy(f"{self.url}: all {self.max_connections} connections busy")
        await self._acquire(deadline)
        try:
            target = self.prefix + path
            query = {k: v for k, v in (params or {}).items() if v is not None}
            if query:
                target += "?" + urlencode(query)
            head = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}", "Accept: */*"]
            for k, v in (headers or {}).items():
                head.append(f"{k}: {v}")
            if body is not None or method in ("POST", "PUT"):
                head.append(f"Content-Length: {len(body or b'')}")
            raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
            try:
                return await asyncio.wait_for(self._exchange(raw, method), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise HttpError(f"{self.url}: no answer within {timeout:.1f}s") from None
        finally:
            self._release()

    async def _exchange(self, raw: bytes, method: str) -> HttpResponse:
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._on(conn, raw, method)
            except _Stale:
                pass  # the server closed it while it was idle; the request never reached it
        conn = await self._connect()
        try:
            return await self._on(conn, raw, method)
        except _Stale as exc:
            raise HttpError(f"{self.url}: connection closed before any answer") from exc

    def _take_idle(self) -> _Conn | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < IDLE_REUSE_S and not conn.reader.at_eof():
                return conn
            conn.abort()
        return None

    async def _connect(self) -> _Conn:
        try:
            ctx = _ssl.create_default_context() if self.tls else None
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=ctx,
                                                           limit=MAX_HEAD_BYTES)
        except OSError as exc:
            raise HttpError(f"{self.url}: cannot connect: {exc.strerror or exc}") from None
        return _Conn(self, reader, writer)

    async def _on(self, conn: _Conn, raw: bytes, method: str) -> HttpResponse:
        """Send and read one response on ``conn``; the connection goes back to the idle list only
        when the response was complete and keep-alive, and is aborted in every other case."""
        done = False
        try:
            conn.writer.write(raw)
            await conn.writer.drain()
            resp, keep = await _read_response(conn.reader, method)
            done = keep and not self._closed
            return resp
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise HttpError(f"{self.url}: answer cut short") from None
            raise _Stale() from None
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise HttpError(f"{self.url}: malformed answer: {exc}") from None
        finally:
            if done:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.abort()

    async def aclose(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.abort()
        self._idle.clear()


class _Stale(Exception):
    """The connection ended before a single byte of the answer."""


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[HttpResponse, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    version, status = parts[0], int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return HttpResponse(status, b"", headers), keep
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ValueError(f"body of {length} bytes")
        body = await reader.readexactly(length)
    else:  # delimited by the end of the connection
        body = await reader.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise ValueError("body too large")
        keep = False
    return HttpResponse(status, body, headers), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(out)
        if len(out) + size > MAX_BODY_BYTES:
            raise ValueError("body too large")
        out += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("bad chunk")
