"""Real asyncio replicas on loopback sockets: authenticated framing and committee faults."""

import asyncio
import struct

from pot.pbft.kv import KVStateMachine
from pot.pbft.messages import Request, encode
from pot.pbft.node import CommitteeConfig, ReplicaNode
from pot.pbft.storage import FileStore
from pot.ports import free_ports


class Cluster:
    def __init__(self, n=4, tmp=None, **kw):
        self.cfg, self.sks = CommitteeConfig.devnet(n, free_ports(n, consecutive=True)[0], view_timeout=1.0,
                                                    status_interval=0.2, checkpoint_interval=8,
                                                    log_size=32, **kw)
        self.tmp = tmp
        self.nodes = [self._node(i) for i in range(n)]
        self.done: dict[bytes, set] = {}

    def _node(self, i):
        store = FileStore(self.tmp / f"r{i}", fsync=False) if self.tmp else None
        nd = ReplicaNode(self.cfg, i, self.sks[i], KVStateMachine(), store=store)
        nd.on_reply.append(lambda c, rep: self.done.setdefault(rep.request_id, set()).add(rep.replica))
        return nd

    async def start(self):
        for nd in self.nodes:
            if nd is not None:
                await nd.start()
        await asyncio.gather(*(nd.transport.wait_connected() for nd in self.nodes if nd))

    def submit(self, payload):
        for nd in self.nodes:
            if nd is not None:
                nd.submit(payload, client="t")

    async def wait_committed(self, payloads, timeout=20.0, need=2):
        import hashlib
        ids = [hashlib.sha256(p).digest() for p in payloads]
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            if all(len(self.done.get(r, ())) >= need for r in ids):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{sum(len(self.done.get(r, ())) >= need for r in ids)}/{len(ids)} committed")

    async def converge(self, timeout=20.0):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            live = [nd.replica for nd in self.nodes if nd is not None]
            if len({r.last_exec for r in live}) == 1 and len({r.digest() for r in live}) == 1:
                return live[0].last_exec
            await asyncio.sleep(0.05)
        raise AssertionError([(r.id, r.view, r.last_exec) for r in live])

    async def close(self):
        for nd in self.nodes:
            if nd is not None:
                await nd.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def test_commit_over_tcp_and_bad_frames_only_close_their_connection():
    async def main():
        c = Cluster()
        await c.start()
        try:
            c.submit(b"a=1")
            await c.wait_committed([b"a=1"], need=4)
            host, port = c.cfg.addresses[1]
            attacks = [
                struct.pack(">I", 1 << 30),                       # oversized
                struct.pack(">I", 5) + b"Rjunk",                  # malformed hello
                struct.pack(">I", 51) + b"R\x00\x02" + b"\x00" * 48,  # hello with a bad MAC
                struct.pack(">I", 1) + b"C" + struct.pack(">I", 3) + b"\xff\xff\xff",  # bad client frame
            ]
            for blob in attacks:
                r, w = await asyncio.open_connection(host, port)
                w.write(blob)
                await w.drain()
                assert await asyncio.wait_for(r.read(), 5) == b""  # closed by the replica
                w.close()
            # A client connection: requests in, replies out.
            r, w = await asyncio.open_connection(host, port)
            req = encode(Request(b"b=2"))
            w.write(struct.pack(">I", 1) + b"C" + struct.pack(">I", len(req)) + req)
            await w.drain()
            (ln,) = struct.unpack(">I", await r.readexactly(4))
            assert len(await r.readexactly(ln)) == ln
            w.close()
            c.submit(b"c=3")
            await c.wait_committed([b"c=3"], need=4)
            assert c.nodes[1].transport.rejected >= 4
            await c.converge()
        finally:
            await c.close()
    run(main())


def test_kill_primary_under_load_then_restart_it(tmp_path):
    async def main():
        c = Cluster(tmp=tmp_path)
        await c.start()
        try:
            first = [b"k%d=%d" % (i % 7, i) for i in range(40)]
            for p in first:
                c.submit(p)
            await asyncio.sleep(0.01)
            await c.nodes[0].close()  # the primary of view 0 dies mid-stream
            c.nodes[0] = None
            await c.wait_committed(first, timeout=30)
            more = [b"m%d" % i for i in range(20)]
            for p in more:
                c.submit(p)
            await c.wait_committed(more, timeout=30)
            # (Asserted only now: on a fast loopback all of `first` may commit within the 10 ms
            # before the kill, and then nothing needed a new view until `more` arrived.)
            assert all(nd.replica.view >= 1 for nd in c.nodes if nd)
            c.nodes[0] = c._node(0)  # restart: recovers from its own log, then from peers
            await c.nodes[0].start()
            last = [b"z%d" % i for i in range(10)]
            await c.nodes[0].transport.wait_connected()
            for p in last:
                c.submit(p)
            await c.wait_committed(last, timeout=30)
            seq = await c.converge(30)
            ids = set.intersection(*(nd.replica.executed_ids for nd in c.nodes))
            import hashlib
            assert {hashlib.sha256(p).digest() for p in first + more + last} <= ids
            assert seq >= 3
        finally:
            await c.close()
    run(main())


def test_partition_one_replica_away_and_back():
    async def main():
        c = Cluster()
        await c.start()
        try:
            iso = c.nodes[3]
            for nd in c.nodes:
                if nd is not iso:
                    nd.transport.blocked.add(3)
            iso.transport.blocked.update({0, 1, 2})
            batch = [b"p%d" % i for i in range(30)]
            for p in batch:
                c.submit(p)
            await c.wait_committed(batch, need=3)
            assert iso.replica.last_exec == 0
            for nd in c.nodes:
                nd.transport.blocked.clear()
            await c.converge(20)
            assert iso.replica.digest() == c.nodes[0].replica.digest()
        finally:
            await c.close()
    run(main())
