"""A replica killed and restarted gets its port back.

The CI failure this reproduces: in the whole-committee kill -9 loop a restarted replica exited
with ``address already in use``. Its port had been drawn by the kernel from the ephemeral range,
the range every outgoing connection's local port comes from, and while the replica was down some
connection had taken it. Ports of a local network are now chosen outside that range, and a replica
whose port is still held for a moment waits for it instead of exiting."""

import asyncio
import socket
import struct
import time
import tomllib

import pytest

from pot.pbft.transport import Transport
from pot.ports import PortInUse, ephemeral_range, free_port, free_ports
from pot.roles.aggregator_config import local_committee_configs

from committee_procs import Committee


def _outside(port: int) -> bool:
    low, high = ephemeral_range()
    return not low <= port <= high


def test_chosen_ports_lie_outside_the_ephemeral_range():
    run = free_ports(30, consecutive=True)
    assert run == list(range(run[0], run[0] + 30))
    spread = free_ports(40)
    assert len(set(spread)) == 40
    assert all(_outside(p) for p in run + spread + [free_port()])


def test_ports_fill_what_the_range_leaves_and_the_kernel_picks_when_nothing_is_left():
    # room for exactly one run of 3 below, none above
    assert free_ports(3, consecutive=True, avoid=(10_003, 65535)) == [10_000, 10_001, 10_002]
    assert set(free_ports(3, avoid=(10_003, 65535))) == {10_000, 10_001, 10_002}
    # a kernel that hands out every port: its own choice, distinct
    assert len(set(free_ports(5, avoid=(1024, 65535)))) == 5
    with pytest.raises(RuntimeError, match="no 4 free consecutive ports"):
        free_ports(4, consecutive=True, avoid=(10_003, 65535))


def test_a_local_committee_listens_outside_the_ephemeral_range(tmp_path):
    """What `pot aggregator local-configs` and the devnet write: every PBFT and API port."""
    paths = local_committee_configs(4, tmp_path, tmp_path / "deployment.json", "http://127.0.0.1:8545", None)
    ports = []
    for p in paths:
        doc = tomllib.loads(p.read_text())
        ports.append(doc["api_port"])
        ports += [int(e.rsplit(":", 1)[1]) for e in doc["committee"]["pbft"]]
    assert len(set(ports)) == 8
    assert all(_outside(p) for p in ports), ports


def test_a_restarted_replica_waits_for_its_port_held_by_a_connection(tmp_path):
    """kill -9 a replica, let an outgoing connection take its port as its local port (what the
    kernel may do with a port of its ephemeral range), restart the replica, release the port
    after 1.5 s: the replica comes up and catches up instead of exiting."""
    com = Committee(tmp_path)
    com.start_all()
    try:
        for i in range(com.n):
            com.wait_up(i)
        com.kill(3)  # replica 3 dials 0..2 and no one dials it: nothing lingers on its port
        thief = socket.socket()
        # closed with a reset: a graceful close would leave the port in TIME_WAIT for 60 s
        thief.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        thief.bind(("127.0.0.1", com.base + 3))
        thief.connect(("127.0.0.1", com.base))
        com.start(3)
        time.sleep(1.5)
        assert com.procs[3].poll() is None, f"replica 3 exited:\n{com.log(3)[-1500:]}"
        thief.close()
        com.wait_up(3, timeout=20)
        com.converge(30)
    finally:
        com.stop_all()


def test_a_port_held_for_good_is_one_clear_error():
    """Held by a connection: waited for, then one line. Another server on it: at once."""
    port = free_port()
    server = socket.create_server(("127.0.0.1", free_port()))
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    holder.bind(("127.0.0.1", port))
    holder.connect(server.getsockname())

    async def start(wait):
        t = Transport(0, [("127.0.0.1", port)], [None], lambda j, m: None)
        await t.start(bind_wait=wait)

    try:
        t0 = time.monotonic()
        with pytest.raises(PortInUse, match=f"127.0.0.1:{port} stayed in use for 1 s by connections"):
            asyncio.run(start(1.0))
        assert 1.0 <= time.monotonic() - t0 < 5
        holder.close()
        listener = socket.create_server(("127.0.0.1", port))
        t0 = time.monotonic()
        with pytest.raises(PortInUse, match=f"another process listens on 127.0.0.1:{port}"):
            asyncio.run(start(60.0))
        assert time.monotonic() - t0 < 5
        listener.close()
    finally:
        holder.close()
        server.close()


def _nodelay(transport) -> bool:
    return bool(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def test_replica_links_and_api_connections_send_small_frames_at_once():
    """Regression: ``ports.listen`` made its sockets with protocol 0, and asyncio turns Nagle's
    algorithm off (TCP_NODELAY) only on sockets whose protocol says TCP. Every accepted replica
    link (and API connection) then held a small frame back until the peer's delayed ACK: a
    commit round of four replicas on loopback took ~44 ms instead of ~1.5 ms."""
    from pot.ports import listen

    async def main():
        loop = asyncio.get_running_loop()
        # the replica transport: both ends of every link, dialed and accepted
        ports = free_ports(3, consecutive=True)
        addrs = [("127.0.0.1", p) for p in ports]
        keys = [[None if i == j else bytes([min(i, j), max(i, j)]) * 16 for j in range(3)] for i in range(3)]
        nets = [Transport(i, addrs, keys[i], lambda j, m: None) for i in range(3)]
        try:
            for t in nets:
                await t.start()
            for t in nets:
                await t.wait_connected(10)
            links = [(t.index, peer, c) for t in nets for peer, c in t.links.items()]
            assert len(links) == 6
            assert [(i, peer) for i, peer, c in links if not _nodelay(c.t)] == []
        finally:
            for t in nets:
                await t.close()
        # the aggregator API's socket (uvicorn serves on it): an accepted connection
        port = free_port()
        accepted = loop.create_future()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.set_result(transport)

        server = await loop.create_server(Accept, sock=await listen("127.0.0.1", port, what="the API"))
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            assert _nodelay(await asyncio.wait_for(accepted, 5))
            writer.close()
        finally:
            server.close()

    asyncio.run(main())
