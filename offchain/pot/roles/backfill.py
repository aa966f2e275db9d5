"""The aggregator's archive backfill: a replica that caught up by state transfer copies the
orders and settlements archived before that point from its peers' APIs (``GET /v1/archive``),
and keeps them only once the whole copy matches its ledger digest (``pot.ledger.backfill``). A
peer whose copy does not match is named in the log and the next peer is asked.

It runs beside ordering: the event loop only takes the ledger's target between batches and
awaits pages; reading the local archive, checking blobs and writing rows happen in a worker
thread, a page at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from pot.api.client import ApiClient, ApiError
from pot.ledger import Ledger
from pot.ledger.backfill import KINDS, PAGE_ROWS, ArchivePlan, BackfillError, parse_page

log = logging.getLogger("pot.aggregator")

#: seconds between two looks at whether the archive lacks rows (a cheap count)
BACKFILL_POLL_S = 10.0


class ArchiveBackfill:
    """``await step()``: if the ledger's archive lacks rows its digest vouches for, copy them from
    one of ``peers`` (API base URLs), verified; ``run()`` is one such attempt over every peer."""

    def __init__(self, ledger: Ledger, peers: Sequence[str] | Callable[[], Sequence[str]], *, timeout: float = 30.0,
                 page_rows: int = PAGE_ROWS) -> None:
        self.ledger = ledger
        # a callable: asked at each attempt (the committee may have changed since the start)
        self._peers = peers if callable(peers) else (lambda fixed=tuple(peers): fixed)
        self.timeout = timeout
        self.page_rows = page_rows
        self._turn = 0
        #: what the last attempts did, for status and tests
        self.stats = {"copied": 0, "refused": [], "attempts": 0}

    @property
    def peers(self) -> list[str]:
        return list(dict.fromkeys(p.rstrip("/") for p in self._peers() if p))

    async def step(self) -> None:
        if self.ledger.archive_missing():
            await self.run()

    async def run(self) -> bool:
        """One backfill: True once the archive holds every row the digest vouches for."""
        target = self.ledger.archive_target()
        plan = await asyncio.to_thread(ArchivePlan, target)
        try:
            if plan.empty:
                return True
            self.stats["attempts"] += 1
            n_o, n_s = len(plan.missing["orders"]), len(plan.missing["settlements"])
            log.info("archive backfill: %d orders and %d settlements were archived before this replica caught up; "
                     "copying them from its peers", n_o, n_s)
            # another peer first at each attempt: one that keeps failing does not hold the rest up
            peers = self.peers
            order = peers[self._turn % max(1, len(peers)):] + peers[:self._turn % max(1, len(peers))]
            self._turn = (self._turn + 1) % max(1, len(peers))
            for url in order:
                try:
                    await self._copy(url, plan)
                    n = await asyncio.to_thread(plan.commit)
                except BackfillError as exc:
                    self.stats["refused"].append(url)
                    log.warning("archive backfill: %s served an archive the ledger digest does not vouch for: %s; "
                                "trying another peer", url, exc)
                except ApiError as exc:
                    log.warning("archive backfill: %s did not answer (%s); trying another peer", url, exc)
                else:
                    self.stats["copied"] += n
                    log.info("archive backfill: %d orders and %d settlements copied from %s, verified against the "
                             "ledger digest", n_o, n_s, url)
                    return True
                await asyncio.to_thread(plan.reset)
            log.warning("archive backfill: no peer served the archive the ledger digest vouches for; "
                        "retrying in %.0f s", BACKFILL_POLL_S)
            return False
        finally:
            await asyncio.to_thread(plan.close)

    async def _copy(self, url: str, plan: ArchivePlan) -> None:
        """Stage ``url``'s rows for every missing id, page by page (BackfillError: refused)."""
        async with ApiClient(url, timeout=self.timeout) as api:
            for kind in KINDS:
                wanted = plan.missing[kind]
                if not wanted:
                    continue
                after, last, pages = wanted[0] - 1, wanted[-1], 0
                while after < last:
                    status, body = await api.get_raw(f"/v1/archive/{kind}",
                                                     {"after": after, "limit": self.page_rows})
                    if status != 200:
                        raise BackfillError(f"GET /v1/archive/{kind} answered {status}")
                    rows = await asyncio.to_thread(_stage_page, plan, kind, body, after)
                    if not rows:
                        break   # the peer has no more: check() names what it lacked
                    after, pages = rows[-1][0], pages + 1
                    if pages % 20 == 0:
                        log.info("archive backfill: %d/%d %s from %s", plan.staged[kind], len(wanted), kind, url)
            await asyncio.to_thread(plan.check)


def _stage_page(plan: ArchivePlan, kind: str, body: bytes, after: int) -> list[tuple[int, bytes]]:
    rows = parse_page(body, kind, after)
    plan.stage(kind, rows)
    return rows
