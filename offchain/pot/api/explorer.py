"""The explorer: a read-only page of the network that every aggregator serves, its API reads, and
the API reference, all from files in this package (no CDN: it works offline).

    GET /                                 the explorer (static/explorer/: HTML, JS, CSS; charts are SVG
                                          drawn by its own script)
    GET /docs                             the API reference (Swagger UI, vendored in static/swagger/)
    GET /v1/orders/{id}/outcome           winner, what the order paid by address (tax included), slashes,
                                          verdicts, where its settlement stands
    GET /v1/settlements                   every settlement, newest first (?limit, ?cursor, ?executed)
    GET /v1/settlements/{nonce}/receipt   the settlement transaction's receipt: gas, block, sender
    GET /v1/accounts/{address}            stake, roles, earnings, slashes and orders of one address
    GET /v1/committee                     every member's /v1/info as this replica sees it

The first three ledger reads are functions of the ledger state like every other read (BFT reads
may compare them). The receipt and the committee are this aggregator's own observations: its chain
node's receipt of the transaction whose hash the ledger holds, and its peers' answers. They are
kept in memory only (receipts once mined, peers for a second) and are not part of the replicated
state.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from eth_utils import is_hex_address, to_checksum_address
from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from pot.api import schemas, views
from pot.api.node import Node

STATIC = Path(__file__).with_name("static")
#: the page loads nothing but its own files and talks to nothing but this replica
EXPLORER_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: Swagger UI sets style attributes from its script
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
#: a member this many ops behind the most advanced one is reported as behind (ticks alone add one a second)
BEHIND_OPS = 10
#: bounds of the committee fan-out: members asked, seconds per answer, bytes per answer
MAX_PEERS = 128
PEER_TIMEOUT = 1.5
PEER_MAX_BYTES = 64 * 1024

DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} API reference</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" href="explorer/favicon.svg" type="image/svg+xml">
</head>
<body>
<main id="swagger-ui"></main>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/init.js"></script>
</body>
</html>
"""


class ChainUnavailable(RuntimeError):
    """This aggregator's chain node did not answer."""


class Receipts:
    """Receipts of settlement transactions from one JSON-RPC node, remembered once mined."""

    def __init__(self, rpc_url: str, *, timeout: float = 3.0, max_entries: int = 4096) -> None:
        self.rpc_url = rpc_url
        self.timeout = timeout
        self.max_entries = max_entries
        self._known: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def _call(self, client: httpx.AsyncClient, method: str, params: list[Any]) -> Any:
        try:
            r = await client.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainUnavailable(f"chain node {self.rpc_url}: {type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict) or "error" in body:
            raise ChainUnavailable(f"chain node {self.rpc_url}: {body.get('error') if isinstance(body, dict) else body}")
        return body.get("result")

    async def get(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt of ``tx_hash`` (None: the node does not know it, or it is not mined yet)."""
        key = tx_hash.lower()
        if key in self._known:
            self._known.move_to_end(key)
            return self._known[key]
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            rcpt = await self._call(client, "eth_getTransactionReceipt", [tx_hash])
            if not rcpt or rcpt.get("blockNumber") is None:
                return None
            block = await self._call(client, "eth_getBlockByNumber", [rcpt["blockNumber"], False])

        def num(v: Any) -> int | None:
            return int(v, 16) if isinstance(v, str) else None

        doc = {"txHash": rcpt["transactionHash"], "status": num(rcpt.get("status")) or 0,
               "gasUsed": num(rcpt["gasUsed"]), "effectiveGasPrice": num(rcpt.get("effectiveGasPrice")),
               "blockNumber": num(rcpt["blockNumber"]), "blockTime": num((block or {}).get("timestamp")),
               "sender": to_checksum_address(rcpt["from"]) if rcpt.get("from") else None}
        self._known[key] = doc
        while len(self._known) > self.max_entries:
            self._known.popitem(last=False)
        return doc


class Peers:
    """The committee as this replica sees it: each member's ``/v1/info``, asked at most once a
    ``ttl`` however many pages ask, each answer bounded in time and size."""

    def __init__(self, urls: Sequence[str], *, timeout: float = PEER_TIMEOUT, ttl: float = 1.0) -> None:
        self.urls = [u.rstrip("/") for u in urls][:MAX_PEERS]
        self.timeout = timeout
        self.ttl = ttl
        self._at = -1e9
        self._last: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()

    async def _ask(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        t0 = time.monotonic()
        try:
            async with client.stream("GET", url + "/v1/info") as r:
                body = b""
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > PEER_MAX_BYTES:
                        raise ValueError(f"answer larger than {PEER_MAX_BYTES} bytes")
                if r.status_code != 200:
                    raise ValueError(f"HTTP {r.status_code}")
            info = json.loads(body)
        except (httpx.HTTPError, ValueError) as exc:
            return {"url": url, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
        ms = round((time.monotonic() - t0) * 1000)
        out: dict[str, Any] = {"url": url, "ok": True, "latencyMs": ms}
        for k in ("replicaId", "view", "primary", "lastExecuted", "ledgerSeq", "ledgerTime"):
            v = info.get(k)
            out[k] = v if type(v) is int else None
        for k in ("address", "ledgerDigest"):
            v = info.get(k)
            out[k] = v if isinstance(v, str) and len(v) <= 66 else None
        return out

    async def status(self) -> list[dict[str, Any]]:
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                limits = httpx.Limits(max_connections=32)
                async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
                    self._last = list(await asyncio.gather(*(self._ask(client, u) for u in self.urls)))
                self._at = time.monotonic()
            return [dict(m) for m in self._last]


def committee_view(members: list[dict[str, Any]], ledger_committee: Sequence[str],
                   threshold: int) -> dict[str, Any]:
    """Do the members agree? Same digest at the same sequence number, one view, nobody far behind."""
    up = [m for m in members if m["ok"] and m.get("ledgerSeq") is not None]
    by_seq: dict[int, set[str]] = {}
    for m in up:
        by_seq.setdefault(m["ledgerSeq"], set()).add(m.get("ledgerDigest") or "")
    top = max((m["ledgerSeq"] for m in up), default=0)
    return {"members": members, "committee": list(ledger_committee), "threshold": threshold,
            "answering": len(up), "views": sorted({m["view"] for m in up if m.get("view") is not None}),
            "digestsAgree": all(len(d) == 1 for d in by_seq.values()),
            "behind": [m["url"] for m in up if top - m["ledgerSeq"] > BEHIND_OPS]}


def _json(data: Any) -> Response:
    return Response(views.canonical(data), media_type="application/json")


def _not_found(what: str) -> JSONResponse:
    return JSONResponse({"error": "not-found", "detail": what}, status_code=404)


def _bad_request(detail: str) -> JSONResponse:
    return JSONResponse({"error": "bad-request", "detail": detail}, status_code=400)


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse({"error": "unavailable", "detail": detail}, status_code=503)


#: how long a client should wait before asking a replica again for what it is still copying
BACKFILL_RETRY_S = 5


def not_here_yet(ledger, *, order_id: int | None = None, nonce: int | None = None) -> JSONResponse | None:
    """The 503 for an order or settlement the ledger archived before this replica caught up by
    state transfer and that it is still copying from its peers (``pot.roles.backfill``): "not
    here yet", which ``CommitteeClient`` counts as no answer, never the definite 404 "unknown"
    that would disagree with the replicas that have it. None when the replica has it or nobody does."""
    if order_id is not None and ledger.archive_lacks_order(order_id):
        what = f"order {order_id}"
    elif nonce is not None and ledger.archive_lacks_settlement(nonce):
        what = f"settlement {nonce}"
    else:
        return None
    return JSONResponse({"error": "not-here-yet", "detail": f"{what} was archived before this replica caught up; "
                         f"it is being copied from its peers, ask another replica or retry"},
                        status_code=503, headers={"Retry-After": str(BACKFILL_RETRY_S)})


_ERRORS = {404: {"model": schemas.Error}, 400: {"model": schemas.Error}}


def install(app: FastAPI, node: Node, *, peers: Sequence[str] = (), rpc_url: str | None = None) -> None:
    """Add the explorer, the API reference and the explorer's reads to ``app`` (``create_app``
    does it). ``peers``: every member's API URL (this one's too); ``rpc_url``: this aggregator's
    chain node, for settlement receipts."""
    ledger = node.ledger
    receipts = Receipts(rpc_url) if rpc_url else None
    fan_out = Peers(peers) if peers else None
    app.mount("/explorer", StaticFiles(directory=STATIC / "explorer"), name="explorer-assets")
    app.mount("/docs/assets", StaticFiles(directory=STATIC / "swagger"), name="docs-assets")

    @app.get("/", include_in_schema=False)
    async def explorer_page() -> Response:
        return FileResponse(STATIC / "explorer" / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": EXPLORER_CSP, "Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs_page() -> Response:
        return HTMLResponse(DOCS_HTML.format(title=app.title), headers={"Content-Security-Policy": DOCS_CSP})

    @app.get("/v1/orders/{order_id}/outcome", tags=["explorer"], response_model=schemas.OrderOutcome,
             responses=_ERRORS)
    async def get_outcome(order_id: int) -> Response:
        """How the order ended: its winner and standing score, what it paid by address (the
        committee tax included), the slashes and challenge verdicts it caused, and its settlement
        (nonce, executed, transaction hash). Empty outcome fields until the ledger built it."""
        try:
            return _json(views.order_outcome(ledger, order_id))
        except KeyError:
            return not_here_yet(ledger, order_id=order_id) or _not_found(f"order {order_id} is not in the ledger")

    @app.get("/v1/settlements", tags=["explorer"], response_model=schemas.SettlementList, responses=_ERRORS)
    async def get_settlements(limit: int = Query(20, ge=1, le=500),
                              cursor: int | None = Query(None, ge=1, description="nextCursor of the page before"),
                              executed: bool | None = Query(None, description="only executed (true) or "
                                                            "only pending (false) settlements")) -> Response:
        """Every settlement, newest (highest nonce) first, with what it paid by address."""
        return _json({"time": ledger.time, "seq": ledger.seq,
                      **views.list_settlements(ledger, limit=limit, cursor=cursor, executed=executed)})

    @app.get("/v1/settlements/{nonce}/receipt", tags=["explorer"], response_model=schemas.Receipt,
             responses={**_ERRORS, 503: {"model": schemas.Error}})
    async def get_receipt(nonce: int) -> Response:
        """The executed settlement's transaction as this aggregator's chain node reports it: gas
        used (and per order), block, sender. Not ledger state: another replica's node may lag."""
        sst = ledger.settlement_state(nonce)
        if sst is None:
            return not_here_yet(ledger, nonce=nonce) or _not_found(f"no settlement with nonce {nonce}")
        if not sst.row.executed or sst.row.tx_hash is None:
            return _not_found(f"settlement {nonce} is not executed yet")
        st = {"txHash": "0x" + sst.row.tx_hash.hex(), "orderIds": sst.order_ids}
        if receipts is None:
            return _unavailable("this replica has no chain node configured")
        try:
            rcpt = await receipts.get(st["txHash"])
        except ChainUnavailable as exc:
            return _unavailable(str(exc))
        if rcpt is None:
            return _not_found(f"transaction {st['txHash']} is not known to this replica's chain node")
        n = max(1, len(st["orderIds"]))
        return _json({"nonce": nonce, **rcpt, "orders": len(st["orderIds"]), "gasPerOrder": rcpt["gasUsed"] // n})

    @app.get("/v1/accounts/{address}", tags=["explorer"], response_model=schemas.Account, responses=_ERRORS)
    async def get_account(address: str, limit: int = Query(50, ge=1, le=500)) -> Response:
        """One address: stake and roles, what settlements paid it (executed: ``earned``, not yet:
        ``pending``), its slashes, and the orders it took part in, newest first."""
        if not is_hex_address(address):
            return _bad_request("address must be a 20-byte hex address")
        return _json({"time": ledger.time, "seq": ledger.seq, **views.account(ledger, address, limit=limit)})

    @app.get("/v1/committee", tags=["explorer"], response_model=schemas.Committee)
    async def get_committee() -> Response:
        """Each member's view, sequence number and ledger digest as this replica sees them (its
        peers' ``/v1/info``, asked at most once a second, 1.5 s each), and whether they agree."""
        mine = node.info()
        own = {"url": "", "ok": True, "latencyMs": 0, "replicaId": mine.get("replicaId"), "view": mine.get("view"),
               "primary": mine.get("primary"), "lastExecuted": mine.get("lastExecuted"),
               "address": mine.get("address"), "ledgerSeq": ledger.seq, "ledgerTime": ledger.time,
               "ledgerDigest": "0x" + ledger.digest().hex()}
        members = await fan_out.status() if fan_out is not None else [own]
        for m in members:
            # this replica answers for itself from memory: its own row never times out
            if m["url"] == "" or (m.get("replicaId") is not None and m.get("replicaId") == own["replicaId"]):
                m.update({k: v for k, v in own.items() if k != "url"}, ok=True, error=None)
                m["self"] = True
            else:
                m["self"] = False
        return _json(committee_view(members, ledger.config.committee, ledger.config.threshold))
