"""The aggregator's HTTP API (ARCHITECTURE.md §4), as a FastAPI app over a ``Node``.

    POST /v1/messages                 submit a signed message (codec wire bytes; raw or hex)
    GET  /v1/orders                   every order, newest first (?phase, ?status, ?client, ?miner,
                                      ?limit, ?cursor); ?sort=reward: FetchOrders, orders in
                                      training, best reward per second first
    GET  /v1/orders/{id}              the order's cycle data
    GET  /v1/orders/{id}/validations  FetchValidations
    GET  /v1/models/{mid}             where a revealed model is stored (its CID)
    GET  /v1/nodes/{address}          roles, stake and locked stake the ledger knows
    GET  /v1/settlements/pending      settlements waiting for signatures or execution
    GET  /v1/settlements/{nonce}      one settlement, executed or not
    GET  /v1/deployment               the contracts' addresses (the deployment file's entry)
    GET  /v1/epoch                    the committee's epoch and its changes (docs/COMMITTEE.md)
    GET  /v1/committee/members        the current committee: epoch, members, their API URLs
    GET  /v1/archive/{orders|settlements}  archive blobs in id order (?after, ?limit), for a
                                      replica that backfills its archive (``pot.roles.backfill``)
    GET  /v1/health                   liveness
    GET  /v1/info                     replica id, view, last executed sequence, ledger digest,
                                      submissions refused or rate-limited before consensus
    PUT  /v1/content/{cid}, GET /ipfs/{cid}   signed uploads of what orders reference, and the
                                      content back (``pot.api.content``)
    GET  /, /docs, /openapi.json      the explorer, the API reference and its OpenAPI document;
                                      the explorer's reads are in ``pot.api.explorer``

Every read is a function of the ledger state alone, so honest replicas at the same sequence
number answer byte for byte alike (``CommitteeClient`` relies on it). A refused submission
answers 4xx with the ledger's reason (name and wire code) and its text. What the ledger would
refuse for sure is refused before it costs the committee a PBFT round, and each connection and
each signer has a rate limit (429 with ``Retry-After``): see ``pot.api.admission``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from eth_utils import is_hex_address

from pot.api import content as content_routes
from pot.api import explorer, schemas, views
from pot.api.admission import AdmissionLimits, TokenBuckets, retry_after
from pot.api.content import ContentService
from pot.api.explorer import BACKFILL_RETRY_S, not_here_yet
from pot.api.node import Node, NodeUnavailable
from pot.ledger import backfill
from pot.ledger.ledger import FINAL_REASONS
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.timeline import Phase
from pot.protocol.types import Reason

#: A signed message is a few hundred bytes; the codec's frame limit bounds the largest op.
MAX_MESSAGE_BYTES = codec.MAX_FRAME_BYTES
_HEX = re.compile(rb"^(0x)?([0-9a-fA-F]{2})*$")

#: HTTP status of each ledger refusal: the reason itself travels in the body.
STATUS_OF_REASON: dict[Reason, int] = {
    Reason.MALFORMED: 400, Reason.INVALID: 400, Reason.BAD_SIGNATURE: 401,
    Reason.NOT_ENOUGH_STAKE: 403, Reason.NOT_AUTHORIZED: 403,
    Reason.UNKNOWN_ORDER: 404, Reason.UNKNOWN_MODEL: 404, Reason.UNKNOWN_NONCE: 404,
    Reason.REPLAY: 409, Reason.DUPLICATE: 409, Reason.ORDER_CLOSED: 409, Reason.NOT_PENDING: 409,
    Reason.WRONG_WINDOW: 422, Reason.COMMITMENT_MISMATCH: 422, Reason.NO_COMMITMENT: 422,
    Reason.TIME_BACKWARDS: 503, Reason.TOO_LARGE: 413, Reason.FAILED: 500,
}
PHASES = [p.value for p in Phase] + ["active"]
#: 404: nobody has it; 503 not-here-yet: archived before this replica caught up, still being copied
_MISSING: dict[int | str, dict[str, Any]] = {404: {"model": schemas.Error}, 503: {"model": schemas.Error}}


def _reply(result: T.Result, digest: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": result.ok, "reason": result.reason_enum.name, "code": result.reason,
                            "text": result.text}
    if digest is not None:
        body["digest"] = digest
    status = 200 if result.ok else STATUS_OF_REASON.get(result.reason_enum, 400)
    return JSONResponse(body, status_code=status)


def _refuse(reason: Reason, text: str) -> JSONResponse:
    return _reply(T.Result.rejected(reason, text))


def _too_many(wait: float, detail: str) -> JSONResponse:
    return JSONResponse({"error": "rate-limited", "detail": detail, "retryAfter": wait}, status_code=429,
                        headers={"Retry-After": retry_after(wait)})


def _not_found(what: str) -> JSONResponse:
    return JSONResponse({"error": "not-found", "detail": what}, status_code=404)


def _bad_request(detail: str) -> JSONResponse:
    return JSONResponse({"error": "bad-request", "detail": detail}, status_code=400)


def _json(data: Any) -> Response:
    # canonical bytes: equal states give equal bodies, which BFT reads compare
    return Response(views.canonical(data), media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes ``limit`` bytes (never buffered beyond that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(node: Node, *, max_message_bytes: int = MAX_MESSAGE_BYTES, title: str = "PoT aggregator",
               peers: Sequence[str] = (), rpc_url: str | None = None,
               limits: AdmissionLimits | None = None, deployment: dict[str, Any] | None = None,
               content: ContentService | None = None) -> FastAPI:
    """The API over ``node`` (see the module docstring for the endpoints). ``peers`` (every
    member's API URL) and ``rpc_url`` (this replica's chain node) feed the explorer's committee
    view and settlement receipts; ``limits``: admission's rate limits (``pot.api.admission``);
    ``deployment``: the deployment file's entry of this chain, served so that a participant needs
    nothing but the network's URLs; ``content``: the uploads this replica takes and serves
    (``pot.api.content``)."""
    app = FastAPI(title=title, version="1", docs_url=None, redoc_url=None, openapi_url="/openapi.json",
                  description="The committee's API: submit signed messages, read the global ledger. "
                              "Token amounts are integers in wei (18 decimals) and may exceed 2**53.")
    app.state.node = node
    ledger = node.ledger
    hex_limit = 2 * max_message_bytes + 2
    limits = limits or AdmissionLimits()
    per_connection = TokenBuckets(limits.connection_rate, limits.connection_burst, limits.max_tracked)
    per_sender = TokenBuckets(limits.sender_rate, limits.sender_burst, limits.max_tracked)
    app.state.admission = {"refused": 0, "limited": 0}

    @app.post("/v1/messages", response_model=schemas.SubmitResult,
              responses={400: {"model": schemas.SubmitResult}, 401: {"model": schemas.SubmitResult},
                         403: {"model": schemas.SubmitResult}, 409: {"model": schemas.SubmitResult},
                         413: {"model": schemas.SubmitResult}, 422: {"model": schemas.SubmitResult},
                         429: {"model": schemas.Error}, 500: {"model": schemas.SubmitResult},
                         503: {"model": schemas.Error}})
    async def submit(request: Request) -> Response:
        """Submit a signed participant message: the codec's wire bytes as the raw body
        (``application/octet-stream``), as hex text (optionally 0x-prefixed), or as JSON
        ``{"message": "0x…"}``."""
        wait = per_connection.take(request.client, time.monotonic()) if request.client else 0.0
        if wait:
            app.state.admission["limited"] += 1
            return _too_many(wait, "too many submissions on this connection")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await _read_body(request, max_message_bytes if ctype == "application/octet-stream"
                                else hex_limit + 32)
        if body is None:
            return _refuse(Reason.TOO_LARGE, f"message larger than {max_message_bytes} bytes")
        if ctype == "application/octet-stream":
            raw = body
        else:
            text = body.strip()
            if ctype == "application/json":
                try:
                    import json
                    doc = json.loads(text)
                    text = doc["message"].encode() if isinstance(doc, dict) and isinstance(
                        doc.get("message"), str) else None
                except (ValueError, UnicodeDecodeError):
                    text = None
                if text is None:
                    return _refuse(Reason.MALFORMED, 'JSON body must be {"message": "0x<hex wire bytes>"}')
            if not _HEX.match(text):
                return _refuse(Reason.MALFORMED, "body is not hex (send application/octet-stream for raw bytes)")
            raw = bytes.fromhex(text[2:].decode() if text.startswith(b"0x") else text.decode())
        if len(raw) > max_message_bytes:
            return _refuse(Reason.TOO_LARGE, f"message of {len(raw)} bytes > {max_message_bytes}")
        try:
            op = codec.decode(raw)
        except codec.DecodeError as exc:
            return _refuse(Reason.MALFORMED, str(exc))
        # chain events, ticks and committee signatures enter only through PBFT from the replicas
        # themselves; a participant can only sign messages
        if not isinstance(op, T.Signed):
            return _refuse(Reason.NOT_AUTHORIZED, f"{type(op).__name__} cannot be submitted through the API; "
                           "only signed participant messages")
        digest = "0x" + op.message.digest(ledger.config.message_domain).hex()
        if not op.verify(ledger.config.message_domain):
            # checked here too so a forged message never costs the committee a PBFT round
            return _reply(T.Result.rejected(Reason.BAD_SIGNATURE, f"signature is not {op.message.signer}'s for "
                                            f"chain {ledger.config.chain_id}, OrderBook "
                                            f"{ledger.config.order_book}"), digest)
        # what the ledger would refuse for sure never costs the committee a PBFT round
        pre = ledger.precheck(op, ledger.time)
        if not pre.ok and pre.reason_enum in FINAL_REASONS:
            app.state.admission["refused"] += 1
            return _reply(pre, digest)
        wait = per_sender.take(op.message.signer, time.monotonic())
        if wait:
            app.state.admission["limited"] += 1
            return _too_many(wait, f"too many messages from {op.message.signer}")
        try:
            result = await node.submit(raw)
        except NodeUnavailable as exc:
            return JSONResponse({"error": "unavailable", "detail": str(exc)}, status_code=503)
        return _reply(result, digest)

    @app.get("/v1/orders", response_model=schemas.OrderList, responses={400: {"model": schemas.Error}})
    async def get_orders(
            limit: int | None = Query(None, ge=1, le=10_000, description="page size (default: every match)"),
            phase: str | None = Query(None, description="orders still in their cycle in this phase; "
                                      "active: all of them"),
            status: str | None = Query(None, description=" | ".join(views.STATUSES)),
            client: str | None = Query(None, description="orders this address placed"),
            miner: str | None = Query(None, description="orders this address claimed"),
            cursor: int | None = Query(None, ge=1, description="nextCursor of the page before"),
            sort: Literal["newest", "reward"] = Query("newest", description="reward: the paper's FetchOrders, "
                                                      "orders in training, best reward per second first")) -> Response:
        """Every order that passes the filters, newest first (a stable order: pages follow
        ``nextCursor``), with its phase, when the phase ends, counts, settlement and winner."""
        if phase is not None and phase not in PHASES:
            return _bad_request(f"phase must be one of {PHASES}")
        if status is not None and status not in views.STATUSES:
            return _bad_request(f"status must be one of {list(views.STATUSES)}")
        for name, value in (("client", client), ("miner", miner)):
            if value is not None and not is_hex_address(value):
                return _bad_request(f"{name} must be a 20-byte hex address")
        if sort == "reward" and (cursor is not None or phase not in (None, Phase.TRAINING.value)):
            return _bad_request("sort=reward ranks the orders in training: no cursor, no other phase")
        return _json({"time": ledger.time, "seq": ledger.seq,
                      **views.list_orders(ledger, phase_filter=phase, status=status, client=client, miner=miner,
                                          limit=limit, cursor=cursor, sort=sort)})

    @app.get("/v1/orders/{order_id}", response_model=schemas.OrderCycle, responses=_MISSING)
    async def get_order(order_id: int) -> Response:
        """The order cycle data: the order, its phase and windows, claims, revealed models with
        their validations, challenges, PoT.Verify state and settlement nonce."""
        try:
            return _json({"time": ledger.time, "seq": ledger.seq, **views.cycle(ledger, order_id)})
        except KeyError:
            return not_here_yet(ledger, order_id=order_id) or _not_found(f"order {order_id} is not in the ledger")

    @app.get("/v1/orders/{order_id}/validations", response_model=schemas.ValidationList, responses=_MISSING)
    async def get_validations(order_id: int) -> Response:
        """FetchValidations: the order's revealed validations, in ledger order."""
        try:
            return _json({"orderId": order_id, "validations": views.validations(ledger, order_id)})
        except KeyError:
            return not_here_yet(ledger, order_id=order_id) or _not_found(f"order {order_id} is not in the ledger")

    @app.get("/v1/models/{mid}", response_model=schemas.ModelLink,
             responses={400: {"model": schemas.Error}, **_MISSING})
    async def get_model(mid: str) -> Response:
        """Where a revealed model is stored (its CID), by ``mid`` (sha256 of the model file)."""
        try:
            raw = bytes.fromhex(mid[2:] if mid.startswith("0x") else mid)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            return _bad_request("mid must be 32 bytes of hex (sha256 of the model file)")
        cid = ledger.model_link(raw)
        if cid is None and ledger.archive_missing():
            # the models index of orders archived before this replica caught up is still being copied
            return JSONResponse({"error": "not-here-yet", "detail": "this replica is still copying the archive "
                                 "from its peers; ask another replica or retry"}, status_code=503,
                                headers={"Retry-After": str(BACKFILL_RETRY_S)})
        if cid is None:
            return _not_found(f"model 0x{raw.hex()} was never revealed")
        return _json({"mid": "0x" + raw.hex(), "cid": cid})

    @app.get("/v1/nodes/{address}", response_model=schemas.NodeInfo,
             responses={400: {"model": schemas.Error}, 404: {"model": schemas.Error}})
    async def get_node(address: str) -> Response:
        """Roles, stake and locked stake the ledger knows for ``address``."""
        if not is_hex_address(address):
            return _bad_request("address must be a 20-byte hex address")
        info = views.node(ledger, address)
        if info is None:
            return _not_found(f"{address} has no stake in the ledger")
        return _json(info)

    @app.get("/v1/settlements/pending", response_model=schemas.PendingList)
    async def get_pending() -> Response:
        """Settlements waiting for signatures or execution, with the signatures collected."""
        return _json({"settlements": views.pending_settlements(ledger)})

    @app.get("/v1/settlements/{nonce}", response_model=schemas.SettlementDoc, responses=_MISSING)
    async def get_settlement(nonce: int) -> Response:
        """One settlement batch, executed or not, with its digest, signers and transaction hash."""
        st = views.settlement(ledger, nonce)
        if st is None:
            return not_here_yet(ledger, nonce=nonce) or _not_found(f"no settlement with nonce {nonce}")
        return _json(st)

    @app.get("/v1/archive/{kind}", responses={200: {"model": schemas.ArchivePage}})
    async def get_archive(kind: Literal["orders", "settlements"],
                          after: int = Query(0, ge=0, description="only ids above this one"),
                          limit: int = Query(backfill.PAGE_ROWS, ge=1, le=backfill.PAGE_ROWS)) -> Response:
        """Archived orders' or executed settlements' archive blobs, in id order: what a replica
        that caught up by state transfer copies, and checks against its ledger digest."""
        rows = ledger.archive_page(kind, after, limit, backfill.PAGE_BYTES)
        return _json({"kind": kind, "rows": [[i, "0x" + blob.hex()] for i, blob in rows]})

    @app.get("/v1/deployment", response_model=schemas.DeploymentDoc, responses={404: {"model": schemas.Error}})
    async def get_deployment() -> Response:
        """The contracts of this network (the deployment file's entry for its chain): with it and
        the committee's URLs a participant on another machine has everything it needs."""
        if deployment is None:
            return _not_found("this replica serves no deployment")
        return _json(deployment)

    @app.get("/v1/epoch", response_model=schemas.Epoch)
    async def get_epoch() -> Response:
        """The committee's epoch: members (PBFT order, keys, endpoints), k, and the committee
        changes members voted for, with their votes, deadline and status (docs/COMMITTEE.md)."""
        boundary = node.info().get("epochBoundary")
        return _json({**views.epoch_status(ledger), "boundary": boundary})

    @app.get("/v1/committee/members", response_model=schemas.CommitteeDoc)
    async def get_committee() -> Response:
        """The current committee: epoch, k, members in PBFT order with their keys, PBFT endpoints
        and public API URLs. Workers follow it: once f+1 replicas report a newer epoch alike, they
        use its members' APIs (docs/COMMITTEE.md)."""
        return _json(views.committee(ledger))

    @app.get("/v1/health", responses={200: {"model": schemas.Health}})
    async def health() -> dict[str, Any]:
        """Liveness, with the ledger's sequence number and time."""
        return {"status": "ok", "seq": ledger.seq, "time": ledger.time}

    @app.get("/v1/info", responses={200: {"model": schemas.Info}})
    async def info() -> dict[str, Any]:
        """This replica: id, view, last executed sequence number, ledger digest, deployment."""
        cfg = ledger.config
        return {**node.info(), "ledgerDigest": "0x" + ledger.digest().hex(), "ledgerSeq": ledger.seq,
                "ledgerTime": ledger.time, "chainId": cfg.chain_id, "orderBook": cfg.order_book,
                "rewardMultisig": cfg.reward_multisig, "committee": list(cfg.committee),
                "threshold": cfg.threshold, "admission": dict(app.state.admission)}

    explorer.install(app, node, peers=peers, rpc_url=rpc_url)
    if content is not None:
        content_routes.install(app, content, ledger.config.message_domain)
    return app
