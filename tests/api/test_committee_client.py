"""The committee client against real, deliberately slow API server processes: its sockets stay
bounded however many requests it abandons, and a killed or stopped replica (within f) costs
neither reads nor submissions their quorum.

The old client (httpx, httpcore 1.0.9) leaked every request it cancelled under contention: it
held 100 of 100 pool slots to the two slower replicas within seconds here, and then one killed
replica left it without a quorum (PoolTimeout against healthy replicas)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pot.api import CommitteeClient
from pot.api.client import ApiClient
from pot.ports import free_ports

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_api import commit  # noqa: E402

HERE = Path(__file__).resolve().parent
DELAYS = (0.0, 0.0, 0.05, 0.1)   # two fast replicas, two slower ones
MAX_CONNECTIONS = 4              # the client's pool per replica


def _sockets_to(ports: list[int]) -> Counter:
    """ESTABLISHED TCP sockets this process holds to each port (read from /proc: what the kernel
    sees, whatever the client believes)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out: Counter = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            port = int(f[2].rsplit(":", 1)[1], 16)
            if f[3] == "01" and f[9] in inodes and port in ports:
                out[port] += 1
    return out


@pytest.fixture
def replicas():
    ports = free_ports(len(DELAYS))
    procs = [subprocess.Popen([sys.executable, str(HERE / "slow_replica.py"), str(p), str(d)])
             for p, d in zip(ports, DELAYS)]
    deadline = time.monotonic() + 60
    for p in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "replica servers did not start"
                time.sleep(0.1)
    yield ports, procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        proc.wait()


def _client(ports: list[int]) -> CommitteeClient:
    return CommitteeClient([f"http://127.0.0.1:{p}" for p in ports], timeout=5.0)


async def _timed(coro) -> float:
    t = time.monotonic()
    await coro
    return time.monotonic() - t


def test_sockets_stay_bounded_and_a_killed_replica_costs_no_quorum(replicas):
    ports, procs = replicas

    async def go():
        cc = _client(ports)
        stop = asyncio.Event()
        reads = Counter()

        async def reader():
            while not stop.is_set():
                doc = await cc.order(2)
                assert doc["order"]["reward"] == 500
                reads["n"] += 1

        tasks = [asyncio.create_task(reader()) for _ in range(8)]
        peak: Counter = Counter()
        for _ in range(20):  # 8 s of 8 concurrent readers, each abandoning the slower replicas
            await asyncio.sleep(0.4)
            for port, n in _sockets_to(ports).items():
                peak[port] = max(peak[port], n)
        stop.set()
        await asyncio.gather(*tasks)
        print(f"reads={reads['n']} peak sockets per replica={[peak[p] for p in ports]}")
        assert reads["n"] > 200
        assert all(peak[p] <= MAX_CONNECTIONS for p in ports), (
            f"sockets per replica {[peak[p] for p in ports]} over the pool's {MAX_CONNECTIONS}")

        procs[0].kill()  # the fastest replica: the slower two now make every quorum
        procs[0].wait()
        times = [await _timed(cc.order(2)) for _ in range(10)]
        print(f"after kill: read latency max {max(times):.3f}s")
        assert max(times) < 1.5, times
        assert (await cc.submit(commit())).ok
        await cc.aclose()

    asyncio.run(go())


def test_a_stopped_replica_delays_neither_reads_nor_submissions(replicas):
    ports, procs = replicas

    async def go():
        # the old client submitted to the first f+1 replicas only and waited for all of them
        procs[0].send_signal(signal.SIGSTOP)
        cc = _client(ports)
        assert await _timed(cc.submit(commit())) < 2.0
        again = await cc.submit(commit())  # every live replica has it now: a replay, in the ledger
        assert again.reason_enum.name in ("OK", "REPLAY")
        times = [await _timed(cc.order(1)) for _ in range(20)]
        assert max(times) < 1.5, times
        # while it is stopped the client keeps a bounded number of sockets to it, not one per request
        assert _sockets_to(ports)[ports[0]] <= MAX_CONNECTIONS
        procs[0].send_signal(signal.SIGCONT)
        await cc.aclose()

    asyncio.run(go())


def test_an_api_client_aborts_what_it_abandons(replicas):
    ports, _procs = replicas

    async def go():
        api = ApiClient(f"http://127.0.0.1:{ports[3]}", timeout=5.0, max_connections=2)
        for _ in range(20):  # cancelled mid-request, again and again
            task = asyncio.create_task(api.health())
            await asyncio.sleep(0.02)
            task.cancel()
        await asyncio.sleep(0.1)
        assert _sockets_to(ports)[ports[3]] == 0 and api.replica.open_connections == 0
        assert (await api.health())["status"] == "ok"
        assert api.replica.open_connections == 1  # kept alive for the next request
        await api.aclose()

    asyncio.run(go())
