"""TCP transport between replicas (asyncio protocols, real sockets).

Frames are ``u32 length | body`` with a hard maximum. A connection starts with a handshake:

  dialer   -> b"R" | id u16 | nonce1 (16) | MAC_k(b"hello" | id | target | nonce1)
  acceptor -> b"A" | nonce2 (16) | MAC_k(b"ack" | nonce1 | nonce2)

where ``k`` is the pair's link key (ECDH of the two replicas' keys, see ``crypto.link_key``).
Every later frame is ``MAC_s(direction | counter | msg) | msg``, the MAC a 16-byte keyed
BLAKE2b (RFC 7693 keyed mode; about a third of HMAC-SHA256's cost, two per message), with the
session key ``s = HMAC(k, nonce1 | nonce2)`` and an implicit per-direction counter, so a frame cannot be
forged, replayed, reordered or moved to another connection. Anything malformed, oversized or
unauthenticated closes that connection only; the dialer reconnects with backoff.

Clients open with ``b"C"`` and may send only ``Request`` frames (the request's own signature,
checked by the replica's verifier, authenticates it); replies go back on that connection.

For benchmarks each link can emulate a one-way latency (fixed per link, drawn from a range)
and a bandwidth (a serialising pipe per direction), applied at the sender.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import random
import struct
from typing import Callable

from pot.ports import listen

from .messages import DecodeError, Request, decode

_blake2b = hashlib.blake2b  # keyed BLAKE2b is a MAC (RFC 7693 §2.5), ~3x cheaper than HMAC-SHA256 here

MAX_FRAME = 32 * 1024 * 1024
_LEN = struct.Struct(">I")
_MAC_LEN = 16


class _Conn(asyncio.Protocol):
    def __init__(self, net: "Transport", peer: int | None = None):
        self.net = net
        self.peer = peer  # set for dialed links at once, for accepted links after the hello
        self.kind: str | None = "R" if peer is not None else None
        self.t: asyncio.Transport | None = None
        self.buf = bytearray()
        self.ready = False
        self.session = b""
        self.nonce = os.urandom(16)
        self.send_ctr = 0
        self.recv_ctr = 0
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.closed = False

    # --- connection lifecycle ---

    def connection_made(self, transport) -> None:
        self.t = transport
        if self.peer is not None:
            net = self.net
            key = net.link_keys[self.peer]
            me = net.index.to_bytes(net.id_len, "big")
            mac = hmac.digest(key, b"hello" + me + self.peer.to_bytes(net.id_len, "big") + self.nonce, "sha256")
            self._raw(b"R" + me + self.nonce + mac)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.net._lost(self)

    def abort(self, why: str) -> None:
        self.net.rejected += 1
        if self.t is not None:
            self.t.abort()

    # --- framing ---

    def _raw(self, body: bytes) -> None:
        self.t.write(_LEN.pack(len(body)) + body)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        net = self.net
        pos = 0
        n = len(buf)
        try:
            while n - pos >= 4:
                (ln,) = _LEN.unpack_from(buf, pos)
                if ln > net.max_frame:
                    return self.abort("oversized frame")
                if n - pos - 4 < ln:
                    break
                if self.ready and self.kind == "R" and ln >= _MAC_LEN:
                    # The hot path (every replica-to-replica frame), inlined from _frame.
                    start = pos + 4 + _MAC_LEN
                    pos += 4 + ln
                    msg_bytes = bytes(buf[start:pos])
                    want = _blake2b((b"\x01" if self._dialed else b"\x00") + self.recv_ctr.to_bytes(8, "big")
                                    + msg_bytes, key=self.session, digest_size=_MAC_LEN).digest()
                    if not hmac.compare_digest(buf[start - _MAC_LEN:start], want):
                        self.abort("bad MAC")
                        return
                    self.recv_ctr += 1
                    try:
                        msg = net.decode(msg_bytes)
                    except DecodeError:
                        self.abort("malformed frame")
                        return
                    net.received += 1
                    net.on_message(self.peer, msg)
                    if self.closed:
                        return
                    continue
                body = bytes(buf[pos + 4:pos + 4 + ln])
                pos += 4 + ln
                if not self._frame(body):
                    return
        finally:
            if not self.closed:
                del buf[:pos]

    def _frame(self, body: bytes) -> bool:
        net = self.net
        if not self.ready:
            return self._handshake(body)
        if self.kind == "C":
            try:
                msg = decode(body)
            except DecodeError:
                self.abort("malformed client frame")
                return False
            if type(msg) is not Request:
                self.abort("clients may only send requests")
                return False
            net.on_request(msg.payload, self)
            return True
        if len(body) < _MAC_LEN:
            self.abort("short frame")
            return False
        mac, msg_bytes = body[:_MAC_LEN], body[_MAC_LEN:]
        want = _blake2b((b"\x01" if self._dialed else b"\x00") + self.recv_ctr.to_bytes(8, "big") + msg_bytes,
                        key=self.session, digest_size=_MAC_LEN).digest()
        if not hmac.compare_digest(mac, want):
            self.abort("bad MAC")
            return False
        self.recv_ctr += 1
        try:
            msg = net.decode(msg_bytes)
        except DecodeError:
            self.abort("malformed frame")
            return False
        net.received += 1
        net.on_message(self.peer, msg)
        return True

    @property
    def dialed(self) -> bool:
        return self.kind == "R" and self._dialed

    _dialed = False

    def _handshake(self, body: bytes) -> bool:
        net = self.net
        if self._dialed:
            # Expect the acceptor's answer.
            if len(body) != 1 + 16 + 32 or body[:1] != b"A":
                self.abort("bad ack")
                return False
            nonce2, mac = body[1:17], body[17:]
            key = net.link_keys.get(self.peer)
            if key is None:
                self.abort("peer left the committee")
                return False
            if not hmac.compare_digest(mac, hmac.digest(key, b"ack" + self.nonce + nonce2, "sha256")):
                self.abort("bad ack MAC")
                return False
            self.session = hmac.digest(key, self.nonce + nonce2, "sha256")
            self.ready = True
            net._up(self)
            return True
        if body[:1] == b"C" and len(body) == 1:
            self.kind = "C"
            self.ready = True
            return True
        w = net.id_len
        if len(body) != 1 + w + 16 + 32 or body[:1] != b"R":
            self.abort("bad hello")
            return False
        peer = int.from_bytes(body[1:1 + w], "big")
        nonce1, mac = body[1 + w:17 + w], body[17 + w:]
        key = net.link_keys.get(peer)
        if key is None or peer == net.index:
            self.abort("unknown peer")
            return False
        expect = hmac.digest(key, b"hello" + body[1:1 + w] + net.index.to_bytes(w, "big") + nonce1, "sha256")
        if not hmac.compare_digest(mac, expect):
            self.abort("bad hello MAC")
            return False
        self.kind, self.peer = "R", peer
        nonce2 = os.urandom(16)
        self._raw(b"A" + nonce2 + hmac.digest(key, b"ack" + nonce1 + nonce2, "sha256"))
        self.session = hmac.digest(key, nonce1 + nonce2, "sha256")
        self.ready = True
        net._up(self)
        return True

    # --- sending ---

    def send_msg(self, msg_bytes: bytes) -> None:
        if self.closed:
            return
        if self.kind == "C":
            frame = _LEN.pack(len(msg_bytes)) + msg_bytes
        else:
            mac = _blake2b((b"\x00" if self._dialed else b"\x01") + self.send_ctr.to_bytes(8, "big") + msg_bytes,
                           key=self.session, digest_size=_MAC_LEN).digest()
            self.send_ctr += 1
            frame = _LEN.pack(len(msg_bytes) + _MAC_LEN) + mac + msg_bytes
        self.out.append(frame)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            net = self.net
            net._dirty.append(self)
            if not net._flush_scheduled:
                # One loop callback per replica per turn, not one per connection.
                net._flush_scheduled = True
                net.loop.call_soon(net._flush)

    def _flush(self) -> None:
        # Coalesce every frame of one event-loop turn into one write (one syscall).
        self.flush_scheduled = False
        if self.out and not self.closed:
            self.t.write(b"".join(self.out))
        self.out.clear()


class Transport:
    """Links between the replicas of ``addresses`` (a list indexed by replica id, or a dict by
    peer id). Peer ids are ``id_len``-byte integers in the handshake: replica indices for a
    fixed committee, account numbers for an epoch-changing one, whose peers change with
    ``set_peers``. ``decode`` turns an authenticated frame into a message."""

    def __init__(self, index: int, addresses: list[tuple[str, int]] | dict[int, tuple[str, int]],
                 link_keys: list[bytes | None] | dict[int, bytes],
                 on_message: Callable[[int, object], None],
                 on_request: Callable[[bytes, _Conn], None] | None = None,
                 *, max_frame: int = MAX_FRAME, latency_ms: tuple[float, float] | None = None,
                 bandwidth_mbps: float | None = None, seed: int = 0, id_len: int = 2,
                 decode: Callable[[bytes], object] = decode):
        self.index = index
        self.id_len = id_len
        self.decode = decode
        self.addresses = dict(enumerate(addresses)) if isinstance(addresses, list) else dict(addresses)
        self.link_keys = ({j: k for j, k in enumerate(link_keys) if k is not None} if isinstance(link_keys, list)
                          else dict(link_keys))
        self.on_message = on_message
        self.on_request = on_request or (lambda payload, conn: None)
        self.max_frame = max_frame
        self.links: dict[int, _Conn] = {}
        self.server: asyncio.base_events.Server | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.blocked: set[int] = set()  # fault injection: drop traffic to/from these replicas
        self.closing = False
        self.rejected = 0
        self.received = 0
        self.bandwidth = bandwidth_mbps
        self.latency: dict[int, float] = {}
        if latency_ms is not None:
            lo, hi = latency_ms
            for j in self.addresses:
                a, b = sorted((index, j))
                rng = random.Random(hashlib.sha256(f"{seed}:{a}:{b}".encode()).digest())
                self.latency[j] = rng.uniform(lo, hi) / 1000.0
        self._busy: dict[int, float] = {}
        self._dialers: dict[int, asyncio.Task] = {}
        self._link_down: dict[int, asyncio.Event] = {}
        self._dirty: list[_Conn] = []
        self._flush_scheduled = False

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for c in dirty:
            c._flush()

    def flush(self) -> None:
        """Write what was queued this turn now (the replica node calls it after its fsync)."""
        if self._dirty:
            self._flush()

    async def start(self, bind_wait: float = 65.0) -> None:
        """Listen on our address (``pot.ports.listen``: a port only connections hold is waited
        for up to ``bind_wait`` seconds) and start dialing."""
        self.loop = asyncio.get_running_loop()
        host, port = self.addresses[self.index]
        sock = await listen(host, port, what="this replica", wait=bind_wait)
        self.server = await self.loop.create_server(lambda: _Conn(self), sock=sock, backlog=1024)
        self._start_dialers()

    def _start_dialers(self) -> None:
        # The higher id dials the lower one: exactly one connection per pair.
        for j in self.addresses:
            if j < self.index and j not in self._dialers:
                self._dialers[j] = self.loop.create_task(self._dial(j))

    def set_peers(self, addresses: dict[int, tuple[str, int]], link_keys: dict[int, bytes]) -> None:
        """The committee changed: link with ``addresses`` (our own entry included) from now on;
        a peer that left loses its link and can no longer connect."""
        self.addresses, self.link_keys = dict(addresses), dict(link_keys)
        for j in [j for j in self._dialers if j not in self.addresses]:
            self._dialers.pop(j).cancel()
        for j, conn in list(self.links.items()):
            if j not in self.link_keys and conn.t is not None:
                conn.t.abort()
        if self.loop is not None and not self.closing:
            self._start_dialers()

    async def _dial(self, j: int) -> None:
        delay = 0.05
        while not self.closing and j in self.addresses:
            if j not in self.links:
                host, port = self.addresses[j]
                try:
                    conn = _Conn(self, peer=j)
                    conn._dialed = True
                    await self.loop.create_connection(lambda: conn, host, port)
                    delay = 0.05
                except OSError:
                    delay = min(delay * 2, 1.0)
            await asyncio.sleep(delay)
            if j in self.links:
                # Up: sleep until this link goes down (no polling: with n = 100 a 0.2 s poll is
                # ~25,000 task wake-ups a second on the shared loop).
                ev = self._link_down.setdefault(j, asyncio.Event())
                ev.clear()
                if j in self.links:
                    await ev.wait()

    async def wait_connected(self, timeout: float = 30.0) -> None:
        deadline = self.loop.time() + timeout
        while len(self.links) < len(self.addresses) - 1:
            if self.loop.time() > deadline:
                raise TimeoutError(f"replica {self.index}: {len(self.links)} links up")
            await asyncio.sleep(0.02)

    def _up(self, conn: _Conn) -> None:
        old = self.links.get(conn.peer)
        if old is not None and old is not conn and not old.closed:
            old.t.close()
        self.links[conn.peer] = conn

    def _lost(self, conn: _Conn) -> None:
        if conn.peer is not None and self.links.get(conn.peer) is conn:
            del self.links[conn.peer]
            ev = self._link_down.get(conn.peer)
            if ev is not None:
                ev.set()

    def send(self, to: int, msg_bytes: bytes) -> None:
        conn = self.links.get(to)
        if conn is None or to in self.blocked:
            return
        if not self.latency and not self.bandwidth:
            conn.send_msg(msg_bytes)
            return
        now = self.loop.time()
        start = max(now, self._busy.get(to, 0.0))
        if self.bandwidth:
            start += (len(msg_bytes) + 4 + _MAC_LEN + 40) * 8 / (self.bandwidth * 1e6)
            self._busy[to] = start
        at = start + self.latency.get(to, 0.0)
        self.loop.call_at(at, conn.send_msg, msg_bytes)

    def broadcast(self, msg_bytes: bytes) -> None:
        if self.latency or self.bandwidth:
            for j in list(self.links):
                self.send(j, msg_bytes)
            return
        blocked = self.blocked
        for j, conn in list(self.links.items()):
            if j not in blocked:
                conn.send_msg(msg_bytes)

    def deliverable(self, sender: int) -> bool:
        return sender not in self.blocked

    async def close(self) -> None:
        self.closing = True
        for t in self._dialers.values():
            t.cancel()
        if self.server is not None:
            self.server.close()
        for c in list(self.links.values()):
            if c.t is not None:
                c.t.abort()
        self.links.clear()
