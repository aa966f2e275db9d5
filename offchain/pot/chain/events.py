"""Decoding PoT contract logs, and the event follower (poll logs with a confirmation depth).

    follower = EventFollower(w3, deployment, confirmations=0, state_path=data_dir / "follower.json")
    events, end = follower.fetch()      # ChainEvent(contract, name, args, block_number, ...)
    ...                                 # handle them (the aggregator: attest each one)
    follower.advance(end)               # only now: the next fetch starts at ``end``

The follower only returns logs at least ``confirmations`` blocks deep (0 on Anvil, 15 on BSC:
ARCHITECTURE.md §3), in chain order. Its position moves only when the caller says the events below
it are handled, and is persisted (``state_path``): an RPC error, a crash or a failure to handle
an event means the same range is fetched again, never skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from eth_utils import to_checksum_address
from web3 import Web3
from web3._utils.events import event_abi_to_log_topic, get_event_data

from pot.chain.compile import load_artifact
from pot.protocol import types as T


@dataclass(frozen=True)
class ChainEvent:
    """One decoded log of a PoT contract."""

    contract: str  # "OrderBook", "RewardMultisig", ...
    name: str  # "OrderPlaced", ...
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: str
    log_index: int

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


@lru_cache(maxsize=None)
def _topics(contract: str) -> dict[bytes, dict]:
    abi = load_artifact(contract)["abi"]
    return {bytes(event_abi_to_log_topic(e)): e for e in abi
            if e.get("type") == "event" and not e.get("anonymous")}


@lru_cache(maxsize=None)
def _anonymous(contract: str) -> dict[int, dict]:
    """Anonymous events by topic count (RewardMultisig.RewardConfirmed saves its signature topic)."""
    abi = load_artifact(contract)["abi"]
    return {sum(1 for i in e["inputs"] if i["indexed"]): e for e in abi
            if e.get("type") == "event" and e.get("anonymous")}


def decode_logs(w3: Web3, logs: Iterable, names_by_address: dict[str, str]) -> list[ChainEvent]:
    """Decode the logs emitted by known addresses (``address -> contract name``); skip the rest."""
    out = []
    lookup = {a.lower(): n for a, n in names_by_address.items()}
    for log in logs:
        contract = lookup.get(str(log["address"]).lower())
        if contract is None or not log["topics"]:
            continue
        abi = _topics(contract).get(bytes(log["topics"][0]))
        if abi is None:
            abi = _anonymous(contract).get(len(log["topics"]))
            if abi is None or bytes(log["data"]):
                continue
        data = get_event_data(w3.codec, abi, log)
        args = {k: (bytes(v) if isinstance(v, (bytes, bytearray)) else v) for k, v in data["args"].items()}
        if "idAndMember" in args:  # RewardConfirmed packs (id, member) into its one topic
            packed = args.pop("idAndMember")
            args = {"id": packed >> 160, "member": to_checksum_address((packed & (2**160 - 1)).to_bytes(20, "big"))}
        out.append(ChainEvent(contract, data["event"], args, to_checksum_address(log["address"]),
                              int(log["blockNumber"]), "0x" + bytes(log["transactionHash"]).hex(),
                              int(log["logIndex"])))
    return out


def order_from_event(ev: ChainEvent) -> T.Order:
    """The order an ``OrderPlaced`` log announces (``getOrder`` lacks its modelType and specCid)."""
    a = ev.args
    return T.Order(order_id=int(a["orderId"]), client=a["client"], reward=int(a["reward"]), t0=int(a["t0"]),
                   train_duration=int(a["trainDuration"]), reveal_duration=int(a["revealDuration"]),
                   validate_duration=int(a["validateDuration"]), challenge_duration=int(a["challengeDuration"]),
                   model_type=bytes(a["modelType"]), spec_cid=a["specCid"],
                   test_commitment=bytes(a["testCommitment"]))


class EventFollower:
    """Polls the logs of a deployment's contracts, ``confirmations`` blocks behind the head.

    ``state_path``: where the position is kept across restarts (bound to the deployment: a file
    written for another chain or contracts is ignored). ``order_id``: only the logs of that order
    (OrderBook and ChallengeManager index it first)."""

    def __init__(self, w3: Web3, deployment, *, from_block: int | None = None, confirmations: int = 0,
                 max_range: int = 2_000, contracts: tuple[str, ...] | None = None,
                 state_path: str | os.PathLike | None = None, order_id: int | None = None):
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        if max_range < 1:
            raise ValueError("max_range must be >= 1")
        self.w3 = w3
        self.names = {addr: name for name, addr in deployment.addresses.items()
                      if contracts is None or name in contracts}
        self.next_block = deployment.block if from_block is None else from_block
        self.confirmations = confirmations
        self.max_range = max_range
        self._range = max_range  # halved after a failed call (providers cap ranges and results)
        self.state_path = Path(state_path) if state_path is not None else None
        self._binding = {"chainId": deployment.chain_id, "orderBook": str(deployment.order_book).lower(),
                         "deploymentBlock": deployment.block}
        if self.state_path is not None:
            saved = self._load()
            if saved is not None:
                self.next_block = max(self.next_block, saved)
        self.topics = None if order_id is None else [None, "0x" + int(order_id).to_bytes(32, "big").hex()]

    def fetch(self) -> tuple[list[ChainEvent], int]:
        """Confirmed events from ``next_block`` on (at most ``max_range`` blocks), oldest first,
        and the block after the last one covered. The position does not move: ``advance`` to
        that block once every event is handled. An RPC error propagates and halves the next
        range; the next call asks for the same first block again."""
        safe_head = self.w3.eth.block_number - self.confirmations
        if self.next_block > safe_head:
            return [], self.next_block
        to_block = min(safe_head, self.next_block + self._range - 1)
        try:
            query = {"fromBlock": self.next_block, "toBlock": to_block, "address": list(self.names)}
            if self.topics is not None:
                query["topics"] = self.topics
            logs = self.w3.eth.get_logs(query)
        except Exception:
            self._range = max(1, self._range // 2)
            raise
        self._range = min(self.max_range, self._range * 2)
        logs = sorted(logs, key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"])))
        return decode_logs(self.w3, logs, self.names), to_block + 1

    def advance(self, block: int) -> None:
        """The events of every block below ``block`` are handled: resume there (persisted)."""
        if block <= self.next_block:
            return
        self.next_block = block
        if self.state_path is not None:
            self._save()

    def poll(self) -> list[ChainEvent]:
        """Every new confirmed event since the last poll, oldest first; the position moves
        only if every range was read (callers that may fail to handle the events should use
        ``fetch`` and ``advance``)."""
        events: list[ChainEvent] = []
        start = self.next_block
        try:
            while True:
                evs, end = self.fetch()
                if end == self.next_block:
                    break
                events.extend(evs)
                self.next_block = end
        except Exception:
            self.next_block = start
            raise
        self.next_block = start
        self.advance(end)
        return events

    def _load(self) -> int | None:
        try:
            doc = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("deployment") != self._binding:
            return None
        nb = doc.get("nextBlock")
        return nb if isinstance(nb, int) and nb >= 0 else None

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump({"deployment": self._binding, "nextBlock": self.next_block}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)
