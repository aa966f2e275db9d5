"""Replicas as real OS processes (``python -m pot.pbft.node``): kill -9 the primary under load,
restart it from its own log, and check that nothing committed is lost and digests match."""

import asyncio
import json
import os
import signal
import struct
import subprocess
import sys
import time

from pot.pbft.messages import Reply, Request, decode, encode
from pot.ports import free_ports

PY = sys.executable


def write_config(tmp, base):
    cfg = tmp / "committee.toml"
    cfg.write_text(f"""
[committee]
replicas = [{", ".join(f'"127.0.0.1:{base + i}"' for i in range(4))}]
key_seed = "proc-test"
[node]
data_dir = "{tmp}/r{{id}}"
fsync = true
[replica]
view_timeout = 1.0
status_interval = 0.2
checkpoint_interval = 8
log_size = 32
""")
    return cfg


def spawn(cfg, i, tmp):
    log = open(tmp / f"r{i}.log", "ab")
    return subprocess.Popen([PY, "-m", "pot.pbft.node", "--config", str(cfg), "--id", str(i)],
                            stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def client(base, payloads, live, f=1, timeout=40.0):
    """Send every request to every live replica; done when f+1 equal replies per request."""
    conns = []
    for i in live:
        for _ in range(100):
            try:
                conns.append(await asyncio.open_connection("127.0.0.1", base + i))
                break
            except OSError:
                await asyncio.sleep(0.1)
    for r, w in conns:
        w.write(struct.pack(">I", 1) + b"C")
        for p in payloads:
            m = encode(Request(p))
            w.write(struct.pack(">I", len(m)) + m)
    votes: dict = {}
    done = set()

    async def read(r):
        while True:
            (ln,) = struct.unpack(">I", await r.readexactly(4))
            rep = decode(await r.readexactly(ln))
            assert type(rep) is Reply
            votes.setdefault((rep.request_id, rep.result), set()).add(rep.replica)
            if len(votes[(rep.request_id, rep.result)]) >= f + 1:
                done.add(rep.request_id)

    tasks = [asyncio.create_task(read(r)) for r, _ in conns]
    import hashlib
    want = {hashlib.sha256(p).digest() for p in payloads}
    end = time.monotonic() + timeout
    try:
        while not want <= done:
            assert time.monotonic() < end, f"{len(want & done)}/{len(want)} committed"
            await asyncio.sleep(0.05)
    finally:
        for t in tasks:
            t.cancel()
        for _, w in conns:
            w.close()


def status(tmp, i):
    return json.loads((tmp / f"r{i}" / "status.json").read_text())


def test_kill_primary_process_restart_and_digests_match(tmp_path):
    base = free_ports(4, consecutive=True)[0]
    cfg = write_config(tmp_path, base)
    procs = {i: spawn(cfg, i, tmp_path) for i in range(4)}
    try:
        time.sleep(1.5)
        asyncio.run(client(base, [b"a%d=%d" % (i % 5, i) for i in range(30)], range(4)))
        procs[0].send_signal(signal.SIGKILL)  # the primary of view 0, no goodbye
        procs[0].wait()
        asyncio.run(client(base, [b"b%d" % i for i in range(30)], [1, 2, 3]))
        procs[0] = spawn(cfg, 0, tmp_path)  # recovers from its log, then from its peers
        time.sleep(1.0)
        asyncio.run(client(base, [b"c%d" % i for i in range(20)], range(4)))
        time.sleep(2.0)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            p.wait(timeout=20)
    st = [status(tmp_path, i) for i in range(4)]
    assert len({s["digest"] for s in st}) == 1, st
    assert all(s["executed"] == 80 for s in st), st
