"""How a worker talks to the network: submit signed messages, read the global ledger.

``Gateway`` is the one interface the workers see. ``LocalGateway`` holds an in-process
``Ledger`` (tests, the demo, a single machine); ``HttpGateway`` goes through the committee's
HTTP API with BFT reads (``pot.api.CommitteeClient``). Both return the same typed views,
rendered by ``pot.api.views`` from the same ledger queries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pot.api import views
from pot.api.client import ApiClient, CommitteeClient
from pot.ledger import Ledger
from pot.protocol import types as T
from pot.protocol.types import Result


@runtime_checkable
class Gateway(Protocol):
    async def submit(self, signed: T.Signed) -> Result: ...

    async def fetch_orders(self, limit: int | None = None) -> list[views.OrderView]:
        """FetchOrders: orders in training, best reward per second of training first."""
        ...

    async def orders(self, phase: str = "active") -> list[views.OrderView]:
        """Orders still in their cycle (``active``) or in one phase."""
        ...

    async def cycle(self, order_id: int) -> views.CycleView | None: ...

    async def validations(self, order_id: int) -> list[T.ValidationReveal]: ...

    async def model_link(self, mid: bytes) -> str | None: ...

    async def node_info(self, address: str) -> dict[str, Any] | None: ...

    async def settlement(self, nonce: int) -> views.SettlementView | None: ...

    async def outcome(self, order_id: int) -> dict[str, Any] | None:
        """How the order ended (``GET /v1/orders/{id}/outcome``); None for an unknown order."""
        ...

    async def publish(self, signed: T.Signed, data: bytes) -> int:
        """Hand content an order references to the committee (a signed ``ContentUpload``); how many
        replicas hold it."""
        ...

    async def aclose(self) -> None: ...


class LocalGateway:
    """An in-process ledger applied at ``clock()``; chain events come in through ``apply``."""

    def __init__(self, ledger: Ledger, clock: Callable[[], int] | None = None) -> None:
        self.ledger = ledger
        self.clock = clock or (lambda: int(time.time()))
        self._lock = asyncio.Lock()

    def _now(self) -> int:
        return max(self.clock(), self.ledger.time)

    def apply(self, op: T.Op) -> Result:
        """Apply a chain event, Tick or committee op (what the committee's primary would propose)."""
        return self.ledger.apply(op, self._now())

    def tick(self) -> Result:
        return self.apply(T.Tick())

    async def submit(self, signed: T.Signed) -> Result:
        async with self._lock:
            return self.ledger.apply(signed, self._now())

    async def fetch_orders(self, limit: int | None = None) -> list[views.OrderView]:
        return [views.OrderView.from_json(o) for o in views.orders(self.ledger, limit=limit, now=self._now())]

    async def orders(self, phase: str = "active") -> list[views.OrderView]:
        return [views.OrderView.from_json(o)
                for o in views.orders(self.ledger, phase_filter=phase, now=self._now())]

    async def cycle(self, order_id: int) -> views.CycleView | None:
        try:
            return views.CycleView.from_json(views.cycle(self.ledger, order_id))
        except KeyError:
            return None

    async def validations(self, order_id: int) -> list[T.ValidationReveal]:
        try:
            return self.ledger.fetch_validations(order_id)
        except KeyError:
            return []

    async def model_link(self, mid: bytes) -> str | None:
        return self.ledger.model_link(mid)

    async def node_info(self, address: str) -> dict[str, Any] | None:
        return views.node(self.ledger, address)

    async def settlement(self, nonce: int) -> views.SettlementView | None:
        st = views.settlement(self.ledger, nonce)
        return None if st is None else views.SettlementView.from_json(st)

    async def outcome(self, order_id: int) -> dict[str, Any] | None:
        try:
            return views.order_outcome(self.ledger, order_id)
        except KeyError:
            return None

    async def publish(self, signed: T.Signed, data: bytes) -> int:
        return 0  # one process, one store: everyone reads it already

    async def aclose(self) -> None:
        pass


class HttpGateway:
    """The committee's HTTP API: BFT reads from f+1 replicas, submissions to f+1 replicas."""

    def __init__(self, committee: CommitteeClient | ApiClient) -> None:
        self.api = committee

    @classmethod
    def from_urls(cls, urls: list[str], *, f: int | None = None, timeout: float = 10.0,
                  state_file: Any = None, on_switch: Callable[[list[str]], Any] | None = None) -> HttpGateway:
        """Over the committee at ``urls``, following its changes (``CommitteeClient``); the one
        it learned is kept in ``state_file``; ``on_switch`` hears the new URLs."""
        return cls(CommitteeClient(urls, f=f, timeout=timeout, state_file=state_file, on_switch=on_switch))

    async def submit(self, signed: T.Signed) -> Result:
        return await self.api.submit(signed)

    async def fetch_orders(self, limit: int | None = None) -> list[views.OrderView]:
        return await self.api.orders(limit=limit)

    async def orders(self, phase: str = "active") -> list[views.OrderView]:
        return await self.api.orders(phase=phase)

    async def cycle(self, order_id: int) -> views.CycleView | None:
        doc = await self.api.order(order_id)
        return None if doc is None else views.CycleView.from_json(doc)

    async def validations(self, order_id: int) -> list[T.ValidationReveal]:
        return await self.api.validations(order_id)

    async def model_link(self, mid: bytes) -> str | None:
        return await self.api.model_link(mid)

    async def node_info(self, address: str) -> dict[str, Any] | None:
        return await self.api.node(address)

    async def settlement(self, nonce: int) -> views.SettlementView | None:
        doc = await self.api.settlement(nonce)
        return None if doc is None else views.SettlementView.from_json(doc)

    async def outcome(self, order_id: int) -> dict[str, Any] | None:
        return await self.api.outcome(order_id)

    async def publish(self, signed: T.Signed, data: bytes) -> int:
        return await self.api.upload(signed, data)

    async def aclose(self) -> None:
        await self.api.aclose()
