"""A replica on the network: the sans-IO ``Replica`` driven by asyncio, timers and the TCP
``Transport``. ``python -m pot.pbft.node --config committee.toml --id 2`` runs one replica
process (the aggregator will build on ``ReplicaNode`` with the ledger as its state machine).

Config (TOML)::

    [committee]
    replicas = ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
    key_seed = "devnet"           # devnet keys: sha256(seed, index); or:
    # public_keys = ["02ab..", ...] with private_key = "hex" under [node]
    [node]
    data_dir = "/tmp/pbft"        # {id} is replaced by the replica id
    state_machine = "pot.pbft.kv:KVStateMachine"   # "module:factory"
    verifier = "pot.pbft.crypto:accept_all"        # or pot.pbft.crypto:verify_signed_transaction
    fsync = true
    [replica]                     # any ReplicaConfig field
    checkpoint_interval = 64
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
import time
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from .crypto import Secp256k1Signer, accept_all, devnet_private_key, link_key, public_key
from .messages import Reply, batch_digest, encode
from .replica import (Executed, Replica, ReplicaConfig, RolledBack, Send, SendClient, SetTimer, Suspected,
                      ViewChanged)
from .storage import FileStore, MemoryStore, StateMachine
from .transport import Transport

log = logging.getLogger("pot.pbft")


@dataclass
class CommitteeConfig:
    addresses: list[tuple[str, int]]
    public_keys: list[bytes]
    replica: ReplicaConfig
    latency_ms: tuple[float, float] | None = None
    bandwidth_mbps: float | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def devnet(cls, n: int, base_port: int, seed: str = "devnet", host: str = "127.0.0.1",
               **replica_kw) -> tuple["CommitteeConfig", list[bytes]]:
        sks = [devnet_private_key(seed, i) for i in range(n)]
        return cls([(host, base_port + i) for i in range(n)], [public_key(k) for k in sks],
                   ReplicaConfig(n, **replica_kw)), sks


class ReplicaNode:
    def __init__(self, committee: CommitteeConfig, index: int, private_key: bytes,
                 state_machine: StateMachine, *, verifier: Callable[[bytes], bool] = accept_all,
                 store=None, transport_seed: int = 0):
        self.committee = committee
        self.index = index
        keys: list[bytes | None] = [
            None if j == index else link_key(private_key, committee.public_keys[j])
            for j in range(len(committee.addresses))]
        self.signer = Secp256k1Signer(private_key, committee.public_keys)
        self.replica = Replica(committee.replica, index, state_machine, self.signer,
                               verifier=verifier, store=store if store is not None else MemoryStore(),
                               now=time.time(),
                               on_fault=lambda r, why: log.warning("replica=%d peer=%d fault: %s",
                                                                   index, r, why))
        self.transport = Transport(index, committee.addresses, keys, self._on_message, self._on_request,
                                   latency_ms=committee.latency_ms, bandwidth_mbps=committee.bandwidth_mbps,
                                   seed=transport_seed)
        self.on_executed: list[Callable[[Executed], None]] = []
        self.on_reply: list[Callable[[Any, Reply], None]] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._outbox: list = []
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.transport.start()
        self._run(self.replica.start(time.time()))

    async def close(self) -> None:
        for h in self._timers.values():
            h.cancel()
        self._flush_turn()
        await self.transport.close()
        close = getattr(self.replica.store, "close", None)
        if close:
            close()

    # --- inputs ---

    def submit(self, payload: bytes, client: Any = None) -> None:
        """A client request delivered in-process (benchmarks) or from a client connection."""
        self._run(self.replica.request(payload, client, time.time()))

    def _on_request(self, payload: bytes, conn) -> None:
        self.submit(payload, conn)

    def _on_message(self, sender: int, msg) -> None:
        if sender in self.transport.blocked:
            return
        self._run(self.replica.receive(msg, sender, time.time()))

    def _tick(self, name: str) -> None:
        self._timers.pop(name, None)
        self._run(self.replica.tick(time.time()))

    # --- outputs ---

    def _run(self, effects: list) -> None:
        # Timers now; everything another party may see waits for the end of the turn, when the
        # store is synced (see _flush_turn).
        for e in effects:
            if type(e) is SetTimer:
                old = self._timers.pop(e.name, None)
                if old is not None:
                    old.cancel()
                self._timers[e.name] = self.loop.call_later(max(0.0, e.at - time.time()), self._tick, e.name)
            else:
                if not self._outbox:
                    self.loop.call_soon(self._flush_turn)
                self._outbox.append(e)

    def _flush_turn(self) -> None:
        """Once per event-loop turn: make every vote, view change and executed batch of the
        turn durable (one fsync for all of them), then let the turn's messages and replies out.
        A replica that crashes has said nothing it could forget."""
        if not self._outbox:
            return
        out, self._outbox = self._outbox, []
        self.replica.store.sync()
        me = self.index
        for e in out:
            t = type(e)
            if t is Send:
                data = encode(e.msg)  # encode once, MAC per link
                if e.to is None:
                    self.transport.broadcast(data)
                else:
                    self.transport.send(e.to, data)
            elif t is SendClient:
                if hasattr(e.client, "send_msg"):
                    e.client.send_msg(encode(e.msg))
                for cb in self.on_reply:
                    cb(e.client, e.msg)
            elif t is Executed:
                for cb in self.on_executed:
                    cb(e)
            elif t is ViewChanged:
                if e.entered:
                    log.info("replica=%d view %d -> %d entered: %s", me, e.old, e.new, e.why)
                else:
                    log.info("replica=%d view %d -> %d view change: %s", me, e.old, e.new, e.why)
            elif t is Suspected:
                log.info("replica=%d suspects view %d (primary %d): %s", me, e.view,
                         e.view % len(self.committee.addresses), e.why)
            elif t is RolledBack:
                log.warning("replica=%d history disagreed with the stable checkpoint at seq %d: "
                            "%d executed batches rolled back, state transferred", me, e.seq, e.batches)
        self.transport.flush()


def _load(target: str):
    mod, _, attr = target.partition(":")
    return getattr(importlib.import_module(mod), attr)


def load_config(path: str, index: int) -> tuple[CommitteeConfig, dict, bytes]:
    raw = tomllib.loads(Path(path).read_text())
    com, node = raw["committee"], raw.get("node", {})
    addrs = []
    for a in com["replicas"]:
        host, _, port = a.rpartition(":")
        addrs.append((host, int(port)))
    names = {f.name for f in fields(ReplicaConfig)}
    rcfg = ReplicaConfig(len(addrs), **{k: v for k, v in raw.get("replica", {}).items() if k in names and k != "n"})
    if "key_seed" in com:
        sks = [devnet_private_key(com["key_seed"], i) for i in range(len(addrs))]
        pks, sk = [public_key(k) for k in sks], sks[index]
    else:
        pks = [bytes.fromhex(k) for k in com["public_keys"]]
        sk = bytes.fromhex(node["private_key"])
    return CommitteeConfig(addrs, pks, rcfg), node, sk


async def run(config_path: str, index: int) -> None:
    committee, node_cfg, sk = load_config(config_path, index)
    sm = _load(node_cfg.get("state_machine", "pot.pbft.kv:KVStateMachine"))()
    verifier = _load(node_cfg.get("verifier", "pot.pbft.crypto:accept_all"))
    data_dir = node_cfg.get("data_dir")
    store = FileStore(data_dir.replace("{id}", str(index)), fsync=node_cfg.get("fsync", True)) if data_dir else None
    node = ReplicaNode(committee, index, sk, sm, verifier=verifier, store=store)
    node.on_executed.append(lambda e: log.debug("replica=%d executed seq=%d requests=%d", index, e.seq,
                                                len(e.requests)))
    out_dir = Path(data_dir.replace("{id}", str(index))) if data_dir else None
    if out_dir is not None and node_cfg.get("trace", False):
        # For the fault tests: one line per batch this replica executed and made durable
        # ("seq digest time pid"), appended across restarts, so a test compares histories at equal
        # sequence numbers. Written unbuffered: a kill -9 loses nothing the kernel has.
        trace = open(out_dir / "executed.trace", "a", buffering=1)
        pid = os.getpid()
        node.on_executed.append(lambda e: trace.write(
            f"{e.seq} {batch_digest(e.timestamp, e.requests).hex()} {time.time():.3f} {pid}\n"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if out_dir is not None:
        loop.add_signal_handler(signal.SIGUSR1, write_status, node, out_dir)
    await node.start()
    log.info("replica=%d listening on %s:%d view=%d last_exec=%d", index, *committee.addresses[index],
             node.replica.view, node.replica.last_exec)
    await stop.wait()
    if out_dir is not None:
        write_status(node, out_dir)
    await node.close()


def write_status(node: ReplicaNode, out_dir: Path) -> None:
    """``status.json`` (view, sequence numbers, digest) and ``executed.ids`` (every executed
    request id, 32 bytes each) for operators and the fault tests; on SIGUSR1 and at exit."""
    import json
    import os

    r = node.replica
    ids = out_dir / "executed.ids.tmp"
    ids.write_bytes(b"".join(sorted(r.executed_ids)))
    os.replace(ids, out_dir / "executed.ids")
    tmp = out_dir / "status.json.tmp"
    tmp.write_text(json.dumps({"id": r.id, "view": r.view, "in_view_change": r.in_view_change,
                               "last_exec": r.last_exec, "stable": r.h, "digest": r.digest().hex(),
                               "executed": len(r.executed_ids)}))
    os.replace(tmp, out_dir / "status.json")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Run one PBFT replica.")
    ap.add_argument("--config", required=True)
    ap.add_argument("--id", type=int, required=True)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(args.config, args.id))


if __name__ == "__main__":
    main()
