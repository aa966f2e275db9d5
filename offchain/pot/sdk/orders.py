"""An order on-chain: commit to the test set and place it, release the test set, follow its phase.

The client commits to its test set when it places the order (``testCommitment``, docs/CONVENTIONS.md)
and opens the commitment in ``[revealEnd, releaseEnd)``. Between the two, the test set and the salt
exist only on the client's disk: :class:`OrderSecret` holds them, and :meth:`OrderSecret.save`
writes them before the order exists, because a lost salt makes the release impossible and the
client then forfeits the order to the miners (ARCHITECTURE.md §3, default cases).

Phases come from :func:`pot.protocol.timeline.phase` at the chain head's time: the chain decides
whether a release lands in its window, so its clock is the one that matters to the client.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3

from pot.chain.clients import Contracts, OrderSpec
from pot.chain.events import ChainEvent, EventFollower, order_from_event
from pot.chain.sender import Sender
from pot.protocol import types as T
from pot.protocol.ids import test_commitment
from pot.protocol.timeline import Phase, Timeline, phase, timeline
from pot.sdk.task import PreparedTask, check_validation_window
from pot.storage import ContentStore

#: events after which nothing more happens to an order's escrow
FINAL_EVENTS = ("OrderSettled", "OrderReclaimed")
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class OrderTerms:
    """The on-chain terms of an order: the reward (token wei) and the windows (seconds).

    Defaults are those of ``pot client place-order``; the chain refuses a ``reveal_duration`` under
    its ``minRevealDuration`` and a total lifetime over its ``maxOrderLifetime``."""

    reward: int
    train_duration: int = 3600
    validate_duration: int = 600
    challenge_duration: int = 600
    reveal_duration: int = 600


@dataclass(frozen=True)
class OrderSecret:
    """What only the client knows until the release: the test set and the salt of its commitment.

    ``order_id`` is None until the order is placed. Keep it (:meth:`save`, :meth:`load`): without it
    the test set can never be released."""

    client: str
    spec_cid: str
    train_cid: str
    test_cid: str
    salt: bytes
    test_bytes: bytes
    order_id: int | None = None
    #: the placeOrder transaction and its block (where to start looking for the order's events)
    tx_hash: str | None = None
    block: int | None = None

    @property
    def commitment(self) -> bytes:
        """``testCommitment = keccak256(abi.encode(client, keccak256(bytes(testCid)), salt))``."""
        return test_commitment(self.client, self.test_cid, self.salt)

    def to_json(self) -> dict[str, Any]:
        """Everything but the test set's bytes (``testFile`` names them, beside the document)."""
        return {"client": self.client, "specCid": self.spec_cid, "trainCid": self.train_cid,
                "testCid": self.test_cid, "salt": "0x" + self.salt.hex(), "testFile": self.test_file_name,
                "orderId": self.order_id, "tx": self.tx_hash, "block": self.block}

    @classmethod
    def from_json(cls, doc: dict[str, Any], test_bytes: bytes, client: str | None = None) -> OrderSecret:
        """The secret from :meth:`to_json`'s document (other keys are ignored) and the test set;
        ``client`` for a document that does not name its client (written by an older version)."""
        return cls(to_checksum_address(doc.get("client") or client), doc["specCid"], doc["trainCid"], doc["testCid"],
                   bytes.fromhex(doc["salt"][2:]), test_bytes, doc.get("orderId"), doc.get("tx"), doc.get("block"))

    @property
    def test_file_name(self) -> str:
        return f"test-{self.test_cid}.npz"

    @property
    def file_name(self) -> str:
        """``order-<id>.json``, or ``pending-<commitment>.json`` before the order exists."""
        if self.order_id is None:
            return f"pending-{self.commitment.hex()[:16]}.json"
        return f"order-{self.order_id}.json"

    def save(self, directory: str | os.PathLike, **extra: Any) -> Path:
        """Write the test set and the document (with ``extra`` keys) into ``directory``, each
        atomically and readable by the owner only; returns the document's path."""
        d = Path(directory).expanduser()
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        test_file = d / self.test_file_name
        if not test_file.exists() or test_file.read_bytes() != self.test_bytes:
            _write_private(test_file, self.test_bytes)
        path = d / self.file_name
        _write_private(path, json.dumps({**self.to_json(), **extra}, indent=2, sort_keys=True).encode())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, client: str | None = None) -> OrderSecret:
        """Read a document written by :meth:`save` and the test set it names."""
        p = Path(path).expanduser()
        doc = json.loads(p.read_text())
        test_file = Path(doc["testFile"])
        test_bytes = (test_file if test_file.is_absolute() else p.parent / test_file).read_bytes()
        return cls.from_json(doc, test_bytes, client)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def new_secret(client: str, task: PreparedTask, salt: bytes | None = None) -> OrderSecret:
    """A fresh secret for ``task``: a random 32-byte salt unless one is given."""
    salt = os.urandom(32) if salt is None else salt
    if len(salt) != 32:
        raise ValueError("the salt must be 32 bytes")
    return OrderSecret(to_checksum_address(client), task.spec_cid, task.train_cid, task.test_cid, salt,
                       task.test_bytes)


def place_order(contracts: Contracts, sender: Sender, task: PreparedTask, terms: OrderTerms, *,
                salt: bytes | None = None, keep: Callable[[OrderSecret], Any] | None = None) -> OrderSecret:
    """Approve the reward and place the order; returns the secret with its order id.

    ``keep`` is called with the secret before any transaction is sent, so it can be stored where a
    crash cannot lose it (:meth:`OrderSecret.save`). Raises ValueError when scoring one model would
    not fit the validation window, :class:`pot.chain.errors.ChainRevert` when the chain refuses."""
    check_validation_window(task.spec, terms.validate_duration)
    secret = new_secret(sender.address, task, salt)
    if keep is not None:
        keep(secret)
    contracts.token.ensure_allowance(sender, contracts.orders.address, terms.reward)
    # positional: the field order is placeOrder's ABI, its Python names have moved before
    res = contracts.orders.place_order(sender, OrderSpec(
        terms.reward, terms.train_duration, terms.validate_duration, terms.challenge_duration,
        terms.reveal_duration, task.metric, secret.commitment, task.spec_cid))
    return replace(secret, order_id=int(res.event("OrderPlaced")["orderId"]), tx_hash=res.tx_hash,
                   block=res.block_number)


def release_test_data(contracts: Contracts, sender: Sender, store: ContentStore, secret: OrderSecret) -> int:
    """Upload the test set (checked against the committed CID), then open the commitment on-chain;
    returns t3. The chain refuses it outside ``[revealEnd, releaseEnd)`` (``OutsideWindow``)."""
    if secret.order_id is None:
        raise ValueError("this order was never placed (its secret has no order id)")
    cid = store.add_bytes(secret.test_bytes)
    if cid != secret.test_cid:
        raise ValueError(f"the test set now has CID {cid}; order {secret.order_id} committed to {secret.test_cid}")
    store.pin(cid)
    res = contracts.orders.release_test_data(sender, secret.order_id, cid, secret.salt)
    return int(res.event("TestDataReleased")["t3"])


# -- following an order -----------------------------------------------------------------------

@dataclass(frozen=True)
class OrderStatus:
    """Where an order stands: on-chain status, its phase at the chain's time, the settlement."""

    order: T.Order
    #: "open", "settled" or "reclaimed"
    status: str
    phase: Phase
    timeline: Timeline
    #: the chain head's time the phase is computed at
    now: int
    t3: int | None
    test_cid: str | None
    #: from OrderSettled: the winning miner and model (None: not settled, or nobody won)
    winner: str | None = None
    winning_mid: bytes | None = None

    @property
    def order_id(self) -> int:
        return self.order.order_id

    @property
    def done(self) -> bool:
        """Settled or reclaimed: nothing more happens to the escrow."""
        return self.status in ("settled", "reclaimed")


@dataclass(frozen=True)
class OrderUpdate:
    """One step of :class:`OrderWatch`: the phase changed (``event`` None) or the order's contract
    emitted ``event`` (OrderPlaced, TestDataReleased, ChallengeCommitted, OrderSettled, ...)."""

    status: OrderStatus
    event: ChainEvent | None = None

    @property
    def kind(self) -> str:
        """``"phase"`` or the event's name."""
        return "phase" if self.event is None else self.event.name

    def __str__(self) -> str:
        what = f"phase {self.status.phase.value}" if self.event is None else self.event.name
        return f"order {self.status.order_id} at {self.status.now}: {what}"


class OrderWatch:
    """Follows one order on-chain: iterate it for :class:`OrderUpdate` items, oldest first; the
    iteration ends after OrderSettled or OrderReclaimed, and raises TimeoutError past ``timeout``.

    The order's logs are read from ``from_block`` (default: the deployment's block; give the
    placing block to skip the rest) ``confirmations`` blocks behind the head."""

    def __init__(self, w3: Web3, contracts: Contracts, order_id: int, *, from_block: int | None = None,
                 confirmations: int = 0, poll_interval: float = 1.0, timeout: float | None = None) -> None:
        self.w3 = w3
        self.contracts = contracts
        self.order_id = int(order_id)
        self.follower = EventFollower(w3, contracts.deployment, from_block=from_block, confirmations=confirmations,
                                      contracts=("OrderBook", "ChallengeManager"), order_id=self.order_id)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.events: list[ChainEvent] = []
        self._order: T.Order | None = None
        self._phase: Phase | None = None

    def _head_time(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def status(self, now: int | None = None) -> OrderStatus:
        """The order as of the logs read so far, at ``now`` (default: the chain head's time)."""
        if self._order is None:
            raise LookupError(f"order {self.order_id} has no OrderPlaced log on this deployment "
                              "(from the given block on)")
        now = self._head_time() if now is None else now
        released = next((e for e in self.events if e.name == "TestDataReleased"), None)
        t3 = None if released is None else int(released["t3"])
        settled = next((e for e in self.events if e.name == "OrderSettled"), None)
        reclaimed = any(e.name == "OrderReclaimed" for e in self.events)
        status = "settled" if settled else "reclaimed" if reclaimed else "open"
        winner = mid = None
        if settled is not None and to_checksum_address(settled["winner"]) != to_checksum_address(ZERO_ADDRESS):
            winner, mid = to_checksum_address(settled["winner"]), bytes(settled["winningMid"])
        return OrderStatus(self._order, status, phase(self._order, t3, now), timeline(self._order, t3), now, t3,
                           None if released is None else released["testCid"], winner, mid)

    def poll(self) -> list[OrderUpdate]:
        """Read new logs once: an update per new event, each after the phase change its block's
        time brought (so the phase an order settled in comes before the settlement, which ends
        the iteration), then one if the phase changed by the last block read (the head, less
        ``confirmations``: the phase never runs ahead of the events known)."""
        out: list[OrderUpdate] = []
        times: dict[int, int] = {}

        def block_time(number: int) -> int:
            if number not in times:
                times[number] = int(self.w3.eth.get_block(number)["timestamp"])
            return times[number]

        for ev in self.follower.poll():
            at = block_time(ev.block_number)
            if self._order is not None:
                self._phase_change(self.status(at), out)
            self.events.append(ev)
            if ev.name == "OrderPlaced":
                self._order = order_from_event(ev)
            if self._order is not None:
                out.append(OrderUpdate(self.status(at), ev))
        if self._order is not None:
            self._phase_change(self.status(block_time(self.follower.next_block - 1)), out)
        return out

    def _phase_change(self, st: OrderStatus, out: list[OrderUpdate]) -> None:
        if st.phase is not self._phase:
            self._phase = st.phase
            out.append(OrderUpdate(st))

    def __iter__(self) -> Iterator[OrderUpdate]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            for update in self.poll():
                yield update
                if update.event is not None and update.event.name in FINAL_EVENTS:
                    return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"order {self.order_id} did not settle within {self.timeout:g} s")
            time.sleep(self.poll_interval)
