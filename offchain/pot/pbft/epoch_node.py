"""A member of an epoch-changing committee on the network: the sans-IO ``EpochReplica`` driven
by asyncio, timers and the TCP ``Transport`` (as ``ReplicaNode`` drives a ``Replica``).

Node ids are account addresses (``0x…`` strings); on a link a node is the 20-byte number of its
address, and the pair's MAC key comes from ECDH of the two members' keys in the epoch that
names them. The peers this node links with are the members of every epoch it has open: the
current one, the frozen ones it still answers for laggards, the one the state machine has
decided next (so that a joining member can connect before the boundary) and the one it is
joining. A member that left every such epoch loses its link and can no longer connect.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from pathlib import Path
from typing import Any, Callable

from .crypto import Secp256k1Signer, link_key
from .epoch import EpochEntered, EpochReplica, EpochSpec, SendTo
from .epoch_wire import decode_envelope, encode_envelope
from .messages import Reply, encode
from .replica import Executed, ReplicaConfig, RolledBack, SendClient, SetTimer, Suspected, ViewChanged
from .storage import FileStore, Recovered
from .transport import Transport

log = logging.getLogger("pot.pbft")

#: timer deadlines are rounded up to this (s): one tick serves every deadline inside it
_TIMER_GRAIN = 0.01


def node_number(node: str) -> int:
    """A node's id on the links: its 20-byte account address as a number."""
    return int(node, 16)


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


class EpochStores:
    """One ``FileStore`` per epoch under ``directory`` (``epoch-<n>/``), opened on first write:
    a restart probes later epochs for the one it joined without creating them."""

    def __init__(self, directory: str | Path, fsync: bool = True):
        self.dir = Path(directory)
        self.fsync = fsync
        self._open: dict[int, _LazyStore] = {}

    def __call__(self, epoch: int) -> "_LazyStore":
        s = self._open.get(epoch)
        if s is None:
            s = self._open[epoch] = _LazyStore(self.dir / f"epoch-{epoch}", self.fsync)
        return s

    def sync(self) -> None:
        for s in self._open.values():
            s.sync()

    def close(self) -> None:
        for s in self._open.values():
            s.close()


class _LazyStore:
    def __init__(self, directory: Path, fsync: bool):
        self._dir, self._fsync = directory, fsync
        self._s: FileStore | None = FileStore(directory, fsync) if (directory / FileStore.FILE).exists() else None

    def _store(self) -> FileStore:
        if self._s is None:
            self._s = FileStore(self._dir, self._fsync)
        return self._s

    def load(self) -> Recovered:
        return self._s.load() if self._s is not None else Recovered()

    def sync(self) -> None:
        if self._s is not None:
            self._s.sync()

    def close(self) -> None:
        if self._s is not None:
            self._s.close()
            self._s = None

    def __getattr__(self, name: str) -> Any:
        # every other method writes
        return getattr(self._store(), name)


class EpochNode:
    """``await start()``, then ``await close()``. ``node`` is this node's address, ``listen`` its
    PBFT endpoint; ``join``: not a member of ``genesis``, it joins that committee by state
    transfer (``EpochReplica``)."""

    def __init__(self, node: str, private_key: bytes, genesis: EpochSpec, config: ReplicaConfig,
                 state_machine, stores: EpochStores, *, listen: tuple[str, int],
                 verifier: Callable[[bytes], bool] | None = None, join: EpochSpec | None = None):
        self.node = node
        self.cfg = config
        self.sm = state_machine
        self.stores = stores
        self._sk = private_key
        self._peers_of: tuple = ()
        self._ids: dict[int, str] = {}
        self.on_executed: list[Callable[[Executed], None]] = []
        self.on_reply: list[Callable[[Any, Reply], None]] = []
        self.on_epoch: list[Callable[[EpochEntered], None]] = []
        self._deadlines: list[float] = []
        self._armed: set[float] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._outbox: list = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.transport = Transport(node_number(node), {node_number(node): listen}, {}, self._on_message,
                                   self._on_request, id_len=20, decode=decode_envelope)
        self.er = EpochReplica(node, genesis, config, state_machine,
                               lambda index, spec: Secp256k1Signer(private_key, spec.keys), stores,
                               verifier=verifier, now=time.time(), join=join)

    @property
    def replica(self):
        """The current epoch's ``Replica`` (None while joining or after this node left)."""
        return self.er.inner

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._update_peers()
        await self.transport.start()
        self._run(self.er.start(time.time()))
        # A backstop: the replica of an epoch this node left may still wait on a timer whose
        # deadline a later one's replaced here.
        self._arm(time.time() + self.cfg.status_interval)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._flush_turn()
        await self.transport.close()
        self.stores.close()

    # --- inputs ---

    def submit(self, payload: bytes, client: Any = None) -> None:
        self._run(self.er.request(payload, client, time.time()))

    def _on_request(self, payload: bytes, conn) -> None:
        self.submit(payload, conn)

    def _on_message(self, sender: int, env) -> None:
        node = self._ids.get(sender)
        if node is not None:
            self._run(self.er.receive(env, node, time.time()))

    def _tick(self) -> None:
        self._timer = None
        now = time.time()
        while self._deadlines and self._deadlines[0] <= now + _TIMER_GRAIN:
            self._armed.discard(heapq.heappop(self._deadlines))
        self._run(self.er.tick(now))
        self._arm(now + self.cfg.status_interval)
        self._schedule()

    # --- outputs ---

    def _arm(self, at: float) -> None:
        at = round(at / _TIMER_GRAIN + 0.5) * _TIMER_GRAIN
        if at not in self._armed:
            self._armed.add(at)
            heapq.heappush(self._deadlines, at)
            self._schedule()

    def _schedule(self) -> None:
        if not self._deadlines or self.loop is None:
            return
        at = self._deadlines[0]
        if self._timer is not None:
            if self._timer.when() <= self.loop.time() + (at - time.time()):
                return
            self._timer.cancel()
        self._timer = self.loop.call_later(max(0.0, at - time.time()), self._tick)

    def _run(self, effects: list) -> None:
        for e in effects:
            if type(e) is SetTimer:
                self._arm(e.at)
            else:
                if not self._outbox:
                    self.loop.call_soon(self._flush_turn)
                self._outbox.append(e)

    def _update_peers(self) -> None:
        """Link with the members of every epoch this node has open (see the module doc)."""
        er = self.er
        specs = [s for s in (er.spec, er.sm.pending_committee() if er.spec is not None else None, er._joining)
                 if s is not None] + [s for s, _ in er.frozen.values()]
        key = tuple((s.number, s.members) for s in specs)
        if key == self._peers_of:
            return
        self._peers_of = key
        addresses, keys, ids = {}, {}, {}
        for spec in sorted(specs, key=lambda s: s.number):
            for m, pk, ep in zip(spec.members, spec.keys, spec.endpoints or [None] * len(spec.members)):
                j = node_number(m)
                ids[j] = m
                if ep is not None:
                    addresses[j] = parse_endpoint(ep)
                if m != self.node:
                    keys[j] = link_key(self._sk, pk)
        addresses[self.transport.index] = self.transport.addresses[self.transport.index]
        self._ids = ids
        self.transport.set_peers(addresses, keys)

    def _flush_turn(self) -> None:
        """Once per event-loop turn: make the turn's votes and batches durable (one sync per
        open epoch store), then let its messages and replies out (as ``ReplicaNode``)."""
        if not self._outbox:
            return
        out, self._outbox = self._outbox, []
        self.stores.sync()
        self._update_peers()
        tp = self.transport
        for e in out:
            t = type(e)
            if t is SendTo:
                data = encode_envelope(e.msg)
                for dst in e.to:
                    tp.send(node_number(dst), data)
            elif t is SendClient:
                if hasattr(e.client, "send_msg"):
                    e.client.send_msg(encode(e.msg))
                for cb in self.on_reply:
                    cb(e.client, e.msg)
            elif t is Executed:
                for cb in self.on_executed:
                    cb(e)
            elif t is EpochEntered:
                log.info("node=%s %s epoch %d at seq %d", self.node, "enters" if e.member else "leaves the committee in",
                         e.epoch, e.start)
                for cb in self.on_epoch:
                    cb(e)
            elif t is ViewChanged:
                log.info("node=%s epoch %d view %d -> %d %s: %s", self.node, self.er.epoch, e.old, e.new,
                         "entered" if e.entered else "view change", e.why)
            elif t is Suspected:
                log.info("node=%s epoch %d suspects view %d: %s", self.node, self.er.epoch, e.view, e.why)
            elif t is RolledBack:
                log.warning("node=%s history disagreed with the stable checkpoint at seq %d: %d executed "
                            "batches rolled back, state transferred", self.node, e.seq, e.batches)
        tp.flush()
