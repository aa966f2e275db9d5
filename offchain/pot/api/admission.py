"""Admission to consensus: what the API lets through to PBFT.

Every submission that reaches PBFT costs the whole committee a round, so the API refuses before
consensus (a) what the ledger would refuse for sure (``Ledger.precheck`` with apply's own rules;
``FINAL_REASONS``), and (b) more than a fair share from one connection or one signer: token
buckets, answered with HTTP 429 and ``Retry-After``.

The connection bucket is charged before the body is even read (it bounds the signature checks
one connection can make us do); the sender bucket only for messages that passed the precheck,
so only staked accounts ever get a bucket and throwaway keys cannot grow the table.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class AdmissionLimits:
    """Sustained rates (per second) and bursts. A worker sends a handful of messages per order and
    phase; a validator scoring many models at once is the burstiest honest sender."""
    sender_rate: float = 20.0
    sender_burst: float = 100.0
    connection_rate: float = 200.0
    connection_burst: float = 400.0
    #: buckets kept (least recently used dropped first)
    max_tracked: int = 100_000

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "[admission]") -> AdmissionLimits:
        known = {f.name for f in fields(cls)}
        bad = sorted(set(doc) - known)
        if bad:
            raise ValueError(f"{where}: unknown option(s) {bad} (known: {sorted(known)})")
        for k, v in doc.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ValueError(f"{where}: {k} must be a positive number")
        return cls(**doc)


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens a second up to ``burst``."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def take(self, key: Hashable, now: float) -> float:
        """0.0 when a token was taken; else the seconds until one will be there."""
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(seconds: float) -> str:
    """The ``Retry-After`` header value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
