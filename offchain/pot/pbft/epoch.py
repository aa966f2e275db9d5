"""Committee epochs for PBFT: one ``Replica`` per epoch, switched at a checkpoint boundary
(docs/COMMITTEE.md).

A committee change is a request like any other: the state machine decides it (the ledger: once
the chain confirmed it) and reports it through ``pending_committee()``. The batch that decided it
executes at some sequence number ``s``; the change takes effect at ``B = boundary(s, K)``, the
first checkpoint after ``s``. Every replica of the old epoch executes the same batches up to
``B`` and none after it (``exec_limit``), then opens the new epoch's ``Replica`` from its own
checkpoint at ``B``: new members, new quorums, view 0, primary ``members[0]``. Batches the old
epoch ordered after ``B`` never execute; their requests are handed to the new epoch.

Why this is safe: the batches up to ``B`` are committed in the old epoch, so every correct
replica executes the same ones; nothing after ``B`` executes in the old epoch anywhere; and the
new epoch starts from one state, the checkpoint at ``B``. Every message travels in an envelope
that names its epoch, every signed statement is bound to it (``EpochSigner``), and a sender is
looked up in that epoch's member list: a removed member's messages are refused from ``B`` on,
and nothing signed in one epoch counts in another.

A replica that falls behind the boundary catches up in the old epoch: the old epoch's replicas
stay (frozen at ``B``) to answer fetches and checkpoints. A member that joins has no old state:
it asks the new epoch's members for their stable checkpoint and takes a snapshot once f + 1 of
them (one at least correct) vouch for its digest (``JoinRequest`` / ``JoinState``).

The state machine the driver passes must offer ``committee() -> EpochSpec``,
``pending_committee() -> EpochSpec | None`` and ``activate_committee()`` besides ``execute``,
``digest``, ``snapshot`` and ``restore``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Hashable

from pot.protocol.epoch import boundary

from .messages import H, Request
from .replica import Replica, ReplicaConfig, Send, SetTimer, encode_proof
from .storage import (
    MemoryStore, ReplicaStore, StoredCheckpoint, decode_snapshot_parts, encode_snapshot_parts,
)

NodeId = Hashable
#: No-op requests that carry the old epoch to its boundary when no client sends anything: the
#: boundary is a sequence number, and PBFT assigns one only to a batch. They never reach the
#: state machine and are never handed to the next epoch.
_FILL = b"pot-epoch-fill "


@dataclass(frozen=True)
class EpochSpec:
    """One committee: its number, its members (replica ``i`` is ``members[i]``) and each
    member's public key (or, in the simulator, its table key), in the same order; on a network
    also each member's PBFT endpoint ``host:port`` (how a node reaches a member it never met)."""
    number: int
    members: tuple[NodeId, ...]
    keys: tuple[bytes, ...]
    endpoints: tuple[str, ...] = ()

    def index(self, node: NodeId) -> int | None:
        try:
            return self.members.index(node)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Epoched:
    """The envelope of every replica message: the epoch it belongs to."""
    epoch: int
    msg: Any


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """A joining member asks a member of ``epoch`` (or a later one) for its stable checkpoint."""
    epoch: int


@dataclass(frozen=True, slots=True)
class JoinState:
    """A member's stable checkpoint in its current epoch ``spec`` (at first the boundary)."""
    spec: EpochSpec
    seq: int
    digest: bytes
    snapshot: bytes
    proof: tuple = ()  # the checkpoint's 2f+1 signatures; none for the epoch's boundary


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send ``msg`` to each node in ``to``."""
    to: tuple[NodeId, ...]
    msg: Any


@dataclass(frozen=True, slots=True)
class EpochEntered:
    """This node now runs ``epoch`` from sequence number ``start`` (for operators and tests)."""
    epoch: int
    start: int
    member: bool


class EpochSigner:
    """Binds every signed statement to its epoch: a prepare or checkpoint signed in one epoch
    never verifies in another, where the same replica index may be another member."""

    def __init__(self, inner, epoch: int):
        self._inner = inner
        self._tag = b"pot-epoch" + epoch.to_bytes(8, "big")

    def sign(self, data: bytes) -> bytes:
        return self._inner.sign(self._tag + data)

    def verify(self, replica: int, data: bytes, sig: bytes) -> bool:
        return self._inner.verify(replica, self._tag + data, sig)


class _EpochMachine:
    """The state machine as one epoch's ``Replica`` sees it: stops it at the boundary and
    performs the switch in the replicated state at exactly ``B`` (``after_batch``)."""

    def __init__(self, sm, epoch: int, interval: int):
        self.sm = sm
        self.epoch = epoch
        self.interval = interval
        self.boundary: int | None = None  # replicated: part of digest and snapshot
        self.frozen_at: int | None = None  # local: this epoch is over here

    @property
    def exec_limit(self) -> int | None:
        if self.frozen_at is not None:
            return self.frozen_at
        return self.boundary

    def execute(self, requests: list[bytes], timestamp: int) -> list[bytes]:
        real = [r for r in requests if not r.startswith(_FILL)]
        if len(real) == len(requests):
            return self.sm.execute(requests, timestamp)
        results = iter(self.sm.execute(real, timestamp) if real else [])
        return [b"" if r.startswith(_FILL) else next(results) for r in requests]

    def forget_after(self, request: bytes, result: bytes, timestamp: int) -> int | None:
        """The state machine's rule for when PBFT may forget a request id. Boundary fills are
        not the state machine's requests: kept (a few per committee change)."""
        rule = getattr(self.sm, "forget_after", None)
        return None if rule is None or request.startswith(_FILL) else rule(request, result, timestamp)

    def after_batch(self, seq: int) -> None:
        if self.boundary is None and self.sm.pending_committee() is not None:
            self.boundary = boundary(seq, self.interval)
        if self.boundary is not None and seq >= self.boundary:
            self.sm.activate_committee()
            self.boundary = None
            self.frozen_at = seq

    @staticmethod
    def inner_snapshot(replica_snapshot: bytes) -> bytes:
        """The state machine's own snapshot inside a replica checkpoint's snapshot."""
        return decode_snapshot_parts(decode_snapshot_parts(replica_snapshot)[0])[0]

    def digest(self) -> bytes:
        return H(self.sm.digest(), (self.boundary or 0).to_bytes(8, "big"))

    def snapshot(self) -> bytes:
        return encode_snapshot_parts([self.sm.snapshot(), (self.boundary or 0).to_bytes(8, "big")])

    def restore(self, snapshot: bytes) -> None:
        sm_snap, b = decode_snapshot_parts(snapshot)
        self.sm.restore(sm_snap)
        self.boundary = int.from_bytes(b, "big") or None
        if self.sm.committee().number != self.epoch:
            # A state from after this epoch's boundary (state transfer): nothing more runs here.
            self.frozen_at = 0


class EpochReplica:
    """One node of an epoch-changing committee. Drive it like a ``Replica`` (``request``,
    ``receive``, ``tick``), with node ids instead of replica indices; its effects are ``SendTo``,
    ``SetTimer``, ``SendClient``, ``Executed`` (sequence numbers run on across epochs) and
    ``EpochEntered``.

    ``make_signer(index, spec)`` builds the signer of this node as replica ``index`` of ``spec``;
    ``store_for(epoch)`` gives the epoch's durable store (the same object after a restart).
    ``join``: this node is not in the genesis committee but joins ``join`` (its spec as the
    operator configured it) by state transfer.
    """

    def __init__(self, node: NodeId, genesis: EpochSpec, config: ReplicaConfig, state_machine,
                 make_signer: Callable[[int, EpochSpec], Any], store_for: Callable[[int], ReplicaStore],
                 *, verifier=None, now: float = 0.0, join: EpochSpec | None = None,
                 join_interval: float = 0.3):
        self.node = node
        self.cfg = config
        self.sm = state_machine
        self.make_signer = make_signer
        self.store_for = store_for
        self.verifier = verifier
        self.join_interval = join_interval
        self.frozen: dict[int, tuple[EpochSpec, Replica]] = {}
        self.spec: EpochSpec | None = None
        self.inner: Replica | None = None
        self.retired = False
        self.refused = 0  # messages from nodes that are not members of the epoch they name
        self._future: list[tuple[Epoched, NodeId]] = []
        self._out: list = []
        self._joining: EpochSpec | None = None
        self._frozen_until: dict[int, float] = {}
        self._join_votes: dict[tuple[EpochSpec, int, bytes], set[NodeId]] = {}
        self._join_snaps: dict[tuple[EpochSpec, int, bytes], tuple[bytes, tuple]] = {}
        if join is not None and join.number > genesis.number:
            # Restarted after it joined (perhaps a later epoch than configured): its own store.
            joined = next((e for e in range(join.number, join.number + 64)
                           if store_for(e).load().checkpoint is not None), None)
            if joined is not None:
                self._reopen(joined, now)
            else:
                self._joining = join
                self._ask_join(now)
        else:
            self._open(genesis, now, store_for(genesis.number))
            self._maybe_switch(now)

    def _reopen(self, epoch: int, now: float) -> None:
        """Restart of a member that joined in ``epoch``: open the epoch its state is in, with
        that epoch's own store. A store's checkpoint may be its epoch's boundary (the frozen
        replica made it stable after the switch): that state belongs to the next epoch, whose
        replica starts from it. Opening the next epoch on the old epoch's store would bring the
        old epoch's view along, and the node would wait alone in it."""
        store = self.store_for(epoch)
        while True:
            ckpt = store.load().checkpoint
            self.sm.restore(_EpochMachine.inner_snapshot(ckpt.snapshot))
            spec = self.sm.committee()
            if spec.number == epoch:
                break
            epoch, store = spec.number, self.store_for(spec.number)
            if store.load().checkpoint is None:
                store.save_checkpoint(StoredCheckpoint(ckpt.seq, ckpt.digest, ckpt.snapshot, encode_proof(())))
                store.sync()
        if spec.index(self.node) is None:
            self.retired = True
            self._out.append(EpochEntered(spec.number, ckpt.seq, False))
            return
        self._open(spec, now, store)
        self._maybe_switch(now)

    # --- inputs ---------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self.spec.number if self.spec is not None else 0

    def start(self, now: float) -> list:
        if self.inner is not None:
            self._take(self.spec, self.inner.start(now), now)
        return self._drain()

    def request(self, payload: bytes, client: Any, now: float) -> list:
        if self.inner is not None and not self.retired:
            self._take(self.spec, self.inner.request(payload, client, now), now)
        return self._drain()

    def receive(self, env: Any, sender: NodeId, now: float) -> list:
        if type(env) is JoinRequest:
            self._on_join_request(env, sender)
        elif type(env) is JoinState:
            self._on_join_state(env, sender, now)
        elif type(env) is Epoched:
            self._on_epoched(env, sender, now)
        return self._drain()

    def tick(self, now: float) -> list:
        if self._joining is not None:
            self._ask_join(now)
        for e, until in list(self._frozen_until.items()):
            if until < now or e not in self.frozen:
                del self._frozen_until[e]
            else:
                spec, old = self.frozen[e]
                self._take(spec, old.tick(now), now, frozen=True)
        if self._joining is None and self.inner is not None and not self.retired:
            inner = self.inner
            b = inner.sm.boundary
            if b is not None and inner.last_exec < b and not inner.pending:
                # The same payload at every replica at the same point: one of them executes.
                fill = _FILL + b"%d %d %d" % (self.spec.number, b, inner.last_exec + 1)
                self._take(self.spec, inner.request(fill, None, now), now)
            self._take(self.spec, inner.tick(now), now)
        return self._drain()

    # --- plumbing -------------------------------------------------------------------------------

    def _drain(self) -> list:
        out, self._out = self._out, []
        return out

    def _others(self, spec: EpochSpec) -> tuple[NodeId, ...]:
        return tuple(m for m in spec.members if m != self.node)

    def _take(self, spec: EpochSpec, effects: list, now: float, frozen: bool = False,
              switch: bool = True) -> None:
        """Translate one epoch's replica effects into node effects, then switch if its state
        machine crossed the boundary. A frozen epoch's replica only votes and answers: it
        executes nothing and replies to no client."""
        for e in effects:
            t = type(e)
            if t is Send:
                to = self._others(spec) if e.to is None else (spec.members[e.to],)
                self._out.append(SendTo(to, Epoched(spec.number, e.msg)))
            elif not frozen or t is SetTimer:
                self._out.append(e)
        if switch and not frozen:
            self._maybe_switch(now)

    def _open(self, spec: EpochSpec, now: float, store: ReplicaStore) -> None:
        self.spec = spec
        machine = _EpochMachine(self.sm, spec.number, self.cfg.checkpoint_interval)
        self.inner = self._replica(spec, machine, store, now)
        self._out.append(EpochEntered(spec.number, self.inner.h, True))

    def _replica(self, spec: EpochSpec, machine: _EpochMachine, store: ReplicaStore, now: float) -> Replica:
        index = spec.index(self.node)
        verify = self.verifier
        kw = {"verifier": (lambda p: p.startswith(_FILL) or verify(p))} if verify is not None else {}
        return Replica(replace(self.cfg, n=len(spec.members)), index, machine,
                       EpochSigner(self.make_signer(index, spec), spec.number), store=store, now=now, **kw)

    def _maybe_switch(self, now: float) -> None:
        """The state machine is past this epoch's boundary: freeze this epoch's replica (it still
        answers the old epoch's laggards) and open the next one from the checkpoint at B."""
        switched = False
        while self.inner is not None and self.sm.committee().number != self.spec.number:
            switched = True
            old, old_spec = self.inner, self.spec
            b = old.last_exec
            digest, snapshot = old.ckpt.own.get(b) or (old.digest(), old._snapshot())
            self.frozen[old_spec.number] = (old_spec, old)
            for e in list(self.frozen):
                if e < old_spec.number - 4:
                    del self.frozen[e]
            carry = [(p, old.requests.clients.get(rid)) for rid, p in old.pending.items()
                     if not p.startswith(_FILL)]
            # What the old epoch did not execute is the new epoch's to order; a frozen replica
            # waits for nothing (no view timer of its own).
            old.requests.hand_over()
            nxt = self.sm.committee()
            if nxt.index(self.node) is None:
                self.inner, self.retired = None, True
                self._out.append(EpochEntered(nxt.number, b, False))
                return
            store = self.store_for(nxt.number)
            if store.load().checkpoint is None:
                store.save_checkpoint(StoredCheckpoint(b, digest, snapshot, encode_proof(())))
                store.sync()
            self._open(nxt, now, store)
            effects = self.inner.start(now)
            for p, client in carry:
                effects += self.inner.request(p, client, now)
            # (The loop switches again if the new epoch's own recovery crossed its boundary.)
            self._take(self.spec, effects, now, switch=False)
        if switched:
            future, self._future = self._future, []
            for env, sender in future:
                self._on_epoched(env, sender, now)

    def _on_epoched(self, env: Epoched, sender: NodeId, now: float) -> None:
        e = env.epoch
        if self.spec is not None and e == self.spec.number and not self.retired:
            i = self.spec.index(sender)
            if i is None:
                self.refused += 1
                return
            self._take(self.spec, self.inner.receive(env.msg, i, now), now)
        elif e in self.frozen:
            # A laggard of an epoch we left: it fetches what it missed, and when too few of the
            # old members executed the boundary for it to take their word (f + 1), it needs our
            # votes, view changes included, to commit the boundary itself. A frozen replica
            # votes but executes nothing more and takes no new requests.
            spec, old = self.frozen[e]
            i = spec.index(sender)
            if i is None:
                self.refused += 1
                return
            if type(env.msg) is not Request:
                # Its timers run while laggards talk to it (a view change needs them).
                self._frozen_until[e] = now + 20 * self.cfg.status_interval
                self._take(spec, old.receive(env.msg, i, now), now, frozen=True)
        elif self.retired:
            self.refused += 1
        elif self.spec is None or e > self.spec.number:
            # We are behind the boundary (or still joining): keep it for when we cross it.
            if len(self._future) < 4096:
                self._future.append((env, sender))
        else:
            self.refused += 1

    # --- joining by state transfer --------------------------------------------------------------

    def _ask_join(self, now: float) -> None:
        spec = self._joining
        self._out.append(SendTo(self._others(spec), JoinRequest(spec.number)))
        self._out.append(SetTimer("join", now + self.join_interval))

    def _on_join_request(self, m: JoinRequest, sender: NodeId) -> None:
        if self.inner is None or self.spec.number < m.epoch or self.spec.index(sender) is None:
            return
        r = self.inner
        self._out.append(SendTo((sender,), JoinState(self.spec, r.h, r.stable_digest, r.stable_snapshot,
                                                     r.stable_proof)))

    def _on_join_state(self, m: JoinState, sender: NodeId, now: float) -> None:
        # Trust comes from the committee the operator configured (in a deployment: the chain's
        # members): f + 1 of its members vouch for a state, one of them at least is correct. The
        # committee may have moved on since; the state then names the later epoch we join.
        trusted = self._joining
        if (trusted is None or m.spec.number < trusted.number or trusted.index(sender) is None
                or m.spec.index(sender) is None or m.spec.index(self.node) is None):
            return
        key = (m.spec, m.seq, m.digest)
        if len(self._join_votes) < 64 or key in self._join_votes:
            self._join_votes.setdefault(key, set()).add(sender)
            self._join_snaps.setdefault(key, (m.snapshot, tuple(m.proof)))
        f = (len(trusted.members) - 1) // 3
        for (spec, seq, digest), who in sorted(self._join_votes.items(), key=lambda kv: -kv[0][1]):
            if len(who) < f + 1 or (spec, seq, digest) not in self._join_snaps:
                continue
            # The snapshot must give the digest they vouch for; a wrong one (a lying member's) is
            # dropped and the next one for the key awaited.
            trial = MemoryStore()
            snapshot, proof = self._join_snaps[(spec, seq, digest)]
            trial.save_checkpoint(StoredCheckpoint(seq, digest, snapshot, encode_proof(proof)))
            trial.sync()
            probe = self._replica(spec, _EpochMachine(self.sm, spec.number, self.cfg.checkpoint_interval),
                                  trial, now)
            if (probe.digest() != digest or self.sm.committee() != spec
                    or (proof and not probe._valid_proof(seq, digest, proof))):
                del self._join_snaps[(spec, seq, digest)]
                continue
            store = self.store_for(spec.number)
            store.save_checkpoint(StoredCheckpoint(seq, digest, snapshot, encode_proof(proof)))
            store.sync()
            self._joining = None
            self._join_votes.clear()
            self._join_snaps.clear()
            self._open(spec, now, store)
            self._take(self.spec, self.inner.start(now), now)
            return
