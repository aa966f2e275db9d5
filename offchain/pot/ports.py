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


def _spans(n: int) -> list[tuple[int, int]]:
    """Where a run of n ports may start: below the ephemeral range, else above it."""
    low, high = ephemeral_range()
    spans = []
    if low - LOWEST >= n:
        spans.append((LOWEST, low - n))
    if 65535 - high >= n:
        spans.append((high + 1, 65536 - n))
    if not spans:
        raise RuntimeError(f"no room for {n} ports outside the ephemeral range {low}-{high}")
    return spans


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(n: int, host: str = "127.0.0.1", *, consecutive: bool = False) -> list[int]:
    """n distinct free ports outside the ephemeral range; ``consecutive`` for base, base+1, ...

    Free when chosen: something else may still take one before it is listened on, which is what
    the random choice over some 20,000 ports makes unlikely.
    """
    rng = random.SystemRandom()
    spans = _spans(n if consecutive else 1)
    ports: list[int] = []
    for _ in range(200):
        lo, hi = rng.choice(spans)
        start = rng.randrange(lo, hi)
        run = list(range(start, start + n)) if consecutive else [start]
        if any(p in ports for p in run) or not all(_bindable(host, p) for p in run):
            continue
        ports.extend(run)
        if len(ports) >= n:
            return ports[:n]
    raise RuntimeError(f"no {n} free ports on {host} outside the ephemeral range")


def free_port(host: str = "127.0.0.1") -> int:
    """One free port outside the ephemeral range."""
    return free_ports(1, host)[0]
