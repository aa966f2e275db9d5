"""End-to-end PBFT rows of ``pot bench pbft``: real signed ledger messages through a committee
of replica processes, each with its own ledger on disk.

One OS process per replica (``python -m pot.pbft.ledger_bench SPEC ID``): the replica's whole
CPU (its transport, PBFT, the ledger, SQLite) is what ``getrusage`` of that process reports,
and nothing (signature caches, decoded objects) is shared between replicas. The shipped
replica configuration (batch size, checkpoint interval, windows) with two changes for a
2-core machine: the client sends each request to every replica (so backups need not relay
it), and the view timeout is 10 s (so a slow shared machine does not change views).

The workload (``Workload``) walks orders through their windows in the setup (stakes and orders
attested, claim commits, reveals, test releases), then measures rounds that each commit a mix
of claim commits (orders in training), claim reveals (orders in their reveal window),
validation commits (orders in validation) and chain attestations of new orders by f+1
members. A round's transactions are sent at once; it ends when f+1 replicas answered each.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .messages import Reply, Request, decode, encode

_FRAME = struct.Struct(">I")
MINERS, VALIDATORS = 10, 3


def _key(*parts: object) -> bytes:
    return hashlib.sha256(repr(("pot-bench-ledger",) + parts).encode()).digest()


class Workload:
    """Deterministic actors and signed ledger messages for one committee of ``n``."""

    def __init__(self, n: int, *, chain_id: int = 31337) -> None:
        from pot.ledger import LedgerConfig
        from pot.protocol import address_of_key
        from pot.protocol.committee import max_faulty

        self.n = n
        self.quorum = max_faulty(n) + 1  # attestations an event needs
        self.members = [_key("member", i) for i in range(n)]
        self.member_addrs = [address_of_key(k) for k in self.members]
        self.miners = [(_key("miner", i), address_of_key(_key("miner", i))) for i in range(MINERS)]
        self.validators = [(_key("validator", i), address_of_key(_key("validator", i))) for i in range(VALIDATORS)]
        self.client = address_of_key(_key("client"))
        self.config = LedgerConfig(chain_id=chain_id, order_book="0x" + "0b" * 20, reward_multisig="0x" + "ad" * 20,
                                   committee=tuple(self.member_addrs), attested_chain_events=True)
        self.domain = self.config.message_domain
        self._ref = 0

    def spec(self) -> dict:
        return {"chain_id": self.config.chain_id, "n": self.n}

    # --- chain events, attested by f+1 members ---

    def attest(self, op) -> list[bytes]:
        from pot.protocol import ChainAttestation, codec

        self._ref += 1
        ref = hashlib.sha256(b"ref%d" % self._ref).digest()
        raw = codec.encode(op)
        return [codec.encode(ChainAttestation(self.member_addrs[i], ref, raw).sign(self.domain, self.members[i]))
                for i in range(self.quorum)]

    def stakes(self) -> list[bytes]:
        from pot.protocol import AGGREGATOR, MINER, VALIDATOR, StakeChanged

        out = []
        for _, a in self.miners:
            out += self.attest(StakeChanged(a, MINER, 1000))
        for _, a in self.validators:
            out += self.attest(StakeChanged(a, VALIDATOR, 1000))
        for a in self.member_addrs:
            out += self.attest(StakeChanged(a, AGGREGATOR, 1000))
        return out

    def place(self, oid: int, t0: int, train: int, reveal: int, validate: int = 3600) -> list[bytes]:
        from pot.protocol import Order, OrderPlaced, model_type_to_bytes

        order = Order(oid, self.client, 10**18, t0, train, reveal, validate, 600,
                      model_type_to_bytes("classification-accuracy-v1"), "bafyspec", b"\x01" * 32)
        return self.attest(OrderPlaced(order))

    def release(self, oid: int, t3: int) -> list[bytes]:
        from pot.protocol import TestDataReleased

        return self.attest(TestDataReleased(oid, "bafytest", t3))

    # --- signed participant messages ---

    @staticmethod
    def _mid(oid: int, i: int) -> bytes:
        return hashlib.sha256(b"model-%d-%d" % (oid, i)).digest()

    def commits(self, oid: int) -> list[bytes]:
        from pot.protocol import ClaimCommit, claim_commitment, codec

        out = []
        for i, (k, a) in enumerate(self.miners):
            m = self._mid(oid, i)
            c = claim_commitment(oid, a, m, _key("salt", oid, i))
            out.append(codec.encode(ClaimCommit(oid, a, c).sign(self.domain, k)))
        return out

    def reveals(self, oid: int) -> list[bytes]:
        from pot.protocol import ClaimReveal, codec

        return [codec.encode(ClaimReveal(oid, a, self._mid(oid, i), _key("salt", oid, i),
                                         "bafy" + self._mid(oid, i).hex()[:16]).sign(self.domain, k))
                for i, (k, a) in enumerate(self.miners)]

    def validations(self, oid: int) -> list[bytes]:
        from pot.protocol import ValidationCommit, codec, validation_commitment

        out = []
        for vk, va in self.validators:
            for i in range(MINERS):
                m = self._mid(oid, i)
                c = validation_commitment(oid, va, m, 500_000 + i, _key("vsalt", oid, i))
                out.append(codec.encode(ValidationCommit(oid, va, m, c).sign(self.domain, vk)))
        return out


# --- one replica process -----------------------------------------------------------------------

class _LedgerStateMachine:
    """The ledger at the batch time (PBFT stamps milliseconds, ledger time is seconds), as the
    aggregator's ``CommitteeStateMachine`` drives it: ``verify`` is the aggregator's request check
    and keeps the decoded op for ``execute`` (one decode per replica)."""

    def __init__(self, ledger) -> None:
        from pot.ledger import LedgerStateMachine

        self._sm = LedgerStateMachine(ledger)
        self.verify = self._sm.verify

    def execute(self, requests, timestamp):
        return self._sm.execute(requests, timestamp // 1000)

    def forget_after(self, request, result, timestamp):
        return timestamp + 60_000

    def digest(self):
        return self._sm.digest()

    def snapshot(self):
        return self._sm.snapshot()

    def restore(self, snapshot):
        self._sm.restore(snapshot)


async def _serve(spec: dict, index: int) -> None:
    from pot.ledger import Ledger

    from .crypto import devnet_private_key, public_key
    from .node import CommitteeConfig, ReplicaNode
    from .replica import ReplicaConfig
    from .storage import FileStore

    n, base = spec["n"], spec["base_port"]
    out = Path(spec["dir"]) / f"r{index}"
    out.mkdir(parents=True, exist_ok=True)
    wl = Workload(n, chain_id=spec["chain_id"])
    sks = [devnet_private_key(spec["seed"], i) for i in range(n)]
    rcfg = ReplicaConfig(n, forward_requests=False, view_timeout=10.0)
    committee = CommitteeConfig([("127.0.0.1", base + i) for i in range(n)], [public_key(k) for k in sks], rcfg)
    if spec.get("ledger", True):
        ledger = Ledger(wl.config, str(out / "ledger.sqlite"))
        sm = _LedgerStateMachine(ledger)
        verifier = sm.verify
    else:
        # The same messages over a key-value state machine: what PBFT itself costs.
        from .crypto import accept_all
        from .kv import KVStateMachine

        ledger, sm, verifier = None, KVStateMachine(), accept_all
    node = ReplicaNode(committee, index, sks[index], sm, verifier=verifier, store=FileStore(out / "pbft"))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    marks = 0

    def cpu_mark() -> None:
        nonlocal marks
        ru = resource.getrusage(resource.RUSAGE_SELF)
        marks += 1
        tmp = out / "cpu.tmp"
        tmp.write_text(json.dumps({"mark": marks, "cpu_s": ru.ru_utime + ru.ru_stime, "sys_s": ru.ru_stime,
                                   "last_exec": node.replica.last_exec, "view": node.replica.view}))
        os.replace(tmp, out / "cpu.json")

    loop.add_signal_handler(signal.SIGUSR2, cpu_mark)
    await node.start()
    await node.transport.wait_connected(120)
    (out / "ready").write_text("1")
    await stop.wait()
    await node.close()
    if ledger is not None:
        ledger.close()


def replica_main(spec_path: str, index: int) -> None:
    spec = json.loads(Path(spec_path).read_text())
    prof_dir = os.environ.get("POT_BENCH_PROFILE")
    if prof_dir and index in (0, 1):
        import cProfile

        # CPU time, not wall time: the replicas share the cores, so wall time would count waits
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        try:
            asyncio.run(_serve(spec, index))
        finally:
            prof.disable()
            prof.dump_stats(str(Path(prof_dir) / f"replica{index}.prof"))
    else:
        asyncio.run(_serve(spec, index))


# --- the driver: processes, client, rounds -----------------------------------------------------

class _Client:
    """Sends each request to every replica; a request is committed once f+1 replicas answered
    it with the same result (Castro & Liskov §4.1)."""

    def __init__(self, n: int, base: int, f: int) -> None:
        self.n, self.base, self.f = n, base, f
        self.writers: list[asyncio.StreamWriter] = []
        self.votes: dict[bytes, dict[bytes, int]] = {}
        self.results: dict[bytes, bytes] = {}
        self.waiting: dict[bytes, asyncio.Future] = {}
        self.tasks: list[asyncio.Task] = []

    async def connect(self) -> None:
        for i in range(self.n):
            r, w = await asyncio.open_connection("127.0.0.1", self.base + i)
            w.write(_FRAME.pack(1) + b"C")
            self.writers.append(w)
            self.tasks.append(asyncio.create_task(self._read(r)))

    async def _read(self, r: asyncio.StreamReader) -> None:
        try:
            while True:
                (ln,) = _FRAME.unpack(await r.readexactly(4))
                rep = decode(await r.readexactly(ln))
                if type(rep) is Reply:
                    self._on_reply(rep)
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    def _on_reply(self, rep: Reply) -> None:
        rid = rep.request_id
        if rid in self.results:
            return
        d = self.votes.setdefault(rid, {})
        d[rep.result] = d.get(rep.result, 0) + 1
        if d[rep.result] >= self.f + 1:
            self.results[rid] = rep.result
            del self.votes[rid]
            fut = self.waiting.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def commit(self, payloads: list[bytes], timeout: float) -> float:
        """Seconds until f+1 replicas answered every request."""
        loop = asyncio.get_running_loop()
        futs = []
        for p in payloads:
            fut = loop.create_future()
            self.waiting[hashlib.sha256(p).digest()] = fut
            futs.append(fut)
        frames = b"".join(_FRAME.pack(len(m)) + m for m in (encode(Request(p)) for p in payloads))
        t0 = time.perf_counter()
        for w in self.writers:
            w.write(frames)
        await asyncio.wait_for(asyncio.gather(*futs), timeout)
        return time.perf_counter() - t0

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        for t in self.tasks:
            t.cancel()


class _Procs:
    def __init__(self, n: int, tmp: Path, seed: str, ledger: bool = True) -> None:
        from pot.ports import free_ports

        self.n, self.tmp = n, tmp
        self.base = free_ports(n, consecutive=True)[0]
        self.spec_path = tmp / "spec.json"
        self.spec = {"n": n, "base_port": self.base, "dir": str(tmp), "seed": seed, "chain_id": 31337,
                     "ledger": ledger}
        self.spec_path.write_text(json.dumps(self.spec))
        self.procs: list[subprocess.Popen] = []

    def start(self, timeout: float = 180.0) -> None:
        for i in range(self.n):
            log = open(self.tmp / f"r{i}.log", "wb")
            self.procs.append(subprocess.Popen([sys.executable, "-m", "pot.pbft.ledger_bench", str(self.spec_path),
                                                str(i)], stdout=log, stderr=subprocess.STDOUT))
        end = time.monotonic() + timeout
        while not all((self.tmp / f"r{i}" / "ready").exists() for i in range(self.n)):
            dead = [i for i, p in enumerate(self.procs) if p.poll() is not None]
            if dead:
                raise RuntimeError(f"replica {dead[0]} exited: "
                                   + (self.tmp / f"r{dead[0]}.log").read_text()[-2000:])
            if time.monotonic() > end:
                raise RuntimeError("replica processes did not connect in time")
            time.sleep(0.1)

    def cpu(self) -> list[dict]:
        """Each replica's CPU seconds so far (getrusage of its process)."""
        before = {}
        for i in range(self.n):
            f = self.tmp / f"r{i}" / "cpu.json"
            before[i] = json.loads(f.read_text())["mark"] if f.exists() else 0
        for p in self.procs:
            p.send_signal(signal.SIGUSR2)
        out = []
        end = time.monotonic() + 30
        for i in range(self.n):
            f = self.tmp / f"r{i}" / "cpu.json"
            while True:
                try:
                    d = json.loads(f.read_text())
                    if d["mark"] > before[i]:
                        out.append(d)
                        break
                except (OSError, ValueError):
                    pass
                if time.monotonic() > end:
                    raise RuntimeError(f"replica {i} did not report its CPU time")
                time.sleep(0.01)
        return out

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


async def _drive(procs: _Procs, wl: Workload, rounds: int, orders: int, ledger: bool = True) -> dict:
    from pot.protocol import codec

    f = (procs.n - 1) // 3
    client = _Client(procs.n, procs.base, f)
    await client.connect()
    refused: list[str] = []

    async def step(payloads: list[bytes], what: str) -> float:
        dt = await client.commit(payloads, timeout=600)
        for p in (payloads if ledger else ()):
            res = codec.decode(client.results[hashlib.sha256(p).digest()])
            if not res.ok:
                refused.append(f"{what}: {res.reason_enum.name} {res.text}")
        return dt

    try:
        oid = 0
        per = {"commit": [], "reveal": [], "validate": [], "attest": []}
        for kind in per:
            for _ in range(rounds * orders):
                oid += 1
                per[kind].append(oid)
        if ledger:
            await _setup(step, wl, per, refused)

        runs = []
        for r in range(rounds):
            sl = slice(r * orders, (r + 1) * orders)
            mix = [[m for o in per["commit"][sl] for m in wl.commits(o)],
                   [m for o in per["reveal"][sl] for m in wl.reveals(o)],
                   [m for o in per["validate"][sl] for m in wl.validations(o)],
                   [m for o in per["attest"][sl] for m in wl.place(o, int(time.time()) - 1, 3600, 600)]]
            txs = [m for group in zip(*(_spread(g, max(map(len, mix))) for g in mix)) for m in group if m]
            before = procs.cpu()
            dt = await step(txs, f"round {r}")
            after = procs.cpu()
            cpu = [(a["cpu_s"] - b["cpu_s"]) / len(txs) * 1e6 for a, b in zip(after, before)]
            sys_ = [(a["sys_s"] - b["sys_s"]) / len(txs) * 1e6 for a, b in zip(after, before)]
            runs.append({"txs": len(txs), "seconds": dt, "tx_per_s": len(txs) / dt,
                         "cpu_us_per_tx_per_replica": statistics.mean(cpu), "cpu_us_per_tx_max": max(cpu),
                         "sys_us_per_tx_per_replica": statistics.mean(sys_),
                         "batches": after[0]["last_exec"] - before[0]["last_exec"],  # PBFT instances it took
                         "views": sorted({a["view"] for a in after})})
        return {"runs": runs, "refused": refused}
    finally:
        await client.close()


async def _setup(step, wl: Workload, per: dict[str, list[int]], refused: list[str]) -> None:
    """Stakes; then orders walked into their windows (sized from the rate the stakes committed at)."""
    stakes = wl.stakes()
    rate = len(stakes) / await step(stakes, "stake")
    later = len(per["reveal"] + per["validate"]) * (MINERS + wl.quorum) + len(per["commit"]) * wl.quorum
    now = int(time.time())
    train_end = now + 3 + int(2.5 * later / rate)
    reveal_len = 3 + int(2.5 * len(per["validate"]) * max(MINERS, wl.quorum) / rate)
    setup = []
    for o in per["commit"]:
        setup += wl.place(o, now - 1, 3600, 600)
    for o in per["reveal"]:
        setup += wl.place(o, now - 1, train_end - now + 1, 3600)
    for o in per["validate"]:
        setup += wl.place(o, now - 1, train_end - now + 1, reveal_len)
    for o in per["reveal"] + per["validate"]:
        setup += wl.commits(o)
    await step(setup, "setup")
    trained = train_end + 1
    await asyncio.sleep(max(0.0, trained - time.time() + 1.05))
    await step([m for o in per["validate"] for m in wl.reveals(o)], "setup reveal")
    released = trained + reveal_len
    await asyncio.sleep(max(0.0, released - time.time() + 1.05))
    await step([m for o in per["validate"] for m in wl.release(o, released)], "setup release")
    if refused:
        raise RuntimeError(f"{len(refused)} setup messages refused, e.g. {refused[:3]}")


def _spread(items: list, length: int) -> list:
    """``items`` padded with None to ``length``, evenly: the message kinds interleave."""
    out: list = [None] * length
    for i, x in enumerate(items):
        out[i * length // max(len(items), 1)] = x
    return out


def run(n: int, *, rounds: int = 5, orders: int = 12, seed: str = "ledger-bench", ledger: bool = True) -> dict:
    """One committee of ``n`` replica processes; ``rounds`` measured rounds (median reported).
    ``ledger=False``: the same messages over a key-value state machine (PBFT's own cost)."""
    from .bench import _raise_fd_limit

    _raise_fd_limit()
    wl = Workload(n)
    keep = os.environ.get("POT_BENCH_KEEP")  # a directory: keep the replicas' logs and data there
    with tempfile.TemporaryDirectory(prefix=f"pot-bench-pbft-ledger-{n}-", dir=keep) as d:
        if keep:
            d = tempfile.mkdtemp(prefix=f"pot-bench-pbft-ledger-{n}-", dir=keep)
        procs = _Procs(n, Path(d), seed, ledger)
        try:
            procs.start()
            res = asyncio.run(_drive(procs, wl, rounds, orders, ledger))
        finally:
            procs.stop()
    runs = res["runs"]
    return {"nodes": n, "state_machine": "ledger" if ledger else "kv", "txs_per_run": runs[0]["txs"], "runs": len(runs),
            "tx_per_s": round(statistics.median(r["tx_per_s"] for r in runs), 1),
            "cpu_us_per_tx_per_replica": round(statistics.median(r["cpu_us_per_tx_per_replica"] for r in runs), 1),
            "cpu_us_per_tx_max_replica": round(statistics.median(r["cpu_us_per_tx_max"] for r in runs), 1),
            "sys_us_per_tx_per_replica": round(statistics.median(r["sys_us_per_tx_per_replica"] for r in runs), 1),
            "batches_per_round": [r["batches"] for r in runs],
            "refused": len(res["refused"]), "refused_examples": res["refused"][:3],
            "view_changes": max(max(r["views"]) for r in runs)}


if __name__ == "__main__":
    replica_main(sys.argv[1], int(sys.argv[2]))
