"""A committee of real replica processes (``python -m pot.pbft.node``) and a client that keeps
it busy, for the process-fault tests: kill -9, SIGSTOP, late restarts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from pot.pbft.messages import Reply, Request, decode, encode
from pot.ports import free_ports

PY = sys.executable


class Committee:
    """n replica processes on loopback; data under ``tmp/r{i}``."""

    def __init__(self, tmp: Path, n: int = 4, *, view_timeout: float = 1.0, fsync: bool = True,
                 checkpoint_interval: int = 8, log_size: int = 32) -> None:
        self.tmp = tmp
        self.n = n
        self.base = free_ports(n, consecutive=True)[0]
        self.cfg = tmp / "committee.toml"
        self.cfg.write_text(f"""
[committee]
replicas = [{", ".join(f'"127.0.0.1:{self.base + i}"' for i in range(n))}]
key_seed = "proc-test"
[node]
data_dir = "{tmp}/r{{id}}"
fsync = {"true" if fsync else "false"}
trace = true
[replica]
view_timeout = {view_timeout}
status_interval = 0.2
checkpoint_interval = {checkpoint_interval}
log_size = {log_size}
""")
        self.view_timeout = view_timeout
        self.log_size = log_size
        self.procs: list[subprocess.Popen | None] = [None] * n
        self.starts = [0] * n

    def dir(self, i: int) -> Path:
        return self.tmp / f"r{i}"

    def start(self, i: int) -> None:
        self.dir(i).mkdir(parents=True, exist_ok=True)
        self.starts[i] = self.log(i).count("listening on") + 1
        log = open(self.dir(i) / "stderr.log", "ab")
        self.procs[i] = subprocess.Popen(
            [PY, "-m", "pot.pbft.node", "--config", str(self.cfg), "--id", str(i)],
            stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def start_all(self) -> None:
        for i in range(self.n):
            self.start(i)

    def wait_up(self, i: int, timeout: float = 60.0) -> None:
        """Until replica i's latest start is serving (before that a SIGUSR1 would kill it)."""
        end = time.monotonic() + timeout
        while self.log(i).count("listening on") < self.starts[i]:
            p = self.procs[i]
            if p is None or p.poll() is not None:
                raise RuntimeError(f"replica {i} exited:\n{self.log(i)[-2000:]}")
            if time.monotonic() > end:
                raise TimeoutError(f"replica {i} did not come up:\n{self.log(i)[-2000:]}")
            time.sleep(0.02)

    def signal(self, i: int, sig) -> None:
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(sig)

    def kill(self, i: int) -> None:
        p = self.procs[i]
        if p is not None:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()
            self.procs[i] = None

    def stop_all(self) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            if p is not None:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def status(self, ids=None, timeout: float = 5.0) -> list[dict]:
        """Each live replica's status (view, last_exec, digest) and executed request ids,
        written by the process on SIGUSR1."""
        ids = range(self.n) if ids is None else ids
        before = {}
        for i in ids:
            self.wait_up(i)
            f = self.dir(i) / "status.json"
            before[i] = f.stat().st_mtime_ns if f.exists() else 0
            self.signal(i, signal.SIGUSR1)
        out = []
        for i in ids:
            f = self.dir(i) / "status.json"
            end = time.monotonic() + timeout
            while not (f.exists() and f.stat().st_mtime_ns != before[i]):
                if time.monotonic() > end:
                    raise TimeoutError(f"replica {i} wrote no status:\n{self.log(i)[-2000:]}")
                time.sleep(0.02)
            st = json.loads(f.read_text())
            raw = (self.dir(i) / "executed.ids").read_bytes()
            st["ids"] = {raw[k:k + 32] for k in range(0, len(raw), 32)}
            out.append(st)
        return out

    def converge(self, timeout: float = 30.0, ids=None) -> list[dict]:
        """Wait until every replica in ``ids`` executed up to the same sequence number with
        the same digest, in the same view."""
        end = time.monotonic() + timeout
        while True:
            st = self.status(ids)
            if (len({s["last_exec"] for s in st}) == 1 and len({s["digest"] for s in st}) == 1
                    and len({(s["view"], s["in_view_change"]) for s in st}) == 1):
                return st
            if time.monotonic() > end:
                raise AssertionError("replicas did not converge: " + ", ".join(
                    f"r{s['id']} view={s['view']}{'*' if s['in_view_change'] else ''} "
                    f"last_exec={s['last_exec']} digest={s['digest'][:8]}" for s in st))
            time.sleep(0.3)

    def traces(self) -> dict[int, dict[int, str]]:
        """seq -> batch digest, per replica, over every run of it; raises at a seq where one
        replica's own history has two digests."""
        out = {}
        for i in range(self.n):
            hist: dict[int, str] = {}
            f = self.dir(i) / "executed.trace"
            for line in f.read_text().splitlines() if f.exists() else ():
                parts = line.split()
                if len(parts) != 4:
                    continue  # the tail of a line cut by kill -9
                seq, d = int(parts[0]), parts[1]
                if hist.setdefault(seq, d) != d:
                    raise AssertionError(f"replica {i} executed two batches at seq {seq}")
                hist[seq] = d
            out[i] = hist
        return out

    def log(self, i: int) -> str:
        try:
            return (self.dir(i) / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""


def diverging_seqs(traces: dict[int, dict[int, str]]) -> list[int]:
    """Sequence numbers at which two replicas executed different batches."""
    seen: dict[int, set[str]] = {}
    for hist in traces.values():
        for seq, d in hist.items():
            seen.setdefault(seq, set()).add(d)
    return sorted(s for s, ds in seen.items() if len(ds) > 1)


class Load:
    """A client in a thread of its own: keeps ``window`` unique requests in flight to every
    replica, retransmits unanswered ones (§4.1), and records every reply it gets.

    ``acked`` holds each request id some replica answered (a reply means: executed and, the
    replica claims, durable); ``done`` those f+1 replicas answered alike."""

    def __init__(self, base: int, n: int, *, window: int = 16, f: int = 1, prefix: str = "L",
                 size: int = 0) -> None:
        self.base, self.n, self.window, self.f = base, n, window, f
        self.pad = b"x" * size
        self.prefix = prefix
        self.acked: dict[bytes, tuple[int, int]] = {}  # rid -> (replica, seq) of the first reply
        self.done: set[bytes] = set()
        self.sent: dict[bytes, bytes] = {}
        self._votes: dict[tuple[bytes, bytes], set[int]] = {}
        self._ctr = 0
        self.paused = threading.Event()
        self._quiet = threading.Event()  # set by the client once it saw `paused`
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> "Load":
        self._thread.start()
        return self

    def pause(self) -> None:
        """No new requests from now on (those in flight are still retransmitted)."""
        self.paused.set()
        self._quiet.clear()
        if not self._quiet.wait(10):
            raise AssertionError("the load client did not pause")

    def resume(self) -> None:
        self.paused.clear()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def outstanding(self) -> int:
        with self._lock:
            return len(self.sent) - len(self.done & self.sent.keys())

    def wait_progress(self, count: int = 20, timeout: float = 30.0) -> None:
        """Until ``count`` more requests got f+1 replies."""
        want = len(self.done) + count
        end = time.monotonic() + timeout
        while len(self.done) < want:
            if time.monotonic() > end:
                raise AssertionError(f"{want - len(self.done)} of {count} requests not committed in {timeout:.0f}s")
            time.sleep(0.02)

    def wait_drained(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while self.outstanding():
            if time.monotonic() > end:
                raise AssertionError(f"{self.outstanding()} requests not answered by f+1 replicas "
                                     f"within {timeout:.0f}s")
            time.sleep(0.05)

    async def _main(self) -> None:
        conns: dict[int, asyncio.StreamWriter] = {}
        readers: dict[int, asyncio.Task] = {}
        last_send: dict[bytes, float] = {}

        async def read(i, r):
            try:
                while True:
                    (ln,) = struct.unpack(">I", await r.readexactly(4))
                    rep = decode(await r.readexactly(ln))
                    if type(rep) is not Reply:
                        continue
                    with self._lock:
                        self.acked.setdefault(rep.request_id, (rep.replica, rep.seq))
                        v = self._votes.setdefault((rep.request_id, rep.result), set())
                        v.add(rep.replica)
                        if len(v) >= self.f + 1:
                            self.done.add(rep.request_id)
            except (OSError, asyncio.IncompleteReadError, struct.error):
                pass
            finally:
                conns.pop(i, None)

        def send(payload):
            m = encode(Request(payload))
            frame = struct.pack(">I", len(m)) + m
            for w in list(conns.values()):
                try:
                    w.write(frame)
                except OSError:
                    pass

        while not self._stop.is_set():
            for i in range(self.n):
                if i not in conns:
                    try:
                        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.base + i), 0.5)
                    except (OSError, asyncio.TimeoutError):
                        continue
                    w.write(struct.pack(">I", 1) + b"C")
                    conns[i] = w
                    readers[i] = asyncio.create_task(read(i, r))
                    # a fresh connection gets every unanswered request at once
                    for rid, p in list(self.sent.items()):
                        if rid not in self.done:
                            m = encode(Request(p))
                            w.write(struct.pack(">I", len(m)) + m)
            now = time.monotonic()
            paused = self.paused.is_set()
            with self._lock:
                open_ = [rid for rid in self.sent if rid not in self.done]
            for rid in open_:
                if now - last_send.get(rid, 0) > 1.0:
                    last_send[rid] = now
                    send(self.sent[rid])
            if paused:
                self._quiet.set()
            while not paused and len(open_) < self.window:
                self._ctr += 1
                p = f"{self.prefix}{self._ctr}={random.getrandbits(32)}".encode() + self.pad
                rid = hashlib.sha256(p).digest()
                with self._lock:
                    self.sent[rid] = p
                last_send[rid] = now
                open_.append(rid)
                send(p)
            await asyncio.sleep(0.01)
        for w in conns.values():
            w.close()
        for t in readers.values():
            t.cancel()
