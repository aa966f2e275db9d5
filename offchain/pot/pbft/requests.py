"""Client requests at a replica: the queue of those waiting to execute, and the ids of those
that executed (duplicate suppression, part of every checkpoint).

``RequestQueue`` holds what is not yet executed (pending, in arrival order; which of them a
pre-prepare of this view carries; their clients) and the replies of executed ones (§4.1: a
retransmission gets the cached reply). A request leaves it in one place, ``retire``.

``ExecutedIds`` is the replicated dedup set. It would grow with every request ever executed,
so the state machine may say when an id can be forgotten: ``forget_after(request, result,
timestamp)`` returns a batch time from which the state machine refuses that request again by
its own rules (a deadline it carries, a window that closed, a record of it in its state), or
None to keep the id for good. Ids are forgotten at checkpoints, deterministically (the same
rule on the same replicated times at every replica), so the checkpoint digest still agrees.
"""

from __future__ import annotations

import hashlib
import heapq
from typing import Any

from .messages import Reply

_MASK = (1 << 256) - 1
NEVER = (1 << 64) - 1  # forget_after of an id kept for good
_REPLIES_MAX = 10_000
_VERIFIED_MAX = 200_000


class RequestQueue:
    """Requests received but not executed, and the replies of executed ones."""

    __slots__ = ("pending", "since", "queue", "proposed", "clients", "verified", "replies")

    def __init__(self) -> None:
        self.pending: dict[bytes, bytes] = {}  # rid -> payload, in order of arrival
        self.since: dict[bytes, float] = {}  # rid -> when it arrived (batch delay)
        self.queue: dict[bytes, None] = {}  # pending and not proposed in this view, in order
        self.proposed: set[bytes] = set()  # carried by a pre-prepare of this view
        self.clients: dict[bytes, Any] = {}  # rid -> the client handle to reply to
        self.verified: set[bytes] = set()  # rids whose request passed the verifier
        self.replies: dict[bytes, Reply] = {}

    def __contains__(self, rid: bytes) -> bool:
        return rid in self.pending

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, rid: bytes, payload: bytes, now: float) -> bool:
        """Wait for ``payload`` to execute; False if it waits already."""
        if rid in self.pending:
            return False
        self.pending[rid] = payload
        self.since[rid] = now
        if rid not in self.proposed:
            self.queue[rid] = None
        return True

    def mark_proposed(self, rid: bytes) -> None:
        """A pre-prepare of this view carries it: not to be proposed again in this view."""
        self.proposed.add(rid)
        self.queue.pop(rid, None)

    def take(self, limit: int) -> list[bytes]:
        """The next ``limit`` unproposed requests (ids), marked proposed (the primary's batch)."""
        take = []
        for rid in self.queue:
            take.append(rid)
            if len(take) >= limit:
                break
        for rid in take:
            del self.queue[rid]
        self.proposed.update(take)
        return take

    def oldest(self) -> bytes:
        return next(iter(self.pending))

    def first_queued_since(self) -> float:
        return self.since[next(iter(self.queue))]

    def new_view(self) -> None:
        """A new view starts: nothing is proposed in it yet (its O set refills ``proposed``)."""
        self.proposed.clear()

    def requeue(self) -> None:
        """After the new view's re-proposals: what none of them carries waits for the primary."""
        self.queue = {rid: None for rid in self.pending if rid not in self.proposed}

    def hand_over(self) -> None:
        """Another replica (the next committee epoch's) orders what waits here: wait for nothing."""
        self.pending.clear()
        self.since.clear()
        self.queue.clear()

    def retire(self, rid: bytes) -> Any:
        """The request executed (here or in a state we took over): it waits no more. Returns
        the client to reply to, if any."""
        self.pending.pop(rid, None)
        self.since.pop(rid, None)
        self.proposed.discard(rid)
        self.queue.pop(rid, None)
        self.verified.discard(rid)
        return self.clients.pop(rid, None)

    def verify(self, rid: bytes, payload: bytes, verifier) -> bool:
        """Whether the request passes ``verifier``; checked once per request id."""
        if rid in self.verified:
            return True
        if not verifier(payload):
            return False
        if len(self.verified) > _VERIFIED_MAX:
            # (Ids of requests that never executed, e.g. in batches of failed views.)
            self.verified.clear()
        self.verified.add(rid)
        return True

    def remember_reply(self, rep: Reply) -> None:
        if len(self.replies) > _REPLIES_MAX:
            self.replies.clear()
        self.replies[rep.request_id] = rep


def _term(rid: bytes, forget_after: int) -> int:
    return int.from_bytes(hashlib.sha256(b"pot-ids" + rid + forget_after.to_bytes(8, "big")).digest(), "big")


class ExecutedIds:
    """The ids of executed requests, each with the batch time after which it may be forgotten,
    and an incremental multiset hash of both (the checkpoint digest covers it without sorting)."""

    __slots__ = ("ids", "_expiry", "_heap", "hash")

    def __init__(self) -> None:
        self.ids: set[bytes] = set()
        self._expiry: dict[bytes, int] = {}  # ids that may be forgotten -> when
        self._heap: list[tuple[int, bytes]] = []
        self.hash = 0

    def __contains__(self, rid: bytes) -> bool:
        return rid in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, rid: bytes, forget_after: int | None = None) -> None:
        fa = NEVER if forget_after is None else min(max(int(forget_after), 0), NEVER)
        self.ids.add(rid)
        if fa != NEVER:
            self._expiry[rid] = fa
            heapq.heappush(self._heap, (fa, rid))
        self.hash = (self.hash + _term(rid, fa)) & _MASK

    def prune(self, now: int) -> list[bytes]:
        """Forget every id whose time ran out before batch time ``now``; the ids forgotten."""
        out = []
        heap = self._heap
        while heap and heap[0][0] < now:
            fa, rid = heapq.heappop(heap)
            if self._expiry.get(rid) == fa:
                del self._expiry[rid]
                self.ids.discard(rid)
                self.hash = (self.hash - _term(rid, fa)) & _MASK
                out.append(rid)
        return out

    def encode(self) -> bytes:
        exp = self._expiry
        return b"".join(rid + exp.get(rid, NEVER).to_bytes(8, "big") for rid in sorted(self.ids))

    @classmethod
    def decode(cls, data: bytes) -> "ExecutedIds":
        if len(data) % 40:
            raise ValueError("bad snapshot ids")
        out = cls()
        for i in range(0, len(data), 40):
            out.add(data[i:i + 32], int.from_bytes(data[i + 32:i + 40], "big"))
        return out
