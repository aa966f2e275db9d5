"""The replica's PBFT side: the state machine PBFT drives, the check every replica runs on a
proposed request, and ``CommitteeNode``, which orders this process's own requests (it is the
``pot.api.Node`` the HTTP API submits through) and keeps the ledger's clock moving with Ticks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from pot.api.node import NodeUnavailable
from pot.ledger import Ledger, LedgerConfig, LedgerStateMachine
from pot.ledger.machine import request_op
from pot.pbft.epoch import EpochEntered, EpochSpec
from pot.pbft.epoch_node import EpochNode, EpochStores
from pot.pbft.messages import request_id
from pot.pbft.replica import Replica, ReplicaConfig
from pot.protocol import codec
from pot.protocol import types as T
from pot.roles.events import CommitteeEvent, CommitteeEventCallback

log = logging.getLogger("pot.aggregator")

#: how long (batch time, ms) an executed request's id is remembered for duplicate suppression;
#: the executed-id set is bounded by the traffic of this window, not by history
REPLAY_GRACE_MS = 60_000


class CommitteeStateMachine:
    """PBFT's state machine: the ledger at the batch time (PBFT stamps milliseconds; ledger
    time is in seconds). ``verify`` is the replica's request check; it keeps the decoded op for
    ``execute`` (``LedgerStateMachine``), so each replica decodes a request once."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._sm = LedgerStateMachine(ledger)
        self.verify = self._sm.verify

    def execute(self, requests: list[bytes], timestamp: int) -> list[bytes]:
        return self._sm.execute(requests, timestamp // 1000)

    def forget_after(self, request: bytes, result: bytes, timestamp: int) -> int:
        """When PBFT may forget this request's id (see ``pot.pbft.requests``). The ledger refuses
        every op that took effect again by its own rules (seen message digests, applied chain
        events, signed settlements), so the id is only kept for a short grace: a client that
        retries within it gets REPLAY with the first result, later the ledger's own answer."""
        return timestamp + REPLAY_GRACE_MS

    def digest(self) -> bytes:
        return self._sm.digest()

    def snapshot(self) -> bytes:
        return self._sm.snapshot()

    def restore(self, snapshot: bytes) -> None:
        self._sm.restore(snapshot)

    # --- committee epochs (pot.pbft.epoch.EpochReplica) ------------------------------------------

    def committee(self) -> EpochSpec:
        """The current epoch: members are chain accounts (checksummed), keys their compressed
        public keys; ``ledger.committee().endpoints`` has their PBFT ``host:port``, same order."""
        return epoch_spec(self.ledger.committee())

    def pending_committee(self) -> EpochSpec | None:
        nxt = self.ledger.pending_committee()
        return None if nxt is None else epoch_spec(nxt)

    def activate_committee(self) -> None:
        self.ledger.activate_committee()


def epoch_spec(c) -> EpochSpec:
    """PBFT's view of a ledger committee (``pot.protocol.epoch.Committee``)."""
    return EpochSpec(c.epoch, c.members, c.keys or (b"",) * c.n, c.endpoints)


def verify_request(payload: bytes) -> bool:
    """PBFT's request check (every replica runs it on every request a primary proposes): a
    canonical ledger op, and not a bare chain event (those only come attested). Signatures are
    checked by the ledger itself, once, when the request executes."""
    return request_op(payload) is not None


class _LocalClient:
    """The PBFT client handle of requests this process submits itself (no socket)."""


class CommitteeNode:
    """One PBFT replica over the ledger, a member of an epoch-changing committee (``EpochNode``:
    the committee is the ledger's, and moves with it, docs/COMMITTEE.md). ``await start()``,
    then ``await close()``.

    ``join``: this node is no member of the committee the ledger starts from; it joins the
    committee ``ledger_config`` seeds (its epoch, members, keys and endpoints) by state transfer
    from f + 1 of its members. Without ``join`` the seeded committee is the genesis epoch."""

    def __init__(self, *, replica_id: int, pbft: list[tuple[str, int]], public_keys: list[bytes],
                 pbft_options: dict[str, Any], key: bytes, address: str, ledger_config: LedgerConfig,
                 ledger_path: Path, pbft_dir: Path, on_event: CommitteeEventCallback | None = None,
                 join: bool = False) -> None:
        self.replica_id = replica_id
        self.join = join
        self.address = address
        self.ledger_config = ledger_config
        self._key = key
        self._pbft = (list(pbft), list(public_keys), dict(pbft_options))
        self._ledger_path = ledger_path
        self._pbft_dir = pbft_dir
        self.on_event = on_event
        self.ledger: Ledger | None = None
        self.pbft: EpochNode | None = None
        self._futures: dict[bytes, list[asyncio.Future]] = {}
        self._client = _LocalClient()
        self._stopping = False
        self._view = 0
        self.stats: dict[str, Any] = {"submitted": 0}

    async def start(self) -> None:
        # The PBFT log (checkpoint + committed batches) is the replica's durable truth; the
        # SQLite ledger is rebuilt from it at every start, so the two can never disagree.
        for suffix in ("", "-wal", "-shm"):
            Path(str(self._ledger_path) + suffix).unlink(missing_ok=True)
        self.ledger = Ledger(self.ledger_config, str(self._ledger_path))
        addresses, _keys, options = self._pbft
        sm = CommitteeStateMachine(self.ledger)
        seeded = sm.committee()
        # a joining node's own genesis is never opened: it starts from the committee's state
        genesis = EpochSpec(seeded.number - 1, (), ()) if self.join else seeded
        self.pbft = EpochNode(self.address, self._key, genesis, ReplicaConfig(len(addresses), **options), sm,
                              EpochStores(self._pbft_dir), listen=addresses[self.replica_id], verifier=sm.verify,
                              join=seeded if self.join else None)
        self.pbft.on_reply.append(self._on_reply)
        self.pbft.on_executed.append(self._on_executed)
        self.pbft.on_epoch.append(self._on_epoch)
        await self.pbft.start()
        r = self.pbft.replica
        self._view = r.view if r is not None else 0
        log.info("listening pbft=%s:%d epoch=%d%s seq=%s ledger_seq=%d members=%d threshold=%d",
                 *addresses[self.replica_id], self.pbft.er.epoch, " (joining)" if r is None else "",
                 r.last_exec if r is not None else "-", self.ledger.seq, len(seeded.members),
                 self.ledger.config.threshold)

    def _replica(self) -> Replica:
        """The replica of the current epoch, or NodeUnavailable while there is none."""
        if self._stopping or self.pbft is None:
            raise NodeUnavailable("replica is shutting down")
        r = self.pbft.replica
        if r is None:
            if self.pbft.er.retired:
                raise NodeUnavailable(f"this node left the committee (epoch {self.pbft.er.epoch}); "
                                      "send to a member of the current committee")
            raise NodeUnavailable("this node is joining the committee (state transfer from its members); "
                                  "retry in a few seconds")
        return r

    def _on_epoch(self, e: EpochEntered) -> None:
        self._view = 0  # every epoch starts in view 0
        if e.member:
            log.info("committee epoch %d from seq %d: %d members", e.epoch, e.start, len(self.pbft.er.spec.members))
        else:
            log.warning("committee epoch %d from seq %d: this node is no longer a member", e.epoch, e.start)

    async def close(self) -> dict[str, Any] | None:
        """Stop taking requests and close the replica; its last status (None if it never started)."""
        self._stopping = True
        for futs in self._futures.values():
            for f in futs:
                if not f.done():
                    f.cancel()
        status = None
        if self.pbft is not None:
            r = self.pbft.replica
            status = {"id": self.replica_id, "epoch": self.pbft.er.epoch, "ledgerDigest": self.ledger.digest().hex(),
                      "ledgerSeq": self.ledger.seq}
            if r is not None:
                status.update(view=r.view, lastExecuted=r.last_exec, digest=r.digest().hex())
            await self.pbft.close()
        if self.ledger is not None:
            self.ledger.close()
        return status

    @property
    def view(self) -> int | str:
        r = self.pbft.replica if self.pbft is not None else None
        return r.view if r is not None else "-"

    # --- pot.api.Node ----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        er = self.pbft.er
        r = er.inner
        out = {"replicaId": self.replica_id, "address": self.address, "epoch": er.epoch,
               "threshold": self.ledger.config.threshold}
        if r is None:
            return {**out, "mode": "left" if er.retired else "joining", "members": 0}
        out = {**out, "view": r.view, "primary": r.primary, "lastExecuted": r.last_exec,
               "pbftDigest": r.digest().hex(), "mode": "pbft", "members": len(er.spec.members)}
        if r.sm.boundary is not None:
            out["epochBoundary"] = r.sm.boundary  # the seq the decided change takes effect after
        return out

    async def submit(self, raw: bytes, *, timeout: float = 30.0) -> T.Result:
        """Order ``raw`` through PBFT; the ledger's Result once this replica executed it.
        Retransmits to the current primary until then (a request sent to a primary that
        crashed reaches the next one), as PBFT's clients do (§4.1)."""
        rid = request_id(raw)
        if self._replica().has_executed(rid):
            # A replay: PBFT would answer it with the first result (or, after a restart, not
            # at all); the sender must learn that it changed nothing.
            return self._replayed(rid)
        fut = asyncio.get_running_loop().create_future()
        self._futures.setdefault(rid, []).append(fut)
        self.stats["submitted"] += 1
        deadline = time.monotonic() + timeout
        retry = max(1.0, self._replica().cfg.view_timeout)
        try:
            while True:
                self.pbft.submit(raw, self._client)
                left = deadline - time.monotonic()
                if left <= 0:
                    r = self._replica()
                    raise NodeUnavailable(f"request not committed within {timeout:.0f}s "
                                          f"(epoch {self.pbft.er.epoch}, view {r.view}, primary {r.primary})")
                try:
                    reply = await asyncio.wait_for(asyncio.shield(fut), min(retry, left))
                    return codec.decode(reply)
                except TimeoutError:
                    r = self._replica()
                    if r.has_executed(rid):
                        # ours executed: its reply, unless it came by state transfer (none)
                        rep = r.replies.get(rid)
                        return codec.decode(rep.result) if rep is not None else self._replayed(rid)
                    continue
        finally:
            futs = self._futures.get(rid)
            if futs is not None:
                if fut in futs:
                    futs.remove(fut)
                if not futs:
                    del self._futures[rid]

    def _replayed(self, rid: bytes) -> T.Result:
        rep = self._replica().replies.get(rid)
        then = ""
        if rep is not None:
            first = codec.decode(rep.result)
            then = f" (its result then: {first.reason_enum.name} {first.text})"
        return T.Result.rejected(T.Reason.REPLAY, "this exact message was already executed by the committee"
                                 f"{then}; sending it again changes nothing")

    def _on_reply(self, client: Any, reply) -> None:
        if client is not self._client:
            return
        for fut in self._futures.get(reply.request_id, ()):
            if not fut.done():
                fut.set_result(reply.result)

    def _on_executed(self, e) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("executed seq=%d time=%d requests=%d", e.seq, e.timestamp // 1000, len(e.requests))
        for raw, res in zip(e.requests, e.results):
            r = codec.decode(res)
            if r.nonces:
                log.info("seq=%d settlement nonce=%s created: %s", e.seq, list(r.nonces), r.text)
                self._tell(CommitteeEvent.SETTLEMENT_CREATED, seq=e.seq, nonces=list(r.nonces))
        self.check_view()

    def check_view(self) -> None:
        """Log (INFO) and report a view change this replica went through since the last look."""
        r = self.pbft.replica if self.pbft is not None else None
        if r is None:
            return
        if r.view != self._view:
            log.info("view change: view %d -> %d, primary now replica %d", self._view, r.view, r.primary)
            self._tell(CommitteeEvent.VIEW_CHANGED, old=self._view, view=r.view, primary=r.primary)
            self._view = r.view

    def _tell(self, kind: CommitteeEvent, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    def fire(self, raw: bytes, what: str, timeout: float = 30.0) -> asyncio.Task:
        """Submit without waiting; the outcome is logged (the task's result: the Result, or None)."""
        async def go():
            try:
                res = await self.submit(raw, timeout=timeout)
                level = logging.DEBUG if what == "tick" or not res.ok else logging.INFO
                log.log(level, "%s: %s %s", what, res.reason_enum.name, res.text)
                return res
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: not committed: %s", what, exc)
                return None
        return asyncio.create_task(go())

    async def tick(self) -> None:
        if self.pbft is None or self.pbft.replica is None:
            return  # joining, or no member any more: nothing to order
        # every replica ticks with the same second: one request per second however many submit,
        # and a backup's pending Tick still drives a view change when the primary is silent
        self.fire(codec.encode(T.Tick(at=int(time.time()))), "tick", timeout=5.0)
        self.check_view()

