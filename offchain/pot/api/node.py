"""What the HTTP API needs from the process that serves it: the ``Node`` interface.

The aggregator implements it over its PBFT replica: ``submit`` pushes the message's wire bytes
through PBFT and resolves to the ``Result`` the ledger returned when the request executed. The
API reads ``ledger`` directly (any replica answers reads from its own copy), so the node must
only mutate the ledger on the event loop's thread, between awaits.

``LocalNode`` is the in-process implementation for tests and single-machine use: it applies
each message to a ``Ledger`` at the time its clock says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pot.ledger import Ledger
from pot.protocol.types import Result


@runtime_checkable
class Node(Protocol):
    """The aggregator side of the API."""

    ledger: Ledger

    async def submit(self, raw: bytes) -> Result:
        """Order ``raw`` (a signed participant message's wire bytes, already decoded once by the
        API) into the ledger and return its result. May raise ``NodeUnavailable``."""
        ...

    def info(self) -> dict[str, Any]:
        """Replica facts for ``GET /v1/info``: at least ``replicaId`` and ``view``; the API adds the
        ledger's digest, sequence number and time itself. Extra keys are passed through."""
        ...


class NodeUnavailable(RuntimeError):
    """The node cannot take requests now (no primary, view change, shutting down): HTTP 503."""


class LocalNode:
    """A ``Node`` without PBFT: one ledger, applied directly at ``clock()`` (integer seconds)."""

    def __init__(self, ledger: Ledger, clock: Callable[[], int] | None = None, *,
                 replica_id: int | None = None) -> None:
        self.ledger = ledger
        self.clock = clock or (lambda: int(time.time()))
        self.replica_id = replica_id
        self._lock = asyncio.Lock()

    async def submit(self, raw: bytes) -> Result:
        async with self._lock:
            # the ledger refuses time running backwards; a wall clock stepped back must not make
            # every request fail, so never go below the last accepted time
            return self.ledger.apply_many([raw], max(self.clock(), self.ledger.time))[0]

    def info(self) -> dict[str, Any]:
        return {"replicaId": self.replica_id, "view": 0, "lastExecuted": self.ledger.seq, "mode": "local"}
