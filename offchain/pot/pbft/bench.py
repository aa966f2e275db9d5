"""``pot bench pbft``: commit latency and throughput of the PBFT committee, beside the paper.

All replicas run in this process on one asyncio loop over real loopback TCP sockets with the
real transport (per-link HMAC, framing) and secp256k1 replica signatures. The client sits in
the process too: it hands each request to every replica and a request counts as committed
once f+1 replicas reply with the same result (Castro & Liskov §4.1). Latency and bandwidth are
emulated per link in the transport (``--latency``, ``--bandwidth``).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import resource
import statistics
import time

import click

from pot.ports import free_ports

PAPER_T4 = {10: 38.7, 30: 132.0, 100: 463.0}  # ms, 1 order + 10 validations, localhost
PAPER_T5 = {(10, 100): 1.494, (30, 100): 1.685, (50, 100): 1.842, (30, 1000): 1.682}  # s at 30 Mbps
SCENARIOS = {"1 order + 10 validations": 11, "100 transactions": 100, "1,000 transactions": 1000}


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Committee:
    """n in-process replicas on loopback sockets and an in-process client."""

    def __init__(self, n: int, *, latency_ms=None, bandwidth_mbps=None, verifier=None,
                 batch_max: int = 1024, batch_delay: float = 0.0, max_inflight: int = 16,
                 base_port: int | None = None, seed: int = 0):
        from .crypto import accept_all
        from .kv import KVStateMachine
        from .node import CommitteeConfig, ReplicaNode

        self.n = n
        base = base_port or free_ports(n, consecutive=True)[0]
        cfg, sks = CommitteeConfig.devnet(n, base, seed=f"bench-{seed}", batch_max=batch_max,
                                          batch_delay=batch_delay, max_inflight=max_inflight,
                                          checkpoint_interval=128, log_size=512, view_timeout=30.0, forward_requests=False,
                                          status_interval=5.0)
        cfg.latency_ms = latency_ms
        cfg.bandwidth_mbps = bandwidth_mbps
        self.cfg = cfg
        self.nodes = [ReplicaNode(cfg, i, sks[i], KVStateMachine(), verifier=verifier or accept_all,
                                  transport_seed=seed) for i in range(n)]
        self.f = cfg.replica.f
        self._votes: dict[bytes, dict[bytes, int]] = {}
        self._done: dict[bytes, float] = {}
        self._waiters: dict[bytes, asyncio.Future] = {}
        for nd in self.nodes:
            nd.on_reply.append(self._on_reply)

    def _on_reply(self, client, rep) -> None:
        if rep.request_id in self._done:
            return
        d = self._votes.setdefault(rep.request_id, {})
        d[rep.result] = d.get(rep.result, 0) + 1
        if d[rep.result] >= self.f + 1:
            self._done[rep.request_id] = time.perf_counter()
            del self._votes[rep.request_id]
            fut = self._waiters.pop(rep.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def start(self) -> None:
        _raise_fd_limit()
        for nd in self.nodes:
            await nd.start()
        await asyncio.gather(*(nd.transport.wait_connected(120) for nd in self.nodes))

    async def close(self) -> None:
        for nd in self.nodes:
            await nd.close()

    async def commit(self, payloads: list[bytes]) -> float:
        """Seconds from handing the requests to the replicas until f+1 replies for each."""
        loop = asyncio.get_running_loop()
        ids = [hashlib.sha256(p).digest() for p in payloads]
        futs = []
        for rid in ids:
            fut = loop.create_future()
            self._waiters[rid] = fut
            futs.append(fut)
        t0 = time.perf_counter()
        for nd in self.nodes:
            for p in payloads:
                nd.submit(p, client="bench")
        await asyncio.gather(*futs)
        return time.perf_counter() - t0


def _payloads(k: int, size: int, tag: str) -> list[bytes]:
    # ~300 B messages like the paper's orders/validations (312 B / 304 B).
    return [(f"{tag}-{i}-".encode() + os.urandom(size))[:size] for i in range(k)]


async def _latency(n: int, scenario_size: int, repeats: int, latency_ms=None, bandwidth=None) -> list[float]:
    com = Committee(n, latency_ms=latency_ms, bandwidth_mbps=bandwidth, batch_max=scenario_size,
                    batch_delay=0.001)
    await com.start()
    try:
        await com.commit(_payloads(scenario_size, 300, "warm"))
        # Long-lived setup objects (sockets, keys) need no cyclic GC scans during the runs.
        gc.collect()
        gc.freeze()
        out = []
        for r in range(repeats):
            out.append(await com.commit(_payloads(scenario_size, 300, f"r{r}")))
        return out
    finally:
        await com.close()


async def _throughput(n: int, total: int) -> float:
    from .crypto import make_transaction, verify_signed_transaction

    com = Committee(n, verifier=verify_signed_transaction, batch_max=400, max_inflight=4)
    await com.start()
    try:
        # Clients are other machines: their signing is not part of the committee's cost.
        keys = [hashlib.sha256(b"client%d" % i).digest() for i in range(16)]
        txs = [make_transaction(keys[i % 16], (f"tx-{i}-".encode() + os.urandom(200))[:200])
               for i in range(total)]
        await com.commit(txs[:50])
        txs = txs[50:]
        gc.collect()
        dt = await com.commit(txs)
        return len(txs) / dt
    finally:
        await com.close()


def _auth_costs() -> dict[str, float]:
    import coincurve
    msg = os.urandom(120)
    key = os.urandom(32)
    t = time.perf_counter()
    for _ in range(20000):
        hashlib.blake2b(msg, key=key, digest_size=16).digest()  # the link MAC (transport)
    mac_us = (time.perf_counter() - t) / 20000 * 1e6
    sk = coincurve.PrivateKey()
    d = hashlib.sha256(msg).digest()
    t = time.perf_counter()
    for _ in range(500):
        sig = sk.sign(d, hasher=None)
    sign_us = (time.perf_counter() - t) / 500 * 1e6
    t = time.perf_counter()
    for _ in range(500):
        sk.public_key.verify(sig, d, hasher=None)
    verify_us = (time.perf_counter() - t) / 500 * 1e6
    return {"mac_blake2b_us": mac_us, "secp256k1_sign_us": sign_us, "secp256k1_verify_us": verify_us}


def _parse_latency(s: str | None):
    if not s:
        return None
    if "-" in s:
        lo, hi = s.split("-")
        return (float(lo), float(hi))
    return (float(s), float(s))


@click.command("pbft")
@click.option("--nodes", default="4,10,30,100", help="Committee sizes, comma separated.")
@click.option("--latency", default="30-300", help="WAN one-way link latency in ms: MS or MIN-MAX.")
@click.option("--bandwidth", default=30.0, type=float, help="WAN link bandwidth in Mbps.")
@click.option("--repeats", default=5, type=int, help="Runs per latency figure (median reported).")
@click.option("--tx", "throughput_tx", default=6000, type=int, help="Signed transactions for throughput.")
@click.option("--scenarios", default="1 order + 10 validations,100 transactions,1,000 transactions",
              help="Latency scenarios (see SCENARIOS).")
@click.option("--wan/--no-wan", default=True, help="Run the emulated-WAN rows (Table 5).")
@click.option("--ledger-nodes", default="4,10,30",
              help="Committee sizes of the end-to-end rows through the real ledger ('' for none).")
@click.option("--ledger-orders", default=12, type=int,
              help="Orders per message kind per end-to-end round (x (10 + 10 + 30 + f+1) transactions).")
@click.option("--only-ledger", is_flag=True, help="Only the end-to-end rows through the ledger.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write results as JSON.")
def command(nodes, latency, bandwidth, repeats, throughput_tx, scenarios, wan, ledger_nodes, ledger_orders,
            only_ledger, json_path):
    """PBFT commit latency (Table 4), signed-tx throughput, emulated WAN (Table 5) and end-to-end
    rows through the real ledger (one process per replica)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    sizes = [int(x) for x in nodes.split(",") if x.strip()]
    wanted = [s for s in SCENARIOS if s in scenarios]
    result = {"latency": [], "throughput": [], "wan": [], "ledger": []}
    if only_ledger:
        sizes, wanted, wan = [], [], False
    auth = _auth_costs()
    console.print(f"authentication cost per message: keyed BLAKE2b MAC {auth['mac_blake2b_us']:.1f} µs, "
                  f"secp256k1 sign {auth['secp256k1_sign_us']:.1f} µs / verify "
                  f"{auth['secp256k1_verify_us']:.1f} µs -> links use MACs, signatures only on "
                  "forwardable statements")

    t4 = Table(title="PBFT commit latency, localhost (paper Table 4)")
    for c in ("nodes", "scenario", "median ms", "paper ms"):
        t4.add_column(c)
    for n in sizes:
        for sc in wanted:
            k = SCENARIOS[sc]
            reps = repeats if n < 100 or k <= 100 else max(1, repeats // 2)
            runs = asyncio.run(_latency(n, k, reps))
            med = statistics.median(runs) * 1000
            result["latency"].append({"nodes": n, "scenario": sc, "latency_ms": round(med, 2)})
            paper = PAPER_T4.get(n) if k == 11 else None
            t4.add_row(str(n), sc, f"{med:.1f}", f"{paper}" if paper else "-")
            console.print(f"  n={n} {sc}: {med:.1f} ms (runs: {', '.join(f'{r * 1000:.1f}' for r in runs)})")
    console.print(t4)

    t_tp = Table(title="Sustained throughput of signed transactions (every replica verifies)")
    for c in ("nodes", "tx/s", "target"):
        t_tp.add_column(c)
    tp_sizes = sorted({4} | {n for n in sizes if n <= 10}) if sizes else []
    for n in tp_sizes:
        runs = [asyncio.run(_throughput(n, throughput_tx)) for _ in range(max(1, min(3, repeats)))]
        med = statistics.median(runs)
        result["throughput"].append({"nodes": n, "tx_per_s": round(med, 1)})
        t_tp.add_row(str(n), f"{med:.0f}", ">= 3000" if n == 4 else "-")
    console.print(t_tp)

    if wan:
        lat = _parse_latency(latency)
        t5 = Table(title=f"Emulated WAN: {latency} ms links, {bandwidth} Mbps (paper Table 5)")
        for c in ("nodes", "txs", "median s", "paper s"):
            t5.add_column(c)
        for n, k in [(10, 100), (30, 100), (30, 1000), (50, 100)]:
            if sizes and n > max(sizes) and n != 30:
                continue
            runs = asyncio.run(_latency(n, k, max(1, min(3, repeats)), latency_ms=lat, bandwidth=bandwidth))
            med = statistics.median(runs)
            result["wan"].append({"nodes": n, "txs": k, "latency_ms": [lat[0], lat[1]],
                                  "bandwidth_mbps": bandwidth, "seconds": round(med, 3)})
            p = PAPER_T5.get((n, k))
            t5.add_row(str(n), str(k), f"{med:.3f}", f"{p}" if p else "-")
        console.print(t5)

    e2e_sizes = [int(x) for x in ledger_nodes.split(",") if x.strip()]
    if e2e_sizes:
        from . import ledger_bench

        te = Table(title="End to end through the ledger: signed claim commits, reveals, validations and "
                         "attestations; one process per replica (median of rounds)")
        for c in ("nodes", "state machine", "tx/round", "committed tx/s", "CPU µs/tx/replica", "max replica", "target"):
            te.add_column(c)
        for n in e2e_sizes:
            # (and the same messages over a key-value state machine: PBFT's own share)
            for with_ledger in (True, False):
                row = ledger_bench.run(n, rounds=repeats, orders=ledger_orders, ledger=with_ledger)
                result["ledger"].append(row)
                console.print(f"  n={n}: {row}")
                target = {4: "<= 75", 30: "<= 90"}.get(n, "-") if with_ledger else "-"
                te.add_row(str(n), row["state_machine"], str(row["txs_per_run"]), f"{row['tx_per_s']:.0f}",
                           f"{row['cpu_us_per_tx_per_replica']:.0f}", f"{row['cpu_us_per_tx_max_replica']:.0f}",
                           target)
        console.print(te)

    if json_path:
        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=2)
        console.print(f"wrote {json_path}")
