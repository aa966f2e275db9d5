"""A sans-IO PBFT replica (Castro & Liskov, OSDI 1999), in the manner of h11.

The replica is put together from pieces, one file each: quorum counting (``votes.VoteSet``),
the request queue and the executed-request ids (``requests``), checkpoints, garbage
collection and state transfer (``checkpoints``), view change (``viewchange``) and the client
(``client``); this file holds the normal case (§4.2), execution, recovery from the replica's
own log and the periodic status tick. ``config.ReplicaStatus`` says whether the replica is in
its view or changing views.

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

from typing import Any, Callable

from .checkpoints import CheckpointHandlers, CheckpointLog, decode_proof, encode_proof
from .client import Client
from .config import ReplicaConfig, ReplicaStatus
from .crypto import RequestVerifier, Signer, accept_all
from .effects import Executed, RolledBack, Send, SendClient, SetTimer, Suspected, ViewChanged
from .messages import (
    Checkpoint, Commit, Committed, Fetch, NewView, PrePrepare, Prepare, PreparedCert, Reply,
    Request, State, Suspect, SuspectCert, ViewChange, batch_digest, request_id, H,
)
from .requests import ExecutedIds, RequestQueue
from .storage import (
    LoggedBatch, MemoryStore, ReplicaStore, StateMachine, decode_snapshot_parts,
    encode_snapshot_parts,
)
from .viewchange import ViewChangeHandlers
from .votes import VoteSet

__all__ = ["Replica", "ReplicaConfig", "ReplicaStatus", "Client", "Send", "SendClient", "SetTimer",
           "Executed", "Suspected", "ViewChanged", "RolledBack", "encode_proof", "decode_proof"]

NORMAL, VIEW_CHANGE = ReplicaStatus.NORMAL, ReplicaStatus.VIEW_CHANGE
_STALE = "stale"  # _check_batch: the batch time is older than the clock skew allows
_IDS_FORMAT = b"pot-pbft-ids-2"  # snapshot part: executed ids with the time they may be forgotten


def _no_forgetting(request: bytes, result: bytes, timestamp: int) -> None:
    return None


def _digest_of(vote) -> bytes:
    return vote.digest


class _Slot:
    """One sequence number in one view: its pre-prepare and the prepares and commits for it."""

    __slots__ = ("view", "pp", "prepares", "commits", "prepared", "committed", "deferred", "age")

    def __init__(self, view: int):
        self.view = view
        self.pp: PrePrepare | None = None
        self.prepares: VoteSet[Prepare] = VoteSet(_digest_of)
        self.commits: VoteSet[bytes] = VoteSet()  # replica -> the digest it committed
        self.prepared = False
        self.committed = False
        # A pre-prepare older than the clock skew allows (a retransmission reaching a replica
        # that was paused, partitioned or restarted): taken once f+1 others vouch for it.
        self.deferred: PrePrepare | None = None
        self.age = 0  # status ticks it has been unfinished


class Replica(CheckpointHandlers, ViewChangeHandlers):
    def __init__(self, config: ReplicaConfig, index: int, state_machine: StateMachine,
                 signer: Signer, *, verifier: RequestVerifier = accept_all,
                 store: ReplicaStore | None = None, now: float = 0.0,
                 on_fault: Callable[[int, str], None] | None = None):
        self.cfg = config
        self.id = index
        self.sm = state_machine
        # (State machines that cannot say when a request may be forgotten keep every id.)
        self._forget_after = getattr(state_machine, "forget_after", _no_forgetting)
        self.signer = signer
        self.verifier = verifier
        self.store: ReplicaStore = store if store is not None else MemoryStore()
        self.on_fault = on_fault
        self._out: list = []

        self.view = 0
        self.status = NORMAL
        self.seq = 0  # last sequence number this replica assigned as primary
        self.slots: dict[int, _Slot] = {}
        self.certs: dict[int, PreparedCert] = {}  # highest-view prepared certificate per seq
        self.committed: dict[int, tuple[int, tuple[bytes, ...]]] = {}
        self.exec_log: dict[int, tuple[int, tuple[bytes, ...]]] = {}
        self.fetch_votes: dict[int, dict[bytes, set[int]]] = {}
        self.fetch_batches: dict[bytes, tuple[int, tuple[bytes, ...]]] = {}

        # Execution state that is part of every checkpoint (so state transfer carries it).
        self.last_exec = 0
        self.last_ts = 0
        self.executed = ExecutedIds()

        self.requests = RequestQueue()
        self.pending = self.requests.pending  # (the same dict: read by the simulator)
        # §4.4: the request the view timer runs for (the oldest we wait for when it started).
        # Other requests executing do not restart it: a primary that orders everything but
        # this request (censorship) is suspected when it expires.
        self._timed_rid: bytes | None = None

        # View change (§4.4).
        self.view_changes: dict[int, dict[int, ViewChange]] = {}
        self.new_view_msg: NewView | None = None
        self._nv_sent: dict[tuple[int, int], float] = {}  # (peer, view) -> next time we may re-send
        self._valid_vcs: dict[tuple[int, int, bytes], ViewChange] = {}
        self.vc_attempts = 0
        self.faulty: set[int] = set()
        # Replicas that want to leave our current view (signed Suspects, ours included), and
        # the 2f+1 we left our last view with (relayed until the new view starts).
        self.suspects: VoteSet[Suspect] = VoteSet()
        self._left_with: SuspectCert | None = None
        self._active_view = 0  # the last view we took part in (for the logs)

        self.timers: dict[str, float] = {}
        self.max_seen = 0
        self._last_progress = -1
        self._primary_ts = 0
        self._recovering = 0
        self._status_ticks = 0

        genesis = self._checkpoint_digest(0)
        self.ckpt = CheckpointLog(genesis, self._snapshot())
        # The state this replica's log starts from, which needs no proof: the genesis, or for a
        # committee epoch (pbft.epoch) its boundary checkpoint, stored without one.
        self.base: tuple[int, bytes] = (0, genesis)
        self._recover(now)
        self._set_timer("status", now + self.cfg.status_interval)

    # --- status and the stable checkpoint, for drivers, operators and tests ----------------------

    @property
    def in_view_change(self) -> bool:
        return self.status is VIEW_CHANGE

    @property
    def h(self) -> int:
        """The low watermark: the last stable checkpoint."""
        return self.ckpt.h

    @property
    def stable_digest(self) -> bytes:
        return self.ckpt.digest

    @property
    def stable_snapshot(self) -> bytes:
        return self.ckpt.snapshot

    @property
    def stable_proof(self) -> tuple[Checkpoint, ...]:
        return self.ckpt.proof

    @property
    def executed_ids(self) -> set[bytes]:
        """Ids of the executed requests this replica still remembers (see ``requests``)."""
        return self.executed.ids

    @property
    def replies(self) -> dict[bytes, Reply]:
        return self.requests.replies

    # --- public inputs ------------------------------------------------------------------------

    @property
    def primary(self) -> int:
        return self.cfg.primary(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.id and self.status is NORMAL

    def start(self, now: float) -> list:
        """Announce ourselves after (re)start: ask peers for what we missed (and the view
        they are in), and re-send our part of what is unfinished."""
        self._recovering = 4  # status ticks to keep asking peers after a (re)start
        self._fetch(None)  # (the timers set while recovering are in _out already)
        return self._drain()

    def has_executed(self, rid: bytes) -> bool:
        """Whether the request with id ``rid`` already executed here (a resubmission of it is
        a replay)."""
        return rid in self.executed

    def request(self, payload: bytes, client: Any, now: float) -> list:
        rid = request_id(payload)
        rq = self.requests
        if rid in self.executed:
            # §4.1: a retransmitted request that already executed gets the cached reply.
            rep = rq.replies.get(rid)
            if rep is not None and client is not None:
                self._out.append(SendClient(client, rep))
            return self._drain()
        if not rq.verify(rid, payload, self.verifier):
            return self._drain()
        if client is not None:
            rq.clients[rid] = client
        if rq.add(rid, payload, now):
            if self.is_primary:
                self._maybe_propose(now)
            elif client is not None and self.cfg.forward_requests and self.status is NORMAL:
                self._out.append(Send(self.primary, Request(payload)))
            # The primary waits too: batches it proposed that nobody can take (stamped before
            # it was cut off for longer than the clock skew) need the next view, and its own
            # suspect may be the 2f+1-th.
            if self.status is NORMAL and "view" not in self.timers and rq.pending:
                self._arm_view_timer(now)
        elif (client is not None and self.cfg.forward_requests and not self.is_primary
              and rid not in rq.proposed):
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
                                        self.view - 1 if self.status is VIEW_CHANGE else self.view, self.id)))

    def _set_timer(self, name: str, at: float) -> None:
        self.timers[name] = at
        self._out.append(SetTimer(name, at))

    def _arm_view_timer(self, now: float) -> None:
        # §4.4: (re)start the view timer for the oldest request we are waiting to execute.
        self._timed_rid = self.requests.oldest()
        self._set_timer("view", now + self._timeout())

    def _update_view_timer(self, now: float) -> None:
        """After requests left `pending` (executed, or learned by state transfer): stop the
        timer if we wait for nothing; restart it if the request it ran for is done but we wait
        for others (§4.4). While the request it runs for waits, it keeps running. During a
        view change it runs whatever we wait for: the new-view may never come."""
        if self.status is VIEW_CHANGE:
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
        return H(self.sm.digest(), self.executed.hash.to_bytes(32, "big"),
                 self.last_ts.to_bytes(8, "big"), seq.to_bytes(8, "big"))

    def _snapshot(self) -> bytes:
        return encode_snapshot_parts([self.sm.snapshot(), self.last_ts.to_bytes(8, "big"),
                                      self.executed.encode(), _IDS_FORMAT])

    def _restore(self, snapshot: bytes) -> None:
        parts = decode_snapshot_parts(snapshot)
        if len(parts) != 4 or parts[3] != _IDS_FORMAT:
            raise ValueError("replica snapshot of another format (written by an older version?)")
        sm_snap, ts, ids, _ = parts
        executed = ExecutedIds.decode(ids)
        self.sm.restore(sm_snap)
        self.last_ts = int.from_bytes(ts, "big")
        self.executed = executed

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
            self.last_exec = c.seq
            self.ckpt.stabilize(c.seq, c.digest, c.snapshot, tuple(decode_proof(c.proof)))
            self.ckpt.own = {c.seq: (c.digest, c.snapshot)}
            if not self.ckpt.proof:
                self.base = (c.seq, c.digest)
        for b in rec.batches:
            if b.seq == self.last_exec + 1 and self._may_execute(b.seq):
                self._apply(b.seq, b.timestamp, b.requests, persist=False, reply=False)
        if rec.view is not None:
            self.view = rec.view.view
            self.status = VIEW_CHANGE if rec.view.in_view_change else NORMAL
            self._active_view = self.view - 1 if self.status is VIEW_CHANGE else self.view
            if rec.view.view_change is not None and self.status is VIEW_CHANGE:
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
                    slot.prepares.add(self.id, r.prepare)
                if pp.view == self.view:
                    top = max(top, seq)
                    rq = self.requests
                    for req in pp.requests:
                        rid = request_id(req)
                        rq.mark_proposed(rid)
                        if seq > self.last_exec and rid not in self.executed:
                            rq.add(rid, req, now)
                            rq.verified.add(rid)
            cert = r.cert
            if cert is not None:
                self.certs[seq] = cert
                slot = self.slots.get(seq)
                cp = cert.pre_prepare
                if slot is not None and slot.view == cp.view and slot.pp is not None and slot.pp.digest == cp.digest:
                    slot.prepared = True
                    slot.commits.add(self.id, cp.digest)
                    for p in cert.prepares:
                        slot.prepares.add(p.replica, p)
        self.seq = top
        if self.status is VIEW_CHANGE:
            self._set_timer("view", now + self._timeout())  # the new-view may never come
        elif self.pending:
            self._arm_view_timer(now)

    # --- normal case (§4.2) ---------------------------------------------------------------------

    def _maybe_propose(self, now: float, timer_fired: bool = False) -> None:
        cfg = self.cfg
        while True:
            inflight = self.seq - self.last_exec
            if inflight >= cfg.max_inflight or self.seq + 1 > self.h + cfg.log_size:
                return
            rq = self.requests
            if not rq.queue:
                return
            # A batch short of batch_max waits batch_delay for more requests, and at least
            # fill_delay while another is in flight (executing that one proposes at once).
            wait = cfg.batch_delay if inflight <= 0 else max(cfg.batch_delay, cfg.fill_delay)
            if wait > 0 and len(rq.queue) < cfg.batch_max and not timer_fired:
                first = rq.first_queued_since()
                if now < first + wait:
                    if "batch" not in self.timers:
                        self._set_timer("batch", first + wait)
                    return
            take = rq.take(cfg.batch_max)
            reqs = tuple(rq.pending[r] for r in take)
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
            if cfg.quorum == 1:
                # a committee of one: no prepare will ever come, its own votes are the quorum
                self._check_prepared(pp.seq, slot, now)

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
        rq, verifier = self.requests, self.verifier
        for r in pp.requests:
            if not rq.verify(request_id(r), r, verifier):
                return "invalid request"
        return None

    def _on_pre_prepare(self, pp: PrePrepare, sender: int, now: float,
                        check_time: bool = True) -> None:
        self.max_seen = max(self.max_seen, pp.seq)
        if (self.status is not NORMAL or pp.view != self.view or sender != self.primary
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
        rq, executed = self.requests, self.executed
        for r in pp.requests:
            rid = request_id(r)
            if rid not in executed:
                rq.add(rid, r, now)
            rq.mark_proposed(rid)
        if "view" not in self.timers and self.pending:
            self._arm_view_timer(now)
        prep = Prepare(pp.view, pp.seq, pp.digest, self.id)
        prep = Prepare(prep.view, prep.seq, prep.digest, self.id, self.signer.sign(prep.signable()))
        slot.prepares.add(self.id, prep)
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
        vouch = slot.prepares.voters(d) | slot.commits.voters(d)
        vouch.discard(pp.replica)
        vouch.discard(self.id)
        if len(vouch) >= self.cfg.f + 1:
            slot.deferred = None
            self._on_pre_prepare(pp, pp.replica, now, check_time=False)

    def _on_prepare(self, m: Prepare, sender: int, now: float) -> None:
        self.max_seen = max(self.max_seen, m.seq)
        if (m.replica != sender or m.view != self.view or self.status is not NORMAL
                or sender == self.cfg.primary(m.view) or not self._in_window(m.seq)):
            return
        slot = self._slot(m.seq, m.view)
        if slot is None or sender in slot.prepares:
            return
        # Kept after the slot prepared too: spares for a certificate whose signatures turn out
        # bad when it is checked for forwarding (see _forwardable).
        slot.prepares.add(sender, m)
        if slot.deferred is not None:
            self._take_deferred(m.seq, slot, now)
        elif not slot.prepared:
            self._check_prepared(m.seq, slot, now)

    def _check_prepared(self, seq: int, slot: _Slot, now: float) -> None:
        pp = slot.pp
        if pp is None or slot.prepared:
            return
        need = self.cfg.quorum - 1
        if not slot.prepares.has_quorum(pp.digest, need):
            return
        matching = slot.prepares.matching(pp.digest)
        slot.prepared = True
        self.certs[seq] = PreparedCert(pp, tuple(matching[:need]))
        # The certificate is what a view change must carry for this batch (it may have
        # committed at a replica that got our commit): it outlives a crash of ours.
        self.store.save_cert(self.certs[seq])
        self._out.append(Send(None, Commit(pp.view, seq, pp.digest, self.id)))
        slot.commits.add(self.id, pp.digest)
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
                    slot.prepares.discard(p.replica)
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
        slot.commits.add(sender, m.digest)
        if slot.deferred is not None:
            self._take_deferred(m.seq, slot, now)
        self._check_committed(m.seq, slot, now)

    def _check_committed(self, seq: int, slot: _Slot, now: float) -> None:
        if not slot.prepared or slot.committed:
            return
        if not slot.commits.has_quorum(slot.pp.digest, self.cfg.quorum):
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
            if rid in self.executed or rid in seen:
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
        rq, executed, forget_after = self.requests, self.executed, self._forget_after
        for (rid, r), res in zip(fresh, results):
            executed.add(rid, forget_after(r, res, ts_eff))
            client = rq.retire(rid)
            # (Also while replaying our log after a restart: a client that retransmits a
            # request whose reply the crash swallowed still gets it, §4.1.)
            rep = Reply(self.view, seq, rid, self.id, res)
            rq.remember_reply(rep)
            if reply and client is not None:
                self._out.append(SendClient(client, rep))
        for rid in seen:
            rq.retire(rid)
        if reply:
            self._out.append(Executed(seq, ts_eff, tuple(r for _, r in fresh), tuple(results)))
        if seq % self.cfg.checkpoint_interval == 0:
            # Ids the state machine refuses again by itself are forgotten here: at the same
            # sequence number and batch time at every replica, so the digest still agrees.
            for rid in self.executed.prune(ts_eff):
                rq.replies.pop(rid, None)
            digest = self._checkpoint_digest(seq)
            self.ckpt.own[seq] = (digest, self._snapshot())
            c = Checkpoint(seq, digest, self.id)
            c = Checkpoint(seq, digest, self.id, self.signer.sign(c.signable()))
            self.ckpt.vote(c)
            # (Replaying our log after a restart: the status tick re-announces it. Peers may
            # have lost theirs too; without it the watermarks would never move again.)
            if reply:
                self._out.append(Send(None, c))
                self._check_stable(seq, digest)

    # --- periodic retransmission and catch-up ---------------------------------------------------

    def _on_status(self, now: float) -> None:
        self._set_timer("status", now + self.cfg.status_interval)
        if self.is_primary and self.requests.queue:
            # Safety net against a lost wake-up: requests waiting at the primary while nothing
            # is in flight (e.g. it caught up by state transfer), with no backup waiting on them.
            self._maybe_propose(now)
        changing = self.status is VIEW_CHANGE
        if changing and self._status_ticks % 2 == 0:
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
            if own is not None and (self.pending or changing):
                self._out.append(Send(None, own))
        # Retransmit our part of unfinished instances: lost messages must not stall them.
        for seq in (sorted(self.slots) if not changing else ()):
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
        elif self._status_ticks % 4 == 0 and self.cfg.n > 1:
            # A heartbeat, to one peer in turn: a replica that missed the tail of the traffic
            # (cut off while the last requests committed) learns from it that it is behind,
            # and one in an older view gets the NEW-VIEW back.
            n = self.cfg.n
            self._fetch((self.id + 1 + (self._status_ticks // 4) % (n - 1)) % n)
        if self.h in self.ckpt.own and self.last_exec >= self.h and self.last_exec - self.h >= self.cfg.checkpoint_interval:
            self._reannounce_checkpoint()
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
        Checkpoint: CheckpointHandlers._on_checkpoint,
        ViewChange: ViewChangeHandlers._on_view_change,
        NewView: ViewChangeHandlers._on_new_view,
        Fetch: CheckpointHandlers._on_fetch,
        Committed: CheckpointHandlers._on_committed,
        State: CheckpointHandlers._on_state,
        Suspect: ViewChangeHandlers._on_suspect,
        SuspectCert: ViewChangeHandlers._on_suspect_cert,
    }

