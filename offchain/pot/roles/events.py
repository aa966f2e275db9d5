"""What the workers and a replica report as they go: typed events, for the demo's display, for
tests and for logs. A display decides by an event's ``kind`` and, for failures, by the type of
the exception it carries (``Event.exc``), never by matching the text of a message.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


class Kind(enum.StrEnum):
    """A worker's event kinds (StrEnum: ``Kind.REJECTED == "rejected"``)."""
    # every worker
    STARTED = "started"
    STOPPED = "stopped"
    STAKED = "staked"
    PHASE = "phase"
    RESUMED = "resumed"
    REJECTED = "rejected"          # the ledger or the chain refused what the worker sent
    RATE_LIMITED = "rate-limited"  # the committee asked the worker to slow down (HTTP 429)
    ERROR = "error"                # a step failed; ``exc`` says how
    UNAVAILABLE = "unavailable"    # a model or test set could not be fetched yet
    ABSTAIN = "abstain"            # this machine could not score a model (resource failure): no score sent
    MISSED = "missed"
    # client
    ORDER_PLACED = "order-placed"
    TEST_RELEASED = "test-released"
    NO_WINNER = "no-winner"
    MODEL_FETCHED = "model-fetched"
    # miner
    ORDER_PICKED = "order-picked"
    ORDER_SKIPPED = "order-skipped"
    TRAINING = "training"
    TRAINED = "trained"
    COMMIT = "commit"
    REVEAL = "reveal"
    # validator
    SCORE = "score"
    VALIDATION_COMMIT = "validation-commit"
    VALIDATION_REVEAL = "validation-reveal"
    # verifier
    CHECKED = "checked"
    CHALLENGE_COMMIT = "challenge-commit"
    CHALLENGE_REVEAL = "challenge-reveal"
    # the demo's thief
    STEAL = "steal"


@dataclass(frozen=True)
class Event:
    """Something a worker did or saw."""
    role: str
    address: str
    kind: Kind
    order_id: int | None
    time: int
    data: dict[str, Any] = field(default_factory=dict)
    #: the failure behind an ERROR, REJECTED (by the chain) or RATE_LIMITED event
    exc: BaseException | None = None

    def __str__(self) -> str:
        order = f" order={self.order_id}" if self.order_id is not None else ""
        fields = " ".join(f"{k}={_fmt(v)}" for k, v in self.data.items())
        return f"{self.role} {self.address[:10]}{order} {self.kind}" + (f" {fields}" if fields else "")


def _fmt(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()[:16] + "…"
    return str(v)


EventCallback = Callable[[Event], Awaitable[None] | None]


class CommitteeEvent(enum.StrEnum):
    """What a replica reports besides its log lines."""
    VIEW_CHANGED = "view-changed"
    SETTLEMENT_CREATED = "settlement-created"


CommitteeEventCallback = Callable[[CommitteeEvent, dict[str, Any]], None]
