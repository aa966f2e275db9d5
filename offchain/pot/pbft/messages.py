"""PBFT messages (Castro & Liskov 1999, §4) and their one binary encoding.

Every message is a frozen dataclass. ``encode``/``decode`` are the only way in and out of
bytes; decoding is strict (exact lengths, known tags, bounded counts) because the bytes come
from peers that may be Byzantine.

Statements that a third replica may have to check later carry a signature by their author
(``sig``): the pre-prepare and prepares of a prepared certificate and the checkpoints of a
stable-checkpoint proof travel inside VIEW-CHANGE and STATE messages. On the wire every
message is also MAC-authenticated per link (see ``transport``), so these signatures are only
*verified* when a message is forwarded as proof — in the normal case they cost one signing
per replica per batch and no verification.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, fields
from typing import ClassVar, Union


class DecodeError(ValueError):
    """The bytes are not a well-formed message."""


def H(*parts: bytes) -> bytes:
    """sha256 over length-prefixed parts: unambiguous, so no two part lists collide."""
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(4, "big"))
        h.update(p)
    return h.digest()


def request_id(payload: bytes) -> bytes:
    """A request is named by its hash: duplicates are suppressed by this id."""
    return hashlib.sha256(payload).digest()


def batch_digest(timestamp: int, requests: tuple[bytes, ...]) -> bytes:
    """Digest of a batch: binds the primary's timestamp to the ordered requests."""
    h = hashlib.sha256(b"pot-pbft-batch")
    h.update(timestamp.to_bytes(8, "big"))
    for r in requests:
        h.update(hashlib.sha256(r).digest())
    return h.digest()


# Field kinds: u = uint64, i = uint16 replica id, b = bytes, B = tuple[bytes], m = message,
# M = tuple[message].
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")

MAX_ITEMS = 1_000_000
_SIGNABLE: dict[int, tuple] = {}  # id(view-change) -> (it, its signable bytes)


@dataclass(frozen=True, slots=True)
class Request:
    """<REQUEST, o>: an opaque client operation (here a signed transaction)."""

    TAG: ClassVar[int] = 1
    KINDS: ClassVar[str] = "b"
    payload: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    """<REPLY, v, t, c, i, r>: a replica's result for one executed request."""

    TAG: ClassVar[int] = 2
    KINDS: ClassVar[str] = "uubib"
    view: int
    seq: int
    request_id: bytes
    replica: int
    result: bytes


@dataclass(frozen=True, slots=True)
class PrePrepare:
    """<PRE-PREPARE, v, n, d> with the batch: the primary's order for sequence number n."""

    TAG: ClassVar[int] = 3
    KINDS: ClassVar[str] = "uuubBib"
    view: int
    seq: int
    timestamp: int
    digest: bytes
    requests: tuple[bytes, ...]
    replica: int
    sig: bytes = b""

    def signable(self) -> bytes:
        return b"PP" + _U64.pack(self.view) + _U64.pack(self.seq) + self.digest


@dataclass(frozen=True, slots=True)
class Prepare:
    TAG: ClassVar[int] = 4
    KINDS: ClassVar[str] = "uubib"
    view: int
    seq: int
    digest: bytes
    replica: int
    sig: bytes = b""

    def signable(self) -> bytes:
        return b"P" + _U64.pack(self.view) + _U64.pack(self.seq) + self.digest


@dataclass(frozen=True, slots=True)
class Commit:
    TAG: ClassVar[int] = 5
    KINDS: ClassVar[str] = "uubi"
    view: int
    seq: int
    digest: bytes
    replica: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """<CHECKPOINT, n, d, i>: replica i's state digest after executing sequence number n."""

    TAG: ClassVar[int] = 6
    KINDS: ClassVar[str] = "ubib"
    seq: int
    digest: bytes
    replica: int
    sig: bytes = b""

    def signable(self) -> bytes:
        return b"CK" + _U64.pack(self.seq) + self.digest


@dataclass(frozen=True, slots=True)
class PreparedCert:
    """P_m: a pre-prepare and 2f matching prepares from distinct backups."""

    TAG: ClassVar[int] = 7
    KINDS: ClassVar[str] = "mM"
    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]


@dataclass(frozen=True, slots=True)
class ViewChange:
    """<VIEW-CHANGE, v+1, n, C, P, i>: n is the last stable checkpoint, C its proof."""

    TAG: ClassVar[int] = 8
    KINDS: ClassVar[str] = "uubMMib"
    view: int
    stable_seq: int
    stable_digest: bytes
    checkpoint_proof: tuple[Checkpoint, ...]
    prepared: tuple[PreparedCert, ...]
    replica: int
    sig: bytes = b""

    def signable(self) -> bytes:
        # Checked by every replica for every view-change of a NEW-VIEW: encoded once per object.
        hit = _SIGNABLE.get(id(self))
        if hit is not None and hit[0] is self:
            return hit[1]
        out = b"VC" + encode(
            ViewChange(self.view, self.stable_seq, self.stable_digest, self.checkpoint_proof,
                       self.prepared, self.replica, b"")
        )
        if len(_SIGNABLE) > 1024:
            _SIGNABLE.clear()
        _SIGNABLE[id(self)] = (self, out)
        return out


@dataclass(frozen=True, slots=True)
class NewView:
    """<NEW-VIEW, v+1, V, O>: 2f+1 view-changes and the pre-prepares they imply."""

    TAG: ClassVar[int] = 9
    KINDS: ClassVar[str] = "uMMib"
    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[PrePrepare, ...]
    replica: int
    sig: bytes = b""

    def signable(self) -> bytes:
        # The view-changes are signed themselves; binding their hashes is enough.
        h = hashlib.sha256(b"NV" + _U64.pack(self.view))
        for vc in self.view_changes:
            h.update(hashlib.sha256(encode(vc)).digest())
        for pp in self.pre_prepares:
            h.update(pp.signable())
        return h.digest()


@dataclass(frozen=True, slots=True)
class Fetch:
    """Catch-up and status: 'I have executed up to seq-1, I am in ``view``; send me what is
    committed from seq on' (and the NEW-VIEW of a later view, when there is one)."""

    TAG: ClassVar[int] = 10
    KINDS: ClassVar[str] = "uui"
    seq: int
    view: int
    replica: int


@dataclass(frozen=True, slots=True)
class Suspect:
    """'I want to leave view ``view``': its primary did not order what I wait for in time, or
    sent a batch I can prove wrong. A replica starts a view change only once 2f+1 replicas
    suspect its view (or f+1 others are already in a later one), so a replica that was paused
    or cut off never moves on alone (see ``Replica._on_suspect``). Signed: the 2f+1 suspects a
    replica moved on with are relayed as its proof to every replica."""

    TAG: ClassVar[int] = 13
    KINDS: ClassVar[str] = "uib"
    view: int
    replica: int
    sig: bytes = b""

    def signable(self) -> bytes:
        return b"SU" + _U64.pack(self.view)


@dataclass(frozen=True, slots=True)
class SuspectCert:
    """2f+1 signed suspects of ``view``: why the sender left it. A correct replica that gets it
    leaves too, so no correct replica stays behind in a view the others left."""

    TAG: ClassVar[int] = 14
    KINDS: ClassVar[str] = "uM"
    view: int
    suspects: tuple[Suspect, ...]


@dataclass(frozen=True, slots=True)
class Committed:
    """A batch the sender executed at seq; the receiver takes it from f+1 matching senders."""

    TAG: ClassVar[int] = 11
    KINDS: ClassVar[str] = "uuBi"
    seq: int
    timestamp: int
    requests: tuple[bytes, ...]
    replica: int


@dataclass(frozen=True, slots=True)
class State:
    """State transfer: a stable checkpoint's snapshot and its 2f+1 signed checkpoints."""

    TAG: ClassVar[int] = 12
    KINDS: ClassVar[str] = "ubbMi"
    seq: int
    digest: bytes
    snapshot: bytes
    proof: tuple[Checkpoint, ...]
    replica: int


Message = Union[Request, Reply, PrePrepare, Prepare, Commit, Checkpoint, PreparedCert, ViewChange,
                NewView, Fetch, Committed, State, Suspect, SuspectCert]

_BY_TAG: dict[int, type] = {
    c.TAG: c for c in (Request, Reply, PrePrepare, Prepare, Commit, Checkpoint, PreparedCert,
                       ViewChange, NewView, Fetch, Committed, State, Suspect, SuspectCert)
}
_FIELDS: dict[type, tuple[str, ...]] = {c: tuple(f.name for f in fields(c)) for c in _BY_TAG.values()}


def _enc(msg, out: list[bytes]) -> None:
    cls = type(msg)
    out.append(bytes((cls.TAG,)))
    for kind, name in zip(cls.KINDS, _FIELDS[cls]):
        v = getattr(msg, name)
        if kind == "u":
            out.append(_U64.pack(v))
        elif kind == "i":
            out.append(_U16.pack(v))
        elif kind == "b":
            out.append(_U32.pack(len(v)))
            out.append(v)
        elif kind == "B":
            out.append(_U32.pack(len(v)))
            for item in v:
                out.append(_U32.pack(len(item)))
                out.append(item)
        elif kind == "m":
            _enc(v, out)
        else:  # "M"
            out.append(_U32.pack(len(v)))
            for item in v:
                _enc(item, out)


# Fast paths for the two messages that are ~99% of the traffic at large n (O(n^2) per batch),
# and for the two that every request costs every replica (the client's request, the reply):
# the same bytes as the generic codec, with one struct call instead of a field loop.
_COMMIT = struct.Struct(">BQQI32sH")
_PREPARE_HEAD = struct.Struct(">BQQI32sHI")
_REQUEST_HEAD = struct.Struct(">BI")
_REPLY_HEAD = struct.Struct(">BQQI32sHI")


def encode(msg: Message) -> bytes:
    cls = type(msg)
    if cls is Reply and len(msg.request_id) == 32:
        return _REPLY_HEAD.pack(2, msg.view, msg.seq, 32, msg.request_id, msg.replica, len(msg.result)) + msg.result
    if cls is Request:
        return _REQUEST_HEAD.pack(1, len(msg.payload)) + msg.payload
    if cls is Prepare and len(msg.digest) == 32:
        return _PREPARE_HEAD.pack(4, msg.view, msg.seq, 32, msg.digest, msg.replica, len(msg.sig)) + msg.sig
    if cls is Commit and len(msg.digest) == 32:
        return _COMMIT.pack(5, msg.view, msg.seq, 32, msg.digest, msg.replica)
    out: list[bytes] = []
    _enc(msg, out)
    return b"".join(out)


def _dec(buf: bytes, pos: int, depth: int):
    if depth > 4:
        raise DecodeError("nesting too deep")
    if pos >= len(buf):
        raise DecodeError("truncated")
    cls = _BY_TAG.get(buf[pos])
    if cls is None:
        raise DecodeError(f"unknown tag {buf[pos]}")
    pos += 1
    end = len(buf)
    vals = []
    for kind in cls.KINDS:
        if kind == "u":
            if pos + 8 > end:
                raise DecodeError("truncated")
            vals.append(_U64.unpack_from(buf, pos)[0])
            pos += 8
        elif kind == "i":
            if pos + 2 > end:
                raise DecodeError("truncated")
            vals.append(_U16.unpack_from(buf, pos)[0])
            pos += 2
        elif kind == "b":
            if pos + 4 > end:
                raise DecodeError("truncated")
            ln = _U32.unpack_from(buf, pos)[0]
            pos += 4
            if pos + ln > end:
                raise DecodeError("truncated")
            vals.append(buf[pos:pos + ln])
            pos += ln
        elif kind == "B":
            if pos + 4 > end:
                raise DecodeError("truncated")
            cnt = _U32.unpack_from(buf, pos)[0]
            pos += 4
            if cnt > MAX_ITEMS or cnt * 4 > end - pos:
                raise DecodeError("too many items")
            items = []
            for _ in range(cnt):
                if pos + 4 > end:
                    raise DecodeError("truncated")
                ln = _U32.unpack_from(buf, pos)[0]
                pos += 4
                if pos + ln > end:
                    raise DecodeError("truncated")
                items.append(buf[pos:pos + ln])
                pos += ln
            vals.append(tuple(items))
        elif kind == "m":
            v, pos = _dec(buf, pos, depth + 1)
            vals.append(v)
        else:
            if pos + 4 > end:
                raise DecodeError("truncated")
            cnt = _U32.unpack_from(buf, pos)[0]
            pos += 4
            if cnt > MAX_ITEMS or cnt > end - pos:
                raise DecodeError("too many items")
            items = []
            for _ in range(cnt):
                v, pos = _dec(buf, pos, depth + 1)
                items.append(v)
            vals.append(tuple(items))
    return cls(*vals), pos


_NESTED_OK = {PreparedCert: (PrePrepare, Prepare), ViewChange: (Checkpoint, PreparedCert),
              NewView: (ViewChange, PrePrepare), State: (Checkpoint,), SuspectCert: (Suspect,)}


def decode(buf: bytes) -> Message:
    """Decode exactly one message; trailing bytes, wrong nested types or bad sizes fail."""
    n = len(buf)
    if n == 55 and buf[0] == 5:
        _, v, s, ln, d, r = _COMMIT.unpack(buf)
        if ln == 32:
            return Commit(v, s, d, r)
    elif n >= 59 and buf[0] == 4:
        _, v, s, ln, d, r, sl = _PREPARE_HEAD.unpack_from(buf)
        if ln == 32 and 59 + sl == n:
            return Prepare(v, s, d, r, buf[59:])
    elif n >= 5 and buf[0] == 1:
        if _REQUEST_HEAD.unpack_from(buf)[1] == n - 5:
            return Request(buf[5:])
    elif n >= 59 and buf[0] == 2:
        _, v, s, ln, d, r, sl = _REPLY_HEAD.unpack_from(buf)
        if ln == 32 and 59 + sl == n:
            return Reply(v, s, d, r, buf[59:])
    # Anything else (and any odd Prepare/Commit) takes the generic, strict path.
    try:
        msg, pos = _dec(buf, 0, 0)
    except (struct.error, TypeError, IndexError) as exc:
        raise DecodeError(str(exc)) from exc
    if pos != len(buf):
        raise DecodeError("trailing bytes")
    _check(msg)
    return msg


def _check(msg) -> None:
    cls = type(msg)
    allowed = _NESTED_OK.get(cls, ())
    for kind, name in zip(cls.KINDS, _FIELDS[cls]):
        v = getattr(msg, name)
        if kind == "m":
            if type(v) not in allowed:
                raise DecodeError(f"{cls.__name__}.{name}: unexpected {type(v).__name__}")
            _check(v)
        elif kind == "M":
            for item in v:
                if type(item) not in allowed:
                    raise DecodeError(f"{cls.__name__}.{name}: unexpected {type(item).__name__}")
                _check(item)
        elif kind == "b" and name in ("digest", "stable_digest", "request_id") and len(v) != 32:
            raise DecodeError(f"{cls.__name__}.{name}: digest must be 32 bytes")
    if cls is PreparedCert and type(msg.pre_prepare) is not PrePrepare:
        raise DecodeError("PreparedCert needs a PrePrepare")
    if cls is PreparedCert and any(type(p) is not Prepare for p in msg.prepares):
        raise DecodeError("PreparedCert holds prepares only")
