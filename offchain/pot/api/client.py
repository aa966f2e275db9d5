"""Clients of the aggregator API: ``ApiClient`` (one replica) and ``CommitteeClient`` (BFT).

A single replica may lie. ``CommitteeClient`` reads from the committee and accepts an answer
only when f+1 replicas give it byte for byte (at least one of them is honest, and honest
replicas at the same ledger sequence number answer alike), and submits to f+1 replicas so at
least one honest replica orders the message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx

from pot.api import views
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.committee import max_faulty
from pot.protocol.types import Result


class ApiError(RuntimeError):
    """A replica answered with an error, or did not answer."""

    def __init__(self, url: str, status: int | None, detail: str) -> None:
        super().__init__(f"{url}: {status or 'no answer'}: {detail}")
        self.url = url
        self.status = status
        self.detail = detail


class NoQuorum(RuntimeError):
    """Fewer than f+1 replicas agreed on an answer."""


def _result_of(body: dict[str, Any]) -> Result:
    try:
        return Result(bool(body["ok"]), int(body["code"]), str(body.get("text", "")))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"not a submission result: {body!r}") from None


def _wire(message: T.Signed | bytes) -> bytes:
    return codec.encode(message) if isinstance(message, T.Signed) else bytes(message)


class _TypedReads:
    """The API's reads as typed values, over whatever ``get_json`` a subclass provides
    (one replica for ApiClient, f+1 matching replicas for CommitteeClient)."""

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        raise NotImplementedError

    async def orders(self, *, limit: int | None = None, phase: str | None = None) -> list[views.OrderView]:
        """Without ``phase``: FetchOrders (orders in training, best reward per second first)."""
        query = {"limit": limit, "phase": phase} if phase else {"limit": limit, "phase": "training", "sort": "reward"}
        doc = await self.get_json("/v1/orders", query)
        return [views.OrderView.from_json(o) for o in doc["orders"]]

    async def fetch_orders(self, limit: int | None = None) -> list[T.Order]:
        return [o.order for o in await self.orders(limit=limit)]

    async def order(self, order_id: int) -> dict[str, Any] | None:
        return await self.get_json(f"/v1/orders/{int(order_id)}")

    async def validations(self, order_id: int) -> list[T.ValidationReveal]:
        doc = await self.get_json(f"/v1/orders/{int(order_id)}/validations")
        return [] if doc is None else views.parse_validations(doc["validations"])

    async def model_link(self, mid: bytes) -> str | None:
        doc = await self.get_json(f"/v1/models/0x{bytes(mid).hex()}")
        return None if doc is None else doc["cid"]

    async def node(self, address: str) -> dict[str, Any] | None:
        return await self.get_json(f"/v1/nodes/{address}")

    async def pending_settlements(self) -> list[dict[str, Any]]:
        return (await self.get_json("/v1/settlements/pending"))["settlements"]

    async def settlement(self, nonce: int) -> dict[str, Any] | None:
        return await self.get_json(f"/v1/settlements/{int(nonce)}")



class ApiClient(_TypedReads):
    """One replica's API. ``transport`` lets tests pass an ASGI transport."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- raw access (CommitteeClient compares these) ------------------------------------------

    async def get_raw(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """(status, body) of a GET; 404 is an answer like any other. ApiError when unreachable."""
        try:
            resp = await self._http.get(path, params={k: v for k, v in (params or {}).items() if v is not None})
        except httpx.HTTPError as exc:
            raise ApiError(self.base_url + path, None, f"{type(exc).__name__}: {exc}") from None
        if resp.status_code not in (200, 404):
            raise ApiError(self.base_url + path, resp.status_code, resp.text[:500])
        return resp.status_code, resp.content

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        status, body = await self.get_raw(path, params)
        return None if status == 404 else json.loads(body)

    async def submit(self, message: T.Signed | bytes) -> Result:
        """POST the wire bytes; the ledger's Result (refusals too: they are answers, not errors)."""
        try:
            resp = await self._http.post("/v1/messages", content=_wire(message),
                                         headers={"content-type": "application/octet-stream"})
        except httpx.HTTPError as exc:
            raise ApiError(self.base_url, None, f"{type(exc).__name__}: {exc}") from None
        try:
            return _result_of(resp.json())
        except ValueError:
            raise ApiError(self.base_url + "/v1/messages", resp.status_code, resp.text[:500]) from None

    async def health(self) -> dict[str, Any]:
        return await self.get_json("/v1/health")

    async def info(self) -> dict[str, Any]:
        return await self.get_json("/v1/info")


class CommitteeClient(_TypedReads):
    """Reads from f+1 agreeing replicas; submits to f+1 replicas.

    ``f`` defaults to the largest f with 3f+1 <= n. Reads ask every replica at once and return as
    soon as f+1 bodies are identical, so a slow or lying minority neither delays nor fools them.
    """

    def __init__(self, urls: Sequence[str] | Sequence[ApiClient], *, f: int | None = None,
                 timeout: float = 10.0) -> None:
        if not urls:
            raise ValueError("CommitteeClient needs at least one replica URL")
        self.clients = [u if isinstance(u, ApiClient) else ApiClient(u, timeout=timeout) for u in urls]
        n = len(self.clients)
        self.f = max_faulty(n) if f is None else f
        if not 0 <= self.f or 2 * self.f + 1 > n:
            raise ValueError(f"f={self.f} needs at least {2 * self.f + 1} replicas, got {n}")

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))

    async def read_raw(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
        need = self.f + 1
        tally: dict[tuple[int, bytes], int] = {}
        errors: list[str] = []
        tasks = [asyncio.ensure_future(c.get_raw(path, params)) for c in self.clients]
        try:
            for fut in asyncio.as_completed(tasks):
                try:
                    answer = await fut
                except ApiError as exc:
                    errors.append(str(exc))
                    continue
                tally[answer] = tally.get(answer, 0) + 1
                if tally[answer] >= need:
                    return answer
        finally:
            for t in tasks:
                t.cancel()
        counts = sorted(tally.values(), reverse=True)
        raise NoQuorum(f"GET {path}: no answer from {need} replicas alike (groups {counts}, "
                       f"errors {errors[:3]}); replicas may be at different ledger heights, retry")

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        status, body = await self.read_raw(path, params)
        return None if status == 404 else json.loads(body)

    async def submit(self, message: T.Signed | bytes, *, replicas: int | None = None) -> Result:
        """Send to ``replicas`` (default f+1) replicas at once.

        The first copy ordered gets OK and later copies a REPLAY, so the result is OK if any
        replica accepted it, else the refusal most replicas gave. One replica's OK is not a BFT proof: read the
        order back through ``get_json`` when it matters."""
        raw = _wire(message)
        targets = self.clients[: max(1, replicas or self.f + 1)]
        answers = await asyncio.gather(*(c.submit(raw) for c in targets), return_exceptions=True)
        results = [a for a in answers if isinstance(a, Result)]
        if not results:
            raise ApiError("committee", None, f"no replica took the message: {answers}")
        ok = [r for r in results if r.ok]
        if ok:
            return ok[0]
        by_reason: dict[int, list[Result]] = {}
        for r in results:
            by_reason.setdefault(r.reason, []).append(r)
        return max(by_reason.values(), key=len)[0]
