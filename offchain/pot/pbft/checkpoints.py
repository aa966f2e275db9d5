"""Checkpoints, garbage collection, catch-up and state transfer (Castro & Liskov §4.3, §5.3).

Every K sequence numbers a replica signs a CHECKPOINT of its state digest; 2f+1 matching ones
make it stable: the low watermark moves up and everything at or below it is discarded. A
replica that fell behind fetches the committed batches it missed (``Committed``, taken from
f+1 senders) or, behind the stable checkpoint, the state itself (``State``, checked against
the digest 2f+1 replicas signed).
"""

from __future__ import annotations

from .config import ReplicaStatus
from .effects import RolledBack, Send
from .messages import Checkpoint, Commit, Committed, Fetch, State, batch_digest, decode, encode
from .storage import StoredCheckpoint, decode_snapshot_parts, encode_snapshot_parts
from .votes import VoteSet


def _digest_of(c: Checkpoint) -> bytes:
    return c.digest


class CheckpointLog:
    """The stable checkpoint (low watermark ``h``, its digest, snapshot and 2f+1 signed proof),
    the checkpoint votes above it, and this replica's own checkpoints not yet stable."""

    __slots__ = ("h", "digest", "snapshot", "proof", "votes", "own")

    def __init__(self, genesis_digest: bytes, genesis_snapshot: bytes) -> None:
        self.h = 0
        self.digest = genesis_digest
        self.snapshot = genesis_snapshot
        self.proof: tuple[Checkpoint, ...] = ()
        self.votes: dict[int, VoteSet[Checkpoint]] = {}
        self.own: dict[int, tuple[bytes, bytes]] = {0: (genesis_digest, genesis_snapshot)}

    def vote(self, c: Checkpoint) -> None:
        # (A replica's later vote replaces its earlier one: after a rollback it signs again.)
        votes = self.votes.get(c.seq)
        if votes is None:
            votes = self.votes[c.seq] = VoteSet(_digest_of)
        votes.put(c.replica, c)

    def proof_for(self, seq: int, digest: bytes, quorum: int) -> tuple[Checkpoint, ...] | None:
        """``quorum`` signed checkpoints of ``digest`` at ``seq``, or None."""
        votes = self.votes.get(seq)
        if votes is None or not votes.has_quorum(digest, quorum):
            return None
        return tuple(votes.matching(digest)[:quorum])

    def stabilize(self, seq: int, digest: bytes, snapshot: bytes, proof: tuple[Checkpoint, ...]) -> None:
        self.h, self.digest, self.snapshot, self.proof = seq, digest, snapshot, proof
        for s in [s for s in self.votes if s < seq]:
            del self.votes[s]
        for s in [s for s in self.own if s < seq]:
            del self.own[s]


def encode_proof(proof: tuple[Checkpoint, ...]) -> bytes:
    return encode_snapshot_parts([encode(c) for c in proof])


def decode_proof(data: bytes) -> list[Checkpoint]:
    out = []
    for part in decode_snapshot_parts(data):
        c = decode(part)
        if type(c) is Checkpoint:
            out.append(c)
    return out


class CheckpointHandlers:
    """The replica's checkpoint, garbage-collection and catch-up handlers (mixed into
    ``Replica``; the state they use is the replica's)."""

    def _on_checkpoint(self, m: Checkpoint, sender: int, now: float) -> None:
        if m.replica != sender or m.seq <= self.h or m.seq % self.cfg.checkpoint_interval:
            return
        self.max_seen = max(self.max_seen, m.seq)
        if not self.signer.verify(sender, m.signable(), m.sig):
            self._fault(sender, "bad checkpoint signature")
            return
        self.ckpt.vote(m)
        self._check_stable(m.seq, m.digest)

    def _check_stable(self, seq: int, digest: bytes) -> None:
        proof = self.ckpt.proof_for(seq, digest, self.cfg.quorum)
        if proof is None or seq <= self.h:
            return
        own = self.ckpt.own.get(seq)
        if own is not None and own[0] == digest:
            self._make_stable(seq, digest, own[1], proof)
        elif self.last_exec < seq:
            # Behind: 2f+1 replicas vouch for this state; fetch it (§4.3 / §5.3).
            self._fetch(proof[0].replica if proof[0].replica != self.id else None)
        elif own is not None and own[0] != digest:
            # Our history disagrees with what 2f+1 replicas signed (a log lost or corrupted
            # before this version kept every vote): roll back to their state (see _on_state).
            self._fetch(proof[0].replica if proof[0].replica != self.id else None, seq)

    def _make_stable(self, seq: int, digest: bytes, snapshot: bytes,
                     proof: tuple[Checkpoint, ...], rollback: bool = False) -> None:
        self.ckpt.stabilize(seq, digest, snapshot, proof)
        self.store.save_checkpoint(StoredCheckpoint(seq, digest, snapshot, encode_proof(proof)),
                                   rollback=rollback)
        # Discard everything at or below the stable checkpoint (§4.3 garbage collection).
        for d in (self.slots, self.certs, self.exec_log, self.fetch_votes, self.committed):
            for s in [s for s in d if s <= seq]:
                del d[s]
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
            c = self.ckpt
            self._out.append(Send(sender, State(c.h, c.digest, c.snapshot, c.proof, self.id)))
            start = self.h + 1
        end = min(self.last_exec, start + self.cfg.log_size)
        for s in range(start, end + 1):
            b = self.exec_log.get(s)
            if b is not None:
                self._out.append(Send(sender, Committed(s, b[0], b[1], self.id)))
        # Also resend our votes of this view for those instances: when only one correct
        # replica executed a batch, f+1 Committed never arrive, but the sender can still
        # commit the batch itself from the prepares and commits it missed.
        if self.status is ReplicaStatus.NORMAL:
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
        if rollback and self.ckpt.own.get(m.seq, (m.digest,))[0] == m.digest:
            return
        if not self._valid_proof(m.seq, m.digest, m.proof):
            self._fault(sender, "state without proof")
            return
        backup = self._snapshot()
        saved = (self.last_ts, self.executed)
        try:
            self._restore(m.snapshot)
            ok = self._checkpoint_digest(m.seq) == m.digest
        except Exception:
            ok = False
        if not ok:
            # A lying peer's snapshot never replaces our state: the digest is what 2f+1 signed.
            self._restore(backup)
            self.last_ts, self.executed = saved
            self._fault(sender, "snapshot does not match checkpoint digest")
            return
        if rollback:
            self._out.append(RolledBack(m.seq, self.last_exec - m.seq))
            for d in (self.exec_log, self.committed, self.ckpt.own):
                for s in [s for s in d if s > m.seq]:
                    del d[s]
        self.last_exec = m.seq
        self.ckpt.own[m.seq] = (m.digest, m.snapshot)
        for rid in [rid for rid in self.requests.pending if rid in self.executed]:
            self.requests.retire(rid)
        self._make_stable(m.seq, m.digest, m.snapshot, tuple(m.proof), rollback=rollback)
        self._execute_ready(now)
        if self.status is ReplicaStatus.NORMAL:
            self._update_view_timer(now)
        if self.is_primary:
            # A new primary that caught up by state transfer may propose again (max_inflight).
            self._maybe_propose(now)
        self._fetch(sender)

    def _reannounce_checkpoint(self) -> None:
        """Status tick: our last checkpoint is not stable yet."""
        s = self.last_exec - self.last_exec % self.cfg.checkpoint_interval
        votes = self.ckpt.votes.get(s)
        c = votes.get(self.id) if votes is not None else None
        if c is not None:
            self._out.append(Send(None, c))
        # A checkpoint 2f+1 others signed that we could not take yet (we were behind, or our
        # history disagrees and the state did not come): ask again.
        for seq, votes in list(self.ckpt.votes.items()):
            if seq > self.h:
                d = votes.quorum_value(self.cfg.quorum)
                if d is not None:
                    self._check_stable(seq, d)
