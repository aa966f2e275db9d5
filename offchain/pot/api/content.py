"""The committee's content service: signed uploads in, verified content out (ARCHITECTURE.md §5).

    PUT  /v1/content/{cid}    upload the bytes of ``cid``; the request is a ``ContentUpload``
                              signed by the uploader, in ``x-pot-*`` headers
    GET  /ipfs/{cid}          the content (an IPFS path gateway: ``HttpGatewayStore`` reads it)
    HEAD /ipfs/{cid}          whether this replica holds it, and its size

A participant uploads to every replica and is done once 2f+1 stored it, so at least f+1 honest
replicas keep it; a reader fetches from any replica and verifies the bytes against the CID, so
one honest copy is enough. Who may upload what is ``pot.protocol.content.may_upload`` over this
replica's ledger; the request is checked before one byte of the body is read, the body is read
up to the size the request signed and must hash to the CID, and each account has a quota and a
token bucket (the API's admission buckets). What was uploaded for an order is kept until the
order settled plus ``retention_s``; the winning model is kept on (``ContentIndex.sweep``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from pot.api.admission import TokenBuckets, retry_after
from pot.ledger import Ledger
from pot.protocol.content import ContentUpload, may_upload
from pot.protocol.types import checksum
from pot.storage import ContentStore, StorageError
from pot.storage.cid import CID
from pot.storage.errors import InvalidCid, NotFound, TooLarge

MIB = 1 << 20


@dataclass(frozen=True)
class ContentLimits:
    """What one account may keep on a replica (``[content]`` in the aggregator's config)."""
    #: largest single upload (a model of the biggest architecture this network trains, a data set)
    max_upload_mb: float = 1024.0
    #: what one account may keep here at once (winning models do not count)
    quota_mb: float = 8192.0
    #: seconds content stays after its order settled (the client fetches the winner in that time)
    retention_s: int = 7 * 86_400
    #: uploads per second per account, and the burst
    upload_rate: float = 2.0
    upload_burst: float = 20.0

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MIB)

    @property
    def quota_bytes(self) -> int:
        return int(self.quota_mb * MIB)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "[content]") -> ContentLimits:
        known = {f.name for f in fields(cls)}
        bad = sorted(set(doc) - known)
        if bad:
            raise ValueError(f"{where}: unknown option(s) {bad} (known: {sorted(known)})")
        for k, v in doc.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{where}: {k} must be a number >= 0")
        return cls(**doc)


class ContentIndex:
    """Which content this replica keeps, for which order and uploader (SQLite; one writer: the API's
    event loop). A CID is unpinned once no row names it any more."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.db = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False)
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS uploads (cid TEXT, order_id INTEGER, uploader TEXT, size INTEGER,
                added INTEGER, keep INTEGER DEFAULT 0, PRIMARY KEY (cid, order_id, uploader));
            CREATE TABLE IF NOT EXISTS finished (order_id INTEGER PRIMARY KEY, at INTEGER);
        """)
        self.lock = threading.Lock()

    def add(self, cid: str, order_id: int, uploader: str, size: int, now: int) -> None:
        with self.lock, self.db:
            self.db.execute("INSERT OR IGNORE INTO uploads (cid, order_id, uploader, size, added) VALUES (?,?,?,?,?)",
                            (cid, order_id, uploader.lower(), size, now))

    def holds(self, cid: str, uploader: str) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM uploads WHERE cid=? AND uploader=?",
                                   (cid, uploader.lower())).fetchone() is not None

    def used(self, uploader: str) -> int:
        """Bytes the account keeps here (each CID once; winning models excluded)."""
        with self.lock:
            row = self.db.execute("SELECT COALESCE(SUM(size), 0) FROM (SELECT cid, MAX(size) AS size FROM uploads "
                                  "WHERE uploader=? AND keep=0 GROUP BY cid)", (uploader.lower(),)).fetchone()
        return int(row[0])

    def cids(self) -> set[str]:
        with self.lock:
            return {r[0] for r in self.db.execute("SELECT DISTINCT cid FROM uploads")}

    def sweep(self, ledger: Ledger, now: int, retention_s: int) -> list[str]:
        """Forget what orders that ended ``retention_s`` ago uploaded, except their winning
        model; returns the CIDs no row names any more (to unpin)."""
        from pot.api.views import order_outcome

        with self.lock:
            orders = [r[0] for r in self.db.execute("SELECT DISTINCT order_id FROM uploads WHERE keep=0")]
        gone: list[str] = []
        for oid in orders:
            status = ledger.order_status(oid)
            if status is not None and status[0].label in ("open", "verifying", "settling"):
                continue
            with self.lock, self.db:
                self.db.execute("INSERT OR IGNORE INTO finished (order_id, at) VALUES (?, ?)", (oid, now))
                at = self.db.execute("SELECT at FROM finished WHERE order_id=?", (oid,)).fetchone()[0]
            if now < at + retention_s:
                continue
            winner = None
            if status is not None:
                try:
                    mid = order_outcome(ledger, oid)["winningMid"]
                except KeyError:
                    mid = None
                winner = ledger.model_link(bytes.fromhex(mid[2:])) if mid else None
            with self.lock, self.db:
                if winner:
                    self.db.execute("UPDATE uploads SET keep=1 WHERE order_id=? AND cid=?", (oid, winner))
                rows = [r[0] for r in self.db.execute("SELECT cid FROM uploads WHERE order_id=? AND keep=0", (oid,))]
                self.db.execute("DELETE FROM uploads WHERE order_id=? AND keep=0", (oid,))
                for cid in set(rows):
                    if self.db.execute("SELECT 1 FROM uploads WHERE cid=?", (cid,)).fetchone() is None:
                        gone.append(cid)
        return gone

    def close(self) -> None:
        self.db.close()


class ContentService:
    """The routes over one replica's own store, index and ledger (never its peers': a replica
    answers for what it holds, and a reader goes to the next one)."""

    def __init__(self, store: ContentStore, ledger: Ledger, limits: ContentLimits | None = None,
                 index: ContentIndex | None = None, upload_dir: str | os.PathLike | None = None,
                 clock=time.time) -> None:
        self.store = store
        #: where bodies land before they are imported (not the store's tmp/, which its gc empties)
        self.upload_dir = None if upload_dir is None else Path(upload_dir)
        if self.upload_dir is not None:
            self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = ledger
        self.limits = limits or ContentLimits()
        self.index = index or ContentIndex(None)
        self.clock = clock
        self.per_uploader = TokenBuckets(self.limits.upload_rate, self.limits.upload_burst)
        #: the store is written by uploads and collected by sweeps: never both at once
        self.writing = threading.Lock()
        self.stats = {"stored": 0, "refused": 0, "bytes": 0}

    def sweep(self) -> list[str]:
        """Drop what has been kept long enough (blocking: run it in a thread)."""
        gone = self.index.sweep(self.ledger, int(self.clock()), self.limits.retention_s)
        with self.writing:
            for cid in gone:
                unpin = getattr(self.store, "unpin", None)
                if unpin is not None:
                    unpin(cid)
            gc = getattr(self.store, "gc", None)
            if gone and gc is not None:
                gc()
        return gone

    def _refuse(self, status: int, detail: str) -> JSONResponse:
        self.stats["refused"] += 1
        return JSONResponse({"error": "refused", "detail": detail}, status_code=status)

    def _check(self, signed, domain) -> tuple[int, str] | None:
        """(HTTP status, why) when the upload is refused before its body is read."""
        up = signed.message
        if not signed.verify(domain):
            return 401, f"the signature is not {up.uploader}'s for this chain and OrderBook"
        if up.size > self.limits.max_upload_bytes:
            return 413, f"{up.size} bytes is over the upload limit of {self.limits.max_upload_bytes}"
        status = self.ledger.order_status(up.order_id)
        # only an order still in its cycle takes content: a closed one is refused by its status,
        # without reading its records back from the archive
        rec = self.ledger.order_state(up.order_id) if status is not None and not status[0].closed else None
        node = self.ledger.node_info(up.uploader) or {}
        why = may_upload(status[0].label if status else None, rec.order.client if rec else None,
                         [checksum(m) for m in rec.claims] if rec else [], int(node.get("roles", 0)), up,
                         int(self.clock()))
        if why is not None:
            return (404 if status is None else 403), why
        if not self.index.holds(up.cid, up.uploader) and \
                self.index.used(up.uploader) + up.size > self.limits.quota_bytes:
            return 413, (f"{up.uploader} keeps {self.index.used(up.uploader)} bytes here; {up.size} more is over its "
                         f"quota of {self.limits.quota_bytes}")
        return None

    def _write(self, cid: CID, tmp: Path) -> str:
        with self.writing:
            return self.store.add_file(tmp, cid_version=cid.version, pin=True)

    async def put(self, cid_text: str, request: Request, domain) -> Response:
        try:
            cid = CID.parse(cid_text)
            signed = ContentUpload.from_headers(str(cid), request.headers)
        except (InvalidCid, ValueError) as exc:
            return self._refuse(400, str(exc))
        refused = self._check(signed, domain)
        if refused:
            return self._refuse(*refused)
        up = signed.message
        wait = self.per_uploader.take(up.uploader, time.monotonic())
        if wait:
            return JSONResponse({"error": "rate-limited", "detail": f"too many uploads from {up.uploader}",
                                 "retryAfter": wait}, status_code=429, headers={"Retry-After": retry_after(wait)})
        now = int(self.clock())
        if await asyncio.to_thread(self.store.has, str(cid)):
            self.index.add(str(cid), up.order_id, up.uploader, up.size, now)
            return JSONResponse({"cid": str(cid), "size": up.size, "stored": "already"}, status_code=200)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.upload_dir)
        tmp = Path(name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > up.size:
                        return self._refuse(413, f"the body is longer than the {up.size} bytes the request signed")
                    out.write(chunk)
            if size != up.size:
                return self._refuse(400, f"the body has {size} bytes, the request signed {up.size}")
            try:
                got = await asyncio.to_thread(self._write, cid, tmp)
            except StorageError as exc:
                return self._refuse(507, f"this replica could not store it: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
        if got != str(cid):
            unpin = getattr(self.store, "unpin", None)
            if unpin is not None:
                unpin(got)
            return self._refuse(422, f"the body hashes to {got}, not {cid}")
        self.index.add(str(cid), up.order_id, up.uploader, up.size, now)
        self.stats["stored"] += 1
        self.stats["bytes"] += size
        return JSONResponse({"cid": str(cid), "size": size, "stored": "now"}, status_code=201)

    async def get(self, cid_text: str, head: bool) -> Response:
        try:
            cid = str(CID.parse(cid_text))
            size = await asyncio.to_thread(self.store.size, cid)
        except InvalidCid as exc:
            return JSONResponse({"error": "bad-request", "detail": str(exc)}, status_code=400)
        except NotFound:
            return JSONResponse({"error": "not-found", "detail": f"this replica holds no {cid}"}, status_code=404)
        except StorageError as exc:
            return JSONResponse({"error": "storage", "detail": str(exc)}, status_code=500)
        if size > self.store.max_size:
            return JSONResponse({"error": "too-large", "detail": str(TooLarge(cid, size, self.store.max_size))},
                                status_code=413)
        headers = {"Content-Length": str(size), "Etag": f'"{cid}"', "Cache-Control": "public, max-age=29030400, immutable"}
        if head:
            return Response(status_code=200, headers=headers, media_type="application/octet-stream")
        # a sync iterator: Starlette walks it in a thread, every block re-hashed on the way out
        return StreamingResponse(self.store.stream(cid), headers=headers, media_type="application/octet-stream")


def install(app: FastAPI, service: ContentService, domain) -> None:
    """Add the content routes to the API (``create_app`` does it when given a store)."""

    @app.put("/v1/content/{cid}", tags=["content"], status_code=201,
             responses={200: {"description": "held already"}, 400: {}, 401: {}, 403: {}, 404: {}, 413: {}, 422: {},
                        429: {}, 507: {}})
    async def put_content(cid: str, request: Request) -> Response:
        """Upload the bytes of ``cid`` (the raw body). The request is a ``ContentUpload`` signed by
        the uploader (EIP-712, the participants' domain) in headers ``x-pot-uploader``,
        ``x-pot-order``, ``x-pot-size``, ``x-pot-expires``, ``x-pot-signature``: only the order's
        client or a staked miner with a claim in it may upload for an order."""
        return await service.put(cid, request, domain)

    @app.api_route("/ipfs/{cid}", methods=["GET", "HEAD"], tags=["content"],
                   responses={200: {"content": {"application/octet-stream": {}}}, 404: {}})
    async def get_content(cid: str, request: Request) -> Response:
        """Content this replica holds, by CID (an IPFS path gateway; verify what you read)."""
        return await service.get(cid, request.method == "HEAD")
