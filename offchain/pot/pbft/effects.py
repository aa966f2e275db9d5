"""What a replica's inputs return: the effects its driver carries out (h11's events)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .messages import Reply


@dataclass(frozen=True, slots=True)
class Send:
    to: int | None  # None: every other replica
    msg: Any


@dataclass(frozen=True, slots=True)
class SendClient:
    client: Any
    msg: Reply


@dataclass(frozen=True, slots=True)
class SetTimer:
    name: str
    at: float


@dataclass(frozen=True, slots=True)
class Executed:
    seq: int
    timestamp: int
    requests: tuple[bytes, ...]
    results: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Suspected:
    """This replica suspects the primary of ``view`` (for operators' logs)."""
    view: int
    why: str


@dataclass(frozen=True, slots=True)
class ViewChanged:
    """``old`` -> ``new``: a view change started (``entered`` False) or the new view began."""
    old: int
    new: int
    entered: bool
    why: str


@dataclass(frozen=True, slots=True)
class RolledBack:
    """Our executed history disagreed with the stable checkpoint 2f+1 replicas signed at
    ``seq``: their state replaced ours, and our last ``batches`` executed batches are void."""
    seq: int
    batches: int
