"""Loopback ports for the processes of a local network, chosen where a restart gets them back.

A port the kernel hands out for ``bind(0)`` lies in its ephemeral range, the same range it draws
the local port of every outgoing connection from. A replica, API or chain node listening there
and killed can find, on restart, that some connection of another process (a client reconnecting,
a peer, another test) has taken its port meanwhile: ``address already in use`` until that
connection closes, which may be never. So the ports chosen here lie below that range (above it
where the range leaves no room below), picked at random so that two networks started at once on
one machine do not pick the same ones, and each checked free when chosen.

Stdlib only: every package may import it.
"""

from __future__ import annotations

import random
import socket
import sys

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


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _kernel_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
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
