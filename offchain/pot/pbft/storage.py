"""The two things a replica plugs in: the replicated state machine and its own durable log.

``StateMachine`` is what the ledger implements (``pot.ledger.LedgerStateMachine``);
``ReplicaStore`` is where a replica persists each committed batch *before* it replies
(ARCHITECTURE.md §4), so a restarted replica recovers from its own log first and from its peers
after that.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence


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


@dataclass
class Recovered:
    checkpoint: StoredCheckpoint | None = None
    batches: list[LoggedBatch] = field(default_factory=list)


class ReplicaStore(Protocol):
    def append(self, batch: LoggedBatch) -> None:
        """Durable on return: the replica replies only after this."""
        ...

    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Persist a stable checkpoint; batches at or below its seq may be forgotten."""
        ...

    def load(self) -> Recovered: ...


class MemoryStore:
    """Survives a simulated crash because the simulator keeps the object, not the replica."""

    def __init__(self) -> None:
        self.checkpoint: StoredCheckpoint | None = None
        self.batches: list[LoggedBatch] = []

    def append(self, batch: LoggedBatch) -> None:
        self.batches.append(batch)

    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        self.checkpoint = checkpoint
        self.batches = [b for b in self.batches if b.seq > checkpoint.seq]

    def load(self) -> Recovered:
        return Recovered(self.checkpoint, list(self.batches))


_REC = struct.Struct(">II")  # length, crc32


def _pack_batch(b: LoggedBatch) -> bytes:
    parts = [struct.pack(">QQI", b.seq, b.timestamp, len(b.requests))]
    for r in b.requests:
        parts.append(struct.pack(">I", len(r)))
        parts.append(r)
    return b"".join(parts)


def _unpack_batch(data: bytes) -> LoggedBatch:
    seq, ts, cnt = struct.unpack_from(">QQI", data, 0)
    pos = 20
    reqs = []
    for _ in range(cnt):
        (ln,) = struct.unpack_from(">I", data, pos)
        pos += 4
        reqs.append(data[pos:pos + ln])
        pos += ln
    return LoggedBatch(seq, ts, tuple(reqs))


class FileStore:
    """An append-only log file of committed batches plus an atomically replaced checkpoint file.

    Each log record is ``len | crc32 | body``; a torn last record (crash mid-write) fails its
    CRC and is dropped on load, which is safe because the replica had not replied for it.
    """

    def __init__(self, directory: str | os.PathLike, fsync: bool = True):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._log_path = self.dir / "committed.log"
        self._ckpt_path = self.dir / "checkpoint.bin"
        self._log = open(self._log_path, "ab")

    def append(self, batch: LoggedBatch) -> None:
        body = _pack_batch(batch)
        self._log.write(_REC.pack(len(body), zlib.crc32(body)) + body)
        self._log.flush()
        if self.fsync:
            os.fsync(self._log.fileno())

    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        body = struct.pack(">QI", checkpoint.seq, len(checkpoint.digest)) + checkpoint.digest
        body += struct.pack(">I", len(checkpoint.snapshot)) + checkpoint.snapshot
        body += struct.pack(">I", len(checkpoint.proof)) + checkpoint.proof
        tmp = self._ckpt_path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(_REC.pack(len(body), zlib.crc32(body)) + body)
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, self._ckpt_path)
        # Rewrite the log without what the checkpoint covers (log garbage collection).
        keep = [b for b in self._read_log() if b.seq > checkpoint.seq]
        tmp = self._log_path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            for b in keep:
                body = _pack_batch(b)
                fh.write(_REC.pack(len(body), zlib.crc32(body)) + body)
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        self._log.close()
        os.replace(tmp, self._log_path)
        self._log = open(self._log_path, "ab")

    def _read_log(self) -> list[LoggedBatch]:
        out = []
        try:
            data = self._log_path.read_bytes()
        except FileNotFoundError:
            return out
        pos = 0
        while pos + 8 <= len(data):
            ln, crc = _REC.unpack_from(data, pos)
            body = data[pos + 8:pos + 8 + ln]
            if len(body) != ln or zlib.crc32(body) != crc:
                break
            out.append(_unpack_batch(body))
            pos += 8 + ln
        return out

    def load(self) -> Recovered:
        ckpt = None
        if self._ckpt_path.exists():
            data = self._ckpt_path.read_bytes()
            ln, crc = _REC.unpack_from(data, 0)
            body = data[8:8 + ln]
            if len(body) == ln and zlib.crc32(body) == crc:
                seq, dl = struct.unpack_from(">QI", body, 0)
                pos = 12
                digest = body[pos:pos + dl]
                pos += dl
                (sl,) = struct.unpack_from(">I", body, pos)
                pos += 4
                snap = body[pos:pos + sl]
                pos += sl
                (pl,) = struct.unpack_from(">I", body, pos)
                pos += 4
                proof = body[pos:pos + pl]
                ckpt = StoredCheckpoint(seq, digest, snap, proof)
        batches = self._read_log()
        if ckpt is not None:
            batches = [b for b in batches if b.seq > ckpt.seq]
        return Recovered(ckpt, batches)

    def close(self) -> None:
        self._log.close()


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
