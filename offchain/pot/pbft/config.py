"""What a replica is configured with, and the status it is in."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pot.protocol.committee import bft_quorum, max_faulty


class ReplicaStatus(enum.Enum):
    """Where a replica stands in its view (Castro & Liskov §4.4).

    NORMAL: it takes part in view ``view``: accepts its pre-prepares, prepares and commits.
    VIEW_CHANGE: it left view ``view - 1`` and waits for the NEW-VIEW of ``view``; it takes no
    normal-case message until then (only checkpoints, catch-up and view-change traffic)."""

    NORMAL = "normal"
    VIEW_CHANGE = "view-change"


@dataclass(frozen=True)
class ReplicaConfig:
    n: int
    checkpoint_interval: int = 64  # K: a checkpoint every K sequence numbers
    log_size: int = 256  # L: high watermark H = h + L (Castro & Liskov §4.3), L >= 2K
    batch_max: int = 1024  # requests per pre-prepare
    batch_delay: float = 0.0  # seconds the primary waits to fill a batch
    max_inflight: int = 16  # pre-prepared but not executed batches at the primary
    fill_delay: float = 0.005  # while a batch is in flight, seconds one short of batch_max
    # waits for more requests: under load the requests read from many socket reads share one
    # pre-prepare, one round of signed votes and one fsync of the log and the state, instead of
    # each read becoming a batch; an idle primary proposes at once (executing the batch in
    # flight also proposes what waits)
    view_timeout: float = 2.0  # first view-change timeout; doubles each failed view (§4.4)
    max_view_timeout: float = 60.0
    status_interval: float = 0.5  # retransmission / catch-up period
    clock_skew: float = 10.0  # seconds a batch time may differ from this replica's clock
    verify_prepare_sigs: bool = True  # check prepare signatures of certificates before they are
    # forwarded in a view change (lazily, see Replica._forwardable); False never checks them
    forward_requests: bool = True  # backups relay client requests to the primary (§4.1);
    # off when clients already send every request to every replica (the benchmark's client)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        return bft_quorum(self.n)

    def primary(self, view: int) -> int:
        return view % self.n
