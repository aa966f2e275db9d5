"""Backfilling the archive of a replica that caught up by state transfer (docs/COMMITTEE.md,
"Joining"; ``pot.roles.backfill`` fetches, this module decides).

A snapshot carries the working state and the archive's accumulated hash, not the archive: a
member that joined (or a replica restored from a peer's checkpoint) knows which orders and
settlements were archived and what their blobs sum to, but not the blobs. It copies them from
any peer and keeps them only if they are exactly what its digest vouches for:

- every blob decodes as what it claims to be (the order or settlement of its id, nothing else
  inside), within the size limits below;
- the ids are exactly the missing ones (``ArchiveTarget``: the archived id ranges, the executed
  nonces), and the sum of their ``archive_term``s plus those of the rows already here equals
  the archive's accumulated hash, which f+1 members vouched for with the checkpoint digest.

Nothing is written to the archive before the whole set passed: the blobs wait in a staging file
beside it (so memory stays bounded whatever the history), and a mismatch drops them all and the
caller asks another peer. The verified rows then go in with the indexes the ledger builds when it
archives (``archived_order_index``, ``archived_settlement_accounts``), in short transactions: the
ledger's own archive writes must never wait seconds for the lock, and every row written was
verified, so an interrupted copy leaves only correct rows and the next attempt fetches the rest.

``archive_refs`` (chain-event refs) is not in the blobs and not in the digest, so no single peer
can vouch for it: a backfilled replica's attester may attest an old event again, which the
ledger refuses through the order's state.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterable

from pot.ledger.ledger import (_MASK, ArchiveTarget, archive_term, archived_order_index, archived_settlement_accounts,
                               order_from_blob, settlement_from_blob)

log = logging.getLogger("pot.ledger")

KINDS = ("orders", "settlements")
#: what a peer serves per page: this many rows, and past the first one this many blob bytes
PAGE_ROWS = 512
PAGE_BYTES = 1 << 20
#: one foreign blob at most, compressed and inflated
MAX_BLOB_BYTES = 4 << 20
MAX_INFLATED_BYTES = 32 << 20
#: verified rows written per archive transaction
COMMIT_ROWS = 256


class BackfillError(ValueError):
    """A peer's archive rows are not the ones the digest vouches for (one line: what differs)."""


def parse_page(body: bytes, kind: str, after: int) -> list[tuple[int, bytes]]:
    """A ``GET /v1/archive/{kind}`` body as (id, blob) pairs, ids strictly increasing past
    ``after`` (BackfillError otherwise)."""
    try:
        doc = json.loads(body)
        rows = doc["rows"]
        if doc.get("kind") != kind or not isinstance(rows, list):
            raise ValueError(f"not a page of archived {kind}")
        out = []
        last = after
        for item in rows:
            i, text = item
            if type(i) is not int or i <= last or not isinstance(text, str) or not text.startswith("0x"):
                raise ValueError("ids must be integers increasing past the cursor, blobs 0x-hex")
            if len(text) > 2 * MAX_BLOB_BYTES + 2:
                raise ValueError(f"{kind[:-1]} {i}: blob larger than {MAX_BLOB_BYTES} bytes")
            out.append((i, bytes.fromhex(text[2:])))
            last = i
        return out
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BackfillError(f"malformed archive page: {exc}") from None


class ArchivePlan:
    """One backfill of ``target``: what is missing, and the copy being verified. Blocking (SQLite
    reads of the whole local archive): build and use it in a worker thread."""

    def __init__(self, target: ArchiveTarget) -> None:
        self.target = target
        self._db = sqlite3.connect(target.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA synchronous=FULL")
        # the rows already here count towards the accumulated hash: only the rest must come
        have_sum = 0
        have_orders: set[int] = set()
        for oid, blob in self._db.execute("SELECT order_id, rows FROM archive_orders"):
            if oid in target.orders:
                have_orders.add(oid)
                have_sum += archive_term("order", blob)
        executed = set(target.settlement_nonces())
        have_settlements: set[int] = set()
        for nonce, blob in self._db.execute("SELECT nonce, rows FROM archive_settlements"):
            if nonce in executed:
                have_settlements.add(nonce)
                have_sum += archive_term("settlement", blob)
        self.missing = {"orders": sorted(set(target.orders) - have_orders),
                        "settlements": sorted(executed - have_settlements)}
        self._wanted = {k: set(v) for k, v in self.missing.items()}
        self._want_sum = (target.acc - have_sum) & _MASK
        self._stage_path = target.path + "-backfill"
        self._stage: sqlite3.Connection | None = None
        self.reset()

    @property
    def empty(self) -> bool:
        return not any(self.missing.values())

    def reset(self) -> None:
        """Drop what was staged (a peer's copy refused): the next peer starts from nothing."""
        if self._stage is not None:
            self._stage.close()
        for suffix in ("", "-journal"):
            try:
                os.remove(self._stage_path + suffix)
            except FileNotFoundError:
                pass
        self._stage = sqlite3.connect(self._stage_path, isolation_level=None, check_same_thread=False)
        self._stage.execute("PRAGMA synchronous=OFF")
        self._stage.execute("CREATE TABLE staged (kind TEXT NOT NULL, id INTEGER NOT NULL, blob BLOB NOT NULL, "
                            "PRIMARY KEY (kind, id)) WITHOUT ROWID")
        self.staged = {k: 0 for k in KINDS}
        self._staged_ids: dict[str, set[int]] = {k: set() for k in KINDS}
        self._sum = 0

    def stage(self, kind: str, rows: Iterable[tuple[int, bytes]]) -> None:
        """Keep a page's rows this archive lacks, after checking each is what its id claims
        (BackfillError for one that is not: the whole copy is then refused)."""
        wanted, seen = self._wanted[kind], self._staged_ids[kind]
        keep = []
        for i, blob in rows:
            if i not in wanted or i in seen:
                continue   # a row this archive has, or that the digest does not vouch for
            if len(blob) > MAX_BLOB_BYTES:
                raise BackfillError(f"{kind[:-1]} {i}: blob of {len(blob)} bytes, more than {MAX_BLOB_BYTES}")
            try:
                if kind == "orders":
                    got = order_from_blob(blob, MAX_INFLATED_BYTES).row.order_id
                else:
                    got = settlement_from_blob(blob, MAX_INFLATED_BYTES).row.nonce
            except (ValueError, KeyError, TypeError) as exc:
                raise BackfillError(f"{kind[:-1]} {i}: unreadable blob ({exc})") from None
            if got != i:
                raise BackfillError(f"{kind[:-1]} {i}: the blob is {kind[:-1]} {got}'s")
            seen.add(i)
            keep.append((kind, i, blob))
            self._sum = (self._sum + archive_term(kind[:-1], blob)) & _MASK
        self._stage.execute("BEGIN")
        self._stage.executemany("INSERT INTO staged VALUES (?, ?, ?)", keep)
        self._stage.execute("COMMIT")
        self.staged[kind] += len(keep)

    def check(self) -> None:
        """BackfillError unless the staged copy is exactly the missing set the digest vouches for."""
        lacking = {k: sorted(self._wanted[k] - self._staged_ids[k]) for k in KINDS}
        if any(lacking.values()):
            raise BackfillError("; ".join(f"{len(v)} {k} missing (first {v[:5]})" for k, v in lacking.items() if v))
        if self._sum != self._want_sum:
            raise BackfillError("the blobs do not add up to the archive hash the ledger digest vouches for "
                                "(a tampered or substituted row)")

    def commit(self) -> int:
        """Write the verified copy into the archive with its indexes; the number of rows written."""
        self.check()
        db, n = self._db, 0
        for kind in KINDS:
            cur = self._stage.execute("SELECT id, blob FROM staged WHERE kind=? ORDER BY id", (kind,))
            while True:
                chunk = cur.fetchmany(COMMIT_ROWS)
                if not chunk:
                    break
                db.execute("BEGIN IMMEDIATE")
                for i, blob in chunk:
                    if kind == "orders":
                        row, models, accounts = archived_order_index(order_from_blob(blob), blob)
                        db.execute("INSERT OR REPLACE INTO archive_orders VALUES (?, ?, ?, ?, ?, ?)", row)
                        db.executemany("INSERT OR IGNORE INTO models VALUES (?, ?)", models)
                    else:
                        db.execute("INSERT OR REPLACE INTO archive_settlements VALUES (?, ?)", (i, blob))
                        accounts = archived_settlement_accounts(settlement_from_blob(blob).row)
                    db.executemany("INSERT OR IGNORE INTO archive_accounts VALUES (?, ?)", accounts)
                db.execute("COMMIT")
                n += len(chunk)
        return n

    def close(self) -> None:
        if self._stage is not None:
            self._stage.close()
            self._stage = None
            for suffix in ("", "-journal"):
                try:
                    os.remove(self._stage_path + suffix)
                except FileNotFoundError:
                    pass
        self._db.close()
