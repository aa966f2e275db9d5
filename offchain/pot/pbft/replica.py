"""A sans-IO PBFT replica (Castro & Liskov, OSDI 1999), in the manner of h11.

Inputs: ``request(payload, client, now)``, ``receive(msg, sender, now)`` and ``tick(now)``;
``now`` is wall-clock seconds supplied by the driver. Each returns a list of effects:
``Send`` (to one replica, or ``None`` for every other replica), ``SendClient`` (a ``Reply`` to
the client handle the request came with), ``SetTimer`` (call ``tick`` at or after ``at``),
``Executed`` (a committed batch, in sequence order), and for operators ``Suspected`` and
``ViewChanged``. No sockets, clocks or randomness here: the simulator, the asyncio node and
the tests all drive the same object.

Durability: every vote, view change and executed batch is written to the replica's
``ReplicaStore`` as it is made; the driver calls ``store.sync()`` before it lets any effect of
that input leave (see ``storage``). A restarted replica recovers all of it and re-joins with
its own log: it never contradicts what it said before the crash.

Views: a replica that times out does not leave its view alone. It sends a signed ``Suspect``
and relays what it waits for to every replica (as BFT-SMaRt's first timeout does); it starts
a view change once 2f+1 replicas suspect the view, or once f+1 others are in later views
(Castro & Liskov §4.5.2), and relays the 2f+1 suspects so that every correct replica follows.
A replica that was paused, partitioned or restarted thus never sits alone in a view nobody
else joins; it learns the committee's view from the NEW-VIEW its peers answer a ``Fetch`` with.

``sender`` must be the replica id the transport authenticated (per-link MAC); the replica
still checks that it matches the id inside the message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from pot.protocol.committee import bft_quorum, max_faulty

from .crypto import RequestVerifier, Signer, accept_all
from .messages import (
    Checkpoint, Commit, Committed, Fetch, NewView, PrePrepare, Prepare, PreparedCert, Reply,
    Request, State, Suspect, SuspectCert, ViewChange, batch_digest, decode, encode, request_id, H,
)
from .storage import (
    LoggedBatch, MemoryStore, ReplicaStore, StateMachine, StoredCheckpoint, ViewState,
    decode_snapshot_parts, encode_snapshot_parts,
)

_MASK = (1 << 256) - 1
_STALE = "stale"  # _check_batch: the batch time is older than the clock skew allows


@dataclass(frozen=True)
class ReplicaConfig:
    n: int
    checkpoint_interval: int = 64  # K: a checkpoint every K sequence numbers
    log_size: int = 256  # L: high watermark H = h + L (Castro & Liskov §4.3), L >= 2K
    batch_max: int = 1024  # requests per pre-prepare
    batch_delay: float = 0.0  # seconds the primary waits to fill a batch
    max_inflight: int = 16  # pre-prepared but not executed batches at the primary
    view_timeout: float = 2.0  # first view-change timeout; doubles each failed view (§4.4)
    max_view_timeout: float = 60.0
    status_interval: float = 0.5  # retransmission / catch-up period
    clock_skew: float = 10.0  # seconds a batch time may differ from this replica's clock
    verify_prepare_sigs: bool = True  # check prepare signatures of certificates before they are
    # forwarded in a view change (lazily, see Replica._forwardable); False never checks them
    forward_requests: bool = True  # backups relay client requests to the primary (§4.1);
    # off when clients already send every request to every replica (the benchmark's client)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        return bft_quorum(self.n)

    def primary(self, view: int) -> int:
        return view % self.n


# --- effects ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send:
    to: int | None  # None: every other replica
    msg: Any


@dataclass(frozen=True, slots=True)
class SendClient:
    client: Any
    msg: Reply


@dataclass(frozen=True, slots=True)
class SetTimer:
    name: str
    at: float


@dataclass(frozen=True, slots=True)
class Executed:
    seq: int
    timestamp: int
    requests: tuple[bytes, ...]
    results: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Suspected:
    """This replica suspects the primary of ``view`` (for operators' logs)."""
    view: int
    why: str


@dataclass(frozen=True, slots=True)
class ViewChanged:
    """``old`` -> ``new``: a view change started (``entered`` False) or the new view began."""
    old: int
    new: int
    entered: bool
    why: str


@dataclass(frozen=True, slots=True)
class RolledBack:
    """Our executed history disagreed with the stable checkpoint 2f+1 replicas signed at
    ``seq``: their state replaced ours, and our last ``batches`` executed batches are void."""
    seq: int
    batches: int


class _Slot:
    __slots__ = ("view", "pp", "prepares", "commits", "prepared", "committed", "deferred", "age")

    def __init__(self, view: int):
        self.view = view
        self.pp: PrePrepare | None = None
        self.prepares: dict[int, Prepare] = {}
        self.commits: dict[int, bytes] = {}
        self.prepared = False
        self.committed = False
        # A pre-prepare older than the clock skew allows (a retransmission reaching a replica
        # that was paused, partitioned or restarted): taken once f+1 others vouch for it.
        self.deferred: PrePrepare | None = None
        self.age = 0  # status ticks it has been unfinished


class Replica:
    def __init__(self, config: ReplicaConfig, index: int, state_machine: StateMachine,
                 signer: Signer, *, verifier: RequestVerifier = accept_all,
                 store: ReplicaStore | None = None, now: float = 0.0,
                 on_fault: Callable[[int, str], None] | None = None):
        self.cfg = config
        self.id = index
        self.sm = state_machine
        self.signer = signer
        self.verifier = verifier
        self.store: ReplicaStore = store if store is not None else MemoryStore()
        self.on_fault = on_fault
        self._out: list = []

        self.view = 0
        self.in_view_change = False
        self.seq = 0  # last sequence number this replica assigned as primary
        self.h = 0  # low watermark = last stable checkpoint
        self.stable_digest = b""
        self.stable_proof: tuple[Checkpoint, ...] = ()
        self.stable_snapshot = b""
        self.slots: dict[int, _Slot] = {}
        self.certs: dict[int, PreparedCert] = {}  # highest-view prepared certificate per seq
        self.committed: dict[int, tuple[int, tuple[bytes, ...]]] = {}
        self.exec_log: dict[int, tuple[int, tuple[bytes, ...]]] = {}
        self.fetch_votes: dict[int, dict[bytes, set[int]]] = {}
        self.fetch_batches: dict[bytes, tuple[int, tuple[bytes, ...]]] = {}
        self.ckpt_votes: dict[int, dict[int, Checkpoint]] = {}
        self.own_ckpts: dict[int, tuple[bytes, bytes]] = {}  # seq -> (digest, snapshot)

        # Execution state that is part of every checkpoint (so state transfer carries it).
        self.last_exec = 0
        self.last_ts = 0
        self.executed_ids: set[bytes] = set()
        self.ids_hash = 0  # MSet-add hash of executed_ids, cheap to keep incrementally

        # Requests: received but not executed (order of arrival), their clients, verified ids.
        self.pending: dict[bytes, bytes] = {}
        self.pending_since: dict[bytes, float] = {}
        # §4.4: the request the view timer runs for (the oldest we wait for when it started).
        # Other requests executing do not restart it: a primary that orders everything but
        # this request (censorship) is suspected when it expires.
        self._timed_rid: bytes | None = None
        self.proposed: set[bytes] = set()
        self.queue: dict[bytes, None] = {}  # pending and not yet proposed, in arrival order
        self.clients: dict[bytes, Any] = {}
        self.verified: set[bytes] = set()
        self.replies: dict[bytes, Reply] = {}

        # View change (§4.4).
        self.view_changes: dict[int, dict[int, ViewChange]] = {}
        self.new_view_msg: NewView | None = None
        self._nv_sent: dict[tuple[int, int], float] = {}  # (peer, view) -> next time we may re-send
        self._valid_vcs: dict[tuple[int, int, bytes], ViewChange] = {}
        self.vc_attempts = 0
        self.faulty: set[int] = set()
        # Replicas that want to leave our current view (signed Suspects, ours included), and
        # the 2f+1 we left our last view with (relayed until the new view starts).
        self.suspects: dict[int, Suspect] = {}
        self._left_with: SuspectCert | None = None
        self._active_view = 0  # the last view we took part in (for the logs)

        self.timers: dict[str, float] = {}
        self.max_seen = 0
        self._last_progress = -1
        self._primary_ts = 0
        self._recovering = 0
        self._status_ticks = 0

        genesis = self._checkpoint_digest(0)
        # The state this replica's log starts from, which needs no proof: the genesis, or for a
        # committee epoch (pbft.epoch) its boundary checkpoint, stored without one.
        self.base: tuple[int, bytes] = (0, genesis)
        self.stable_digest = genesis
        self.own_ckpts[0] = (genesis, self._snapshot())
        self.stable_snapshot = self.own_ckpts[0][1]
        self._recover(now)
        self._set_timer("status", now + self.cfg.status_interval)

    # --- public inputs ------------------------------------------------------------------------

    @property
    def primary(self) -> int:
        return self.cfg.primary(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.id and not self.in_view_change

    def start(self, now: float) -> list:
        """Announce ourselves after (re)start: ask peers for what we missed (and the view
        they are in), and re-send our part of what is unfinished."""
        self._recovering = 4  # status ticks to keep asking peers after a (re)start
        self._fetch(None)  # (the timers set while recovering are in _out already)
        return self._drain()

    def has_executed(self, rid: bytes) -> bool:
        """Whether the request with id ``rid`` already executed here (a resubmission of it is
        a replay)."""
        return rid in self.executed_ids

    def request(self, payload: bytes, client: Any, now: float) -> list:
        rid = request_id(payload)
        if rid in self.executed_ids:
            # §4.1: a retransmitted request that already executed gets the cached reply.
            rep = self.replies.get(rid)
            if rep is not None and client is not None:
                self._out.append(SendClient(client, rep))
            return self._drain()
        if rid not in self.verified:
            if not self.verifier(payload):
                return self._drain()
            self.verified.add(rid)
        if client is not None:
            self.clients[rid] = client
        if rid not in self.pending:
            self.pending[rid] = payload
            self.pending_since[rid] = now
            if rid not in self.proposed:
                self.queue[rid] = None
            if self.is_primary:
                self._maybe_propose(now)
            elif client is not None and self.cfg.forward_requests and not self.in_view_change:
                self._out.append(Send(self.primary, Request(payload)))
            # The primary waits too: batches it proposed that nobody can take (stamped before
            # it was cut off for longer than the clock skew) need the next view, and its own
            # suspect may be the 2f+1-th.
            if not self.in_view_change and "view" not in self.timers:
                self._arm_view_timer(now)
        elif (client is not None and self.cfg.forward_requests and not self.is_primary
              and rid not in self.proposed):
            # §4.1: a client retransmitting a request we hold that no pre-prepare of this view
            # carries. The primary may never have had it (it crashed with the request in flight,
            # or the view changed since we relayed it): relay it to every replica, so the
            # primary can order it and every backup waits for it (its view timer runs).
            self._out.append(Send(None, Request(payload)))
        return self._drain()

    def receive(self, msg: Any, sender: int, now: float) -> list:
        handler = self._handlers.get(type(msg))
        if handler is not None and 0 <= sender < self.cfg.n and sender != self.id:
            handler(self, msg, sender, now)
        return self._drain()

    def tick(self, now: float) -> list:
        due = [name for name, at in self.timers.items() if at <= now + 1e-9]
        for name in due:
            del self.timers[name]
        for name in due:
            if name == "batch":
                if self.is_primary:
                    self._maybe_propose(now, timer_fired=True)
            elif name == "view":
                self._on_view_timeout(now)
            elif name == "status":
                self._on_status(now)
        return self._drain()

    def digest(self) -> bytes:
        """The checkpoint digest of the current state (state machine + dedup + time)."""
        return self._checkpoint_digest(self.last_exec)

    # --- helpers ------------------------------------------------------------------------------

    def _drain(self) -> list:
        out, self._out = self._out, []
        return out

    def _fetch(self, to: int | None, seq: int | None = None) -> None:
        # `view`: the last view we are active in; peers in a later one answer with its NEW-VIEW.
        self._out.append(Send(to, Fetch(self.last_exec + 1 if seq is None else seq,
                                        self.view - 1 if self.in_view_change else self.view, self.id)))

    def _set_timer(self, name: str, at: float) -> None:
        self.timers[name] = at
        self._out.append(SetTimer(name, at))

    def _arm_view_timer(self, now: float) -> None:
        # §4.4: (re)start the view timer for the oldest request we are waiting to execute.
        self._timed_rid = next(iter(self.pending))
        self._set_timer("view", now + self._timeout())

    def _update_view_timer(self, now: float) -> None:
        """After requests left `pending` (executed, or learned by state transfer): stop the
        timer if we wait for nothing; restart it if the request it ran for is done but we wait
        for others (§4.4). While the request it runs for waits, it keeps running. During a
        view change it runs whatever we wait for: the new-view may never come."""
        if self.in_view_change:
            return
        if not self.pending:
            self.timers.pop("view", None)
            self._timed_rid = None
        elif self._timed_rid not in self.pending or "view" not in self.timers:
            self._arm_view_timer(now)

    def _timeout(self) -> float:
        return min(self.cfg.view_timeout * (2 ** self.vc_attempts), self.cfg.max_view_timeout)

    def _fault(self, replica: int, why: str) -> None:
        self.faulty.add(replica)
        if self.on_fault is not None:
            self.on_fault(replica, why)

    def _checkpoint_digest(self, seq: int) -> bytes:
        return H(self.sm.digest(), self.ids_hash.to_bytes(32, "big"),
                 self.last_ts.to_bytes(8, "big"), seq.to_bytes(8, "big"))

    def _snapshot(self) -> bytes:
        return encode_snapshot_parts([self.sm.snapshot(), self.last_ts.to_bytes(8, "big"),
                                      b"".join(sorted(self.executed_ids))])

    def _restore(self, snapshot: bytes) -> None:
        sm_snap, ts, ids = decode_snapshot_parts(snapshot)
        if len(ids) % 32:
            raise ValueError("bad snapshot ids")
        self.sm.restore(sm_snap)
        self.last_ts = int.from_bytes(ts, "big")
        self.executed_ids = {ids[i:i + 32] for i in range(0, len(ids), 32)}
        self.ids_hash = 0
        for rid in self.executed_ids:
            self.ids_hash = (self.ids_hash + self._id_term(rid)) & _MASK

    @staticmethod
    def _id_term(rid: bytes) -> int:
        return int.from_bytes(hashlib.sha256(b"pot-ids" + rid).digest(), "big")

    def _in_window(self, seq: int) -> bool:
        return self.h < seq <= self.h + self.cfg.log_size

    def _slot(self, seq: int, view: int) -> _Slot | None:
        s = self.slots.get(seq)
        if s is None or s.view < view:
            s = _Slot(view)
            self.slots[seq] = s
        elif s.view > view:
            return None
        return s

    # --- recovery from the replica's own log ----------------------------------------------------

    def _recover(self, now: float) -> None:
        rec = self.store.load()
        if rec.checkpoint is not None:
            c = rec.checkpoint
            self._restore(c.snapshot)
            self.last_exec = self.h = c.seq
            self.stable_digest = c.digest
            self.stable_snapshot = c.snapshot
            self.stable_proof = tuple(decode_proof(c.proof))
            self.own_ckpts = {c.seq: (c.digest, c.snapshot)}
            if not self.stable_proof:
                self.base = (c.seq, c.digest)
        for b in rec.batches:
            if b.seq == self.last_exec + 1 and self._may_execute(b.seq):
                self._apply(b.seq, b.timestamp, b.requests, persist=False, reply=False)
        if rec.view is not None:
            self.view, self.in_view_change = rec.view.view, rec.view.in_view_change
            self._active_view = self.view - 1 if self.in_view_change else self.view
            if rec.view.view_change is not None and self.in_view_change:
                self.view_changes[self.view] = {self.id: rec.view.view_change}
                self._left_with = rec.view.left_with
        if rec.new_view is not None and rec.new_view.view <= self.view:
            self.new_view_msg = rec.new_view
        # Our votes: we re-send them (peers may have lost theirs, see storage) and never cast a
        # different one for the same view and sequence number.
        top = self.last_exec
        for seq, r in rec.slots.items():
            if seq <= self.h:
                continue
            pp = r.pre_prepare
            if pp is not None:
                slot = self.slots[seq] = _Slot(pp.view)
                slot.pp = pp
                slot.age = 1  # peers may have lost their votes: re-send ours at the first tick
                self.max_seen = max(self.max_seen, seq)
                self._primary_ts = max(self._primary_ts, pp.timestamp)
                if r.prepare is not None and r.prepare.view == pp.view and r.prepare.digest == pp.digest:
                    slot.prepares[self.id] = r.prepare
                if pp.view == self.view:
                    top = max(top, seq)
                    for req in pp.requests:
                        rid = request_id(req)
                        self.proposed.add(rid)
                        if seq > self.last_exec and rid not in self.executed_ids:
                            self.pending[rid] = req
                            self.pending_since[rid] = now
                            self.verified.add(rid)
            cert = r.cert
            if cert is not None:
                self.certs[seq] = cert
                slot = self.slots.get(seq)
                cp = cert.pre_prepare
                if slot is not None and slot.view == cp.view and slot.pp is not None and slot.pp.digest == cp.digest:
                    slot.prepared = True
                    slot.commits[self.id] = cp.digest
                    for p in cert.prepares:
                        slot.prepares.setdefault(p.replica, p)
        self.seq = top
        if self.in_view_change:
            self._set_timer("view", now + self._timeout())  # the new-view may never come
        elif self.pending:
            self._arm_view_timer(now)

    # --- normal case (§4.2) ---------------------------------------------------------------------

    def _maybe_propose(self, now: float, timer_fired: bool = False) -> None:
        cfg = self.cfg
        while True:
            if self.seq - self.last_exec >= cfg.max_inflight or self.seq + 1 > self.h + cfg.log_size:
                return
            if not self.queue:
                return
            if cfg.batch_delay > 0 and len(self.queue) < cfg.batch_max and not timer_fired:
                first = self.pending_since[next(iter(self.queue))]
                if now < first + cfg.batch_delay:
                    if "batch" not in self.timers:
                        self._set_timer("batch", first + cfg.batch_delay)
                    return
            take = []
            for rid in self.queue:
                take.append(rid)
                if len(take) >= cfg.batch_max:
                    break
            for rid in take:
                del self.queue[rid]
            reqs = tuple(self.pending[r] for r in take)
            self.proposed.update(take)
            # The primary stamps the batch with its clock, never running backwards (§4 DESIGN).
            ts = max(int(now * 1000), self._primary_ts, self.last_ts)
            self._primary_ts = ts
            self.seq += 1
            pp = PrePrepare(self.view, self.seq, ts, batch_digest(ts, reqs), reqs, self.id)
            pp = PrePrepare(pp.view, pp.seq, pp.timestamp, pp.digest, pp.requests, self.id,
                            self.signer.sign(pp.signable()))
            slot = self._slot(pp.seq, self.view)
            slot.pp = pp
            self.store.save_pre_prepare(pp)
            self._out.append(Send(None, pp))
            timer_fired = False

    def _check_batch(self, pp: PrePrepare, now: float, check_time: bool) -> str | None:
        """Why this pre-prepare must not be accepted, or None. Every field we can check."""
        if pp.digest != batch_digest(pp.timestamp, pp.requests):
            return "forged digest"
        if check_time:
            if not pp.requests:
                return "empty batch"
            skew = self.cfg.clock_skew * 1000
            if pp.timestamp > now * 1000 + skew:
                return "timestamp outside clock skew"
            if pp.timestamp < now * 1000 - skew:
                # Too old for our clock: a fresh proposal with a bad time, or a retransmission
                # we get late (we were paused, cut off or restarted). Not proof of a fault.
                return _STALE
            prev = self.slots.get(pp.seq - 1)
            # (Against last_ts only for a batch we have yet to execute: one we executed already,
            # learned from peers while we missed its pre-prepare, may be older than our last.)
            if (pp.seq > self.last_exec and pp.timestamp < self.last_ts) or (
                    prev is not None and prev.pp is not None and prev.view == pp.view
                    and pp.timestamp < prev.pp.timestamp):
                return "timestamp runs backwards"
        if len(pp.requests) > self.cfg.batch_max:
            return "batch too large"
        if not self.signer.verify(pp.replica, pp.signable(), pp.sig):
            # One check per batch: a pre-prepare we accept may be forwarded in a certificate.
            return "bad pre-prepare signature"
        for r in pp.requests:
            rid = request_id(r)
            if rid not in self.verified:
                if not self.verifier(r):
                    return "invalid request"
                self.verified.add(rid)
        return None

    def _on_pre_prepare(self, pp: PrePrepare, sender: int, now: float,
                        check_time: bool = True) -> None:
        self.max_seen = max(self.max_seen, pp.seq)
        if (self.in_view_change or pp.view != self.view or sender != self.primary
                or pp.replica != sender or not self._in_window(pp.seq)):
            # (A replica that already executed pp.seq still prepares and commits it: replicas
            # behind it need its votes to commit the re-proposal after a view change.)
            return
        slot = self._slot(pp.seq, pp.view)
        if slot is None:
            return
        if slot.pp is not None:
            if slot.pp.digest != pp.digest:
                # Equivocation: the primary signed two batches for one (v, n).
                self._fault(sender, "equivocation")
                self._suspect(now, f"pre-prepare {pp.seq}: equivocation")
            return
        why = self._check_batch(pp, now, check_time)
        if why is _STALE:
            slot.deferred = pp
            self._take_deferred(pp.seq, slot, now)
            return
        if why is not None:
            self._fault(sender, why)
            self._suspect(now, f"pre-prepare {pp.seq}: {why}")
            return
        slot.pp = pp
        slot.deferred = None
        for r in pp.requests:
            rid = request_id(r)
            if rid not in self.pending and rid not in self.executed_ids:
                self.pending[rid] = r
                self.pending_since[rid] = now
            self.proposed.add(rid)
            self.queue.pop(rid, None)
        if "view" not in self.timers and self.pending:
            self._arm_view_timer(now)
        prep = Prepare(pp.view, pp.seq, pp.digest, self.id)
        prep = Prepare(prep.view, prep.seq, prep.digest, self.id, self.signer.sign(prep.signable()))
        slot.prepares[self.id] = prep
        self.store.save_pre_prepare(pp)
        self.store.save_prepare(prep)
        self._out.append(Send(None, prep))
        self._check_prepared(pp.seq, slot, now)

    def _take_deferred(self, seq: int, slot: _Slot, now: float) -> None:
        """A pre-prepare held back as too old is taken once f+1 replicas other than its primary
        prepared or committed its digest: one of them is correct and checked its time when it
        was fresh (by induction), as for the re-proposals of a NEW-VIEW."""
        pp = slot.deferred
        if pp is None or slot.pp is not None:
            return
        d = pp.digest
        vouch = {r for r, p in slot.prepares.items() if p.digest == d}
        vouch.update(r for r, x in slot.commits.items() if x == d)
        vouch.discard(pp.replica)
        vouch.discard(self.id)
        if len(vouch) >= self.cfg.f + 1:
            slot.deferred = None
            self._on_pre_prepare(pp, pp.replica, now, check_time=False)

    def _on_prepare(self, m: Prepare, sender: int, now: float) -> None:
        self.max_seen = max(self.max_seen, m.seq)
        if (m.replica != sender or m.view != self.view or self.in_view_change
                or sender == self.cfg.primary(m.view) or not self._in_window(m.seq)):
            return
        slot = self._slot(m.seq, m.view)
        if slot is None or sender in slot.prepares:
            return
        # Kept after the slot prepared too: spares for a certificate whose signatures turn out
        # bad when it is checked for forwarding (see _forwardable).
        slot.prepares[sender] = m
        if slot.deferred is not None:
            self._take_deferred(m.seq, slot, now)
        elif not slot.prepared:
            self._check_prepared(m.seq, slot, now)

    def _check_prepared(self, seq: int, slot: _Slot, now: float) -> None:
        pp = slot.pp
        if pp is None or slot.prepared:
            return
        need = self.cfg.quorum - 1
        if len(slot.prepares) < need:
            return  # (cheap guard: counting matches on every prepare is O(n^2) per batch)
        matching = [p for p in slot.prepares.values() if p.digest == pp.digest]
        if len(matching) < need:
            return
        slot.prepared = True
        self.certs[seq] = PreparedCert(pp, tuple(matching[:need]))
        # The certificate is what a view change must carry for this batch (it may have
        # committed at a replica that got our commit): it outlives a crash of ours.
        self.store.save_cert(self.certs[seq])
        self._out.append(Send(None, Commit(pp.view, seq, pp.digest, self.id)))
        slot.commits[self.id] = pp.digest
        self._check_committed(seq, slot, now)

    def _forwardable(self, seq: int, cert: PreparedCert) -> PreparedCert:
        """The certificate with every signature checked, for a VIEW-CHANGE.

        Prepares arrive MAC-authenticated per link, which is all the normal case needs (the
        sender is authenticated, so 'prepared' holds); their signatures matter only once the
        certificate is forwarded as proof to third parties. So they are checked lazily, here:
        a bad one (a Byzantine backup's) is replaced by another matching prepare of the slot
        (slots keep the prepares that arrive after it prepared). A certificate that cannot be
        completed is still sent as it is, never left out: the view-change is then rejected
        and does not count towards a new-view quorum, which keeps the quorum-intersection
        argument (some valid view-change of any 2f+1 carries every committed batch) intact.
        """
        if not self.cfg.verify_prepare_sigs:
            return cert
        pp, need, verify = cert.pre_prepare, self.cfg.quorum - 1, self.signer.verify
        good, have = [], set()
        for p in cert.prepares:
            if p.replica == self.id or verify(p.replica, p.signable(), p.sig):
                good.append(p)
                have.add(p.replica)
            else:
                self._fault(p.replica, "bad prepare signature")
        if len(good) == len(cert.prepares):
            return cert
        slot = self.slots.get(seq)
        if slot is not None and slot.view == pp.view and slot.pp is not None and slot.pp.digest == pp.digest:
            for p in list(slot.prepares.values()):
                if len(good) >= need:
                    break
                if p.replica in have or p.digest != pp.digest or p.replica == pp.replica:
                    continue
                if p.replica == self.id or verify(p.replica, p.signable(), p.sig):
                    good.append(p)
                    have.add(p.replica)
                else:
                    del slot.prepares[p.replica]
                    self._fault(p.replica, "bad prepare signature")
        if len(good) < need:
            return cert
        cert = PreparedCert(pp, tuple(good[:need]))
        self.certs[seq] = cert
        self.store.save_cert(cert)
        return cert

    def _on_commit(self, m: Commit, sender: int, now: float) -> None:
        self.max_seen = max(self.max_seen, m.seq)
        if m.replica != sender or m.view != self.view or not self._in_window(m.seq):
            return
        slot = self._slot(m.seq, m.view)
        if slot is None or slot.committed:
            return
        slot.commits.setdefault(sender, m.digest)
        if slot.deferred is not None:
            self._take_deferred(m.seq, slot, now)
        self._check_committed(m.seq, slot, now)

    def _check_committed(self, seq: int, slot: _Slot, now: float) -> None:
        if not slot.prepared or slot.committed:
            return
        d = slot.pp.digest
        q = self.cfg.quorum
        if len(slot.commits) < q or sum(1 for x in slot.commits.values() if x == d) < q:
            return
        slot.committed = True
        if seq > self.last_exec and seq not in self.committed:
            self.committed[seq] = (slot.pp.timestamp, slot.pp.requests)
        self._execute_ready(now)

    # --- execution -----------------------------------------------------------------------------

    def _execute_ready(self, now: float) -> None:
        progressed = False
        while self._may_execute(self.last_exec + 1):
            b = self.committed.pop(self.last_exec + 1, None)
            if b is None:
                break
            self._apply(self.last_exec + 1, b[0], b[1])
            progressed = True
        if progressed:
            for s in [s for s in self.committed if s <= self.last_exec]:
                del self.committed[s]
            self._update_view_timer(now)
            self.vc_attempts = 0
            if self.is_primary:
                self._maybe_propose(now)

    def _may_execute(self, seq: int) -> bool:
        # A committee change (pbft.epoch): this epoch's replicas execute nothing after its
        # boundary; the next epoch's replicas order what comes after it.
        limit = getattr(self.sm, "exec_limit", None)
        return limit is None or seq <= limit

    def _apply(self, seq: int, ts: int, reqs: tuple[bytes, ...], persist: bool = True,
               reply: bool = True) -> None:
        if persist:
            # Persist before replying (DESIGN §4): a restarted replica replays this log.
            self.store.append(LoggedBatch(seq, ts, reqs))
        fresh, seen = [], set()
        for r in reqs:
            rid = request_id(r)
            # Duplicate suppression: the same request ordered twice executes once.
            if rid in self.executed_ids or rid in seen:
                continue
            seen.add(rid)
            fresh.append((rid, r))
        # Ledger time never runs backwards even if a faulty primary's batch got through.
        ts_eff = max(ts, self.last_ts)
        results = self.sm.execute([r for _, r in fresh], ts_eff) if fresh else []
        self.last_ts = ts_eff
        self.last_exec = seq
        self.exec_log[seq] = (ts, reqs)
        after = getattr(self.sm, "after_batch", None)
        if after is not None:
            after(seq)  # before the checkpoint below: a change taking effect here is in its state
        for (rid, _), res in zip(fresh, results):
            self.executed_ids.add(rid)
            self.ids_hash = (self.ids_hash + self._id_term(rid)) & _MASK
            self.pending.pop(rid, None)
            self.pending_since.pop(rid, None)
            self.proposed.discard(rid)
            self.queue.pop(rid, None)
            # (Also while replaying our log after a restart: a client that retransmits a
            # request whose reply the crash swallowed still gets it, §4.1.)
            rep = Reply(self.view, seq, rid, self.id, res)
            if len(self.replies) > 10_000:
                self.replies.clear()
            self.replies[rid] = rep
            if reply:
                client = self.clients.pop(rid, None)
                if client is not None:
                    self._out.append(SendClient(client, rep))
        for rid in seen:
            self.pending.pop(rid, None)
            self.pending_since.pop(rid, None)
            self.proposed.discard(rid)
            self.queue.pop(rid, None)
        if reply:
            self._out.append(Executed(seq, ts_eff, tuple(r for _, r in fresh), tuple(results)))
        if seq % self.cfg.checkpoint_interval == 0:
            digest = self._checkpoint_digest(seq)
            self.own_ckpts[seq] = (digest, self._snapshot())
            c = Checkpoint(seq, digest, self.id)
            c = Checkpoint(seq, digest, self.id, self.signer.sign(c.signable()))
            self.ckpt_votes.setdefault(seq, {})[self.id] = c
            # (Replaying our log after a restart: the status tick re-announces it. Peers may
            # have lost theirs too; without it the watermarks would never move again.)
            if reply:
                self._out.append(Send(None, c))
                self._check_stable(seq, digest)

    # --- checkpoints and garbage collection (§4.3) ---------------------------------------------

    def _on_checkpoint(self, m: Checkpoint, sender: int, now: float) -> None:
        if m.replica != sender or m.seq <= self.h or m.seq % self.cfg.checkpoint_interval:
            return
        self.max_seen = max(self.max_seen, m.seq)
        if m.seq > self.h + 4 * self.cfg.log_size and m.seq > self.last_exec + 4 * self.cfg.log_size:
            # Far ahead of us: keep only its vote for state transfer, bounded.
            pass
        if not self.signer.verify(sender, m.signable(), m.sig):
            self._fault(sender, "bad checkpoint signature")
            return
        votes = self.ckpt_votes.setdefault(m.seq, {})
        votes[sender] = m
        self._check_stable(m.seq, m.digest)

    def _check_stable(self, seq: int, digest: bytes) -> None:
        votes = self.ckpt_votes.get(seq, {})
        proof = tuple(c for c in votes.values() if c.digest == digest)
        if len(proof) < self.cfg.quorum or seq <= self.h:
            return
        own = self.own_ckpts.get(seq)
        if own is not None and own[0] == digest:
            self._make_stable(seq, digest, own[1], proof[:self.cfg.quorum])
        elif self.last_exec < seq:
            # Behind: 2f+1 replicas vouch for this state; fetch it (§4.3 / §5.3).
            self._fetch(proof[0].replica if proof[0].replica != self.id else None)
        elif own is not None and own[0] != digest:
            # Our history disagrees with what 2f+1 replicas signed (a log lost or corrupted
            # before this version kept every vote): roll back to their state (see _on_state).
            self._fetch(proof[0].replica if proof[0].replica != self.id else None, seq)

    def _make_stable(self, seq: int, digest: bytes, snapshot: bytes,
                     proof: tuple[Checkpoint, ...], rollback: bool = False) -> None:
        self.h = seq
        self.stable_digest = digest
        self.stable_snapshot = snapshot
        self.stable_proof = proof
        self.store.save_checkpoint(StoredCheckpoint(seq, digest, snapshot, encode_proof(proof)),
                                   rollback=rollback)
        # Discard everything at or below the stable checkpoint (§4.3 garbage collection).
        for d in (self.slots, self.certs, self.exec_log, self.fetch_votes, self.committed):
            for s in [s for s in d if s <= seq]:
                del d[s]
        for s in [s for s in self.ckpt_votes if s < seq]:
            del self.ckpt_votes[s]
        for s in [s for s in self.own_ckpts if s < seq]:
            del self.own_ckpts[s]
        if self.seq < seq:
            self.seq = seq

    # --- catch-up and state transfer -----------------------------------------------------------

    def _on_fetch(self, m: Fetch, sender: int, now: float) -> None:
        if m.replica != sender:
            return
        if m.seq > self.last_exec + 1:
            # The sender is ahead of us: we are the one behind.
            self.max_seen = max(self.max_seen, m.seq - 1)
        start = m.seq
        if self.new_view_msg is not None and self.new_view_msg.view > m.view:
            # The sender is in an earlier view (paused, cut off, restarted): this is how it
            # learns ours, with the proof, and joins it without anyone changing views.
            self._send_new_view(sender, now)
        if start <= self.h and self.h > 0:
            self._out.append(Send(sender, State(self.h, self.stable_digest, self.stable_snapshot,
                                                self.stable_proof, self.id)))
            start = self.h + 1
        end = min(self.last_exec, start + self.cfg.log_size)
        for s in range(start, end + 1):
            b = self.exec_log.get(s)
            if b is not None:
                self._out.append(Send(sender, Committed(s, b[0], b[1], self.id)))
        # Also resend our votes of this view for those instances: when only one correct
        # replica executed a batch, f+1 Committed never arrive, but the sender can still
        # commit the batch itself from the prepares and commits it missed.
        if not self.in_view_change:
            for s in range(m.seq, self.last_exec + 1):
                slot = self.slots.get(s)
                if slot is None or slot.view != self.view or slot.pp is None:
                    continue
                if self.id == self.primary:
                    self._out.append(Send(sender, slot.pp))
                elif self.id in slot.prepares:
                    self._out.append(Send(sender, slot.prepares[self.id]))
                if slot.prepared:
                    self._out.append(Send(sender, Commit(slot.view, s, slot.pp.digest, self.id)))

    def _on_committed(self, m: Committed, sender: int, now: float) -> None:
        self._recovering = 0
        if m.replica != sender or m.seq <= self.last_exec or m.seq > self.last_exec + 4 * self.cfg.log_size:
            return
        d = batch_digest(m.timestamp, m.requests)
        votes = self.fetch_votes.setdefault(m.seq, {})
        holders = votes.setdefault(d, set())
        holders.add(sender)
        self.fetch_batches[d] = (m.timestamp, m.requests)
        # f+1 replicas executed it: at least one is correct, so it was committed.
        if len(holders) >= self.cfg.f + 1 and m.seq not in self.committed:
            self.committed[m.seq] = self.fetch_batches[d]
            del self.fetch_votes[m.seq]
            self._execute_ready(now)
            for dd in [dd for dd, b in self.fetch_batches.items()
                       if not any(dd in v for v in self.fetch_votes.values())]:
                del self.fetch_batches[dd]

    def _valid_proof(self, seq: int, digest: bytes, proof: tuple[Checkpoint, ...]) -> bool:
        if seq == self.base[0] and (seq == 0 or digest == self.base[1]):
            return True
        signers = set()
        for c in proof:
            if (type(c) is Checkpoint and c.seq == seq and c.digest == digest
                    and c.replica not in signers and self.signer.verify(c.replica, c.signable(), c.sig)):
                signers.add(c.replica)
        return len(signers) >= self.cfg.quorum

    def _on_state(self, m: State, sender: int, now: float) -> None:
        self._recovering = 0
        if m.replica != sender or m.seq <= self.h or not self._may_execute(m.seq):
            return
        # At or below what we executed, a state only replaces a history that disagrees with it.
        rollback = m.seq <= self.last_exec
        if rollback and self.own_ckpts.get(m.seq, (m.digest,))[0] == m.digest:
            return
        if not self._valid_proof(m.seq, m.digest, m.proof):
            self._fault(sender, "state without proof")
            return
        backup = self._snapshot()
        saved = (self.last_ts, self.executed_ids, self.ids_hash)
        try:
            self._restore(m.snapshot)
            ok = self._checkpoint_digest(m.seq) == m.digest
        except Exception:
            ok = False
        if not ok:
            # A lying peer's snapshot never replaces our state: the digest is what 2f+1 signed.
            self._restore(backup)
            self.last_ts, self.executed_ids, self.ids_hash = saved
            self._fault(sender, "snapshot does not match checkpoint digest")
            return
        if rollback:
            self._out.append(RolledBack(m.seq, self.last_exec - m.seq))
            for d in (self.exec_log, self.committed, self.own_ckpts):
                for s in [s for s in d if s > m.seq]:
                    del d[s]
        self.last_exec = m.seq
        self.own_ckpts[m.seq] = (m.digest, m.snapshot)
        for rid in list(self.pending):
            if rid in self.executed_ids:
                self.pending.pop(rid)
                self.pending_since.pop(rid, None)
                self.proposed.discard(rid)
                self.queue.pop(rid, None)
        self._make_stable(m.seq, m.digest, m.snapshot, tuple(m.proof), rollback=rollback)
        self._execute_ready(now)
        if not self.in_view_change:
            self._update_view_timer(now)
        if self.is_primary:
            # A new primary that caught up by state transfer may propose again (max_inflight).
            self._maybe_propose(now)
        self._fetch(sender)

    # --- view change (§4.4) ----------------------------------------------------------------------

    def _on_view_timeout(self, now: float) -> None:
        if self.in_view_change:
            # The NEW-VIEW did not come in time; the next view once 2f+1 agree (§4.5.2: the
            # timer doubles with every view that fails, see _check_suspects).
            self._suspect(now, f"no new-view from primary {self.primary} in time")
            self._set_timer("view", now + self._timeout())
        elif self.pending:
            if self._timed_rid in self.pending:
                # BFT-SMaRt's first timeout: relay what we wait for to every replica (the
                # primary may never have had it; backups that lack it start their timers).
                for rid in list(self.pending)[:self.cfg.batch_max]:
                    self._out.append(Send(None, Request(self.pending[rid])))
                self._suspect(now, "request not executed in time")
                self._set_timer("view", now + self._timeout())
            else:
                self._arm_view_timer(now)  # its request executed meanwhile (state transfer)

    def _suspect(self, now: float, why: str) -> None:
        """We want to leave our view; we do once 2f+1 replicas do (see Suspect)."""
        if self.id not in self.suspects:
            s = Suspect(self.view, self.id)
            s = Suspect(s.view, self.id, self.signer.sign(s.signable()))
            self.suspects[self.id] = s
            self._out.append(Suspected(self.view, why))
            self._out.append(Send(None, s))
        self._check_suspects(now)

    def _on_suspect(self, m: Suspect, sender: int, now: float) -> None:
        # Only for our view: one for a later view comes again from its author while it waits.
        if self._add_suspect(m, sender):
            self._check_suspects(now)

    def _on_suspect_cert(self, m: SuspectCert, sender: int, now: float) -> None:
        if m.view != self.view or len(m.suspects) > self.cfg.n:
            return
        for s in m.suspects:
            if s.view == m.view:
                self._add_suspect(s, sender)
        self._check_suspects(now)

    def _add_suspect(self, m: Suspect, sender: int) -> bool:
        # (Relayed ones count too: the signature names the author.)
        if (m.view != self.view or not 0 <= m.replica < self.cfg.n or m.replica == self.id
                or m.replica in self.suspects):
            return False
        if not self.signer.verify(m.replica, m.signable(), m.sig):
            self._fault(sender, "bad suspect signature")
            return False
        self.suspects[m.replica] = m
        return True

    def _check_suspects(self, now: float) -> None:
        if len(self.suspects) < self.cfg.quorum:
            return
        cert = SuspectCert(self.view, tuple(self.suspects.values()))
        # Views that end without progress: wait longer in the next (§4.5.2); reset by progress.
        self.vc_attempts += 1
        # Every correct replica that gets the certificate follows: none stays behind in the old
        # view (it is kept with the view-change, and re-sent after a restart too).
        self._start_view_change(self.view + 1, now, f"{len(cert.suspects)} replicas suspect view {cert.view}",
                                cert)
        self._out.append(Send(None, cert))

    def _start_view_change(self, view: int, now: float, why: str, left_with: SuspectCert | None = None) -> None:
        if view <= self.view:
            return
        self._out.append(ViewChanged(self.view, view, False, why))
        self.view = view
        self.in_view_change = True
        self.suspects = {}
        self._left_with = left_with
        self.timers.pop("batch", None)
        # `proposed` means "carried by a pre-prepare of this view": none yet (the new view's O
        # set refills it). Left stale, a client retransmission to a replica that is alone in a
        # view change would never be relayed (see request()).
        self.proposed.clear()
        prepared = tuple(self._forwardable(s, c) for s, c in sorted(self.certs.items()) if s > self.h)
        vc = ViewChange(view, self.h, self.stable_digest, self.stable_proof, prepared, self.id)
        vc = ViewChange(vc.view, vc.stable_seq, vc.stable_digest, vc.checkpoint_proof,
                        vc.prepared, self.id, self.signer.sign(vc.signable()))
        self.view_changes.setdefault(view, {})[self.id] = vc
        self.store.save_view(ViewState(view, True, vc, self._left_with))
        self._out.append(Send(None, vc))
        self._set_timer("view", now + self._timeout())
        self._try_new_view(view, now)

    def _valid_view_change(self, vc: ViewChange) -> bool:
        # The same view-change comes again and again (re-sent, inside every NEW-VIEW that
        # carries it); its signature binds every byte, so one full check per content is enough.
        key = (vc.replica, vc.view, vc.sig)
        seen = self._valid_vcs.get(key)
        if seen is not None and (seen is vc or seen == vc):
            return True
        if not self._check_view_change(vc):
            return False
        if len(self._valid_vcs) > 8 * self.cfg.n:
            self._valid_vcs.clear()
        self._valid_vcs[key] = vc
        return True

    def _check_view_change(self, vc: ViewChange) -> bool:
        if not self.signer.verify(vc.replica, vc.signable(), vc.sig):
            return False
        if not self._valid_proof(vc.stable_seq, vc.stable_digest, vc.checkpoint_proof):
            return False
        seen = set()
        for cert in vc.prepared:
            if type(cert) is not PreparedCert or type(cert.pre_prepare) is not PrePrepare:
                return False
            pp = cert.pre_prepare
            if (pp.seq in seen or pp.seq <= vc.stable_seq or pp.view >= vc.view
                    or pp.seq > vc.stable_seq + self.cfg.log_size):
                return False
            seen.add(pp.seq)
            if pp.replica != self.cfg.primary(pp.view) or pp.digest != batch_digest(pp.timestamp, pp.requests):
                return False
            if not self.signer.verify(pp.replica, pp.signable(), pp.sig):
                return False
            signers = set()
            for p in cert.prepares:
                if (type(p) is not Prepare or p.view != pp.view or p.seq != pp.seq
                        or p.digest != pp.digest or p.replica == pp.replica or p.replica in signers):
                    return False
                if not self.signer.verify(p.replica, p.signable(), p.sig):
                    return False
                signers.add(p.replica)
            if len(signers) < self.cfg.quorum - 1:
                return False
        return True

    def _on_view_change(self, vc: ViewChange, sender: int, now: float) -> None:
        if vc.replica != sender:
            return
        if vc.view <= self.view and not (vc.view == self.view and self.in_view_change):
            # A replica still asking for a view we are past: it missed the NEW-VIEW; forward it
            # (it is signed by its primary, so any replica may relay it).
            if self.new_view_msg is not None and not self.in_view_change and vc.view <= self.view:
                self._send_new_view(sender, now)
            if vc.view < self.view or not self.in_view_change:
                return
        if vc.view > self.view + 4 * self.cfg.n:
            return  # bounded memory against a replica spamming far-future views
        if not self._valid_view_change(vc):
            self._fault(sender, "invalid view-change")
            return
        self.view_changes.setdefault(vc.view, {})[sender] = vc
        # §4.5.2 liveness: once f+1 others ask for views above ours, join the smallest of them.
        others = [(v, r) for v, d in self.view_changes.items() if v > self.view
                  for r in d if r != self.id]
        if len({r for _, r in others}) >= self.cfg.f + 1:
            target = min(v for v, _ in others)
            self._start_view_change(target, now, f"{self.cfg.f + 1} replicas moved to view {target} or later")
        self._try_new_view(vc.view, now)

    def _send_new_view(self, to: int, now: float) -> None:
        # A NEW-VIEW carries 2f+1 view-changes with their certificates (megabytes with big
        # batches): once per peer and view per few status intervals, however often it asks.
        key = (to, self.new_view_msg.view)
        if now >= self._nv_sent.get(key, 0.0):
            if len(self._nv_sent) > 4 * self.cfg.n:
                self._nv_sent = {k: t for k, t in self._nv_sent.items() if t > now}
            self._nv_sent[key] = now + 4 * self.cfg.status_interval
            self._out.append(Send(to, self.new_view_msg))

    def _compute_new_view(self, view: int, vcs: list[ViewChange]) -> tuple[PrePrepare, ...]:
        min_s = max(vc.stable_seq for vc in vcs)
        best: dict[int, PrePrepare] = {}
        for vc in vcs:
            for cert in vc.prepared:
                pp = cert.pre_prepare
                if pp.seq > min_s and (pp.seq not in best or pp.view > best[pp.seq].view):
                    best[pp.seq] = pp
        max_s = max(best, default=min_s)
        out = []
        for s in range(min_s + 1, max_s + 1):
            old = best.get(s)
            if old is not None:
                out.append(PrePrepare(view, s, old.timestamp, old.digest, old.requests,
                                      self.cfg.primary(view)))
            else:
                # A gap no correct replica prepared: fill it with a null request.
                out.append(PrePrepare(view, s, 0, batch_digest(0, ()), (), self.cfg.primary(view)))
        return tuple(out)

    def _try_new_view(self, view: int, now: float) -> None:
        if self.cfg.primary(view) != self.id or view != self.view or not self.in_view_change:
            return
        vcs = self.view_changes.get(view, {})
        if len(vcs) < self.cfg.quorum or self.id not in vcs:
            return
        chosen = [vcs[self.id]] + [v for r, v in sorted(vcs.items()) if r != self.id]
        chosen = chosen[:self.cfg.quorum]
        pps = self._compute_new_view(view, chosen)
        pps = tuple(PrePrepare(p.view, p.seq, p.timestamp, p.digest, p.requests, self.id,
                               self.signer.sign(p.signable())) for p in pps)
        nv = NewView(view, tuple(chosen), pps, self.id)
        nv = NewView(nv.view, nv.view_changes, nv.pre_prepares, self.id, self.signer.sign(nv.signable()))
        self._out.append(Send(None, nv))
        self._enter_view(nv, now)

    def _on_new_view(self, nv: NewView, sender: int, now: float) -> None:
        if nv.view < self.view or (nv.view == self.view and not self.in_view_change):
            return
        p = self.cfg.primary(nv.view)
        if nv.replica != p or not self.signer.verify(p, nv.signable(), nv.sig):
            return
        vcs = list(nv.view_changes)
        if len({vc.replica for vc in vcs}) < self.cfg.quorum or len(vcs) != len({vc.replica for vc in vcs}):
            return
        for vc in vcs:
            if type(vc) is not ViewChange or vc.view != nv.view or not self._valid_view_change(vc):
                self._fault(p, "new-view with invalid view-change")
                return
        expect = self._compute_new_view(nv.view, vcs)
        if len(expect) != len(nv.pre_prepares) or any(
                (a.seq, a.digest, a.timestamp) != (b.seq, b.digest, b.timestamp) or b.view != nv.view
                or b.replica != p or not self.signer.verify(p, b.signable(), b.sig)
                for a, b in zip(expect, nv.pre_prepares)):
            # The new primary lied about O. Its 2f+1 view-changes are genuine: join that view
            # change, and suspect it (the next view once 2f+1 replicas do).
            self._fault(p, "new-view with wrong pre-prepares")
            self._start_view_change(nv.view, now, f"{self.cfg.quorum} replicas moved to view {nv.view}")
            self._suspect(now, f"new-view {nv.view} with wrong pre-prepares")
            return
        self._enter_view(nv, now)

    def _enter_view(self, nv: NewView, now: float) -> None:
        self._out.append(ViewChanged(self._active_view, nv.view, True, f"new-view from primary {nv.replica}"))
        if nv.view != self.view:
            self.suspects = {}
        # (Suspects of this view sent while it was being set up, when its new-view was late,
        # still count: every replica must count the same ones, whenever it got the new-view.)
        self._active_view = nv.view
        self.view = nv.view
        self.in_view_change = False
        self.new_view_msg = nv
        self._left_with = None
        self.store.save_view(ViewState(nv.view, False))
        self.store.save_new_view(nv)
        for v in [v for v in self.view_changes if v <= nv.view]:
            del self.view_changes[v]
        min_s = max(vc.stable_seq for vc in nv.view_changes)
        if min_s > self.h:
            for vc in nv.view_changes:
                if vc.stable_seq == min_s:
                    own = self.own_ckpts.get(min_s)
                    if own is not None and own[0] == vc.stable_digest:
                        self._make_stable(min_s, vc.stable_digest, own[1], vc.checkpoint_proof)
                    else:
                        self.ckpt_votes.setdefault(min_s, {})
                        for c in vc.checkpoint_proof:
                            self.ckpt_votes[min_s][c.replica] = c
                        self._fetch(vc.replica if vc.replica != self.id else None)
                    break
        self.proposed.clear()
        max_s = max((p.seq for p in nv.pre_prepares), default=min_s)
        self.seq = max(max_s, min_s, self.last_exec)
        for pp in nv.pre_prepares:
            self.max_seen = max(self.max_seen, pp.seq)
            # A new primary's batches must not run behind the re-proposed ones (an old primary's
            # clock may be ahead of ours): backups that executed those would reject ours.
            self._primary_ts = max(self._primary_ts, pp.timestamp)
            for r in pp.requests:
                self.proposed.add(request_id(r))
            if self.id == nv.replica:
                slot = self._slot(pp.seq, nv.view)
                slot.pp = pp
                self.store.save_pre_prepare(pp)
                self._check_prepared(pp.seq, slot, now)
            else:
                # Re-proposals were time-checked in their first view; only the digest matters.
                self._on_pre_prepare(pp, nv.replica, now, check_time=False)
        # Requests no re-proposal carries go back to the queue of the new primary.
        self.queue = {rid: None for rid in self.pending if rid not in self.proposed}
        if self.id != nv.replica and self.cfg.forward_requests:
            # We relayed these to the old primary (or got them during the view change, when
            # nothing is relayed); the new one may never have seen them. Without this they
            # wait for a client retransmission, or forever where the client only talks to us.
            for rid in self.queue:
                self._out.append(Send(nv.replica, Request(self.pending[rid])))
        if self.pending:
            self._arm_view_timer(now)
        else:
            self.timers.pop("view", None)
            self._timed_rid = None
        if self.is_primary:
            self._maybe_propose(now)

    # --- periodic retransmission and catch-up ---------------------------------------------------

    def _on_status(self, now: float) -> None:
        self._set_timer("status", now + self.cfg.status_interval)
        if self.is_primary and self.queue:
            # Safety net against a lost wake-up: requests waiting at the primary while nothing
            # is in flight (e.g. it caught up by state transfer), with no backup waiting on them.
            self._maybe_propose(now)
        if self.in_view_change and self._status_ticks % 2 == 0:
            # (A view-change may be megabytes: re-sent for lost links, not every tick.)
            vc = self.view_changes.get(self.view, {}).get(self.id)
            if vc is not None:
                self._out.append(Send(None, vc))
        if self._status_ticks % 4 == 0:
            # Suspects are sticky (a view is left once 2f+1 replicas lost patience with it, at
            # whatever times): re-sent now and then, for links that lost them.
            if self._left_with is not None:
                moved = self.view_changes.get(self.view, {})
                for j in range(self.cfg.n):
                    if j != self.id and j not in moved:
                        self._out.append(Send(j, self._left_with))
            own = self.suspects.get(self.id)
            if own is not None and (self.pending or self.in_view_change):
                self._out.append(Send(None, own))
        # Retransmit our part of unfinished instances: lost messages must not stall them.
        for seq in (sorted(self.slots) if not self.in_view_change else ()):
            slot = self.slots[seq]
            if seq <= self.last_exec or slot.view != self.view or slot.pp is None:
                continue
            slot.age += 1
            if slot.age < 2:
                continue  # sent less than a status interval ago: most likely still in flight
            if self.id == self.primary:
                self._out.append(Send(None, slot.pp))
            elif self.id in slot.prepares:
                self._out.append(Send(None, slot.prepares[self.id]))
            if slot.prepared:
                self._out.append(Send(None, Commit(slot.view, seq, slot.pp.digest, self.id)))
        if self._recovering:
            self._recovering -= 1
        self._status_ticks += 1
        if self._recovering or (self.max_seen > self.last_exec and self._last_progress == self.last_exec):
            self._fetch(None)
        elif self._status_ticks % 4 == 0:
            # A heartbeat, to one peer in turn: a replica that missed the tail of the traffic
            # (cut off while the last requests committed) learns from it that it is behind,
            # and one in an older view gets the NEW-VIEW back.
            n = self.cfg.n
            self._fetch((self.id + 1 + (self._status_ticks // 4) % (n - 1)) % n)
        if self.h in self.own_ckpts and self.last_exec >= self.h and self.last_exec - self.h >= self.cfg.checkpoint_interval:
            # Our last checkpoint is not stable yet: re-announce it.
            s = self.last_exec - self.last_exec % self.cfg.checkpoint_interval
            c = self.ckpt_votes.get(s, {}).get(self.id)
            if c is not None:
                self._out.append(Send(None, c))
            # A checkpoint 2f+1 others signed that we could not take yet (we were behind, or our
            # history disagrees and the state did not come): ask again.
            for seq, votes in list(self.ckpt_votes.items()):
                if seq > self.h:
                    tally: dict[bytes, int] = {}
                    for v in votes.values():
                        tally[v.digest] = tally.get(v.digest, 0) + 1
                    for d, k in tally.items():
                        if k >= self.cfg.quorum:
                            self._check_stable(seq, d)
        self._last_progress = self.last_exec

    def _on_forwarded(self, m: Request, sender: int, now: float) -> None:
        # A request relayed by a replica has no client here; the replica that got it replies.
        if len(self.pending) < 100_000:
            self._out.extend(self.request(m.payload, None, now))

    _handlers = {
        Request: _on_forwarded,
        PrePrepare: _on_pre_prepare,
        Prepare: _on_prepare,
        Commit: _on_commit,
        Checkpoint: _on_checkpoint,
        ViewChange: _on_view_change,
        NewView: _on_new_view,
        Fetch: _on_fetch,
        Committed: _on_committed,
        State: _on_state,
        Suspect: _on_suspect,
        SuspectCert: _on_suspect_cert,
    }


def encode_proof(proof: tuple[Checkpoint, ...]) -> bytes:
    return encode_snapshot_parts([encode(c) for c in proof])


def decode_proof(data: bytes) -> list[Checkpoint]:
    out = []
    for part in decode_snapshot_parts(data):
        c = decode(part)
        if type(c) is Checkpoint:
            out.append(c)
    return out


class Client:
    """Sans-IO client side: a result is accepted once f+1 replicas reply the same (§4.1)."""

    def __init__(self, config: ReplicaConfig):
        self.cfg = config
        self.votes: dict[bytes, dict[bytes, set[int]]] = {}
        self.done: dict[bytes, bytes] = {}

    def on_reply(self, rep: Reply) -> bytes | None:
        if rep.request_id in self.done:
            return None
        holders = self.votes.setdefault(rep.request_id, {}).setdefault(rep.result, set())
        holders.add(rep.replica)
        if len(holders) >= self.cfg.f + 1:
            self.done[rep.request_id] = rep.result
            del self.votes[rep.request_id]
            return rep.result
        return None
