"""The bytes of the epoch envelopes (``pbft.epoch``) on a replica link.

Every frame between the members of an epoch-changing committee is one of::

    0xE0 | epoch u64 | message          -- Epoched: a replica message (pbft.messages codec)
    0xE1 | epoch u64                    -- JoinRequest
    0xE2 | spec | seq u64 | digest | snapshot | n u32 | n x (len u32 | Checkpoint)   -- JoinState

with ``spec = number u64 | n u32 | n x (member | key) | m u32 | m x endpoint``, strings and
byte strings as ``len u32 | bytes``. Node ids are strings on the wire (account addresses). The
tags lie outside the replica messages' (1-14), so a bare replica message is refused here.
"""

from __future__ import annotations

import struct

from .epoch import EpochSpec, Epoched, JoinRequest, JoinState
from .messages import Checkpoint, DecodeError, decode, encode

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
EPOCHED, JOIN_REQUEST, JOIN_STATE = 0xE0, 0xE1, 0xE2
#: the contract's MAX_MEMBERS: no committee is larger
MAX_MEMBERS = 128


def _b(v: bytes) -> bytes:
    return _U32.pack(len(v)) + v


def encode_spec(spec: EpochSpec) -> bytes:
    out = [_U64.pack(spec.number), _U32.pack(len(spec.members))]
    for m, k in zip(spec.members, spec.keys, strict=True):
        out += [_b(str(m).encode()), _b(k)]
    out.append(_U32.pack(len(spec.endpoints)))
    out += [_b(e.encode()) for e in spec.endpoints]
    return b"".join(out)


def encode_envelope(env) -> bytes:
    t = type(env)
    if t is Epoched:
        return bytes((EPOCHED,)) + _U64.pack(env.epoch) + encode(env.msg)
    if t is JoinRequest:
        return bytes((JOIN_REQUEST,)) + _U64.pack(env.epoch)
    if t is JoinState:
        proof = [_b(encode(c)) for c in env.proof]
        return b"".join([bytes((JOIN_STATE,)), encode_spec(env.spec), _U64.pack(env.seq), _b(env.digest),
                         _b(env.snapshot), _U32.pack(len(proof)), *proof])
    raise TypeError(f"not an epoch envelope: {t.__name__}")


class _Reader:
    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos

    def u64(self) -> int:
        if self.pos + 8 > len(self.buf):
            raise DecodeError("truncated")
        self.pos += 8
        return _U64.unpack_from(self.buf, self.pos - 8)[0]

    def u32(self) -> int:
        if self.pos + 4 > len(self.buf):
            raise DecodeError("truncated")
        self.pos += 4
        return _U32.unpack_from(self.buf, self.pos - 4)[0]

    def bytes(self) -> bytes:
        n = self.u32()
        if self.pos + n > len(self.buf):
            raise DecodeError("truncated")
        self.pos += n
        return bytes(self.buf[self.pos - n:self.pos])

    def str(self) -> str:
        try:
            return self.bytes().decode()
        except UnicodeDecodeError as exc:
            raise DecodeError("not UTF-8") from exc

    def count(self, limit: int) -> int:
        n = self.u32()
        if n > limit:
            raise DecodeError("too many items")
        return n


def _spec(r: _Reader) -> EpochSpec:
    number = r.u64()
    members, keys = [], []
    for _ in range(r.count(MAX_MEMBERS)):
        members.append(r.str())
        keys.append(r.bytes())
    endpoints = tuple(r.str() for _ in range(r.count(MAX_MEMBERS)))
    if endpoints and len(endpoints) != len(members):
        raise DecodeError("one endpoint per member")
    return EpochSpec(number, tuple(members), tuple(keys), endpoints)


def decode_envelope(buf: bytes):
    """Exactly one envelope; anything else (a bare replica message included) is a DecodeError."""
    if not buf:
        raise DecodeError("empty frame")
    tag, r = buf[0], _Reader(buf, 1)
    if tag == EPOCHED:
        epoch = r.u64()
        return Epoched(epoch, decode(bytes(buf[r.pos:])))
    if tag == JOIN_REQUEST:
        env = JoinRequest(r.u64())
    elif tag == JOIN_STATE:
        spec = _spec(r)
        seq, digest, snapshot = r.u64(), r.bytes(), r.bytes()
        proof = []
        for _ in range(r.count(MAX_MEMBERS)):
            c = decode(r.bytes())
            if type(c) is not Checkpoint:
                raise DecodeError("a JoinState's proof holds checkpoints only")
            proof.append(c)
        if len(digest) != 32:
            raise DecodeError("digest must be 32 bytes")
        env = JoinState(spec, seq, digest, snapshot, tuple(proof))
    else:
        raise DecodeError(f"not an epoch envelope (tag {tag})")
    if r.pos != len(buf):
        raise DecodeError("trailing bytes")
    return env
