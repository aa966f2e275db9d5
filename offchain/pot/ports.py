"""Loopback ports for the processes of a local network, chosen where a restart gets them back.

A port the kernel hands out for ``bind(0)`` lies in its ephemeral range, the same range it draws
the local port of every outgoing connection from. A replica, API or chain node listening there
and killed can find, on restart, that some connection of another process (a client reconnecting,
a peer, another test) has taken its port meanwhile: ``address already in use`` until that
connection closes, which may be never. So the ports chosen here lie below that range (above it
where the range leaves no room below), picked at random so that two networks started at once on
one machine do not pick the same ones, and each checked free when chosen.

It also opens the listening sockets of the PBFT transport and the aggregator's API
(``listen``), so that a port still held when a process restarts is handled the same way for both.

Stdlib only: every package may import it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import sys

log = logging.getLogger("pot.ports")

LOWEST = 10_000  # clear of the well-known and registered ports services usually take
_DEFAULT_RANGE = (49152, 65535) if sys.platform == "darwin" else (32768, 60999)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (inclusive)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return _DEFAULT_RANGE


def _spans(n: int, avoid: tuple[int, int]) -> list[tuple[int, int]]:
    """Where a run of n ports may start (inclusive bounds): below ``avoid``, or above it."""
    low, high = avoid
    spans = []
    if low - n >= LOWEST:
        spans.append((LOWEST, low - n))
    if 65536 - n >= high + 1:
        spans.append((high + 1, 65536 - n))
    return spans


def _tcp(host: str) -> socket.socket:
    """A TCP socket of the family ``host`` is written in. Its protocol is named (not 0): asyncio
    turns Nagle's algorithm off only on connections whose socket says TCP, and a connection
    accepted on this socket inherits it (with Nagle on, every small frame of a commit round
    waited for the peer's delayed ACK, ~40 ms)."""
    return socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)


def _bindable(host: str, port: int) -> bool:
    with _tcp(host) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _kernel_port(host: str) -> int:
    with _tcp(host) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(n: int, host: str = "127.0.0.1", *, consecutive: bool = False,
               avoid: tuple[int, int] | None = None) -> list[int]:
    """n distinct free ports outside ``avoid`` (default: the ephemeral range); ``consecutive``
    for base, base+1, ... Where that range leaves no room (a kernel configured to use nearly
    every port), ports the kernel picks, which is the best there is.

    Free when chosen: something else may still take one before it is listened on, which is what
    the random choice over some 20,000 ports makes unlikely.
    """
    rng = random.SystemRandom()
    spans = _spans(n if consecutive else 1, ephemeral_range() if avoid is None else avoid)
    if not spans and not consecutive:
        ports: set[int] = set()
        while len(ports) < n:
            ports.add(_kernel_port(host))
        return list(ports)
    chosen: list[int] = []
    for _ in range(200 if spans else 0):
        lo, hi = rng.choice(spans)
        start = rng.randint(lo, hi)
        run = list(range(start, start + n)) if consecutive else [start]
        if any(p in chosen for p in run) or not all(_bindable(host, p) for p in run):
            continue
        chosen.extend(run)
        if len(chosen) >= n:
            return chosen[:n]
    raise RuntimeError(f"no {n} free {'consecutive ' if consecutive else ''}ports on {host} "
                       f"outside the ephemeral range")


def free_port(host: str = "127.0.0.1") -> int:
    """One free port outside the ephemeral range."""
    return free_ports(1, host)[0]


class PortInUse(OSError):
    """A process's own listening address stayed taken by something else."""


async def _listened_on(host: str, port: int) -> bool:
    """Whether a server accepts connections on ``host:port`` (a wildcard host: on loopback)."""
    target = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(target, port), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    w.close()
    return True


async def listen(host: str, port: int, *, what: str, wait: float = 65.0, backlog: int = 1024) -> socket.socket:
    """A non-blocking socket listening on ``host:port`` for ``what`` ("this replica", ...).

    A port another server listens on is ``PortInUse`` at once; one only connections hold (one that
    drew it as its local port, or its TIME_WAIT, 60 s on Linux) is waited for up to ``wait``
    seconds first, with one warning."""
    loop = asyncio.get_running_loop()
    end, warned = loop.time() + wait, False
    while True:
        sock = _tcp(host)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.setblocking(False)
            return sock
        except OSError as e:
            sock.close()
            if e.errno != errno.EADDRINUSE:
                raise
        if await _listened_on(host, port):
            raise PortInUse(f"another process listens on {host}:{port} (is {what} running already?): "
                            f"stop it, or give {what} another port")
        if loop.time() >= end:
            raise PortInUse(f"{host}:{port} stayed in use for {wait:.0f} s by connections of another process: "
                            f"give {what} a port outside the kernel's ephemeral range "
                            f"(/proc/sys/net/ipv4/ip_local_port_range), which outgoing connections draw from")
        if not warned:
            warned = True
            log.warning("%s:%d is held by a connection; waiting up to %.0f s for it", host, port, wait)
        await asyncio.sleep(0.2)
