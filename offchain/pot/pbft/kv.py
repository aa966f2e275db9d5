"""A small deterministic key-value state machine: the default for nodes, benchmarks and tests
until the ledger (``pot.ledger.LedgerStateMachine``) is plugged in."""

from __future__ import annotations

import hashlib

from .storage import decode_snapshot_parts, encode_snapshot_parts


class KVStateMachine:
    """``key=value`` sets a key (result: the previous value); anything else is counted and its
    hash chained (result: the running count), so every request changes the digest."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.count = 0
        self.chain = b"\x00" * 32
        self.last_time = 0

    def execute(self, requests: list[bytes], timestamp: int) -> list[bytes]:
        out = []
        self.last_time = timestamp
        for r in requests:
            self.count += 1
            self.chain = hashlib.sha256(self.chain + r).digest()
            k, sep, v = r.partition(b"=")
            if sep and len(k) <= 64:
                out.append(self.data.get(k, b""))
                self.data[k] = v
            else:
                out.append(str(self.count).encode())
        return out

    def digest(self) -> bytes:
        h = hashlib.sha256(self.chain + self.count.to_bytes(8, "big") + self.last_time.to_bytes(8, "big"))
        for k in sorted(self.data):
            h.update(hashlib.sha256(k).digest() + hashlib.sha256(self.data[k]).digest())
        return h.digest()

    def snapshot(self) -> bytes:
        parts = [self.count.to_bytes(8, "big"), self.chain, self.last_time.to_bytes(8, "big")]
        for k in sorted(self.data):
            parts += [k, self.data[k]]
        return encode_snapshot_parts(parts)

    def restore(self, snapshot: bytes) -> None:
        parts = decode_snapshot_parts(snapshot)
        self.count = int.from_bytes(parts[0], "big")
        self.chain = parts[1]
        self.last_time = int.from_bytes(parts[2], "big")
        self.data = {parts[i]: parts[i + 1] for i in range(3, len(parts), 2)}
