"""The two things a replica plugs in: the replicated state machine and its own durable log.

``StateMachine`` is what the ledger implements (``pot.ledger.LedgerStateMachine``).

``ReplicaStore`` is where a replica records everything it must never lose (ARCHITECTURE.md §4): each
pre-prepare it sent or accepted, its own prepare, each prepared certificate it sent a commit
for, its view and view-change state, the new-view that started its view, each executed batch,
and its stable checkpoint. A replica that forgot a vote could cast a different one after a
restart; if all replicas lose power together, a batch that one of them executed (and answered
a client for) could then be given to another request at the same sequence number.

Writes are buffered; ``sync()`` makes them durable. The driver calls it once per turn, before
any message or reply of that turn leaves (``ReplicaNode``: one fsync per event-loop turn; the
simulator: after every input), so nothing another party saw can be lost by a crash.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

from .messages import NewView, PrePrepare, Prepare, PreparedCert, SuspectCert, ViewChange, decode, encode


class StateMachine(Protocol):
    def execute(self, requests: list[bytes], timestamp: int) -> list[bytes]:
        """Apply a committed batch; deterministic; one result per request.
        ``timestamp`` is the batch time in integer milliseconds since the Unix epoch."""
        ...

    def digest(self) -> bytes: ...

    def snapshot(self) -> bytes: ...

    def restore(self, snapshot: bytes) -> None: ...


@dataclass(frozen=True)
class LoggedBatch:
    seq: int
    timestamp: int
    requests: tuple[bytes, ...]


@dataclass(frozen=True)
class StoredCheckpoint:
    seq: int
    digest: bytes
    snapshot: bytes  # the replica's snapshot (state machine + dedup state), see Replica
    proof: bytes  # encoded tuple of signed Checkpoint messages


@dataclass(frozen=True)
class ViewState:
    """The view a replica is in, and while it is changing views its own VIEW-CHANGE (it must
    send the same one again after a restart, never one that forgets a prepared batch) and the
    2f+1 suspects it left the last view with (re-sent until the others follow)."""
    view: int
    in_view_change: bool
    view_change: ViewChange | None = None
    left_with: SuspectCert | None = None


@dataclass
class SlotRecord:
    """What a replica said about one sequence number: the pre-prepare it accepted (or sent as
    primary), its prepare for it, and the prepared certificate it sent a commit for (the
    highest view's; it may be older than the pre-prepare)."""
    pre_prepare: PrePrepare | None = None
    prepare: Prepare | None = None
    cert: PreparedCert | None = None


@dataclass
class Recovered:
    checkpoint: StoredCheckpoint | None = None
    batches: list[LoggedBatch] = field(default_factory=list)
    view: ViewState | None = None
    new_view: NewView | None = None
    slots: dict[int, SlotRecord] = field(default_factory=dict)


class ReplicaStore(Protocol):
    def append(self, batch: LoggedBatch) -> None:
        """An executed batch."""
        ...

    def save_pre_prepare(self, pp: PrePrepare) -> None: ...

    def save_prepare(self, prepare: Prepare) -> None: ...

    def save_cert(self, cert: PreparedCert) -> None: ...

    def save_view(self, state: ViewState) -> None: ...

    def save_new_view(self, nv: NewView) -> None: ...

    def save_checkpoint(self, checkpoint: StoredCheckpoint, *, rollback: bool = False) -> None:
        """A stable checkpoint; what is at or below its seq may be forgotten. ``rollback``:
        the replica's executed history above it is void (state transfer over a history that
        disagreed with 2f+1 replicas), so every logged batch goes."""
        ...

    def sync(self) -> None:
        """Make every earlier write durable (a no-op when nothing is buffered)."""
        ...

    def load(self) -> Recovered: ...


class MemoryStore:
    """For tests and the simulator: survives a simulated crash because the simulator keeps the
    object, not the replica; a crash loses what was written since the last ``sync``."""

    def __init__(self) -> None:
        self._pending: list[tuple] = []
        self.checkpoint: StoredCheckpoint | None = None
        self.batches: dict[int, LoggedBatch] = {}
        self.slots: dict[int, SlotRecord] = {}
        self.view: ViewState | None = None
        self.new_view: NewView | None = None

    def append(self, batch: LoggedBatch) -> None:
        self._pending.append(("b", batch))

    def save_pre_prepare(self, pp: PrePrepare) -> None:
        self._pending.append(("pp", pp))

    def save_prepare(self, prepare: Prepare) -> None:
        self._pending.append(("p", prepare))

    def save_cert(self, cert: PreparedCert) -> None:
        self._pending.append(("c", cert))

    def save_view(self, state: ViewState) -> None:
        self._pending.append(("v", state))

    def save_new_view(self, nv: NewView) -> None:
        self._pending.append(("nv", nv))

    def save_checkpoint(self, checkpoint: StoredCheckpoint, *, rollback: bool = False) -> None:
        self._pending.append(("ck", checkpoint, rollback))

    def lose_unsynced(self) -> None:
        """A crash: what was not synced never reached the disk."""
        self._pending.clear()

    def sync(self) -> None:
        if not self._pending:
            return
        for rec in self._pending:
            kind, x = rec[0], rec[1]
            if kind == "b":
                self.batches[x.seq] = x
            elif kind == "pp":
                self.slots.setdefault(x.seq, SlotRecord()).pre_prepare = x
            elif kind == "p":
                self.slots.setdefault(x.seq, SlotRecord()).prepare = x
            elif kind == "c":
                self.slots.setdefault(x.pre_prepare.seq, SlotRecord()).cert = x
            elif kind == "v":
                self.view = x
            elif kind == "nv":
                self.new_view = x
            else:
                self.checkpoint = x
                if rec[2]:
                    self.batches.clear()
                for d in (self.batches, self.slots):
                    for s in [s for s in d if s <= x.seq]:
                        del d[s]
        self._pending.clear()

    def load(self) -> Recovered:
        return Recovered(self.checkpoint, [self.batches[s] for s in sorted(self.batches)], self.view,
                         self.new_view, {s: SlotRecord(r.pre_prepare, r.prepare, r.cert)
                                         for s, r in sorted(self.slots.items())})


def _pack_batch(b: LoggedBatch) -> bytes:
    parts = [struct.pack(">I", len(b.requests))]
    for r in b.requests:
        parts.append(struct.pack(">I", len(r)))
        parts.append(r)
    return b"".join(parts)


def _unpack_batch(seq: int, ts: int, data: bytes) -> LoggedBatch:
    (cnt,) = struct.unpack_from(">I", data, 0)
    pos = 4
    reqs = []
    for _ in range(cnt):
        (ln,) = struct.unpack_from(">I", data, pos)
        pos += 4
        reqs.append(data[pos:pos + ln])
        pos += ln
    return LoggedBatch(seq, ts, tuple(reqs))


_PP, _PREPARE, _CERT = 1, 2, 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, requests BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS vote (seq INTEGER NOT NULL, kind INTEGER NOT NULL, msg BLOB NOT NULL,
                                 PRIMARY KEY (seq, kind));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class FileStore:
    """The replica's log in SQLite (WAL): one transaction per ``sync``, committed with
    ``synchronous=FULL`` (one fsync of the WAL), so a batch of writes costs one fsync however
    many votes it holds. A crash mid-transaction loses the whole transaction and nothing
    before it: the replica had not let any of it leave."""

    FILE = "replica.sqlite"

    def __init__(self, directory: str | os.PathLike, fsync: bool = True):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.dir / self.FILE, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'OFF'}")
        self.db.executescript(_SCHEMA)
        self._open = False

    def _begin(self) -> sqlite3.Connection:
        if not self._open:
            self.db.execute("BEGIN")
            self._open = True
        return self.db

    def append(self, batch: LoggedBatch) -> None:
        self._begin().execute("INSERT OR REPLACE INTO batch VALUES (?, ?, ?)",
                              (batch.seq, batch.timestamp, _pack_batch(batch)))

    def _vote(self, seq: int, kind: int, msg) -> None:
        self._begin().execute("INSERT OR REPLACE INTO vote VALUES (?, ?, ?)", (seq, kind, encode(msg)))

    def save_pre_prepare(self, pp: PrePrepare) -> None:
        self._vote(pp.seq, _PP, pp)

    def save_prepare(self, prepare: Prepare) -> None:
        self._vote(prepare.seq, _PREPARE, prepare)

    def save_cert(self, cert: PreparedCert) -> None:
        self._vote(cert.pre_prepare.seq, _CERT, cert)

    def _meta(self, key: str, value: bytes) -> None:
        self._begin().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def save_view(self, state: ViewState) -> None:
        self._meta("view", encode_snapshot_parts([
            struct.pack(">QB", state.view, state.in_view_change),
            encode(state.view_change) if state.view_change is not None else b"",
            encode(state.left_with) if state.left_with is not None else b""]))

    def save_new_view(self, nv: NewView) -> None:
        self._meta("new_view", encode(nv))

    def save_checkpoint(self, checkpoint: StoredCheckpoint, *, rollback: bool = False) -> None:
        c = checkpoint
        self._meta("checkpoint", encode_snapshot_parts([struct.pack(">Q", c.seq), c.digest, c.snapshot, c.proof]))
        db = self._begin()
        if rollback:
            db.execute("DELETE FROM batch")
        db.execute("DELETE FROM batch WHERE seq <= ?", (c.seq,))
        db.execute("DELETE FROM vote WHERE seq <= ?", (c.seq,))

    def sync(self) -> None:
        if self._open:
            self._open = False
            self.db.execute("COMMIT")

    def load(self) -> Recovered:
        rec = Recovered()
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if "checkpoint" in meta:
            seq, digest, snap, proof = decode_snapshot_parts(meta["checkpoint"])
            rec.checkpoint = StoredCheckpoint(struct.unpack(">Q", seq)[0], digest, snap, proof)
        if "view" in meta:
            head, vc, cert = decode_snapshot_parts(meta["view"])
            view, in_vc = struct.unpack(">QB", head)
            vc = decode(vc) if vc else None
            cert = decode(cert) if cert else None
            rec.view = ViewState(view, bool(in_vc), vc if type(vc) is ViewChange else None,
                                 cert if type(cert) is SuspectCert else None)
        if "new_view" in meta:
            nv = decode(meta["new_view"])
            rec.new_view = nv if type(nv) is NewView else None
        low = rec.checkpoint.seq if rec.checkpoint is not None else 0
        rec.batches = [_unpack_batch(s, ts, data) for s, ts, data in
                       self.db.execute("SELECT seq, ts, requests FROM batch WHERE seq > ? ORDER BY seq", (low,))]
        for seq, kind, raw in self.db.execute("SELECT seq, kind, msg FROM vote WHERE seq > ? ORDER BY seq", (low,)):
            slot = rec.slots.setdefault(seq, SlotRecord())
            msg = decode(raw)
            if kind == _PP and type(msg) is PrePrepare:
                slot.pre_prepare = msg
            elif kind == _PREPARE and type(msg) is Prepare:
                slot.prepare = msg
            elif kind == _CERT and type(msg) is PreparedCert:
                slot.cert = msg
        return rec

    def close(self) -> None:
        self.sync()
        self.db.close()


def encode_snapshot_parts(parts: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def decode_snapshot_parts(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("bad snapshot")
        (ln,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if pos + ln > len(data):
            raise ValueError("bad snapshot")
        out.append(data[pos:pos + ln])
        pos += ln
    return out
