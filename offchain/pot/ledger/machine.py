"""The adapter the PBFT replica drives: requests in, replies out, digests and snapshots."""

from __future__ import annotations

from pot.ledger.ledger import Ledger
from pot.protocol import codec


class LedgerStateMachine:
    """PBFT's service state machine over a ``Ledger``.

    ``execute`` decodes and applies each request at the batch ``timestamp`` (the primary's
    clock in integer seconds: the ledger time that decides every window) in one durable
    transaction and returns each request's encoded ``Result`` (MALFORMED for bytes that do not
    decode). Time only finalizes orders through an explicit ``Tick`` op, which the primary
    includes in its batches periodically."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def execute(self, requests: list[bytes], timestamp: int) -> list[bytes]:
        return [codec.encode(r) for r in self.ledger.apply_many(list(requests), int(timestamp))]

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
