"""The adapter the PBFT replica drives: requests in, replies out, digests and snapshots."""

from __future__ import annotations

from typing import Any

from pot.ledger.ledger import Ledger
from pot.protocol import codec
from pot.protocol import types as T


def request_op(payload: bytes) -> Any:
    """The ledger op a client request carries, or None when PBFT must refuse the request: not a
    canonical op, or a bare chain event (those enter only as attestations) or a reply/order."""
    try:
        op = codec.decode(payload)
    except codec.DecodeError:
        return None
    return None if type(op) in T.CHAIN_EVENTS or type(op) in (T.Result, T.Order) else op


class LedgerStateMachine:
    """PBFT's service state machine over a ``Ledger``.

    ``verify`` is the request check every replica runs on a request a primary proposes
    (``request_op``); it keeps what it decoded, so that ``execute`` hands the ledger the op
    itself and each replica decodes a request once. Only decoding is kept: every signature is
    recovered inside ``apply``, every time.

    ``execute`` applies the requests at the batch ``timestamp`` (integer seconds: the ledger time
    that decides every window) in one durable transaction and returns each request's encoded
    ``Result`` (MALFORMED for bytes that do not decode). Time only finalizes orders through an
    explicit ``Tick`` op, which the primary includes in its batches periodically."""

    #: decoded requests waiting for execution; the oldest go first past this many
    DECODED_MAX = 16384

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._decoded: dict[bytes, Any] = {}

    def verify(self, payload: bytes) -> bool:
        op = request_op(payload)
        if op is None:
            return False
        decoded = self._decoded
        if len(decoded) >= self.DECODED_MAX:
            del decoded[next(iter(decoded))]
        decoded[bytes(payload)] = op
        return True

    def execute(self, requests: list[bytes], timestamp: int) -> list[bytes]:
        pop = self._decoded.pop
        ops = [pop(r, None) or r for r in requests]
        encode = codec.encode
        return [encode(r) for r in self.ledger.apply_many(ops, int(timestamp))]

    def digest(self) -> bytes:
        return self.ledger.digest()

    def snapshot(self) -> bytes:
        return self.ledger.snapshot()

    def restore(self, snapshot: bytes) -> None:
        self.ledger.restore_snapshot(snapshot)

    # committee epochs (docs/COMMITTEE.md): the ledger's committee, the confirmed next one, the switch
    def committee(self):
        return self.ledger.committee()

    def pending_committee(self):
        return self.ledger.pending_committee()

    def activate_committee(self) -> None:
        self.ledger.activate_committee()
